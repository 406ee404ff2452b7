"""Text embeddings: reading and writing word vectors (word2vec text/binary, GloVe)."""
from .io import load_glove, load_word2vec_format, save_word2vec_format

__all__ = ["load_glove", "load_word2vec_format", "save_word2vec_format"]
