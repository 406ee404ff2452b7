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


def histogram_mutual_info(x: torch.Tensor, edges: torch.Tensor, labels: torch.Tensor | None = None,
                          num_labels: int = 0) -> torch.Tensor:
    """[D, F] float64 mutual information (nats) between np.digitize(x[:, d], edges[d]) and labels[:, f], or,
    with labels None, between the digitized columns d and f (F = D). labels: [N, F] int64 in [0, num_labels).

    Materializes the [N, D, B] comparisons and one contingency table per pair.
    """
    n, d = x.shape
    bins = (x.unsqueeze(-1) >= edges.unsqueeze(0)).sum(-1)  # [N, D] in [0, B]
    rows = edges.shape[1] + 1
    ys, k = (bins, rows) if labels is None else (labels, num_labels)
    out = torch.zeros((d, ys.shape[1]), dtype=torch.float64, device=x.device)
    for i in range(d):
        for j in range(ys.shape[1]):
            c = torch.bincount(bins[:, i] * k + ys[:, j], minlength=rows * k).view(rows, k).double()
            ab = c.sum(1, keepdim=True) * c.sum(0, keepdim=True)
            nz = c > 0
            out[i, j] = (c[nz] / n * torch.log(n * c[nz] / ab[nz])).sum().clamp(min=0.0)
    return out
