"""Optional Triton import shared by every ``fastrepr/ops`` module.

Without a CUDA device, Triton kernels can only run in Triton's interpreter, so ``TRITON_INTERPRET=1`` is
set here (if the user has not set it) *before* triton is imported: ``triton.jit`` decides between compiling
and interpreting when a kernel is defined. When triton is not installed, ``triton`` and ``tl`` are stand-ins
that let the op modules import (kernels are still defined, never callable) and ``HAS_TRITON`` is False.
"""
from __future__ import annotations

import functools
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


# ------------------------------------------------------------------------------------------- shared memory

# Shared memory one block may use (the opt-in maximum, bytes) on the cards tests/test_gpu_compile.py compiles
# for. CUDA C++ Programming Guide, "Technical Specifications per Compute Capability": 163 KB on 8.0 (A100),
# 227 KB on 9.0 (H100, H200); 8.6 and 8.9 (RTX 30xx/40xx, A10, L4) allow 99 KB, which the run-time limit
# below reads off the device instead.
SHARED_MEMORY_PER_BLOCK = {80: 163 * 1024, 90: 227 * 1024}
SHARED_MEMORY_DEFAULT = 48 * 1024  # what every CUDA card allows a block without opting in


def device_arch(device) -> tuple[int, int]:
    """(compute capability as 80, 90, ..., shared memory one block may use in bytes) of a CUDA device, read
    from the device at run time (once per device)."""
    return _device_arch(torch.device(device).index or 0)


@functools.lru_cache(maxsize=None)
def _device_arch(index: int) -> tuple[int, int]:
    props = torch.cuda.get_device_properties(index)
    arch = props.major * 10 + props.minor
    limit = getattr(props, "shared_memory_per_block_optin", 0)
    return arch, int(limit or SHARED_MEMORY_PER_BLOCK.get(arch, SHARED_MEMORY_DEFAULT))


def tile_bytes(dtype, *tiles: tuple[int, int]) -> int:
    """Bytes of the [rows, cols] tiles in a torch dtype (the terms of a shared-memory estimate)."""
    return dtype.itemsize * sum(rows * cols for rows, cols in tiles)


class SharedMemoryPrune:
    """``early_config_prune`` for ``triton.autotune``: drops the configs whose shared memory exceeds what the
    launch device allows a block, so that the autotuner never compiles or times them.

    ``estimate(config, named_args, kwargs, arch)`` gives the bytes a config needs at this launch on a card of
    compute capability ``arch`` (named_args: the kernel's positional arguments by name, kwargs: the constexprs
    passed by keyword). It must not be below what Triton allocates: tests/test_gpu_compile.py compares it with
    the compiled ``metadata.shared`` of every config for sm_80 and sm_90. When no config fits (a card with
    little shared memory) the smallest one is kept, and Triton's launch raises OutOfResources naming the sizes.
    """

    def __init__(self, estimate):
        self.estimate = estimate

    def __call__(self, configs, named_args, **kwargs):
        device = next(a.device for a in named_args.values() if isinstance(a, torch.Tensor))
        card = device_arch(device)
        return self.keep(configs, named_args, kwargs, *card) or [
            min(configs, key=lambda c: self.estimate(c, named_args, kwargs, card[0]))]

    def keep(self, configs, named_args, kwargs, arch: int, limit: int) -> list:
        """The configs that fit ``limit`` bytes on a card of compute capability ``arch`` (maybe none)."""
        return [c for c in configs if self.estimate(c, named_args, kwargs, arch) <= limit]


# ------------------------------------------------------------------------------------------- compile cases

class CompileCase:
    """One way a launcher calls a kernel on a GPU, declared in the kernel's op file (``compile_cases()``) so
    that tests/test_gpu_compile.py can compile it for sm_80 and sm_90 without a GPU.

    kernel: the ``@triton.jit`` function, or its ``triton.autotune`` wrapper (then each config of the
    autotuner's list is compiled, after the shared-memory check of its prune).
    args: every runtime parameter as the launcher passes it: a torch.dtype stands for a tensor of that dtype
    (16-byte aligned, as torch allocates), ints and floats are example values that Triton specializes as at a
    launch (1 becomes a constant, multiples of 16 get a divisibility hint, large ints are 64-bit).
    constexprs: the compile-time parameters; options: launch options (num_warps, num_stages) of a plain kernel.
    arches: the compute capabilities the launcher makes this launch on (a tiling that depends on the card).
    """

    def __init__(self, kernel, args: dict, constexprs: dict, arches=tuple(SHARED_MEMORY_PER_BLOCK), **options):
        self.kernel, self.args, self.constexprs, self.options = kernel, args, constexprs, options
        self.arches = tuple(arches)

    def label(self) -> str:
        """The tensor dtypes, then the constexprs and options, e.g. "float16/int64 BLOCK_D=64 HAS_ROW=T"."""
        dtypes = dict.fromkeys(str(v)[6:] for v in self.args.values() if isinstance(v, torch.dtype))
        shown = {k: "TF"[not v] if isinstance(v, bool) else v for k, v in {**self.constexprs, **self.options}.items()}
        return " ".join(["/".join(dtypes)] + [f"{k}={v}" for k, v in shown.items()])
