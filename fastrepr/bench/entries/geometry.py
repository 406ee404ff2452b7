"""Geometry of representations: uniformity (fused, streamed over pairs) against Wang & Isola's plain-torch pdist
expression, and linear CKA in feature space against the numpy Gram-matrix CKA the papers define."""
from __future__ import annotations

import numpy as np
import torch

from fastrepr.evaluation.geometry import cka, uniformity

from ..harness import Bench


def _rows_setup(size, device, dtype):
    n, d = size
    return {"z": torch.randn(n, d, device=device, dtype=dtype)}


def _pdist_uniformity(z, t=2.0):
    """What SimCSE / align_uniform users run: every pairwise distance materialized (N(N-1)/2 floats)."""
    return torch.pdist(torch.nn.functional.normalize(z, dim=1)).pow(2).mul(-t).exp().mean().log()


def _pair_setup(size, device, dtype):
    n, d1, d2 = size
    x = torch.randn(n, d1, device=device, dtype=dtype)
    return {"x": x, "y": x[:, :d2] + torch.randn(n, d2, device=device, dtype=dtype)}


def _gram_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al. 2019's linear CKA from N×N Gram matrices (their gram_linear + center_gram + cka)."""
    def centered(a):
        g = a @ a.T
        means = g.mean(0)
        means -= means.mean() / 2
        return g - means[:, None] - means[None, :]
    gx, gy = centered(x.astype(np.float64)), centered(y.astype(np.float64))
    return float(gx.ravel() @ gy.ravel() / (np.linalg.norm(gx) * np.linalg.norm(gy)))


def entries() -> list[Bench]:
    uni_sizes = {"cpu": [(5_000, 128), (20_000, 128)], "cuda": [(20_000, 128), (100_000, 128)]}
    cka_sizes = {"cpu": [(2_000, 128, 64), (10_000, 128, 64)], "cuda": [(10_000, 128, 64)]}
    return [
        Bench(op="uniformity", baseline_name="torch pdist(z).pow(2).mul(-t).exp().mean().log()",
              size_names=("N", "D"), sizes=uni_sizes, setup=_rows_setup,
              ours=lambda x: uniformity(x["z"]), baseline=lambda x: _pdist_uniformity(x["z"]),
              work=lambda s: s[0] * s[0] * s[1], work_label="N²·D", test_size=(300, 16),
              demo={dev: s[0] for dev, s in uni_sizes.items()}),
        Bench(op="cka_linear", baseline_name="numpy CKA from N×N Gram matrices (Kornblith et al.)",
              size_names=("N", "D1", "D2"), sizes=cka_sizes, setup=_pair_setup,
              ours=lambda x: cka(x["x"], x["y"]),
              baseline=lambda x: _gram_cka(x["x"].cpu().numpy(), x["y"].cpu().numpy()),
              work=lambda s: s[0], work_label="N", test_size=(200, 16, 8)),
    ]
