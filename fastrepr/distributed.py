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

`ring_fold` is the general form (ring_stream is ring_fold with a sum), for losses whose per-row statistics combine otherwise than by a sum (the
log-sum-exp of a softmax denominator: nt_xent, info_nce, sup_con with gather_distributed="ring"): each visiting
block yields per-row statistics, folded into the running ones by a combine function; the backward gets the
final (global) statistics, so a block's gradient can use the softmax weights exp(S - lse_global), and each block's
gradient travels with it and arrives home. `ring_check` validates the inputs collectively first, so that a bad
input raises the same error on every rank instead of one rank raising while the others wait in an exchange.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import torch
import torch.distributed as dist

from . import _checks


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


class RingFold(NamedTuple):
    """How ring_fold treats one loss's column blocks. params is a tuple of 0-dim tensors; travel the block's
    non-differentiable companions (its labels). Every statistic is [n] for the n rows of x.

    block(x, y_block, travel_block, hop, params) -> tuple of statistics of the block that left rank (rank - hop)
        mod W (hop 0: this rank's own).
    combine(acc, part) -> acc: fold one block's statistics into the running ones (associative).
    backward(x, y_block, travel_block, hop, params, out, grads) -> (dx, dy_block, dparams): this block's share of
        the gradient, given the final statistics out and their upstream gradients grads (zeros where unused;
        None for the non-differentiable ones).
    differentiable: the first this-many statistics carry gradients, the others (counts, helper sums) do not.
    """
    block: Callable
    combine: Callable
    backward: Callable
    differentiable: int


class _RingFold(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fold, n_travel, x, y, *rest):
        travel, params = tuple(rest[:n_travel]), tuple(rest[n_travel:])
        world = dist.get_world_size()
        acc, cur = None, (y, *travel)
        for hop in range(world):
            part = fold.block(x, cur[0], cur[1:], hop, params)
            acc = part if acc is None else fold.combine(acc, part)
            if hop < world - 1:
                cur = tuple(_exchange(list(cur)))
        acc = tuple(a.contiguous() for a in acc)
        ctx.fold, ctx.n_travel = fold, n_travel
        ctx.mark_non_differentiable(*acc[fold.differentiable:])
        ctx.save_for_backward(x, y, *travel, *params, *acc)
        return acc

    @staticmethod
    def backward(ctx, *grads):
        fold, n_travel = ctx.fold, ctx.n_travel
        x, y, *rest = ctx.saved_tensors
        travel, rest = tuple(rest[:n_travel]), rest[n_travel:]
        params, out = tuple(rest[:len(rest) - len(grads)]), tuple(rest[len(rest) - len(grads):])
        grads = tuple((torch.zeros_like(o) if g is None else g.contiguous()) if i < fold.differentiable else None
                      for i, (g, o) in enumerate(zip(grads, out)))
        world = dist.get_world_size()
        dx, dparams, cur, dcur = None, None, (y, *travel), None
        for hop in range(world):
            dx_h, dy_h, dp_h = fold.backward(x, cur[0], cur[1:], hop, params, out, grads)
            dx = dx_h if dx is None else dx + dx_h
            dcur = dy_h if dcur is None else dcur + dy_h
            dparams = list(dp_h) if dparams is None else [
                b if a is None else a if b is None else a + b for a, b in zip(dparams, dp_h)]
            # the block's gradient travels with it; after the last hop one more step brings it home
            if hop < world - 1:
                *cur, dcur = _exchange([*cur, dcur])
            else:
                dcur = _exchange([dcur])[0]
        return (None, None, dx, dcur, *([None] * n_travel), *dparams)


def ring_fold(x: torch.Tensor, y: torch.Tensor, params: tuple[torch.Tensor, ...], fold: RingFold,
              travel: tuple[torch.Tensor, ...] = ()) -> tuple[torch.Tensor, ...]:
    """Per-row statistics of x's rows against every rank's y block, folded as the blocks travel around the ring.

    x [n, D] this rank's rows, y [m, D] this rank's column block (x may be y), travel: tensors [m, ...] that move
    with y without gradient (labels); every rank the same shapes (ring_check). params: 0-dim tensors (a
    temperature). Returns fold.combine's statistics over all W blocks; differentiable w.r.t. x, y and params
    (module doc for the convention). Memory: x, y, the statistics and one visiting block (forward), plus the
    visiting block's gradient (backward): O((n + m)·D), never W·m·D. A collective: every rank calls it (and its
    backward) the same number of times, in the same order.
    """
    return _RingFold.apply(fold, len(travel), x, y, *travel, *params)


def ring_stream(x: torch.Tensor, y: torch.Tensor, params: tuple[torch.Tensor, ...], block, block_backward):
    """Per-row loss terms summed over every rank's y block, by ring exchange (module doc for the gradients).

    x [n, D], y [n', D] this rank's rows (every rank the same shapes); params: 0-dim tensors.
    block(x, y_block, hop, *params) -> [n] row terms of the block that left rank (rank - hop) mod W;
    block_backward(x, y_block, hop, *params, g) -> (dx, dy_block, (dparam, ...)) for upstream g [n].
    Returns [n]. Memory: x, y and one block (forward), plus the travelling block's gradient (backward): never
    W·n·D. Every rank must call it the same number of times, in the same order (it is a collective).
    """
    _check_same_rows(y)
    fold = RingFold(block=lambda x_, y_, _travel, hop, p: (block(x_, y_, hop, *p),),
                    combine=lambda acc, part: (acc[0] + part[0],),
                    backward=lambda x_, y_, _travel, hop, p, _out, g: block_backward(x_, y_, hop, *p, g[0]),
                    differentiable=1)
    return ring_fold(x, y, tuple(params), fold)[0]


_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int32, torch.int64)


def ring_check(tensors: dict[str, torch.Tensor], finite: bool = True, norms: bool = False) -> list[float]:
    """Collective check before a ring: every rank's tensors (up to 2-D, the same names in the same order) have the
    same shapes and dtypes, and (finite, where fastrepr._checks.data_checks allows) the floating ones hold no
    NaN/Inf; otherwise every rank raises the same ValueError, naming the argument and the rank. With norms,
    returns each floating tensor's largest row norm over all ranks (float64; 0.0 without norms or for integers), for overflow checks that
    must agree on every rank. One all_gather of 6 numbers per tensor."""
    rows = []
    for name, t in tensors.items():
        shape = list(t.shape) + [-1] * (2 - t.dim())
        bad = -1
        if finite and t.is_floating_point() and _checks.data_checks(t) and not _checks.all_finite(t):
            bad = int(torch.nonzero(~torch.isfinite(t.reshape(t.shape[0], -1)).all(1))[0])
        norm = float(t.detach().double().reshape(t.shape[0], -1).norm(dim=1).max()) if (
            norms and t.is_floating_point() and t.numel()) else 0.0
        code = _DTYPES.index(t.dtype) if t.dtype in _DTYPES else len(_DTYPES)
        rows.append([t.dim(), *shape[:2], code, bad, norm])
    mine = torch.tensor(rows, dtype=torch.float64, device=next(iter(tensors.values())).device)
    every = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    every = torch.stack(every).cpu()  # [W, tensors, 6]
    for i, (name, t) in enumerate(tensors.items()):
        if not bool((every[:, i, :4] == every[0, i, :4]).all()):
            seen = [f"{tuple(int(v) for v in r[1:1 + int(r[0])])} "
                    f"{str(_DTYPES[int(r[3])]) if int(r[3]) < len(_DTYPES) else 'other dtype'}" for r in every[:, i]]
            raise ValueError(f"gather_distributed='ring' needs {name} of the same shape and dtype on every rank, got "
                             + ", ".join(f"rank {r}: {s}" for r, s in enumerate(seen)))
        for r in range(every.shape[0]):
            if every[r, i, 4] >= 0:
                raise ValueError(f"{name} on rank {r} contains NaN or Inf (row {int(every[r, i, 4])})")
    return [float(every[:, i, 5].max()) for i in range(len(tensors))]
