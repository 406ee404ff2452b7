"""Word-embedding benchmarks with gensim's exact semantics: analogies (Google set) and word-pair similarity
(WordSim353, SimLex-999), batched through ``EmbeddingIndex``.

``evaluate_word_analogies`` reproduces ``KeyedVectors.evaluate_word_analogies`` (gensim 4): the vocabulary
is the first ``restrict_vocab`` keys; with ``case_insensitive`` every key and question word is upper-cased
and, of several case variants, the first (most frequent) key stands for the word; a question with a word
outside that vocabulary is skipped (or, with ``dummy4unknown``, counted wrong); the answer is taken from
the 5 best rows other than the rows of a, b and c, skipping candidates whose (case-folded) word is a, b or c
(another case variant of a question word); sections are returned in file order, then "Total accuracy".

Same answers, not just close ones. gensim scores in float32 (``most_similar``: a mean of unit vectors,
normalized, dotted with every row and divided by the row norms), and so does the fast path here, but with
other summation orders, so two candidates closer than the rounding error can swap. Each question is
therefore answered in three steps: (1) the analogy kernel returns the 10 best rows (float32, fast);
(2) those are re-scored in float64, which ranks them as exact arithmetic would, and a worst-case bound on
float32 rounding (``_bound``) says whether gensim's float32 order could differ in a way that changes the
outcome; (3) only such questions are re-scored with gensim's own float32 arithmetic, operation for operation
(``_gensim_candidates``: one pass over the vocabulary each, as gensim), which gives gensim's answer, ties
included. That was 2 of the 19,544 questions over the 100k x 300 benchmark vectors; vocabularies holding
duplicate vectors of answer words need it more often.

``method="3cosmul"`` answers with gensim's ``most_similar_cosmul`` formula in the same protocol (gensim's
evaluation has no 3CosMul; its ``similarity_function`` argument is unused).
"""
from __future__ import annotations

import codecs
import contextlib
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .._io import FormatError, open_read, stream_errors
from .._progress import Progress
from ..data.corpora import bundled
from ..ops._topk import TopK, unique_inverse
from ..search import EmbeddingIndex

logger = logging.getLogger(__name__)

CANDIDATES = 10  # rows fetched per question: gensim's 5, plus room to see near-ties around them
_BLOCK = 2048  # questions re-scored in float64 at a time
_U = 2.0 ** -24  # float32 unit roundoff


# -------------------------------------------------------------------------------------------------------
# the vectors: EmbeddingIndex, (vectors, keys), or a gensim KeyedVectors

@dataclass
class _Table:
    index: EmbeddingIndex
    keys: list
    _host: np.ndarray | None = None
    _norms: np.ndarray | None = None

    def host(self) -> np.ndarray:
        """float32 [V, D] on the CPU (gensim's ``vectors``), copied once if the index lives on a GPU."""
        if self._host is None:
            self._host = np.ascontiguousarray(self.index.vectors.cpu().numpy())
        return self._host

    def norms(self) -> np.ndarray:
        """gensim's ``fill_norms``: float32 row norms."""
        if self._norms is None:
            self._norms = np.linalg.norm(self.host(), axis=1)
        return self._norms


def _table(vectors) -> _Table:
    if isinstance(vectors, EmbeddingIndex):
        if vectors.keys is None:
            raise ValueError("the EmbeddingIndex needs keys (words) to be evaluated on word benchmarks")
        return _Table(vectors, vectors.keys)
    if hasattr(vectors, "index_to_key") and hasattr(vectors, "vectors"):  # gensim KeyedVectors
        arr = np.ascontiguousarray(vectors.vectors, dtype=np.float32)
        return _Table(EmbeddingIndex(arr, list(vectors.index_to_key)), list(vectors.index_to_key), arr)
    if isinstance(vectors, (tuple, list)) and len(vectors) == 2:
        arr, keys = vectors
        index = EmbeddingIndex(arr, list(keys))
        return _Table(index, index.keys)
    raise TypeError("vectors must be an EmbeddingIndex, a (vectors, keys) pair or a gensim KeyedVectors, "
                    f"got {type(vectors).__name__}")


def _vocabulary(keys: list, restrict_vocab: int, case_insensitive: bool) -> dict:
    """gensim's ok_vocab: folded key -> row, over the first restrict_vocab keys; the first variant wins."""
    ok: dict = {}
    for i, key in enumerate(keys[:restrict_vocab]):
        ok.setdefault(key.upper() if case_insensitive else key, i)
    return ok


# -------------------------------------------------------------------------------------------------------
# gensim's float32 arithmetic, reproduced operation for operation (numpy and BLAS calls of the same types)

def _blas():
    try:
        from scipy.linalg import blas

        return blas.dnrm2, blas.dscal
    except ImportError:  # same result except in the last bit, in rare cases
        return (lambda x: float(np.sqrt(np.dot(np.asarray(x, np.float64), np.asarray(x, np.float64)))),
                lambda a, x: a * np.asarray(x, np.float64))


def _unitvec(vec: np.ndarray) -> np.ndarray:
    """gensim.matutils.unitvec for a dense vector: float64 BLAS norm and scaling, back to vec's dtype."""
    nrm2, scal = _blas()
    length = nrm2(vec) if vec.size else 0.0
    if length > 0.0:
        return scal(1.0 / length, vec).astype(vec.dtype)
    return vec


def _gensim_candidates(arr: np.ndarray, norms: np.ndarray, a: int, b: int, c: int, rows: int,
                       method: str) -> list[int]:
    """The rows gensim's evaluation loop sees for one question: ``most_similar(positive=[b, c],
    negative=[a], topn=5, restrict_vocab=rows)`` (3cosadd), or ``most_similar_cosmul`` over the same rows."""
    if method == "3cosadd":
        weight = np.concatenate((np.ones(2), -1.0 * np.ones(1)))
        mean = np.zeros(arr.shape[1], arr.dtype)
        total = 0
        for idx, row in enumerate((b, c, a)):
            mean += weight[idx] * (arr[row] / norms[row])
            total += abs(weight[idx])
        mean = _unitvec(mean / total).astype(np.float32)
        dists = np.dot(arr[:rows], mean) / norms[:rows]
        skip = [b, c, a]
    else:
        pos = [((1 + np.dot(arr[:rows], arr[r] / norms[r]) / norms[:rows]) / 2) for r in (b, c)]
        neg = [((1 + np.dot(arr[:rows], arr[a] / norms[a]) / norms[:rows]) / 2)]
        dists = np.prod(pos, axis=0) / (np.prod(neg, axis=0) + 0.000001)
        skip = list({a, b, c})
    # gensim.matutils.argsort(dists, topn=5 + len(skip), reverse=True)
    x, topn = -dists, 5 + len(skip)
    if topn >= x.size:
        best = np.argsort(x)[:topn]
    else:
        part = np.argpartition(x, topn)[:topn]
        best = part.take(np.argsort(x.take(part)))
    return [int(i) for i in best if i not in skip][:5]


# -------------------------------------------------------------------------------------------------------
# analogies

@dataclass
class AnalogyResult:
    """gensim's return value, ``score, sections = result``, plus counts.

    sections: one dict per section of the file, then "Total accuracy": {"section": name, "correct":
    [(a, b, c, expected), ...], "incorrect": [...]} with case-folded words, as gensim returns them.
    """

    score: float
    sections: list
    questions: int  # well-formed question lines
    oov: int  # of which had a word outside the vocabulary
    rescored: int = 0  # questions re-scored with gensim's float32 arithmetic (near-ties)
    method: str = "3cosadd"
    predictions: list = field(default_factory=list, repr=False)  # folded answer per evaluated question

    @property
    def oov_ratio(self) -> float:
        """Percentage of questions with out-of-vocabulary words (gensim logs this number)."""
        return 100.0 * self.oov / self.questions if self.questions else 0.0

    def __iter__(self):
        yield self.score
        yield self.sections


def _lines(path, encoding: str = "utf8"):
    """(1-based line number, decoded line) of a text file, ``.gz``/``.bz2`` included; a line that does not
    decode, or a damaged compressed stream, raises FormatError naming the file and line."""
    at = {"line": 0}
    with open_read(path) as fin, stream_errors(path, lambda: at):
        for line_no, raw in enumerate(fin, 1):
            at["line"] = line_no
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise FormatError(path, f"{raw[:40]!r} is not valid {encoding} ({exc.reason})", line=line_no) from None
            yield line_no, line


def _read_questions(path, ok: dict, case_insensitive: bool, dummy4unknown: bool):
    """gensim's parsing: ': name' opens a section; other lines must hold 4 words (else skipped).
    Returns the sections, the questions to score and, in file order, (section, words, scored) entries."""
    sections, entries, questions, oov = [], [], 0, 0
    for line_no, line in _lines(path):
        if line.startswith(": "):
            sections.append({"section": line.lstrip(": ").strip(), "correct": [], "incorrect": []})
            continue
        if not sections:
            raise FormatError(path, "Missing section header (': name') before the first question", line=line_no)
        words = line.split()
        if len(words) != 4:
            logger.info("Skipping invalid line %i in %s", line_no, path)
            continue
        quad = tuple(w.upper() for w in words) if case_insensitive else tuple(words)
        questions += 1
        if any(w not in ok for w in quad):
            oov += 1
            if dummy4unknown:
                entries.append((len(sections) - 1, quad, False))
            continue
        entries.append((len(sections) - 1, quad, True))
    if not questions:
        raise FormatError(path, "no analogy questions (lines of four words after a ': section' line)")
    if not entries:
        raise ValueError(f"{path}: none of its {questions} questions has all four words among the vocabulary's "
                         "first restrict_vocab keys, so there is no accuracy to report (dummy4unknown=True counts "
                         "them as wrong)")
    asked = [(section, quad) for section, quad, scored in entries if scored]
    return sections, asked, entries, questions, oov


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _bound(s, cos_a, cos_b, cos_c, scale, dim: int, method: str):
    """Worst-case |float32 score - exact score| for gensim's arithmetic (and the fast path's), with a
    factor 2 of slack. 3CosAdd: the dot product (D·u), the candidate's float32 norm (|s|·D·u/2), the
    question words' norms and the rounded mean (3·D·u·scale + 6·u·scale). 3CosMul: each shifted cosine p
    is off by at most (D + 2)·u, so the ratio is off by s·(D + 2)·u·(1/p_b + 1/p_c + 1/(p_a + 1e-6))."""
    if method == "3cosadd":
        return 2 * _U * (dim * (1.0 + 0.5 * s.abs() + 3.0 * scale) + 6.0 * scale + 4.0)
    pa, pb, pc = (1 + cos_a) / 2, (1 + cos_b) / 2, (1 + cos_c) / 2
    rel = (dim + 2) * (1 / pb.clamp_min(1e-12) + 1 / pc.clamp_min(1e-12) + 1 / (pa.clamp_min(0) + 1e-6)) + 3
    return 2 * _U * s.abs() * rel


def _rescore(index: EmbeddingIndex, words: torch.Tensor, cand: torch.Tensor, method: str):
    """float64 scores and error bounds of the candidate rows cand [N, K] (-1: none) of questions [N, 3]."""
    rows, inv = unique_inverse(torch.cat([words, cand.clamp_min(0)], 1))
    unit = torch.nn.functional.normalize(index.vectors[rows].double(), dim=-1)  # each distinct row once
    ua, ub, uc = (unit[inv[:, t]] for t in range(3))
    uk = unit[inv[:, 3:]]  # [N, K, D]
    cos = [torch.einsum("nkd,nd->nk", uk, u) for u in (ua, ub, uc)]
    if method == "3cosadd":
        scale = 1.0 / (ub + uc - ua).norm(dim=1, keepdim=True).clamp_min(1e-300)
        s = (cos[1] + cos[2] - cos[0]) * scale
    else:
        scale = torch.ones_like(cos[0][:, :1])
        s = ((1 + cos[1]) / 2) * ((1 + cos[2]) / 2) / ((1 + cos[0]) / 2 + 1e-6)
    s = s.masked_fill(cand < 0, float("-inf"))
    return s, _bound(s.masked_fill(cand < 0, 0.0), *cos, scale, unit.shape[1], method)


def _by_exact(cand: torch.Tensor, exact: torch.Tensor, err: torch.Tensor):
    """(cand, exact, err) [N, K] reordered by exact score, descending; equal scores keep the kernel's order
    (the TopK ranks candidate positions, lower first on ties); rows without a candidate (-inf) go last as -1."""
    lists = TopK(*exact.shape, dtype=exact.dtype)
    lists.push(exact, torch.arange(exact.shape[1]))
    ordered, pos = lists.finalize()
    at = pos.clamp_min(0)
    return cand.gather(1, at).masked_fill(pos < 0, -1), ordered, err.gather(1, at)


def _decide(ids, exact, err, fast_last, err_last, fold, ask, expected):
    """gensim's choice among the candidates in exact order, and whether float32 rounding could change it.

    ids/exact/err: candidates sorted by exact score (desc, lower row first); fold(row) -> folded word.
    Returns (prediction, robust)."""
    top = [j for j, r in enumerate(ids) if r >= 0][:5]
    if not top:
        return None, True
    words = [fold(ids[j]) for j in top]
    pick = next((n for n, w in enumerate(words) if w not in ask), None)
    if pick is None:  # every one of the 5 is a case variant of a, b or c: gensim keeps the last
        return words[-1], False
    p = top[pick]
    right = words[pick] == expected
    for j, r in enumerate(ids):
        if j <= p or r < 0 or exact[j] < exact[p] - err[p] - err[j]:
            continue
        w = fold(r)  # a near-tie below the pick: it could overtake in float32
        if (w not in ask or pick == 4) and (w == expected) != right:
            return words[pick], False
    if fast_last is not None and fast_last + 2 * err_last >= exact[p] - err[p]:
        return words[pick], False  # rows beyond the fetched candidates might be near-tied
    return words[pick], True


def evaluate_word_analogies(vectors, questions_path=None, restrict_vocab: int = 300000, case_insensitive: bool = True,
                            method: str = "3cosadd", dummy4unknown: bool = False, *, batch_size: int = 65536,
                            progress: bool = False) -> AnalogyResult:
    """gensim's ``evaluate_word_analogies`` (module docstring), batched through the analogy kernel.

    vectors: an ``EmbeddingIndex`` with keys, a ``(vectors [V, D], keys)`` pair, or a gensim
    ``KeyedVectors``. questions_path: default gensim's questions-words.txt (the Google set).
    method: "3cosadd" (gensim's) or "3cosmul". progress: a tqdm bar over the questions.
    Returns an ``AnalogyResult`` (``score, sections = result``). Raises FormatError (a ValueError) naming
    the file and line for a file without questions, a question before the first section header, a line
    that does not decode, a damaged ``.gz``/``.bz2``; ValueError when no question can be scored (gensim
    reports 0.0 then) or for a bad argument.
    batch_size: questions per analogy-kernel call (each call computes the cosines of its distinct words).
    Memory: the kernel's tile, O(batch_size) lists, O(2048 · 10 · D) for re-scoring; a host float32 copy of
    the table only when a question needs gensim's arithmetic and the index lives on a GPU.
    """
    if method not in ("3cosadd", "3cosmul"):
        raise ValueError(f"method must be '3cosadd' or '3cosmul', got {method!r}")
    restrict_vocab = _positive_int(restrict_vocab, "restrict_vocab")
    batch_size = _positive_int(batch_size, "batch_size")
    table = _table(vectors)
    path = questions_path or bundled("questions-words.txt")
    rows = min(restrict_vocab, len(table.keys))
    ok = _vocabulary(table.keys, rows, case_insensitive)
    sections, asked, entries, n_questions, oov = _read_questions(path, ok, case_insensitive, dummy4unknown)
    index = table.index
    fold = (lambda r: table.keys[r].upper()) if case_insensitive else (lambda r: table.keys[r])
    words = torch.tensor([[ok[q[0]], ok[q[1]], ok[q[2]]] for _, q in asked], dtype=torch.int64).reshape(-1, 3)
    bar = Progress(len(asked), progress, unit="q", desc="analogies", leave=False)
    predictions, rescored = [], 0
    k = min(CANDIDATES, rows)
    for lo in range(0, len(asked), batch_size):
        w = words[lo:lo + batch_size].to(index.device)
        with _ieee_matmuls():  # the rounding bounds below assume float32 products, not TF32/bf16
            fast, cand = index.analogy(w[:, 0], w[:, 1], w[:, 2], method, k=k, restrict_vocab=rows)
        for sub in range(0, w.shape[0], _BLOCK):  # float64 re-scoring in blocks: O(_BLOCK · k · D) memory
            ws, cs = w[sub:sub + _BLOCK], cand[sub:sub + _BLOCK]
            exact, err = (t.cpu() for t in _rescore(index, ws, cs, method))
            cand_e, exact_e, err_e = (t.tolist() for t in _by_exact(cs.cpu(), exact, err))
            cs, fs, err = cs.cpu().numpy(), fast[sub:sub + _BLOCK].cpu().numpy(), err.numpy()
            last = np.where(cs[:, -1] >= 0, fs[:, -1], np.nan).tolist()
            for n in range(ws.shape[0]):
                quad = asked[lo + sub + n][1]
                answer, robust = _decide(cand_e[n], exact_e[n], err_e[n], None if last[n] != last[n] else last[n],
                                         float(err[n, -1]), fold, set(quad[:3]), quad[3])
                if not robust:
                    rescored += 1
                    a, b, c = words[lo + sub + n].tolist()
                    top = _gensim_candidates(table.host(), table.norms(), a, b, c, rows, method)
                    folded = [fold(r) for r in top]
                    answer = next((x for x in folded if x not in quad[:3]), folded[-1] if folded else None)
                predictions.append(answer)
            bar.update(ws.shape[0])
    bar.close()
    answers = iter(predictions)
    for section, quad, scored in entries:  # file order, as gensim appends them
        right = scored and next(answers) == quad[3]
        sections[section]["correct" if right else "incorrect"].append(quad)
    total = {"section": "Total accuracy",
             "correct": [q for s in sections for q in s["correct"]],
             "incorrect": [q for s in sections for q in s["incorrect"]]}
    sections.append(total)
    n_right, n_all = len(total["correct"]), len(total["correct"]) + len(total["incorrect"])
    score = n_right / n_all  # n_all > 0: _read_questions raises when nothing can be scored
    logger.info("%s: %.1f%% (%i/%i); %.1f%% of questions had OOV words; %i re-scored exactly",
                path, 100 * score, n_right, n_all, 100.0 * oov / max(n_questions, 1), rescored)
    return AnalogyResult(score, sections, n_questions, oov, rescored, method, predictions)


@contextlib.contextmanager
def _ieee_matmuls():
    """float32 matmuls in full precision for the duration (restores the user's setting)."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(before)


# -------------------------------------------------------------------------------------------------------
# word pairs

@dataclass
class WordPairsResult:
    """gensim's ``pearson, spearman, oov_ratio`` (correlation coefficients only, no p-values) plus counts."""

    pearson: float
    spearman: float
    oov_ratio: float  # percent, as gensim computes it
    pairs: int  # pairs that entered the correlations
    oov: int

    def __iter__(self):
        yield self.pearson
        yield self.spearman
        yield self.oov_ratio


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing their mean rank (scipy.stats.rankdata 'average')."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    starts = np.r_[0, np.flatnonzero(xs[1:] != xs[:-1]) + 1]
    ends = np.r_[starts[1:], len(xs)]
    ranks = np.empty(len(x))
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)
    return ranks


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    den = np.sqrt((x @ x) * (y @ y))
    return float((x @ y) / den) if den > 0 else float("nan")


def evaluate_word_pairs(vectors, pairs_path=None, delimiter: str = "\t", encoding: str = "utf8",
                        restrict_vocab: int = 300000, case_insensitive: bool = True,
                        dummy4unknown: bool = False) -> WordPairsResult:
    """gensim's ``evaluate_word_pairs``: Pearson and Spearman correlation between the file's similarity
    scores and the cosine similarity of each pair.

    Lines starting with '#' are comments; other lines must split on ``delimiter`` into (word, word, score)
    or are skipped. Pairs with a word outside the first ``restrict_vocab`` keys are skipped (``dummy4unknown``:
    kept with similarity 0). Similarities are computed with gensim's float32 arithmetic, so ties (and hence
    Spearman's ranks) are gensim's. pairs_path: default gensim's wordsim353.tsv (``.gz``/``.bz2`` read
    transparently). Raises FormatError (a ValueError) naming the file and line for a line that does not
    decode or a score that is NaN or infinite, ValueError when no pair is usable or for a bad argument.
    Memory: O(pairs).
    """
    restrict_vocab = _positive_int(restrict_vocab, "restrict_vocab")
    if not isinstance(delimiter, str) or not delimiter:
        raise ValueError(f"delimiter must be a non-empty str, got {delimiter!r}")
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"encoding {encoding!r} is not a known codec") from None
    table = _table(vectors)
    path = pairs_path or bundled("wordsim353.tsv")
    ok = _vocabulary(table.keys, min(restrict_vocab, len(table.keys)), case_insensitive)
    gold, model, oov = [], [], 0
    for line_no, line in _lines(path, encoding):
        if not line or line.startswith("#"):
            continue
        try:
            a, b, sim = [w.upper() for w in line.split(delimiter)] if case_insensitive else line.split(delimiter)
            sim = float(sim)
        except (ValueError, TypeError):
            logger.info("Skipping invalid line %d in %s", line_no, path)
            continue
        if not math.isfinite(sim):  # one NaN would make Pearson NaN beside a numeric Spearman
            raise FormatError(path, f"the similarity score {sim!r} is not a finite number", line=line_no)
        if a not in ok or b not in ok:
            oov += 1
            if dummy4unknown:
                gold.append(sim)
                model.append(0.0)
            continue
        arr = table.host()
        gold.append(sim)
        model.append(np.dot(_unitvec(arr[ok[a]]), _unitvec(arr[ok[b]])))
    if not gold:
        raise ValueError(f"No valid similarity judgements found in {path}: either invalid format or all are "
                         "out-of-vocabulary")
    g = np.asarray(gold, dtype=np.float64)
    m = np.asarray(model, dtype=np.float64)
    ratio = 100.0 * oov / (len(gold) if dummy4unknown else len(gold) + oov)
    return WordPairsResult(_pearson(g, m), _pearson(_ranks(g), _ranks(m)), ratio, len(gold), oov)
