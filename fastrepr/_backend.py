"""Backend selection: which implementation of an op runs for a given call.

``select(op, *tensors)`` returns ``"triton"`` for CUDA tensors, ``"native"`` (the C++ extension) for CPU
tensors, and ``"torch"`` (the plain-PyTorch reference) when neither applies. The environment variable
``FASTREPR_BACKEND=torch|native|triton`` forces one for every op; it is read at each call. Triton on CPU
tensors means Triton's interpreter (see ``fastrepr._triton``).
"""
from __future__ import annotations

import os

import torch

from . import _native, _triton

BACKENDS = ("triton", "native", "torch")
ENV = "FASTREPR_BACKEND"


def available(backend: str) -> tuple[bool, str]:
    """(usable, reason when not) for one backend in this process."""
    if backend == "torch":
        return True, ""
    if backend == "native":
        return _native.available()
    if backend == "triton":
        if not _triton.HAS_TRITON:
            return False, _triton.TRITON_ERROR
        if not _triton.HAS_CUDA and not _triton.INTERPRET:
            return False, "no CUDA device, and TRITON_INTERPRET was set to 0 before fastrepr was imported"
        return True, ""
    raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")


def forced() -> str | None:
    """The backend named by FASTREPR_BACKEND, or None."""
    name = os.environ.get(ENV, "").strip().lower()
    if not name:
        return None
    if name not in BACKENDS:
        raise ValueError(f"{ENV}={name!r} is not a backend; expected one of {', '.join(BACKENDS)}")
    return name


def select(op: str, *tensors: torch.Tensor, impls: tuple[str, ...] = BACKENDS, force: str | None = None) -> str:
    """Pick the implementation of ``op`` for these tensors (all on one device; callers validate that).

    ``impls`` lists the backends the op implements. ``force`` (a caller's explicit choice) takes precedence
    over FASTREPR_BACKEND. A forced backend that the op lacks, that is not usable here, or that cannot take
    these tensors raises RuntimeError naming the reason.
    """
    device = tensors[0].device
    name = force or forced()
    if name is not None:
        label = f"backend={name}" if force else f"{ENV}={name}"
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
        if name not in impls:
            raise RuntimeError(f"{label}: {op} has no {name} implementation (it has {', '.join(impls)})")
        ok, why = available(name)
        if not ok:
            raise RuntimeError(f"{label}: {why}")
        if name == "native" and device.type != "cpu":
            raise RuntimeError(f"{label}: {op} got {device.type} tensors; the native backend takes CPU tensors")
        if name == "triton" and device.type not in ("cuda", "cpu"):
            raise RuntimeError(f"{label}: {op} got {device.type} tensors")
        if name == "triton" and device.type == "cpu" and not _triton.INTERPRET:
            raise RuntimeError(f"{label}: {op} got CPU tensors but Triton is not in interpreter mode")
        return name
    if device.type == "cuda" and "triton" in impls and available("triton")[0]:
        return "triton"
    if device.type == "cpu" and "native" in impls and available("native")[0]:
        return "native"
    return "torch"
