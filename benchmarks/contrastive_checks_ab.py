"""A/B timing of the contrastive losses' input checks and overflow-safe normalization (issue 9), on CPU.

"before" swaps in the previous code path (norm formed directly, clamped at 1e-12; one NaN/temperature check);
"after" is the package as it is (row-max scaling, named row checks, the temperature check in the compute
dtype). Both run nt_xent forward+backward at the CPU sizes of `fastrepr bench --op nt_xent`, alternating
within one process; prints medians and the ratio after / before.

    flock /tmp/fastrepr-bench.lock .venv/bin/python benchmarks/contrastive_checks_ab.py [--reps 15]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

import fastrepr
from fastrepr.ops import contrastive


def _normalize_before(x):
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    norm = x.to(acc).norm(dim=1).clamp_min(1e-12)
    return (x.to(acc) / norm[:, None]).to(x.dtype), 1.0 / norm


def _check_values_before(x, y, temperature, normalize, same, names):
    ok = torch.isfinite(x).all() & torch.isfinite(y).all() & (temperature > 0) & torch.isfinite(temperature)
    if not bool(ok):
        raise ValueError("embeddings contain NaN or Inf")
    return temperature


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args()
    after = (contrastive._normalize, contrastive._check_values)
    before = (_normalize_before, _check_values_before)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("2N     D    before ms  after ms  after/before")
    for n2, d in [(1024, 128), (4096, 128), (8192, 128)]:
        z1, z2 = (torch.randn(n2 // 2, d, requires_grad=True) for _ in range(2))
        times = {"before": [], "after": []}

        def step(which):
            contrastive._normalize, contrastive._check_values = before if which == "before" else after
            z1.grad = z2.grad = None
            t0 = time.perf_counter()
            fastrepr.nt_xent(z1, z2, 0.1).backward()
            return time.perf_counter() - t0

        for which in ("before", "after"):  # warm-up
            step(which)
        for _ in range(args.reps):
            for which in ("before", "after"):
                times[which].append(step(which))
        contrastive._normalize, contrastive._check_values = after
        b, a = (statistics.median(times[k]) * 1e3 for k in ("before", "after"))
        print(f"{n2:<6} {d:<4} {b:9.2f} {a:9.2f} {a / b:8.3f}")
    # the changed O(N·D) parts alone (normalize + checks of the stacked [2N, D] input), where the difference lives
    print("2N     D    checks+normalize before us  after us")
    t = torch.tensor(0.1)
    for n2, d in [(1024, 128), (4096, 128), (8192, 128)]:
        x = torch.randn(n2, d)
        times = {"before": [], "after": []}
        for _ in range(5 * args.reps):
            for which, (norm, check) in (("before", before), ("after", after)):
                t0 = time.perf_counter()
                check(x, x, t, True, True, "z1+z2|z1+z2")
                norm(x)
                times[which].append(time.perf_counter() - t0)
        b, a = (statistics.median(times[k]) * 1e6 for k in ("before", "after"))
        print(f"{n2:<6} {d:<4} {b:26.0f} {a:9.0f}")


if __name__ == "__main__":
    main()
