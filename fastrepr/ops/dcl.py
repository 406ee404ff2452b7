"""Decoupled contrastive learning (DCL, DCLW; Yeh et al. 2022, "Decoupled Contrastive Learning"), on the
streaming contrastive kernels of fastrepr.ops.contrastive: O(N·D) memory, never the 2N x 2N matrix.

DCL removes the positive from NT-Xent's denominator (the paper's Eq. 6). With ẑ¹, ẑ² the normalized views and
S^{uv}[i, j] = ẑ^u_i · ẑ^v_j / τ, anchor i of view 1 has

    L_i = -w_i S^{12}[i, i] + log( sum_{j != i} exp S^{11}[i, j] + sum_{j != i} exp S^{12}[i, j] )

and anchor i of view 2 likewise with 1 <-> 2; the loss is the mean over the 2N anchors. w_i = 1 is DCL; DCLW
weights the positive with the negative von Mises-Fisher weight

    w_i = 2 - N · softmax_i(ẑ¹_i · ẑ²_i / σ)      (detached: no gradient flows through w; mean_i w_i = 1),

as lightly's DCLWLoss (negative_mises_fisher_weights) and the authors' code.

Streaming: each of the two sums is a log-sum-exp with exactly one column masked out of the row, which is what
the kernels' excluded "self" column is: lse(S^{11}) and lse(S^{22}) exclude the diagonal (same=True), and one
call on (ẑ¹, ẑ²) with column statistics gives lse of S^{12}'s rows and of its columns (= S^{21}'s rows), each
without the diagonal, i.e. without the positive. The denominator is logaddexp of the two: exact, no
subtraction of the positive's exp (which would cancel catastrophically when the positive dominates). The
work is that of NT-Xent on 2N anchors (4 N² scores forward). The positive S^{12}[i, i] is O(N·D) by autograd.
"""
from __future__ import annotations

import torch

from .contrastive import contrastive_stats, paired_scores, temperature_tensor


def mises_fisher_weights(z1: torch.Tensor, z2: torch.Tensor, sigma: float, normalize: bool = True) -> torch.Tensor:
    """DCLW's w = 2 - N softmax(ẑ¹_i · ẑ²_i / σ) [N], detached, in the accumulation dtype."""
    with torch.no_grad():
        s = paired_scores(z1.detach(), z2.detach(), torch.tensor(float(sigma), dtype=torch.float64), normalize)
        return 2 - z1.shape[0] * torch.softmax(s, 0)


def dcl(z1, z2, temperature, normalize=True, sigma=None):
    """Per-anchor DCL losses [2N] (z1's anchors first); sigma: None for DCL, else DCLW's σ."""
    n = z1.shape[0]
    t = temperature_tensor(temperature, z1)
    idx = torch.arange(n, device=z1.device)
    lse11, *_ = contrastive_stats(z1, z1, idx, idx, idx, t, normalize, True, False, "z1|z1")
    lse22, *_ = contrastive_stats(z2, z2, idx, idx, idx, t, normalize, True, False, "z2|z2")
    lse12, _, _, lse21, _, _ = contrastive_stats(z1, z2, idx, idx, idx, t, normalize, False, True, "z1|z2")
    pos = paired_scores(z1, z2, t, normalize)
    if sigma is not None:
        pos = pos * mises_fisher_weights(z1, z2, sigma, normalize).to(pos.dtype)
    neg = torch.cat([torch.logaddexp(lse11, lse12), torch.logaddexp(lse22, lse21)]).to(pos.dtype)
    return neg - torch.cat([pos, pos])
