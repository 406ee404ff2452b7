"""Ring-exchange global negatives (gather_distributed="ring") for nt_xent, info_nce and sup_con.

Inf-CL (Cheng et al. 2024) computes a contrastive loss over a batch spread across W ranks without gathering it:
each rank keeps its own anchors X [n, D] and passes column blocks around the ring (fastrepr.distributed.ring_fold),
so that it sees every rank's block Y_b once. The statistics of fastrepr.ops.contrastive over the whole column set
Y = [Y_0; ...; Y_{W-1}] (rank-major, as all_gather_with_grad orders it) fold exactly over blocks:

    lse[a] = log sum_b exp lse_b[a]                      (log-add-exp of the blocks' log-sum-exps)
    pos[a] = sum_b pos_b[a]                              (sums of the positives' scores add)
    e[a]   = sum_b exp(lse_b[a] - lse[a]) e_b[a]         (softmax-weighted mean score, for dτ)

where lse_b, pos_b, e_b are contrastive_stats of X against Y_b (the anchor's own column excluded only in its own
block, hop 0). Only O(n) statistics are kept per rank, never the W·n·D gathered rows.

Backward. The loss is a function of (lse, pos); with upstream gradients g_lse, g_pos the block b's score
gradient is dL/dS[a, k] = g_lse[a] exp(S[a, k] - lse[a]) + g_pos[a] [k positive for a], i.e. exactly what
contrastive_stats_backward computes for the pair (X, Y_b) when it is handed the *global* lse (it never recomputes
it): its dx is X's share from block b and its dy the block's gradient, which travels with the block and arrives
home after W hops. The temperature: dL/dτ = -(1/τ) sum_a (g_lse[a] e[a] + g_pos[a] pos[a]) with the global e and
pos, so hop 0 is handed those (and the other hops zeros, so that it is counted once).

Gradient convention (fastrepr.distributed, as the all-gather mode): each rank's loss is its own anchors' loss,
and each rank's embeddings receive d(sum_r L_r)/d(own embeddings): W times the gradient of the single-process
loss on the concatenated batch for nt_xent and info_nce (whose rank losses are means over equal anchor counts;
sup_con's anchor counts differ by rank, so there it is the gradient of the sum of the rank losses, exactly as
with gather_distributed=True). A temperature tensor receives dL_r/dτ on rank r.

Memory per rank: the local rows, their normalized copies, one visiting block and (backward) its gradient, plus
the kernels' chunks: O(n·D), independent of W (tests/test_ring_contrastive.py measures it). Each rank's work is
W blocks of the O(n²·D) kernel, as with the all-gather, and W - 1 exchanges of one block (plus its gradient in
backward), overlapping nothing: on fast interconnects the all-gather is faster when it fits in memory.

The ops are called through torch.ops.fastrepr.* (registered by fastrepr.ops.contrastive, which imports this
module: importing it back would be an import cycle).
"""
from __future__ import annotations

import torch

from .. import _checks
from ..distributed import RingFold, rank_and_world, ring_check, ring_fold


def _combine(acc, part):
    """Fold one block's (lse, pos, e, *counts) into the running ones (module doc)."""
    lse = torch.logaddexp(acc[0], part[0])
    e = acc[2] * torch.exp(acc[0] - lse) + part[2] * torch.exp(part[0] - lse)
    return (lse, acc[1] + part[1], e, *(a + b for a, b in zip(acc[3:], part[3:])))


def _label_counts(labels_x: torch.Tensor, labels_y: torch.Tensor, home: bool) -> torch.Tensor:
    """[n] int64: how many of the block's labels equal each anchor's (its own column not counted when home), by a
    sort and a binary search: O((n + m) log m), no n x m comparison."""
    values, counts = torch.unique(labels_y, return_counts=True)
    at = torch.searchsorted(values, labels_x).clamp_max(values.numel() - 1)
    found = torch.where(values[at] == labels_x, counts[at], torch.zeros_like(counts[at]))
    return found - 1 if home else found


def _fold(normalize: bool, names: str, hop_args, counts: bool = False) -> RingFold:
    """The RingFold of one loss. hop_args(hop, travel) -> (labels_x, labels_y, self_col) of the block that reached
    this rank after hop steps (empty labels: no positives there; self_col -1: no excluded column)."""
    rank, world = rank_and_world()
    x_name, y_name = names.split("|")

    def block(x, y, travel, hop, params):
        labels_x, labels_y, self_col = hop_args(hop, travel)
        where = f"{y_name} (the block of rank {(rank - hop) % world})"
        lse, pos, e, *_ = torch.ops.fastrepr.contrastive_stats(x, y, labels_x, labels_y, self_col, params[0],
                                                               normalize, False, False, f"{x_name}|{where}")
        return (lse, pos, e, _label_counts(labels_x, labels_y, hop == 0)) if counts else (lse, pos, e)

    def backward(x, y, travel, hop, params, out, grads):
        labels_x, labels_y, self_col = hop_args(hop, travel)
        lse, pos, e = out[:3]
        if hop:  # the temperature's gradient comes from the global e and pos, once (module doc)
            pos, e = torch.zeros_like(pos), torch.zeros_like(e)
        empty = lse.new_empty(0)
        dx, dy, dt = torch.ops.fastrepr.contrastive_stats_backward(
            x, y, labels_x, labels_y, self_col, params[0], lse, pos, e, empty, empty, empty, grads[0], grads[1],
            empty, empty, normalize, False, False, True)
        return dx, dy, (dt,)

    return RingFold(block, _combine, backward, differentiable=2)


def _check(tensors: dict, t: torch.Tensor, normalize: bool, columns: int, cross: bool = False) -> None:
    """ring_check (shapes, dtypes, NaN/Inf, collectively); with normalize=False also the score-overflow check of
    contrastive_stats, on the largest norms of all ranks, so that every rank raises it or none does. cross: the
    scores pair the first tensor's rows with the second's (info_nce), else any two rows (nt_xent, sup_con)."""
    norms = ring_check(tensors, norms=not normalize)
    if normalize or not _checks.data_checks(t):
        return
    nx, ny = (norms[0], norms[1]) if cross else (max(norms),) * 2
    bound, limit = nx * ny * columns / float(t), torch.finfo(t.dtype).max
    if not bound <= limit / 4:
        names = " and ".join(n for n in tensors if tensors[n].is_floating_point())
        raise ValueError(f"{names}: with normalize=False the scores x·y/temperature summed over {columns} rows "
                         f"(every rank's) can reach {bound:.3g}, beyond {str(t.dtype)[6:]}; scale the embeddings "
                         "down or use normalize=True")


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, z: torch.Tensor, t: torch.Tensor, normalize: bool) -> torch.Tensor:
    """Per-anchor NT-Xent [2n] of this rank's anchors z = [z1; z2] against every rank's [z1_r; z2_r] (each block
    2n rows: anchor i's positive is row (i + n) mod 2n of its own block, its own row excluded there)."""
    n = z1.shape[0]
    _check(dict(z1=z1, z2=z2), t, normalize, 2 * n * rank_and_world()[1])
    idx = torch.arange(2 * n, device=z.device)
    home, empty, none = idx % n, idx[:0], torch.full_like(idx, -1)
    hop_args = lambda hop, _travel: (home, home, idx) if hop == 0 else (empty, empty, none)  # noqa: E731
    lse, pos, _ = ring_fold(z, z, (t,), _fold(normalize, "z1+z2|z1+z2", hop_args))
    return lse - pos


def _info_nce_direction(x, y, t, normalize, names):
    n = x.shape[0]
    ids = torch.arange(n, device=x.device)
    empty, none = ids[:0], torch.full_like(ids, -1)
    hop_args = lambda hop, _travel: (ids, ids, none) if hop == 0 else (empty, empty, none)  # noqa: E731
    lse, pos, _ = ring_fold(x, y, (t,), _fold(normalize, names, hop_args))
    return (lse - pos).mean()


def info_nce(q: torch.Tensor, k: torch.Tensor, t: torch.Tensor, symmetric: bool, normalize: bool) -> torch.Tensor:
    """CLIP InfoNCE of this rank's q rows against every rank's k (and, symmetric, this rank's k rows against
    every rank's q: a second ring, the q blocks travelling), the mean over the local rows of each direction."""
    _check(dict(q=q, k=k), t, normalize, q.shape[0] * rank_and_world()[1], cross=True)
    loss = _info_nce_direction(q, k, t, normalize, "q|k")
    return (loss + _info_nce_direction(k, q, t, normalize, "k|q")) / 2 if symmetric else loss


def sup_con(z: torch.Tensor, labels: torch.Tensor, t: torch.Tensor, normalize: bool) -> torch.Tensor:
    """SupCon of this rank's anchors against every rank's z, the labels travelling with their block; the mean
    over this rank's anchors with a positive anywhere (0 when none has), as the all-gather mode."""
    n = z.shape[0]
    _check(dict(z=z, labels=labels), t, normalize, n * rank_and_world()[1])
    idx = torch.arange(n, device=z.device)
    none = torch.full_like(idx, -1)
    hop_args = lambda hop, travel: (labels, travel[0], idx if hop == 0 else none)  # noqa: E731
    lse, pos, _, npos = ring_fold(z, z, (t,), _fold(normalize, "z|z", hop_args, counts=True), travel=(labels,))
    has = (npos > 0).to(lse.dtype)
    per_anchor = (lse - pos / npos.clamp_min(1)) * has
    return per_anchor.sum() / has.sum().clamp_min(1)
