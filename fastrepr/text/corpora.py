"""Moved to ``fastrepr.data.corpora`` (data that installed packages ship); this name keeps working."""
from ..data.corpora import WIKI_DUMP, bundled, cache_dir, gensim_test_file, wiki_lee_corpus

__all__ = ["WIKI_DUMP", "bundled", "cache_dir", "gensim_test_file", "wiki_lee_corpus"]
