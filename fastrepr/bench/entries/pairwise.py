"""Pairwise |z1 - z2| means (BetaVAE's core): the index form and the dense form against plain PyTorch."""
from __future__ import annotations

import torch

from fastrepr.functional import pairwise_abs_diff_mean

from ..harness import Bench


def _index_setup(size, device, dtype):
    n, p, b, d = size
    return {"z": torch.randn(n, d, device=device, dtype=dtype),
            "i": torch.randint(0, n, (p, b), device=device), "j": torch.randint(0, n, (p, b), device=device)}


def _dense_setup(size, device, dtype):
    p, b, d = size
    return {"z1": torch.randn(p, b, d, device=device, dtype=dtype), "z2": torch.randn(p, b, d, device=device, dtype=dtype)}


def entries() -> list[Bench]:
    index_sizes = {"cpu": [(100_000, 1_000, 64, 10), (100_000, 10_000, 64, 10), (1_000_000, 10_000, 64, 16)],
                   "cuda": [(100_000, 10_000, 64, 16), (1_000_000, 100_000, 64, 16), (1_000_000, 100_000, 64, 64)]}
    dense_sizes = {"cpu": [(1_000, 64, 10), (10_000, 64, 10)], "cuda": [(10_000, 64, 16), (100_000, 64, 16)]}
    return [
        Bench(op="pairwise_abs_diff_mean", baseline_name="torch (z[i]-z[j]).abs().mean(1)",
              size_names=("N", "P", "B", "D"), sizes=index_sizes, setup=_index_setup,
              ours=lambda x: pairwise_abs_diff_mean(x["z"], i=x["i"], j=x["j"]),
              baseline=lambda x: (x["z"][x["i"]] - x["z"][x["j"]]).abs().mean(1),
              work=lambda s: s[1] * s[2] * s[3], work_label="P·B·D",
              demo={dev: s[1] for dev, s in index_sizes.items()}),
        Bench(op="pairwise_abs_diff_mean_dense", baseline_name="torch (z1-z2).abs().mean(1)",
              size_names=("P", "B", "D"), sizes=dense_sizes, setup=_dense_setup,
              ours=lambda x: pairwise_abs_diff_mean(x["z1"], x["z2"]),
              baseline=lambda x: (x["z1"] - x["z2"]).abs().mean(1),
              demo={dev: s[1] for dev, s in dense_sizes.items()}),
    ]
