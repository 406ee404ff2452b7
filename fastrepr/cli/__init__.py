"""Command line: `fastrepr info | demo | bench | eval-words | disentangle | word2vec | train-vae`
(also `python -m fastrepr ...`).

A user's mistake (a missing, unreadable or malformed file, a bad flag value, `--device cuda` without CUDA, an
output path that cannot be written) is one line on stderr naming the flag or file, and exit code 2; inputs
and outputs are checked before any long work starts. A traceback means a bug (FASTREPR_TRACEBACK=1 shows one
for the one-line errors too).

One module per command, each with ``HELP``, ``add_arguments(parser)`` and ``main(args) -> int``; the library
packages hold no argparse and no printing.
"""
from __future__ import annotations

import argparse
import os
import sys

from . import bench, demo, disentangle, eval_words, info, word2vec
from .args import (Parser, UsageError, device_flag, input_file, nonnegative_int, positive_float, positive_int,
                   with_flag)
from .info import info_lines

COMMANDS = {"info": info, "demo": demo, "bench": bench, "eval-words": eval_words, "disentangle": disentangle,
            "word2vec": word2vec}
from . import eval_embeddings  # noqa: E402 (issue 14: the eval-embeddings command)

COMMANDS["eval-embeddings"] = eval_embeddings
from . import train_vae  # noqa: E402 (issue 15: the train-vae command)

COMMANDS["train-vae"] = train_vae

__all__ = ["main", "build_parser", "COMMANDS", "Parser", "UsageError", "device_flag", "input_file",
           "nonnegative_int", "positive_float", "positive_int", "info_lines"]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="fastrepr", description=__doc__.split("\n\n")[0],
                    epilog="Errors: one line and exit code 2 for a mistake in the input; FASTREPR_TRACEBACK=1 "
                           "shows the traceback.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, module in COMMANDS.items():
        module.add_arguments(sub.add_parser(name, help=module.HELP,
                                            description=getattr(module, "DESCRIPTION", None)))
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a one-line usage error (Parser.error): a return code, as below
        return exc.code if isinstance(exc.code, int) else 2
    sub = next((a.choices.get(args.command) for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
               None)
    try:
        return COMMANDS[args.command].main(args)
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
            text = with_flag(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, sub)
        print(f"fastrepr {args.command}: error: {text}", file=sys.stderr)
        return 2
