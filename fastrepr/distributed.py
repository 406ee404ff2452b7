"""All-gather that carries gradients, for global negatives across torch.distributed ranks.

`all_gather_with_grad(x)` returns the concatenation of every rank's x (rank-major). Its backward sums the
incoming gradients over ranks (all_reduce) and returns this rank's slice, so each rank's x receives the
gradient of the sum of all ranks' losses. Every rank must pass the same shape.

Ring exchange (Inf-CL, Cheng et al. 2024; open_clip's neighbour exchange): `ring_pass(x)` sends x to rank + 1 and
returns rank - 1's block, differentiably (its backward sends the gradient the other way). `ring_stream` runs a
per-block loss over every rank's y block as the blocks travel around the ring, holding only the local x, y and
one arriving block (two in backward, the block and its gradient), so per-rank memory is O(n·D) whatever W.
Gradient convention (as all_gather_with_grad with a local loss, and open_clip): rank r's loss L_r is its own
rows' loss; each rank's embeddings receive d(sum_r L_r)/d(own embeddings), which is W times the gradient of the
single-process loss L = mean_r L_r on the concatenated batch; DDP's averaging of parameter gradients over W
ranks then gives exactly dL/dθ. Scalar parameters (a logit scale, a temperature) receive dL_r/dp on rank r, and
DDP's average of those is dL/dp too.
"""
from __future__ import annotations

import torch
import torch.distributed as dist


def rank_and_world() -> tuple[int, int]:
    """(rank, world size) of the default process group; (0, 1) when torch.distributed is not initialized."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


def _check_same_rows(x: torch.Tensor) -> None:
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.empty_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    if len({int(s) for s in sizes}) > 1:
        raise ValueError(f"gather_distributed needs the same batch size on every rank, got {[int(s) for s in sizes]}")


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """[n, ...] on each of W ranks -> [W*n, ...] on every rank, differentiable (see module docstring)."""
    _check_same_rows(x)
    return _AllGather.apply(x)


def all_gather(x: torch.Tensor) -> torch.Tensor:
    """Like all_gather_with_grad, without gradient (labels, indices)."""
    _check_same_rows(x)
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def _exchange(tensors: list[torch.Tensor], forward: bool = True) -> list[torch.Tensor]:
    """Send each tensor to rank + 1 (forward) or rank - 1 and receive the neighbour's same-shaped ones, through
    one batch_isend_irecv (no deadlock whatever the order the ranks arrive in). Not differentiable."""
    rank, world = dist.get_rank(), dist.get_world_size()
    dst, src = ((rank + 1) % world, (rank - 1) % world) if forward else ((rank - 1) % world, (rank + 1) % world)
    sent = [t.contiguous() for t in tensors]
    got = [torch.empty_like(t) for t in sent]
    ops = [dist.P2POp(dist.isend, t, dst) for t in sent] + [dist.P2POp(dist.irecv, t, src) for t in got]
    for req in dist.batch_isend_irecv(ops):
        req.wait()
    return got


class _RingPass(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return _exchange([x])[0]

    @staticmethod
    def backward(ctx, grad):
        return _exchange([grad], forward=False)[0]


def ring_pass(x: torch.Tensor) -> torch.Tensor:
    """x [n, ...] sent to rank + 1; returns rank - 1's x (same shape on every rank). Differentiable: the gradient
    of the returned block goes back to rank - 1. Memory: one block received."""
    _check_same_rows(x)
    return _RingPass.apply(x)


class _RingStream(torch.autograd.Function):
    @staticmethod
    def forward(ctx, block, block_backward, x, y, *params):
        world = dist.get_world_size()
        rows, cur = None, y
        for hop in range(world):
            part = block(x, cur, hop, *params)
            rows = part if rows is None else rows + part
            if hop < world - 1:
                cur = _exchange([cur])[0]
        ctx.block_backward = block_backward
        ctx.save_for_backward(x, y, *params)
        return rows

    @staticmethod
    def backward(ctx, g):
        x, y, *params = ctx.saved_tensors
        world = dist.get_world_size()
        g = g.contiguous()
        dx, dparams, cur, dcur = None, None, y, None
        for hop in range(world):
            dx_h, dy_h, dp_h = ctx.block_backward(x, cur, hop, *params, g)
            dx = dx_h if dx is None else dx + dx_h
            dcur = dy_h if dcur is None else dcur + dy_h
            dparams = list(dp_h) if dparams is None else [a + b for a, b in zip(dparams, dp_h)]
            # the block's gradient travels with it; after the last hop one more step brings it home
            cur, dcur = _exchange([cur, dcur]) if hop < world - 1 else (None, _exchange([dcur])[0])
        return (None, None, dx, dcur, *dparams)


def ring_stream(x: torch.Tensor, y: torch.Tensor, params: tuple[torch.Tensor, ...], block, block_backward):
    """Per-row loss terms summed over every rank's y block, by ring exchange (module doc for the gradients).

    x [n, D], y [n', D] this rank's rows (every rank the same shapes); params: 0-dim tensors.
    block(x, y_block, hop, *params) -> [n] row terms of the block that left rank (rank - hop) mod W;
    block_backward(x, y_block, hop, *params, g) -> (dx, dy_block, (dparam, ...)) for upstream g [n].
    Returns [n]. Memory: x, y and one block (forward), plus the travelling block's gradient (backward): never
    W·n·D. Every rank must call it the same number of times, in the same order (it is a collective).
    """
    _check_same_rows(y)
    return _RingStream.apply(block, block_backward, x, y, *params)
