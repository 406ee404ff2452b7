"""Which implementation of an op runs for a given call: the per-op table and the one dispatcher.

Each op file declares its implementations as data, ``IMPLS = declare("op", Impls(triton=..., native=...,
torch=...))`` with only those it has, and its custom op calls ``dispatch("op", IMPLS, *args)``. Nothing else
chooses an implementation. The choice, per call, from the device of the first tensor argument:

  * ``FASTREPR_BACKEND=triton|native|torch`` (read at each call) forces one for every op; a forced backend that
    the op lacks, that is not usable here, or that cannot take these arguments raises RuntimeError saying why;
  * otherwise: ``triton`` for CUDA tensors, ``native`` (the C++ extension) for CPU tensors, ``torch`` (plain
    PyTorch, possibly chunked; not the oracle in ``fastrepr.reference``) when neither applies or can take them.

Triton on CPU tensors means Triton's interpreter (see ``fastrepr._triton``). ``Impls.rejects`` lets an op say
that an implementation cannot take particular arguments (float64 on Triton, say): the automatic choice passes
it over and a forced one raises with that reason. ``recording()`` collects which implementation each op used
(the benchmark rows say what ran), and ``table()`` is the op x implementation x available-here table that
``fastrepr info --ops``, the tests and the benchmarks read.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

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
    """The backend named by FASTREPR_BACKEND (or by an enclosing ``forcing`` block in this thread), or None."""
    name = getattr(_local, "forcing", None) or os.environ.get(ENV, "").strip().lower()
    if not name:
        return None
    if name not in BACKENDS:
        raise ValueError(f"{ENV}={name!r} is not a backend; expected one of {', '.join(BACKENDS)}")
    return name


@dataclass(frozen=True)
class Impls:
    """The implementations of one op, each a callable taking the op's arguments (None: the op lacks it).

    rejects(name, args, kwargs) -> a reason string when implementation ``name`` cannot take these arguments
    (the automatic choice then passes it over; a forced choice raises with the reason), else None.
    no_float64: the implementations that take no float64 first argument (Triton's dots are fp32 at most; a
    float32-tile native kernel), the most common reason, declared as data; rejects is asked after it.
    """

    triton: Callable | None = None
    native: Callable | None = None
    torch: Callable | None = None
    rejects: Callable[[str, tuple, dict], str | None] | None = None
    no_float64: tuple[str, ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The implementations present, in BACKENDS order."""
        return tuple(n for n in BACKENDS if getattr(self, n) is not None)

    def reason(self, name: str, args: tuple, kwargs: dict) -> str | None:
        if name in self.no_float64 and args and getattr(args[0], "dtype", None) == torch.float64:
            others = [n for n in self.names if n not in self.no_float64]
            return f"takes no float64 on {name} ({' and '.join(others) or 'no implementation'} does)"
        return self.rejects(name, args, kwargs) if self.rejects is not None else None


OPS: dict[str, Impls] = {}  # every declared op, filled as the op modules are imported


def declare(op: str, impls: Impls) -> Impls:
    """Record ``op``'s implementations in the table (once per op) and return them."""
    if not impls.names:
        raise ValueError(f"{op}: an op needs at least one implementation")
    if op in OPS and OPS[op] is not impls:
        raise ValueError(f"op {op!r} declared twice")
    OPS[op] = impls
    return impls


def _device_problem(name: str, device: torch.device) -> str | None:
    if name == "native" and device.type != "cpu":
        return f"got {device.type} tensors; the native backend takes CPU tensors"
    if name == "triton":
        if device.type not in ("cuda", "cpu"):
            return f"got {device.type} tensors; the triton backend takes CUDA tensors (or CPU ones in its interpreter)"
        if device.type == "cpu" and not _triton.INTERPRET:
            return "got CPU tensors but Triton is not in interpreter mode"
    return None


def choose(op: str, impls: Impls, device: torch.device, args: tuple = (), kwargs: dict | None = None) -> str:
    """The implementation of ``op`` that runs for arguments on ``device`` (see the module docstring)."""
    kwargs = kwargs or {}
    name = forced()
    if name is not None:
        label = f"{ENV}={name}" if getattr(_local, "forcing", None) is None else f"backend={name}"
        if name not in impls.names:
            raise RuntimeError(f"{label}: {op} has no {name} implementation (it has {', '.join(impls.names)})")
        ok, why = available(name)
        if not ok:
            raise RuntimeError(f"{label}: {why}")
        why = _device_problem(name, device) or impls.reason(name, args, kwargs)
        if why:
            raise RuntimeError(f"{label}: {op} {why}")
        return name
    preferred = {"cuda": ("triton", "torch"), "cpu": ("native", "torch")}.get(device.type, ("torch",))
    passed_over = []
    for name in preferred:
        if name not in impls.names:
            continue
        ok, why = available(name)
        why = None if ok else why
        why = why or _device_problem(name, device) or impls.reason(name, args, kwargs)
        if why is None:
            return name
        passed_over.append(f"{name}: {why}")
    detail = "; ".join(passed_over) or f"it has only {', '.join(impls.names)}"
    raise RuntimeError(f"{op}: no implementation can take {device.type} tensors here ({detail})")


_local = threading.local()


@contextmanager
def forcing(name: str | None) -> Iterator[None]:
    """Inside the block (this thread), dispatch as if FASTREPR_BACKEND=name (None: no change). Only for the
    deprecated ``backend=`` arguments of public functions, so that they route through this one dispatcher."""
    if name is not None and name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; expected one of {BACKENDS}")
    before = getattr(_local, "forcing", None)
    _local.forcing = name or before
    try:
        yield
    finally:
        _local.forcing = before


def _recorders() -> list[dict]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


@contextmanager
def recording() -> Iterator[dict[str, str]]:
    """Collect {op: implementation} for the ops dispatched inside the block (in this thread; the last call of
    an op wins)."""
    ran: dict[str, str] = {}
    _recorders().append(ran)
    try:
        yield ran
    finally:
        _recorders().remove(ran)


def _first_device(args: tuple, kwargs: dict) -> torch.device:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device
    raise TypeError("dispatch needs at least one tensor argument to choose an implementation")


def dispatch(op: str, impls: Impls, *args, **kwargs):
    """Run ``op``'s chosen implementation on these arguments, and record which one ran."""
    name = choose(op, impls, _first_device(args, kwargs), args, kwargs)
    for ran in _recorders():
        ran[op] = name
    return getattr(impls, name)(*args, **kwargs)


def table() -> list[tuple[str, str, bool, str]]:
    """(op, implementation, usable here, why not) for every declared op and implementation it has."""
    rows = []
    for op in sorted(OPS):
        for name in OPS[op].names:
            ok, why = available(name)
            rows.append((op, name, ok, why))
    return rows
