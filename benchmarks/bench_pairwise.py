"""pytest-benchmark view of pairwise_abs_diff_mean against the plain-PyTorch expression.

    pytest benchmarks/bench_pairwise.py --benchmark-group-by=param:size

Uses the same registry entries (inputs, ours, baseline) as `fastrepr bench`; sizes are the defaults for
this machine's device (CUDA when available).
"""
import pytest
import torch

from fastrepr import bench

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
CASES = [(op, size) for op in ("pairwise_abs_diff_mean", "pairwise_abs_diff_mean_dense")
         for size in bench.REGISTRY[op].sizes[DEVICE.type]]


@pytest.mark.parametrize("side", ["ours", "baseline"])
@pytest.mark.parametrize("op, size", CASES, ids=[f"{op}-{'x'.join(map(str, s))}" for op, s in CASES])
def test_pairwise(benchmark, op, size, side):
    spec = bench.REGISTRY[op]
    torch.manual_seed(0)
    inputs = spec.setup(size, DEVICE, spec.dtypes[DEVICE.type])
    fn = getattr(spec, side)

    def call():
        out = fn(inputs)
        if DEVICE.type == "cuda":
            torch.cuda.synchronize()
        return out

    benchmark.group = f"{op} {spec.label(size)}"
    benchmark(call)
