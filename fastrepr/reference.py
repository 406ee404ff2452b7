"""Plain-PyTorch oracles of every fastrepr op.

These are the test oracles and the ``torch`` backend: written for clarity, not speed or memory. Each takes
the same arguments as its ``fastrepr.functional`` counterpart, already validated.
"""
from __future__ import annotations

import torch


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 stays float64, everything else accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def pairwise_abs_diff_mean(z1: torch.Tensor, z2: torch.Tensor | None = None, *, i: torch.Tensor | None = None,
                           j: torch.Tensor | None = None) -> torch.Tensor:
    """mean over B of |z1 - z2| ([P, B, D] -> [P, D]), or of |z[i] - z[j]| with z = z1 [N, D], i, j [P, B].

    Materializes the [P, B, D] differences. Accumulates in float32 (float64 for float64 input) and returns
    the input dtype.
    """
    acc = _acc_dtype(z1.dtype)
    if i is not None:
        z = z1.to(acc)
        a, b = z[i], z[j]
    else:
        a, b = z1.to(acc), z2.to(acc)
    return (a - b).abs().mean(1).to(z1.dtype)
