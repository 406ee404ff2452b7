"""Streaming log q(z) of β-TCVAE: the B×B×D log-density log-sum-exps, in O(B·D) memory, with their backward.

β-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs") estimates the aggregate posterior of
sample z_i [D] (drawn from q(z | x_i) = N(mu_i, diag exp(logvar_i))) from the minibatch:

    l[i, j, d] = log N(z_id; mu_jd, exp(lv_jd)) = -1/2 ((z_id - mu_jd)^2 exp(-lv_jd) + lv_jd + log 2π)
    lse_dims[i, d] = log sum_j w[i, j] exp l[i, j, d]             (log q(z_id), one marginal per dimension)
    lse_joint[i]   = log sum_j w[i, j] exp sum_d l[i, j, d]       (log q(z_i), jointly)

with log-weights w: all 0 for minibatch weighted sampling (MWS; the -log(N·B) normalization is a constant that
fastrepr.functional adds), or for stratified sampling (MSS, Chen et al. Appendix C) with M = B - 1:
w = 1/N on j = i, (N - M)/(N M) on j = (i + 1) mod B, 1/M elsewhere (each row sums to 1). TC_i = lse_joint[i] -
sum_d lse_dims[i, d]. disentanglement_lib's ``total_correlation`` is MWS without the constant (its [B, B, D]
tensor is materialized, 4096² x 10 x 4 bytes = 671 MB at B = 4096, D = 10).

Backward: with upstream gradients g_d [B, D] and g_j [B], the weight of pair (i, j) in dimension d is
    G[i, j, d] = g_d[i, d] P_d[i, j, d] + g_j[i] P_j[i, j],
    P_d = exp(w + l - lse_dims[i, d]) (a softmax over j), P_j = exp(w + sum_d l - lse_joint[i]),
and with u = (z_id - mu_jd) exp(-lv_jd):  dl/dz_id = -u, dl/dmu_jd = u, dl/dlv_jd = (u (z_id - mu_jd) - 1) / 2, so
    dz[i] = -sum_j G u,   dmu[j] = sum_i G u,   dlv[j] = sum_i G (u (z - mu) - 1) / 2.
Every exponent is <= 0 (lse >= each term), so nothing overflows. The statistics are recomputed tile by tile from
the saved z, mu, logvar and the O(B·D) outputs: nothing of size B² is stored.

Implementations (IMPLS, BACKWARD_IMPLS): triton (one program per BLOCK_I rows streams column tiles of a
[BLOCK_I, BLOCK_J, D] tile with an fp32 online log-sum-exp, as flash attention does; backward: one launch owning
rows writes dz, one owning columns writes dmu and dlogvar, so no atomics and a deterministic result; D <=
MAX_TRITON_D, not float64) and torch (row chunks i of a dense [chunk, B, D] tile, chunk = CHUNK_ELEMENTS / (B·D)
rows: any device, dtype and D). There is no native one: on CPU the chunked torch tile runs; a C++ loop would pay
there (the torch tile makes ~8 passes over [chunk, B, D] temporaries, a fused loop one).
"""
from __future__ import annotations

import math

import torch

from .. import _backend
from .._triton import CompileCase, next_power_of_2, tl, triton
from ._precision import acc_dtype

OP = "tc_log_density_lse"
BACKWARD_OP = "tc_log_density_lse_backward"
CHUNK_ELEMENTS = 1 << 18  # the torch implementation's [chunk, B, D] tile: 1 MB fp32 (about 8 live in backward)
LOG_2PI = math.log(2 * math.pi)


def mss_log_weights(B: int, dataset_size: int, rows: slice, device, dtype) -> torch.Tensor:
    """[len(rows), B] log-weights of stratified sampling (module docstring) for batch rows ``rows``."""
    M = B - 1
    i = torch.arange(B, device=device)[rows]
    j = torch.arange(B, device=device)
    w = torch.full((i.numel(), B), math.log(1.0 / M), dtype=dtype, device=device)
    w[j[None, :] == ((i + 1) % B)[:, None]] = math.log((dataset_size - M) / (dataset_size * M)) \
        if dataset_size > M else float("-inf")
    w[j[None, :] == i[:, None]] = math.log(1.0 / dataset_size)
    return w


def _chunk(B: int, D: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(B * D, 1))


def _tile(z, mu, lv, rows, dataset_size):
    """(l [c, B, D], w [c, B, 1] or None, diff, u) for batch rows ``rows`` in the accumulation dtype."""
    diff = z[rows, None, :] - mu[None, :, :]
    u = diff * torch.exp(-lv)[None]
    l = -0.5 * (diff * u + lv[None] + LOG_2PI)
    w = None if dataset_size <= 0 else mss_log_weights(z.shape[0], dataset_size, rows, z.device, z.dtype)[..., None]
    return l, w, diff, u


def tc_log_density_lse_torch(z, mu, logvar, dataset_size: int):
    """(lse_dims [B, D], lse_joint [B]) in the accumulation dtype; dataset_size > 0: MSS weights, else MWS (all
    0). Extra memory O(B·D + CHUNK_ELEMENTS), never the [B, B, D] tensor."""
    acc = acc_dtype(z.dtype)
    z, mu, lv = z.to(acc), mu.to(acc), logvar.to(acc)
    B, D = z.shape
    lse_d = torch.empty((B, D), dtype=acc, device=z.device)
    lse_j = torch.empty(B, dtype=acc, device=z.device)
    step = _chunk(B, D)
    for i0 in range(0, B, step):
        rows = slice(i0, i0 + step)
        l, w, _, _ = _tile(z, mu, lv, rows, dataset_size)
        joint = l.sum(2)
        if w is not None:
            l, joint = l + w, joint + w[..., 0]
        lse_d[rows] = torch.logsumexp(l, 1)
        lse_j[rows] = torch.logsumexp(joint, 1)
    return lse_d, lse_j


def tc_log_density_lse_backward_torch(z, mu, logvar, dataset_size: int, lse_d, lse_j, g_d, g_j):
    """(dz, dmu, dlogvar) in the inputs' dtype (module docstring), over the same row chunks as forward."""
    acc = acc_dtype(z.dtype)
    zc, mc, lv = z.to(acc), mu.to(acc), logvar.to(acc)
    B, D = zc.shape
    g_d, g_j, lse_d, lse_j = g_d.to(acc), g_j.to(acc), lse_d.to(acc), lse_j.to(acc)
    dz = torch.empty_like(zc)
    dmu = torch.zeros_like(zc)
    dlv = torch.zeros_like(zc)
    step = _chunk(B, D)
    for i0 in range(0, B, step):
        rows = slice(i0, i0 + step)
        l, w, diff, u = _tile(zc, mc, lv, rows, dataset_size)
        joint = l.sum(2, keepdim=True)
        if w is not None:
            l, joint = l + w, joint + w
        G = g_d[rows, None, :] * torch.exp(l - lse_d[rows, None, :]) + \
            g_j[rows, None, None] * torch.exp(joint - lse_j[rows, None, None])
        Gu = G * u
        dz[rows] = -Gu.sum(1)
        dmu += Gu.sum(0)
        dlv += 0.5 * (Gu * diff - G).sum(0)
    return dz.to(z.dtype), dmu.to(mu.dtype), dlv.to(logvar.dtype)


# ------------------------------------------------------------------------------------------- Triton

@triton.jit
def _pair_tile(z_ptr, mu_ptr, lv_ptr, rows, cols, dims, B, D, stride, MSS: tl.constexpr, log_diag, log_next,
               log_other):
    """For rows i [BI] and columns j [BJ]: (l [BI, BJ, BD] + w (the per-dimension terms), sum_d l + w [BI, BJ],
    diff = z_i - mu_j, u = diff exp(-lv_j), valid [BI, BJ]) in fp32; invalid pairs are -inf in both sums."""
    r_ok, c_ok, d_ok = rows < B, cols < B, dims < D
    z = tl.load(z_ptr + rows[:, None] * stride + dims[None, :], mask=r_ok[:, None] & d_ok[None, :], other=0.0)
    cm = c_ok[:, None] & d_ok[None, :]
    mu = tl.load(mu_ptr + cols[:, None] * stride + dims[None, :], mask=cm, other=0.0).to(tl.float32)
    lv = tl.load(lv_ptr + cols[:, None] * stride + dims[None, :], mask=cm, other=0.0).to(tl.float32)
    diff = z.to(tl.float32)[:, None, :] - mu[None, :, :]
    u = diff * tl.exp(-lv)[None, :, :]
    l = -0.5 * (diff * u + lv[None, :, :] + 1.8378770664093453)  # log 2π
    l = tl.where(d_ok[None, None, :], l, 0.0)
    valid = r_ok[:, None] & c_ok[None, :]
    if MSS:
        w = tl.where(cols[None, :] == rows[:, None], log_diag,
                     tl.where(cols[None, :] == (rows[:, None] + 1) % B, log_next, log_other))
    else:
        w = valid.to(tl.float32) * 0.0
    w = tl.where(valid, w, float("-inf"))
    joint = tl.sum(l, 2) + w
    return l + w[:, :, None], joint, diff, u, valid


@triton.jit
def _tc_log_density_lse_fwd_kernel(
    # pointers
    z_ptr, mu_ptr, lv_ptr, lse_d_ptr, lse_j_ptr,
    # shapes
    B, D,
    # strides (all four [B, D] tensors are contiguous)
    stride,
    # weights (MSS only)
    log_diag, log_next, log_other,
    # constants
    MSS: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Online log-sum-exp over column tiles (flash-attention style), per dimension and jointly; one program per
    BLOCK_I rows, O(BLOCK_I·BLOCK_D) state."""
    rows = tl.program_id(0) * BLOCK_I + tl.arange(0, BLOCK_I)
    dims = tl.arange(0, BLOCK_D)
    m_d = tl.full([BLOCK_I, BLOCK_D], -1e30, dtype=tl.float32)  # finite: all-masked tiles stay free of inf - inf
    s_d = tl.zeros([BLOCK_I, BLOCK_D], dtype=tl.float32)
    m_j = tl.full([BLOCK_I], -1e30, dtype=tl.float32)
    s_j = tl.zeros([BLOCK_I], dtype=tl.float32)
    for j0 in range(0, B, BLOCK_J):
        cols = j0 + tl.arange(0, BLOCK_J)
        lw, joint, diff, u, valid = _pair_tile(z_ptr, mu_ptr, lv_ptr, rows, cols, dims, B, D, stride, MSS,
                                               log_diag, log_next, log_other)
        new_d = tl.maximum(m_d, tl.max(lw, 1))
        s_d = s_d * tl.exp(m_d - new_d) + tl.sum(tl.exp(lw - new_d[:, None, :]), 1)
        m_d = new_d
        new_j = tl.maximum(m_j, tl.max(joint, 1))
        s_j = s_j * tl.exp(m_j - new_j) + tl.sum(tl.exp(joint - new_j[:, None]), 1)
        m_j = new_j
    r_ok = rows < B
    tl.store(lse_d_ptr + rows[:, None] * stride + dims[None, :], m_d + tl.log(s_d),
             mask=r_ok[:, None] & (dims < D)[None, :])
    tl.store(lse_j_ptr + rows, m_j + tl.log(s_j), mask=r_ok)


@triton.jit
def _tc_log_density_lse_bwd_kernel(
    # pointers
    z_ptr, mu_ptr, lv_ptr, lse_d_ptr, lse_j_ptr, gd_ptr, gj_ptr, dz_ptr, dmu_ptr, dlv_ptr,
    # shapes
    B, D,
    # strides
    stride,
    # weights (MSS only)
    log_diag, log_next, log_other,
    # constants
    MSS: tl.constexpr, COLUMNS: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """COLUMNS=False: program owns rows i and writes dz[i] = -sum_j G u. COLUMNS=True: it owns columns j, loops
    over row tiles and writes dmu[j] = sum_i G u, dlv[j] = sum_i (G u diff - G) / 2. No atomics: deterministic."""
    OWN: tl.constexpr = BLOCK_J if COLUMNS else BLOCK_I
    STEP: tl.constexpr = BLOCK_I if COLUMNS else BLOCK_J
    own = tl.program_id(0) * OWN + tl.arange(0, OWN)
    dims = tl.arange(0, BLOCK_D)
    d_ok = dims < D
    acc_a = tl.zeros([OWN, BLOCK_D], dtype=tl.float32)
    acc_b = tl.zeros([OWN, BLOCK_D], dtype=tl.float32)
    for k0 in range(0, B, STEP):
        if COLUMNS:
            rows = k0 + tl.arange(0, BLOCK_I)
            cols = own
        else:
            rows = own
            cols = k0 + tl.arange(0, BLOCK_J)
        r_ok = rows < B
        lw, joint, diff, u, valid = _pair_tile(z_ptr, mu_ptr, lv_ptr, rows, cols, dims, B, D, stride, MSS,
                                               log_diag, log_next, log_other)
        rm = r_ok[:, None] & d_ok[None, :]
        lse_d = tl.load(lse_d_ptr + rows[:, None] * stride + dims[None, :], mask=rm, other=0.0)
        g_d = tl.load(gd_ptr + rows[:, None] * stride + dims[None, :], mask=rm, other=0.0)
        lse_j = tl.load(lse_j_ptr + rows, mask=r_ok, other=0.0)
        g_j = tl.load(gj_ptr + rows, mask=r_ok, other=0.0)
        p_j = g_j[:, None] * tl.exp(joint - lse_j[:, None])
        G = g_d[:, None, :] * tl.exp(lw - lse_d[:, None, :]) + p_j[:, :, None]
        G = tl.where(valid[:, :, None] & d_ok[None, None, :], G, 0.0)
        Gu = G * u
        if COLUMNS:
            acc_a += tl.sum(Gu, 0)
            acc_b += 0.5 * tl.sum(Gu * diff - G, 0)
        else:
            acc_a -= tl.sum(Gu, 1)
    om = (own < B)[:, None] & d_ok[None, :]
    offs = own[:, None] * stride + dims[None, :]
    if COLUMNS:
        tl.store(dmu_ptr + offs, acc_a.to(dmu_ptr.dtype.element_ty), mask=om)
        tl.store(dlv_ptr + offs, acc_b.to(dlv_ptr.dtype.element_ty), mask=om)
    else:
        tl.store(dz_ptr + offs, acc_a.to(dz_ptr.dtype.element_ty), mask=om)


MAX_TRITON_D = 128  # whole rows in one tile; wider codes take the torch path (VAEs use D = 10 ... 64)


def _tiles(D: int) -> tuple[int, int, int]:
    """(BLOCK_I, BLOCK_J, BLOCK_D): a [BLOCK_I, BLOCK_J, BLOCK_D] fp32 tile of about 4096 elements (a few such
    tiles live at once: 4 warps). Untuned: no GPU was available when this was written."""
    block_d = max(2, next_power_of_2(D))
    block_j = max(2, min(32, 4096 // (16 * block_d)))
    return 16, block_j, block_d


def _weights(B: int, dataset_size: int) -> tuple[float, float, float]:
    """(log w on j = i, on j = i + 1, elsewhere) of MSS (module docstring); zeros when unused."""
    if dataset_size <= 0:
        return 0.0, 0.0, 0.0
    M, N = B - 1, dataset_size
    nxt = math.log((N - M) / (N * M)) if N > M else float("-inf")
    return math.log(1.0 / N), nxt, math.log(1.0 / M)


def compile_cases():
    """How the launchers call the kernels on a GPU (tests/test_gpu_compile.py): fp16/bf16/fp32 codes (float64 and
    D > MAX_TRITON_D take the torch path), every tiling for D = 1 ... 128, MWS and MSS, both backward roles."""
    f32 = torch.float32
    for dt in (torch.float16, torch.bfloat16, f32):
        for D in (1, 2, 4, 8, 16, 32, 64, 128):
            bi, bj, bd = _tiles(D)
            base = dict(z_ptr=dt, mu_ptr=dt, lv_ptr=dt, lse_d_ptr=f32, lse_j_ptr=f32, B=4096, D=D, stride=D,
                        log_diag=-1.0, log_next=-1.0, log_other=-1.0)
            for mss in (False, True):
                c = dict(MSS=mss, BLOCK_I=bi, BLOCK_J=bj, BLOCK_D=bd)
                yield CompileCase(_tc_log_density_lse_fwd_kernel, base, c, num_warps=4)
                bwd = dict(base, gd_ptr=f32, gj_ptr=f32, dz_ptr=dt, dmu_ptr=dt, dlv_ptr=dt)
                for columns in (False, True):
                    yield CompileCase(_tc_log_density_lse_bwd_kernel, bwd, dict(c, COLUMNS=columns), num_warps=4)


def tc_log_density_lse_triton(z, mu, logvar, dataset_size: int):
    """Triton launcher (arguments as tc_log_density_lse_torch): (lse_dims [B, D], lse_joint [B]) float32.
    Extra memory: the outputs."""
    B, D = z.shape
    z, mu, logvar = (t.contiguous() for t in (z, mu, logvar))
    lse_d = torch.empty((B, D), dtype=torch.float32, device=z.device)
    lse_j = torch.empty(B, dtype=torch.float32, device=z.device)
    bi, bj, bd = _tiles(D)
    _tc_log_density_lse_fwd_kernel[(triton.cdiv(B, bi),)](
        z, mu, logvar, lse_d, lse_j, B, D, D, *_weights(B, dataset_size),
        MSS=dataset_size > 0, BLOCK_I=bi, BLOCK_J=bj, BLOCK_D=bd, num_warps=4)
    return lse_d, lse_j


def tc_log_density_lse_backward_triton(z, mu, logvar, dataset_size: int, lse_d, lse_j, g_d, g_j):
    """(dz, dmu, dlogvar) in the inputs' dtype: one launch owning rows (dz), one owning columns (dmu, dlv)."""
    B, D = z.shape
    z, mu, logvar = (t.contiguous() for t in (z, mu, logvar))
    lse_d, lse_j, g_d, g_j = (t.to(torch.float32).contiguous() for t in (lse_d, lse_j, g_d, g_j))
    dz, dmu, dlv = torch.empty_like(z), torch.empty_like(mu), torch.empty_like(logvar)
    bi, bj, bd = _tiles(D)
    args = (z, mu, logvar, lse_d, lse_j, g_d, g_j, dz, dmu, dlv, B, D, D, *_weights(B, dataset_size))
    flags = dict(MSS=dataset_size > 0, BLOCK_I=bi, BLOCK_J=bj, BLOCK_D=bd, num_warps=4)
    _tc_log_density_lse_bwd_kernel[(triton.cdiv(B, bi),)](*args, COLUMNS=False, **flags)
    _tc_log_density_lse_bwd_kernel[(triton.cdiv(B, bj),)](*args, COLUMNS=True, **flags)
    return dz, dmu, dlv


def _rejects(name, args, kwargs):
    if name != "triton":
        return None
    if args[0].shape[1] > MAX_TRITON_D:
        return f"takes codes of D <= {MAX_TRITON_D} (whole rows in one tile); the torch implementation takes any D"
    return None


IMPLS = _backend.declare(OP, _backend.Impls(triton=tc_log_density_lse_triton, torch=tc_log_density_lse_torch,
                                            rejects=_rejects, no_float64=("triton",)))
BACKWARD_IMPLS = _backend.declare(BACKWARD_OP, _backend.Impls(
    triton=tc_log_density_lse_backward_triton, torch=tc_log_density_lse_backward_torch, rejects=_rejects,
    no_float64=("triton",)))


@torch.library.custom_op("fastrepr::tc_log_density_lse", mutates_args=())
def tc_log_density_lse(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                       dataset_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log q(z_id) [B, D], log q(z_i) [B]) up to MWS's constant (validated by fastrepr.functional)."""
    return _backend.dispatch(OP, IMPLS, z, mu, logvar, dataset_size)


@tc_log_density_lse.register_fake
def _(z, mu, logvar, dataset_size):
    acc = acc_dtype(z.dtype)
    return z.new_empty(z.shape, dtype=acc), z.new_empty(z.shape[0], dtype=acc)


@torch.library.custom_op("fastrepr::tc_log_density_lse_backward", mutates_args=())
def tc_log_density_lse_backward(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                                lse_d: torch.Tensor, lse_j: torch.Tensor, g_d: torch.Tensor,
                                g_j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _backend.dispatch(BACKWARD_OP, BACKWARD_IMPLS, z, mu, logvar, dataset_size, lse_d, lse_j, g_d, g_j)


@tc_log_density_lse_backward.register_fake
def _(z, mu, logvar, dataset_size, lse_d, lse_j, g_d, g_j):
    return torch.empty_like(z), torch.empty_like(mu), torch.empty_like(logvar)


def _setup(ctx, inputs, output):
    z, mu, logvar, dataset_size = inputs
    ctx.dataset_size = dataset_size
    ctx.save_for_backward(z, mu, logvar, *output)


def _backward(ctx, g_d, g_j):
    z, mu, logvar, lse_d, lse_j = ctx.saved_tensors
    g_d = torch.zeros_like(lse_d) if g_d is None else g_d
    g_j = torch.zeros_like(lse_j) if g_j is None else g_j
    dz, dmu, dlv = tc_log_density_lse_backward(z, mu, logvar, ctx.dataset_size, lse_d, lse_j, g_d, g_j)
    return dz, dmu, dlv, None


tc_log_density_lse.register_autograd(_backward, setup_context=_setup)
