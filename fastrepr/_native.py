"""Lazy access to the native extension ``fastrepr._C``.

``import fastrepr`` never fails when the extension is missing (``FASTREPR_SKIP_NATIVE=1`` installs, or a
failed build): ``get()`` then raises an error that says how to build it, and ``available()`` reports why.
"""
from __future__ import annotations

import torch

_module = None
_error: str | None = None
_loaded = False

_BUILD_HINT = (
    "the fastrepr native extension (fastrepr._C) is not built: reinstall with `pip install -e .` "
    "(without FASTREPR_SKIP_NATIVE=1; needs cmake, a C++17 compiler and pybind11), or use "
    "FASTREPR_BACKEND=torch"
)


def _load() -> None:
    global _module, _error, _loaded
    if _loaded:
        return
    _loaded = True
    try:
        from . import _C  # type: ignore[attr-defined]

        _module = _C
    except ImportError as exc:
        _error = f"{_BUILD_HINT} ({exc})"


def available() -> tuple[bool, str]:
    """(True, "") if the extension imports, else (False, reason)."""
    _load()
    return _module is not None, _error or ""


def get():
    """The ``fastrepr._C`` module; raises RuntimeError with build instructions when it is absent."""
    _load()
    if _module is None:
        raise RuntimeError(_error)
    return _module


_BITS = {torch.bfloat16: torch.int16, torch.float16: torch.int16}


def as_buffer(t: torch.Tensor):
    """A zero-copy numpy view of a CPU tensor for the kernels (a copy only if it is not contiguous).

    16-bit floats have no numpy dtype, so they travel as their raw int16 bits; the kernel is told the real
    dtype by name (``dtype_name``).
    """
    t = t.detach().contiguous()
    if t.dtype in _BITS:
        t = t.view(_BITS[t.dtype])
    return t.numpy()


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")
