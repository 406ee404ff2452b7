"""pytest-benchmark view of the search and evaluation entries (analogies, most_similar, kNN probe) against
their baselines (gensim, plain PyTorch, scikit-learn).

    pytest benchmarks/bench_search.py --benchmark-group-by=param:op

Uses the registry entries of `fastrepr bench` (fastrepr/evaluation/benchmarks.py) at this device's default
sizes. The bar measurement (the whole Google set over 100k x 300 vectors against gensim, once) is
`python -c "from fastrepr.evaluation.benchmarks import full_google_set; print(full_google_set())"`.
"""
import pytest
import torch

from fastrepr import bench

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
OPS = ("analogy_eval", "analogy_3cosadd", "analogy_3cosmul", "most_similar", "knn_probe")
CASES = [(op, size) for op in OPS if op in bench.REGISTRY for size in bench.REGISTRY[op].sizes.get(DEVICE.type, [])]


@pytest.mark.parametrize("side", ["ours", "baseline"])
@pytest.mark.parametrize("op, size", CASES, ids=[f"{op}-{'x'.join(map(str, s))}" for op, s in CASES])
def test_search(benchmark, op, size, side):
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
    benchmark.pedantic(call, rounds=3, iterations=1, warmup_rounds=1)
