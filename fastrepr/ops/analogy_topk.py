"""Batched word analogies "a : b :: c : ?" with 3CosAdd or 3CosMul, top-k per question, excluding a, b, c.

For unit rows u_j and question words a, b, c, with cos_x[j] = u_j . u_x:

    3CosAdd (Mikolov et al. 2013; gensim ``most_similar(positive=[b, c], negative=[a])``):
        score_j = cos(u_j, u_b + u_c - u_a) = (cos_b[j] + cos_c[j] - cos_a[j]) / |u_b + u_c - u_a|
    3CosMul (Levy & Goldberg 2014, eq. 4, cosines shifted to [0, 1] as gensim's ``most_similar_cosmul``):
        score_j = ((1 + cos_b[j])/2 * (1 + cos_c[j])/2) / ((1 + cos_a[j])/2 + 1e-6)

Both are functions of three cosine rows, and an analogy set reuses few words (the 19,544 Google questions
use 905 distinct words). So the cosines are computed once per distinct word: for each chunk of C vocabulary
rows, one GEMM gives S = W U_chunk^T [W, C] (W distinct words; 2·W·R·D flops in all instead of the
2·Q·R·D of one query per question, or 6·Q·R·D for three cosines per question), and a fused kernel forms
every question's scores from three rows of S tile by tile and merges them into a running top-k per question.
Neither queries x vocabulary nor three such matrices are ever stored: memory is O(W·C) for the tile (C sized
so it stays in the GPU's L2, or near 8 MB on a CPU) plus O(Q·k) for the lists.

Triton (CUDA): program (pq, ps) owns BLOCK_Q questions and one of SPLITS column ranges of the chunk; it keeps
its lists in registers across the chunk's tiles (``_topk.merge_topk``) and in a [Q, SPLITS, KP] buffer
(a ``_topk.TopK``) between chunks. Native (CPU): C++ ``topk_merge`` (modes 1 and 2, ``TopK.push_tile``),
OpenMP over questions. Torch (any device): float64 cosine rows of the distinct words, blocks pushed into a
``TopK``. ``IMPLS`` declares the three; ``fastrepr._backend.dispatch`` picks one per call.
Ties: equal scores keep the lower row first, as ``reference.analogy_topk``. Gradients: none.
"""
from __future__ import annotations

import torch

from .._backend import Impls, declare, dispatch
from .._triton import next_power_of_2, tl, triton
from ._topk import COMPILE_KP, NEG_INF, TopK, cdiv, chunk_rows, empty_result, merge_topk, splits_for, unique_inverse
from .topk_search import U, exact_search, gamma, margin, refine, row_sqnorms

OP = "analogy_topk"
METHODS = {"3cosadd": 1, "3cosmul": 2}


@triton.jit
def _analogy_topk_kernel(
    # pointers
    s_ptr, rows_ptr, scale_ptr, words_ptr, top_v_ptr, top_i_ptr,
    # shapes
    Q, C, col0, span,
    # strides
    stride_s,
    # constants
    MUL: tl.constexpr, KP: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_V: tl.constexpr,
):
    """Fold chunk columns [ps*span, min((ps+1)*span, C)) of S [W, C] into the lists of questions
    [pq*BLOCK_Q, +BLOCK_Q). rows [Q, 3]: rows of S for (a, b, c); words [Q, 3]: their global vocabulary ids
    (excluded); lists top_v/top_i [Q, SPLITS, KP] are read and written back."""
    pq, ps = tl.program_id(0), tl.program_id(1)
    splits = tl.num_programs(1)
    offs_q = pq * BLOCK_Q + tl.arange(0, BLOCK_Q)
    mask_q = offs_q < Q
    slots = tl.arange(0, KP)
    lists = (offs_q[:, None].to(tl.int64) * splits + ps) * KP + slots[None, :]
    top_v = tl.load(top_v_ptr + lists, mask=mask_q[:, None], other=NEG_INF)
    top_i = tl.load(top_i_ptr + lists, mask=mask_q[:, None], other=-1)
    ra = tl.load(rows_ptr + offs_q * 3 + 0, mask=mask_q, other=0).to(tl.int64) * stride_s
    rb = tl.load(rows_ptr + offs_q * 3 + 1, mask=mask_q, other=0).to(tl.int64) * stride_s
    rc = tl.load(rows_ptr + offs_q * 3 + 2, mask=mask_q, other=0).to(tl.int64) * stride_s
    wa = tl.load(words_ptr + offs_q * 3 + 0, mask=mask_q, other=-1)
    wb = tl.load(words_ptr + offs_q * 3 + 1, mask=mask_q, other=-1)
    wc = tl.load(words_ptr + offs_q * 3 + 2, mask=mask_q, other=-1)
    scale = tl.load(scale_ptr + offs_q, mask=mask_q, other=0.0)
    lo = ps * span
    hi = tl.minimum(lo + span, C)
    for j0 in range(lo, hi, BLOCK_V):
        offs_j = j0 + tl.arange(0, BLOCK_V)
        m = mask_q[:, None] & (offs_j < hi)[None, :]
        sa = tl.load(s_ptr + ra[:, None] + offs_j[None, :], mask=m, other=0.0)
        sb = tl.load(s_ptr + rb[:, None] + offs_j[None, :], mask=m, other=0.0)
        sc = tl.load(s_ptr + rc[:, None] + offs_j[None, :], mask=m, other=0.0)
        if MUL:
            s = ((1.0 + sb) * 0.5) * ((1.0 + sc) * 0.5) / ((1.0 + sa) * 0.5 + 1e-6)
        else:
            s = (sb + sc - sa) * scale[:, None]
        cols = (col0 + offs_j)[None, :]
        keep = m & (cols != wa[:, None]) & (cols != wb[:, None]) & (cols != wc[:, None])
        s = tl.where(keep, s, NEG_INF)
        top_v, top_i = merge_topk(s, cols, top_v, top_i)
    tl.store(top_v_ptr + lists, top_v, mask=mask_q[:, None])
    tl.store(top_i_ptr + lists, top_i, mask=mask_q[:, None])


def _triton_merge(S, rows32, scale, words32, col0, lists, mul):
    Q, splits, KP = lists.scores.shape
    C = S.shape[1]
    # Untuned (no GPU was available): 32 questions x 128 columns, 4 warps; 16 questions for long lists.
    BLOCK_Q, BLOCK_V = (32 if KP <= 32 else 16, 128) if S.is_cuda else (16, 32)
    span = cdiv(cdiv(C, splits), BLOCK_V) * BLOCK_V
    _analogy_topk_kernel[(cdiv(Q, BLOCK_Q), splits)](
        S, rows32, scale, words32, lists.scores, lists.ids,
        Q, C, col0, span, S.stride(0),
        MUL=mul, KP=KP, BLOCK_Q=BLOCK_Q, BLOCK_V=BLOCK_V, num_warps=4,
    )


def compile_cases():
    """How _triton_merge launches the kernel on a GPU: 3CosAdd and 3CosMul, each KP of COMPILE_KP with the CUDA
    tiles it picks for it (restated here from _triton_merge), Q = 19544 questions over a chunk of C = 8192 rows."""
    from .._triton import CompileCase

    f32, i32, Q, C = torch.float32, torch.int32, 19544, 8192
    for mul in (False, True):
        for kp in COMPILE_KP:
            yield CompileCase(_analogy_topk_kernel, dict(
                s_ptr=f32, rows_ptr=i32, scale_ptr=f32, words_ptr=i32, top_v_ptr=f32, top_i_ptr=i32, Q=Q, C=C,
                col0=0, span=C // 4, stride_s=C), dict(MUL=mul, KP=kp, BLOCK_Q=32 if kp <= 32 else 16, BLOCK_V=128),
                num_warps=4)


def analogy_topk_forward(unit: torch.Tensor, words: torch.Tensor, k: int, method: str, merge: str,
                         chunk: int | None = None, splits: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Driver shared by the triton and native implementations (see the module docstring); merge: "triton"
    (the kernel above) or "native" (C++ ``topk_merge``), the chunk merge the calling implementation uses.

    unit [R, D] float32 unit rows; words [Q, 3] int64 ids in [0, R). chunk: vocabulary rows per GEMM (default:
    the tile W x C stays near 32 MB on CUDA, 8 MB on CPU); splits: column ranges per chunk (Triton only).
    Returns (scores [Q, k] float32, indices [Q, k] int64).
    """
    Q, R = words.shape[0], unit.shape[0]
    distinct, rows = unique_inverse(words)  # rows [Q, 3]: row of S for a, b, c
    W = unit[distinct]  # [W, D]
    comb = W[rows[:, 1]] + W[rows[:, 2]] - W[rows[:, 0]]
    norm = comb.norm(dim=1)
    scale = torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm)).float().contiguous()
    mode = METHODS[method]
    gpu = unit.is_cuda
    chunk = chunk or chunk_rows(R, W.shape[0], (32 if gpu else 8) << 20, 256)
    if merge == "triton":
        splits = splits or splits_for(cdiv(Q, 32), min(chunk, R), 128, unit.device)
        lists = TopK(Q, k, unit.device, parts=splits, width=next_power_of_2(k), index_dtype=torch.int32)
        rows32, words32 = rows.int().contiguous(), words.int().contiguous()
    else:
        lists = TopK(Q, k, unit.device)
        rows, words = rows.contiguous(), words.contiguous()
    for c0 in range(0, R, chunk):
        S = (W @ unit[c0:c0 + chunk].T).contiguous()  # [W, C] cosines of the distinct words
        if merge == "triton":
            _triton_merge(S, rows32, scale, words32, c0, lists, mode == 2)
        else:
            lists.push_tile(S, rows, scale, mode, words, c0)
    return lists.finalize()


# ---------------------------------------------------------------------------------------------------------
# native (CPU) 3CosAdd: the cheaper of two exact routes, identical answers
#
# 3CosAdd ranks rows by u_j . x with x = (u_b + u_c - u_a) / |u_b + u_c - u_a|, so a question is also one
# search query. Distinct words (above) cost 2·W·R·D flops for the cosines plus about 4·Q·R to form the
# scores; the combined queries cost 2·Q·R·D. The 19,544 Google questions use 905 words (distinct words win
# 20x); sets of nearly distinct words favour the search (issue 11 measured 3x). Either way the candidates
# (k + margin per question) are re-scored in float64 against the float64 x and certified as in
# ``topk_search`` (the search's bound; for the distinct-word scores (S_b + S_c - S_a)·scale it is
# 2·(scale·(3·gamma_D + 12u) + gamma_D + 4u): three cosines, two additions, the rounded scale of the
# float32 combination), so both routes return the float64 ranking of ``reference.analogy_topk``.
# 3CosMul keeps the three cosines of the distinct words (it is no single query) and float32 ranking.


def cosadd_queries(unit: torch.Tensor, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(comb [Q, D] float64, scale [Q] float64): comb = u_b + u_c - u_a, scale = 1 / |comb| (0 where comb is
    zero, as the reference). Rows rank by comb.u and score scale·(comb.u): rows tied in the sum stay tied."""
    u = unit[words.reshape(-1)].double().view(words.shape[0], 3, -1)
    comb = u[:, 1] + u[:, 2] - u[:, 0]
    norm = comb.norm(dim=1)
    return comb, torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm))


def cosadd_route(Q: int, W: int, R: int, D: int) -> str:
    """"distinct" or "search", by the flops each needs (see above)."""
    return "distinct" if 2 * W * R * D + 4 * Q * R < 2 * Q * R * D else "search"


def cosadd_native(unit: torch.Tensor, words: torch.Tensor, k: int, vsq: torch.Tensor | None = None,
                  route: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact 3CosAdd on CPU (see above): (scores [Q, k], rows [Q, k]), a/b/c never returned, k <= R."""
    Q, R, D = words.shape[0], unit.shape[0], unit.shape[1]
    comb, scale = cosadd_queries(unit, words)
    route = route or cosadd_route(Q, int(torch.unique(words).numel()), R, D)
    vsq = row_sqnorms(unit) if vsq is None else vsq
    threads = torch.get_num_threads()

    def search(sel):
        return exact_search((comb[sel] * scale[sel, None]).float(), unit, k, False, vsq, x64=comb[sel],
                            scale=scale[sel], excl=words[sel], threads=threads)

    if route == "search":
        return search(slice(None))
    K = min(R, k + margin(k))
    approx, cand = analogy_topk_forward(unit, words, K, "3cosadd", "native")
    bound = 2.0 * (torch.where(scale > 0, scale, torch.full_like(scale, float("inf"))) * (3 * gamma(D) + 12 * U)
                   + gamma(D) + 4 * U)
    s, i, ok = refine(comb, unit, cand, approx, bound, words, False, k, threads, scale)
    if not bool(ok.all()):  # near-ties at the k-th place: those questions go through the search
        bad = (~ok).nonzero().squeeze(1)
        s[bad], i[bad] = search(bad)
    return s, i


# ---------------------------------------------------------------------------------------------------------
# the implementations (each takes the custom op's arguments, k already clipped to R) and the op

def analogy_topk_triton(unit, words, k, method, vsq=None):
    """Triton (CUDA; CPU tensors under the interpreter): the distinct-word driver, float32 ranking."""
    if words.shape[0] == 0:
        return empty_result(unit, 0, k)
    return analogy_topk_forward(unit, words, k, method, "triton")


def analogy_topk_native(unit, words, k, method, vsq=None):
    """C++ (CPU): 3CosAdd exact (the cheaper route above), 3CosMul through the distinct-word driver."""
    if words.shape[0] == 0:
        return empty_result(unit, 0, k)
    if method == "3cosadd":
        return cosadd_native(unit, words, k, vsq)
    return analogy_topk_forward(unit, words, k, method, "native")


def analogy_topk_torch(unit, words, k, method, vsq=None):
    """Plain PyTorch, any device: float64 cosines of the W distinct words with blocks of C rows (C about
    2^22 / max(W, 4096), at least 256), each question's scores formed from three of their rows and pushed into
    one TopK per block of at most 4096 questions. Memory: the [W, C] and [4096, C] blocks; never [Q, R]. Ranks as
    ``reference.analogy_topk`` (float64, lower row first on ties)."""
    Q, R = words.shape[0], unit.shape[0]
    if Q == 0:
        return empty_result(unit, 0, k)
    distinct, rows = unique_inverse(words)
    u = unit.double()
    W = u[distinct]
    norm = (W[rows[:, 1]] + W[rows[:, 2]] - W[rows[:, 0]]).norm(dim=1)
    scale = torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm))[:, None]
    step = max(256, (1 << 22) // max(W.shape[0], min(Q, 4096)))
    out_s, out_i = [], []
    for lo in range(0, Q, 4096):
        r, w = rows[lo:lo + 4096], words[lo:lo + 4096]
        lists = TopK(r.shape[0], k, unit.device, dtype=torch.float64)
        for c0 in range(0, R, step):
            cos = W @ u[c0:c0 + step].T  # [W, C]
            cols = torch.arange(c0, c0 + cos.shape[1], device=unit.device)
            s = _scores(cos[r[:, 0]], cos[r[:, 1]], cos[r[:, 2]], method, scale[lo:lo + 4096])
            s = s.masked_fill((cols[None, None, :] == w[:, :, None]).any(1), float("-inf"))
            lists.push(s, cols)
        s, i = lists.finalize()
        out_s.append(s)
        out_i.append(i)
    return torch.cat(out_s).float(), torch.cat(out_i)


def _scores(cos_a, cos_b, cos_c, method, scale):
    """3CosAdd / 3CosMul from the three cosine rows of each question (the formulas of the module docstring)."""
    if method == "3cosadd":
        return (cos_b + cos_c - cos_a) * scale
    return ((1 + cos_b) * 0.5) * ((1 + cos_c) * 0.5) / ((1 + cos_a) * 0.5 + 1e-6)


IMPLS = declare(OP, Impls(triton=analogy_topk_triton, native=analogy_topk_native, torch=analogy_topk_torch))


@torch.library.custom_op("fastrepr::analogy_topk", mutates_args=())
def analogy_topk(unit: torch.Tensor, words: torch.Tensor, k: int, method: str,
                 vsq: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores [Q, k'], indices [Q, k']) with k' = min(k, R), for questions words [Q, 3] over unit rows
    [R, D] (see module doc); questions with fewer than k' candidates end in (-inf, -1). vsq: |u|^2 per row
    when the caller has it. The implementation is chosen by ``fastrepr._backend.dispatch`` (FASTREPR_BACKEND
    forces one)."""
    return dispatch(OP, IMPLS, unit, words, min(int(k), unit.shape[0]), method, vsq)


@analogy_topk.register_fake
def _(unit, words, k, method, vsq=None):
    kk = min(k, unit.shape[0])
    return (unit.new_empty((words.shape[0], kk)), unit.new_empty((words.shape[0], kk), dtype=torch.int64))
