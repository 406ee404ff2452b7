"""Which CPU path scans the candidates of an exact search, and how fast each one is on this machine.

Paths (every one is followed by the same float64 refinement, so all return identical results):
  * ``kernel``   the built-in C++ kernel (4 queries x 4 rows of dot products in vector registers, fused with
                 the top-k lists); no BLAS: the path for a few queries, which a BLAS spends packing;
  * ``mkl``      tiles from the MKL that torch ships (its ``sgemm_64_``), one single-threaded product per
                 core into an L2-sized tile, folded into the lists while hot;
  * ``openblas`` the same with numpy's OpenBLAS (scipy-openblas, ILP64);
  * ``faiss``    ``faiss.knn`` (FAISS's flat search: its own SIMD scan below 20 queries, its OpenBLAS above);
  * ``mkl-bf16`` MKL's bfloat16 product (AMX or AVX512-BF16 where the CPU has them) as a filter: rows and
                 queries rounded to bfloat16 (8 significant bits), products accumulated in float32, more
                 candidates kept (the refinement's bound comes from the copies' measured errors, about
                 0.003·|q|·|v| on typical rows, instead of D·2^-23·|q|·|v|), and questions the bound cannot
                 settle are re-scanned on the best float32 path.
  * ``mkl-bf16-table`` the same reading the rows' bf16 copies (and their measured errors) from a table the
                 caller keeps (``topk_search.bf16_table``; EmbeddingIndex keeps one, R·(D + 2)·2 bytes);
                 ``mkl-bf16`` makes that table in every search (a pass over the rows: 22 ms at 1e5 x 300
                 on the Xeon), shared by its pilot, its scan and its re-scans. Offered only to such callers.
  * ``int8``     the built-in int8 filter (x86 with AVX2; csrc/topk_int8.cpp): rows and queries copied to
                 8-bit integers with a scale per row and per query, products exact in int32 (vpmaddubsw +
                 vpmaddwd, about twice float32 FMA's rate where the CPU has no AVX-512 or AMX), the same
                 candidates and re-scans as the bf16 filter; the bound is computed from the copies' actual
                 errors (``topk_search._bound``). Written for AVX2 CPUs such as the Zen 3 of issue 11, where
                 float32 cannot run 2x faster than FAISS's flat search. Where the CPU has AVX-512 VNNI (Zen 4,
                 Intel since Cascade Lake) its micro kernel is one vpdpbusd per query and 64 bytes of rows
                 (``topk_int8_isa``: the same scores bit for bit, about 2.5x the AVX2 kernel's rate on Zen 4).
  * ``int8-table`` the same filter reading the rows' copies from a table the caller made once
                 (``topk_search.int8_table``; EmbeddingIndex keeps one, R·(D + 8) bytes): no copying per search,
                 and a quarter of the float32 rows' bytes to read, which is what a few-query search costs
                 (on the Zen 3, one query over 1e5 x 128 rows: 0.95 ms against 4.2 ms for MKL and 5.0 ms for
                 FAISS). Offered only to callers that pass a table.
Why several BLAS: their speed depends on the vendor. On the 2-core Xeon this was built on MKL ran 310
GFLOP/s on [1000, 300] x [300, 1e5] and numpy's OpenBLAS 270; on the 2-core AMD EPYC of issue 11, torch's
BLAS ran 137 GFLOP/s and the OpenBLAS inside FAISS was faster. So nothing is assumed: each available path is
timed once per machine on a synthetic search (R = 32768 rows, D in {128, 320}, Q in {1, 8, 64, 512}) and
the throughputs are cached in ``~/.cache/fastrepr/search-paths.json`` (``FASTREPR_CACHE_DIR`` moves it), keyed by
CPU model, thread count and library versions.

Rule (``choose``): the predicted time of a path is 2·Q·R·D / F(Q, D), F its measured throughput interpolated
in log Q and then in log D (held constant outside the measured range); the fastest path runs. Two dimensions
because the order of the paths moves with D: on the 2-core AMD EPYC (Zen 3) the MKL tiles beat OpenBLAS's at
D = 128 and 300 while one calibration at D = 256 had ranked FAISS, then OpenBLAS, above them from 512 queries
on (and FAISS's own scan loses most at small D, where its selection costs as much as its products). The paths are timed alternating, best
of 3 rounds, so that load from other processes hits them alike; still, a measurement taken on a busy machine
is only as good as that machine was, so one taken while the 1-minute load average exceeds the core count is
used by this process but not cached; cached ones are re-taken after 30 days, and ``calibrate()`` measures
again and overwrites the entry. Searches under 2^28 flops (a few
milliseconds) do not trigger the measurement: they use it when it is already taken (in this process or
cached), else the default rule: the first float32 BLAS found (MKL, then OpenBLAS; the kernel without one).
The measurement is at k = 10 only: a calibration at k = 10 and 100 on these R = 32768 rows (tried on the
AMD EPYC of issue 11) weighed selection 3x heavier than at V = 1e5 and sent k = 100, D = 300 searches to
FAISS's scan, 0.88-0.90x FAISS itself, where the int8 filter chosen at k = 10 ran 0.92-1.13x. ``FASTREPR_SEARCH_PATH=kernel|mkl|openblas|faiss`` forces a path;
``FASTREPR_SEARCH_CALIBRATE=0`` never measures (default rule only).
"""
from __future__ import annotations

import functools
import json
import math
import os
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path as _FsPath

import numpy as np
import torch

from .. import _native
from .._io import atomic_write

NAMES = ("kernel", "mkl", "openblas", "faiss", "mkl-bf16", "mkl-bf16-table", "int8", "int8-table")
CAL_ROWS, CAL_DIMS, CAL_QUERIES = 32768, (128, 320), (1, 8, 64, 512)
SMALL_FLOPS = 2 ** 28
INT8_MAX_D = 65536  # the int8 filter's int32 sums hold 127·127·D below 2^31 (csrc/topk_int8.cpp)
# Tiles (queries x rows). A [512, 512] float32 tile is 1 MB, which leaves room in a 2 MB L2 for the BLAS's
# packed panels. Measured single-threaded (CPU time) on the 2-core Xeon (Sapphire Rapids class, 2 MB L2 per
# core), [2048 x 300] queries against 1e5 rows, GFLOP/s: MKL 122-126 for every tile from 256x512 to 1024x1024
# (the plain GEMM: 135-150), OpenBLAS 100-111 (best 1024x512), MKL bf16 355-360 at 256x512 / 512x256 and
# 290-320 with larger tiles. The kernel's [64, 128] tile and 128 rows (128 KB at D = 256) stay near L1/L2.
# The int8 filter: 96 queries (16 micro-kernels of 6) x 256 rows, whose panels (256 x D bytes, 77 KB at
# D = 300) stay in L2 while each micro-kernel streams its 16-row panel from them: 80-85 GMAC/s on one Zen 3
# core at D = 128 and 300 (float32 sgemm: about 37).
BLOCKS = {"kernel": (64, 128), "mkl": (512, 512), "openblas": (1024, 512), "mkl-bf16": (512, 256), "int8": (96, 256),
          "int8-table": (96, 256), "mkl-bf16-table": (512, 256)}


@dataclass(frozen=True)
class Path:
    name: str  # one of NAMES
    handle: int  # topk_scan's blas handle (0: built-in kernel; -1: faiss)
    block_q: int
    block_v: int
    library: str  # what computes the products, e.g. "MKL 2024.2 (torch)"
    bf16: bool = False  # products of bfloat16-rounded inputs (topk_scan's filter_stats: a bound from their errors)
    int8: bool = False  # products of int8 copies (topk_scan's filter_stats; a bound from the copies' errors)
    table: bool = False  # reads the rows' copies from a table the caller keeps (its int8_rows / bf16_rows)

    @property
    def filter(self) -> bool:
        """Reduced-precision products: more candidates, and re-scans on a float32 path."""
        return self.bf16 or self.int8


_lock = threading.Lock()
_paths: dict[str, Path] | None = None
_skipped: dict[str, str] = {}
_table: dict | None = None
_calibrating = False


def _mkl_version() -> str:
    line = next((s for s in torch.__config__.show().splitlines() if "Math Kernel Library" in s), "")
    words = line.split()
    version = next((w for w in words if w[:1].isdigit()), "")
    return f"MKL {version.split('-')[0]}".strip()


def _discover() -> dict[str, Path]:
    """The paths usable in this process (BLAS symbols resolved once; see module docstring)."""
    paths: dict[str, Path] = {}
    ok, why = _native.available()
    if not ok:
        _skipped["native"] = why
        return paths
    C = _native.get()
    paths["kernel"] = Path("kernel", 0, *BLOCKS["kernel"], f"built-in kernel ({C.topk_isa()})")
    if torch.backends.mkl.is_available():
        lib = _FsPath(torch.__file__).parent / "lib" / "libtorch_cpu.so"
        handle, why = C.topk_blas_register(str(lib))
        if handle:
            paths["mkl"] = Path("mkl", handle, *BLOCKS["mkl"], f"{_mkl_version()} (torch)")
        else:
            _skipped["mkl"] = why
        handle, why = C.topk_blas_register(str(lib), True)
        if handle:
            paths["mkl-bf16"] = Path("mkl-bf16", handle, *BLOCKS["mkl-bf16"], f"{_mkl_version()} bf16 (torch)", True)
            paths["mkl-bf16-table"] = Path("mkl-bf16-table", handle, *BLOCKS["mkl-bf16-table"],
                                           f"{_mkl_version()} bf16 (torch) on the index's bf16 table", True,
                                           table=True)
        else:
            _skipped["mkl-bf16"] = _skipped["mkl-bf16-table"] = why
    else:
        _skipped["mkl"] = "torch is not built with MKL"
    if C.topk_int8_supported():
        isa = C.topk_int8_isa().upper().replace("-VNNI", " VNNI")
        paths["int8"] = Path("int8", 0, *BLOCKS["int8"], f"built-in int8 filter ({isa})", int8=True)
        paths["int8-table"] = Path("int8-table", 0, *BLOCKS["int8-table"],
                                   f"built-in int8 filter ({isa}) on the index's int8 table", int8=True, table=True)
    else:
        _skipped["int8"] = _skipped["int8-table"] = "the int8 filter needs an x86 CPU with AVX2"
    try:
        from threadpoolctl import ThreadpoolController

        libs = [x for x in ThreadpoolController().info()
                if x.get("internal_api") == "openblas" and f"{os.sep}numpy" in x.get("filepath", "")]
    except Exception as exc:  # threadpoolctl missing or broken: the path is simply not offered
        libs, _skipped["openblas"] = [], f"threadpoolctl: {exc}"
    if libs:
        handle, why = C.topk_blas_register(libs[0]["filepath"])
        if handle:
            desc = f"OpenBLAS {libs[0].get('version', '')} {libs[0].get('architecture', '')} (numpy)"
            paths["openblas"] = Path("openblas", handle, *BLOCKS["openblas"], " ".join(desc.split()))
        else:
            _skipped["openblas"] = why
    elif "openblas" not in _skipped:
        _skipped["openblas"] = "numpy does not use a loaded OpenBLAS"
    from .. import _faiss

    if _faiss.available():
        faiss = _faiss.load()
        if hasattr(faiss, "knn"):
            paths["faiss"] = Path("faiss", -1, 0, 0, f"faiss {faiss.__version__} knn (its OpenBLAS)")
    else:
        _skipped["faiss"] = "faiss is not importable"
    return paths


def available() -> dict[str, Path]:
    global _paths
    with _lock:
        if _paths is None:
            _paths = _discover()
        return _paths


def sgemm_handle() -> int:
    """The float32 sgemm that native kernels call per tile (queue_lse, silhouette): MKL from torch, else
    numpy's OpenBLAS, as registered for search; 0 (their built-in loops) when neither is loaded."""
    paths = available()
    path = paths.get("mkl") or paths.get("openblas")
    return path.handle if path is not None else 0


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """'vendor model' of this CPU (from /proc/cpuinfo on Linux; read once: every search's path choice asks)."""
    vendor, model = "", platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "vendor_id" and not vendor:
                    vendor = value.strip()
                elif key.strip() == "model name":
                    model = value.strip()
                    break
    except OSError:
        pass
    return f"{vendor} {model}".strip()


# Bumped whenever a path's own speed changes (a measurement of older code must not choose for newer code).
# 3: the bf16 filter's bound from its copies' measured errors, its rows in one bf16 table (mkl-bf16-table).
# 4: the int8 filter's AVX-512 VNNI micro kernel.
SCAN_REVISION = 4


def _key(threads: int) -> str:
    versions = f"scan rev {SCAN_REVISION}, torch {torch.__version__}, numpy {np.__version__}"
    try:
        import faiss as _f

        versions += f", faiss {_f.__version__}"
    except Exception:
        pass
    return f"{cpu_model()} | {threads} threads | {versions} | dims {','.join(map(str, CAL_DIMS))}"


def cache_file() -> _FsPath:
    root = os.environ.get("FASTREPR_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "fastrepr")
    return _FsPath(root) / "search-paths.json"


def _load_cache() -> dict:
    try:
        data = json.loads(cache_file().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(data: dict) -> None:
    """Atomic (fastrepr._io.atomic_write): a crash leaves the old file."""
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=True)
    except OSError:
        pass  # a read-only home only costs a re-measurement next time


def best_times(fns: dict, reps: int = 3, clock=time.perf_counter) -> dict:
    """Best time (``clock``: wall by default) of each function over reps rounds, the functions alternating
    within each round (so a burst of load from elsewhere hits every path alike rather than one of them)."""
    for fn in fns.values():
        fn()  # warm-up: thread pools, first-touch pages
    best = {name: math.inf for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = clock()
            fn()
            best[name] = min(best[name], clock() - t0)
    return best


MAX_AGE_S = 30 * 86400  # cached measurements older than this are taken again


def _busy() -> bool:
    """Whether other work keeps this machine's cores busy (1-minute load average above the core count)."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1)
    except OSError:
        return False


_searcher = None  # ops/topk_search.exact_search, registered by that module (this one never imports it)
_int8_table = _bf16_table = None  # ops/topk_search.int8_table and bf16_table, the same way


def register_searcher(fn, int8_table, bf16_table) -> None:
    """The exact search the calibration times and the table makers it gives the ``int8-table`` and
    ``mkl-bf16-table`` paths (``topk_search`` registers its own on import)."""
    global _searcher, _int8_table, _bf16_table
    _searcher, _int8_table, _bf16_table = fn, int8_table, bf16_table


def calibrate(threads: int | None = None, save: bool = True) -> dict:
    """Measure every available path (effective GFLOP/s of a whole k=10 exact search, scan and refinement, at
    each calibration query count and dimension) and cache the table."""
    if _searcher is None:
        from importlib import import_module

        import_module(__package__ + ".topk_search")  # registers it (by name: no import edge back)
    exact_search = _searcher

    global _calibrating
    threads = threads or torch.get_num_threads()
    g = torch.Generator().manual_seed(0)
    table = {name: [] for name in available()}
    busy_before = _busy()
    _calibrating = True  # re-scans inside the measured searches take the default rule
    try:
        for D in CAL_DIMS:
            v = torch.randn(CAL_ROWS, D, generator=g)
            q_all = torch.randn(max(CAL_QUERIES), D, generator=g)
            vsq = v.square().sum(1)
            rows8 = _int8_table(v, threads) if "int8-table" in table else None
            rows16 = _bf16_table(v, threads) if "mkl-bf16-table" in table else None
            rates = {name: [] for name in table}
            for Q in CAL_QUERIES:
                q = q_all[:Q]
                fns = {name: (lambda p=path: exact_search(q, v, 10, False, vsq, threads=threads, path=p,
                                                          int8_rows=rows8 if p.table else None,
                                                          bf16_rows=rows16 if p.table else None))
                       for name, path in available().items()}
                for name, t in best_times(fns).items():
                    rates[name].append(2.0 * Q * CAL_ROWS * D / t / 1e9)
            for name in table:
                table[name].append(rates[name])
    finally:
        _calibrating = False
    busy = busy_before or _busy()
    entry = {"queries": list(CAL_QUERIES), "dims": list(CAL_DIMS), "gflops": table, "rows": CAL_ROWS,
             "measured": time.strftime("%Y-%m-%d %H:%M:%S"), "time": time.time(), "busy": busy}
    if save and not busy:  # a busy machine's numbers serve this process only
        data = _load_cache()
        data[_key(threads)] = entry
        _save_cache(data)
    return entry


def _calibration(threads: int, measure: bool = True) -> dict | None:
    """The measurements for this machine and thread count: in memory, else cached, else (measure) taken now."""
    global _table
    if os.environ.get("FASTREPR_SEARCH_CALIBRATE", "1").strip() == "0":
        return None
    key = _key(threads)
    offered = set(available())  # (outside the lock, which available() takes)

    def complete(e) -> bool:  # measured after every path offered now existed (a cache from an earlier
        return not offered - set(e["gflops"])  # release would never let a new path run: its rate reads 0)

    with _lock:
        if _table is not None and _table.get("key") == key:
            entry = _table["entry"]  # (None: looked for, not cached; a small search does not look again)
            if not measure or (entry is not None and complete(entry)):
                return entry
    entry = _load_cache().get(key)
    if not (isinstance(entry, dict) and isinstance(entry.get("gflops"), dict)
            and time.time() - float(entry.get("time", 0)) < MAX_AGE_S and (complete(entry) or not measure)):
        if not measure:
            with _lock:
                _table = {"key": key, "entry": None}
            return None
        entry = calibrate(threads)
    with _lock:
        _table = {"key": key, "entry": entry}
    return entry


def _interp(xs: list, ys: list, x: float) -> float:
    """ys at x, linear between the points (xs increasing), held constant outside them."""
    if x <= xs[0]:
        return float(ys[0])
    for (x0, y0), (x1, y1) in zip(zip(xs, ys), zip(xs[1:], ys[1:])):
        if x <= x1:
            return float(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
    return float(ys[-1])


def _rate(entry: dict, name: str, Q: int, D: int) -> float:
    """A path's measured GFLOP/s at Q queries of D floats: interpolated in log Q at each calibration dimension,
    then in log D."""
    qs, rates = entry["queries"], entry["gflops"].get(name)
    dims = entry.get("dims") or [entry.get("dim", 1)]
    if rates and not isinstance(rates[0], list):  # one dimension
        rates = [rates]
    if not rates or len(rates) != len(dims) or any(len(r) != len(qs) for r in rates):
        return 0.0
    lq = [math.log(q) for q in qs]
    per_dim = [_interp(lq, r, math.log(max(1, Q))) for r in rates]
    return _interp([math.log(d) for d in dims], per_dim, math.log(max(1, D)))


def default(Q: int) -> Path:
    """The rule without measurements: the first float32 BLAS found (MKL, then OpenBLAS), else the kernel.
    (On the Xeon this was built on, MKL tiles matched or beat the kernel from 1 query up.)"""
    paths = available()
    return paths.get("mkl") or paths.get("openblas") or paths["kernel"]


def choose(Q: int, R: int, D: int, threads: int | None = None, float32: bool = False, table: bool = False) -> Path:
    """The path for Q queries over R rows of D floats (module docstring: the rule); float32: only among the
    float32 paths (the re-scan of what a bf16 or int8 filter could not settle); table: the caller keeps the
    rows' tables, making the one its chosen path reads (EmbeddingIndex: ``int8-table`` and ``mkl-bf16-table``
    are offered instead of ``int8`` and ``mkl-bf16``, which pay for copying the rows in every search)."""
    paths = {n: p for n, p in available().items() if not (float32 and p.filter)
             and not (p.filter and p.table != table) and not (p.int8 and D > INT8_MAX_D)}
    if not paths:
        raise RuntimeError(_native.available()[1])
    forced = os.environ.get("FASTREPR_SEARCH_PATH", "").strip().lower()
    if forced:
        if forced not in NAMES:
            raise ValueError(f"FASTREPR_SEARCH_PATH={forced!r} is not a path; expected one of {', '.join(NAMES)}")
        if forced not in available():
            raise RuntimeError(f"FASTREPR_SEARCH_PATH={forced}: not available here ({_skipped.get(forced, '')})")
        if forced.startswith("int8"):  # the int8 filter with the table when the caller has one, else without
            forced = "int8-table" if table else "int8"
        if forced.startswith("mkl-bf16"):  # the same for the bf16 filter
            forced = "mkl-bf16-table" if table else "mkl-bf16"
        if forced in paths:
            return paths[forced]
    if forced or _calibrating:
        return default(Q)
    # a small search does not trigger the measurement, but uses one already taken
    entry = _calibration(threads or torch.get_num_threads(), measure=2.0 * Q * R * D >= SMALL_FLOPS)
    if entry is None:
        return default(Q)
    rates = {name: _rate(entry, name, Q, D) for name in paths}
    best = max(rates, key=lambda n: rates[n])
    return paths[best] if rates[best] > 0 else default(Q)


def describe() -> dict:
    """Paths offered here, those skipped and why, and the cached measurements (for ``fastrepr info``)."""
    return {"cpu": cpu_model(), "paths": {n: p.library for n, p in available().items()},
            "skipped": dict(_skipped), "cache": str(cache_file()),
            "calibration": _load_cache().get(_key(torch.get_num_threads()))}
