"""FAISS behind ``EmbeddingIndex``: lazy import, which index to build, and searching it.

Which index (``plan``):
  * exact search: ``IndexFlatIP`` / ``IndexFlatL2`` on the CPU; ``GpuIndexFlatIP`` / ``GpuIndexFlatL2`` on the
    vectors' GPU when faiss has GPU support (faiss-gpu) and the vectors are CUDA tensors;
  * sharded: ``gpus=[0, 1, ...]`` spreads the rows over several GPUs (``index_cpu_to_gpu_multiple_py`` with
    ``shard=True``), ``shards=n`` over n CPU sub-indexes (``IndexShards``, searched in parallel);
  * approximate, when asked: ``IndexIVFFlat`` (nlist clusters, nprobe probed; on the GPU too) or
    ``IndexHNSWFlat`` (CPU only; GPU vectors are searched from a host copy).
Data reach faiss as float32 numpy arrays (one host copy at build time for GPU vectors; queries travel per
call). The faiss module is a parameter so that tests can check the GPU logic with a stand-in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

_HINT = ("pip install faiss-cpu (or faiss-gpu for GPU indexes), or keep backend='auto' (the exact topk_search op; "
         "FASTREPR_BACKEND=torch|native|triton forces one of its implementations)")


def load():
    """The faiss module; RuntimeError with install instructions when it is missing."""
    try:
        import faiss
    except Exception as exc:  # ImportError, or a broken install
        raise RuntimeError(f"faiss is not importable ({type(exc).__name__}: {exc}); {_HINT}") from None
    return faiss


def available() -> bool:
    try:
        load()
        return True
    except RuntimeError:
        return False


def has_gpu(faiss) -> bool:
    """faiss built with GPU support and seeing at least one GPU."""
    return hasattr(faiss, "StandardGpuResources") and getattr(faiss, "get_num_gpus", lambda: 0)() > 0


@dataclass(frozen=True)
class Plan:
    where: str  # "cpu" | "gpu" | "gpus" (sharded over several GPUs)
    kind: str  # "flat" | "ivf" | "hnsw"
    shards: int  # CPU sub-indexes (1 = none)
    device: int  # GPU ordinal for where == "gpu"
    gpus: tuple[int, ...]  # GPU ordinals for where == "gpus"


# Upper bounds of the index parameters: far above any useful value, low enough that FAISS never allocates
# absurd graphs or lists from a typo. FAISS asserts (aborting the process) on some out-of-range values,
# e.g. an HNSW with M = 0, so every parameter is checked here first.
MAX_HNSW_M = 512
MAX_EF_SEARCH = 1 << 20
MAX_GPU_K = 2048  # faiss-gpu's largest k (and nprobe)


def _int_in(value, name: str, lo: int, hi: int, allow_none: bool = False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        span = f"an int in [{lo}, {hi}]" + (" or None" if allow_none else "")
        raise ValueError(f"{name} must be {span}, got {value!r}")
    return int(value)


def default_nlist(rows: int) -> int:
    """IVF clusters when nlist is not given: 4·sqrt(rows), at least 1 and at most rows."""
    return max(1, min(rows, int(4 * math.sqrt(rows))))


def check_params(rows: int, approximate: str | None, nlist, nprobe, hnsw_m, ef_search, shards, gpus) -> tuple:
    """Validate the index parameters against the data (ValueError naming the parameter); returns gpus as a
    tuple. Called before FAISS sees any of them."""
    if approximate not in (None, "ivf", "hnsw"):
        raise ValueError(f"approximate must be None, 'ivf' or 'hnsw', got {approximate!r}")
    nlist = _int_in(nlist, "nlist", 1, rows, allow_none=True)
    _int_in(nprobe, "nprobe", 1, nlist or default_nlist(rows), allow_none=True)
    _int_in(hnsw_m, "hnsw_m", 2, MAX_HNSW_M)
    _int_in(ef_search, "ef_search", 1, MAX_EF_SEARCH, allow_none=True)
    _int_in(shards, "shards", 1, rows)
    if gpus is None:
        return ()
    if isinstance(gpus, (str, bytes)) or not hasattr(gpus, "__iter__"):
        raise ValueError(f"gpus must be a sequence of GPU ordinals, got {gpus!r}")
    out = tuple(_int_in(g, "gpus[i]", 0, 1 << 16) for g in gpus)
    if not out or len(set(out)) != len(out):
        raise ValueError(f"gpus must list distinct GPU ordinals (at least one), got {list(gpus)!r}")
    return out


def plan(faiss, device: torch.device, approximate: str | None, shards: int, gpus) -> Plan:
    """Decide where and how to index (see the module docstring)."""
    kind = approximate or "flat"
    if kind not in ("flat", "ivf", "hnsw"):
        raise ValueError(f"approximate must be None, 'ivf' or 'hnsw', got {approximate!r}")
    if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
        raise ValueError(f"shards must be an int >= 1, got {shards!r}")
    gpus = tuple(gpus) if gpus is not None else ()
    gpu_ok = has_gpu(faiss)
    if gpu_ok and any(g >= faiss.get_num_gpus() for g in gpus):
        raise ValueError(f"gpus={list(gpus)}: faiss sees {faiss.get_num_gpus()} GPU(s)")
    if len(gpus) > 1:
        if not gpu_ok:
            raise RuntimeError(f"gpus={list(gpus)} needs faiss with GPU support (faiss-gpu); {_HINT}")
        if kind == "hnsw":
            raise ValueError("faiss has no GPU HNSW index; use approximate='ivf' or None with gpus=")
        return Plan("gpus", kind, 1, -1, gpus)
    if device.type == "cuda" and gpu_ok and kind != "hnsw" and shards == 1:
        return Plan("gpu", kind, 1, gpus[0] if gpus else (device.index or 0), ())
    return Plan("cpu", kind, shards, -1, ())


def _metric(faiss, metric: str):
    return faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT


def _cpu_index(faiss, x: np.ndarray, metric: str, kind: str, nlist: int | None, hnsw_m: int, keep: list):
    d = x.shape[1]
    if kind == "flat":
        index = faiss.IndexFlatL2(d) if metric == "l2" else faiss.IndexFlatIP(d)
    elif kind == "ivf":
        nlist = min(nlist or default_nlist(x.shape[0]), x.shape[0])  # a shard may hold fewer rows
        quantizer = faiss.IndexFlatL2(d) if metric == "l2" else faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, _metric(faiss, metric))
        keep.append(quantizer)  # faiss does not own it: it must outlive the index
        index.train(x)
    else:
        index = faiss.IndexHNSWFlat(d, hnsw_m, _metric(faiss, metric))
    index.add(x)
    return index


class FaissSearcher:
    """A built faiss index over rows x [V, D] (float32), searched with ``search``.

    Memory: faiss keeps its own copy of the rows (per shard or GPU), plus IVF lists / HNSW graph.
    """

    def __init__(self, vectors: torch.Tensor, metric: str, approximate: str | None = None, *,
                 nlist: int | None = None, nprobe: int | None = None, hnsw_m: int = 32,
                 ef_search: int | None = None, shards: int = 1, gpus=None, faiss=None):
        self.faiss = faiss = faiss or load()
        gpus = check_params(vectors.shape[0], approximate, nlist, nprobe, hnsw_m, ef_search, shards, gpus) or None
        self.metric = metric
        self.plan = plan(faiss, vectors.device, approximate, shards, gpus)
        x = np.ascontiguousarray(vectors.detach().to("cpu", torch.float32).numpy())
        self.rows = x.shape[0]
        self._keep = []  # Python objects faiss does not own (resources, sub-indexes)
        p = self.plan
        if p.where == "cpu" and p.shards > 1:
            index = faiss.IndexShards(x.shape[1], True, True)  # threaded, successive ids
            for part in np.array_split(x, p.shards):
                sub = _cpu_index(faiss, np.ascontiguousarray(part), metric, p.kind, nlist, hnsw_m, self._keep)
                self._keep.append(sub)
                index.add_shard(sub)
        elif p.where == "gpu" and p.kind == "flat":
            res = faiss.StandardGpuResources()
            cfg = faiss.GpuIndexFlatConfig()
            cfg.device = p.device
            index = (faiss.GpuIndexFlatL2 if metric == "l2" else faiss.GpuIndexFlatIP)(res, x.shape[1], cfg)
            index.add(x)
            self._keep.append(res)
        else:
            index = _cpu_index(faiss, x, metric, p.kind, nlist, hnsw_m, self._keep)
            if p.where == "gpu":
                res = faiss.StandardGpuResources()
                self._keep += [res, index]
                index = faiss.index_cpu_to_gpu(res, p.device, index)
            elif p.where == "gpus":
                co = faiss.GpuMultipleClonerOptions()
                co.shard = True
                resources = [faiss.StandardGpuResources() for _ in p.gpus]
                self._keep += resources + [index]
                index = faiss.index_cpu_to_gpu_multiple_py(resources, index, co, list(p.gpus))
        self.index = index
        self.nprobe, self.ef_search = nprobe, ef_search
        if p.kind == "ivf" and nprobe is not None:
            faiss.ParameterSpace().set_index_parameter(index, "nprobe", nprobe)
        if p.kind == "hnsw" and ef_search is not None:
            faiss.ParameterSpace().set_index_parameter(index, "efSearch", ef_search)

    def supports_restrict(self) -> bool:
        """Whether ``search(..., restrict=R)`` can filter inside faiss (CPU, unsharded indexes)."""
        return self.plan.where == "cpu" and self.plan.shards == 1

    def search(self, queries: torch.Tensor, k: int, restrict: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """queries [Q, D] -> (scores [Q, k], ids [Q, k] int64) on the queries' device; missing results are
        id -1 with score -inf (inner product) or +inf (L2)."""
        faiss = self.faiss
        limit = min(self.rows, restrict or self.rows)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= limit:
            raise ValueError(f"k must be an int in [1, {limit}] (the rows searched), got {k!r}")
        if self.plan.where != "cpu" and k > MAX_GPU_K:
            raise ValueError(f"k must be at most {MAX_GPU_K} on a faiss-gpu index, got {k}")
        q = np.ascontiguousarray(queries.detach().to("cpu", torch.float32).numpy())
        params = None
        if restrict is not None and restrict < self.rows:
            if not self.supports_restrict():
                raise RuntimeError("restrict needs a CPU, unsharded faiss index")
            sel = faiss.IDSelectorRange(0, restrict)
            if self.plan.kind == "ivf":
                params = faiss.SearchParametersIVF(sel=sel, nprobe=self.index.nprobe)
            elif self.plan.kind == "hnsw":
                params = faiss.SearchParametersHNSW(sel=sel, efSearch=self.index.hnsw.efSearch)
            else:
                params = faiss.SearchParameters(sel=sel)
        dist, ids = self.index.search(q, k) if params is None else self.index.search(q, k, params=params)
        ids = torch.from_numpy(np.asarray(ids, dtype=np.int64))
        fill = float("inf") if self.metric == "l2" else float("-inf")
        scores = torch.from_numpy(np.asarray(dist, dtype=np.float32)).masked_fill(ids < 0, fill)
        return scores.to(queries.device), ids.to(queries.device)
