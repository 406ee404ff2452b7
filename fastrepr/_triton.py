"""Optional Triton import shared by every ``fastrepr/ops`` module.

Without a CUDA device, Triton kernels can only run in Triton's interpreter, so ``TRITON_INTERPRET=1`` is
set here (if the user has not set it) *before* triton is imported: ``triton.jit`` decides between compiling
and interpreting when a kernel is defined. When triton is not installed, ``triton`` and ``tl`` are stand-ins
that let the op modules import (kernels are still defined, never callable) and ``HAS_TRITON`` is False.
"""
from __future__ import annotations

import os

import torch

HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")
INTERPRET = os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")

try:
    import triton
    import triton.language as tl

    HAS_TRITON = True
    TRITON_ERROR = ""
except Exception as exc:  # ImportError, or a broken install raising something else
    HAS_TRITON = False
    TRITON_ERROR = f"triton is not importable ({type(exc).__name__}: {exc}); install it with `pip install triton`"

    class _Missing:
        """Absorbs attribute access and calls, so that kernel definitions still execute at import."""

        def __getattr__(self, name):
            return _Missing()

        def __call__(self, *args, **kwargs):
            if len(args) == 1 and callable(args[0]) and not kwargs:
                return _unavailable(args[0])  # used as a bare decorator: @triton.jit
            return lambda fn: _unavailable(fn)  # decorator factory: @triton.jit(...)

    def _unavailable(fn):
        def kernel(*args, **kwargs):
            raise RuntimeError(f"cannot run Triton kernel {fn.__name__}: {TRITON_ERROR}")

        return _Launchable(kernel)

    class _Launchable:
        def __init__(self, fn):
            self.fn = fn

        def __getitem__(self, grid):
            return self.fn

    triton = _Missing()
    tl = _Missing()


def next_power_of_2(n: int) -> int:
    return 1 if n <= 1 else 1 << (int(n) - 1).bit_length()
