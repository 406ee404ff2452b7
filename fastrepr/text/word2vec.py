"""``fastrepr.Word2Vec``: word2vec training with gensim's parameter names and semantics.

Training is the declared op ``word2vec_train`` (``TRAIN_IMPLS``, dispatched on the model's syn0 like every op,
so FASTREPR_BACKEND and ``fastrepr info --ops`` cover it): ``native`` is the C++ trainer (csrc/word2vec.cpp), C++
threads over chunks of the corpus held as one int32 array, lock-free (Hogwild) updates, the GIL released while a
Python thread draws the progress bar; ``torch`` and ``triton`` are ``fastrepr.text.batched``, which generates
(center, context) batches on the device and feeds them to the fused step ops (themselves dispatched: Triton
kernels on CUDA). The automatic choice: native on a CPU with the native build, else the batched trainer;
update="batched" passes over the native trainer (so FASTREPR_BACKEND=native with update="batched" is an error
saying so), and a CPU rule where only the batched trainer can run is a ValueError.

Semantics follow gensim 4 / word2vec.c: vocabulary by descending count with min_count (ties and
max_final_vocab as gensim); subsampling with keep probability sqrt(t/f) + t/f; shrinking windows (a window
of window - r, r uniform in [0, window)); linear learning-rate decay from alpha to min_alpha over epochs x
corpus words; negatives from unigram^0.75; word vectors initialized uniform in [-1/D, 1/D), output tables at
zero; CBOW with the mean (cbow_mean=1) adds the undivided error to each context row.

Update rules (``update``):
* "exact" (the CPU default): gensim's ``word2vec_inner`` loop pair by pair: fresh negatives for every
  (context, center) pair, each update seen by the next, gensim's saturation rule (``saturation="skip"``:
  a score beyond +-6 is skipped; ``"clamp"``: word2vec.c's clamped gradient for negative sampling) and their
  sigmoid table, read as they read it (``sigmoid="table"``; ``"interpolated"`` is smooth). With
  workers=1 a run is a fixed function of the seed, replayed in numpy by tests/test_word2vec_reference.py;
  with more workers threads race on shared rows (Hogwild), as in gensim and word2vec.c.
* "window" (CPU, faster, different numbers): skip-gram updates a whole window at once with negatives shared
  by the window (Ji et al. 2016), CBOW scores all outputs before updating any; see csrc/word2vec.h and the
  measured trade in benchmarks/RESULTS.md.
* "batched" (the device trainer, fastrepr.text.batched): minibatch steps over many centers at once.
A run whose scores or weights become NaN or infinite stops with FloatingPointError naming alpha.
"""
from __future__ import annotations

import math
import os
import threading
import time

import numpy as np
import torch

from .. import _native
from .._backend import Impls, declare, dispatch
from .._progress import Progress
from .batched import train_batched
from .huffman import build_huffman
from .sampling import keep_probability, keep_thresholds, noise_table
from .vocab import Vocab


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
    return int(value)


def _float(name: str, value, lo: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < lo:
        raise ValueError(f"{name} must be a finite number >= {lo}, got {value!r}")
    return float(value)


class Word2Vec:
    """word2vec (Mikolov et al. 2013) with gensim's parameter names.

    Word2Vec(sentences=None, corpus_file=None, vector_size=100, window=5, min_count=5, max_vocab=None,
             max_final_vocab=None, sg=1, hs=0, negative=5, ns_exponent=0.75, cbow_mean=1, sample=1e-3,
             alpha=0.025, min_alpha=1e-4, epochs=5, workers=<CPU count>, seed=1, shrink_windows=True,
             device="cpu", batch_words=None, progress=True, update=None, saturation="skip", sigmoid="table")

    Give ``sentences`` (a restartable iterable of token lists) or ``corpus_file`` (a path: one sentence per line,
    whitespace tokens) to build the vocabulary and train at once, as gensim does; or call ``train(corpus)``.
    sg=1 skip-gram, 0 CBOW; hs=1 hierarchical softmax; negative=K noise words (0: none; hs or negative needed).
    device="cuda" trains on the GPU (batch_words centers per step). workers: CPU threads. With workers > 1 the
    updates race (Hogwild), so results vary slightly between runs, as with gensim and word2vec.c.
    update: None (the trainer's own rule: "exact" on the CPU, "batched" on a device), "exact", "window" (CPU)
    or "batched" (see the module docstring). saturation: "skip" (gensim) or "clamp" (word2vec.c), what
    negative sampling does with a score beyond +-6 (hierarchical softmax skips it in both). sigmoid (CPU
    rules): "table", word2vec.c's and gensim's 1000-entry lookup (their index scale is 83 where 1000/12 =
    83.33 was meant: sigmoid(0.012 floor(83 (f + 6)) - 6)), or "interpolated" (error < 2e-6). max_final_vocab:
    gensim's cap (min_count raised until at most that many words remain); max_vocab: a hard cap on the words
    kept after that.

    After training: ``keys`` (list [V]), ``vectors`` (numpy float32 [V, D]), ``syn0`` (the torch table),
    ``wv`` (fastrepr.EmbeddingIndex: most_similar, analogy), ``save_word2vec_format(path, binary=False)``,
    ``words_per_second`` and ``train_seconds`` of the last ``train`` call, ``loss`` (mean loss per prediction).
    Memory: the encoded corpus (4 bytes per token) plus two [V, D] float32 tables (three with hs and negative).
    """

    def __init__(self, sentences=None, corpus_file=None, vector_size: int = 100, window: int = 5,
                 min_count: int = 5, max_vocab: int | None = None, max_final_vocab: int | None = None,
                 sg: int = 1, hs: int = 0, negative: int = 5,
                 ns_exponent: float = 0.75, cbow_mean: int = 1, sample: float = 1e-3, alpha: float = 0.025,
                 min_alpha: float = 1e-4, epochs: int = 5, workers: int | None = None, seed: int = 1,
                 shrink_windows: bool = True, device="cpu", batch_words: int | None = None, progress: bool = True,
                 update: str | None = None, saturation: str = "skip", sigmoid: str = "table"):
        self.vector_size = _int("vector_size", vector_size, 1)
        self.window = _int("window", window, 1)
        self.min_count = _int("min_count", min_count, 1)
        self.max_vocab = None if max_vocab is None else _int("max_vocab", max_vocab, 1)
        self.max_final_vocab = None if max_final_vocab is None else _int("max_final_vocab", max_final_vocab, 1)
        if update not in (None, "exact", "window", "batched"):
            raise ValueError(f"update must be None, 'exact', 'window' or 'batched', got {update!r}")
        if saturation not in ("skip", "clamp"):
            raise ValueError(f"saturation must be 'skip' (gensim) or 'clamp' (word2vec.c), got {saturation!r}")
        if sigmoid not in ("table", "interpolated"):
            raise ValueError(f"sigmoid must be 'table' (word2vec.c's and gensim's lookup) or 'interpolated', "
                             f"got {sigmoid!r}")
        self.update, self.saturation, self.sigmoid = update, saturation, sigmoid
        self.update_rule = None  # the rule the last train() used
        if sg not in (0, 1) or hs not in (0, 1) or cbow_mean not in (0, 1):
            raise ValueError(f"sg, hs and cbow_mean must be 0 or 1, got sg={sg!r}, hs={hs!r}, cbow_mean={cbow_mean!r}")
        self.sg, self.hs, self.cbow_mean = int(sg), int(hs), int(cbow_mean)
        self.negative = _int("negative", negative, 0)
        if self.hs == 0 and self.negative == 0:
            raise ValueError("negative=0 with hs=0 trains nothing: set negative > 0 (negative sampling) or hs=1")
        self.ns_exponent = float(ns_exponent)
        if not math.isfinite(self.ns_exponent):
            raise ValueError(f"ns_exponent must be finite, got {ns_exponent!r}")
        self.sample = _float("sample", sample)
        self.alpha = _float("alpha", alpha)
        self.min_alpha = _float("min_alpha", min_alpha)
        if self.alpha == 0:
            raise ValueError("alpha must be > 0")
        self.epochs = _int("epochs", epochs, 1)
        self.workers = default_workers() if workers is None else _int("workers", workers, 1)
        self.seed = _int("seed", seed, 0)
        self.shrink_windows = bool(shrink_windows)
        self.device = torch.device(device)
        self.batch_words = None if batch_words is None else _int("batch_words", batch_words, 1)
        self.progress = progress
        self.vocab: Vocab | None = None
        self.syn0 = self.syn1neg = self.syn1 = None
        self.words_per_second = self.train_seconds = self.loss = float("nan")
        if sentences is not None and corpus_file is not None:
            raise TypeError("give sentences or corpus_file, not both")
        corpus = corpus_file if corpus_file is not None else sentences
        if corpus is not None:
            self.train(corpus)

    # ---------------------------------------------------------------------------------------- vocabulary
    def build_vocab(self, corpus) -> "Word2Vec":
        """Count the corpus, build the sampling tables and the Huffman tree, and initialize the weights."""
        self.vocab = Vocab.build(corpus, self.min_count, self.max_vocab, self.max_final_vocab)
        counts = self.vocab.counts
        V, D = len(self.vocab), self.vector_size
        self.keep = keep_probability(counts, self.sample)
        self.noise = noise_table(counts, self.ns_exponent) if self.negative else None
        self.tree = build_huffman(counts) if self.hs else None
        return self.reset_weights()

    def reset_weights(self) -> "Word2Vec":
        """Initialize the tables as gensim 4 does (KeyedVectors.prep_vectors): word vectors uniform in
        [-1, 1) / D from ``seed``, output tables at zero."""
        if self.vocab is None:
            raise RuntimeError("the model has no vocabulary yet: call build_vocab(corpus) or train(corpus)")
        V, D = len(self.vocab), self.vector_size
        g = torch.Generator().manual_seed(self.seed)
        self.syn0 = ((torch.rand(V, D, generator=g) * 2 - 1) / D).to(self.device)
        self.syn1neg = torch.zeros(V, D, device=self.device) if self.negative else None
        self.syn1 = torch.zeros(max(V - 1, 1), D, device=self.device) if self.hs else None
        return self

    # ---------------------------------------------------------------------------------------- training
    def train(self, corpus=None, *, corpus_file=None, epochs: int | None = None, progress: bool | None = None):
        """Train on a corpus (path or restartable iterable of token lists); builds the vocabulary first if
        there is none. Returns self. Raises ValueError for an empty corpus or one with no word >= min_count."""
        if corpus is not None and corpus_file is not None:
            raise TypeError("give corpus or corpus_file, not both")
        corpus = corpus_file if corpus_file is not None else corpus
        if corpus is None:
            raise TypeError("train needs a corpus: a file path or an iterable of token lists")
        if self.vocab is None:
            self.build_vocab(corpus)
        epochs = self.epochs if epochs is None else _int("epochs", epochs, 1)
        progress = self.progress if progress is None else progress
        tokens, offsets = self.vocab.encode(corpus)
        if tokens.size == 0:
            raise ValueError("no token of the corpus is in the vocabulary")
        t0 = time.perf_counter()
        self.loss, rule = dispatch("word2vec_train", TRAIN_IMPLS, self.syn0, self, tokens, offsets, epochs,
                                   progress, self.update)
        self.update_rule = rule
        self.train_seconds = time.perf_counter() - t0
        self.words_per_second = tokens.size * epochs / max(self.train_seconds, 1e-9)
        return self

    def _check_finite(self, words, alpha, total, exploded: bool = False) -> None:
        """FloatingPointError when the C++ trainer met a non-finite score or an exploding loss (words, alpha
        given), the loss is not finite, or any table holds NaN or Inf (one O(V·D) pass)."""
        bad = words is not None or not math.isfinite(self.loss)
        if not bad:
            bad = any(t is not None and not bool(torch.isfinite(t).all()) for t in (self.syn0, self.syn1neg, self.syn1))
        if not bad:
            return
        where = f" after {words} of {total} words, at learning rate {alpha:.4g}" if words is not None else ""
        what = ("the loss exploded (above 1000 per prediction: saturation='clamp', word2vec.c's rule, lets the "
                "weights grow without bound)" if exploded else "scores or weights became NaN or infinite")
        extra = "".join(f", {k}={v}" for k, v in (("negative", self.negative), ("window", self.window)) if v)
        raise FloatingPointError(
            f"word2vec training diverged: {what}{where} (alpha={self.alpha}{extra}, sg={self.sg}, hs={self.hs}); "
            f"the vectors are unusable. Lower alpha (gensim's default is 0.025), use saturation='skip', or check "
            f"the initial weights if you set them yourself")

    # ---------------------------------------------------------------------------------------- results
    def _require_trained(self):
        if self.syn0 is None:
            raise RuntimeError("the model has no vocabulary yet: call train(corpus) first")

    @property
    def keys(self) -> list[str]:
        self._require_trained()
        return self.vocab.keys

    @property
    def vectors(self) -> np.ndarray:
        """The word vectors as numpy float32 [V, D] (shares memory with syn0 on the CPU)."""
        self._require_trained()
        return self.syn0.detach().cpu().numpy()

    def __getitem__(self, word: str) -> np.ndarray:
        self._require_trained()
        if word not in self.vocab.index:
            raise KeyError(f"word {word!r} is not in the vocabulary")
        return self.vectors[self.vocab.index[word]]

    def __contains__(self, word: str) -> bool:
        return self.vocab is not None and word in self.vocab.index

    @property
    def wv(self):
        """The trained vectors in a ``fastrepr.EmbeddingIndex`` (most_similar, analogy)."""
        self._require_trained()
        try:
            from ..search import EmbeddingIndex
        except ImportError as exc:
            raise RuntimeError(f"fastrepr.search.EmbeddingIndex is not available in this build ({exc})") from None
        return EmbeddingIndex(self.syn0, self.keys)

    def save_word2vec_format(self, path, binary: bool = False) -> None:
        """Write the vectors in word2vec's text (or binary) format, which gensim's KeyedVectors loads."""
        self._require_trained()
        try:
            from .io import save_word2vec_format
        except ImportError as exc:
            raise RuntimeError(f"fastrepr.text.io is not available in this build ({exc})") from None
        save_word2vec_format(path, self.vectors, self.keys, binary=binary)


def word2vec_train_native(syn0: torch.Tensor, model: "Word2Vec", tokens: np.ndarray, offsets: np.ndarray,
                          epochs: int, progress: bool, update: str | None) -> tuple[float, str]:
    """The C++ trainer (update "exact", the default, or "window") on the model's CPU tables in place (syn0 is
    model.syn0, the tensor the dispatch reads); returns (mean loss per prediction, the rule it ran)."""
    rule = update or "exact"
    window_update = rule == "window"
    C = _native.get()
    empty_u32, empty_i32 = np.zeros(0, np.uint32), np.zeros(0, np.int32)
    keep = keep_thresholds(model.vocab.counts, model.sample) if model.sample else empty_u32
    prob, alias = model.noise.native_arrays() if model.noise is not None else (empty_u32, empty_i32)
    if model.tree is not None:
        points, codes = model.tree.points.astype(np.int32), model.tree.codes
        lengths = model.tree.lengths.astype(np.int32)
    else:
        points, codes, lengths = np.zeros((0, 0), np.int32), np.zeros((0, 0), np.uint8), empty_i32
    none2 = np.zeros((0, 0), np.float32)
    stats = np.zeros((model.workers, 3), np.float64)
    stop = np.zeros(1, np.int32)
    errors: list[BaseException] = []
    result: list = []

    def run():
        try:
            result.append(C.word2vec_train(
                tokens, offsets, keep, prob, alias, points, codes, lengths, model.syn0.numpy(),
                model.syn1neg.numpy() if model.syn1neg is not None else none2,
                model.syn1.numpy() if model.syn1 is not None else none2, stats, stop,
                sg=model.sg, hs=model.hs, negative=model.negative, window=model.window, cbow_mean=model.cbow_mean,
                shrink_windows=int(model.shrink_windows), epochs=epochs, alpha=model.alpha,
                min_alpha=model.min_alpha, seed=model.seed, threads=model.workers, window_update=int(window_update),
                clamp=int(model.saturation == "clamp"), smooth_sigmoid=int(model.sigmoid == "interpolated")))
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    worker = threading.Thread(target=run, name="fastrepr-word2vec", daemon=True)
    bar = Progress(tokens.size * epochs, progress, unit="word", desc="word2vec", unit_scale=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.2)
            bar.to(stats[:, 0].sum(), stats[:, 1].sum(), stats[:, 2].sum())
        bar.to(stats[:, 0].sum(), stats[:, 1].sum(), stats[:, 2].sum())
    except BaseException:
        stop[0] = 1  # Ctrl-C: the threads return at their next sentence
        worker.join()
        raise
    finally:
        bar.close()
    if errors:
        raise errors[0]
    status, words, alpha = result[0]
    model.loss = float(stats[:, 1].sum() / max(stats[:, 2].sum(), 1.0))
    model._check_finite(words if status in (2, 3) else None, alpha, tokens.size * epochs, exploded=status == 3)
    return model.loss, rule



def word2vec_train_batched(syn0: torch.Tensor, model: "Word2Vec", tokens: np.ndarray, offsets: np.ndarray,
                           epochs: int, progress: bool, update: str | None) -> tuple[float, str]:
    """The device trainer (fastrepr.text.batched, update "batched") on the model's tables in place; returns
    (mean loss per prediction, "batched"). Its steps are the dispatched ops negative_sampling_step and
    hierarchical_softmax_step (Triton on CUDA)."""
    if update not in (None, "batched"):
        raise ValueError(f"update={update!r} is a rule of the native CPU trainer, which does not run here "
                         f"(device {model.device}, FASTREPR_BACKEND); the device trainer uses update='batched'")
    model.loss = train_batched(model, tokens, offsets, epochs, progress)
    model._check_finite(None, None, epochs * tokens.size)
    return model.loss, "batched"


def _train_rejects(name, args, kwargs):
    # The native trainer has no minibatch rule: update="batched" goes to the batched trainer (on a CPU too,
    # whose steps then dispatch to the native step op). The batched trainer raises ValueError itself for a CPU
    # rule, so that a CPU rule where the native trainer cannot run is the user's error, not a passed-over choice.
    if name == "native" and args[-1] == "batched":
        return "update='batched' is the device trainer's rule (the native trainer runs 'exact' or 'window')"
    return None


TRAIN_IMPLS = declare("word2vec_train", Impls(triton=word2vec_train_batched, native=word2vec_train_native,
                                              torch=word2vec_train_batched, rejects=_train_rejects))
