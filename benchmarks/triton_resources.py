"""Registers, spills and shared memory of fastrepr's Triton kernels, compiled for sm_80 and sm_90 without a GPU.

    python benchmarks/triton_resources.py [--tier full|ci] [--jobs 2] [--csv benchmarks/results/triton_kernels.csv]

Compiles the cases that tests/test_gpu_compile.py compiles (``fastrepr._triton_compile``: every kernel at every
case its op file declares, every autotune config, both archs; ``--tier ci`` for the cover the test runs by
default) and prints the Markdown table of benchmarks/RESULTS.md's section "Triton kernels compiled for
sm_80/sm_90 without a GPU": one row per kernel and autotune config (plain kernels: per tile shape), with the
registers and spills that the ptxas triton ships reports (``ptxas -v``) for sm_90 and the shared memory that
Triton allocates on each arch, maxima over the cases. ``--csv`` writes every compile as one row. Set
TRITON_CACHE_DIR to reuse compiles between runs (the test uses .pytest_cache/d/triton-gpu-compile).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

os.environ["TRITON_INTERPRET"] = "0"  # before fastrepr and triton are imported: kernels must be compilable

from fastrepr import _triton_compile as tc  # noqa: E402
from fastrepr._triton import SHARED_MEMORY_PER_BLOCK  # noqa: E402

TILE_KEYS = ("BLOCK_P", "BLOCK_B", "BLOCK_D", "BINS_PAD", "BLOCK_K", "BLOCK_Q", "KP")


def _group(r: dict) -> tuple:
    """Rows of the table: autotuned kernels by config, plain kernels by their tile constexprs."""
    if r["config_label"]:
        return r["kernel"], r["config_label"]
    tiles = [part for part in r["label"].split() if part.split("=")[0] in TILE_KEYS]
    return r["kernel"], " ".join(tiles)


def table(results: list[dict]) -> list[str]:
    rows = {}
    for r in results:
        rows.setdefault(_group(r), []).append(r)
    lines = ["| kernel | config / tiles | cases | sm_90 registers | sm_90 spill bytes (st/ld) | sm_90 shared (max) "
             "| sm_80 shared (max) | pruned (sm_90 / sm_80) | failed |", "|---|---|---|---|---|---|---|---|---|"]
    for (kernel, config), rs in rows.items():
        h, a = ([r for r in rs if r["arch"] == arch] for arch in (90, 80))
        regs = sorted({r["registers"] for r in h if r["registers"] is not None})
        spills = max(((r["spill_stores"] or 0, r["spill_loads"] or 0) for r in h), default=(0, 0))
        shared = [max((r["shared"] or 0 for r in x), default=0) for x in (h, a)]
        pruned = [sum(r["pruned"] for r in x) for x in (h, a)]
        failed = sum(bool(r["error"]) for r in rs)
        lines.append(f"| {kernel} | {config or '-'} | {len(h)} | {_span(regs)} | {spills[0]} / {spills[1]} | "
                     f"{shared[0]:,} | {shared[1]:,} | {pruned[0]} / {pruned[1]} | {failed} |")
    return lines


def _span(values: list[int]) -> str:
    if not values:
        return "-"
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=("full", "ci"), default="full")
    parser.add_argument("--jobs", type=int, default=2, help="compile processes")
    parser.add_argument("--csv", help="write every compile as one row here")
    parser.add_argument("--progress", help="append each result to this JSON-lines file as it comes")
    args = parser.parse_args(argv)
    jobs = tc.select(tc.jobs(tc.discover()), args.tier)
    start = time.perf_counter()
    with open(args.progress or os.devnull, "a") as progress:
        report = tc.report(jobs, args.jobs, sink=lambda r: print(json.dumps(r), file=progress, flush=True))
    wall = time.perf_counter() - start
    results = report["results"]
    for r in results:
        r["limit"] = SHARED_MEMORY_PER_BLOCK[r["arch"]]
    print("\n".join(table(results)))
    print(f"\n{len(results)} compiles ({args.tier}), {wall:.0f} s wall with {args.jobs} processes, "
          f"{sum(r['seconds'] for r in results):.0f} s of compile time; missing cases: {report['missing'] or 'none'}")
    if args.csv:
        tmp = args.csv + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(results[0]))
            writer.writeheader()
            writer.writerows(results)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, args.csv)
    return 1 if report["missing"] or any(r["error"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
