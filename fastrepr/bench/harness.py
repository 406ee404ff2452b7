"""The benchmark harness: the entry type, timing, peak memory, the table, CSV rows and plots.

It imports nothing else of fastrepr (only torch, and matplotlib/triton when asked for): the entries under
``fastrepr/bench/entries`` and the runner build on it, and importing it never pulls in the ops, search,
evaluation or text. Files are written through an ``opener`` the caller passes (``fastrepr.bench`` passes
``fastrepr._io.atomic_write``: temp file + fsync + rename), so the harness holds no second atomic writer.

Timing (``time_pair``) runs ours and the baseline in the same process, alternating, and takes the median:
  * CUDA: CUDA events around each call, the two sides interleaved (one event pair per call);
  * CPU: wall-clock per call, the two sides interleaved within each repetition.
Peak extra memory of one call (``peak_memory``):
  * CUDA: ``torch.cuda.max_memory_allocated()`` above what was allocated before the call;
  * CPU (Linux): the process's resident high-water mark (VmHWM, reset through /proc/self/clear_refs) above
    its resident size before the call, after ``malloc_trim`` returned freed heap pages to the system, so
    memory freed earlier cannot hide an allocation. This counts every allocator (torch, numpy, C++).
"""
from __future__ import annotations

import csv
import ctypes
import datetime as _dt
import gc
import math
import platform
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager

import torch

CSV_FIELDS = ["date", "device", "threads", "torch", "triton", "op", "size", "dtype", "backend", "ours_ms",
              "baseline", "baseline_ms", "speedup", "peak_ours_mb", "peak_baseline_mb"]
# (path, mode, newline=...) -> a context manager yielding a file; the file replaces `path` only on success
Opener = Callable[..., ContextManager]


@dataclass(frozen=True)
class Bench:
    """One op against its baseline.

    setup(size, device, dtype) -> inputs dict; ours(inputs) and baseline(inputs) run one call each.
    sizes maps a device type ("cpu", "cuda") to its default sizes, each a tuple of ints named by size_names;
    the first size of a device is its smallest (the pytest-benchmark view and the demo run that one).
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
    describe: Callable[[dict], str] | None = None  # inputs -> the finer path that ran (engine, BLAS), if any
    test_size: tuple[int, ...] | None = None  # the smallest size that exercises the entry (no default sizes)
    demo: dict[str, tuple[int, ...]] = field(default_factory=dict)  # the size `fastrepr demo` shows, per device

    def label(self, size: tuple[int, ...]) -> str:
        return " ".join(f"{n}={v}" for n, v in zip(self.size_names, size))

    def parse_size(self, text: str) -> tuple[int, ...]:
        parts = [int(float(p)) for p in re.split(r"[x,]", text.strip()) if p]
        if len(parts) != len(self.size_names):
            raise ValueError(f"{self.op}: size {text!r} must give {'x'.join(self.size_names)}")
        return tuple(parts)

    def smallest(self, device_type: str = "cpu") -> tuple[int, ...] | None:
        """The size the quick views run: the first default size of the device, else ``test_size``."""
        sizes = self.sizes.get(device_type) or []
        return sizes[0] if sizes else self.test_size


def train_step(loss_fn: Callable[[dict], torch.Tensor]) -> Callable[[dict], torch.Tensor]:
    """Forward + backward of ``loss_fn(x)`` with the leaves' gradients reset first (``x["leaves"]``), as a
    training step allocates them: what the loss entries time as "forward+backward"."""
    def call(x: dict) -> torch.Tensor:
        for t in x["leaves"]:
            t.grad = None
        loss = loss_fn(x)
        loss.backward()
        return loss.detach()
    return call


def size_values(label: str) -> tuple[int, ...]:
    """Inverse of Bench.label: "N=10 P=5" -> (10, 5)."""
    return tuple(int(part.split("=", 1)[1]) for part in label.split())


@dataclass
class Row:
    """One measured (op, size): milliseconds and peak MB of each side; ``impl`` names what ran for ours."""

    op: str
    size: str
    dtype: str
    impl: str
    ours_ms: float
    baseline: str
    baseline_ms: float
    peak_ours_mb: float
    peak_baseline_mb: float

    @property
    def speedup(self) -> float:
        return self.baseline_ms / self.ours_ms if self.ours_ms > 0 else float("nan")

    @property
    def backend(self) -> str:  # the field's name before it recorded the implementation (CSV column)
        return self.impl


# ---------------------------------------------------------------------------------------------------------
# measurement

def time_pair(ours: Callable[[], Any], base: Callable[[], Any] | None, device: torch.device,
              budget_s: float = 1.0, warmup: bool = True, settle_s: float = 0.0) -> tuple[float, float]:
    """Median milliseconds of ours() and base(), measured alternately in this process (base None: nan).
    ``budget_s`` bounds the time spent calling each side (at least 5 calls each, at most 200); ``warmup``
    False when the caller has already called both once. ``settle_s`` (CPU): an untimed sleep before every
    call, so that neither side starts while the other's idle thread pool still spins (OpenBLAS's workers
    busy-wait ~2^28 cycles, ~0.1 s, after each call: on 2 cores that takes one from whoever runs next)."""
    sides = [("ours", ours)] + ([("base", base)] if base else [])
    samples: dict[str, list[float]] = {"ours": [], "base": [] if base else [float("nan")]}
    for _, fn in sides if warmup else ():  # thread pools, first-touch pages, autotuning, compilation
        fn()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    spent, reps = 0.0, 0
    while reps < 5 or (spent < budget_s and reps < 200):
        if cuda:  # events queued around each call; one synchronize per repetition
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in sides]
            for (_, fn), (start, end) in zip(sides, events):
                start.record()
                fn()
                end.record()
            torch.cuda.synchronize(device)
            for (key, _), (start, end) in zip(sides, events):
                ms = start.elapsed_time(end)
                samples[key].append(ms)
                spent += ms / 1e3
        else:
            for key, fn in sides:
                if settle_s:
                    time.sleep(settle_s)
                t0 = time.perf_counter()
                fn()
                ms = (time.perf_counter() - t0) * 1e3
                samples[key].append(ms)
                spent += ms / 1e3
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


def runs_or_none(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any] | None:
    """fn if one call of it fits in memory, else None (the baseline of the largest sizes may not)."""
    try:
        fn()
        return fn
    except (torch.cuda.OutOfMemoryError, MemoryError):
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
        return None


def measure(bench: Bench, size: tuple[int, ...], device: torch.device, budget_s: float,
            impl_of: Callable[[Callable[[], Any]], str]) -> Row:
    """One row: set up ``size``, time both sides alternately, then the peak memory of one call of each.
    ``impl_of(call)`` runs ``call`` once and names the implementation that ran (the runner records it); with
    the baseline's first call (out-of-memory check) it is the warm-up of the timing."""
    dtype = bench.dtypes.get(device.type, torch.float32)
    torch.manual_seed(0)
    inputs = bench.setup(size, device, dtype)
    base = runs_or_none(lambda: bench.baseline(inputs), device)  # None: out of memory
    impl = impl_of(lambda: bench.ours(inputs))
    if bench.describe is not None:
        impl = f"{impl}; {bench.describe(inputs)}" if impl != "-" else bench.describe(inputs)
    ours_ms, base_ms = time_pair(lambda: bench.ours(inputs), base, device, budget_s, warmup=False)
    peak_ours = peak_memory(lambda: bench.ours(inputs), device)
    peak_base = peak_memory(base, device) if base else float("nan")
    row = Row(bench.op, bench.label(size), str(dtype).replace("torch.", ""), impl, ours_ms, bench.baseline_name,
              base_ms, peak_ours / 2**20, peak_base / 2**20)
    del inputs
    gc.collect()
    return row


# ---------------------------------------------------------------------------------------------------------
# the table, CSV rows, plots

def table(header: list[str] | tuple[str, ...], body: list) -> str:
    """A GitHub-style table, columns padded to their widest cell: the one table printer of the package."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep] + [line(b) for b in body])


TABLE_HEADER = ["op", "size", "impl", "ours", "baseline", "speed-up", "peak mem ours", "peak mem baseline"]


def format_table(rows: list[Row]) -> str:
    """``op | size | impl | ours | baseline | speed-up | peak mem ours | peak mem baseline``."""
    oom = lambda r, text: "out of memory" if math.isnan(r.baseline_ms) else text  # noqa: E731
    body = [[r.op, r.size, r.impl, f"{r.ours_ms:.3f} ms", oom(r, f"{r.baseline_ms:.3f} ms ({r.baseline})"),
             oom(r, f"{r.speedup:.2f}x"), f"{r.peak_ours_mb:.2f} MB", oom(r, f"{r.peak_baseline_mb:.2f} MB")]
            for r in rows]
    return table(TABLE_HEADER, body)


def device_name(device: torch.device) -> str:
    device = torch.device(device)
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


def _versions() -> dict[str, str]:
    try:
        import triton

        tv = triton.__version__
    except Exception:
        tv = "none"
    return {"torch": torch.__version__, "triton": tv}


def save_csv(rows: list[Row], results_dir: str | Path, device: str | torch.device, *, opener: Opener) -> Path:
    """Append rows to <results_dir>/<device name>.csv (header written once) through ``opener`` in mode "a"
    (an atomic opener copies the old rows into a temporary file with the new ones and renames it over the
    CSV, so an interrupted run never leaves a half-written row)."""
    device = torch.device(device)
    path = Path(results_dir) / f"{device_name(device)}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    now = _dt.datetime.now().isoformat(timespec="seconds")
    threads = torch.get_num_threads() if device.type == "cpu" else 0
    with opener(path, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        if new:
            w.writeheader()
        for r in rows:
            w.writerow({"date": now, "device": device_name(device), "threads": threads, **_versions(),
                        "op": r.op, "size": r.size, "dtype": r.dtype, "backend": r.impl,
                        "ours_ms": f"{r.ours_ms:.6g}", "baseline": r.baseline, "baseline_ms": f"{r.baseline_ms:.6g}",
                        "speedup": f"{r.speedup:.4g}", "peak_ours_mb": f"{r.peak_ours_mb:.6g}",
                        "peak_baseline_mb": f"{r.peak_baseline_mb:.6g}"})
    return path


def plot(results_dir: str | Path, plots_dir: str | Path, ops: list[str] | None = None, *,
         registry: dict[str, Bench], opener: Opener) -> list[Path]:
    """Draw <plots_dir>/<op>.png from every CSV in results_dir: time and peak memory against problem size
    (log-log), ours and baseline, one line per device; the latest row wins for each (device, size).
    ``registry`` gives each op's x axis (its ``work``); ops it lacks use the product of the sizes."""
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
        bench = registry.get(op)
        work = bench.work if bench is not None else math.prod
        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4))
        for dev in sorted({d for d, _ in recs}):
            pts = sorted((r for (d, _), r in recs.items() if d == dev), key=lambda r: work(size_values(r["size"])))
            xs = [work(size_values(r["size"])) for r in pts]
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
        with opener(path) as f:
            fig.savefig(f, format="png", dpi=110)
        plt.close(fig)
        out.append(path)
    return out
