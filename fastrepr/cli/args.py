"""What every command's flags share: the one-line-error parser, the argparse types that check a value before
any long work starts, and the error a command raises for a flag value that cannot work."""
from __future__ import annotations

import argparse
import os

import torch


class UsageError(ValueError):
    """A flag value that cannot work; the message names the flag."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: 'fastrepr word2vec: error: argument --size: invalid int value: 'x''."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(text: str, kind):
    try:
        return kind(text)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


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


def with_flag(message: str, parser: argparse.ArgumentParser | None) -> str:
    """Prefix a library message about a parameter ("vector_size must be ...") with the flag that set it."""
    if parser is None or message.startswith("-"):
        return message
    for action in parser._actions:
        named = message.startswith((f"{action.dest} ", f"{action.dest}="))
        if action.option_strings and action.dest != "help" and named:
            return f"{'/'.join(action.option_strings)}: {message}"
    return message
