"""The positive-pair sums of the contrastive statistics (fastrepr.ops.contrastive) from class sums, in O(N·D).

With C[c] = sum of the ŷ_k labelled c, the sum of S[a, k] = x̂_a·ŷ_k/τ over a row's positives (same label, not
its own column) is pos[a] = x̂_a · (C[lab_x[a]] - ŷ_self[a]) / τ: no pass over S. Its gradient is as cheap.
Every implementation of the op (triton, torch) shares these: they are plain torch, O((M + Nc)·D).
"""
from __future__ import annotations

import torch

from ._precision import acc_dtype


def _class_sums(yh, lab_x, lab_y, self_col):
    """(y, ix, iy, own, col, sums): ŷ in the accumulation dtype, both sides' labels as 0..C-1 (same value, same
    id), own[a] whether row a's own column exists and shares its label (it must leave the class sums), that
    column (0 where none), and the class sums C [C, D]."""
    y = yh.to(acc_dtype(yh.dtype))
    values, ids = torch.unique(torch.cat([lab_x, lab_y]), return_inverse=True)
    ix, iy = ids[:lab_x.shape[0]], ids[lab_x.shape[0]:]
    col = self_col.clamp_min(0)
    own = ((self_col >= 0) & (iy[col] == ix)).to(y.dtype)[:, None]
    sums = torch.zeros(values.shape[0], y.shape[1], dtype=y.dtype, device=y.device).index_add_(0, iy, y)
    return y, ix, iy, own, col, sums


def positive_sums(xh, yh, lab_x, lab_y, self_col, temperature):
    """pos[a] = sum over valid columns k with lab_y[k] == lab_x[a] of S[a, k], [M] in the accumulation dtype."""
    y, ix, _, own, col, sums = _class_sums(yh, lab_x, lab_y, self_col)
    return (xh.to(y.dtype) * (sums[ix] - own * y[col])).sum(1) / temperature.to(y.dtype)


def positive_grad(yh, lab_x, lab_y, self_col, temperature, rho, sigma):
    """dX̂ of sum_a rho[a] pos[a] + sum_k sigma[k] pos_c[k]: P[a] = 1/τ sum_{k positive for a} (rho[a] + sigma[k]) ŷ_k,
    [M, D] in the accumulation dtype."""
    y, ix, iy, own, col, sums = _class_sums(yh, lab_x, lab_y, self_col)
    rho, sigma = rho.to(y.dtype), sigma.to(y.dtype)
    weighted = torch.zeros_like(sums).index_add_(0, iy, y * sigma[:, None])
    p = rho[:, None] * (sums[ix] - own * y[col]) + weighted[ix] - own * sigma[col, None] * y[col]
    return p / temperature.to(y.dtype)


def self_rows(self_col: torch.Tensor, n_cols: int) -> torch.Tensor:
    """Inverse of self_col: for each column, the row whose own column it is (-1 if none)."""
    inv = torch.full((n_cols,), -1, dtype=torch.long, device=self_col.device)
    rows = torch.nonzero(self_col >= 0).squeeze(1)
    inv[self_col[rows]] = rows
    return inv
