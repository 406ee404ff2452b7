"""The registry of benchmark entries and the runner.

Every entry module under ``entries/`` has ``entries() -> list[Bench]`` (empty where an optional baseline
is not installed), and ``ENTRY_MODULES`` is the one list of them: registering is importing a module of that
list. The runner measures each (op, size) through the harness and names the implementation that ran from
``fastrepr._backend.recording()`` around the first call of ours ("-" when ours dispatched no op).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch

from .. import _backend
from .._io import atomic_write
from . import harness
from .entries import clustering, disentanglement, geometry, losses, pairwise, search, siglip, vae, word2vec
from .harness import Bench, Row

ENTRY_MODULES = (pairwise, losses, search, disentanglement, word2vec, vae, clustering, geometry, siglip)

REGISTRY: dict[str, Bench] = {}


def register(bench: Bench) -> Bench:
    """Add one entry (its op name must be new)."""
    if bench.op in REGISTRY:
        raise ValueError(f"benchmark {bench.op!r} registered twice")
    REGISTRY[bench.op] = bench
    return bench


for _module in ENTRY_MODULES:
    for _bench in _module.entries():
        register(_bench)


def impl_label(ran: dict[str, str]) -> str:
    """{op: implementation} recorded during one call -> the table's impl cell: "native" when every op used
    the same one, "op=impl, ..." when they differ, "-" when no op was dispatched."""
    if not ran:
        return "-"
    impls = set(ran.values())
    if len(impls) == 1:
        return impls.pop()
    return ", ".join(f"{op}={impl}" for op, impl in sorted(ran.items()))


def recorded_impl(call: Callable[[], Any]) -> str:
    """Run call() once; the implementation(s) it dispatched (``impl_label``)."""
    with _backend.recording() as ran:
        call()
    return impl_label(ran)


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
        size_list = [bench.parse_size(s) for s in sizes] if sizes else bench.sizes.get(device.type, [])
        for size in size_list:
            if progress:
                progress(f"{name} {bench.label(size)}")
            rows.append(harness.measure(bench, size, device, budget_s, recorded_impl))
    return rows


def save_csv(rows: list[Row], results_dir: str | Path, device: str | torch.device) -> Path:
    """Append rows to <results_dir>/<device name>.csv atomically (``harness.save_csv``)."""
    return harness.save_csv(rows, results_dir, device, opener=atomic_write)


def plot(results_dir: str | Path, plots_dir: str | Path, ops: list[str] | None = None) -> list[Path]:
    """Draw <plots_dir>/<op>.png from the CSVs of results_dir, each written atomically (``harness.plot``)."""
    return harness.plot(results_dir, plots_dir, ops, registry=REGISTRY, opener=atomic_write)
