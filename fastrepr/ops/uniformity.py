"""Fused uniformity (Wang & Isola 2020): the log of the mean Gaussian potential over all pairs, in O(N·D) memory.

For L2-normalized rows ẑ_i of z [N, D] and t > 0,

    uniformity(z, t) = log 1/(N(N-1)) sum_{i != j} exp(-t ||ẑ_i - ẑ_j||²)

over ordered pairs. Each unordered pair appears twice, so this equals the mean over the N(N-1)/2 unordered pairs
that ``torch.pdist`` gives (Wang & Isola's reference code: ``pdist(x).pow(2).mul(-t).exp().mean().log()``).
With s_ij = ẑ_i·ẑ_j and ||ẑ_i - ẑ_j||² = 2 - 2 s_ij (unit rows), the exponent is T_ij = 2t s_ij - 2t <= 0, so
the sum is a log-sum-exp over the off-diagonal of a similarity matrix: streamed tile by tile with a running max
subtracted (as in flash attention), it never stores the N×N matrix and stays finite for N >= 2 however far apart
the points are (exp(-8) for antipodal points at t=2 does not underflow, but exp(-4t) does for t > 22 in float32;
the running max keeps the result exact there, where the plain expression returns -inf).

This op takes the normalized rows ẑ (the public ``fastrepr.evaluation.geometry.uniformity`` normalizes with
autograd) and returns the log of the ordered sum, lse = log sum_{i != j} exp(T_ij); uniformity = lse - log N(N-1).

Gradient: T_ij = T_ji both depend on ẑ_i, so d lse / d ẑ_i = 2 · 2t sum_{j != i} exp(T_ij - lse) ẑ_j. The backward
recomputes T tile by tile; each program (Triton) or row chunk (torch) owns its rows of dẑ: no atomics, deterministic.

Implementations (IMPLS): triton (kernels below; fp32 accumulation, not float64) and torch (square tiles of BLAS
matmuls over the block upper triangle: half the pairs; any device, float64 too). No native one: on CPU the tiled
torch one runs (a C++ kernel would save the exp pass over each 4 MB tile, about as long as its sgemm, not the
BLAS work).
"""
from __future__ import annotations

import math

import torch

from .. import _backend, _checks
from .._triton import CompileCase, next_power_of_2, tl, triton
from ._precision import acc_dtype

OP = "uniformity_lse"
BACKWARD_OP = "uniformity_lse_backward"
CHUNK_ELEMENTS = 1 << 21  # the torch backward's [rows, N] score strip: 8 MB in fp32
TILE = 1024  # the torch forward's [TILE, TILE] score tile: 4 MB in fp32
# the torch forward factors exp(-2t) out of the sum up to this 2t: exp(2t·s) <= e^40 and a tile's sum of up to
# 2^21 of them stay far below the float32 maximum (e^88.7), and its smallest terms e^-40 far above the subnormals
FACTOR_MAX_TWO_T = 40.0


# ------------------------------------------------------------------------------------------- Triton

@triton.jit
def _score_tile(x_ptr, rows, cols, N, D, stride_m, stride_d, two_t, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_D: tl.constexpr):
    """T = 2t (ẑ_rows · ẑ_cols - 1) [BLOCK_M, BLOCK_N] in fp32, -inf on the diagonal and outside N."""
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D)
        dm = offs_d < D
        a = tl.load(x_ptr + rows[:, None] * stride_m + offs_d[None, :] * stride_d,
                    mask=(rows < N)[:, None] & dm[None, :], other=0.0)
        b = tl.load(x_ptr + cols[:, None] * stride_m + offs_d[None, :] * stride_d,
                    mask=(cols < N)[:, None] & dm[None, :], other=0.0)
        acc += tl.dot(a, tl.trans(b), input_precision="ieee")
    s = two_t * (acc - 1.0)
    valid = (cols[None, :] < N) & (rows[:, None] != cols[None, :])
    return tl.where(valid, s, float("-inf"))


@triton.jit
def _uniformity_lse_fwd_kernel(
    # pointers
    x_ptr, t_ptr, m_ptr, l_ptr,
    # shapes
    N, D,
    # strides
    stride_m, stride_d,
    # constants
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Per row i: m_i = max_{j != i} T_ij and l_i = sum_{j != i} exp(T_ij - m_i), online over column tiles."""
    rows = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    two_t = 2.0 * tl.load(t_ptr).to(tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    for c0 in range(0, N, BLOCK_N):
        cols = (c0 + tl.arange(0, BLOCK_N)).to(tl.int64)
        s = _score_tile(x_ptr, rows, cols, N, D, stride_m, stride_d, two_t, BLOCK_M, BLOCK_N, BLOCK_D)
        m_new = tl.maximum(m_i, tl.max(s, 1))
        m_safe = tl.where(m_new == float("-inf"), 0.0, m_new)  # a row with no valid column yet
        l_i = l_i * tl.exp(m_i - m_safe) + tl.sum(tl.exp(s - m_safe[:, None]), 1)
        m_i = m_new
    ok = rows < N
    tl.store(m_ptr + rows, m_i, mask=ok)
    tl.store(l_ptr + rows, l_i, mask=ok)


@triton.jit
def _uniformity_lse_bwd_kernel(
    # pointers
    x_ptr, t_ptr, lse_ptr, g_ptr, dx_ptr,
    # shapes
    N, D,
    # strides
    stride_m, stride_d, stride_dm, stride_dd,
    # constants
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_DO: tl.constexpr,
):
    """dẑ[rows, d-chunk] = g · 4t sum_j exp(T_ij - lse) ẑ_j[d-chunk]; program (row block, output feature chunk)."""
    rows = (tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
    offs_o = tl.program_id(1) * BLOCK_DO + tl.arange(0, BLOCK_DO)
    t = tl.load(t_ptr).to(tl.float32)
    lse = tl.load(lse_ptr).to(tl.float32)
    g = tl.load(g_ptr).to(tl.float32)
    acc = tl.zeros([BLOCK_M, BLOCK_DO], dtype=tl.float32)
    for c0 in range(0, N, BLOCK_N):
        cols = (c0 + tl.arange(0, BLOCK_N)).to(tl.int64)
        s = _score_tile(x_ptr, rows, cols, N, D, stride_m, stride_d, 2.0 * t, BLOCK_M, BLOCK_N, BLOCK_D)
        p = tl.exp(s - lse)
        y = tl.load(x_ptr + cols[:, None] * stride_m + offs_o[None, :] * stride_d,
                    mask=(cols < N)[:, None] & (offs_o < D)[None, :], other=0.0).to(tl.float32)
        acc += tl.dot(p, y, input_precision="ieee")
    acc = acc * (4.0 * t * g)
    tl.store(dx_ptr + rows[:, None] * stride_dm + offs_o[None, :] * stride_dd, acc,
             mask=(rows < N)[:, None] & (offs_o < D)[None, :])


# Untuned: no GPU was available when this was written. Tiles of 64 rows x 64 columns, features in chunks of 64:
# two operand tiles of 64x64 (plus a 64x64 fp32 probability tile in backward) stay far below 48 KB of shared
# memory on every card, so there is no autotune list to prune.
BLOCK_M, BLOCK_N, BLOCK_D_MAX = 64, 64, 64


def _block_d(D: int) -> int:
    return max(16, min(next_power_of_2(D), BLOCK_D_MAX))


def compile_cases():
    """How the launchers call the kernels on a GPU: fp16/bf16/fp32 normalized rows, each feature tile
    (D = 16, 32, 64, 128), N = 4096, 4 warps."""
    for dt in (torch.float16, torch.bfloat16, torch.float32):
        for D in (16, 32, 64, 128):
            bd = _block_d(D)
            yield CompileCase(_uniformity_lse_fwd_kernel, dict(
                x_ptr=dt, t_ptr=torch.float32, m_ptr=torch.float32, l_ptr=torch.float32, N=4096, D=D,
                stride_m=D, stride_d=1), dict(BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=bd), num_warps=4)
            yield CompileCase(_uniformity_lse_bwd_kernel, dict(
                x_ptr=dt, t_ptr=torch.float32, lse_ptr=torch.float32, g_ptr=torch.float32, dx_ptr=torch.float32,
                N=4096, D=D, stride_m=D, stride_d=1, stride_dm=D, stride_dd=1),
                dict(BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=bd, BLOCK_DO=bd), num_warps=4)


def uniformity_lse_triton(xh: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """lse = log sum_{i != j} exp(2t(ẑ_i·ẑ_j - 1)) as a 0-d float32 tensor. xh [N, D] (N >= 2), t a 0-d float32
    tensor. Extra memory: 2N floats (per-row max and sum)."""
    N, D = xh.shape
    m = torch.empty(N, dtype=torch.float32, device=xh.device)
    l = torch.empty_like(m)
    _uniformity_lse_fwd_kernel[(triton.cdiv(N, BLOCK_M),)](
        xh, t, m, l, N, D, *xh.stride(), BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=_block_d(D), num_warps=4)
    return torch.logsumexp(m + l.log(), 0)


def uniformity_lse_backward_triton(xh, t, lse, grad):
    """d(grad · lse)/dẑ [N, D] in float32 (xh, t as uniformity_lse_triton; lse, grad 0-d float32)."""
    N, D = xh.shape
    dx = torch.empty((N, D), dtype=torch.float32, device=xh.device)
    bd = _block_d(D)
    _uniformity_lse_bwd_kernel[(triton.cdiv(N, BLOCK_M), triton.cdiv(D, bd))](
        xh, t, lse.float().reshape(()), grad.float().reshape(()), dx, N, D, *xh.stride(), *dx.stride(),
        BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N, BLOCK_D=bd, BLOCK_DO=bd, num_warps=4)
    return dx


# ------------------------------------------------------------------------------------------- torch

def _chunk(N: int) -> int:
    return max(1, min(N, CHUNK_ELEMENTS // max(N, 1)))


def uniformity_lse_torch(xh: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """As uniformity_lse_triton, in plain PyTorch: square [TILE, TILE] tiles of the block upper triangle (each
    unordered pair once, doubled at the end: log 2 added), one reused buffer. Accumulates in float32 (float64 for
    float64 input). Extra memory: one [TILE, TILE] tile (4 MB in fp32), exponentiated in place. (Square tiles:
    a 1024 x 1024 sgemm runs at ~3x the speed of a [chunk, N] strip of the same size on 2 AMD cores, and exp
    over a tile that stays in cache at ~2x.)

    Where 2t <= FACTOR_MAX_TWO_T the constant is factored out, sum exp(2t s - 2t) = exp(-2t) sum exp(2t s) with
    2t folded into the rows (exp(2t s) <= e^(2t) cannot overflow, nor the sum underflow): a tile is one GEMM,
    one exp and one sum. Larger t subtracts first, and a tile whose sum nears the subnormals (far-apart points)
    is recomputed with its max subtracted (exact log-sum-exp)."""
    acc = acc_dtype(xh.dtype)
    x = xh.to(acc)
    N = x.shape[0]
    two_t = 2.0 * t.to(acc)
    factored = bool(two_t <= FACTOR_MAX_TWO_T)
    step = min(N, TILE)
    buf = torch.empty(step * step, dtype=acc, device=x.device)

    def tile(left: torch.Tensor, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        s = torch.mm(left, x[c0:c1].T, out=buf[:(r1 - r0) * (c1 - c0)].view(r1 - r0, c1 - c0))
        if not factored:
            s.sub_(1.0).mul_(two_t)
        if r0 == c0:  # a diagonal tile keeps only j > i
            s.masked_fill_(torch.ones(r1 - r0, c1 - c0, dtype=torch.bool, device=x.device).tril_(), float("-inf"))
        return s

    parts = []
    for r0 in range(0, N, step):
        r1 = min(N, r0 + step)
        left = x[r0:r1] * two_t if factored else x[r0:r1]  # 2t folded into one row block (not a copy of x)
        for c0 in range(r0, N, step):
            c1 = min(N, c0 + step)
            if r1 - r0 == 1 and c0 == r0:
                continue  # a last 1 x 1 diagonal tile has no pair
            total = torch.exp_(tile(left, r0, r1, c0, c1)).sum()
            if factored or total > torch.finfo(acc).tiny * 1e6:
                parts.append(torch.log(total))
            else:
                s = tile(left, r0, r1, c0, c1)
                mx = s.max()
                parts.append(mx + torch.log(torch.exp_(s.sub_(mx)).sum()))
    return torch.logsumexp(torch.stack(parts), 0) + math.log(2.0) - (two_t if factored else 0.0)


def uniformity_lse_backward_torch(xh, t, lse, grad):
    """As uniformity_lse_backward_triton, in plain PyTorch over row chunks against all columns (each chunk owns its
    rows). Result in the accumulation dtype. Extra memory: one [chunk, N] tile plus the output."""
    acc = acc_dtype(xh.dtype)
    x = xh.to(acc)
    N = x.shape[0]
    two_t, lse = 2.0 * t.to(acc), lse.to(acc)
    dx = torch.empty_like(x)
    step = _chunk(N)
    for r0 in range(0, N, step):
        r1 = min(N, r0 + step)
        s = torch.mm(x[r0:r1], x.T).sub_(1.0).mul_(two_t).sub_(lse)
        idx = torch.arange(r0, r1, device=x.device)
        s[idx - r0, idx] = float("-inf")
        dx[r0:r1] = torch.mm(torch.exp_(s), x)
    return dx.mul_(2.0 * two_t * grad.to(acc))


IMPLS = _backend.declare(OP, _backend.Impls(triton=uniformity_lse_triton, torch=uniformity_lse_torch,
                                            no_float64=("triton",)))  # fp32 accumulation
BACKWARD_IMPLS = _backend.declare(BACKWARD_OP, _backend.Impls(
    triton=uniformity_lse_backward_triton, torch=uniformity_lse_backward_torch, no_float64=("triton",)))


# ------------------------------------------------------------------------------------------- the op

@torch.library.custom_op("fastrepr::uniformity_lse", mutates_args=())
def uniformity_lse(xh: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log sum_{i != j} exp(-t ||ẑ_i - ẑ_j||²) over ordered pairs of the unit rows xh [N, D] (N >= 2); t: 0-d
    tensor. 0-d result in the accumulation dtype. Memory O(N·D + tile²). NaN/Inf rows (which normalize to NaN)
    raise a ValueError naming z, on CPU always and on CUDA under FASTREPR_CHECK=1."""
    if _checks.data_checks(xh):
        _checks.finite(xh, "z")
    return _backend.dispatch(OP, IMPLS, xh, t).reshape(())


@uniformity_lse.register_fake
def _(xh, t):
    return xh.new_empty((), dtype=acc_dtype(xh.dtype))


@torch.library.custom_op("fastrepr::uniformity_lse_backward", mutates_args=())
def uniformity_lse_backward(xh: torch.Tensor, t: torch.Tensor, lse: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    return _backend.dispatch(BACKWARD_OP, BACKWARD_IMPLS, xh, t, lse, grad).to(xh.dtype)


@uniformity_lse_backward.register_fake
def _(xh, t, lse, grad):
    return torch.empty_like(xh)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(inputs[0], inputs[1], output)


def _backward(ctx, grad):
    xh, t, lse = ctx.saved_tensors
    return uniformity_lse_backward(xh, t, lse, grad), None


uniformity_lse.register_autograd(_backward, setup_context=_setup)
