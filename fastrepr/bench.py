"""Benchmark registry and runner, shared by ``fastrepr bench``, ``fastrepr demo`` and benchmarks/.

Each entry pairs our op with the baseline a user would otherwise run, over a list of sizes per device. The
runner times both in the same process, alternating ours and baseline:
  * CUDA: ``triton.testing.do_bench`` (CUDA events, median over its repetitions);
  * CPU: wall-clock median over repetitions, alternating the two sides within each repetition.
It records peak extra memory of one call of each side:
  * CUDA: ``torch.cuda.max_memory_allocated()`` above what was allocated before the call;
  * CPU (Linux): the process's resident high-water mark (VmHWM, reset through /proc/self/clear_refs) above
    its resident size before the call, after ``malloc_trim`` returned freed heap pages to the system, so
    memory freed earlier cannot hide an allocation. This counts every allocator (torch, numpy, C++).
Rows go to a table, to ``benchmarks/results/<device>.csv``, and to plots ``benchmarks/plots/<op>.png``.
"""
from __future__ import annotations

import csv
import ctypes
import datetime as _dt
import gc
import math
import os
import platform
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from . import _backend
from ._io import atomic_write

CSV_FIELDS = ["date", "device", "threads", "torch", "triton", "op", "size", "dtype", "backend", "ours_ms",
              "baseline", "baseline_ms", "speedup", "peak_ours_mb", "peak_baseline_mb"]


@dataclass(frozen=True)
class Bench:
    """One op against its baseline.

    setup(size, device, dtype) -> inputs dict; ours(inputs) and baseline(inputs) run one call each.
    sizes maps a device type ("cpu", "cuda") to its default sizes, each a tuple of ints named by size_names.
    """

    op: str
    baseline_name: str
    size_names: tuple[str, ...]
    sizes: dict[str, list[tuple[int, ...]]]
    setup: Callable[[tuple[int, ...], torch.device, torch.dtype], dict]
    ours: Callable[[dict], Any]
    baseline: Callable[[dict], Any]
    dtypes: dict[str, torch.dtype] = field(default_factory=lambda: {"cpu": torch.float32, "cuda": torch.float32})
    work: Callable[[tuple[int, ...]], float] = math.prod  # x axis of the plots
    work_label: str = ""  # how `work` combines the sizes; default: the product of all of them
    impls: tuple[str, ...] = _backend.BACKENDS  # the op's backends, to report which one ran
    describe: Callable[[dict], str] | None = None  # inputs -> the path that ran (engine, kernel, BLAS), if finer

    def label(self, size: tuple[int, ...]) -> str:
        return " ".join(f"{n}={v}" for n, v in zip(self.size_names, size))

    def parse_size(self, text: str) -> tuple[int, ...]:
        parts = [int(float(p)) for p in re.split(r"[x,]", text.strip()) if p]
        if len(parts) != len(self.size_names):
            raise ValueError(f"{self.op}: size {text!r} must give {'x'.join(self.size_names)}")
        return tuple(parts)


REGISTRY: dict[str, Bench] = {}


def _size_values(label: str) -> tuple[int, ...]:
    """Inverse of Bench.label: "N=10 P=5" -> (10, 5)."""
    return tuple(int(part.split("=", 1)[1]) for part in label.split())


def register(bench: Bench) -> Bench:
    if bench.op in REGISTRY:
        raise ValueError(f"benchmark {bench.op!r} registered twice")
    REGISTRY[bench.op] = bench
    return bench


@dataclass
class Row:
    op: str
    size: str
    dtype: str
    backend: str
    ours_ms: float
    baseline: str
    baseline_ms: float
    peak_ours_mb: float
    peak_baseline_mb: float

    @property
    def speedup(self) -> float:
        return self.baseline_ms / self.ours_ms if self.ours_ms > 0 else float("nan")


# ---------------------------------------------------------------------------------------------------------
# measurement

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_pair(ours: Callable[[], Any], base: Callable[[], Any] | None, device: torch.device,
              budget_s: float = 1.0) -> tuple[float, float]:
    """Median milliseconds of ours() and base(), measured alternately in this process (base None: nan)."""
    if device.type == "cuda":
        from triton.testing import do_bench

        rep = max(int(budget_s * 1000 / 2), 20)
        return (do_bench(ours, warmup=25, rep=rep, return_mode="median"),
                do_bench(base, warmup=25, rep=rep, return_mode="median") if base else float("nan"))
    sides = (("ours", ours), ("base", base)) if base else (("ours", ours),)
    samples: dict[str, list[float]] = {"ours": [], "base": [float("nan")] if base is None else []}
    for _, fn in sides:  # warm-up (thread pools, first-touch pages)
        fn()
    spent, reps = 0.0, 0
    while reps < 5 or (spent < budget_s and reps < 200):
        for key, fn in sides:
            t0 = time.perf_counter()
            fn()
            dt = time.perf_counter() - t0
            samples[key].append(dt * 1e3)
            spent += dt
        reps += 1
    return statistics.median(samples["ours"]), statistics.median(samples["base"])


def _read_status_kb(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise KeyError(key)


def _can_track_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        _read_status_kb("VmHWM")
        return True
    except OSError:
        return False


_LIBC = None


def _malloc_trim() -> None:
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL("libc.so.6")
        except OSError:
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


def peak_memory(fn: Callable[[], Any], device: torch.device) -> int:
    """Peak extra bytes used by one call of fn (its result included), on the device that fn computes on."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        out = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        del out
        return max(peak, 0)
    if _can_track_rss():
        _malloc_trim()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset VmHWM to the current resident size
        base = _read_status_kb("VmRSS")
        out = fn()
        peak = (_read_status_kb("VmHWM") - base) * 1024
        del out
        return max(peak, 0)
    import tracemalloc  # fallback: sees Python and numpy allocations only

    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
    return peak


# ---------------------------------------------------------------------------------------------------------
# running, saving, plotting

def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = platform.processor() or "cpu"
        try:
            with open("/proc/cpuinfo") as f:
                name = next(line.split(":", 1)[1] for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        name = f"cpu {name} {torch.get_num_threads()}t"
    return re.sub(r"[^A-Za-z0-9.]+", "_", name.replace("(R)", "").replace("(TM)", "")).strip("_")


def run(ops: list[str] | None = None, sizes: list[str] | None = None, device: str | torch.device | None = None,
        budget_s: float = 1.0, progress: Callable[[str], None] | None = None) -> list[Row]:
    """Benchmark the named ops (all if None) at their default sizes for this device, or at ``sizes``."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = ops or list(REGISTRY)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; registered: {', '.join(REGISTRY)}")
    rows = []
    for name in names:
        bench = REGISTRY[name]
        dtype = bench.dtypes.get(device.type, torch.float32)
        size_list = [bench.parse_size(s) for s in sizes] if sizes else bench.sizes.get(device.type, [])
        for size in size_list:
            if progress:
                progress(f"{name} {bench.label(size)}")
            torch.manual_seed(0)
            inputs = bench.setup(size, device, dtype)
            first = next(v for v in inputs.values() if isinstance(v, torch.Tensor))
            backend = _backend.select(name, first, impls=bench.impls)
            if bench.describe is not None:
                backend = bench.describe(inputs)
            base = _runs_or_none(lambda: bench.baseline(inputs), device)  # None: out of memory
            ours_ms, base_ms = time_pair(lambda: bench.ours(inputs), base, device, budget_s)
            peak_ours = peak_memory(lambda: bench.ours(inputs), device)
            peak_base = peak_memory(base, device) if base else float("nan")
            rows.append(Row(name, bench.label(size), str(dtype).replace("torch.", ""), backend, ours_ms,
                            bench.baseline_name, base_ms, peak_ours / 2**20, peak_base / 2**20))
            del inputs
            gc.collect()
    return rows


def _runs_or_none(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any] | None:
    """fn if one call of it fits in memory, else None (the baseline of the largest sizes may not)."""
    try:
        fn()
        return fn
    except (torch.cuda.OutOfMemoryError, MemoryError):
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return None


def format_table(rows: list[Row]) -> str:
    header = ["op", "size", "ours", "baseline", "speed-up", "peak mem ours", "peak mem baseline"]
    oom = lambda r, text: "out of memory" if math.isnan(r.baseline_ms) else text  # noqa: E731
    body = [[r.op, r.size, f"{r.ours_ms:.3f} ms ({r.backend})", oom(r, f"{r.baseline_ms:.3f} ms ({r.baseline})"),
             oom(r, f"{r.speedup:.2f}x"), f"{r.peak_ours_mb:.2f} MB", oom(r, f"{r.peak_baseline_mb:.2f} MB")]
            for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(b) for b in body])


def _versions() -> dict[str, str]:
    try:
        import triton

        tv = triton.__version__
    except Exception:
        tv = "none"
    return {"torch": torch.__version__, "triton": tv}


def save_csv(rows: list[Row], results_dir: str | Path, device: str | torch.device) -> Path:
    """Append rows to <results_dir>/<device name>.csv (header written once), atomically: the old rows are
    copied into a temporary file with the new ones and renamed over the CSV, so an interrupted run never
    leaves a half-written row."""
    device = torch.device(device)
    path = Path(results_dir) / f"{device_name(device)}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    now = _dt.datetime.now().isoformat(timespec="seconds")
    threads = torch.get_num_threads() if device.type == "cpu" else 0
    with atomic_write(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({"date": now, "device": device_name(device), "threads": threads, **_versions(),
                        "op": r.op, "size": r.size, "dtype": r.dtype, "backend": r.backend,
                        "ours_ms": f"{r.ours_ms:.6g}", "baseline": r.baseline, "baseline_ms": f"{r.baseline_ms:.6g}",
                        "speedup": f"{r.speedup:.4g}", "peak_ours_mb": f"{r.peak_ours_mb:.6g}",
                        "peak_baseline_mb": f"{r.peak_baseline_mb:.6g}"})
    return path


def plot(results_dir: str | Path, plots_dir: str | Path, ops: list[str] | None = None) -> list[Path]:
    """Draw <plots_dir>/<op>.png from every CSV in results_dir: time and peak memory against problem size
    (log-log), ours and baseline, one line per device; the latest row wins for each (device, size)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latest: dict[str, dict[tuple[str, str], dict]] = {}
    for path in sorted(Path(results_dir).glob("*.csv")):
        with path.open() as f:
            for rec in csv.DictReader(f):
                if ops and rec["op"] not in ops:
                    continue
                latest.setdefault(rec["op"], {})[(rec["device"], rec["size"])] = rec
    out = []
    Path(plots_dir).mkdir(parents=True, exist_ok=True)
    for op, recs in latest.items():
        bench = REGISTRY.get(op)
        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
        for dev in sorted({d for d, _ in recs}):
            pts = [r for (d, _), r in recs.items() if d == dev]
            work = bench.work if bench is not None else math.prod
            pts.sort(key=lambda r: work(_size_values(r["size"])))
            xs = [work(_size_values(r["size"])) for r in pts]
            for ax, a, b, unit in ((ax_t, "ours_ms", "baseline_ms", "ms"), (ax_m, "peak_ours_mb", "peak_baseline_mb", "MB")):
                ax.plot(xs, [max(float(r[a]), 1e-6) for r in pts], "o-", label=f"fastrepr ({dev})")
                ax.plot(xs, [max(float(r[b]), 1e-6) for r in pts], "s--", label=f"{pts[0]['baseline']} ({dev})")
                ax.set_ylabel(unit)
        for ax, title in ((ax_t, "time per call (median)"), (ax_m, "peak extra memory")):
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("problem size (" + ((bench.work_label or "·".join(bench.size_names)) if bench else "size") + ")")
            ax.set_title(f"{op}: {title}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = Path(plots_dir) / f"{op}.png"
        with atomic_write(path) as f:
            fig.savefig(f, format="png", dpi=110)
        plt.close(fig)
        out.append(path)
    return out


# ---------------------------------------------------------------------------------------------------------
# registry entries

def _pairwise_index_setup(size, device, dtype):
    n, p, b, d = size
    return {"z": torch.randn(n, d, device=device, dtype=dtype),
            "i": torch.randint(0, n, (p, b), device=device), "j": torch.randint(0, n, (p, b), device=device)}


def _pairwise_dense_setup(size, device, dtype):
    p, b, d = size
    return {"z1": torch.randn(p, b, d, device=device, dtype=dtype), "z2": torch.randn(p, b, d, device=device, dtype=dtype)}


def _register_defaults() -> None:
    from .functional import pairwise_abs_diff_mean

    register(Bench(
        op="pairwise_abs_diff_mean",
        baseline_name="torch (z[i]-z[j]).abs().mean(1)",
        size_names=("N", "P", "B", "D"),
        sizes={"cpu": [(100_000, 1_000, 64, 10), (100_000, 10_000, 64, 10), (1_000_000, 10_000, 64, 16)],
               "cuda": [(100_000, 10_000, 64, 16), (1_000_000, 100_000, 64, 16), (1_000_000, 100_000, 64, 64)]},
        setup=_pairwise_index_setup,
        ours=lambda x: pairwise_abs_diff_mean(x["z"], i=x["i"], j=x["j"]),
        baseline=lambda x: (x["z"][x["i"]] - x["z"][x["j"]]).abs().mean(1),
        work=lambda s: s[1] * s[2] * s[3],
        work_label="P·B·D",
    ))
    register(Bench(
        op="pairwise_abs_diff_mean_dense",
        baseline_name="torch (z1-z2).abs().mean(1)",
        size_names=("P", "B", "D"),
        sizes={"cpu": [(1_000, 64, 10), (10_000, 64, 10)], "cuda": [(10_000, 64, 16), (100_000, 64, 16)]},
        setup=_pairwise_dense_setup,
        ours=lambda x: pairwise_abs_diff_mean(x["z1"], x["z2"]),
        baseline=lambda x: (x["z1"] - x["z2"]).abs().mean(1),
    ))


def _fwd_bwd(loss_fn: Callable[[dict], torch.Tensor]) -> Callable[[dict], torch.Tensor]:
    """One training step's worth of a loss: forward and backward (leaf grads reset, so each call allocates
    them as a real step would)."""
    def call(x: dict) -> torch.Tensor:
        for t in x["leaves"]:
            t.grad = None
        loss = loss_fn(x)
        loss.backward()
        return loss
    return call


def _views_setup(size, device, dtype):
    two_n, d = size
    z1, z2 = (torch.randn(two_n // 2, d, device=device, dtype=dtype, requires_grad=True) for _ in range(2))
    return {"z1": z1, "z2": z2, "leaves": (z1, z2)}


_compiled: dict = {}


def _compiled_reference(name: str):
    """torch.compile of a reference loss, built once per process."""
    if name not in _compiled:
        from . import reference

        _compiled[name] = torch.compile(getattr(reference, name))
    return _compiled[name]


def _register_contrastive() -> None:
    from . import reference
    from .functional import info_nce, nt_xent, sup_con

    # 2N = 262144 and 1048576 exceed the reference's memory on an 80 GB card (its row reads "out of memory")
    sizes = {"cpu": [(1024, 128), (4096, 128), (8192, 128)],
             "cuda": [(1024, 128), (4096, 128), (16384, 128), (65536, 128), (262144, 128), (1048576, 128)]}
    small = {"cpu": sizes["cpu"], "cuda": sizes["cuda"][:4]}
    common = dict(size_names=("2N", "D"), sizes=sizes, setup=_views_setup, impls=("triton", "torch"),
                  dtypes={"cpu": torch.float32, "cuda": torch.bfloat16}, work=lambda s: s[0] ** 2 * s[1],
                  work_label="(2N)²·D")
    register(Bench(op="nt_xent", baseline_name="torch reference (2N x 2N logits + cross_entropy)",
                   ours=_fwd_bwd(lambda x: nt_xent(x["z1"], x["z2"], 0.1)),
                   baseline=_fwd_bwd(lambda x: reference.nt_xent(x["z1"], x["z2"], 0.1)), **common))
    register(Bench(op="nt_xent_vs_compiled", baseline_name="torch.compile(reference)",
                   ours=_fwd_bwd(lambda x: nt_xent(x["z1"], x["z2"], 0.1)),
                   baseline=_fwd_bwd(lambda x: _compiled_reference("nt_xent")(x["z1"], x["z2"], 0.1)),
                   **{**common, "sizes": {"cpu": sizes["cpu"][:2], "cuda": [sizes["cuda"][1], sizes["cuda"][3]]}}))
    register(Bench(op="info_nce", baseline_name="torch reference (N x N logits, both directions)",
                   ours=_fwd_bwd(lambda x: info_nce(x["z1"], x["z2"], 0.07)),
                   baseline=_fwd_bwd(lambda x: reference.info_nce(x["z1"], x["z2"], 0.07)),
                   **{**common, "sizes": small}))
    register(Bench(op="sup_con", baseline_name="torch reference (N x N logits, label masks)",
                   ours=_fwd_bwd(lambda x: sup_con(x["z"], x["labels"], 0.1)),
                   baseline=_fwd_bwd(lambda x: reference.sup_con(x["z"], x["labels"], 0.1)),
                   **{**common, "sizes": small, "size_names": ("N", "D"), "work_label": "N²·D",
                      "setup": _labelled_setup}))


def _labelled_setup(size, device, dtype):
    n, d = size
    z = torch.randn(n, d, device=device, dtype=dtype, requires_grad=True)
    return {"z": z, "leaves": (z,), "labels": torch.randint(0, max(2, n // 8), (n,), device=device)}


_register_defaults()
_register_contrastive()


def _register_evaluation() -> None:
    """Search and evaluation entries (fastrepr/evaluation/benchmarks.py)."""
    from .evaluation import benchmarks

    benchmarks.register_all()


_register_evaluation()


def _register_disentanglement() -> None:
    from .evaluation.suite import bench_entry

    register(bench_entry(Bench))


_register_disentanglement()


def _register_word2vec() -> None:
    from .text.benchmarks import register_all

    register_all(register, Bench)


_register_word2vec()
