"""SigLIP's pairwise sigmoid loss (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training"), streamed in
column tiles: O(N·D + N·tile) memory, never the N×M logit matrix.

With x̂, ŷ the L2-normalized rows of x [N, D] and y [M, D], t the (already exponentiated) logit scale and b the
logit bias, the logits are l_ij = t x̂_i·ŷ_j + b and the labels z_ij = +1 where j is row i's positive column
(pos_col[i]; -1: none, as for a block of another rank's y) and -1 elsewhere. The op returns the row sums

    r_i = sum_j -log σ(z_ij l_ij) = sum_j softplus(-z_ij l_ij)                               [N]

and the loss is sum_i r_i / N (Zhai et al., Algorithm 1: the sum over pairs divided by the batch size).

Backward, for upstream gradients g_i = dL/dr_i: d r_i / d l_ij = -z_ij σ(-z_ij l_ij), so with
G_ij = -g_i z_ij σ(-z_ij l_ij),
    dx̂ = t G ŷ,   dŷ = t Gᵀ x̂,   dt = sum_ij G_ij x̂_i·ŷ_j,   db = sum_ij G_ij.
Each column tile's G is recomputed from x̂ and ŷ, used for dx̂ (accumulated) and for that tile's rows of dŷ
(written once), then dropped, so the backward is O(N·D + N·tile) too. The normalization's backward is left to
autograd (x̂ = u / ||u|| with u = x / max|x|, overflow-safe; O(N·D)).

Implementations (IMPLS, BACKWARD_IMPLS): torch only (row-chunked BLAS matmuls over column tiles, any dtype,
accumulating in float32 or float64). No Triton kernel and no native one yet: on CPU a C++ kernel would pay
where the tile's softplus dominates (small D); on GPU a fused tile kernel would avoid writing the N×tile block.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import _backend
from ..distributed import all_gather_with_grad, rank_and_world, ring_stream
from ._precision import acc_dtype

OP = "siglip_rows"
BACKWARD_OP = "siglip_rows_backward"
CHUNK_ELEMENTS = 1 << 20  # logits held at once: N x tile <= this (4 MiB in fp32)


def _tile(rows: int, cols: int) -> int:
    return max(1, min(cols, CHUNK_ELEMENTS // max(rows, 1)))


def _labels(pos_col: torch.Tensor, c0: int, c1: int) -> torch.Tensor:
    """z [N, c1 - c0]: +1 where the column is the row's positive, -1 elsewhere."""
    cols = torch.arange(c0, c1, device=pos_col.device)
    return (pos_col[:, None] == cols[None, :]).to(torch.int8) * 2 - 1


def siglip_rows_torch(xh, yh, pos_col, scale, bias):
    acc = acc_dtype(xh.dtype)
    x, t, b = xh.to(acc), scale.to(acc), bias.to(acc)
    out = torch.zeros(x.shape[0], dtype=acc, device=x.device)
    step = _tile(x.shape[0], yh.shape[0])
    for c0 in range(0, yh.shape[0], step):
        c1 = min(c0 + step, yh.shape[0])
        logits = (x @ yh[c0:c1].to(acc).T) * t + b
        out += F.softplus(-_labels(pos_col, c0, c1) * logits).sum(1)
    return out


def siglip_rows_backward_torch(xh, yh, pos_col, scale, bias, g):
    acc = acc_dtype(xh.dtype)
    x, t, b, g = xh.to(acc), scale.to(acc), bias.to(acc), g.to(acc)
    dx = torch.zeros_like(x)
    dy = torch.empty(yh.shape, dtype=acc, device=x.device)
    dt = torch.zeros((), dtype=acc, device=x.device)
    db = torch.zeros((), dtype=acc, device=x.device)
    step = _tile(x.shape[0], yh.shape[0])
    for c0 in range(0, yh.shape[0], step):
        c1 = min(c0 + step, yh.shape[0])
        y = yh[c0:c1].to(acc)
        sims = x @ y.T
        z = _labels(pos_col, c0, c1)
        grad = -g[:, None] * z * torch.sigmoid(-z * (t * sims + b))  # G, dL/dl
        dx += (grad @ y) * t
        dy[c0:c1] = t * (grad.T @ x)
        dt += (grad * sims).sum()
        db += grad.sum()
    return dx, dy, dt, db


IMPLS = _backend.declare(OP, _backend.Impls(torch=siglip_rows_torch))
BACKWARD_IMPLS = _backend.declare(BACKWARD_OP, _backend.Impls(torch=siglip_rows_backward_torch))


# ------------------------------------------------------------------------------------------- the op

@torch.library.custom_op("fastrepr::siglip_rows", mutates_args=())
def siglip_rows(xh: torch.Tensor, yh: torch.Tensor, pos_col: torch.Tensor, scale: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
    """Row sums r [N] of softplus(-z (t x̂ ŷᵀ + b)) (module doc). xh [N, D], yh [M, D] (normalized or not: the
    op does not normalize), pos_col [N] int64 (-1: no positive), scale, bias 0-dim. r is float32 (float64 for
    float64 input). O(N·D + N·tile) memory."""
    return _backend.dispatch(OP, IMPLS, xh, yh, pos_col, scale, bias)


@siglip_rows.register_fake
def _(xh, yh, pos_col, scale, bias):
    return xh.new_empty(xh.shape[0], dtype=acc_dtype(xh.dtype))


@torch.library.custom_op("fastrepr::siglip_rows_backward", mutates_args=())
def siglip_rows_backward(xh: torch.Tensor, yh: torch.Tensor, pos_col: torch.Tensor, scale: torch.Tensor,
                         bias: torch.Tensor, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                       torch.Tensor]:
    """(dxh, dyh, dscale, dbias) of siglip_rows given g = dL/dr [N] (module doc), in the inputs' dtypes."""
    dx, dy, dt, db = _backend.dispatch(BACKWARD_OP, BACKWARD_IMPLS, xh, yh, pos_col, scale, bias, g)
    return dx.to(xh.dtype), dy.to(yh.dtype), dt.to(scale.dtype), db.to(bias.dtype)


@siglip_rows_backward.register_fake
def _(xh, yh, pos_col, scale, bias, g):
    return torch.empty_like(xh), torch.empty_like(yh), torch.empty_like(scale), torch.empty_like(bias)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, g):
    xh, yh, pos_col, scale, bias = ctx.saved_tensors
    dx, dy, dt, db = siglip_rows_backward(xh, yh, pos_col, scale, bias, g.contiguous())
    return dx, dy, None, dt, db


siglip_rows.register_autograd(_backward, setup_context=_setup_context)


# ------------------------------------------------------------------------------------------- loss

def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """x / ||x|| per row, overflow-safe (u = x / max|x| first, so the squares stay in [1, D]); zero rows stay zero
    (as F.normalize). Differentiable through autograd; O(N·D)."""
    peak = x.detach().abs().amax(1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    u = x / peak
    return u / torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min(1e-12)


def scalar(value, like: torch.Tensor) -> torch.Tensor:
    """A 0-dim tensor on like's device, float64 for float64 embeddings else float32 (a tensor keeps its graph)."""
    dtype = acc_dtype(like.dtype)
    if isinstance(value, torch.Tensor):
        return value.to(device=like.device, dtype=dtype).reshape(())
    return torch.tensor(float(value), dtype=dtype, device=like.device)


def siglip_loss(x, y, logit_scale, logit_bias, normalize=True, gather_distributed=False):
    """Validated inputs -> the loss (0-dim). gather_distributed: False, True or "ring" (fastrepr.distributed)."""
    t, b = scalar(logit_scale, x), scalar(logit_bias, x)
    xh, yh = (unit_rows(x), unit_rows(y)) if normalize else (x, y)
    n = x.shape[0]
    rank, world = rank_and_world() if gather_distributed else (0, 1)
    if world > 1 and gather_distributed == "ring":
        return ring_stream(xh, yh, (t, b), _ring_block, _ring_block_backward).sum() / n
    if world > 1:  # all-gather with gradient: every rank holds all W·n rows of y
        pos_col = torch.arange(n, device=x.device) + rank * n
        return siglip_rows(xh, all_gather_with_grad(yh), pos_col, t, b).sum() / n
    return siglip_rows(xh, yh, torch.arange(n, device=x.device), t, b).sum() / n


def _ring_block(xh, yh, hop, t, b):
    """Row sums of one y block that reached this rank after `hop` ring steps (hop 0: its own, with positives)."""
    n = xh.shape[0]
    pos_col = torch.arange(n, device=xh.device) if hop == 0 else torch.full((n,), -1, device=xh.device)
    return siglip_rows(xh, yh, pos_col, t, b)


def _ring_block_backward(xh, yh, hop, t, b, g):
    n = xh.shape[0]
    pos_col = torch.arange(n, device=xh.device) if hop == 0 else torch.full((n,), -1, device=xh.device)
    dx, dy, dt, db = siglip_rows_backward(xh, yh, pos_col, t, b, g)
    return dx, dy, (dt, db)
