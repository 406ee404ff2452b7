"""Shared fixtures: seeds, the `backend` fixture (each test runs once per usable backend), and the `gpu`
marker, skipped cleanly without a CUDA device."""
import os
from typing import NamedTuple

import pytest
import torch

# Triton's interpreter has to be chosen before triton.jit defines any kernel, i.e. before fastrepr.ops is
# imported (fastrepr._triton does the same on import; this keeps it explicit for the test session).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fastrepr import _backend  # noqa: E402

HAS_CUDA = torch.cuda.is_available()
NATIVE_EXPECTED = os.environ.get("FASTREPR_SKIP_NATIVE", "0") in ("", "0")


def pytest_collection_modifyitems(config, items):
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (run benchmarks/gpu_check.sh on a GPU machine)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def use_backend(name: str, monkeypatch) -> str:
    """Force `name` for the rest of the test; skip if it cannot run here (fail if the native build is
    missing from an install that should have it, so a broken build cannot pass as a skip)."""
    ok, why = _backend.available(name)
    if not ok:
        if name == "native" and NATIVE_EXPECTED:
            pytest.fail(f"native extension missing although FASTREPR_SKIP_NATIVE is not set: {why}")
        pytest.skip(why)
    monkeypatch.setenv(_backend.ENV, name)
    return name


class Backend(NamedTuple):
    name: str
    device: torch.device  # where this backend's test tensors live: CUDA for triton when there is a GPU


@pytest.fixture(params=list(_backend.BACKENDS))
def backend(request, monkeypatch):
    name = use_backend(request.param, monkeypatch)
    return Backend(name, torch.device("cuda" if name == "triton" and HAS_CUDA else "cpu"))


@pytest.fixture
def device():
    return torch.device("cuda" if HAS_CUDA else "cpu")
