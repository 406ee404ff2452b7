"""Fused contrastive statistics: the kernels behind nt_xent, info_nce and sup_con, in O(N·D) memory.

Every loss here is built from per-row statistics of a masked similarity matrix S = X̂ Ŷᵀ / τ (X̂, Ŷ the
L2-normalized rows of X [M, D] and Y [Nc, D]):

    lse[a] = log sum_{k valid} exp S[a, k]      (valid: k != self[a], the anchor's own column, if any)
    pos[a] = sum_{k valid, lab_x[a] == lab_y[k]} S[a, k]
    e[a]   = sum_k softmax(S[a, :])[k] · S[a, k]   (only for the temperature gradient)

NT-Xent (Chen et al. 2020, SimCLR): X = Y = [z1; z2], labels i mod N, self[a] = a: loss_a = lse[a] - pos[a].
SupCon (Khosla et al. 2020):       X = Y = z, user labels:      loss_a = lse[a] - pos[a] / |P(a)|.
CLIP InfoNCE (Radford et al. 2021): X = q, Y = k, no self:      row loss lse[a] - pos[a], plus the same
                                                                 statistics of Sᵀ for the k -> q direction.

Forward: per block of rows, stream column tiles of S with an fp32 online max and sum (as in flash
attention), never storing S. Only the normalized inputs (recomputed in backward from the saved inputs) and
the O(M) statistics are kept. The positive sums need no pass over S: with class sums C[c] = sum of the ŷ_k
labelled c, pos[a] = x̂_a · (C[lab_x[a]] - ŷ_self[a]) / τ (the own column subtracted when it shares the label),
O(N·D) in plain torch.

Backward: for a loss L = sum_a (g_lse[a] lse[a] + g_pos[a] pos[a]) + (column statistics likewise),
    dL/dS[a, k] = g_lse[a] P_r[a, k] + g_pos[a] pos[a, k] + g_lse_c[k] P_c[a, k] + g_pos_c[k] pos[a, k]
with P_r[a, k] = exp(S[a, k] - lse[a]) and P_c[a, k] = exp(S[a, k] - lse_c[k]). When X = Y, S is symmetric
and S[k, a] depends on the same pair, so dX̂[a] = 1/τ sum_k (G[a, k] + G[k, a]) X̂[k]: the column term
becomes exp(S[a, k] - lse[k]) with the row's own weights. Either way one kernel computes
    T[a, k] = α[a] exp(S - β[a]) + γ[k] exp(S - δ[k]),   dX̂[a] = 1/τ sum_k T[a, k] Ŷ[k] + P[a]
by recomputing S tile by tile; each program owns its rows of dX̂, so there are no atomics and the result is
deterministic. P[a] = 1/τ sum_{k positive} (ρ[a] + σ[k]) Ŷ[k] is the positives' part (ρ, σ the gradients of the
row and column pos sums), again from class sums in O(N·D). For X != Y, dŶ is the same kernel with the roles of X and Y swapped. The L2-normalization
backward dx = (dx̂ - x̂ (x̂·dx̂)) / ||x|| is fused into the kernel's epilogue when a row fits one tile.
Temperature: d stat / dτ = -(1/τ) (d stat / dS · S), i.e. -e[a]/τ for lse and -pos[a]/τ for pos.
Exponentials never overflow: lse[a] >= S[a, k] for every valid k (and lse_c[k] >= S[a, k] likewise).

Normalization is overflow-safe and scale-invariant: x̂ = u / ||u||, u = x / max_d |x_d| (the squares summed
stay in [1, D]; ||1e20 x|| formed directly overflows float32), 1/||x|| = 1 / (max_d |x_d| ||u||). Zero rows stay
zero with 1/||x|| = 1e12, as F.normalize (eps = 1e-12) treats them. Checks (fastrepr._checks' policy) run inside
the op, on real tensors even under torch.compile: NaN/Inf, a temperature that rounds to 0 or whose reciprocal
overflows the sums of scores, and (normalize=False) scores that could overflow. On CUDA only under
FASTREPR_CHECK=1; otherwise an invalid temperature becomes NaN on the device, and so does the loss.

Implementations (IMPLS, BACKWARD_IMPLS): triton (the kernels below; not float64) and torch (the same algorithm in
row chunks of BLAS matmuls: CPU, and float64 anywhere). There is no native one: on CPU the chunked torch one
runs. The normalization, the checks and the positive sums (ops/_positives.py) are shared by both.
"""
from __future__ import annotations

import torch

from .. import _backend, _checks
from . import _contrastive_ring as _ring
from ..distributed import all_gather, all_gather_with_grad, rank_and_world
from .._triton import (INTERPRET, SHARED_MEMORY_PER_BLOCK, CompileCase, SharedMemoryPrune, device_arch,
                       next_power_of_2, tile_bytes, tl, triton)
from ._contrastive_tiles import load_rows, masked_score_tile, row_tile
from ._positives import positive_grad as _positive_grad, positive_sums as _positive_sums, self_rows
from ._precision import acc_dtype

OP = "contrastive_stats"
BACKWARD_OP = "contrastive_stats_backward"  # a custom op of its own, with its own IMPLS
CHUNK_ELEMENTS = 1 << 19


# ------------------------------------------------------------------------------------------- Triton

@triton.jit
def _contrastive_stats_fwd_kernel(
    # pointers
    x_ptr, y_ptr, self_ptr, temp_ptr, lse_ptr, e_ptr,
    # shapes
    M, N, D,
    # strides
    stride_xm, stride_xd, stride_ym, stride_yd,
    # constants
    DOT_PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
    SINGLE_D: tl.constexpr, UPCAST: tl.constexpr,
):
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    inv_t = 1.0 / tl.load(temp_ptr).to(tl.float32)
    self_c = tl.load(self_ptr + rows, mask=row_ok, other=-1)
    x_single = row_tile(x_ptr, rows, row_ok, D, stride_xm, stride_xd, BLOCK_M, BLOCK_D, SINGLE_D, UPCAST)
    # online softmax in log2 units; a finite initial max keeps all-masked tiles free of inf - inf
    m = tl.full([BLOCK_M], -1e30, dtype=tl.float32)
    l_acc = tl.zeros([BLOCK_M], dtype=tl.float32)
    e_acc = tl.zeros([BLOCK_M], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        cols, col_ok, valid, s = masked_score_tile(
            x_ptr, y_ptr, rows, row_ok, n0, N, self_c, inv_t, x_single, D, stride_xm, stride_xd, stride_ym,
            stride_yd, DOT_PRECISION, BLOCK_M, BLOCK_N, BLOCK_D, SINGLE_D, UPCAST)
        s2 = s * 1.4426950408889634  # -inf where invalid
        m_new = tl.maximum(m, tl.max(s2, 1))
        scale = tl.exp2(m - m_new)
        p = tl.exp2(s2 - m_new[:, None])
        l_acc = l_acc * scale + tl.sum(p, 1)
        e_acc = e_acc * scale + tl.sum(p * tl.where(valid, s, 0.0), 1)
        m = m_new
    tl.store(lse_ptr + rows, (m + tl.log2(l_acc)) * 0.6931471805599453, mask=row_ok)
    tl.store(e_ptr + rows, e_acc / l_acc, mask=row_ok)


@triton.jit
def _contrastive_stats_bwd_kernel(
    # pointers
    x_ptr, y_ptr, self_ptr, temp_ptr,
    alpha_ptr, beta_ptr, gamma_ptr, delta_ptr, wscale_ptr, extra_ptr, rnorm_ptr, dx_ptr,
    # shapes
    M, N, D,
    # strides
    stride_xm, stride_xd, stride_ym, stride_yd, stride_om, stride_od,  # extra_ptr: dx's layout
    # constants
    HAS_ROW: tl.constexpr, HAS_COL: tl.constexpr, NORMALIZE: tl.constexpr, DOT_PRECISION: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, SINGLE_D: tl.constexpr,
    UPCAST: tl.constexpr,
):
    """dX[rows, dchunk] = wscale/τ · sum_k T[a, k] Ŷ[k, dchunk] + extra[rows, dchunk] (weights pre-divided by
    wscale so that the T tile stays near [0, 1] when it is cast to fp16/bf16 for the second matmul)."""
    rows = tl.program_id(0) * BLOCK_M + tl.arange(0, BLOCK_M)
    row_ok = rows < M
    out_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    inv_t = 1.0 / tl.load(temp_ptr).to(tl.float32)
    self_c = tl.load(self_ptr + rows, mask=row_ok, other=-1)
    a_r = tl.load(alpha_ptr + rows, mask=row_ok, other=0.0)
    b_r = tl.load(beta_ptr + rows, mask=row_ok, other=float("inf"))  # padding: exp(s - inf) = 0
    x_single = row_tile(x_ptr, rows, row_ok, D, stride_xm, stride_xd, BLOCK_M, BLOCK_D, SINGLE_D, UPCAST)
    acc = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)
    for n0 in range(0, N, BLOCK_N):
        cols, col_ok, valid, s = masked_score_tile(
            x_ptr, y_ptr, rows, row_ok, n0, N, self_c, inv_t, x_single, D, stride_xm, stride_xd, stride_ym,
            stride_yd, DOT_PRECISION, BLOCK_M, BLOCK_N, BLOCK_D, SINGLE_D, UPCAST)
        t = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
        if HAS_ROW:
            t += a_r[:, None] * tl.exp2((s - b_r[:, None]) * 1.4426950408889634)
        if HAS_COL:
            g_c = tl.load(gamma_ptr + cols, mask=col_ok, other=0.0)
            d_c = tl.load(delta_ptr + cols, mask=col_ok, other=float("inf"))
            t += g_c[None, :] * tl.exp2((s - d_c[None, :]) * 1.4426950408889634)
        y = load_rows(y_ptr, cols, col_ok, out_d, D, stride_ym, stride_yd, False)
        if UPCAST:  # round T like the GPU path does, then multiply in fp32 (see score_tile)
            acc += tl.dot(t.to(y.dtype).to(tl.float32), y.to(tl.float32), input_precision=DOT_PRECISION)
        else:
            acc += tl.dot(t.to(y.dtype), y, input_precision=DOT_PRECISION)
    out_mask = row_ok[:, None] & (out_d < D)[None, :]
    acc = acc * (inv_t * tl.load(wscale_ptr)) + tl.load(
        extra_ptr + rows[:, None] * stride_om + out_d[None, :] * stride_od, mask=out_mask, other=0.0)
    if NORMALIZE:  # only launched with SINGLE_D: the whole row is in this tile
        xh = x_single.to(tl.float32)
        proj = tl.sum(acc * xh, 1)
        acc = (acc - xh * proj[:, None]) * tl.load(rnorm_ptr + rows, mask=row_ok, other=0.0)[:, None]
    tl.store(dx_ptr + rows[:, None] * stride_om + out_d[None, :] * stride_od, acc, mask=out_mask)


# Tile shapes for the GPU are autotuned per D (and dtype) on first use; no GPU was available when these
# candidates were chosen, so they span the usual flash-attention-like range for Hopper. The interpreter
# (CPU tests) uses 16x16 tiles.
_TUNING = [(64, 64, 4, 2), (64, 64, 4, 3), (128, 64, 8, 3), (128, 32, 4, 3), (64, 128, 8, 3), (128, 128, 8, 2)]
_CONFIGS = [triton.Config({"BLOCK_M": m, "BLOCK_N": n}, num_warps=w, num_stages=st) for m, n, w, st in _TUNING]


def _shared_bytes(config, named_args, kwargs, arch: int) -> int:
    """Shared memory of a config (bytes, not below what Triton 3.9 allocates: tests/test_gpu_compile.py). The
    dot operands are staged there: the rows' tile (loaded once when SINGLE_D) and a ring of buffers for each tile
    loaded in the loop, num_stages of them for Hopper's wgmma (16-bit or TF32 dots on sm_90+) and num_stages - 1
    otherwise; backward's T tile too unless wgmma reads it from registers; and up to 2 KB of reduction scratch."""
    bm, bn, bd, stages = config.kwargs["BLOCK_M"], config.kwargs["BLOCK_N"], kwargs["BLOCK_D"], config.num_stages
    dtype, bwd = named_args["x_ptr"].dtype, "HAS_ROW" in kwargs
    wgmma = arch >= 90 and (dtype.itemsize == 2 or kwargs["DOT_PRECISION"] == "tf32")
    ring = stages if wgmma else max(stages - 1, 1)
    if kwargs["SINGLE_D"]:
        tiles = [(bm, bd), (ring * (2 if bwd else 1) * bn, bd)] + ([(bm, bn)] if bwd and not wgmma else [])
        need = tile_bytes(dtype, *tiles)
    else:  # the d0 loop streams both operands; backward's second dot comes after it, in memory reused
        need = max(tile_bytes(dtype, (ring * (bm + bn), bd)), tile_bytes(dtype, (bn, bd), (bm, bn)) if bwd else 0)
    return need + 2048


_SHARED = SharedMemoryPrune(_shared_bytes)
_PRUNE = {"early_config_prune": _SHARED}
_fwd_tuned = triton.autotune(_CONFIGS, key=["D"], prune_configs_by=_PRUNE)(_contrastive_stats_fwd_kernel)
_bwd_tuned = triton.autotune(_CONFIGS, key=["D", "HAS_ROW", "HAS_COL"], prune_configs_by=_PRUNE)(
    _contrastive_stats_bwd_kernel)


def _feature_tiling(D: int, x: torch.Tensor, card: tuple[int, int] | None, **flags) -> tuple[int, bool]:
    """(BLOCK_D, SINGLE_D): whole rows in one tile up to D=256 when a config of _CONFIGS then fits the card's
    shared memory (card: (arch, bytes) as _triton.device_arch gives; None in the interpreter), else 128-wide
    feature chunks: the fp32 backward at 128 < D <= 256 fits no config on A100 or H100 (tests/test_gpu_compile.py).
    x: the input (its dtype); flags: the launch's other constexprs."""
    block = max(16, next_power_of_2(D))
    if block <= 256 and (card is None or _SHARED.keep(
            _CONFIGS, {"x_ptr": x}, dict(flags, BLOCK_D=block, SINGLE_D=True), *card)):
        return block, True
    return 128, False


def compile_cases():
    """How the launchers call the kernels on a GPU (tests/test_gpu_compile.py compiles each for sm_80 and sm_90
    at every config): fp16, bf16 and fp32 inputs (float64 takes the torch path), fp32 with IEEE or TF32 dots,
    the tiling _feature_tiling picks on each card for D = 16 ... 512, and the backward's weights (rows and columns,
    rows only when X != Y without column statistics, columns only for dY then), its fused normalization only
    with whole rows. Contiguous inputs, D a multiple of 16. UPCAST is interpreter-only."""
    f32, i64 = torch.float32, torch.int64
    for dt, precision in ((torch.float16, "ieee"), (torch.bfloat16, "ieee"), (f32, "ieee"), (f32, "tf32")):
        x = torch.empty(0, dtype=dt, device="meta")
        for D in (16, 32, 64, 128, 256, 512):
            args = dict(x_ptr=dt, y_ptr=dt, self_ptr=i64, temp_ptr=f32, M=4096, N=4096, D=D, stride_xm=D,
                        stride_xd=1, stride_ym=D, stride_yd=1)
            bwd = dict(args, alpha_ptr=f32, beta_ptr=f32, gamma_ptr=f32, delta_ptr=f32, wscale_ptr=f32,
                       extra_ptr=f32, rnorm_ptr=f32, dx_ptr=f32, stride_om=D, stride_od=1)
            for card in SHARED_MEMORY_PER_BLOCK.items():
                flags = dict(DOT_PRECISION=precision, UPCAST=False)
                block_d, single = _feature_tiling(D, x, card, **flags)
                flags.update(BLOCK_D=block_d, SINGLE_D=single)
                yield CompileCase(_fwd_tuned, dict(args, lse_ptr=f32, e_ptr=f32), flags, arches=(card[0],))
                for row, col in ((True, True), (True, False), (False, True)):
                    block_d, single = _feature_tiling(D, x, card, **flags, HAS_ROW=row, HAS_COL=col)
                    for normalize in (True, False) if single else (False,):
                        yield CompileCase(_bwd_tuned, bwd, dict(flags, BLOCK_D=block_d, SINGLE_D=single, HAS_ROW=row,
                                                                HAS_COL=col, NORMALIZE=normalize), arches=(card[0],))


def _launch(kernel, tuned, grid_rows, tiling, dtype, *args, **constexprs):
    """Launch one of the two kernels (the autotuned variant on a GPU) with (BLOCK_D, SINGLE_D) = tiling."""
    meta = dict(BLOCK_D=tiling[0], SINGLE_D=tiling[1], **constexprs)
    if INTERPRET:
        meta.update(BLOCK_M=16, BLOCK_N=16, UPCAST=dtype == torch.bfloat16)
        kernel[grid_rows(meta)](*args, **meta)
    else:
        tuned[grid_rows](*args, UPCAST=False, **meta)
    return meta


def _card(x: torch.Tensor):
    return None if INTERPRET else device_arch(x.device)


def _dot_precision(dtype: torch.dtype) -> str:
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def contrastive_stats_triton(xh, yh, self_col, temperature):
    """Triton launcher: (lse, e) [M] fp32 for rows of xh [M, D] against yh [Nc, D] (self_col [M] int64, the
    column excluded from each row, -1: none; temperature: 0-dim). Extra memory O(M)."""
    M, D = xh.shape
    lse, e = (torch.empty(M, dtype=torch.float32, device=xh.device) for _ in range(2))
    precision = _dot_precision(xh.dtype)
    _launch(_contrastive_stats_fwd_kernel, _fwd_tuned, lambda meta: (triton.cdiv(M, meta["BLOCK_M"]),),
            _feature_tiling(D, xh, _card(xh), DOT_PRECISION=precision, UPCAST=False), xh.dtype,
            xh, yh, self_col, temperature, lse, e, M, yh.shape[0], D,
            *xh.stride(), *yh.stride(), DOT_PRECISION=precision)
    return lse, e


def contrastive_stats_backward_triton(xh, yh, self_col, temperature, alpha, beta, gamma, delta, extra, rnorm=None):
    """Triton launcher: dX [M, D] fp32 (w.r.t. x when rnorm is given, else w.r.t. x̂) of the lse terms plus
    `extra` ([M, D] fp32, w.r.t. x̂). alpha/gamma may be None (that term absent)."""
    M, D = xh.shape
    dx = torch.empty((M, D), dtype=torch.float32, device=xh.device)
    extra = extra.float().contiguous()
    weights = [w for w in (alpha, gamma) if w is not None]
    wscale = torch.stack([w.abs().max() for w in weights]).max().clamp_min(torch.finfo(torch.float32).tiny)
    zeros = torch.zeros(1, dtype=torch.float32, device=xh.device)
    a, g = ((w / wscale).contiguous() if w is not None else zeros for w in (alpha, gamma))
    flags = dict(HAS_ROW=alpha is not None, HAS_COL=gamma is not None, DOT_PRECISION=_dot_precision(xh.dtype))
    block_d, single = tiling = _feature_tiling(D, xh, _card(xh), UPCAST=False, **flags)
    fuse_norm = rnorm is not None and single  # the epilogue needs whole rows
    _launch(_contrastive_stats_bwd_kernel, _bwd_tuned,
            lambda meta: (triton.cdiv(M, meta["BLOCK_M"]), triton.cdiv(D, block_d)), tiling, xh.dtype,
            xh, yh, self_col, temperature, a, beta if beta is not None else zeros, g,
            delta if delta is not None else zeros, wscale, extra, rnorm if fuse_norm else zeros, dx,
            M, yh.shape[0], D, *xh.stride(), *yh.stride(), *dx.stride(), NORMALIZE=fuse_norm, **flags)
    if rnorm is not None and not fuse_norm:
        dx = _normalize_backward(dx, xh.float(), rnorm)
    return dx


# ------------------------------------------------------------------------------------------- torch (chunked)

def _chunk_rows(n_cols: int) -> int:
    """Rows per chunk so that one [chunk, n_cols] fp32 buffer is ~2 MB (a few of them live at once): peak
    extra memory O(N·chunk). On a 2-core Xeon at 2N=8192, D=128 (fp32, forward+backward), 2 MB chunks ran as
    fast as 4 or 16 MB ones, with 45 MB peak against 75 MB (4 MB) and 149 MB (16 MB)."""
    return max(1, CHUNK_ELEMENTS // max(n_cols, 1))


def _self_index(self_col: torch.Tensor, c0: int, c1: int):
    rows = torch.nonzero(self_col[c0:c1] >= 0).squeeze(1)
    return rows, self_col[c0:c1][rows]


def _masked_chunk(x, y, inv_t, self_col, c0, c1):
    """S for rows c0:c1 (acc dtype), -inf at each row's own column; and the (rows, cols) of those entries."""
    s = (x[c0:c1] @ y.t()).mul_(inv_t)
    r, c = _self_index(self_col, c0, c1)
    s[r, c] = float("-inf")
    return s, r, c


def contrastive_stats_torch(xh, yh, self_col, temperature):
    """The same (lse, e) as contrastive_stats_triton in row chunks of plain torch ops (CPU, or float64
    anywhere), in the accumulation dtype. Extra memory O(Nc·chunk) (see _chunk_rows)."""
    acc = acc_dtype(xh.dtype)
    x, y, inv_t = xh.to(acc), yh.to(acc), (1.0 / temperature).to(acc)
    M = x.shape[0]
    lse, e = (torch.empty(M, dtype=acc, device=x.device) for _ in range(2))
    step = _chunk_rows(y.shape[0])
    for c0 in range(0, M, step):
        c1 = min(M, c0 + step)
        s, r, c = _masked_chunk(x, y, inv_t, self_col, c0, c1)
        m = s.amax(1, keepdim=True)
        p = s.sub(m).exp_()
        s[r, c] = 0.0  # so that p * s is 0, not nan, at the masked entry
        l = p.sum(1)
        lse[c0:c1] = m.squeeze(1) + torch.log(l)
        e[c0:c1] = (p * s).sum(1) / l
    return lse, e


def contrastive_stats_backward_torch(xh, yh, self_col, temperature, alpha, beta, gamma, delta, extra, rnorm=None):
    """The same dX as contrastive_stats_backward_triton, in row chunks of plain torch ops."""
    acc = acc_dtype(xh.dtype)
    x, y, inv_t = xh.to(acc), yh.to(acc), (1.0 / temperature).to(acc)
    M = x.shape[0]
    dx = extra.to(acc).clone()
    step = _chunk_rows(y.shape[0])
    for c0 in range(0, M, step):
        c1 = min(M, c0 + step)
        s, _, _ = _masked_chunk(x, y, inv_t, self_col, c0, c1)  # exp(-inf) = 0 at the own column
        t = None
        if alpha is not None:
            t = s.sub(beta[c0:c1, None]).exp_().mul_(alpha[c0:c1, None])
        if gamma is not None:
            term = s.sub(delta[None, :]).exp_().mul_(gamma[None, :])
            t = term if t is None else t.add_(term)
        dx[c0:c1] += (t @ y).mul_(inv_t)
    if rnorm is not None:
        dx = _normalize_backward(dx, x, rnorm.to(acc))
    return dx


# ------------------------------------------------------------------------------------------- IMPLS

# No native (C++) implementation: on CPU the chunked torch one runs (BLAS matmuls, as fast per flop). Triton's
# dots take fp32 at most: float64 inputs run on the torch implementation, in float64.
IMPLS = _backend.declare(OP, _backend.Impls(triton=contrastive_stats_triton, torch=contrastive_stats_torch,
                                            no_float64=("triton",)))
BACKWARD_IMPLS = _backend.declare(BACKWARD_OP, _backend.Impls(
    triton=contrastive_stats_backward_triton, torch=contrastive_stats_backward_torch, no_float64=("triton",)))


# ------------------------------------------------------------------------------------------- the op

def _scaled_rows(x: torch.Tensor):
    """(u, m, ||u||) in fp32/fp64: u = x / m with m = max_d |x_d| per row (1 for zero rows), so that ||u|| lies in
    [1, sqrt(D)] for nonzero rows and never overflows; ||x|| = m ||u||."""
    xa = x.to(acc_dtype(x.dtype))
    m = xa.abs().amax(1, keepdim=True)
    m = torch.where(m > 0, m, torch.ones_like(m))
    u = xa / m
    return u, m.squeeze(1), u.norm(dim=1)


def _normalize(x: torch.Tensor):
    """x̂ = x / ||x|| in x's dtype (overflow-safe, see the module doc; zero rows stay 0), and 1 / ||x|| (1e12 for a
    zero row, as torch.nn.functional.normalize's eps)."""
    u, m, un = _scaled_rows(x)
    nonzero = un > 0
    xh = u / torch.where(nonzero, un, torch.ones_like(un))[:, None]
    rnorm = torch.where(nonzero, 1.0 / (m * un), torch.full_like(un, 1e12))
    return xh.to(x.dtype), rnorm


def _normalize_backward(dxh: torch.Tensor, xh: torch.Tensor, rnorm: torch.Tensor) -> torch.Tensor:
    """d/dx of x̂ = x / ||x||: (dx̂ - x̂ (x̂ · dx̂)) / ||x||."""
    return (dxh - xh * (xh * dxh).sum(1, keepdim=True)) * rnorm[:, None]


def _check_finite_rows(t: torch.Tensor, names: str) -> None:
    """ValueError naming the argument and row of a NaN/Inf; names: "a" or "a+b" (t stacks equal blocks a, b)."""
    if not _checks.all_finite(t):
        parts, row = names.split("+"), int(torch.nonzero(~torch.isfinite(t).all(1))[0])
        block = max(t.shape[0] // len(parts), 1)
        raise ValueError(f"{parts[min(row // block, len(parts) - 1)]} contains NaN or Inf (row {row % block})")


def _check_values(x: torch.Tensor, y: torch.Tensor, temperature: torch.Tensor, normalize: bool, same: bool,
                  names: str) -> torch.Tensor:
    """The op's data checks (see the module doc); returns the temperature to compute with (NaN when unchecked
    on CUDA and invalid, so that the loss is NaN rather than a plausible number)."""
    columns, limit = max(x.shape[0], y.shape[0]), torch.finfo(temperature.dtype).max
    if not _checks.data_checks(x):
        ok = (temperature > 0) & (4.0 * columns / temperature <= limit)
        return torch.where(ok, temperature, torch.full_like(temperature, float("nan")))
    x_name, y_name = names.split("|")
    _check_finite_rows(x, x_name)
    if not same:
        _check_finite_rows(y, y_name)
    tau = float(temperature)
    # normalized scores lie in [-1/τ, 1/τ] and are summed over up to `columns` terms (lse, positive sums)
    _checks.divisor(tau, "temperature", temperature.dtype, columns if normalize else 1)
    if not normalize:  # |x·y| <= ||x|| ||y|| (Cauchy-Schwarz), norms formed overflow-safe
        nx, ny = (float((m.double() * un.double()).max()) for _, m, un in map(_scaled_rows, (x, x if same else y)))
        if not nx * ny * columns / tau <= limit / 4:
            pair = x_name.replace("+", ", ") if same else f"{x_name} and {y_name}"
            raise ValueError(f"{pair}: with normalize=False the scores x·y/temperature summed over {columns} rows can "
                             f"reach {nx * ny * columns / tau:.3g}, beyond {str(temperature.dtype)[6:]}; scale the "
                             "embeddings down or use normalize=True")
    return temperature


def positive_sums(xh, yh, labels_x, labels_y, self_col, temperature):
    """ops/_positives.positive_sums, or zeros when labels_x or labels_y is empty: "no column is a positive" (a
    queue of negatives), without the class sums' O((M + Nc)·D) pass."""
    if labels_x.numel() == 0 or labels_y.numel() == 0:
        return torch.zeros(self_col.shape[0], dtype=acc_dtype(xh.dtype), device=xh.device)
    return _positive_sums(xh, yh, labels_x, labels_y, self_col, temperature)


def positive_grad(yh, labels_x, labels_y, self_col, temperature, rho, sigma):
    """ops/_positives.positive_grad, or zeros [M, D] when there are no positives (see positive_sums)."""
    if labels_x.numel() == 0 or labels_y.numel() == 0:
        return torch.zeros(self_col.shape[0], yh.shape[1], dtype=acc_dtype(yh.dtype), device=yh.device)
    return _positive_grad(yh, labels_x, labels_y, self_col, temperature, rho, sigma)


@torch.library.custom_op("fastrepr::contrastive_stats", mutates_args=())
def contrastive_stats(x: torch.Tensor, y: torch.Tensor, labels_x: torch.Tensor, labels_y: torch.Tensor,
                      self_col: torch.Tensor, temperature: torch.Tensor, normalize: bool, same: bool,
                      col_stats: bool, names: str = "x|y") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                    torch.Tensor, torch.Tensor, torch.Tensor]:
    """Row statistics (lse, pos, e) [M] of S = x̂ ŷᵀ / τ, and with col_stats those of Sᵀ ([Nc] each, else
    empty). same=True means y is x (then col_stats must be False: the backward uses the symmetry).
    labels_*: int64 (both empty: no positives, pos = 0); self_col[a]: the column excluded from row a (-1: none); temperature: 0-dim tensor.
    names: "x's name|y's name" for error messages ("z1+z2" when x stacks two arguments of equal length)."""
    temperature = _check_values(x, y, temperature, normalize, same, names)
    xh, _ = _normalize(x) if normalize else (x, None)
    yh = xh if same else (_normalize(y)[0] if normalize else y)
    lse, e = _backend.dispatch(OP, IMPLS, xh, yh, self_col, temperature)
    pos = positive_sums(xh, yh, labels_x, labels_y, self_col, temperature).to(lse.dtype)
    if col_stats:
        self_row = self_rows(self_col, y.shape[0])
        lse_c, e_c = _backend.dispatch(OP, IMPLS, yh, xh, self_row, temperature)
        pos_c = positive_sums(yh, xh, labels_y, labels_x, self_row, temperature).to(lse.dtype)
    else:
        lse_c, pos_c, e_c = (lse.new_empty(0) for _ in range(3))
    return lse, pos, e, lse_c, pos_c, e_c


@contrastive_stats.register_fake
def _(x, y, labels_x, labels_y, self_col, temperature, normalize, same, col_stats, names="x|y"):
    dt = acc_dtype(x.dtype)
    m, nc = x.shape[0], (y.shape[0] if col_stats else 0)
    return (x.new_empty(m, dtype=dt), x.new_empty(m, dtype=dt), x.new_empty(m, dtype=dt),
            x.new_empty(nc, dtype=dt), x.new_empty(nc, dtype=dt), x.new_empty(nc, dtype=dt))


def _setup_context(ctx, inputs, output):
    x, y, labels_x, labels_y, self_col, temperature, normalize, same, col_stats, _names = inputs
    ctx.normalize, ctx.same, ctx.col_stats = normalize, same, col_stats
    ctx.save_for_backward(x, y, labels_x, labels_y, self_col, temperature, *output)
    ctx.mark_non_differentiable(output[2], output[5])


@torch.library.custom_op("fastrepr::contrastive_stats_backward", mutates_args=())
def contrastive_stats_backward(x: torch.Tensor, y: torch.Tensor, labels_x: torch.Tensor, labels_y: torch.Tensor,
                               self_col: torch.Tensor, temperature: torch.Tensor, lse: torch.Tensor,
                               pos: torch.Tensor, e: torch.Tensor, lse_c: torch.Tensor, pos_c: torch.Tensor,
                               e_c: torch.Tensor, g_lse: torch.Tensor, g_pos: torch.Tensor, g_lse_c: torch.Tensor,
                               g_pos_c: torch.Tensor, normalize: bool, same: bool,
                               col_stats: bool, y_grad: bool = True) -> tuple[torch.Tensor, torch.Tensor,
                                                                            torch.Tensor]:
    """(dx, dy, dtemperature) of contrastive_stats given the gradients of its statistics (see module doc);
    dy is empty when same or not y_grad (a detached y, such as a queue of negatives: its pass is skipped).
    A custom op of its own so that torch.compile traces the backward too."""
    def bwd(*args):
        return _backend.dispatch(BACKWARD_OP, BACKWARD_IMPLS, *args)

    xh, rnx = _normalize(x) if normalize else (x, None)
    dtemp_sum = (g_lse * e + g_pos * pos).sum()
    if same:
        extra = positive_grad(xh, labels_x, labels_x, self_col, temperature, g_pos, g_pos)
        dx = bwd(xh, xh, self_col, temperature, g_lse, lse, g_lse, lse, extra, rnx)
        dy = y.new_empty(0)
    else:
        yh, rny = _normalize(y) if normalize else (y, None)
        self_row = self_rows(self_col, y.shape[0])
        if not col_stats:  # rows-only statistics: no column terms
            g_lse_c = lse_c = None
            g_pos_c = torch.zeros(y.shape[0], dtype=lse.dtype, device=lse.device)
        else:
            dtemp_sum = dtemp_sum + (g_lse_c * e_c + g_pos_c * pos_c).sum()
        extra = positive_grad(yh, labels_x, labels_y, self_col, temperature, g_pos, g_pos_c)
        dx = bwd(xh, yh, self_col, temperature, g_lse, lse, g_lse_c, lse_c, extra, rnx)
        if y_grad:
            extra = positive_grad(xh, labels_y, labels_x, self_row, temperature, g_pos_c, g_pos)
            dy = bwd(yh, xh, self_row, temperature, g_lse_c, lse_c, g_lse, lse, extra, rny).to(y.dtype)
        else:
            dy = y.new_empty(0)
    dtemp = (-dtemp_sum / temperature).to(temperature.dtype)
    return dx.to(x.dtype), dy, dtemp


@contrastive_stats_backward.register_fake
def _(x, y, labels_x, labels_y, self_col, temperature, lse, pos, e, lse_c, pos_c, e_c, g_lse, g_pos, g_lse_c,
      g_pos_c, normalize, same, col_stats, y_grad=True):
    return (torch.empty_like(x), (y.new_empty(0) if same or not y_grad else torch.empty_like(y)),
            torch.empty_like(temperature))


def _backward(ctx, g_lse, g_pos, _g_e, g_lse_c, g_pos_c, _g_e_c):
    x, y, labels_x, labels_y, self_col, temperature, lse, pos, e, lse_c, pos_c, e_c = ctx.saved_tensors
    grads = [torch.zeros_like(like) if g is None else g for g, like in
             ((g_lse, lse), (g_pos, pos), (g_lse_c, lse_c), (g_pos_c, pos_c))]
    dx, dy, dtemp = contrastive_stats_backward(x, y, labels_x, labels_y, self_col, temperature, lse, pos, e,
                                               lse_c, pos_c, e_c, *grads, ctx.normalize, ctx.same, ctx.col_stats,
                                               ctx.needs_input_grad[1])
    return dx, (None if ctx.same or not ctx.needs_input_grad[1] else dy), None, None, None, dtemp, None, None, None, None


contrastive_stats.register_autograd(_backward, setup_context=_setup_context)


# ------------------------------------------------------------------------------------------- losses

def temperature_tensor(temperature, like: torch.Tensor) -> torch.Tensor:
    """A 0-dim tensor on like's device, float64 for float64 embeddings, else float32 (a learnable tensor keeps
    its graph)."""
    dtype = acc_dtype(like.dtype)
    if isinstance(temperature, torch.Tensor):
        return temperature.to(device=like.device, dtype=dtype).reshape(())
    return torch.tensor(float(temperature), dtype=dtype, device=like.device)


def _local_ids(n: int, rank: int, device) -> torch.Tensor:
    return torch.arange(n, device=device) + rank * n


def nt_xent(z1, z2, temperature, normalize=True, gather_distributed=False):
    """Per-anchor NT-Xent [2N] over the anchors [z1; z2] (fastrepr.functional.nt_xent reduces). With
    gather_distributed and W > 1 ranks the columns are every rank's embeddings, all-gathered (True) or passed
    around the ring ("ring": ops/_contrastive_ring.py); fastrepr.functional.nt_xent for the gradient scaling."""
    n = z1.shape[0]
    z = torch.cat([z1, z2])
    t = temperature_tensor(temperature, z)
    rank, world = rank_and_world() if gather_distributed else (0, 1)
    idx = torch.arange(2 * n, device=z.device)
    labels = idx % n + rank * n
    if world > 1 and gather_distributed == "ring":
        return _ring.nt_xent(z1, z2, z, t, normalize)
    if world == 1:
        lse, pos, *_ = contrastive_stats(z, z, labels, labels, idx, t, normalize, True, False, "z1+z2|z1+z2")
    else:
        y = torch.cat([all_gather_with_grad(z1), all_gather_with_grad(z2)])  # [2 W n, D]
        labels_y = torch.arange(2 * world * n, device=z.device) % (world * n)
        self_col = torch.where(idx < n, rank * n + idx, world * n + rank * n + idx - n)
        lse, pos, *_ = contrastive_stats(z, y, labels, labels_y, self_col, t, normalize, False, False,
                                         "z1+z2|z1+z2 (gathered from every rank)")
    return lse - pos


def info_nce(q, k, temperature, symmetric=True, normalize=True, gather_distributed=False):
    """CLIP InfoNCE: mean over rows of q of -log softmax(q̂ k̂ᵀ/τ)[i, i], averaged with the k -> q direction.
    (With a queue of negatives: fastrepr.ops.dcl.info_nce_queue.)"""
    n = q.shape[0]
    t = temperature_tensor(temperature, q)
    rank, world = rank_and_world() if gather_distributed else (0, 1)
    ids = _local_ids(n, rank, q.device)
    none = torch.full((n,), -1, dtype=torch.long, device=q.device)
    if world > 1 and gather_distributed == "ring":
        return _ring.info_nce(q, k, t, symmetric, normalize)
    if world == 1:
        lse, pos, _, lse_c, pos_c, _ = contrastive_stats(q, k, ids, ids, none, t, normalize, False, symmetric, "q|k")
        loss = (lse - pos).mean()
        return (loss + (lse_c - pos_c).mean()) / 2 if symmetric else loss
    ids_all = torch.arange(world * n, device=q.device)
    lse, pos, *_ = contrastive_stats(q, all_gather_with_grad(k), ids, ids_all, none, t, normalize, False, False,
                                     "q|k (gathered from every rank)")
    loss = (lse - pos).mean()
    if not symmetric:
        return loss
    lse, pos, *_ = contrastive_stats(k, all_gather_with_grad(q), ids, ids_all, none, t, normalize, False, False,
                                     "k|q (gathered from every rank)")
    return (loss + (lse - pos).mean()) / 2


def sup_con(z, labels, temperature, normalize=True, gather_distributed=False):
    """SupCon (L_out): mean over anchors that have a positive of lse[a] - pos[a] / |P(a)|; 0 when none has."""
    n = z.shape[0]
    t = temperature_tensor(temperature, z)
    rank, world = rank_and_world() if gather_distributed else (0, 1)
    if world > 1 and gather_distributed == "ring":
        return _ring.sup_con(z, labels, t, normalize)
    if world == 1:
        cols_labels = labels
        lse, pos, *_ = contrastive_stats(z, z, labels, labels, torch.arange(n, device=z.device), t, normalize,
                                         True, False, "z|z")
    else:
        cols_labels = all_gather(labels)
        lse, pos, *_ = contrastive_stats(z, all_gather_with_grad(z), labels, cols_labels,
                                         _local_ids(n, rank, z.device), t, normalize, False, False,
                                         "z|z (gathered from every rank)")
    values, counts = torch.unique(cols_labels, return_counts=True)
    npos = counts[torch.searchsorted(values, labels)] - 1
    has = (npos > 0).to(lse.dtype)
    per_anchor = (lse - pos / npos.clamp_min(1)) * has
    return per_anchor.sum() / has.sum().clamp_min(1)
