"""``fastrepr bench``: ours against the baseline per registered op (``fastrepr.bench.REGISTRY``); prints
``op | size | impl | ours | baseline | speed-up | peak mem ours | peak mem baseline``, appends the rows to
``benchmarks/results/<device>.csv`` and draws ``benchmarks/plots/<op>.png``."""
from __future__ import annotations

import sys

import torch

from .._io import check_writable
from .args import UsageError, device_flag, positive_float

HELP = "time ours against the baseline per op; append CSV rows and draw plots"


def add_arguments(p) -> None:
    p.add_argument("--op", action="append", help="benchmark name (repeatable); default: all")
    p.add_argument("--sizes", nargs="+", help="sizes like 100000x10000x64x10 (see --list); default: per device")
    p.add_argument("--device", choices=["cpu", "cuda"], type=device_flag, help="default: cuda when available")
    p.add_argument("--budget", type=positive_float, default=1.0, help="seconds of timing per side and size (CPU)")
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--plots-dir", default="benchmarks/plots")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    p.add_argument("--no-plots", action="store_true", help="do not draw plots")
    p.add_argument("--plot-only", action="store_true", help="only redraw plots from the CSVs in --results-dir")
    p.add_argument("--list", action="store_true", help="list the registered benchmarks")


def main(args) -> int:
    from .. import bench

    if args.list:
        for name, b in bench.REGISTRY.items():
            print(f"{name}: sizes {'x'.join(b.size_names)}; baseline {b.baseline_name}")
        return 0
    unknown = [op for op in args.op or [] if op not in bench.REGISTRY]
    if unknown:
        raise UsageError(f"--op: unknown benchmark(s) {', '.join(unknown)}; `fastrepr bench --list` lists them")
    for op in (args.op or list(bench.REGISTRY)) if args.sizes else []:
        for size in args.sizes:  # fail before the first timing, not after the others
            try:
                values = bench.REGISTRY[op].parse_size(size)
            except ValueError:
                raise UsageError(f"--sizes {size}: {op}: a size must give {'x'.join(bench.REGISTRY[op].size_names)} "
                                 "(positive integers)") from None
            if min(values) < 1:
                raise UsageError(f"--sizes {size}: sizes must be positive integers")
    if not args.plot_only and not args.no_save:
        check_writable(args.results_dir, "--results-dir", directory=True)
    if not args.no_plots:
        check_writable(args.plots_dir, "--plots-dir", directory=True)
    if not args.plot_only:
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        rows = bench.run(args.op, args.sizes, device=device, budget_s=args.budget,
                         progress=lambda s: print(f"  running {s} ...", file=sys.stderr, flush=True))
        print(bench.format_table(rows))
        if args.no_save:
            return 0
        path = bench.save_csv(rows, args.results_dir, device)
        print(f"appended {len(rows)} rows to {path}")
    if not args.no_plots:
        for path in bench.plot(args.results_dir, args.plots_dir, args.op):
            print(f"wrote {path}")
    return 0
