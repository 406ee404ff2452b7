"""Command line: `fastrepr info | demo | bench | eval-words | disentangle` (also `python -m fastrepr ...`)."""
from __future__ import annotations

import argparse
import platform
import sys

import torch


def info_lines() -> list[str]:
    """What is installed and usable here, with the reason for each missing piece."""
    from . import __version__, _backend, _native, _triton

    import numpy

    lines = [f"fastrepr {__version__}",
             f"python {platform.python_version()}, torch {torch.__version__}, numpy {numpy.__version__}"]
    if torch.cuda.is_available():
        lines.append(f"device: cuda ({torch.cuda.get_device_name()}, {torch.cuda.device_count()} visible)")
    else:
        lines.append(f"device: cpu ({platform.machine()}, {torch.get_num_threads()} torch threads)")

    def row(name: str, ok: bool, detail: str) -> str:
        return f"  {name:<10} {'yes' if ok else 'no ':<4} {detail}"

    lines.append("backends:")
    ok, why = _backend.available("triton")
    if ok:
        import triton

        mode = "compiled for CUDA" if _triton.HAS_CUDA and not _triton.INTERPRET else "interpreter (TRITON_INTERPRET=1)"
        lines.append(row("triton", True, f"{triton.__version__}, {mode}"))
    else:
        lines.append(row("triton", False, why))
    ok, why = _native.available()
    lines.append(row("native", ok, f"fastrepr._C, OpenMP {'on' if _native.get().openmp else 'off'}" if ok else why))
    lines.append(row("torch", True, "plain-PyTorch reference (always available)"))
    forced = _backend.forced()
    lines.append(f"  selection: {'forced by FASTREPR_BACKEND=' + forced if forced else 'triton for CUDA tensors, native for CPU tensors, else torch'}")

    lines.append("optional:")
    lines.append(row("CUDA", torch.cuda.is_available(),
                     torch.version.cuda and f"CUDA {torch.version.cuda}" if torch.cuda.is_available()
                     else "torch.cuda.is_available() is False" + ("" if torch.version.cuda else " (CPU build of torch)")))
    try:
        import faiss

        lines.append(row("faiss", True, faiss.__version__))
        n_gpu = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
        has_gpu = hasattr(faiss, "StandardGpuResources")
        lines.append(row("faiss GPU", has_gpu and n_gpu > 0,
                         f"{n_gpu} GPU(s)" if has_gpu and n_gpu > 0 else
                         ("faiss has GPU support but sees no GPU" if has_gpu else
                          "faiss is built without GPU support (pip install 'fastrepr[gpu]' for faiss-gpu)")))
    except Exception as exc:
        lines.append(row("faiss", False, f"not importable ({exc}); pip install faiss-cpu"))
        lines.append(row("faiss GPU", False, "faiss is not installed"))
    return lines


def _cmd_info(args) -> int:
    print("\n".join(info_lines()))
    return 0


def _cmd_demo(args) -> int:
    from . import demo

    demo.run()
    return 0


def _cmd_bench(args) -> int:
    from . import bench

    if args.list:
        for name, b in bench.REGISTRY.items():
            print(f"{name}: sizes {'x'.join(b.size_names)}; baseline {b.baseline_name}")
        return 0
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


def _cmd_eval_words(args) -> int:
    from .evaluation import report

    return report.run(args)


def _cmd_disentangle(args) -> int:
    from .evaluation import suite

    return suite.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastrepr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device, and which backends and optional pieces are available")
    sub.add_parser("demo", help="a short tour of the package on built-in data, with a benchmark table")
    p = sub.add_parser("bench", help="time ours against the baseline per op; append CSV rows and draw plots")
    p.add_argument("--op", action="append", help="benchmark name (repeatable); default: all")
    p.add_argument("--sizes", nargs="+", help="sizes like 100000x10000x64x10 (see --list); default: per device")
    p.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    p.add_argument("--budget", type=float, default=1.0, help="seconds of timing per side and size (CPU)")
    p.add_argument("--results-dir", default="benchmarks/results")
    p.add_argument("--plots-dir", default="benchmarks/plots")
    p.add_argument("--no-save", action="store_true", help="print the table only")
    p.add_argument("--no-plots", action="store_true", help="do not draw plots")
    p.add_argument("--plot-only", action="store_true", help="only redraw plots from the CSVs in --results-dir")
    p.add_argument("--list", action="store_true", help="list the registered benchmarks")
    from .evaluation import report

    report.add_arguments(sub.add_parser("eval-words", help="word analogies and word-pair similarity of a vector "
                                        "file, with gensim's exact semantics"))
    p = sub.add_parser("disentangle", help="disentanglement metrics of a representation of dSprites (Locatello et al. 2019)")
    from .evaluation import suite

    suite.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"info": _cmd_info, "demo": _cmd_demo, "bench": _cmd_bench, "eval-words": _cmd_eval_words,
               "disentangle": _cmd_disentangle}[args.command]
    try:
        return handler(args)
    except (ValueError, RuntimeError) as exc:
        print(f"fastrepr {args.command}: error: {exc}", file=sys.stderr)
        return 2
