"""Shared test helpers: the tolerance table, the assert-close-to-oracle helper, and parametrization over an
op's declared implementations (its ``IMPLS``, read from ``fastrepr._backend``).

Import at the top of a test module (``from utils import TOL, assert_close, impl_params, use_impl``); pytest puts
this directory on ``sys.path`` (tests/ has no ``__init__.py``).
"""
from __future__ import annotations

import os
from typing import NamedTuple

import pytest
import torch

from fastrepr import _backend

HAS_CUDA = torch.cuda.is_available()
NATIVE_EXPECTED = os.environ.get("FASTREPR_SKIP_NATIVE", "0") in ("", "0")


class Tol(NamedTuple):
    rtol: float
    atol: float


# Against a float64 oracle. fp32: DESIGN.md's 1e-5 relative (atol for entries near 0). bf16/fp16: the error of
# PyTorch's own op in that precision is about one unit in the last place (2^-8, 2^-11); an implementation may
# be up to 2x of that. float64: accumulation-order differences only. Gradients get GRAD_TOL (issue bars: 1e-4).
TOL = {
    torch.float64: Tol(1e-10, 1e-12),
    torch.float32: Tol(1e-5, 1e-6),
    torch.bfloat16: Tol(2 * 2.0 ** -8, 2 * 2.0 ** -8),
    torch.float16: Tol(2 * 2.0 ** -11, 2 * 2.0 ** -11),
}
GRAD_TOL = {
    torch.float64: Tol(1e-9, 1e-11),
    torch.float32: Tol(1e-4, 1e-6),
    torch.bfloat16: Tol(4 * 2.0 ** -8, 4 * 2.0 ** -8),
    torch.float16: Tol(4 * 2.0 ** -11, 4 * 2.0 ** -11),
}


def assert_close(actual, expected, dtype: torch.dtype | None = None, *, grad: bool = False, what: str = "",
                 scale: float = 1.0) -> None:
    """``actual`` (any implementation) close to ``expected`` (the oracle, usually float64) at the tolerance of
    ``dtype`` (default: ``actual``'s dtype), widened by ``scale`` for a documented reason at the call site."""
    actual = torch.as_tensor(actual)
    expected = torch.as_tensor(expected)
    dtype = dtype or actual.dtype
    tol = (GRAD_TOL if grad else TOL)[dtype]
    torch.testing.assert_close(actual.detach().to(torch.float64).cpu(), expected.detach().to(torch.float64).cpu(),
                               rtol=tol.rtol * scale, atol=tol.atol * scale,
                               msg=lambda m: f"{what} ({dtype}, {'grad' if grad else 'value'}): {m}" if what else m)


def use_impl(name: str, monkeypatch) -> str:
    """Force implementation ``name`` for the rest of the test; skip if it cannot run here (fail if the native
    build is missing from an install that should have it, so a broken build cannot pass as a skip)."""
    ok, why = _backend.available(name)
    if not ok:
        if name == "native" and NATIVE_EXPECTED:
            pytest.fail(f"native extension missing although FASTREPR_SKIP_NATIVE is not set: {why}")
        pytest.skip(why)
    monkeypatch.setenv(_backend.ENV, name)
    return name


def impl_device(name: str) -> torch.device:
    """Where an implementation's test tensors live: CUDA for triton when there is a GPU, else CPU."""
    return torch.device("cuda" if name == "triton" and HAS_CUDA else "cpu")


class Backend(NamedTuple):
    name: str
    device: torch.device  # where this implementation's test tensors live (impl_device)


def impl_params(impls: _backend.Impls) -> list:
    """pytest params over the implementations an op declares (use with ``@pytest.mark.parametrize("impl",
    impl_params(IMPLS))`` and ``use_impl(impl, monkeypatch)`` in the test)."""
    return [pytest.param(name, id=name) for name in impls.names]


def engine_fixture(names) -> object:
    """A pytest fixture over EmbeddingIndex engines ``names``: "auto" and "faiss" as they are, an op
    implementation forced through FASTREPR_BACKEND (``use_impl``); build the index with ``index_backend``."""

    @pytest.fixture(params=list(names))
    def engine(request, monkeypatch):
        if request.param in _backend.BACKENDS:
            use_impl(request.param, monkeypatch)
        return request.param

    return engine


def index_backend(engine: str) -> str:
    """EmbeddingIndex's backend= for an engine (an op implementation is forced by the fixture, not by it)."""
    return engine if engine in ("auto", "faiss") else "auto"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for a test's process group)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _single_threaded(rank, fn, *args):
    # A forked child must not enter the OpenMP pool its parent already started: GNU libgomp is not fork-safe and
    # the child's first parallel region can wait forever (seen in the full suite, never in a file alone).
    torch.set_num_threads(1)
    fn(rank, *args)


def fork_workers(fn, args: tuple, nprocs: int, timeout: float = 300.0) -> None:
    """Run fn(rank, *args) in `nprocs` forked processes and wait for all of them, failing after `timeout` seconds
    instead of hanging the suite.

    fork, not spawn: the children inherit the imported torch and fastrepr (spawn re-imports them, ~30 s each on
    2 cores); gloo on CPU is safe to fork into before any process group exists. Each child runs single-threaded
    (see _single_threaded)."""
    import time

    import torch.multiprocessing as mp

    ctx = mp.start_processes(_single_threaded, args=(fn, *args), nprocs=nprocs, join=False, start_method="fork")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1.0):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                p.kill()
            raise TimeoutError(f"{nprocs} worker processes of {getattr(fn, '__name__', fn)} still running after "
                               f"{timeout:.0f} s")
