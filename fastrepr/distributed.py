"""All-gather that carries gradients, for global negatives across torch.distributed ranks.

`all_gather_with_grad(x)` returns the concatenation of every rank's x (rank-major). Its backward sums the
incoming gradients over ranks (all_reduce) and returns this rank's slice, so each rank's x receives the
gradient of the sum of all ranks' losses. Every rank must pass the same shape.
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
