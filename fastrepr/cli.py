"""Command line: `fastrepr info | demo | bench | eval-words | disentangle | word2vec` (also `python -m fastrepr ...`)."""
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


def _cmd_word2vec(args) -> int:
    from .text.word2vec import Word2Vec

    model = Word2Vec(vector_size=args.vector_size, window=args.window, min_count=args.min_count,
                     max_vocab=args.max_vocab, sg=0 if args.cbow else 1, hs=args.hs, negative=args.negative,
                     ns_exponent=args.ns_exponent, cbow_mean=args.cbow_mean, sample=args.sample, alpha=args.alpha,
                     min_alpha=args.min_alpha, epochs=args.epochs, workers=args.workers, seed=args.seed,
                     device=args.device, progress=not args.quiet)
    try:  # fail before training, not after
        from .text import io  # noqa: F401
    except ImportError as exc:
        raise RuntimeError(f"writing vectors needs fastrepr.text.io, which this build lacks ({exc})") from None
    model.train(args.corpus)
    model.save_word2vec_format(args.output, binary=args.binary)
    print(f"{len(model.keys)} words x {model.vector_size} dims -> {args.output} "
          f"({model.words_per_second / 1e6:.2f}M words/s, {model.train_seconds:.1f} s, loss {model.loss:.4f})")
    return 0


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
    p = sub.add_parser("word2vec", help="train word vectors on a text corpus (gensim-like flags)",
                       description="Train word2vec on CORPUS (one sentence per line, whitespace tokens) and write "
                                   "the vectors in word2vec format.")
    p.add_argument("corpus")
    p.add_argument("-o", "--output", required=True, help="vectors file (word2vec text format; --binary for binary)")
    p.add_argument("--vector-size", "--size", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--max-vocab", type=int, default=None)
    p.add_argument("--cbow", action="store_true", help="CBOW instead of skip-gram")
    p.add_argument("--hs", type=int, choices=[0, 1], default=0, help="hierarchical softmax")
    p.add_argument("--negative", type=int, default=5, help="negative samples (0: none; then --hs 1)")
    p.add_argument("--ns-exponent", type=float, default=0.75)
    p.add_argument("--cbow-mean", type=int, choices=[0, 1], default=1)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=0.025)
    p.add_argument("--min-alpha", type=float, default=1e-4)
    p.add_argument("--epochs", "--iter", type=int, default=5)
    p.add_argument("--workers", "--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--binary", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"info": _cmd_info, "demo": _cmd_demo, "bench": _cmd_bench, "eval-words": _cmd_eval_words,
               "disentangle": _cmd_disentangle, "word2vec": _cmd_word2vec}[args.command]
    try:
        return handler(args)
    except (ValueError, TypeError, RuntimeError) as exc:
        print(f"fastrepr {args.command}: error: {exc}", file=sys.stderr)
        return 2
