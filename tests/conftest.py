"""Shared fixtures: seeds, the `backend` fixture (each test runs once per usable backend), and the `gpu`
marker, skipped cleanly without a CUDA device."""
import os

import pytest
import torch

# Triton's interpreter has to be chosen before triton.jit defines any kernel, i.e. before fastrepr.ops is
# imported (fastrepr._triton does the same on import; this keeps it explicit for the test session).
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

from fastrepr import _backend  # noqa: E402

from utils import HAS_CUDA, Backend, impl_device, use_impl  # noqa: E402


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


@pytest.fixture(params=list(_backend.BACKENDS))
def backend(request, monkeypatch):
    name = use_impl(request.param, monkeypatch)
    return Backend(name, impl_device(name))


@pytest.fixture
def device():
    return torch.device("cuda" if HAS_CUDA else "cpu")
