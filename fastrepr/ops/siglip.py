"""SigLIP's pairwise sigmoid loss (Zhai et al. 2023, "Sigmoid Loss for Language Image Pre-Training"), streamed in
column tiles: O(N·D) memory plus one tile, never the N×M logit matrix.

With x̂, ŷ the L2-normalized rows of x [N, D] and y [M, D], t the (already exponentiated) logit scale and b the
logit bias, the logits are l_ij = t x̂_i·ŷ_j + b and the labels z_ij = +1 where j is row i's positive column
(pos_col[i]; -1: none, as for a block of another rank's y) and -1 elsewhere. The op returns the row sums

    r_i = sum_j -log σ(z_ij l_ij) = sum_j softplus(-z_ij l_ij)                               [N]

and the loss is sum_i r_i / N (Zhai et al., Algorithm 1: the sum over pairs divided by the batch size).

Backward, for upstream gradients g_i = dL/dr_i: d r_i / d l_ij = -z_ij σ(-z_ij l_ij), so with
G_ij = -g_i z_ij σ(-z_ij l_ij),
    dx̂ = t G ŷ,   dŷ = t Gᵀ x̂,   dt = sum_ij G_ij x̂_i·ŷ_j = sum_i x̂_i·(G ŷ)_i,   db = sum_ij G_ij.
Each column tile's G is recomputed from x̂ and ŷ, used for dx̂ (accumulated) and for that tile's rows of dŷ
(written once), then dropped, so the backward is O(N·D) plus one tile too. The op takes x̂, ŷ already
normalized (siglip_loss normalizes each side once, with autograd: x̂ = u / ||u|| with u = x / max|x|,
overflow-safe; O(N·D)).

Implementations (IMPLS, BACKWARD_IMPLS):
  triton  fused kernels below: a program per block of 64 rows streams 64-column tiles of ŷ, the logits live in
          registers only; the backward runs the same kernel twice, once owning rows of x̂ (dx̂, and per-program
          partial sums of dt, db: no atomics, deterministic) and once owning rows of ŷ (dŷ). fp16/bf16/fp32
          inputs, fp32 accumulation (no float64). Extra memory: the fp32 outputs plus two floats per program.
  torch   BLAS matmuls over column tiles into one reused [N, tile] buffer (CHUNK_ELEMENTS), transformed in place;
          any dtype, accumulating in float32 (float64 for float64 input). Extra memory: that buffer (4 MiB in
          fp32) plus O(N·D).
No native one: on CPU the BLAS matmuls dominate and the torch tiles already stream through the cache.
"""
from __future__ import annotations

import torch

from .. import _backend
from .._triton import INTERPRET, CompileCase, next_power_of_2, tl, triton
from ..distributed import all_gather_with_grad, rank_and_world, ring_stream
from ._precision import acc_dtype

OP = "siglip_rows"
BACKWARD_OP = "siglip_rows_backward"
CHUNK_ELEMENTS = 1 << 20  # the torch tile buffer: N x tile <= this (4 MiB in fp32)


# ------------------------------------------------------------------------------------------- Triton

@triton.jit
def _softplus(u):
    """softplus(u) = max(u, 0) + log(1 + e), e = exp(-|u|) in (0, 1]. log(1 + e) = 2 atanh(w), w = e / (2 + e)
    <= 1/3, summed as its odd series up to w^15 (remainder < 2e-9 relative): accurate where e is tiny (the
    negatives' terms at b = -10, where log(1 + e) in fp32 would keep only a few digits of e), and independent of
    the accuracy of the GPU's fast log."""
    e = tl.exp(-tl.abs(u))
    w = e / (2.0 + e)
    w2 = w * w
    series = 1.0 + w2 * (1.0 / 3 + w2 * (1.0 / 5 + w2 * (1.0 / 7 + w2 * (1.0 / 9 + w2 * (
        1.0 / 11 + w2 * (1.0 / 13 + w2 * (1.0 / 15)))))))
    return tl.maximum(u, 0.0) + 2.0 * w * series


@triton.jit
def _sigmoid(u):
    """σ(u) from e = exp(-|u|) <= 1: no overflow for large |u| of either sign."""
    e = tl.exp(-tl.abs(u))
    return tl.where(u >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


@triton.jit
def _sims_tile(a_ptr, b_ptr, rows, cols, NA, NB, D, stride_am, stride_ad, stride_bm, stride_bd,
               BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, UPCAST: tl.constexpr):
    """a[rows] · b[cols]ᵀ [BLOCK_M, BLOCK_N] in fp32 (0 outside NA, NB), over feature chunks of BLOCK_D.
    UPCAST (interpreter only): Triton's interpreter multiplies bfloat16 tiles as their raw integer bits, so the
    operands go through fp32 there (bf16 x bf16 products are exact in fp32, as on tensor cores)."""
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        dm = offs_d < D
        a = tl.load(a_ptr + rows[:, None] * stride_am + offs_d[None, :] * stride_ad,
                    mask=(rows < NA)[:, None] & dm[None, :], other=0.0)
        b = tl.load(b_ptr + cols[:, None] * stride_bm + offs_d[None, :] * stride_bd,
                    mask=(cols < NB)[:, None] & dm[None, :], other=0.0)
        if UPCAST:
            a, b = a.to(tl.float32), b.to(tl.float32)
        acc += tl.dot(a, tl.trans(b), input_precision="ieee")
    return acc


@triton.jit
def _siglip_rows_fwd_kernel(
    # pointers
    x_ptr, y_ptr, pos_ptr, t_ptr, b_ptr, out_ptr,
    # shapes
    N, M, D,
    # strides
    stride_xm, stride_xd, stride_ym, stride_yd,
    # constants
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, UPCAST: tl.constexpr,
):
    """r_i = sum_j softplus(-z_ij (t x̂_i·ŷ_j + b)) for a block of rows, over column tiles of ŷ."""
    rows = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    t = tl.load(t_ptr).to(tl.float32)
    b = tl.load(b_ptr).to(tl.float32)
    pos = tl.load(pos_ptr + rows, mask=rows < N, other=-1)
    r = tl.zeros([BLOCK_M], dtype=tl.float32)
    for c0 in range(0, M, BLOCK_N):
        cols = (c0 + tl.arange(0, BLOCK_N)).to(tl.int64)
        l = t * _sims_tile(x_ptr, y_ptr, rows, cols, N, M, D, stride_xm, stride_xd, stride_ym, stride_yd,
                           BLOCK_M, BLOCK_N, BLOCK_D, UPCAST) + b
        zl = tl.where(pos[:, None] == cols[None, :], l, -l)
        r += tl.sum(tl.where((cols < M)[None, :], _softplus(-zl), 0.0), 1)
    tl.store(out_ptr + rows, r, mask=rows < N)


@triton.jit
def _siglip_rows_bwd_kernel(
    # pointers
    own_ptr, other_ptr, pos_ptr, t_ptr, b_ptr, g_ptr, d_ptr, dt_ptr, db_ptr,
    # shapes
    N_OWN, N_OTHER, D,
    # strides
    stride_om, stride_od, stride_tm, stride_td, stride_dm, stride_dd,
    # constants
    OWN_COLUMNS: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    BLOCK_DO: tl.constexpr, UPCAST: tl.constexpr,
):
    """d[own, d-chunk] = t sum_k G[own, k] other_k[d-chunk]; program (block of own rows, output feature chunk).

    OWN_COLUMNS=False: own = x̂ rows i, other = ŷ rows j, G_ij as in the module doc; d = dx̂, and the programs of
    the first feature chunk also write their partial sums of dt = sum G_ij x̂_i·ŷ_j and db = sum G_ij.
    OWN_COLUMNS=True: own = ŷ rows j, other = x̂ rows i, the transposed tile G_ij; d = dŷ. pos_ptr and g_ptr are
    always indexed by the row i of x̂."""
    own = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    offs_o = tl.program_id(1) * BLOCK_DO + tl.arange(0, BLOCK_DO)
    t = tl.load(t_ptr).to(tl.float32)
    b = tl.load(b_ptr).to(tl.float32)
    if not OWN_COLUMNS:
        pos_own = tl.load(pos_ptr + own, mask=own < N_OWN, other=-1)
        g_own = tl.load(g_ptr + own, mask=own < N_OWN, other=0.0).to(tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DO], dtype=tl.float32)
    dt_acc = tl.zeros([BLOCK_M], dtype=tl.float32)
    db_acc = tl.zeros([BLOCK_M], dtype=tl.float32)
    for c0 in range(0, N_OTHER, BLOCK_N):
        other = (c0 + tl.arange(0, BLOCK_N)).to(tl.int64)
        ok = other < N_OTHER
        s = _sims_tile(own_ptr, other_ptr, own, other, N_OWN, N_OTHER, D, stride_om, stride_od, stride_tm,
                       stride_td, BLOCK_M, BLOCK_N, BLOCK_D, UPCAST)
        l = t * s + b
        if OWN_COLUMNS:
            pos_other = tl.load(pos_ptr + other, mask=ok, other=-1)
            g_other = tl.load(g_ptr + other, mask=ok, other=0.0).to(tl.float32)
            positive = pos_other[None, :] == own[:, None]
            g = g_other[None, :]
        else:
            positive = pos_own[:, None] == other[None, :]
            g = g_own[:, None]
        sig = _sigmoid(-tl.where(positive, l, -l))                   # σ(-z l)
        grad = tl.where(ok[None, :], -g * tl.where(positive, sig, -sig), 0.0)  # G (transposed when OWN_COLUMNS)
        vals = tl.load(other_ptr + other[:, None] * stride_tm + offs_o[None, :] * stride_td,
                       mask=ok[:, None] & (offs_o < D)[None, :], other=0.0).to(tl.float32)
        acc += tl.dot(grad, vals, input_precision="ieee")
        if not OWN_COLUMNS:
            dt_acc += tl.sum(grad * s, 1)
            db_acc += tl.sum(grad, 1)
    tl.store(d_ptr + own[:, None] * stride_dm + offs_o[None, :] * stride_dd, acc * t,
             mask=(own < N_OWN)[:, None] & (offs_o < D)[None, :])
    if not OWN_COLUMNS:
        if tl.program_id(1) == 0:
            tl.store(dt_ptr + tl.program_id(0), tl.sum(dt_acc, 0))
            tl.store(db_ptr + tl.program_id(0), tl.sum(db_acc, 0))


# Untuned: no GPU was available when this was written. Tiles of 64 rows x 64 columns, the dot and the backward's
# output features in chunks of up to 64 (at D = 128 the backward recomputes the logits for each of its two output
# chunks; chunks of 128 spilled 1.5 KB per thread at 4 warps). Compiled for sm_90 without a GPU
# (benchmarks/triton_resources.py, Triton 3.9, 4 warps, N = M = 4096, D = 16 ... 256, fp16/bf16/fp32): forward
# 96-210 registers, backward 112-255 with at most 44 bytes of spills; shared memory at most 64 KB (BLOCK_D = 64),
# above the 48 KB default (Triton opts in at launch) and below every card's opt-in limit, so there is no autotune
# list to prune. Module constants, so tests can shrink them.
BLOCK_M, BLOCK_N, BLOCK_D_MAX, BLOCK_DO_MAX = 64, 64, 64, 64


def _block_d(D: int) -> tuple[int, int]:
    """(BLOCK_D, BLOCK_DO) for D features (tl.dot needs at least 16)."""
    p = next_power_of_2(D)
    return max(16, min(p, BLOCK_D_MAX)), max(16, min(p, BLOCK_DO_MAX))


def compile_cases():
    """How the launchers call the kernels on a GPU: fp16/bf16/fp32 normalized rows, each feature tiling
    (D = 16, 32, 64, 128, 256), N = M = 4096, both backward passes, 4 warps."""
    for dt in (torch.float16, torch.bfloat16, torch.float32):
        for D in (16, 32, 64, 128, 256):
            bd, bdo = _block_d(D)
            yield CompileCase(_siglip_rows_fwd_kernel, dict(
                x_ptr=dt, y_ptr=dt, pos_ptr=torch.int64, t_ptr=torch.float32, b_ptr=torch.float32,
                out_ptr=torch.float32, N=4096, M=4096, D=D, stride_xm=D, stride_xd=1, stride_ym=D, stride_yd=1),
                dict(BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=bd, UPCAST=False), num_warps=4)
            for own_columns in (False, True):
                yield CompileCase(_siglip_rows_bwd_kernel, dict(
                    own_ptr=dt, other_ptr=dt, pos_ptr=torch.int64, t_ptr=torch.float32, b_ptr=torch.float32,
                    g_ptr=torch.float32, d_ptr=torch.float32, dt_ptr=torch.float32, db_ptr=torch.float32,
                    N_OWN=4096, N_OTHER=4096, D=D, stride_om=D, stride_od=1, stride_tm=D, stride_td=1,
                    stride_dm=D, stride_dd=1),
                    dict(OWN_COLUMNS=own_columns, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=bd, BLOCK_DO=bdo,
                         UPCAST=False),
                    num_warps=4)


def _scalar32(v: torch.Tensor) -> torch.Tensor:
    return v.detach().to(torch.float32).reshape(())


def _upcast(dtype: torch.dtype) -> bool:
    """The kernels' UPCAST flag: bfloat16 under the interpreter (see _sims_tile)."""
    return INTERPRET and dtype == torch.bfloat16


def siglip_rows_triton(xh, yh, pos_col, scale, bias):
    """r [N] float32 (module doc). xh [N, D], yh [M, D] fp16/bf16/fp32, pos_col [N] int64, scale, bias 0-dim.
    Extra memory: the N outputs."""
    N, D = xh.shape
    M = yh.shape[0]
    out = torch.empty(N, dtype=torch.float32, device=xh.device)
    _siglip_rows_fwd_kernel[(triton.cdiv(N, BLOCK_M),)](
        xh, yh, pos_col.contiguous(), _scalar32(scale), _scalar32(bias), out, N, M, D, *xh.stride(), *yh.stride(),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=_block_d(D)[0], UPCAST=_upcast(xh.dtype), num_warps=4)
    return out


def siglip_rows_backward_triton(xh, yh, pos_col, scale, bias, g):
    """(dxh [N, D], dyh [M, D] float32, dt, db 0-dim float32) given g = dL/dr [N]. Extra memory: the fp32
    gradients plus two floats per 64-row block."""
    N, D = xh.shape
    M = yh.shape[0]
    bd, bdo = _block_d(D)
    dx = torch.empty((N, D), dtype=torch.float32, device=xh.device)
    dy = torch.empty((M, D), dtype=torch.float32, device=xh.device)
    blocks = triton.cdiv(N, BLOCK_M)
    dt = torch.empty(blocks, dtype=torch.float32, device=xh.device)
    db = torch.empty_like(dt)
    pos, t, b, g = pos_col.contiguous(), _scalar32(scale), _scalar32(bias), g.to(torch.float32).contiguous()
    tiles = dict(BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=bd, BLOCK_DO=bdo, UPCAST=_upcast(xh.dtype), num_warps=4)
    _siglip_rows_bwd_kernel[(blocks, triton.cdiv(D, bdo))](
        xh, yh, pos, t, b, g, dx, dt, db, N, M, D, *xh.stride(), *yh.stride(), *dx.stride(),
        OWN_COLUMNS=False, **tiles)
    _siglip_rows_bwd_kernel[(triton.cdiv(M, BLOCK_M), triton.cdiv(D, bdo))](
        yh, xh, pos, t, b, g, dy, dt, db, M, N, D, *yh.stride(), *xh.stride(), *dy.stride(),
        OWN_COLUMNS=True, **tiles)
    return dx, dy, dt.sum(), db.sum()


# ------------------------------------------------------------------------------------------- torch

def _tiles(rows: int, cols: int, pos_col: torch.Tensor, dtype: torch.dtype):
    """(c0, c1, tile buffer view [rows, c1 - c0], (row, column - c0) of the tile's positives) for each column
    tile. One buffer of CHUNK_ELEMENTS for every tile; the positives sorted by column once (one host sync)."""
    step = max(1, min(cols, CHUNK_ELEMENTS // max(rows, 1)))
    buf = torch.empty(rows * step, dtype=dtype, device=pos_col.device)
    pos_rows = torch.nonzero(pos_col >= 0).squeeze(1)
    pos_cols, order = torch.sort(pos_col[pos_rows])
    pos_rows = pos_rows[order]
    starts = torch.arange(0, cols + step, step, device=pos_col.device).clamp_max(cols)
    bounds = torch.searchsorted(pos_cols, starts).tolist()
    for k, c0 in enumerate(range(0, cols, step)):
        c1 = min(c0 + step, cols)
        lo, hi = bounds[k], bounds[k + 1]
        yield c0, c1, buf[:rows * (c1 - c0)].view(rows, c1 - c0), (pos_rows[lo:hi], pos_cols[lo:hi] - c0)


def _negate(tile: torch.Tensor, at: tuple) -> None:
    """tile[at] *= -1 in place (at: the tile's positives, z = +1; -1 elsewhere): turns l into -z l, and σ(-z l)
    into -z σ(-z l)."""
    tile.index_put_(at, -tile[at])


def siglip_rows_torch(xh, yh, pos_col, scale, bias):
    """As siglip_rows_triton, in plain PyTorch: per column tile, mm into the buffer, then -z l and softplus in
    place. Result in the accumulation dtype."""
    acc = acc_dtype(xh.dtype)
    x, t, b = xh.to(acc), scale.to(acc), bias.to(acc)
    out = torch.zeros(x.shape[0], dtype=acc, device=x.device)
    for c0, c1, u, positives in _tiles(x.shape[0], yh.shape[0], pos_col, acc):
        torch.mm(x, yh[c0:c1].to(acc).T, out=u)
        u.mul_(t).add_(b)                                   # l
        _negate(u, positives)                               # -z l
        torch._C._nn.softplus(u, 1, 20, out=u)              # F.softplus in place (no out= in its Python API)
        out += u.sum(1)
    return out


def siglip_rows_backward_torch(xh, yh, pos_col, scale, bias, g):
    """As siglip_rows_backward_triton, in plain PyTorch: per column tile, G in the buffer, dx̂ accumulated
    (addmm), the tile's rows of dŷ written once; dt from the accumulated G ŷ at the end."""
    acc = acc_dtype(xh.dtype)
    x, t, b = xh.to(acc), scale.to(acc), bias.to(acc)
    g = g.to(acc)[:, None]
    gy = torch.zeros_like(x)                                # G ŷ
    dy = torch.empty(yh.shape, dtype=acc, device=x.device)
    db = torch.zeros((), dtype=acc, device=x.device)
    for c0, c1, u, positives in _tiles(x.shape[0], yh.shape[0], pos_col, acc):
        y = yh[c0:c1].to(acc)
        torch.mm(x, y.T, out=u)
        u.mul_(t).add_(b)                                   # l
        _negate(u, positives)                               # -z l
        u.sigmoid_()                                        # σ(-z l)
        _negate(u, positives)                               # -z σ(-z l)
        u.mul_(g)                                           # G
        db += u.sum()
        gy.addmm_(u, y)
        torch.mm(u.T, x, out=dy[c0:c1])
    dt = torch.dot(x.reshape(-1), gy.reshape(-1))
    return gy.mul_(t), dy.mul_(t), dt, db


IMPLS = _backend.declare(OP, _backend.Impls(triton=siglip_rows_triton, torch=siglip_rows_torch,
                                            no_float64=("triton",)))  # fp32 accumulation
BACKWARD_IMPLS = _backend.declare(BACKWARD_OP, _backend.Impls(
    triton=siglip_rows_backward_triton, torch=siglip_rows_backward_torch, no_float64=("triton",)))


# ------------------------------------------------------------------------------------------- the op

@torch.library.custom_op("fastrepr::siglip_rows", mutates_args=())
def siglip_rows(xh: torch.Tensor, yh: torch.Tensor, pos_col: torch.Tensor, scale: torch.Tensor,
                bias: torch.Tensor) -> torch.Tensor:
    """Row sums r [N] of softplus(-z (t x̂ ŷᵀ + b)) (module doc). xh [N, D], yh [M, D] (normalized or not: the
    op does not normalize), pos_col [N] int64 (-1: no positive), scale, bias 0-dim. r is float32 (float64 for
    float64 input). O(N·D) memory plus one tile (module doc), never the N×M logits."""
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
