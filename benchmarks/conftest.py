"""pytest-benchmark view of ``fastrepr.bench.REGISTRY``: ``pytest benchmarks --benchmark-only`` times every
registered entry, ours and its baseline (grouped by op), at its smallest size for the device (CPU here: the
first of the entry's default sizes, or its ``test_size`` when it has none). The implementation that ran is
in each result's ``extra_info["impl"]``. ``fastrepr bench`` is the full sweep with CSV rows and plots.

Plain ``pytest`` (the README's test command) runs ``tests/`` only (pyproject's testpaths)."""
import pytest
import torch

from fastrepr import bench

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
_INPUTS: dict = {}


def entry_inputs(op: str):
    """(entry, size, inputs) of one op, set up once per session and shared by ours and the baseline."""
    if op not in _INPUTS:
        entry = bench.REGISTRY[op]
        size = entry.smallest(DEVICE.type)
        torch.manual_seed(0)
        _INPUTS.clear()  # one op's inputs alive at a time (tests run op by op)
        _INPUTS[op] = entry, size, entry.setup(size, DEVICE, entry.dtypes.get(DEVICE.type, torch.float32))
    return _INPUTS[op]


@pytest.fixture
def inputs_of():
    return entry_inputs
