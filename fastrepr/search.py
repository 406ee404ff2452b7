"""``EmbeddingIndex``: exact (or, when asked, approximate) nearest neighbours, gensim's ``most_similar``, and
batched word analogies over a [V, D] embedding table.

Engines. ``search`` runs on FAISS (``fastrepr._faiss``: flat CPU index; faiss-gpu's flat index for CUDA
vectors when faiss-gpu is installed; CPU or multi-GPU shards; IVF or HNSW when ``approximate=`` is given) or
on the ``topk_search`` op (fused Triton kernel for CUDA tensors without faiss-gpu, a GEMM + C++ top-k merge
on CPU, or the plain-PyTorch reference). ``analogy`` always runs on the ``analogy_topk`` op, which computes
the cosines once per distinct question word (FAISS would need one full query per question, and cannot
express 3CosMul). ``backend="auto"`` picks: faiss-gpu for CUDA vectors when it is installed; the op for other
CUDA vectors (Triton) and for CPU vectors when the native extension is built (measured 3-6x faster than
faiss-cpu's flat index on a 2-core Xeon, see benchmarks/RESULTS.md); faiss-cpu otherwise. Approximate
(IVF/HNSW) and sharded indexes are FAISS's. FASTREPR_BACKEND, when set, routes everything through the op.

Scores: metric "cosine" and "ip" return similarities (descending); "l2" returns squared distances
(ascending). Equal scores rank the lower row first on the op backends (FAISS orders ties its own way).
"""
from __future__ import annotations

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
        backend: "auto", "faiss", or an op backend "triton" | "native" | "torch" (see the module docstring).
        approximate: None (exact), "ivf" (``nlist`` clusters, ``nprobe`` searched) or "hnsw" (``hnsw_m``
            links, ``ef_search``); FAISS only.
        shards: split the FAISS index over this many CPU sub-indexes, searched in parallel.
        gpus: GPU ordinals to shard a faiss-gpu index over.

    Memory: the float32 table, a unit-row copy for "cosine" (or lazily, for the first ``analogy`` on an
    "ip"/"l2" index), and FAISS's own copy when FAISS is used.
    """

    def __init__(self, vectors, keys: Sequence[Hashable] | None = None, metric: str = "cosine",
                 backend: str = "auto", *, approximate: str | None = None, nlist: int | None = None,
                 nprobe: int | None = None, hnsw_m: int = 32, ef_search: int | None = None, shards: int = 1,
                 gpus: Sequence[int] | None = None):
        v = _as_tensor(vectors, "vectors")
        _checks.ndim(v, 2, "vectors", "[V, D]")
        _checks.nonempty(v, "vectors", "[V, D]")
        if not bool(torch.isfinite(v).all()):
            raise ValueError("vectors contains NaN or Inf")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if backend not in ENGINES:
            raise ValueError(f"backend must be one of {ENGINES}, got {backend!r}")
        self.vectors = v.detach().to(torch.float32).contiguous()
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
            # On a CPU the native op (one MKL GEMM per tile + the C++ merge) measured 3-6x faster than
            # faiss-cpu's flat index (benchmarks/RESULTS.md); FAISS serves when the extension is missing.
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

    def _op_backend(self) -> str:
        return self.engine if self.engine in ("triton", "native", "torch") else ""

    def _rows(self, restrict: int | None, name: str) -> int:
        if restrict is None:
            return len(self)
        if not isinstance(restrict, Integral) or restrict < 1:
            raise ValueError(f"{name} must be a positive int or None, got {restrict!r}")
        return min(int(restrict), len(self))

    # ---------------------------------------------------------------------------------------------------
    # queries

    def search(self, queries, k: int = 10, *, exclude=None, restrict: int | None = None):
        """The k best rows for each query.

        queries: [Q, D] or [D] (torch or numpy, any float dtype; normalized for "cosine").
        exclude: rows never returned, per query: [Q, E] ints (-1 = unused slot) or a list of Q lists.
        restrict: search only rows [0, restrict) (gensim's restrict_vocab).
        Returns (scores, indices): [Q, k] float32 and int64 on the index's device ([k] for a 1-D query);
        fewer than k candidates leave index -1 and score -inf (+inf for "l2").
        Memory: O(Q·k) plus the engine's tiles; the [Q, V] score matrix is never formed.
        """
        q = _as_tensor(queries, "queries")
        single = q.dim() == 1
        q = q[None] if single else q
        _checks.ndim(q, 2, "queries", "[Q, D]")
        if q.shape[1] != self.dim:
            raise ValueError(f"queries must have {self.dim} columns (the index dimension), got {q.shape[1]}")
        if not isinstance(k, Integral) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = q.detach().to(self.device, torch.float32).contiguous()
        if self.metric == "cosine":
            q = _unit(q)
        rows = self._rows(restrict, "restrict")
        excl = self._exclusions(exclude, q.shape[0])
        want = min(int(k) + excl.shape[1], rows)
        if self._faiss is not None and (rows == len(self) or self._faiss.supports_restrict()):
            scores, ids = self._faiss.search(q, want, rows)
        else:
            scores, ids = _topk.topk_search(q, self._searched()[:rows], want, self.metric == "l2", self._op_backend())
        scores, ids = self._drop(scores, ids, excl, int(k))
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
        return e.to(self.device, torch.int64)

    def _drop(self, scores, ids, excl, k):
        """Remove excluded rows (keeping order), then keep k columns, padding with (-1, -inf/+inf)."""
        fill = float("inf") if self.metric == "l2" else float("-inf")
        if excl.shape[1]:
            bad = (ids[:, :, None] == excl[:, None, :]).any(-1) | (ids < 0)
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
        Returns (scores [Q, k] float32, indices [Q, k] int64) on the index's device.
        Memory: O(Q·k) plus one [W, C] cosine tile (W distinct question words; see ops/analogy_topk.py).
        """
        if method not in _analogy.METHODS:
            raise ValueError(f"method must be one of {tuple(_analogy.METHODS)}, got {method!r}")
        if not isinstance(k, Integral) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        ids = [self._ids(x, name) for x, name in ((a, "a"), (b, "b"), (c, "c"))]
        if not ids[0].shape == ids[1].shape == ids[2].shape:
            raise ValueError(f"a, b and c must have the same length, got {[len(t) for t in ids]}")
        words = torch.stack(ids, 1)
        rows = self._rows(restrict_vocab, "restrict_vocab")
        if words.numel() and int(words.max()) >= rows:
            raise ValueError(f"question words must lie in the first restrict_vocab={rows} rows")
        if words.shape[0] == 0:
            empty = torch.empty((0, k), device=self.device)
            return empty, empty.long()
        return _analogy.analogy_topk(self.unit_vectors()[:rows], words, int(k), method, self._op_backend())

    def _ids(self, items, name: str) -> torch.Tensor:
        if isinstance(items, (torch.Tensor, np.ndarray)):
            t = torch.as_tensor(items)
            _checks.integer(t, name)
            t = t.reshape(-1).to(self.device, torch.int64)
            if t.numel() and (int(t.min()) < 0 or int(t.max()) >= len(self)):
                raise ValueError(f"{name} has rows outside [0, {len(self)})")
            return t
        return torch.tensor([self.index_of(x) for x in items], dtype=torch.int64, device=self.device)


def _as_list(value) -> list:
    """gensim's convention: a single key or vector may stand for a one-item list."""
    if value is None:
        return []
    if isinstance(value, (str, bytes, Integral)) or (isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 1):
        return [value]
    return list(value)
