"""Command line: `fastrepr info | demo | bench | eval-words | disentangle | word2vec` (also `python -m fastrepr ...`).

A user's mistake (a missing, unreadable or malformed file, a bad flag value, `--device cuda` without CUDA, an
output path that cannot be written) is one line on stderr naming the flag or file, and exit code 2; inputs
and outputs are checked before any long work starts. A traceback means a bug (FASTREPR_TRACEBACK=1 shows one
for the one-line errors too).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys

import torch

from ._io import check_writable


class UsageError(ValueError):
    """A flag value that cannot work; the message names the flag."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: 'fastrepr word2vec: error: argument --size: invalid int value: 'x''."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def nonnegative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float)
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text!r}")
    return value


def _number(text: str, kind):
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def input_file(text: str) -> str:
    """An existing, readable regular file (argparse type): the error names the path."""
    if not os.path.exists(text):
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"{text}: is a directory, expected a file")
    if not os.access(text, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text}: permission denied")
    return text


def device_flag(text: str) -> str:
    """A torch device string that can be used here (argparse type): 'cuda' without CUDA is an error."""
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a device (cpu, cuda, cuda:N)") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected cpu or cuda")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch is a CPU build" if not torch.version.cuda else "torch.cuda.is_available() is False"
            raise argparse.ArgumentTypeError(f"{text}: CUDA is not available ({why})")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return text


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
    check_writable(args.output, "-o/--output")  # fail before training, not after
    model.train(args.corpus)
    model.save_word2vec_format(args.output, binary=args.binary)
    print(f"{len(model.keys)} words x {model.vector_size} dims -> {args.output} "
          f"({model.words_per_second / 1e6:.2f}M words/s, {model.train_seconds:.1f} s, loss {model.loss:.4f})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fastrepr", description=__doc__.split("\n\n")[0],
                    epilog="Errors: one line and exit code 2 for a mistake in the input; FASTREPR_TRACEBACK=1 "
                           "shows the traceback.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, device, and which backends and optional pieces are available")
    sub.add_parser("demo", help="a short tour of the package on built-in data, with a benchmark table")
    p = sub.add_parser("bench", help="time ours against the baseline per op; append CSV rows and draw plots")
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
    from .evaluation import report

    report.add_arguments(sub.add_parser("eval-words", help="word analogies and word-pair similarity of a vector "
                                        "file, with gensim's exact semantics"))
    p = sub.add_parser("disentangle", help="disentanglement metrics of a representation of dSprites (Locatello et al. 2019)")
    from .evaluation import suite

    suite.add_arguments(p)
    p = sub.add_parser("word2vec", help="train word vectors on a text corpus (gensim-like flags)",
                       description="Train word2vec on CORPUS (one sentence per line, whitespace tokens) and write "
                                   "the vectors in word2vec format.")
    p.add_argument("corpus", type=input_file)
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
    p.add_argument("--device", default="cpu", type=device_flag, help="cpu or cuda")
    p.add_argument("--binary", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _with_flag(message: str, parser: argparse.ArgumentParser | None) -> str:
    """Prefix a library message about a parameter ("vector_size must be ...") with the flag that set it."""
    if parser is None or message.startswith("-"):
        return message
    for action in parser._actions:
        named = message.startswith((f"{action.dest} ", f"{action.dest}="))
        if action.option_strings and action.dest != "help" and named:
            return f"{'/'.join(action.option_strings)}: {message}"
    return message


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a one-line usage error (Parser.error): a return code, as below
        return exc.code if isinstance(exc.code, int) else 2
    handler = {"info": _cmd_info, "demo": _cmd_demo, "bench": _cmd_bench, "eval-words": _cmd_eval_words,
               "disentangle": _cmd_disentangle, "word2vec": _cmd_word2vec}[args.command]
    sub = next((a.choices.get(args.command) for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
               None)
    try:
        return handler(args)
    except KeyboardInterrupt:
        print(f"fastrepr {args.command}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as exc:
        # ValueError: a bad value or a malformed file (FormatError names the file and line); OSError: a file
        # that cannot be opened or written; RuntimeError: a missing piece (native build, CUDA, gensim data)
        if os.environ.get("FASTREPR_TRACEBACK", "0") not in ("", "0"):
            raise
        if isinstance(exc, OSError) and exc.filename is not None:
            text = f"{exc.filename}: {exc.strerror or exc}"
        else:
            text = _with_flag(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, sub)
        print(f"fastrepr {args.command}: error: {text}", file=sys.stderr)
        return 2
