"""Every entry of fastrepr.bench.REGISTRY as two pytest-benchmark tests (ours, baseline), generated from the
registry: a new entry is benchmarked here without a line added (see conftest.py)."""
import time

import pytest
import torch

from fastrepr import bench

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # as conftest.py's

OPS = [op for op, entry in bench.REGISTRY.items() if entry.smallest(DEVICE.type) is not None]
SLOW_S = 0.2  # a call slower than this is timed in single rounds (word2vec training, the disentanglement suite)


def _sync():
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def _bench(benchmark, fn):
    t0 = time.perf_counter()
    fn()  # warm-up, and how long one call takes
    _sync()
    if time.perf_counter() - t0 > SLOW_S:
        return benchmark.pedantic(fn, rounds=3 if time.perf_counter() - t0 < 2 else 1, iterations=1)
    return benchmark(fn)


@pytest.mark.parametrize("op", OPS)
def test_ours(benchmark, inputs_of, op):
    entry, size, x = inputs_of(op)
    benchmark.group = f"{op} {entry.label(size)}"
    benchmark.extra_info["impl"] = bench.recorded_impl(lambda: entry.ours(x))
    _bench(benchmark, lambda: entry.ours(x))


@pytest.mark.parametrize("op", OPS)
def test_baseline(benchmark, inputs_of, op):
    entry, size, x = inputs_of(op)
    benchmark.group = f"{op} {entry.label(size)}"
    benchmark.extra_info["baseline"] = entry.baseline_name
    _bench(benchmark, lambda: entry.baseline(x))
