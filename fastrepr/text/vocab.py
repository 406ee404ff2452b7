"""Streaming vocabulary: count tokens over a corpus file or an iterable of token lists, keep the words seen at
least ``min_count`` times (gensim's ``max_final_vocab`` and a hard ``max_vocab`` cap), sorted as gensim 4 does,
and encode the corpus as one int32 array of word ids with sentence offsets (what the trainers consume).

A corpus is either a path (one sentence per line, tokens separated by whitespace: gensim's ``LineSentence``
and ``corpus_file`` format), or a restartable iterable of token lists (``[["a", "b"], ["c"]]``), read twice
(once to count, once to encode). Memory: the counts of every distinct token while counting; then the kept
vocabulary and the encoded corpus (4 bytes per kept token plus 8 per sentence).
"""
from __future__ import annotations

import os
from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np

# gensim's MAX_WORDS_IN_BATCH / corpus_file MAX_SENTENCE_LEN: longer sentences are cut into chunks, so that
# the window never spans a cut and no thread holds a huge sentence.
MAX_SENTENCE_LEN = 10000


def _is_path(corpus) -> bool:
    return isinstance(corpus, (str, bytes, os.PathLike))


def iter_sentences(corpus) -> Iterator[list[str]]:
    """Yield the token lists of a corpus (a path or an iterable of token lists); see the module docstring."""
    if _is_path(corpus):
        path = os.fspath(corpus)
        if isinstance(path, bytes):
            path = path.decode()
        if not os.path.isfile(path):
            raise ValueError(f"corpus file {path!r} does not exist")
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                yield line.split()
        return
    if corpus is None:
        raise TypeError("corpus is None: pass a file path or an iterable of token lists")
    try:
        it = iter(corpus)
    except TypeError:
        raise TypeError(f"corpus must be a file path or an iterable of token lists, got {type(corpus).__name__}") from None
    if it is corpus:
        raise TypeError("corpus is a one-shot iterator (e.g. a generator); it is read twice (count, then train): "
                        "pass a list, a restartable iterable, or a file path")
    for sentence in it:
        if isinstance(sentence, (str, bytes)):
            raise TypeError("corpus must be an iterable of token lists (e.g. [['hello', 'world'], ...]), "
                            f"got an iterable of {type(sentence).__name__}; split each sentence into tokens first")
        yield sentence if isinstance(sentence, list) else list(sentence)


@dataclass
class Vocab:
    """Kept words by descending count (ties: in reverse order of first appearance, as gensim), their counts, and corpus totals.

    keys: list[str] [V]; counts: int64 [V]; index: word -> id; total_tokens: every token counted (kept or not);
    sentences: number of sentences counted.
    """

    keys: list[str]
    counts: np.ndarray
    total_tokens: int
    sentences: int
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.index = {w: i for i, w in enumerate(self.keys)}

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def kept_tokens(self) -> int:
        """Tokens of the corpus that are in the vocabulary (the words the trainer sees before subsampling)."""
        return int(self.counts.sum())

    @classmethod
    def build(cls, corpus, min_count: int = 5, max_vocab: int | None = None,
              max_final_vocab: int | None = None) -> "Vocab":
        """Count the corpus in one streaming pass and keep the words with count >= min_count, in gensim 4's
        order: descending count, ties in reverse order of first appearance (gensim's
        ``sort_by_descending_frequency``). max_final_vocab: gensim's rule, min_count is raised to one more
        than the count of the (max_final_vocab + 1)-th most frequent word, so at most max_final_vocab words
        are kept (fewer when that count is shared). max_vocab: then keep at most the max_vocab first words.

        Raises ValueError for an empty corpus or when no word reaches min_count.
        """
        if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
            raise ValueError(f"min_count must be an integer >= 1, got {min_count!r}")
        for name, value in (("max_vocab", max_vocab), ("max_final_vocab", max_final_vocab)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))
                                      or value < 1):
                raise ValueError(f"{name} must be None or an integer >= 1, got {value!r}")
        counter: Counter = Counter()
        sentences = 0
        for sentence in iter_sentences(corpus):
            counter.update(sentence)
            sentences += 1
        total = sum(counter.values())
        if total == 0:
            raise ValueError("corpus is empty: it has no tokens")
        effective = min_count
        if max_final_vocab is not None and max_final_vocab < len(counter):
            counts_desc = sorted(counter.values(), reverse=True)
            effective = max(min_count, counts_desc[max_final_vocab] + 1)
        # Counter keeps first-seen order: rank i of a word is its first appearance.
        kept = [(i, w, c) for i, (w, c) in enumerate(counter.items()) if c >= effective]
        if not kept:
            word, count = counter.most_common(1)[0]
            raise ValueError(f"no word occurs at least min_count={effective} times (the most frequent, {word!r}, "
                             f"occurs {count} times in {total} tokens); lower min_count or use a larger corpus")
        kept.sort(key=lambda iwc: (-iwc[2], -iwc[0]))
        if max_vocab is not None:
            kept = kept[:max_vocab]
        keys = [w for _, w, _ in kept]
        counts = np.fromiter((c for _, _, c in kept), dtype=np.int64, count=len(kept))
        return cls(keys, counts, total, sentences)

    def encode(self, corpus, max_sentence_len: int = MAX_SENTENCE_LEN) -> tuple[np.ndarray, np.ndarray]:
        """The corpus as word ids: (tokens int32 [N], offsets int64 [S + 1]); sentence s is
        tokens[offsets[s]:offsets[s + 1]]. Out-of-vocabulary tokens are dropped (so the window reaches past
        them, as in word2vec), empty sentences are skipped, and sentences longer than max_sentence_len are cut.
        """
        index = self.index
        tokens = array("i")
        offsets = array("q", [0])
        for sentence in iter_sentences(corpus):
            ids = [i for i in map(index.get, sentence) if i is not None]
            for start in range(0, len(ids), max_sentence_len):
                tokens.extend(ids[start:start + max_sentence_len])
                offsets.append(len(tokens))
        return np.frombuffer(tokens, dtype=np.int32).copy(), np.frombuffer(offsets, dtype=np.int64).copy()
