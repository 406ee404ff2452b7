"""Exact top-k search: the k rows of a vocabulary [R, D] with the largest inner product with each query
(or the smallest squared L2 distance), without materializing the [Q, R] score matrix.

Triton (CUDA): one program owns BLOCK_Q queries and a contiguous range of the vocabulary (the range is one of
SPLITS, so small query batches still fill the GPU); it walks the range in [BLOCK_Q, BLOCK_V] similarity tiles
(tl.dot over D in BLOCK_K slices) and merges each tile into a running top-k held in registers
(``_merge_topk``). Partial lists, [Q, SPLITS, KP] for KP = next_pow2(k), are merged on the host by one sort.
L2 ranks by 2 q.v - |v|^2 (= |q|^2 - |q - v|^2) and returns |q|^2 minus it, clamped at 0.

Native (CPU): the [Q, C] tile for a chunk of C rows comes from one GEMM (torch.mm), and the C++ kernel
``topk_merge`` folds it into sorted per-query lists (OpenMP over queries). Memory O(Q·C), C sized so the
tile stays near 16 MB.

Ties: equal scores keep the lower row first on every backend (and in ``reference.topk_search``).
Cost: 2·Q·R·D flops. Gradients: none (an evaluation op).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import _native, reference
from .._backend import select
from .._triton import next_power_of_2, tl, triton

OP = "topk_search"
NEG_INF = float("-inf")
# kernel-side constants (Triton reads globals only when they are constexpr)
_NEG_INF = tl.constexpr(float("-inf"))
_INT_MIN = tl.constexpr(-2147483647)  # below every padding index (-1 - slot)
_INT_BIG = tl.constexpr(2147483647)  # above every row index


@triton.jit
def _worst(top_v, top_i):
    """The slot each row would give up next: the lowest score; among equal scores, the highest index."""
    worst_v = tl.min(top_v, axis=1)
    worst_i = tl.max(tl.where(top_v == worst_v[:, None], top_i, _INT_MIN), axis=1)
    return worst_v, worst_i


@triton.jit
def _merge_topk(s, cols, top_v, top_i):
    """Fold a score tile s [BQ, BV] (columns ``cols`` [1, BV] int32, masked entries -inf) into the running
    lists (top_v, top_i) [BQ, KP].

    While some row's tile maximum beats that row's worst kept score, every row moves its maximum (lowest
    column among equal maxima) into its worst slot when it is better, and drops it from the tile. Tiles come
    in increasing column order, so an equal score never displaces a kept one: ties keep the lower row. Each
    row takes at most KP elements per tile; after the first tiles most tiles need no iteration at all.
    """
    m = tl.max(s, axis=1)
    worst_v, worst_i = _worst(top_v, top_i)
    go = tl.max((m > worst_v).to(tl.int32), axis=0)
    while go > 0:
        ci = tl.min(tl.where(s == m[:, None], cols, _INT_BIG), axis=1)
        hit = (m > worst_v)[:, None] & (top_v == worst_v[:, None]) & (top_i == worst_i[:, None])
        top_v = tl.where(hit, m[:, None], top_v)
        top_i = tl.where(hit, ci[:, None], top_i)
        s = tl.where(cols == ci[:, None], _NEG_INF, s)
        m = tl.max(s, axis=1)
        worst_v, worst_i = _worst(top_v, top_i)
        go = tl.max((m > worst_v).to(tl.int32), axis=0)
    return top_v, top_i


@triton.jit
def _topk_search_kernel(
    # pointers
    q_ptr, v_ptr, vsq_ptr, out_v_ptr, out_i_ptr,
    # shapes
    Q, R, D, span,
    # strides
    stride_qq, stride_qd, stride_vr, stride_vd,
    # constants
    L2: tl.constexpr, PRECISION: tl.constexpr, KP: tl.constexpr,
    BLOCK_Q: tl.constexpr, BLOCK_V: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Program (pq, ps): queries [pq*BLOCK_Q, +BLOCK_Q) against rows [ps*span, min((ps+1)*span, R)).
    Writes its unsorted top-KP list to out[q, ps, :] ([Q, SPLITS, KP], int32 indices, -1-slot padding)."""
    pq, ps = tl.program_id(0), tl.program_id(1)
    splits = tl.num_programs(1)
    offs_q = pq * BLOCK_Q + tl.arange(0, BLOCK_Q)
    mask_q = offs_q < Q
    slots = tl.arange(0, KP)
    top_v = tl.full([BLOCK_Q, KP], _NEG_INF, tl.float32)
    top_i = tl.zeros([BLOCK_Q, KP], dtype=tl.int32) - 1 - slots[None, :]
    lo = ps * span
    hi = tl.minimum(lo + span, R)
    offs_k = tl.arange(0, BLOCK_K)
    for v0 in range(lo, hi, BLOCK_V):
        offs_v = v0 + tl.arange(0, BLOCK_V)
        mask_v = offs_v < hi
        acc = tl.zeros([BLOCK_Q, BLOCK_V], dtype=tl.float32)
        for k0 in range(0, D, BLOCK_K):
            kk = k0 + offs_k
            qt = tl.load(q_ptr + offs_q[:, None].to(tl.int64) * stride_qq + kk[None, :] * stride_qd,
                         mask=mask_q[:, None] & (kk < D)[None, :], other=0.0)
            vt = tl.load(v_ptr + offs_v[:, None].to(tl.int64) * stride_vr + kk[None, :] * stride_vd,
                         mask=mask_v[:, None] & (kk < D)[None, :], other=0.0)
            acc = tl.dot(qt, tl.trans(vt), acc, input_precision=PRECISION)
        if L2:
            vsq = tl.load(vsq_ptr + offs_v, mask=mask_v, other=0.0)
            acc = 2.0 * acc - vsq[None, :]
        s = tl.where(mask_v[None, :], acc, _NEG_INF)
        top_v, top_i = _merge_topk(s, offs_v[None, :], top_v, top_i)
    out = (offs_q[:, None].to(tl.int64) * splits + ps) * KP + slots[None, :]
    tl.store(out_v_ptr + out, top_v, mask=mask_q[:, None])
    tl.store(out_i_ptr + out, top_i, mask=mask_q[:, None])


def cdiv(a: int, b: int) -> int:
    """Ceiling division (also without triton installed)."""
    return -(-int(a) // int(b))


def finalize(top_v: torch.Tensor, top_i: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[Q, ..., KP] partial lists -> ([Q, k] scores descending, [Q, k] int64 indices); ties: lower index
    first; padding (-inf) becomes index -1."""
    v = top_v.reshape(top_v.shape[0], -1)
    i = top_i.reshape(top_i.shape[0], -1).long()
    i = torch.where(torch.isneginf(v), torch.full_like(i, torch.iinfo(torch.int64).max), i)
    by_index = torch.argsort(i, dim=1, stable=True)
    v, i = v.gather(1, by_index), i.gather(1, by_index)
    by_score = torch.argsort(v, dim=1, descending=True, stable=True)
    v, i = v.gather(1, by_score)[:, :k], i.gather(1, by_score)[:, :k]
    return v.contiguous(), torch.where(torch.isneginf(v), torch.full_like(i, -1), i).contiguous()


def splits_for(q_blocks: int, rows: int, block_v: int, device: torch.device) -> int:
    """How many vocabulary ranges to split over so that about 4 programs per SM run (1 without a GPU)."""
    if device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(cdiv(4 * sms, q_blocks), cdiv(rows, block_v)))


def _precision() -> str:
    """fp32 dot products stay IEEE unless the user enabled TF32 for matmuls in torch."""
    return "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee"


def topk_search_forward(queries: torch.Tensor, vectors: torch.Tensor, k: int, l2: bool,
                        splits: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Triton launcher. queries [Q, D], vectors [R, D] float32 (any strides), 1 <= k.

    Returns (scores [Q, k], indices [Q, k] int64); for l2 the scores are 2 q.v - |v|^2 (callers convert).
    Extra memory: |v|^2 [R] for l2, and the partial lists [Q, SPLITS, KP].
    """
    Q, D = queries.shape
    R = vectors.shape[0]
    KP = next_power_of_2(k)
    # Untuned (no GPU was available when this was written): 64x64 tiles, 32-wide D slices, 4 warps; fewer
    # queries per program for long lists, which live in registers next to the tile (KP floats + ints per row).
    if queries.is_cuda:
        BLOCK_Q, BLOCK_V, BLOCK_K = (64 if KP <= 16 else 32 if KP <= 64 else 16), 64, 32
    else:  # Triton's interpreter: small tiles
        BLOCK_Q, BLOCK_V, BLOCK_K = 16, 32, 16
    q_blocks = cdiv(Q, BLOCK_Q)
    splits = splits or splits_for(q_blocks, R, BLOCK_V, queries.device)
    span = cdiv(cdiv(R, splits), BLOCK_V) * BLOCK_V
    splits = cdiv(R, span)
    vsq = vectors.square().sum(1) if l2 else vectors.new_empty(1)
    out_v = torch.empty((Q, splits, KP), dtype=torch.float32, device=queries.device)
    out_i = torch.empty((Q, splits, KP), dtype=torch.int32, device=queries.device)
    _topk_search_kernel[(q_blocks, splits)](
        queries, vectors, vsq, out_v, out_i,
        Q, R, D, span,
        *queries.stride(), *vectors.stride(),
        L2=l2, PRECISION=_precision(), KP=KP, BLOCK_Q=BLOCK_Q, BLOCK_V=BLOCK_V, BLOCK_K=BLOCK_K, num_warps=4,
    )
    return finalize(out_v, out_i, k)


# KP = next_pow2(k) of the compile cases (tests/test_gpu_compile.py); the launchers take any k, and above 1024
# the lists held in registers (KP scores and indices per query row) grow with it
COMPILE_KP = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def compile_cases():
    """How topk_search_forward launches the kernel on a GPU: inner product and L2, IEEE and TF32 dots, each
    KP of COMPILE_KP with the CUDA tiles it picks for it (restated here from the launcher), contiguous float32
    inputs, Q = 1024, R = 100000, D = 128."""
    from .._triton import CompileCase

    f32, Q, R, D = torch.float32, 1024, 100_000, 128
    for l2 in (False, True):
        for precision in ("ieee", "tf32"):
            for kp in COMPILE_KP:
                block_q = 64 if kp <= 16 else 32 if kp <= 64 else 16
                yield CompileCase(_topk_search_kernel, dict(
                    q_ptr=f32, v_ptr=f32, vsq_ptr=f32, out_v_ptr=f32, out_i_ptr=torch.int32, Q=Q, R=R, D=D,
                    span=cdiv(R, 64 * 4) * 64, stride_qq=D, stride_qd=1, stride_vr=D, stride_vd=1), dict(
                    L2=l2, PRECISION=precision, KP=kp, BLOCK_Q=block_q, BLOCK_V=64, BLOCK_K=32), num_warps=4)


def chunk_rows(rows: int, other: int, budget_bytes: int, multiple: int) -> int:
    """Chunk length C (a multiple of `multiple`) so that an [other, C] float32 tile stays near budget_bytes."""
    c = max(multiple, (budget_bytes // (4 * max(other, 1))) // multiple * multiple)
    return min(c, cdiv(rows, multiple) * multiple)


def native_merge(S: torch.Tensor, rows: torch.Tensor, scale: torch.Tensor, mode: int, excl: torch.Tensor,
                 col0: int, top_v: torch.Tensor, top_i: torch.Tensor) -> None:
    """Fold the score tile of columns [col0, col0 + S.shape[1]) into the sorted lists (top_v, top_i) [Q, K]
    in place (C++ ``topk_merge``; mode 0: row rows[q, 0] of S; 1: 3CosAdd; 2: 3CosMul)."""
    _native.get().topk_merge(_native.as_buffer(S), _native.as_buffer(rows), _native.as_buffer(scale), mode,
                             _native.as_buffer(excl), col0, top_v.numpy(), top_i.numpy(), torch.get_num_threads())


def unique_inverse(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.unique(x, return_inverse=True); on CPU through numpy, which is many times faster there."""
    if x.is_cuda:
        return torch.unique(x, return_inverse=True)
    values, inverse = np.unique(x.numpy(), return_inverse=True)
    return torch.from_numpy(values), torch.from_numpy(inverse.reshape(x.shape))


def empty_lists(Q: int, K: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Running lists for the native merge: scores -inf, indices -1 - slot (distinct padding)."""
    return (torch.full((Q, K), NEG_INF, device=device),
            (-1 - torch.arange(K, device=device)).expand(Q, K).contiguous())


def _native_search(queries: torch.Tensor, vectors: torch.Tensor, k: int, l2: bool) -> tuple[torch.Tensor, torch.Tensor]:
    Q, R = queries.shape[0], vectors.shape[0]
    top_v, top_i = empty_lists(Q, k, queries.device)
    rows = torch.arange(Q).repeat_interleave(3).view(Q, 3)
    scale, excl = torch.ones(Q), torch.empty((Q, 0), dtype=torch.int64)
    vsq = vectors.square().sum(1) if l2 else None
    step = chunk_rows(R, Q, 16 << 20, 256)
    for c0 in range(0, R, step):
        S = queries @ vectors[c0:c0 + step].T
        if l2:
            S = 2.0 * S - vsq[c0:c0 + step]
        native_merge(S.contiguous(), rows, scale, 0, excl, c0, top_v, top_i)
    return finalize(top_v, top_i, k)


@torch.library.custom_op("fastrepr::topk_search", mutates_args=())
def topk_search(queries: torch.Tensor, vectors: torch.Tensor, k: int, l2: bool,
                backend: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [Q, k], indices [Q, k]); ip: inner products; l2: squared distances. Inputs float32.
    backend: "" selects per call (fastrepr._backend.select), or names one."""
    backend = select(OP, queries, force=backend or None)
    if backend == "torch":
        return reference.topk_search(queries, vectors, k, "l2" if l2 else "ip")
    if backend == "triton":
        s, i = topk_search_forward(queries, vectors, k, l2)
    else:
        s, i = _native_search(queries, vectors, k, l2)
    if l2:  # |q - v|^2 = |q|^2 - (2 q.v - |v|^2); padding stays +inf
        s = torch.where(i >= 0, (queries.square().sum(1, keepdim=True) - s).clamp_min(0), float("inf"))
    return s, i


@topk_search.register_fake
def _(queries, vectors, k, l2, backend):
    return (queries.new_empty((queries.shape[0], k)),
            queries.new_empty((queries.shape[0], k), dtype=torch.int64))
