"""Batched pairwise latent differences: the core of the BetaVAE disentanglement score.

Higgins et al. 2017 (beta-VAE, ICLR) score a representation by fixing one ground-truth factor, drawing B
pairs of observations that share it, and averaging |z1 - z2| over the pairs. A disentangled code shows a
near-zero mean difference exactly in the latent that encodes the fixed factor. Here, for P such points:

    dense:  out[p, d] = 1/B * sum_b |z1[p, b, d] - z2[p, b, d]|           z1, z2: [P, B, D]
    index:  out[p, d] = 1/B * sum_b |z[i[p, b], d] - z[j[p, b], d]|       z: [N, D], i, j: [P, B]

The index form gathers rows on the fly and never materializes the [P, B, D] gather that the plain-PyTorch
expression ``(z[i] - z[j]).abs().mean(1)`` builds twice (plus the difference). Both forms accumulate in
float32 (float64 for float64 input) and return the input dtype.

Gradient: d|x|/dx = sign(x) (0 at x = 0, as torch.abs), so dL/dz1[p, b, d] = sign(z1 - z2) * g[p, d] / B and
dL/dz2 = -dL/dz1; the index form scatter-adds those into the rows named by i and j. The backward runs in
plain PyTorch for every implementation (it needs [P, B, D] memory); the op is mostly used without gradients.

Implementations (IMPLS): triton (below), native (csrc/pairwise.cpp, OpenMP over points) and torch (the plain
expression in chunks of points, so that its [chunk, B, D] differences stay bounded).

Non-finite policy (fastrepr._checks): NaN/Inf inputs raise a ValueError naming z1, z2 or z, and so does a mean
that overflows the output dtype (|z1 - z2| of finite float32 values near 3e38 overflows; float16 results above
65504). Both checks run inside the ops, on CPU always and on CUDA only under FASTREPR_CHECK=1 (without it NaN
and Inf propagate to the outputs they touch).
"""
from __future__ import annotations

import torch

from .. import _backend, _checks, _native
from ._precision import acc_dtype
from .._triton import CompileCase, next_power_of_2, tl, triton

OP = "pairwise_abs_diff_mean"
CHUNK_ELEMENTS = 1 << 20  # the torch implementation's [chunk, B, D] differences: 4 MB in fp32


@triton.jit
def _pairwise_abs_diff_mean_fwd_kernel(
    # pointers
    a_ptr, b_ptr, i_ptr, j_ptr, out_ptr,
    # shapes
    P, B, D,
    # strides (index form: a is z [N, D]; stride_ap is unused and stride_ab is z's row stride)
    stride_ap, stride_ab, stride_ad,
    stride_bp, stride_bb, stride_bd,
    stride_ip, stride_ib, stride_jp, stride_jb,
    stride_op, stride_od,
    # constants
    INDEXED: tl.constexpr, ACC: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program owns a [BLOCK_P, BLOCK_D] tile of `out` and loops over the B pairs; no atomics, so the
    result is deterministic."""
    offs_p = (tl.program_id(0) * BLOCK_P + tl.arange(0, BLOCK_P)).to(tl.int64)
    offs_d = (tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)).to(tl.int64)
    mask_p = offs_p < P
    mask = mask_p[:, None] & (offs_d < D)[None, :]
    acc = tl.zeros([BLOCK_P, BLOCK_D], dtype=ACC)
    for b in range(0, B):
        if INDEXED:
            ri = tl.load(i_ptr + offs_p * stride_ip + b * stride_ib, mask=mask_p, other=0)
            rj = tl.load(j_ptr + offs_p * stride_jp + b * stride_jb, mask=mask_p, other=0)
            pa = a_ptr + ri[:, None] * stride_ab + offs_d[None, :] * stride_ad
            pb = a_ptr + rj[:, None] * stride_ab + offs_d[None, :] * stride_ad
        else:
            pa = a_ptr + offs_p[:, None] * stride_ap + b * stride_ab + offs_d[None, :] * stride_ad
            pb = b_ptr + offs_p[:, None] * stride_bp + b * stride_bb + offs_d[None, :] * stride_bd
        x = tl.load(pa, mask=mask, other=0.0).to(ACC)
        y = tl.load(pb, mask=mask, other=0.0).to(ACC)
        acc += tl.abs(x - y)
    acc = acc / B
    out = out_ptr + offs_p[:, None] * stride_op + offs_d[None, :] * stride_od
    tl.store(out, acc, mask=mask)


def _tiles(D: int) -> tuple[int, int]:
    """(BLOCK_P, BLOCK_D). Untuned (no GPU was available when this was written): BLOCK_D covers D up to 64, and
    BLOCK_P keeps a tile near 2048 elements (16 per thread at 4 warps)."""
    block_d = min(next_power_of_2(D), 64)
    return max(16, 2048 // block_d), block_d


def compile_cases():
    """How pairwise_abs_diff_mean_triton launches the kernel on a GPU (tests/test_gpu_compile.py): every float
    dtype, both forms (dense: i and j are placeholders of z1's dtype), each BLOCK_D (D = 1, 2, ..., 64; larger D
    tiles like 64), contiguous inputs, P = 4096 and B = 64."""
    P, B = 4096, 64
    for dt in _checks.FLOAT_DTYPES:
        for D in (1, 2, 4, 8, 16, 32, 64):
            block_p, block_d = _tiles(D)
            flags = dict(ACC=tl.float64 if dt == torch.float64 else tl.float32, BLOCK_P=block_p, BLOCK_D=block_d)
            out = dict(out_ptr=acc_dtype(dt), P=P, B=B, D=D, stride_op=D, stride_od=1)
            yield CompileCase(_pairwise_abs_diff_mean_fwd_kernel, dict(
                a_ptr=dt, b_ptr=dt, i_ptr=dt, j_ptr=dt, stride_ap=B * D, stride_ab=D, stride_ad=1, stride_bp=B * D,
                stride_bb=D, stride_bd=1, stride_ip=0, stride_ib=0, stride_jp=0, stride_jb=0, **out),
                dict(INDEXED=False, **flags), num_warps=4)
            yield CompileCase(_pairwise_abs_diff_mean_fwd_kernel, dict(
                a_ptr=dt, b_ptr=dt, i_ptr=torch.int64, j_ptr=torch.int64, stride_ap=0, stride_ab=D, stride_ad=1,
                stride_bp=0, stride_bb=0, stride_bd=0, stride_ip=B, stride_ib=1, stride_jp=B, stride_jb=1, **out),
                dict(INDEXED=True, **flags), num_warps=4)


def _acc_out(like: torch.Tensor, P: int, D: int) -> torch.Tensor:
    """The [P, D] output buffer in the accumulation dtype, on like's device."""
    return torch.empty((P, D), dtype=acc_dtype(like.dtype), device=like.device)


def pairwise_abs_diff_mean_triton(a: torch.Tensor, b: torch.Tensor | None, i: torch.Tensor | None,
                                  j: torch.Tensor | None) -> torch.Tensor:
    """Triton launcher. Dense: a=z1, b=z2 [P, B, D], i=j=None. Index: a=z [N, D], b=None, i, j [P, B] int64.

    Returns [P, D] in a's dtype. Any strides. Extra memory: the output, in float32 for 16-bit input (then
    rounded by torch: Triton's interpreter truncates float32 -> bfloat16 where the GPU rounds to nearest).
    """
    indexed = i is not None
    P, B = (i.shape if indexed else a.shape[:2])
    D = a.shape[-1]
    out = _acc_out(a, P, D)
    BLOCK_P, BLOCK_D = _tiles(D)
    grid = (triton.cdiv(P, BLOCK_P), triton.cdiv(D, BLOCK_D))
    if indexed:
        sa = (0, a.stride(0), a.stride(1))
        sb = (0, 0, 0)
        si = (i.stride(0), i.stride(1), j.stride(0), j.stride(1))
        b = a
    else:
        sa, sb = a.stride(), b.stride()
        si = (0, 0, 0, 0)
        i = j = a  # unused placeholders: the INDEXED=False branch never reads them
    _pairwise_abs_diff_mean_fwd_kernel[grid](
        a, b, i, j, out,
        P, B, D,
        *sa, *sb, *si, *out.stride(),
        INDEXED=indexed, ACC=tl.float64 if a.dtype == torch.float64 else tl.float32,
        BLOCK_P=BLOCK_P, BLOCK_D=BLOCK_D, num_warps=4,
    )
    return out.to(a.dtype)


def pairwise_abs_diff_mean_native(a: torch.Tensor, b: torch.Tensor | None, i: torch.Tensor | None,
                                  j: torch.Tensor | None) -> torch.Tensor:
    """The C++ kernels (CPU tensors; arguments as pairwise_abs_diff_mean_triton). Extra memory: the output (in
    float32 for 16-bit input)."""
    P, D = (i.shape[0], a.shape[1]) if i is not None else (a.shape[0], a.shape[2])
    out = _acc_out(a, P, D)
    C, kind, threads = _native.get(), _native.dtype_name(a.dtype), torch.get_num_threads()
    if i is None:
        C.pairwise_abs_diff_mean_dense(_native.as_buffer(a), _native.as_buffer(b), out.numpy(), kind, threads)
    else:
        C.pairwise_abs_diff_mean_index(_native.as_buffer(a), _native.as_buffer(i), _native.as_buffer(j), out.numpy(),
                                       kind, threads)
    return out.to(a.dtype)


def pairwise_abs_diff_mean_torch(a: torch.Tensor, b: torch.Tensor | None, i: torch.Tensor | None,
                                 j: torch.Tensor | None) -> torch.Tensor:
    """Plain PyTorch (any device; arguments as pairwise_abs_diff_mean_triton), in chunks of points: extra memory
    the output plus O(CHUNK_ELEMENTS) for the [chunk, B, D] differences, never the whole [P, B, D] gather."""
    (P, B), D = (i.shape if i is not None else a.shape[:2]), a.shape[-1]
    acc, out = acc_dtype(a.dtype), _acc_out(a, P, D)
    step = max(1, CHUNK_ELEMENTS // (B * D))
    for p0 in range(0, P, step):
        rows = slice(p0, p0 + step)
        x, y = (a[rows], b[rows]) if i is None else (a[i[rows]], a[j[rows]])
        out[rows] = (x.to(acc) - y.to(acc)).abs_().mean(1)
    return out.to(a.dtype)


IMPLS = _backend.declare(OP, _backend.Impls(triton=pairwise_abs_diff_mean_triton,
                                            native=pairwise_abs_diff_mean_native, torch=pairwise_abs_diff_mean_torch))


def _checked(out: torch.Tensor, inputs: str) -> torch.Tensor:
    """The result, unless it overflowed its dtype (the inputs were checked finite before)."""
    if _checks.data_checks(out) and not _checks.all_finite(out):
        raise ValueError(f"{inputs}: the mean absolute difference overflows {str(out.dtype).replace('torch.', '')} "
                         "(the inputs are finite but too large for it)")
    return out


@torch.library.custom_op("fastrepr::pairwise_abs_diff_mean_dense", mutates_args=())
def pairwise_abs_diff_mean_dense(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    if _checks.data_checks(z1):
        _checks.finite(z1, "z1")
        _checks.finite(z2, "z2")
    return _checked(_backend.dispatch(OP, IMPLS, z1, z2, None, None), "z1 and z2")


@torch.library.custom_op("fastrepr::pairwise_abs_diff_mean_index", mutates_args=())
def pairwise_abs_diff_mean_index(z: torch.Tensor, i: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    n = z.shape[0]
    for name, idx in (("i", i), ("j", j)):
        lo, hi = torch.aminmax(idx)
        if lo.item() < 0 or hi.item() >= n:
            raise ValueError(f"{name} has pair indices in [{lo.item()}, {hi.item()}], outside [0, {n}) (rows of z)")
    if _checks.data_checks(z):
        _checks.finite(z, "z")
    return _checked(_backend.dispatch(OP, IMPLS, z, None, i, j), "z")


@pairwise_abs_diff_mean_dense.register_fake
def _(z1, z2):
    return z1.new_empty((z1.shape[0], z1.shape[2]))


@pairwise_abs_diff_mean_index.register_fake
def _(z, i, j):
    return z.new_empty((i.shape[0], z.shape[1]))


def _save_inputs(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _dense_backward(ctx, grad):
    z1, z2 = ctx.saved_tensors
    acc = acc_dtype(z1.dtype)
    s = torch.sign(z1.to(acc) - z2.to(acc)) * (grad.to(acc) / z1.shape[1]).unsqueeze(1)
    return s.to(z1.dtype), (-s).to(z2.dtype)


def _index_backward(ctx, grad):
    z, i, j = ctx.saved_tensors
    acc = acc_dtype(z.dtype)
    za = z.to(acc)
    s = torch.sign(za[i] - za[j]) * (grad.to(acc) / i.shape[1]).unsqueeze(1)  # [P, B, D]
    s = s.reshape(-1, z.shape[1])
    dz = torch.zeros_like(za).index_add_(0, i.reshape(-1), s).index_add_(0, j.reshape(-1), s, alpha=-1)
    return dz.to(z.dtype), None, None


pairwise_abs_diff_mean_dense.register_autograd(_dense_backward, setup_context=_save_inputs)
pairwise_abs_diff_mean_index.register_autograd(_index_backward, setup_context=_save_inputs)
