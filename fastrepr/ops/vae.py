"""Fused Bernoulli-logits reconstruction of the β-VAE family: the per-example negative log-likelihood summed over
pixels, with its backward, reading the targets in their own dtype.

disentanglement_lib (Locatello et al. 2019, ``methods/shared/losses.py``, ``bernoulli_loss`` with
``activation="logits"``) scores a decoder's logits s against images x in [0, 1] by the sigmoid cross-entropy
summed over the flattened pixels:

    nll[b] = sum_p  max(s_bp, 0) - s_bp x_bp + log(1 + exp(-|s_bp|))        (= -log Bernoulli(x | sigmoid(s)))
    d nll[b] / d s_bp = sigmoid(s_bp) - x_bp

The max/abs form never overflows (for any finite logit). A plain-PyTorch caller writes
``F.binary_cross_entropy_with_logits(s, x.float(), reduction="none").sum(1)``: with a uint8 or bool batch that
first makes a float32 copy of x (4x its bytes) plus a float32 [B, P] loss. Here the kernels read x as it is
(uint8 0/1 as dSprites stores it, bool, or float in [0, 1]), convert each tile in registers, and write only the
[B] sums; backward writes only dlogits (needed anyway) and recomputes sigmoid from the saved logits.

Implementations (IMPLS): triton (one program per row streams its pixels: deterministic, no atomics; not float64)
and torch (the same formula over row chunks of CHUNK_ELEMENTS pixels: any device and dtype). Accumulation in
float32 (float64 for float64 logits). There is no native one: the chunked torch one is memory-bound like a C++
loop would be (a native kernel would save the chunk temporaries, about 3 passes over a chunk: small).
"""
from __future__ import annotations

import torch

from .. import _backend
from .._triton import CompileCase, next_power_of_2, tl, triton
from ._precision import acc_dtype

OP = "bernoulli_nll"
BACKWARD_OP = "bernoulli_nll_backward"
CHUNK_ELEMENTS = 1 << 18  # torch implementation: pixels converted to the accumulation dtype at a time (1 MB fp32)
TARGET_DTYPES = (torch.uint8, torch.bool, torch.float16, torch.bfloat16, torch.float32, torch.float64)


@triton.jit
def _bernoulli_nll_fwd_kernel(
    # pointers
    s_ptr, x_ptr, out_ptr,
    # shapes
    P,
    # strides (rows; pixels are contiguous)
    stride_s, stride_x,
    # constants
    BLOCK: tl.constexpr,
):
    """out[b] = sum_p max(s, 0) - s x + log(1 + exp(-|s|)); program b owns row b (deterministic)."""
    row = tl.program_id(0).to(tl.int64)
    acc = tl.zeros([BLOCK], dtype=tl.float32)
    for p0 in range(0, P, BLOCK):
        offs = p0 + tl.arange(0, BLOCK)
        ok = offs < P
        s = tl.load(s_ptr + row * stride_s + offs, mask=ok, other=0.0).to(tl.float32)
        x = tl.load(x_ptr + row * stride_x + offs, mask=ok, other=0).to(tl.float32)
        term = tl.maximum(s, 0.0) - s * x + tl.log(1.0 + tl.exp(-tl.abs(s)))
        acc += tl.where(ok, term, 0.0)
    tl.store(out_ptr + row, tl.sum(acc, 0))


@triton.jit
def _bernoulli_nll_bwd_kernel(
    # pointers
    s_ptr, x_ptr, g_ptr, ds_ptr,
    # shapes
    P,
    # strides
    stride_s, stride_x, stride_ds,
    # constants
    BLOCK: tl.constexpr,
):
    """ds[b, p] = g[b] (sigmoid(s) - x), in ds's dtype; grid (B, pixel blocks)."""
    row = tl.program_id(0).to(tl.int64)
    offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    ok = offs < P
    s = tl.load(s_ptr + row * stride_s + offs, mask=ok, other=0.0).to(tl.float32)
    x = tl.load(x_ptr + row * stride_x + offs, mask=ok, other=0).to(tl.float32)
    g = tl.load(g_ptr + row).to(tl.float32)
    ds = g * (tl.sigmoid(s) - x)
    tl.store(ds_ptr + row * stride_ds + offs, ds.to(ds_ptr.dtype.element_ty), mask=ok)


def _block(P: int) -> int:
    """Pixels per tile: up to 1024 (4 warps, 8 per thread). Untuned: no GPU was available when this was written."""
    return max(16, min(1024, next_power_of_2(P)))


def compile_cases():
    """How the launchers call the kernels on a GPU (tests/test_gpu_compile.py): logits fp16/bf16/fp32, targets in
    every accepted dtype but float64 (float64 logits take the torch path), P = 4096 (64x64 images) and 100, 4 warps."""
    for dt in (torch.float16, torch.bfloat16, torch.float32):
        for xt in TARGET_DTYPES[:-1]:
            for P in (100, 4096):
                c = dict(BLOCK=_block(P))
                yield CompileCase(_bernoulli_nll_fwd_kernel, dict(s_ptr=dt, x_ptr=xt, out_ptr=torch.float32, P=P,
                                                                  stride_s=P, stride_x=P), c, num_warps=4)
                yield CompileCase(_bernoulli_nll_bwd_kernel, dict(s_ptr=dt, x_ptr=xt, g_ptr=torch.float32, ds_ptr=dt,
                                                                  P=P, stride_s=P, stride_x=P, stride_ds=P),
                                  c, num_warps=4)


def _as_kernel_target(x: torch.Tensor) -> torch.Tensor:
    """bool -> uint8 view (same bytes, no copy): Triton loads int1 pointers as bytes anyway."""
    return x.view(torch.uint8) if x.dtype == torch.bool else x


def bernoulli_nll_triton(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B] float32 sums for logits s [B, P] (pixels contiguous) and targets x [B, P]. Extra memory: the output."""
    B, P = s.shape
    out = torch.empty(B, dtype=torch.float32, device=s.device)
    _bernoulli_nll_fwd_kernel[(B,)](s, _as_kernel_target(x), out, P, s.stride(0), x.stride(0), BLOCK=_block(P),
                                    num_warps=4)
    return out


def bernoulli_nll_torch(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B] sums in the accumulation dtype, over row chunks: extra memory O(CHUNK_ELEMENTS), never a float copy
    of the whole of x."""
    B, P = s.shape
    acc = acc_dtype(s.dtype)
    out = torch.empty(B, dtype=acc, device=s.device)
    step = max(1, CHUNK_ELEMENTS // max(P, 1))
    for b0 in range(0, B, step):
        sc, xc = s[b0:b0 + step].to(acc), x[b0:b0 + step].to(acc)
        out[b0:b0 + step] = (sc.clamp_min(0) - sc * xc + torch.log1p(torch.exp(-sc.abs()))).sum(1)
    return out


def bernoulli_nll_backward_triton(s: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    B, P = s.shape
    ds = torch.empty_like(s, memory_format=torch.contiguous_format)
    block = _block(P)
    _bernoulli_nll_bwd_kernel[(B, triton.cdiv(P, block))](s, _as_kernel_target(x), g.to(torch.float32).contiguous(),
                                                          ds, P, s.stride(0), x.stride(0), ds.stride(0), BLOCK=block,
                                                          num_warps=4)
    return ds


def bernoulli_nll_backward_torch(s: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """ds = g[:, None] (sigmoid(s) - x), in row chunks (temporaries O(CHUNK_ELEMENTS))."""
    B, P = s.shape
    acc = acc_dtype(s.dtype)
    ds = torch.empty_like(s, memory_format=torch.contiguous_format)
    step = max(1, CHUNK_ELEMENTS // max(P, 1))
    for b0 in range(0, B, step):
        r = slice(b0, b0 + step)
        ds[r] = (g[r].to(acc)[:, None] * (torch.sigmoid(s[r].to(acc)) - x[r].to(acc))).to(s.dtype)
    return ds


IMPLS = _backend.declare(OP, _backend.Impls(triton=bernoulli_nll_triton, torch=bernoulli_nll_torch,
                                            no_float64=("triton",)))
BACKWARD_IMPLS = _backend.declare(BACKWARD_OP, _backend.Impls(triton=bernoulli_nll_backward_triton,
                                                              torch=bernoulli_nll_backward_torch,
                                                              no_float64=("triton",)))


@torch.library.custom_op("fastrepr::bernoulli_nll", mutates_args=())
def bernoulli_nll(s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B] Bernoulli negative log-likelihoods (float32; float64 for float64 logits) of x [B, P] under logits s
    [B, P] (validated by fastrepr.functional_vae.beta_vae_loss)."""
    s = s if s.stride(-1) == 1 else s.contiguous()
    x = x if x.stride(-1) == 1 else x.contiguous()
    return _backend.dispatch(OP, IMPLS, s, x).to(acc_dtype(s.dtype))


@bernoulli_nll.register_fake
def _(s, x):
    return s.new_empty(s.shape[0], dtype=acc_dtype(s.dtype))


@torch.library.custom_op("fastrepr::bernoulli_nll_backward", mutates_args=())
def bernoulli_nll_backward(s: torch.Tensor, x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    s = s if s.stride(-1) == 1 else s.contiguous()
    x = x if x.stride(-1) == 1 else x.contiguous()
    return _backend.dispatch(BACKWARD_OP, BACKWARD_IMPLS, s, x, g)


@bernoulli_nll_backward.register_fake
def _(s, x, g):
    return torch.empty_like(s, memory_format=torch.contiguous_format)


def _setup(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, g):
    s, x = ctx.saved_tensors
    return bernoulli_nll_backward(s, x, g), None  # x is data: no gradient


bernoulli_nll.register_autograd(_backward, setup_context=_setup)
