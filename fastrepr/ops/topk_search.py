"""Exact top-k search: the k rows of a vocabulary [R, D] with the largest inner product with each query
(or the smallest squared L2 distance), without materializing the [Q, R] score matrix.

Triton (CUDA): one program owns BLOCK_Q queries and a contiguous range of the vocabulary (the range is one of
SPLITS, so small query batches still fill the GPU); it walks the range in [BLOCK_Q, BLOCK_V] similarity tiles
(tl.dot over D in BLOCK_K slices) and merges each tile into a running top-k held in registers
(``_topk.merge_topk``). Partial lists, [Q, SPLITS, KP] for KP = next_pow2(k), are merged on the host by one sort
(``_topk.TopK.finalize``).
L2 ranks by 2 q.v - |v|^2 (= |q|^2 - |q - v|^2) and returns |q|^2 minus it, clamped at 0.

Native (CPU): an exact search in two steps (notes above ``exact_search``). A float32 scan keeps the best
k + margin rows per query (C++ ``topk_scan``: per core, an L2-sized [512, 512] tile from a single-threaded
BLAS product or [64, 128] from the built-in kernel, folded at once into running lists; or FAISS's flat scan),
or a reduced-precision filter keeps up to 3k + 32, as many as a pilot of its first queries needed (MKL's
bfloat16 product; on AVX2, the built-in int8 kernel of csrc/topk_int8.cpp, vpdpbusd where the CPU has AVX-512
VNNI, on the rows' int8 table when the caller keeps one); which path runs is measured once per machine
(``_search_plan``). Then ``topk_refine`` scores the candidates in float64 and certifies that no other row can
belong; uncertified queries are scanned again with more candidates. Every path therefore returns
``reference.topk_search``'s float64 ranking exactly.
Memory: O(Q·(k + margin)) lists and one tile per thread; never the [Q, R] score matrix.

Torch (any device): float64 blocks pushed into a ``_topk.TopK`` (the same float64 ranking, slower).
``IMPLS`` declares the three; ``fastrepr._backend.dispatch`` picks one per call.

Ties: equal scores keep the lower row first on every backend (and in ``reference.topk_search``).
Cost: 2·Q·R·D flops (plus Q·(k + margin)·D in float64). Gradients: none (an evaluation op).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import _checks, _native
from .._backend import Impls, declare, dispatch
from .._triton import next_power_of_2, tl, triton
from . import _search_plan
from ._topk import COMPILE_KP, NEG_INF, TopK, cdiv, empty_result, merge_topk, splits_for

OP = "topk_search"


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
    top_v = tl.full([BLOCK_Q, KP], NEG_INF, tl.float32)
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
        s = tl.where(mask_v[None, :], acc, NEG_INF)
        top_v, top_i = merge_topk(s, offs_v[None, :], top_v, top_i)
    out = (offs_q[:, None].to(tl.int64) * splits + ps) * KP + slots[None, :]
    tl.store(out_v_ptr + out, top_v, mask=mask_q[:, None])
    tl.store(out_i_ptr + out, top_i, mask=mask_q[:, None])


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
    lists = TopK(Q, k, queries.device, parts=splits, width=KP, index_dtype=torch.int32)
    _topk_search_kernel[(q_blocks, splits)](
        queries, vectors, vsq, lists.scores, lists.ids,
        Q, R, D, span,
        *queries.stride(), *vectors.stride(),
        L2=l2, PRECISION=_precision(), KP=KP, BLOCK_Q=BLOCK_Q, BLOCK_V=BLOCK_V, BLOCK_K=BLOCK_K, num_warps=4,
    )
    return lists.finalize()


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


# ---------------------------------------------------------------------------------------------------------
# native (CPU): a float32 candidate scan on the fastest path here, then the float64 refinement
#
# The scan keeps K = k + margin candidates per query; every row it leaves out scored at most `worst`, the
# K-th approximate score. A float32 dot product of length D is off by at most gamma_D·sum_i |q_i v_i| <=
# gamma_D·|q|·|v| whatever the summation order (Higham, Accuracy and Stability, eq. 3.5; gamma_n =
# n·u / (1 - n·u), u = 2^-24), so an excluded row's exact score is at most worst + 2·gamma_{D+2}·|q|·max|v|
# (a factor 2 of slack; l2: 2·gamma_{D+4}·(|q| + max|v|)^2, which covers 2 q.v - |v|^2 and FAISS's
# |q|^2 + |v|^2 - 2 q.v). The refinement scores the candidates in float64 and certifies each query whose
# k-th exact score beats that bound; the others (near-ties at the k-th place; rare) are scanned again with
# 4x the candidates, until every row is one. So every path returns the float64 ranking of
# ``reference.topk_search``: the same rows in the same order, equal scores keeping the lower row.

U = 2.0 ** -24  # float32 unit roundoff
_FLT_BIG = 1e38  # scores must stay below float32's maximum (3.4e38) in every partial sum


def gamma(n: int) -> float:
    return n * U / (1.0 - n * U)


def filter_candidates(k: int) -> int:
    """The most candidates a bf16 or int8 filter keeps (its bound is wider, so more rows sit near the k-th
    score); a pilot may learn fewer (``_candidates_needed``)."""
    return 3 * k + 32


def margin(k: int) -> int:
    """Candidates scanned beyond k: room for near-ties at the k-th place (and for excluded rows)."""
    return max(8, k // 4)


def row_sqnorms(vectors: torch.Tensor) -> torch.Tensor:
    """|v|^2 per row [R] float32 (what the l2 scan ranks with; cached by EmbeddingIndex). In blocks of 8192
    rows: no [R, D] temporary."""
    out = torch.empty(vectors.shape[0], dtype=vectors.dtype, device=vectors.device)
    for lo in range(0, vectors.shape[0], 8192):
        out[lo:lo + 8192] = vectors[lo:lo + 8192].square().sum(1)
    return out


def scan(path, queries: torch.Tensor, vectors: torch.Tensor, K: int, vsq: torch.Tensor | None,
         threads: int, int8_rows: torch.Tensor | None = None,
         bf16_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, tuple | None]:
    """Candidates on one path (``_search_plan.Path``): (approximate scores [Q, K], rows [Q, K], errors), best
    first. Scores: q.v (ip), 2 q.v - |v|^2 (l2 on the native paths, vsq given) or |q - v|^2 (l2 on FAISS).
    errors (a bf16 or int8 filter, else None): (|q - q~| [Q], |q~| [Q], max_r |v_r - v~_r|) of its copies.
    int8_rows: the rows' int8 table (``int8_table``; the ``int8-table`` path reads it instead of copying);
    bf16_rows: the rows' bf16 table (``bf16_table``; the bf16 filter needs it). The int8 filter at K >= 128 may
    return fewer than K rows (its lists start at a seed, csrc/topk_scan.cpp): the rest of the row holds row -1
    with the seed's score, which no row left out beats (refine skips row -1 and certifies with that score)."""
    Q = queries.shape[0]
    if path.name == "faiss":
        from .. import _faiss

        faiss = _faiss.load()
        metric = faiss.METRIC_L2 if vsq is not None else faiss.METRIC_INNER_PRODUCT
        prev = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(threads)
        try:
            dist, ids = faiss.knn(queries.numpy(), vectors.numpy(), K, metric=metric)
        finally:
            faiss.omp_set_num_threads(prev)
        return torch.from_numpy(dist), torch.from_numpy(ids.astype(np.int64, copy=False)), None
    out_v, out_i = torch.empty((Q, K)), torch.empty((Q, K), dtype=torch.int64)
    stats = np.empty((2, Q)) if path.filter else None
    if path.int8 and path.table and int8_rows is None:
        raise ValueError("int8_rows: the int8-table path needs the rows' table (int8_table)")
    table = int8_rows.numpy() if path.int8 and path.table else None
    if path.bf16 and bf16_rows is None:
        raise ValueError("bf16_rows: the bf16 filter needs the rows' table (bf16_table)")
    table16 = bf16_rows.numpy() if path.bf16 else None
    emax = _native.get().topk_scan(queries.numpy(), vectors.numpy(), None if vsq is None else vsq.numpy(), K,
                                   path.handle, path.block_q, path.block_v, out_v.numpy(), out_i.numpy(), threads,
                                   stats, table, table16)
    if not path.filter:
        return out_v, out_i, None
    errors = (torch.from_numpy(stats[0]), torch.from_numpy(stats[1]), float(emax))
    if path.int8:  # the filter ranks by q~.v~ + |q~|·e_r: back to within the bound of q.v (csrc/topk_int8.cpp)
        shift = errors[1] * errors[2] * (1.0 if vsq is None else 2.0)  # l2 scores are 2 q.v - |v|^2
        return out_v.double() - shift[:, None], out_i, errors
    return out_v, out_i, errors


def int8_table(vectors: torch.Tensor, threads: int | None = None) -> torch.Tensor | None:
    """The int8 filter's copy of rows [R, D] float32 (contiguous, CPU), made once for repeated searches
    (EmbeddingIndex keeps one): uint8 [ceil(R/16), bytes per panel of 16 rows], R·D bytes plus 8 per row
    (D rounded up to 4: the integers, then a scale and an error per row). None where the filter cannot run here. It is valid only for
    these rows: rows changed afterwards need a new table."""
    if not (_native.available()[0] and _native.get().topk_int8_supported()):
        return None
    C = _native.get()
    R, D = vectors.shape
    table = torch.empty(((R + 15) // 16, C.topk_int8_table_bytes(D)), dtype=torch.uint8)  # 64-byte aligned
    C.topk_int8_table(vectors.contiguous().numpy(), table.numpy(), threads or torch.get_num_threads())
    return table


def bf16_table(vectors: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """The bf16 filter's copy of rows [R, D] float32 (contiguous, CPU): int16 [R, D + 2], each row's
    bfloat16 bits, then its measured error |v - v~| as a float32 (rounded up). exact_search makes one per
    search on the bf16 path, shared by its pilot, its scan and every re-scan (the rows were converted once
    per query block before: three times for 1000 queries). Valid only for these rows."""
    R, D = vectors.shape
    table = torch.empty((R, D + 2), dtype=torch.int16)
    _native.get().topk_bf16_table(vectors.contiguous().numpy(), table.numpy(), threads or torch.get_num_threads())
    return table


def refine(x64: torch.Tensor, vectors: torch.Tensor, cand: torch.Tensor, approx: torch.Tensor, bound: torch.Tensor,
           excl: torch.Tensor, l2: bool, k: int, threads: int,
           scale: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float64 scores of the candidates cand [Q, Kc] for queries x64 [Q, D] (float64), whose approximate
    scores (ip) or distances (l2) approx [Q, Kc] come best first: the k best non-excluded (scores [Q, k]
    float32, rows [Q, k]) and ok [Q] bool, True where no other row can belong (see above). scale [Q] (ip):
    scores are scale·(x.v), ranked by x.v (so rows tied in x.v stay tied)."""
    Q = x64.shape[0]
    out_v, out_i = torch.empty((Q, k)), torch.empty((Q, k), dtype=torch.int64)
    ok = torch.empty(Q, dtype=torch.uint8)
    _native.get().topk_refine(x64.contiguous().numpy(), vectors.numpy(), cand.contiguous().numpy(),
                              None if scale is None else scale.double().contiguous().numpy(),
                              approx.double().contiguous().numpy(), bound.double().contiguous().numpy(),
                              excl.contiguous().numpy(), l2, out_v.numpy(), out_i.numpy(), ok.numpy(), threads)
    return out_v, out_i, ok.bool()


def max_norm(vsq: torch.Tensor, D: int) -> float:
    """An upper bound on max |v| from float32 squared norms (each off by at most gamma_D relative)."""
    if not vsq.numel():
        return 0.0
    top = float(vsq.detach().numpy().max()) if vsq.device.type == "cpu" else float(vsq.max())
    return math.sqrt(top * (1.0 + 2.0 * gamma(D)))


def check_inputs(queries: torch.Tensor, vectors: torch.Tensor, vsq: torch.Tensor | None, l2: bool,
                 qnorm: torch.Tensor | None = None) -> tuple[torch.Tensor, float]:
    """The data checks every backend makes (the same input gives the same error everywhere): finite queries
    and rows, and scores that cannot overflow float32 in any partial sum (|q|·max|v|, l2: (|q| + max|v|)^2,
    below 1e38). Returns (vsq, an upper bound on max |v|)."""
    if not _checks.all_finite(queries):
        raise ValueError("queries contains NaN or Inf")
    vsq = row_sqnorms(vectors) if vsq is None else vsq
    if not _checks.all_finite(vsq):
        raise ValueError("vectors contains NaN or Inf (or rows whose squared norm overflows float32)")
    vmax = max_norm(vsq, vectors.shape[1])
    if qnorm is None:
        qnorm = torch.linalg.vector_norm(queries, dim=1, dtype=torch.float64)
    qmax = float(qnorm.max()) if qnorm.numel() else 0.0
    worst = (qmax + vmax) ** 2 if l2 else qmax * vmax
    if not worst < _FLT_BIG:
        raise ValueError(f"queries: scores against these vectors can reach {worst:.3g}, beyond float32's range "
                         "(rescale the queries or the vectors)")
    return vsq, vmax


def _bound(path, qn: torch.Tensor, vmax: float, D: int, l2: bool, errors: tuple | None = None) -> torch.Tensor:
    """Bound on |approximate - exact| of every row's score for queries of norms qn (see the notes above).

    A filter (errors = (|q - q~|, |q~|, max_r |v_r - v~_r|) of its copies, measured by the scan and rounded
    up): |q.v - q~.v~| <= |q - q~|·|v| + |q~|·|v - v~| (Cauchy-Schwarz), plus the float32 rounding of the
    exact query (u·|q|·|v|, as on the float32 paths, with a factor 2), plus how the tile holds q~.v~:
      int8: up to three float32 roundings (2^-21·|q~|·|v~|; below 2^-126 absolute 2^-126·8001·D);
      bf16: exact products, float32 sums (gamma_{D+2}·|q~|·|v~|), and bf16 inputs below 2^-126 or partial
            sums flushed to zero by the product (absolute 2^-126·(sqrt(D)·(|q~| + |v~|) + D));
    times 1.05 of slack. l2: twice that (2 q.v) plus the float32 paths' bound for |v|^2 and the fold's
    2 s - |v|^2. The measured errors are what makes a filter pay: bf16 rounding is 2^-8 relative at worst but
    about 2^-9.3 in norm on typical rows, so the bound (and the candidates near the k-th score) is a fraction
    of the worst case's."""
    if path.filter:
        qerr, qtn, emax = errors
        vtn = vmax + emax  # |v~| <= |v| + |v - v~|
        if path.int8:
            tile = 2.0 ** -21 * qtn * vtn + 2.0 ** -126 * 8001.0 * D
        else:
            tile = gamma(D + 2) * qtn * vtn + 2.0 ** -126 * (math.sqrt(D) * (qtn + vtn) + D)
        ip = qerr * vmax + qtn * emax + 2.0 * U * qn * vmax + tile
        return 1.05 * (2.0 * ip + 2.0 * gamma(D + 4) * (qn + vmax) ** 2 if l2 else ip)
    if l2:
        return 2.0 * gamma(D + 4) * (qn + vmax) ** 2
    return 2.0 * (gamma(D + 2) + U) * qn * vmax  # + u: x64 rounded to the float32 queries


# A filter's candidate count. The K-th candidate must score more than one bound below the k-th exact score
# for a query to be certified, so the count needed is the number of rows whose approximate score lies above
# (k-th exact score - bound): about k·z·bound/sigma for scores spread by sigma, the k-th place z sigmas into
# the tail, which depends on the data, D and k. 3k + 32 covers the random unit rows of issue 11 (D = 300,
# k = 100: 99.9% certified; 2k + 32 there: 39%) but at D = 128 half of it suffices, and every candidate
# costs selection and refinement. So a search of at least 4·PILOT queries on a filter scans its first PILOT
# queries with 3k + 32, counts what each of them needed, and scans the rest with the largest count plus
# PILOT_SLACK (never more than 3k + 32): queries that then miss are re-scanned in float32 as before, so the
# answers are the same whatever the count.
PILOT, PILOT_SLACK = 64, 8


def _candidates_needed(approx: torch.Tensor, kth: torch.Tensor, bound: torch.Tensor, l2: bool, k: int) -> int:
    """The largest candidate count any of these queries needed (approximate scores [Q, K] best first, their
    exact k-th scores kth [Q] and bounds [Q]) plus PILOT_SLACK, at most 3k + 32: a query with fewer than k
    exact scores (kth infinite) counts all K."""
    K = approx.shape[1]
    edge = kth + bound if l2 else kth - bound
    inside = (approx <= edge[:, None]) if l2 else (approx >= edge[:, None])
    need = torch.where(torch.isfinite(kth), inside.sum(1) + 1, K)
    cap = filter_candidates(k)
    return int(min(cap, int(need.max()) + PILOT_SLACK)) if need.numel() else cap


def exact_search(queries: torch.Tensor, vectors: torch.Tensor, k: int, l2: bool, vsq: torch.Tensor | None = None,
                 *, x64: torch.Tensor | None = None, scale: torch.Tensor | None = None,
                 excl: torch.Tensor | None = None, threads: int | None = None,
                 path=None, int8_rows: torch.Tensor | None = None,
                 bf16_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """CPU exact top-k: (scores [Q, k] float32, rows [Q, k] int64), k <= R, ranked in float64.

    queries [Q, D] float32 (what the scan multiplies); x64 [Q, D] float64 and scale [Q] (ip only), when the
    exact score is scale·(x64.v) with queries ~ scale·x64 in float32 (analogies: the unnormalized sum and
    its inverse norm); excl [Q, E] rows never returned (-1: none), counted in the candidates; int8_rows:
    the rows' ``int8_table`` (offers the ``int8-table`` path, which reads it instead of copying the rows);
    bf16_rows: the rows' ``bf16_table`` when the caller keeps one (the bf16 path makes its own otherwise).
    Memory: O(Q·(k + margin)) lists in chunks of at most 16384 queries, one [512, 512] tile per thread,
    float64 copies of a chunk's queries; never the [Q, R] score matrix.
    """

    Q, D = queries.shape
    R = vectors.shape[0]
    vectors = vectors.contiguous()  # (a copy only for a strided view)
    threads = threads or torch.get_num_threads()
    if x64 is None:
        qnorm = torch.linalg.vector_norm(queries, dim=1, dtype=torch.float64)
    else:
        qnorm = x64.norm(dim=1) * (1.0 if scale is None else scale)  # the norm of the exact scaled query
    vsq, vmax = check_inputs(queries, vectors, vsq, l2, qnorm)
    excl = torch.empty((Q, 0), dtype=torch.int64) if excl is None else excl
    path = path or _search_plan.choose(Q, R, D, threads, table=int8_rows is not None or bf16_rows is not None)
    out_v, out_i = torch.empty((Q, k)), torch.empty((Q, k), dtype=torch.int64)
    step = max(1, min(16384, 2 ** 24 // (4 * threads * min(R, filter_candidates(k) + excl.shape[1]))))
    filter_k = None  # a filter's candidates beyond the exclusions, learned from a pilot (notes above)
    # bf16_rows: the bf16 filter's table of the rows, made on its first scan unless the caller keeps one
    for lo in range(0, Q, step):
        chunk = torch.arange(lo, min(Q, lo + step))
        pilot = path.filter and filter_k is None and chunk.numel() >= 4 * PILOT
        for piece in (chunk[:PILOT], chunk[PILOT:]) if pilot else (chunk,):
            rows = piece
            x = queries[rows].double() if x64 is None else x64[rows]
            qn = qnorm[rows]
            use = path
            if use.bf16 and not (float(qn.max()) < 1e18 and vmax < 1e18):
                # bfloat16 (and the float32 sums of its squared errors, csrc/topk_scan.cpp) would overflow
                use = _search_plan.choose(Q, R, D, threads, float32=True)
            # a bf16 or int8 filter keeps more candidates: its bound is wider, so more rows sit near the k-th
            K = min(R, ((filter_k or filter_candidates(k)) if use.filter else k + margin(k)) + excl.shape[1])
            while rows.numel():
                q = queries[rows].contiguous()
                if use.bf16 and bf16_rows is None:
                    bf16_rows = bf16_table(vectors, threads)
                vals, cand, errors = scan(use, q, vectors, K, vsq if l2 else None, threads, int8_rows, bf16_rows)
                approx = vals.double()
                if l2 and use.name != "faiss":  # 2 q.v - |v|^2 -> |q|^2 - (2 q.v - |v|^2) = |q - v|^2
                    approx = q.double().square().sum(1, keepdim=True) - approx
                bound = _bound(use, qn, vmax, D, l2, errors)
                s, i, ok = refine(x, vectors, cand, approx, bound, excl[rows], l2, k, threads,
                                  None if scale is None else scale[rows])
                out_v[rows], out_i[rows] = s, i
                if pilot and rows is piece and use.filter:
                    filter_k = _candidates_needed(approx, s[:, -1].double(), bound, l2, k) - excl.shape[1]
                if K >= R:
                    break
                if use.filter:
                    if float((~ok).double().mean()) > 0.1:  # too many near-ties for this filter: float32 from now on
                        path = _search_plan.choose(Q, R, D, threads, float32=True)
                    use = _search_plan.choose(int((~ok).sum()), R, D, threads, float32=True)
                    K = min(R, k + margin(k) + excl.shape[1])
                else:
                    K = min(R, 4 * K)
                rows, x, qn = rows[~ok], x[~ok], qn[~ok]
    return out_v, out_i


_search_plan.register_searcher(exact_search, int8_table, bf16_table)


def table_kind(Q: int, R: int, D: int) -> str | None:
    """The table ("int8" or "bf16") a search of Q queries over R x D rows here would read if the caller kept
    the rows' tables (the ``int8-table`` and ``mkl-bf16-table`` paths), else None. EmbeddingIndex makes that
    table (``int8_table``, ``bf16_table``) on the first such search."""
    path = _search_plan.choose(Q, R, D, table=True)
    if not path.table:
        return None
    return "int8" if path.int8 else "bf16"


def search_path(Q: int, R: int, D: int, table: bool = False) -> str:
    """The CPU path an exact search of Q queries over R x D rows takes here (table: by a caller that keeps
    the rows' tables, as EmbeddingIndex does; benchmark rows record it)."""

    path = _search_plan.choose(Q, R, D, table=table)
    return f"{path.name}: {path.library}"


# ---------------------------------------------------------------------------------------------------------
# the implementations (each takes the custom op's arguments, k already clipped to R) and the op

def topk_search_triton(queries, vectors, k, l2, vsq=None, int8_rows=None, bf16_rows=None):
    """Triton (CUDA; CPU tensors under the interpreter): float32 ranking, [Q, k] scores and rows."""
    if queries.shape[0] == 0:
        return empty_result(queries, 0, k)
    check_inputs(queries, vectors, vsq, l2)
    s, i = topk_search_forward(queries, vectors, k, l2)
    if l2:  # |q - v|^2 = |q|^2 - (2 q.v - |v|^2); padding stays +inf
        s = torch.where(i >= 0, (queries.square().sum(1, keepdim=True) - s).clamp_min(0), float("inf"))
    return s, i


def topk_search_native(queries, vectors, k, l2, vsq=None, int8_rows=None, bf16_rows=None):
    """C++ (CPU): the exact search above; which scan it runs (MKL, OpenBLAS, bf16 or int8 filter, FAISS,
    built-in kernel) is measured once per machine inside it (``_search_plan``), not chosen by the dispatcher."""
    if queries.shape[0] == 0:
        return empty_result(queries, 0, k)
    return exact_search(queries, vectors, k, l2, vsq, int8_rows=int8_rows, bf16_rows=bf16_rows)


def topk_search_torch(queries, vectors, k, l2, vsq=None, int8_rows=None, bf16_rows=None):
    """Plain PyTorch, any device: float64 scores of blocks of at most 4096 queries x C rows (C >= 1024, so
    that a block holds about 2^22 scores) pushed into one TopK per query block. Memory: one block and its sort; never
    the [Q, R] matrix. Ranks as ``reference.topk_search`` (float64, lower row first on ties)."""
    Q, R = queries.shape[0], vectors.shape[0]
    if Q == 0:
        return empty_result(queries, 0, k)
    check_inputs(queries, vectors, vsq, l2)
    v = vectors.double()
    out_s, out_i = [], []
    for lo in range(0, Q, 4096):
        q = queries[lo:lo + 4096].double()
        lists = TopK(q.shape[0], k, q.device, dtype=torch.float64)
        step = max(1024, (1 << 22) // q.shape[0])
        for c0 in range(0, R, step):
            vc = v[c0:c0 + step]
            s = -torch.cdist(q, vc).square() if l2 else q @ vc.T
            lists.push(s, torch.arange(c0, c0 + vc.shape[0], device=q.device))
        s, i = lists.finalize()
        out_s.append(-s if l2 else s)
        out_i.append(i)
    return torch.cat(out_s).float(), torch.cat(out_i)


IMPLS = declare(OP, Impls(triton=topk_search_triton, native=topk_search_native, torch=topk_search_torch))


@torch.library.custom_op("fastrepr::topk_search", mutates_args=())
def topk_search(queries: torch.Tensor, vectors: torch.Tensor, k: int, l2: bool,
                vsq: torch.Tensor | None = None,
                int8_rows: torch.Tensor | None = None,
                bf16_rows: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [Q, k'], indices [Q, k']) with k' = min(k, R); ip: inner products, descending; l2: squared
    distances, ascending; equal scores: lower row first. Inputs float32, queries finite (ValueError naming
    ``queries`` otherwise, on every implementation). vsq: |v|^2 per row [R] when the caller has it (else
    computed). int8_rows, bf16_rows: ``int8_table(vectors)``, ``bf16_table(vectors)`` when the caller keeps
    them (the native implementation may read them; the others ignore them). The implementation is chosen by ``fastrepr._backend.dispatch`` (FASTREPR_BACKEND forces one).
    The native and torch implementations return the float64 ranking exactly (module notes above); Triton
    ranks in float32."""
    return dispatch(OP, IMPLS, queries, vectors, min(int(k), vectors.shape[0]), l2, vsq, int8_rows, bf16_rows)


@topk_search.register_fake
def _(queries, vectors, k, l2, vsq=None, int8_rows=None, bf16_rows=None):
    kk = min(k, vectors.shape[0])
    return (queries.new_empty((queries.shape[0], kk)),
            queries.new_empty((queries.shape[0], kk), dtype=torch.int64))
