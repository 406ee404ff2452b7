"""Word-vector training pieces: vocabulary (vocab), subsampling and noise distribution (sampling), word2vec's
Huffman tree (huffman), and the Word2Vec trainer (word2vec)."""
