"""``EmbeddingIndex``: exact (or, when asked, approximate) nearest neighbours, gensim's ``most_similar``, and
batched word analogies over a [V, D] embedding table.

Engines. ``search`` runs on the ``topk_search`` op (on a CPU: an exact search whose candidate scan takes the
fastest path measured on this machine, the built-in C++ kernel, MKL or OpenBLAS tiles or FAISS's flat scan,
then a float64 refinement, so every path returns the same rows; see ops/_search_plan.py; a fused Triton
kernel for CUDA tensors without faiss-gpu; or its plain-PyTorch implementation; ``fastrepr._backend.dispatch``
picks one per call) or on FAISS (``fastrepr._faiss``:
faiss-gpu's flat index for CUDA vectors when faiss-gpu is installed; CPU or multi-GPU shards; IVF or HNSW
when ``approximate=`` is given; the flat CPU index when asked for with ``backend="faiss"`` or when the native
extension is missing). ``analogy`` always runs on the ``analogy_topk`` op (3CosAdd on a CPU: the cosines of
the distinct question words, or one search query per question, whichever needs fewer flops; 3CosMul: the
three cosines). FASTREPR_BACKEND, when set, routes everything through the op and forces that implementation
(the constructor's ``backend="triton"|"native"|"torch"`` does the same for one more release, deprecated).

Scores: metric "cosine" and "ip" return similarities (descending); "l2" returns squared distances
(ascending). Equal scores rank the lower row first on the op backends (FAISS orders ties its own way).
Results have min(k, candidate rows) columns on every engine (rows beyond the candidates a query has left,
after exclusions, are -1 with score -inf, or +inf for "l2"). NaN or Inf in queries raise ValueError.
"""
from __future__ import annotations

import warnings
from numbers import Integral
from typing import Hashable, Sequence

import numpy as np
import torch

from . import _backend, _checks, _faiss
from .ops import analogy_topk as _analogy
from .ops import topk_search as _topk

METRICS = ("cosine", "ip", "l2")
ENGINES = ("auto", "faiss", "triton", "native", "torch")


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    return _checks.floating(x, name)


def _unit(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit length (zero rows stay zero: their cosine with anything is 0)."""
    return torch.nn.functional.normalize(x, dim=-1)


class EmbeddingIndex:
    """Nearest-neighbour index over ``vectors`` [V, D] (torch or numpy, any float dtype; kept as float32 on
    the vectors' device), optionally named by ``keys`` (V distinct hashables, e.g. words).

    Args:
        metric: "cosine" (rows normalized once; a unit-row copy is kept), "ip", or "l2".
        backend: "auto" or "faiss" (see the module docstring). Deprecated: an op implementation "triton" |
            "native" | "torch" (DeprecationWarning; set FASTREPR_BACKEND instead, which routes every op).
        approximate: None (exact), "ivf" (``nlist`` clusters, ``nprobe`` searched) or "hnsw" (``hnsw_m``
            links, ``ef_search``); FAISS only.
        shards: split the FAISS index over this many CPU sub-indexes, searched in parallel.
        gpus: GPU ordinals to shard a faiss-gpu index over.

    Memory: the float32 table, a unit-row copy for "cosine" (or lazily, for the first ``analogy`` on an
    "ip"/"l2" index), FAISS's own copy when FAISS is used, and on x86 CPUs where the int8 filter is the
    fastest scan, its int8 copy of the searched rows (made by the first search that reads it: a quarter of
    the float32 table's bytes). The index does not copy float32 contiguous vectors: change
    them in place and its cached norms and copies go stale; make a new index instead.
    """

    def __init__(self, vectors, keys: Sequence[Hashable] | None = None, metric: str = "cosine",
                 backend: str = "auto", *, approximate: str | None = None, nlist: int | None = None,
                 nprobe: int | None = None, hnsw_m: int = 32, ef_search: int | None = None, shards: int = 1,
                 gpus: Sequence[int] | None = None):
        v = _as_tensor(vectors, "vectors")
        _checks.ndim(v, 2, "vectors", "[V, D]")
        _checks.nonempty(v, "vectors", "[V, D]")
        if not _checks.all_finite(v):
            raise ValueError("vectors contains NaN or Inf")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if backend not in ENGINES:
            raise ValueError(f"backend must be one of {ENGINES}, got {backend!r}")
        deprecated_impl(backend, "EmbeddingIndex")
        gpus = _faiss.check_params(v.shape[0], approximate, nlist, nprobe, hnsw_m, ef_search, shards, gpus) or None
        self.vectors = v.detach().to(torch.float32).contiguous()
        if not _checks.all_finite(self.vectors):
            raise ValueError("vectors has values beyond float32's range")
        self.metric = metric
        self.keys = None if keys is None else list(keys)
        self.key_to_index: dict = {}
        if self.keys is not None:
            if len(self.keys) != len(self.vectors):
                raise ValueError(f"keys has {len(self.keys)} entries but vectors has {len(self.vectors)} rows")
            self.key_to_index = {key: i for i, key in enumerate(self.keys)}
            if len(self.key_to_index) != len(self.keys):
                raise ValueError("keys must be distinct")
        self._unit = _unit(self.vectors) if metric == "cosine" else None
        self._sqnorms: dict[str, torch.Tensor] = {}  # |row|^2 of the searched / unit table, on first use
        self._int8: torch.Tensor | None = None  # the searched rows' int8 table, on the first search that reads it
        self._bf16: torch.Tensor | None = None  # their bf16 table, the same way
        if metric == "l2" and not _checks.all_finite(self.sqnorms("searched")):
            raise ValueError("vectors: squared row norms overflow float32 (rescale the vectors)")
        self.engine = self._choose_engine(backend, approximate, shards, gpus)
        self._faiss = None
        if self.engine == "faiss":
            self._faiss = _faiss.FaissSearcher(self._searched(), "l2" if metric == "l2" else "ip", approximate,
                                               nlist=nlist, nprobe=nprobe, hnsw_m=hnsw_m, ef_search=ef_search,
                                               shards=shards, gpus=gpus)

    def _choose_engine(self, backend: str, approximate, shards, gpus) -> str:
        needs_faiss = approximate is not None or shards != 1 or gpus is not None
        if backend in ("triton", "native", "torch"):
            if needs_faiss:
                raise ValueError(f"approximate=, shards= and gpus= need FAISS, not backend={backend!r}")
            return backend
        if backend == "faiss" or needs_faiss:
            _faiss.load()  # a clear error when it is missing
            return "faiss"
        if _backend.forced() is None and _faiss.available():
            if self.vectors.device.type == "cuda" and _faiss.has_gpu(_faiss.load()):
                return "faiss"
            # On a CPU the native op picks the fastest scan measured here (FAISS's among them) and returns
            # the exact float64 ranking; faiss-cpu's flat index serves when the extension is missing.
            if self.vectors.device.type == "cpu" and not _backend.available("native")[0]:
                return "faiss"
        return "op"  # the topk_search op, backend selected per call

    # ---------------------------------------------------------------------------------------------------
    # lookups

    def __len__(self) -> int:
        return self.vectors.shape[0]

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    @property
    def device(self) -> torch.device:
        return self.vectors.device

    def __repr__(self) -> str:
        return (f"EmbeddingIndex({len(self)} x {self.dim}, metric={self.metric!r}, engine={self.engine!r}, "
                f"device={self.device})")

    def index_of(self, key) -> int:
        """Row of a key; an int that is not a key is taken as a row (as gensim does). KeyError if absent."""
        try:
            row = self.key_to_index.get(key)
        except TypeError:  # unhashable
            row = None
        if row is not None:
            return row
        if isinstance(key, Integral) and not isinstance(key, bool) and 0 <= int(key) < len(self):
            return int(key)
        raise KeyError(f"key {key!r} not present in the index")

    def keys_of(self, indices) -> list:
        """Keys (or ints when there are none) for a [Q, k] or [k] array of rows; -1 gives None."""
        arr = torch.as_tensor(indices).cpu()
        if arr.dim() == 2:
            return [self.keys_of(row) for row in arr]
        return [None if i < 0 else (self.keys[i] if self.keys is not None else i) for i in arr.tolist()]

    def unit_vectors(self) -> torch.Tensor:
        """Unit-length rows [V, D] float32 (computed once)."""
        if self._unit is None:
            self._unit = _unit(self.vectors)
        return self._unit

    def _searched(self) -> torch.Tensor:
        return self.unit_vectors() if self.metric == "cosine" else self.vectors

    def sqnorms(self, table: str = "searched") -> torch.Tensor:
        """|row|^2 [V] float32 of the searched rows ("searched") or of the unit rows ("unit"), computed once
        (the native search's l2 ranking and its error bound read them)."""
        if table not in self._sqnorms:
            rows = self._searched() if table == "searched" else self.unit_vectors()
            self._sqnorms[table] = _topk.row_sqnorms(rows)
        return self._sqnorms[table]

    def search_path(self, n_queries: int, k: int = 10, restrict: int | None = None) -> str:
        """Which engine (and, for the native op, which scan path) a search of n_queries queries takes here,
        e.g. "native mkl: MKL 2024.2 (torch)" or "faiss flat cpu" (benchmark rows record it)."""
        rows = self._rows(restrict, "restrict")
        if self._faiss is not None and (rows == len(self) or self._faiss.supports_restrict()):
            return f"faiss {self._faiss.plan.kind} {self._faiss.plan.where}"
        with self._forcing():  # the dispatcher's own choice (_backend.choose), not a second rule
            impl = _backend.choose(_topk.OP, _topk.IMPLS, self.device)
        if impl != "native":
            return impl
        return "native " + _topk.search_path(int(n_queries), rows, self.dim, table=True)  # (it keeps tables)

    def _tables(self, n_queries: int, rows: int) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """The searched rows' (int8, bf16) tables, each made on the first native CPU search here that reads it
        (``ops/topk_search.table_kind``: the ``int8-table`` path on x86 CPUs with AVX2, ``mkl-bf16-table``
        with MKL's bfloat16 product, where they measured fastest) and kept: the int8 one R·D bytes plus 8 per
        row, the bf16 one R·(D + 2)·2 bytes (which a search at D = 300 would otherwise spend 22 ms making)."""
        if self.device.type == "cpu":
            with self._forcing():
                impl = _backend.choose(_topk.OP, _topk.IMPLS, self.device)
            kind = _topk.table_kind(n_queries, rows, self.dim) if impl == "native" else None
            if kind == "int8" and self._int8 is None:
                self._int8 = _topk.int8_table(self._searched())
            if kind == "bf16" and self._bf16 is None:
                self._bf16 = _topk.bf16_table(self._searched())
        return self._int8, self._bf16

    def _forcing(self):
        """The deprecated backend="triton"|"native"|"torch" of the constructor, applied through the dispatcher."""
        return _backend.forcing(self.engine if self.engine in _backend.BACKENDS else None)

    def _rows(self, restrict: int | None, name: str) -> int:
        if restrict is None:
            return len(self)
        if isinstance(restrict, bool) or not isinstance(restrict, Integral) or restrict < 1:
            raise ValueError(f"{name} must be a positive int or None, got {restrict!r}")
        return min(int(restrict), len(self))

    # ---------------------------------------------------------------------------------------------------
    # queries

    def search(self, queries, k: int = 10, *, exclude=None, restrict: int | None = None):
        """The k best rows for each query.

        queries: [Q, D] or [D] (torch or numpy, any float dtype; finite; normalized for "cosine").
        k: a positive int; the results have k' = min(k, n) columns, n the rows searched (``restrict``).
        exclude: rows never returned, per query: [Q, E] ints (-1 = unused slot) or a list of Q lists.
        restrict: search only rows [0, restrict) (gensim's restrict_vocab).
        Returns (scores, indices): [Q, k'] float32 and int64 on the index's device ([k'] for a 1-D query),
        best first (equal scores: lower row first on the op engines); a query left with fewer than k'
        candidates after its exclusions ends in index -1 and score -inf (+inf for "l2").
        Memory: O(Q·(k' + E)) plus the engine's tiles; the [Q, V] score matrix is never formed.
        """
        q = _as_tensor(queries, "queries")
        single = q.dim() == 1
        q = q[None] if single else q
        _checks.ndim(q, 2, "queries", "[Q, D]")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries must have {self.dim} columns (the index dimension), got {q.shape[1]}")
        k = _positive_int(k, "k")
        q = q.detach().to(self.device, torch.float32).contiguous()
        if not _checks.all_finite(q):
            raise ValueError("queries contains NaN or Inf (or values beyond float32's range)")
        if self.metric == "cosine":
            q = _unit(q)
        rows = self._rows(restrict, "restrict")
        k = min(k, rows)
        excl = self._exclusions(exclude, q.shape[0])
        want = min(k + excl.shape[1], rows)
        if self._faiss is not None and (rows == len(self) or self._faiss.supports_restrict()):
            scores, ids = self._faiss.search(q, want, rows)
        else:
            int8, bf16 = self._tables(q.shape[0], rows)
            with self._forcing():
                scores, ids = _topk.topk_search(q, self._searched()[:rows], want, self.metric == "l2",
                                                self.sqnorms()[:rows], int8, bf16)
        scores, ids = self._drop(scores, ids, excl, k)
        return (scores[0], ids[0]) if single else (scores, ids)

    def _exclusions(self, exclude, n: int) -> torch.Tensor:
        if exclude is None:
            return torch.empty((n, 0), dtype=torch.int64, device=self.device)
        if isinstance(exclude, (torch.Tensor, np.ndarray)):
            e = torch.as_tensor(exclude)
            _checks.integer(e, "exclude")
        else:
            rows = [list(r) for r in exclude]
            width = max((len(r) for r in rows), default=0)
            e = torch.tensor([r + [-1] * (width - len(r)) for r in rows], dtype=torch.int64).reshape(len(rows), width)
        if e.dim() != 2 or e.shape[0] != n:
            raise ValueError(f"exclude must have one row per query ([{n}, E]), got shape {tuple(e.shape)}")
        if e.shape[1] > len(self):
            raise ValueError(f"exclude has {e.shape[1]} columns, more than the {len(self)} rows of the index")
        return e.to(self.device, torch.int64)

    def _drop(self, scores, ids, excl, k):
        """Remove excluded rows (keeping order), then keep k columns, padding with (-1, -inf/+inf)."""
        fill = float("inf") if self.metric == "l2" else float("-inf")
        if excl.shape[1]:
            # membership through one sorted search per row: O(Q·(k+E)·log E) time and memory, not Q·k·E
            sorted_excl = excl.sort(dim=1).values
            pos = torch.searchsorted(sorted_excl, ids).clamp_max(excl.shape[1] - 1)
            bad = (sorted_excl.gather(1, pos) == ids) | (ids < 0)
            order = torch.argsort(bad.to(torch.int8), dim=1, stable=True)
            scores, ids, bad = scores.gather(1, order), ids.gather(1, order), bad.gather(1, order)
            ids = ids.masked_fill(bad, -1)
            scores = scores.masked_fill(bad, fill)
        if ids.shape[1] < k:
            pad = k - ids.shape[1]
            ids = torch.cat([ids, ids.new_full((ids.shape[0], pad), -1)], 1)
            scores = torch.cat([scores, scores.new_full((scores.shape[0], pad), fill)], 1)
        return scores[:, :k].contiguous(), ids[:, :k].contiguous()

    def most_similar(self, positive=None, negative=None, k: int = 10, exclude=None,
                     restrict_vocab: int | None = None) -> list[tuple]:
        """gensim's ``KeyedVectors.most_similar``: the k rows closest to the weighted mean of the unit
        vectors of ``positive`` (weight +1) and ``negative`` (weight -1), never one of the query keys.

        Items are keys (or ints), raw vectors (used as given, not normalized, as gensim does) or
        (item, weight) pairs; a single key or vector may be passed without a list. ``exclude``: more keys to
        skip. Returns [(key, score)] (ints instead of keys when the index has none). The mean is normalized;
        ranking uses the index's metric (exactly gensim's cosine ranking for metric="cosine").
        """
        terms = [(t, 1.0) for t in _as_list(positive)] + [(t, -1.0) for t in _as_list(negative)]
        if not terms:
            raise ValueError("most_similar needs at least one positive or negative item")
        mean = torch.zeros(self.dim, dtype=torch.float32, device=self.device)
        total, used = 0.0, []
        for item, weight in terms:
            if isinstance(item, tuple):
                item, weight = item
            if isinstance(item, (torch.Tensor, np.ndarray)):
                vec = (item.detach() if isinstance(item, torch.Tensor) else torch.from_numpy(np.array(item)))
                vec = vec.to(self.device, torch.float32)
                if vec.shape != (self.dim,):
                    raise ValueError(f"a vector item must have shape [{self.dim}], got {tuple(vec.shape)}")
            else:
                row = self.index_of(item)
                used.append(row)
                vec = self.unit_vectors()[row]
            mean += float(weight) * vec
            total += abs(float(weight))
        mean = _unit(mean / total) if total > 0 else mean
        skip = used + [self.index_of(x) for x in _as_list(exclude)]
        scores, ids = self.search(mean, k, exclude=[skip], restrict=restrict_vocab)
        names = self.keys_of(ids)
        return [(name, float(s)) for name, s, i in zip(names, scores.tolist(), ids.tolist()) if i >= 0]

    def analogy(self, a, b, c, method: str = "3cosadd", k: int = 1, *, restrict_vocab: int | None = None):
        """Answers to "a is to b as c is to ?" for Q questions at once.

        a, b, c: Q keys each (or int tensors [Q]); method "3cosadd" (gensim most_similar(positive=[b, c],
        negative=[a])) or "3cosmul" (gensim most_similar_cosmul); candidates are rows [0, restrict_vocab),
        never a, b or c of the same question. Cosines are used whatever the index metric.
        Returns (scores [Q, k'] float32, indices [Q, k'] int64) on the index's device, k' = min(k, rows);
        a question with fewer than k' candidates (its own words excluded) ends in (-inf, -1).
        Memory: O(Q·k) plus one [W, C] cosine tile (W distinct question words; see ops/analogy_topk.py).
        """
        if method not in _analogy.METHODS:
            raise ValueError(f"method must be one of {tuple(_analogy.METHODS)}, got {method!r}")
        k = _positive_int(k, "k")
        ids = [self._ids(x, name) for x, name in ((a, "a"), (b, "b"), (c, "c"))]
        if not ids[0].shape == ids[1].shape == ids[2].shape:
            raise ValueError(f"a, b and c must have the same length, got {[len(t) for t in ids]}")
        words = torch.stack(ids, 1)
        rows = self._rows(restrict_vocab, "restrict_vocab")
        if words.numel() and int(words.max()) >= rows:
            raise ValueError(f"question words must lie in the first restrict_vocab={rows} rows")
        k = min(k, rows)
        if words.shape[0] == 0:
            empty = torch.empty((0, k), device=self.device)
            return empty, empty.long()
        with self._forcing():
            return _analogy.analogy_topk(self.unit_vectors()[:rows], words, k, method, self.sqnorms("unit")[:rows])

    def _ids(self, items, name: str) -> torch.Tensor:
        if isinstance(items, (torch.Tensor, np.ndarray)):
            t = torch.as_tensor(items)
            _checks.integer(t, name)
            t = t.reshape(-1).to(self.device, torch.int64)
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= len(self)):
                raise ValueError(f"{name} has rows outside [0, {len(self)})")
            return t
        return torch.tensor([self.index_of(x) for x in items], dtype=torch.int64, device=self.device)


def deprecated_impl(backend: str, caller: str, stacklevel: int = 3) -> str | None:
    """The op implementation that a deprecated ``backend="triton"|"native"|"torch"`` names (None for "auto"
    and "faiss", which are engines, not op implementations), with a DeprecationWarning pointing at the
    caller's caller (``stacklevel``). Callers apply it with ``_backend.forcing``: one dispatcher decides."""
    if backend not in _backend.BACKENDS:
        return None
    warnings.warn(f"{caller}(backend={backend!r}) is deprecated and will be removed in the next release: set "
                  f"FASTREPR_BACKEND={backend} instead (backend='auto' and 'faiss' stay)", DeprecationWarning,
                  stacklevel=stacklevel)
    return backend


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _as_list(value) -> list:
    """gensim's convention: a single key or vector may stand for a one-item list."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, Integral)) or (isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 1):
        return [value]
    return list(value)
