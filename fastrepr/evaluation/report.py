"""Word-benchmark summaries as plain values. (``fastrepr eval-words``, which prints them per section, is in
fastrepr/cli/eval_words.py.)"""
from __future__ import annotations

from ..data.corpora import bundled
from . import words


def word_scores(vectors) -> tuple[float, float]:
    """(WordSim353 Spearman, Google-analogy accuracy with restrict_vocab=30000) of an EmbeddingIndex, a
    (vectors, keys) pair or a gensim KeyedVectors, through fastrepr.evaluation.words (gensim's semantics and
    counts, tested against gensim there) on the files of gensim's test data."""
    ws = words.evaluate_word_pairs(vectors, bundled("wordsim353.tsv")).spearman
    an = words.evaluate_word_analogies(vectors, bundled("questions-words.txt"), restrict_vocab=30000).score
    return float(ws), float(an)
