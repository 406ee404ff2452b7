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

Also here (they share paired_scores): queue negatives for info_nce (MoCo; the queue's log-sum-exp is the op
fastrepr.ops.queue_lse) and the debiased / hard-negative NT-Xent and InfoNCE (below).
"""
from __future__ import annotations

import math

import torch

from ._precision import acc_dtype
from .contrastive import contrastive_stats, temperature_tensor
from .queue_lse import queue_lse


def paired_scores(a, b, t, normalize=True):
    """s_i = â_i · b̂_i / τ [N] in the accumulation dtype, differentiable by autograd in O(N·D) (the positives
    of DCL and of queue losses). Overflow-safe as _normalize: each row is divided by its (detached) largest
    |entry| first, which leaves â unchanged and its gradient exact (â is scale-invariant)."""
    acc = acc_dtype(a.dtype)
    a, b = a.to(acc), b.to(acc)
    if normalize:
        a, b = (u / u.abs().amax(1, keepdim=True).detach().clamp_min(torch.finfo(acc).tiny) for u in (a, b))
        a, b = (u / u.norm(dim=1, keepdim=True).clamp_min(torch.finfo(acc).tiny) for u in (a, b))
    return (a * b).sum(1) / t


def info_nce_queue(q, k, temperature, normalize, queue):
    """MoCo (He et al. 2020) with a queue [K, D]: loss_i = -log(e^{l_i} / (e^{l_i} + sum_j e^{q̂_i·Q̂_j/τ})),
    l_i = q̂_i·k̂_i/τ, the positive against the queue's negatives only (MoCo's logits [l_pos, l_neg]), mean over
    i; gradients flow to q and k, never to the queue. Nothing is gathered: the rows are independent, and the
    queue is what holds every rank's keys (fastrepr.NTXentLoss's bank gathers them before enqueueing)."""
    t = temperature_tensor(temperature, q)
    pos = paired_scores(q, k, t, normalize)
    lse, _ = queue_lse(q, queue.detach(), t, normalize)  # fastrepr::queue_lse: O(N·D) forward memory and backward
    return (torch.logaddexp(pos, lse.to(pos.dtype)) - pos).mean()


def mises_fisher_weights(z1: torch.Tensor, z2: torch.Tensor, sigma: float, normalize: bool = True) -> torch.Tensor:
    """DCLW's w = 2 - N softmax(ẑ¹_i · ẑ²_i / σ) [N], detached, in the accumulation dtype."""
    with torch.no_grad():
        s = paired_scores(z1.detach(), z2.detach(), torch.tensor(float(sigma), dtype=torch.float64), normalize)
        return 2 - z1.shape[0] * torch.softmax(s, 0)


def negatives_lse(z1, z2, t, normalize=True):
    """log sum over anchor a's 2N - 2 negatives of exp S[a, k] [2N] (z1's anchors first): the positive and the
    anchor itself excluded exactly (three streamed calls, see the module doc). t: 0-dim temperature tensor."""
    n = z1.shape[0]
    idx = torch.arange(n, device=z1.device)
    lse11, *_ = contrastive_stats(z1, z1, idx, idx, idx, t, normalize, True, False, "z1|z1")
    lse22, *_ = contrastive_stats(z2, z2, idx, idx, idx, t, normalize, True, False, "z2|z2")
    lse12, _, _, lse21, _, _ = contrastive_stats(z1, z2, idx, idx, idx, t, normalize, False, True, "z1|z2")
    return torch.cat([torch.logaddexp(lse11, lse12), torch.logaddexp(lse22, lse21)])


def dcl(z1, z2, temperature, normalize=True, sigma=None):
    """Per-anchor DCL losses [2N] (z1's anchors first); sigma: None for DCL, else DCLW's σ."""
    t = temperature_tensor(temperature, z1)
    pos = paired_scores(z1, z2, t, normalize)
    if sigma is not None:
        pos = pos * mises_fisher_weights(z1, z2, sigma, normalize).to(pos.dtype)
    return negatives_lse(z1, z2, t, normalize).to(pos.dtype) - torch.cat([pos, pos])


# Debiased (Chuang et al. 2020, Eq. 6) and hard-negative (Robinson et al. 2021, Sec. 3.1) NT-Xent. With the
# positive score s⁺ and the M = 2N - 2 negative scores s_k of an anchor (S = ẑ ẑᵀ / τ):
#     R   = sum_k e^{s_k}                                       (β = 0)
#     R   = M · sum_k e^{(1+β) s_k} / sum_k e^{β s_k}            (β > 0: the negatives reweighted by e^{β s_k}
#                                                                 over their mean, q_β of Robinson et al.)
#     N_g = max( (R - τ⁺ M e^{s⁺}) / (1 - τ⁺),  M e^{-1/τ} )      (τ⁺: the class prior of a false negative)
#     L   = -log( e^{s⁺} / (e^{s⁺} + N_g) ) = logaddexp(s⁺, log N_g) - s⁺
# as the HCL repository's code (joshr17/HCL image/main.py) computes it; its paper's pseudo-code (Fig. 7/13)
# differs -- no exp in the reweighting and neg.mean() as the denominator -- and the authors call that a typo
# (HCL issues #1 and #5). The sums over e^{c s_k} are log-sum-exps of the same kernels at temperature τ / c,
# so the whole loss streams (three of negatives_lse's calls per c: c = 1, or c = 1 + β and c = β); τ⁺ = β = 0
# is NT-Xent. Everything is in log space; the clamp keeps N_g > 0 where τ⁺ M e^{s⁺} >= R.

def _debiased(pos, negatives_at, m, t, tau_plus, beta):
    """The per-anchor loss above from s⁺ [A] and negatives_at(c) = log sum_k e^{c s_k} [A] (M = m negatives)."""
    if beta > 0:
        log_r = negatives_at(1 + beta) - negatives_at(beta) + math.log(m)
    else:
        log_r = negatives_at(1.0)
    log_r = log_r.to(pos.dtype)
    if tau_plus > 0:
        inner = 1 - tau_plus * torch.exp(pos + math.log(m) - log_r)
        tiny = torch.finfo(inner.dtype).tiny
        log_ng = log_r + torch.log(inner.clamp_min(tiny)) - math.log1p(-tau_plus)
        log_ng = torch.where(inner > tiny, log_ng, torch.full_like(log_ng, float("-inf")))
    else:
        log_ng = log_r
    log_ng = torch.maximum(log_ng, math.log(m) - 1.0 / t)
    return torch.logaddexp(pos, log_ng) - pos


def debiased_nt_xent(z1, z2, temperature, normalize=True, tau_plus=0.0, beta=0.0):
    """Per-anchor debiased / hard-negative NT-Xent [2N] (z1's anchors first), equations above."""
    t = temperature_tensor(temperature, z1)
    pos = paired_scores(z1, z2, t, normalize)
    return _debiased(torch.cat([pos, pos]), lambda c: negatives_lse(z1, z2, t / c, normalize),
                     2 * z1.shape[0] - 2, t, tau_plus, beta)


def debiased_info_nce(q, k, temperature, symmetric=True, normalize=True, tau_plus=0.0, beta=0.0):
    """Debiased / hard-negative CLIP InfoNCE (scalar): the equations above with the M = N - 1 negatives of row
    i the other rows of k (one streamed call per c, its own column excluded; the column statistics give the
    k -> q direction), mean over rows, averaged over both directions when symmetric."""
    t = temperature_tensor(temperature, q)
    idx = torch.arange(q.shape[0], device=q.device)
    stats = {}

    def lse(c, col):
        if c not in stats:
            out = contrastive_stats(q, k, idx, idx, idx, t / c, normalize, False, symmetric, "q|k")
            stats[c] = (out[0], out[3])
        return stats[c][col]

    pos = paired_scores(q, k, t, normalize)
    m = q.shape[0] - 1
    loss = _debiased(pos, lambda c: lse(c, 0), m, t, tau_plus, beta).mean()
    if symmetric:
        loss = (loss + _debiased(pos, lambda c: lse(c, 1), m, t, tau_plus, beta).mean()) / 2
    return loss
