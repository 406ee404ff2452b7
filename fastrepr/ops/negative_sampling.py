"""Negative-sampling loss of word2vec (skip-gram and CBOW), fused: gather -> dot -> log-sigmoid.

Mikolov et al. 2013 ("Distributed Representations of Words and Phrases"). For example b with inputs
x[b, :C] (mask m, n_b = sum_c m_bc; skip-gram has C = 1), target t_b and negatives n_b1..n_bK:

    h_b    = (1/n_b) sum_c m_bc w_in[x_bc]                      (CBOW: masked mean of the context rows)
    s_bj   = h_b · w_out[o_bj],  o_b = (t_b, n_b1, ..., n_bK),  y = (1, 0, ..., 0)
    loss_b = -sum_j log sigmoid((2 y_j - 1) s_bj)

d loss_b / d s_bj = sigmoid(s_bj) - y_j, so with upstream gradient g_b and e_bj = g_b (sigmoid(s_bj) - y_j):

    d w_out[o_bj] += e_bj h_b,          d w_in[x_bc] += (m_bc / n_b) sum_j e_bj w_out[o_bj]

Only the touched rows receive gradient. Dense mode scatter-adds them into [V, D] tables (Triton: atomics, so
the summation order, and the last bits, vary between runs; native: one thread per row, deterministic). Sparse
mode returns one row per index as a sparse COO tensor (as nn.Embedding(sparse=True) does); SGD and SparseAdam
apply it without touching the other rows.

One Triton kernel serves the four launches of ``ops/_logsigmoid.py`` (named constexpr flags HAS_GRAD, SPARSE,
STEP): forward (loss), backward into dense grads (atomics), backward into per-index rows (sparse), and a fused
SGD step that adds -lr·grad into the tables in place (Hogwild: blocks read rows that other blocks are updating,
as word2vec's threads do). Atomics use relaxed ordering (the sums need none). Inputs need unit stride along D.

Implementations (``IMPLS``, ``BACKWARD_IMPLS``, ``STEP_IMPLS``; one name per layer): ``negative_sampling_triton``
/ ``_native`` / ``_torch`` (the torch entries are the closed forms above, not the oracle in fastrepr.reference)
-> ``torch.ops.fastrepr.negative_sampling`` -> ``functional.sgns_loss`` / ``cbow_ns_loss``; likewise
``negative_sampling_backward_*`` -> ``torch.ops.fastrepr.negative_sampling_backward``, and
``negative_sampling_step_*`` -> ``negative_sampling_step_`` (the trainer's fused step).

Non-finite policy (fastrepr._checks): every backend makes the loss of an example NaN when one of its scores is
not finite (log sigmoid(+inf) = 0 would otherwise hide an Inf row), so one O(B) check of the loss covers NaN/Inf
in any row the batch reads and any overflowing score or sum, without scanning the [V, D] tables. On failure
``check_loss`` finds the cause and names it (w_in, w_out, or the overflow). On CUDA the check synchronizes and
runs only under FASTREPR_CHECK=1; otherwise the loss is NaN.
"""
from __future__ import annotations

from typing import Optional

import torch

from .. import _native
from .._backend import Impls, declare, dispatch
from .._triton import CompileCase, tl, triton
from ._logsigmoid import (BACKWARD_DENSE, BACKWARD_SPARSE, FORWARD, SGD_STEP, acc_constexpr, check_index, check_loss,
                          compile_launches, log_sigmoid, mask_u8, row_tiles, unit_columns)
from ._precision import acc_dtype

OP = "negative_sampling"


@triton.jit
def _negative_sampling_kernel(
    # pointers
    w_in_ptr, w_out_ptr, dst_in_ptr, dst_out_ptr, inputs_ptr, mask_ptr, targets_ptr, negatives_ptr,
    grad_ptr, loss_ptr,
    # shapes
    B, C, K, D,
    # strides (rows; columns have unit stride)
    stride_in, stride_out, stride_dst_in, stride_dst_out,
    # constants
    lr, HAS_MASK: tl.constexpr, HAS_GRAD: tl.constexpr, SPARSE: tl.constexpr, STEP: tl.constexpr,
    MEAN_GRAD: tl.constexpr, ACC: tl.constexpr, BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program owns BLOCK_B examples; the rows it gathers are [BLOCK_B, BLOCK_D] tiles (BLOCK_D >= D).
    HAS_GRAD: also compute the gradients, scaled by grad_ptr's upstream gradient (STEP: by -lr, written into
    the tables themselves); SPARSE: store one gradient row per index instead of scatter-adding (atomics)."""
    offs_b = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    mask_b = offs_b < B
    tile = mask_b[:, None] & (offs_d < D)[None, :]

    h = tl.zeros([BLOCK_B, BLOCK_D], dtype=ACC)
    n = tl.zeros([BLOCK_B], dtype=ACC)
    for c in range(0, C):
        x = tl.load(inputs_ptr + offs_b * C + c, mask=mask_b, other=0)
        use = mask_b
        if HAS_MASK:
            use = use & (tl.load(mask_ptr + offs_b * C + c, mask=mask_b, other=0) != 0)
        row = tl.load(w_in_ptr + x[:, None] * stride_in + offs_d[None, :], mask=tile & use[:, None], other=0.0)
        h += row.to(ACC)
        n += use.to(ACC)
    inv_n = 1.0 / tl.maximum(n, 1.0)
    h = h * inv_n[:, None]

    if STEP:
        g = tl.zeros([BLOCK_B], dtype=ACC) - lr
    elif HAS_GRAD:
        g = tl.load(grad_ptr + offs_b, mask=mask_b, other=0.0).to(ACC)
    else:
        g = tl.zeros([BLOCK_B], dtype=ACC)
    loss = tl.zeros([BLOCK_B], dtype=ACC)
    finite = mask_b | True  # [BLOCK_B] all true: every score of the example finite so far
    dh = tl.zeros([BLOCK_B, BLOCK_D], dtype=ACC)
    for j in range(0, K + 1):
        # j = 0 is the target (label 1); j >= 1 the negatives (label 0)
        is_target = j == 0
        k = tl.maximum(j - 1, 0)
        o_neg = tl.load(negatives_ptr + offs_b * K + k, mask=mask_b & (j > 0), other=0)
        o_tgt = tl.load(targets_ptr + offs_b, mask=mask_b & is_target, other=0)
        o = tl.where(is_target, o_tgt, o_neg)
        w = tl.load(w_out_ptr + o[:, None] * stride_out + offs_d[None, :], mask=tile, other=0.0).to(ACC)
        s = tl.sum(h * w, axis=1)
        y = tl.where(is_target, 1.0, 0.0)
        loss -= log_sigmoid(tl.where(is_target, s, -s))
        finite = finite & (tl.abs(s) < float("inf"))  # False for NaN too
        if HAS_GRAD:
            e = g * (tl.sigmoid(s) - y)
            dh += e[:, None] * w
            upd = e[:, None] * h
            if SPARSE:
                rows = offs_b * (K + 1) + j
                tl.store(dst_out_ptr + rows[:, None] * stride_dst_out + offs_d[None, :], upd, mask=tile)
            else:
                tl.atomic_add(dst_out_ptr + o[:, None] * stride_dst_out + offs_d[None, :], upd, mask=tile,
                              sem="relaxed")
    tl.store(loss_ptr + offs_b, tl.where(finite, loss, float("nan")), mask=mask_b)

    if HAS_GRAD:
        if MEAN_GRAD:
            dh = dh * inv_n[:, None]
        for c in range(0, C):
            x = tl.load(inputs_ptr + offs_b * C + c, mask=mask_b, other=0)
            use = mask_b
            if HAS_MASK:
                use = use & (tl.load(mask_ptr + offs_b * C + c, mask=mask_b, other=0) != 0)
            if SPARSE:
                rows = offs_b * C + c
                tl.store(dst_in_ptr + rows[:, None] * stride_dst_in + offs_d[None, :],
                         tl.where(use[:, None], dh, 0.0), mask=tile)
            else:
                tl.atomic_add(dst_in_ptr + x[:, None] * stride_dst_in + offs_d[None, :], dh, mask=tile & use[:, None],
                              sem="relaxed")


def compile_cases():
    """How _launch calls the kernel on a GPU: _logsigmoid.compile_launches, each with and without a context mask
    (the step with and without the mean), with the destination each launch writes (the tables for the step, the
    accumulation dtype for gradients; the forward passes the tables unwritten), at a CBOW launch (B = 16384,
    C = 10, K = 5, contiguous rows)."""
    i64 = torch.int64
    for dt, acc, D, flags in compile_launches():
        dst = acc if flags["HAS_GRAD"] and not flags["STEP"] else dt
        for has_mask in (False, True):
            for mean in (True, False) if flags["STEP"] else (True,):
                yield CompileCase(_negative_sampling_kernel, dict(
                    w_in_ptr=dt, w_out_ptr=dt, dst_in_ptr=dst, dst_out_ptr=dst, inputs_ptr=i64,
                    mask_ptr=torch.uint8 if has_mask else i64, targets_ptr=i64, negatives_ptr=i64, grad_ptr=acc,
                    loss_ptr=acc, B=16384, C=10, K=5, D=D, stride_in=D, stride_out=D, stride_dst_in=D,
                    stride_dst_out=D, lr=0.025), dict(flags, HAS_MASK=has_mask, MEAN_GRAD=mean), num_warps=4)


def _launch(flags, w_in, w_out, inputs, targets, negatives, mask, grad=None, dst_in=None, dst_out=None, lr=0.0,
            mean_grad=True) -> torch.Tensor:
    """Run the kernel in one launch of _logsigmoid (``flags``); returns the per-example loss [B]."""
    B, C = inputs.shape
    K, D = negatives.shape[1], w_in.shape[1]
    loss = torch.empty(B, dtype=acc_dtype(w_in.dtype), device=w_in.device)
    BLOCK_B, BLOCK_D = row_tiles(D)
    dst_in = w_in if dst_in is None else dst_in
    dst_out = w_out if dst_out is None else dst_out
    _negative_sampling_kernel[(triton.cdiv(B, BLOCK_B),)](
        w_in, w_out, dst_in, dst_out, inputs, mask if mask is not None else inputs, targets, negatives,
        grad if grad is not None else loss, loss,
        B, C, K, D,
        w_in.stride(0), w_out.stride(0), dst_in.stride(0), dst_out.stride(0),
        float(lr), HAS_MASK=mask is not None, MEAN_GRAD=mean_grad, ACC=acc_constexpr(w_in.dtype),
        BLOCK_B=BLOCK_B, BLOCK_D=BLOCK_D, num_warps=4, **flags,
    )
    return loss


# ------------------------------------------------------------------------------------------- triton entries

def negative_sampling_triton(w_in, w_out, inputs, targets, negatives, mask=None) -> torch.Tensor:
    """Per-example loss [B] in float32 (float64 for float64 tables)."""
    return _launch(FORWARD, unit_columns(w_in), unit_columns(w_out), inputs, targets, negatives, mask_u8(mask))


def negative_sampling_backward_triton(grad, w_in, w_out, inputs, targets, negatives, mask=None, sparse=False):
    """(d_in, d_out) in the accumulation dtype; dense [V_in, D], [V_out, D] (atomics) or sparse rows [B, C, D],
    [B, 1 + K, D]."""
    w_in, w_out = unit_columns(w_in), unit_columns(w_out)
    B, C = inputs.shape
    K, D = negatives.shape[1], w_in.shape[1]
    acc = acc_dtype(w_in.dtype)
    if sparse:
        d_in = torch.empty(B, C, D, dtype=acc, device=w_in.device)
        d_out = torch.empty(B, K + 1, D, dtype=acc, device=w_in.device)
    else:
        d_in = torch.zeros(w_in.shape[0], D, dtype=acc, device=w_in.device)
        d_out = torch.zeros(w_out.shape[0], D, dtype=acc, device=w_in.device)
    _launch(BACKWARD_SPARSE if sparse else BACKWARD_DENSE, w_in, w_out, inputs, targets, negatives, mask_u8(mask),
            grad=grad.to(acc).contiguous(), dst_in=d_in.view(-1, D), dst_out=d_out.view(-1, D))
    return d_in, d_out


def negative_sampling_step_triton(w_in, w_out, inputs, targets, negatives, mask, lr, mean_grad=True):
    """One kernel, atomics into the tables as it goes (Hogwild); the loss [B] before the step."""
    return _launch(SGD_STEP, w_in, w_out, inputs, targets, negatives, mask_u8(mask), lr=lr, mean_grad=mean_grad)


# ------------------------------------------------------------------------------------------- native entries

def _mask_buffer(mask):
    return (mask if mask is not None else torch.zeros(0, 0, dtype=torch.bool)).to(torch.uint8).contiguous().numpy()


def negative_sampling_native(w_in, w_out, inputs, targets, negatives, mask=None):
    """Per-example loss [B] from csrc (one thread per block of examples)."""
    acc = acc_dtype(w_in.dtype)
    loss = torch.empty(inputs.shape[0], dtype=acc)
    _native.get().negative_sampling_forward(
        _native.as_buffer(w_in), _native.as_buffer(w_out), _native.as_buffer(inputs), _mask_buffer(mask),
        _native.as_buffer(targets), _native.as_buffer(negatives), loss.numpy(), _native.dtype_name(w_in.dtype),
        torch.get_num_threads())
    return loss


def negative_sampling_backward_native(grad, w_in, w_out, inputs, targets, negatives, mask=None, sparse=False):
    """(d_in, d_out) as the triton entry's; dense tables are written one thread per row (deterministic)."""
    acc = acc_dtype(w_in.dtype)
    (B, C), K, D = inputs.shape, negatives.shape[1], w_in.shape[1]
    if sparse:
        d_in, d_out = torch.empty(B, C, D, dtype=acc), torch.empty(B, K + 1, D, dtype=acc)
    else:
        d_in, d_out = torch.zeros(w_in.shape[0], D, dtype=acc), torch.zeros(w_out.shape[0], D, dtype=acc)
    _native.get().negative_sampling_backward(
        _native.as_buffer(w_in), _native.as_buffer(w_out), _native.as_buffer(inputs), _mask_buffer(mask),
        _native.as_buffer(targets), _native.as_buffer(negatives), grad.to(acc).contiguous().numpy(), d_in.numpy(),
        d_out.numpy(), sparse, _native.dtype_name(w_in.dtype), torch.get_num_threads())
    return d_in, d_out


def negative_sampling_step_native(w_in, w_out, inputs, targets, negatives, mask, lr, mean_grad=True):
    """One C++ pass, example by example, threads racing on shared rows (Hogwild; deterministic with one
    thread). Float32/float64 contiguous tables (STEP_IMPLS rejects others, which the torch entry takes)."""
    loss = torch.empty(inputs.shape[0], dtype=w_in.dtype)
    _native.get().negative_sampling_step(
        w_in.detach().numpy(), w_out.detach().numpy(), _native.as_buffer(inputs), _mask_buffer(mask),
        _native.as_buffer(targets), _native.as_buffer(negatives), loss.numpy(), lr, mean_grad,
        _native.dtype_name(w_in.dtype), torch.get_num_threads())
    return loss


# ------------------------------------------------------------------------------------------- torch entries

def _scores(w_in, w_out, inputs, targets, negatives, mask):
    """The closed form's pieces in the accumulation dtype: (m [B, C] mask, n [B, 1] inputs used, h [B, D],
    rows [B, 1 + K] output indices, w [B, 1 + K, D] their rows, s [B, 1 + K] scores). Masked-out rows are
    gathered but never enter h (torch.where, so a NaN there stays out)."""
    acc = acc_dtype(w_in.dtype)
    m = torch.ones(inputs.shape, dtype=acc, device=w_in.device) if mask is None else mask.to(acc)
    n = m.sum(1, keepdim=True).clamp_min(1)
    h = torch.where(m.unsqueeze(-1) != 0, w_in.to(acc)[inputs], 0).sum(1) / n  # [B, D]
    rows = torch.cat([targets.unsqueeze(1), negatives], 1)                      # [B, 1 + K]
    w = w_out.to(acc)[rows]                                                     # [B, 1 + K, D]
    return m, n, h, rows, w, torch.einsum("bjd,bd->bj", w, h)


def negative_sampling_torch(w_in, w_out, inputs, targets, negatives, mask=None):
    """Per-example loss [B] in plain PyTorch; materializes the [B, C, D] and [B, 1 + K, D] gathers."""
    s = _scores(w_in, w_out, inputs, targets, negatives, mask)[-1]
    loss = -torch.nn.functional.logsigmoid(torch.cat([s[:, :1], -s[:, 1:]], 1)).sum(1)
    return torch.where(torch.isfinite(s).all(1), loss, float("nan"))


def negative_sampling_backward_torch(grad, w_in, w_out, inputs, targets, negatives, mask=None, sparse=False):
    """(d_in, d_out) from the closed form of the module docstring (index_add_ for the dense tables)."""
    m, n, h, rows, w, s = _scores(w_in, w_out, inputs, targets, negatives, mask)
    y = torch.zeros_like(s)
    y[:, 0] = 1
    e = grad.to(s.dtype).unsqueeze(1) * (torch.sigmoid(s) - y)
    v_out = e.unsqueeze(-1) * h.unsqueeze(1)                                         # [B, 1 + K, D]
    v_in = (torch.einsum("bj,bjd->bd", e, w) / n).unsqueeze(1) * m.unsqueeze(-1)     # [B, C, D]
    if sparse:
        return v_in, v_out
    D = w_in.shape[1]
    d_in = torch.zeros(w_in.shape[0], D, dtype=s.dtype, device=w_in.device)
    d_out = torch.zeros(w_out.shape[0], D, dtype=s.dtype, device=w_in.device)
    return d_in.index_add_(0, inputs.reshape(-1), v_in.reshape(-1, D)), \
        d_out.index_add_(0, rows.reshape(-1), v_out.reshape(-1, D))


def negative_sampling_step_torch(w_in, w_out, inputs, targets, negatives, mask, lr, mean_grad=True):
    """One minibatch SGD step from the values before it: the sparse rows of the backward, then index_add_."""
    loss = negative_sampling_torch(w_in, w_out, inputs, targets, negatives, mask)
    v_in, v_out = negative_sampling_backward_torch(torch.ones_like(loss), w_in, w_out, inputs, targets, negatives,
                                                   mask, True)
    if not mean_grad:
        n = inputs.shape[1] if mask is None else mask.sum(1).clamp_min(1).view(-1, 1, 1)
        v_in = v_in * n
    D = w_in.shape[1]
    rows = torch.cat([targets.unsqueeze(1), negatives], 1)
    w_out.index_add_(0, rows.reshape(-1), v_out.reshape(-1, D).to(w_out.dtype), alpha=-lr)
    w_in.index_add_(0, inputs.reshape(-1), v_in.reshape(-1, D).to(w_in.dtype), alpha=-lr)
    return loss


def _step_rejects(name, args, kwargs):
    w_in, w_out = args[:2]
    if name == "native" and (w_in.dtype not in (torch.float32, torch.float64) or not w_in.is_contiguous()
                             or not w_out.is_contiguous()):
        return f"the native step takes contiguous float32/float64 tables, got {w_in.dtype}"
    return None


IMPLS = declare(OP, Impls(triton=negative_sampling_triton, native=negative_sampling_native,
                          torch=negative_sampling_torch))
BACKWARD_IMPLS = declare("negative_sampling_backward", Impls(
    triton=negative_sampling_backward_triton, native=negative_sampling_backward_native,
    torch=negative_sampling_backward_torch))
STEP_IMPLS = declare("negative_sampling_step", Impls(
    triton=negative_sampling_step_triton, native=negative_sampling_step_native,
    torch=negative_sampling_step_torch,
    rejects=_step_rejects))


# ------------------------------------------------------------------------------------------- custom ops

def _check_indices(w_in, w_out, inputs, targets, negatives):
    check_index("inputs", inputs, w_in.shape[0], "w_in")
    check_index("targets", targets, w_out.shape[0], "w_out")
    check_index("negatives", negatives, w_out.shape[0], "w_out")


@torch.library.custom_op("fastrepr::negative_sampling", mutates_args=())
def negative_sampling(w_in: torch.Tensor, w_out: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                      negatives: torch.Tensor, mask: Optional[torch.Tensor], sparse: bool) -> torch.Tensor:
    """Per-example loss [B] (float32; float64 for float64 tables). ``sparse`` only selects the gradient layout."""
    _check_indices(w_in, w_out, inputs, targets, negatives)
    loss = dispatch(OP, IMPLS, w_in, w_out, inputs, targets, negatives, mask)
    reads = lambda: {"w_in": (w_in, inputs if mask is None else inputs[mask.bool()]),  # noqa: E731
                     "w_out": (w_out, torch.cat([targets.unsqueeze(1), negatives], 1))}
    return check_loss(loss, reads, "the scores h·w_out (or their loss)")


@torch.library.custom_op("fastrepr::negative_sampling_backward", mutates_args=())
def negative_sampling_backward(grad: torch.Tensor, w_in: torch.Tensor, w_out: torch.Tensor, inputs: torch.Tensor,
                               targets: torch.Tensor, negatives: torch.Tensor, mask: Optional[torch.Tensor],
                               sparse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(d_in, d_out) in the tables' dtype: dense [V_in, D] and [V_out, D], or sparse rows [B, C, D] and
    [B, 1 + K, D] (one per index of inputs and of (targets, negatives))."""
    d_in, d_out = dispatch("negative_sampling_backward", BACKWARD_IMPLS, grad, w_in, w_out, inputs, targets,
                           negatives, mask, sparse)
    return d_in.to(w_in.dtype), d_out.to(w_out.dtype)


@negative_sampling.register_fake
def _(w_in, w_out, inputs, targets, negatives, mask, sparse):
    return w_in.new_empty(inputs.shape[0], dtype=acc_dtype(w_in.dtype))


@negative_sampling_backward.register_fake
def _(grad, w_in, w_out, inputs, targets, negatives, mask, sparse):
    if sparse:
        B, C = inputs.shape
        return (w_in.new_empty(B, C, w_in.shape[1]), w_out.new_empty(B, negatives.shape[1] + 1, w_out.shape[1]))
    return w_in.new_empty(w_in.shape), w_out.new_empty(w_out.shape)


def _setup(ctx, inputs, output):
    w_in, w_out, idx, targets, negatives, mask, sparse = inputs
    ctx.save_for_backward(w_in, w_out, idx, targets, negatives, mask)
    ctx.sparse = sparse


def _backward(ctx, grad):
    w_in, w_out, inputs, targets, negatives, mask = ctx.saved_tensors
    d_in, d_out = negative_sampling_backward(grad, w_in, w_out, inputs, targets, negatives, mask, ctx.sparse)
    if ctx.sparse:
        rows = torch.cat([targets.unsqueeze(1), negatives], 1)
        d_in = torch.sparse_coo_tensor(inputs.reshape(1, -1), d_in.reshape(-1, w_in.shape[1]), w_in.shape,
                                       check_invariants=False)
        d_out = torch.sparse_coo_tensor(rows.reshape(1, -1), d_out.reshape(-1, w_out.shape[1]), w_out.shape,
                                        check_invariants=False)
    return d_in, d_out, None, None, None, None, None


negative_sampling.register_autograd(_backward, setup_context=_setup)


def negative_sampling_step_(w_in: torch.Tensor, w_out: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                            negatives: torch.Tensor, mask: Optional[torch.Tensor], lr: float,
                            mean_grad: bool = True) -> torch.Tensor:
    """One fused SGD step in place: w -= lr · d(sum_b loss_b)/dw, touching only the indexed rows; returns the
    per-example loss [B] before the step. Indices are trusted (the trainer generates them).

    Triton: one kernel, atomics into the tables as it goes (Hogwild). Native (float32/float64 contiguous
    tables): one C++ pass, example by example, threads racing on shared rows (Hogwild; deterministic with one
    thread). Torch: the backward's sparse rows, then index_add_ (one minibatch step from the values before it).
    mean_grad=False adds the error of h to every context row undivided (word2vec's CBOW update) instead of the
    gradient of the mean.
    """
    return dispatch("negative_sampling_step", STEP_IMPLS, w_in, w_out, inputs, targets, negatives, mask, lr,
                    mean_grad)
