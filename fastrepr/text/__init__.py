"""Text embeddings: reading and writing word vectors (word2vec text/binary, GloVe), and training them:
vocabulary (vocab), subsampling and noise distribution (sampling), word2vec's Huffman tree (huffman), and the
Word2Vec trainer (word2vec)."""
from .._io import FormatError
from .io import load_glove, load_word2vec_format, save_word2vec_format

__all__ = ["FormatError", "load_glove", "load_word2vec_format", "save_word2vec_format"]
