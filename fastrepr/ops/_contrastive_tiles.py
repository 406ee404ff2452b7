"""Triton tile helpers of the contrastive kernels (fastrepr.ops.contrastive): loading row tiles, and the
similarity tile S = X̂[rows] · Ŷ[cols]ᵀ / τ that the forward and backward kernels both recompute while they
stream over the columns. Each is inlined into the kernels that call it (tests/test_gpu_compile.py compiles
them there).
"""
from __future__ import annotations

from .._triton import tl, triton


@triton.jit
def load_rows(ptr, idx, ok, dd, D, stride_m, stride_d, UPCAST: tl.constexpr):
    """Rows idx, features dd of a [*, D] matrix (zeros outside); UPCAST: as fp32 (interpreter, see score_tile)."""
    t = tl.load(ptr + idx[:, None] * stride_m + dd[None, :] * stride_d, mask=ok[:, None] & (dd < D)[None, :],
                other=0.0)
    if UPCAST:
        t = t.to(tl.float32)
    return t


@triton.jit
def score_tile(x_ptr, y_ptr, rows, cols, row_ok, col_ok, x_single, D, stride_xm, stride_xd, stride_ym,
               stride_yd, DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
               BLOCK_D: tl.constexpr, SINGLE_D: tl.constexpr, UPCAST: tl.constexpr):
    """X̂[rows] · Ŷ[cols]ᵀ in fp32, [BLOCK_M, BLOCK_N]; the rows' tile is passed in when D fits one tile.
    UPCAST (interpreter only): Triton's interpreter multiplies bfloat16 tiles as their raw integer bits, so
    operands go through fp32 there (bf16 x bf16 products are exact in fp32, as on tensor cores)."""
    offs_d = tl.arange(0, BLOCK_D)
    if SINGLE_D:
        y = load_rows(y_ptr, cols, col_ok, offs_d, D, stride_ym, stride_yd, UPCAST)
        acc = tl.dot(x_single, tl.trans(y), input_precision=DOT_PRECISION)
    else:
        acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        for d0 in range(0, D, BLOCK_D):
            x = load_rows(x_ptr, rows, row_ok, d0 + offs_d, D, stride_xm, stride_xd, UPCAST)
            y = load_rows(y_ptr, cols, col_ok, d0 + offs_d, D, stride_ym, stride_yd, UPCAST)
            acc += tl.dot(x, tl.trans(y), input_precision=DOT_PRECISION)
    return acc


@triton.jit
def masked_score_tile(x_ptr, y_ptr, rows, row_ok, n0, N, self_c, inv_t, x_single, D, stride_xm, stride_xd,
                      stride_ym, stride_yd, DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr,
                      BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, SINGLE_D: tl.constexpr, UPCAST: tl.constexpr):
    """Column tile at n0: (cols, col_ok, valid, S) with S = -inf where invalid (padding or the row's own
    column), so that exp(S - anything) is 0 there and never overflows (S[a, a] may exceed lse[a])."""
    cols = n0 + tl.arange(0, BLOCK_N)
    col_ok = cols < N
    s = score_tile(x_ptr, y_ptr, rows, cols, row_ok, col_ok, x_single, D, stride_xm, stride_xd, stride_ym,
                   stride_yd, DOT_PRECISION, BLOCK_M, BLOCK_N, BLOCK_D, SINGLE_D, UPCAST) * inv_t
    valid = col_ok[None, :] & (cols[None, :] != self_c[:, None])
    return cols, col_ok, valid, tl.where(valid, s, float("-inf"))


@triton.jit
def row_tile(x_ptr, rows, row_ok, D, stride_xm, stride_xd, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr,
             SINGLE_D: tl.constexpr, UPCAST: tl.constexpr):
    """The rows' whole [BLOCK_M, BLOCK_D] tile when D fits one tile (loaded once per program), else zeros."""
    if SINGLE_D:
        x = load_rows(x_ptr, rows, row_ok, tl.arange(0, BLOCK_D), D, stride_xm, stride_xd, UPCAST)
    else:
        x = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32 if UPCAST else x_ptr.dtype.element_ty)
    return x
