"""Hierarchical-softmax loss of word2vec over a Huffman tree (Morin & Bengio 2005; Mikolov et al. 2013).

For example b with hidden vector h_b and target word t = t_b, whose root-to-leaf path has inner-node rows
p_j = points[t, j] and branch bits c_j = codes[t, j] for j < len[t]:

    s_bj   = h_b · w_nodes[p_j]
    loss_b = -sum_j log sigmoid((1 - 2 c_j) s_bj)       (= -log P(t | h_b), a product of binary decisions)

With label y_j = 1 - c_j, d loss_b / d s_bj = sigmoid(s_bj) - y_j; with upstream gradient g_b and
e_bj = g_b (sigmoid(s_bj) - y_j):   d h_b = sum_j e_bj w_nodes[p_j],   d w_nodes[p_j] += e_bj h_b.

Work and memory are O(B · L · D) for paths of length L ≈ log2 V, against O(B · V · D) for a full softmax. The
gradient of w_nodes is dense (scatter-add into the touched rows; Triton uses atomics, native one thread per
row) or sparse (one row per path position, a sparse COO tensor). h always gets a dense [B, D] gradient.

One Triton kernel serves the four launches of ``ops/_logsigmoid.py`` (named constexpr flags HAS_GRAD, SPARSE,
STEP): forward, backward (dense or sparse), and a fused SGD step on w_nodes that also returns -lr · d loss / d h
(the trainer adds it to the input rows).

Implementations (``IMPLS``, ``BACKWARD_IMPLS``, ``STEP_IMPLS``; one name per layer):
``hierarchical_softmax_triton`` / ``_native`` / ``_torch`` (the torch entries are the closed forms above, not
the oracle in fastrepr.reference) -> ``torch.ops.fastrepr.hierarchical_softmax`` ->
``functional.hierarchical_softmax_loss``; likewise ``hierarchical_softmax_backward_*`` ->
``torch.ops.fastrepr.hierarchical_softmax_backward``, and ``hierarchical_softmax_step_*`` ->
``hierarchical_softmax_step_`` (the trainer's fused step).
"""
from __future__ import annotations

import torch

from .. import _native
from .._backend import Impls, declare, dispatch
from .._triton import CompileCase, tl, triton
from ._logsigmoid import (BACKWARD_DENSE, BACKWARD_SPARSE, FORWARD, SGD_STEP, acc_constexpr, check_index, check_loss,
                          compile_launches, log_sigmoid, row_tiles, unit_columns)
from ._precision import acc_dtype

OP = "hierarchical_softmax"


@triton.jit
def _hierarchical_softmax_kernel(
    # pointers
    h_ptr, w_ptr, dst_h_ptr, dst_w_ptr, targets_ptr, points_ptr, codes_ptr, lengths_ptr, grad_ptr, loss_ptr,
    # shapes
    B, L, D,
    # strides (rows; columns have unit stride)
    stride_h, stride_w, stride_dst_h, stride_dst_w,
    # constants
    lr, HAS_GRAD: tl.constexpr, SPARSE: tl.constexpr, STEP: tl.constexpr, ACC: tl.constexpr,
    BLOCK_B: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One program owns BLOCK_B examples and walks their paths together (shorter paths are masked).
    HAS_GRAD: also write d h and the node gradients, scaled by grad_ptr (STEP: by -lr · grad_ptr's per-example
    weights, into w_nodes itself); SPARSE: one node-gradient row per path position instead of atomics."""
    offs_b = (tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D)
    mask_b = offs_b < B
    tile = mask_b[:, None] & (offs_d < D)[None, :]
    t = tl.load(targets_ptr + offs_b, mask=mask_b, other=0)
    length = tl.load(lengths_ptr + t, mask=mask_b, other=0)
    h = tl.load(h_ptr + offs_b[:, None] * stride_h + offs_d[None, :], mask=tile, other=0.0).to(ACC)
    if STEP:  # fused step: grad_ptr holds per-example weights
        g = -lr * tl.load(grad_ptr + offs_b, mask=mask_b, other=0.0).to(ACC)
    elif HAS_GRAD:
        g = tl.load(grad_ptr + offs_b, mask=mask_b, other=0.0).to(ACC)
    else:
        g = tl.zeros([BLOCK_B], dtype=ACC)
    loss = tl.zeros([BLOCK_B], dtype=ACC)
    finite = mask_b | True  # every score on the path finite so far (NaN loss otherwise, as the other backends)
    dh = tl.zeros([BLOCK_B, BLOCK_D], dtype=ACC)
    for j in range(0, L):
        on = mask_b & (j < length)
        p = tl.load(points_ptr + t * L + j, mask=on, other=0)
        c = tl.load(codes_ptr + t * L + j, mask=on, other=0).to(ACC)
        w = tl.load(w_ptr + p[:, None] * stride_w + offs_d[None, :], mask=tile & on[:, None], other=0.0).to(ACC)
        s = tl.sum(h * w, axis=1)
        y = 1.0 - c
        loss -= tl.where(on, log_sigmoid((2.0 * y - 1.0) * s), 0.0)
        finite = finite & ((tl.abs(s) < float("inf")) | ~on)
        if HAS_GRAD:
            e = tl.where(on, g * (tl.sigmoid(s) - y), 0.0)
            dh += e[:, None] * w
            if SPARSE:
                rows = offs_b * L + j
                tl.store(dst_w_ptr + rows[:, None] * stride_dst_w + offs_d[None, :], e[:, None] * h, mask=tile)
            else:
                tl.atomic_add(dst_w_ptr + p[:, None] * stride_dst_w + offs_d[None, :], e[:, None] * h,
                              mask=tile & on[:, None], sem="relaxed")
    tl.store(loss_ptr + offs_b, tl.where(finite, loss, float("nan")), mask=mask_b)
    if HAS_GRAD:
        tl.store(dst_h_ptr + offs_b[:, None] * stride_dst_h + offs_d[None, :], dh, mask=tile)


def _launch(flags, h, w_nodes, targets, points, codes, lengths, grad=None, dst_h=None, dst_w=None, lr=0.0):
    """Run the kernel in one launch of _logsigmoid (``flags``); returns the per-example loss [B]."""
    B, D = h.shape
    L = points.shape[1]
    loss = torch.empty(B, dtype=acc_dtype(h.dtype), device=h.device)
    BLOCK_B, BLOCK_D = row_tiles(D)
    dst_h = h if dst_h is None else dst_h
    dst_w = w_nodes if dst_w is None else dst_w
    _hierarchical_softmax_kernel[(triton.cdiv(B, BLOCK_B),)](
        h, w_nodes, dst_h, dst_w, targets, points, codes, lengths, grad if grad is not None else loss, loss,
        B, L, D,
        h.stride(0), w_nodes.stride(0), dst_h.stride(0), dst_w.stride(0),
        float(lr), ACC=acc_constexpr(h.dtype), BLOCK_B=BLOCK_B, BLOCK_D=BLOCK_D, num_warps=4, **flags,
    )
    return loss


def compile_cases():
    """How _launch calls the kernel on a GPU: _logsigmoid.compile_launches (h and w_nodes share a dtype, as the
    op requires) with each launch's destinations (d_h in the accumulation dtype; d_nodes too, or w_nodes itself
    for the step; the forward passes the inputs unwritten), at B = 16384 and paths of up to L = 20 nodes."""
    i64 = torch.int64
    for dt, acc, D, flags in compile_launches():
        dst_h, dst_w = (acc, dt) if flags["STEP"] else (acc, acc) if flags["HAS_GRAD"] else (dt, dt)
        yield CompileCase(_hierarchical_softmax_kernel, dict(
            h_ptr=dt, w_ptr=dt, dst_h_ptr=dst_h, dst_w_ptr=dst_w, targets_ptr=i64, points_ptr=i64,
            codes_ptr=torch.uint8, lengths_ptr=i64, grad_ptr=acc, loss_ptr=acc, B=16384, L=20, D=D, stride_h=D,
            stride_w=D, stride_dst_h=D, stride_dst_w=D, lr=0.025), flags, num_warps=4)


# ------------------------------------------------------------------------------------------- triton entries

def hierarchical_softmax_triton(h, w_nodes, targets, points, codes, lengths) -> torch.Tensor:
    """Per-example loss [B] in float32 (float64 for float64 input)."""
    return _launch(FORWARD, unit_columns(h), unit_columns(w_nodes), targets, points, codes, lengths)


def hierarchical_softmax_backward_triton(grad, h, w_nodes, targets, points, codes, lengths, sparse=False):
    """(d_h [B, D], d_nodes dense [N, D] (atomics) or sparse rows [B, L, D]) in the accumulation dtype."""
    h, w_nodes = unit_columns(h), unit_columns(w_nodes)
    B, D = h.shape
    acc = acc_dtype(h.dtype)
    d_h = torch.empty(B, D, dtype=acc, device=h.device)
    d_w = (torch.empty(B, points.shape[1], D, dtype=acc, device=h.device) if sparse
           else torch.zeros(w_nodes.shape[0], D, dtype=acc, device=h.device))
    _launch(BACKWARD_SPARSE if sparse else BACKWARD_DENSE, h, w_nodes, targets, points, codes, lengths,
            grad=grad.to(acc).contiguous(), dst_h=d_h, dst_w=d_w.view(-1, D))
    return d_h, d_w


def hierarchical_softmax_step_triton(h, w_nodes, targets, points, codes, lengths, lr, weight):
    """One kernel, atomics into w_nodes as it goes (Hogwild); (loss [B], delta_h [B, D])."""
    delta_h = torch.empty(h.shape, dtype=acc_dtype(h.dtype), device=h.device)
    loss = _launch(SGD_STEP, unit_columns(h), w_nodes, targets, points, codes, lengths, grad=weight, dst_h=delta_h,
                   lr=lr)
    return loss, delta_h


# ------------------------------------------------------------------------------------------- native entries

def hierarchical_softmax_native(h, w_nodes, targets, points, codes, lengths):
    """Per-example loss [B] from csrc."""
    loss = torch.empty(h.shape[0], dtype=acc_dtype(h.dtype))
    _native.get().hierarchical_softmax_forward(
        _native.as_buffer(h), _native.as_buffer(w_nodes), _native.as_buffer(targets), _native.as_buffer(points),
        _native.as_buffer(codes), _native.as_buffer(lengths), loss.numpy(), _native.dtype_name(h.dtype),
        torch.get_num_threads())
    return loss


def hierarchical_softmax_backward_native(grad, h, w_nodes, targets, points, codes, lengths, sparse=False):
    """(d_h, d_nodes) as the triton entry's; dense d_nodes written one thread per row (deterministic)."""
    acc = acc_dtype(h.dtype)
    B, D = h.shape
    d_h = torch.empty(B, D, dtype=acc)
    d_w = torch.empty(B, points.shape[1], D, dtype=acc) if sparse else torch.zeros(w_nodes.shape[0], D, dtype=acc)
    _native.get().hierarchical_softmax_backward(
        _native.as_buffer(h), _native.as_buffer(w_nodes), _native.as_buffer(targets), _native.as_buffer(points),
        _native.as_buffer(codes), _native.as_buffer(lengths), grad.to(acc).contiguous().numpy(), d_h.numpy(),
        d_w.numpy(), sparse, _native.dtype_name(h.dtype), torch.get_num_threads())
    return d_h, d_w


def _minibatch_step(forward, backward, h, w_nodes, targets, points, codes, lengths, lr, weight):
    """One SGD step from the values before it (no fused C++ step): forward, sparse backward, index_add_."""
    loss = forward(h, w_nodes, targets, points, codes, lengths)
    d_h, rows = backward(weight, h, w_nodes, targets, points, codes, lengths, True)
    w_nodes.index_add_(0, points[targets].reshape(-1), rows.reshape(-1, h.shape[1]).to(w_nodes.dtype), alpha=-lr)
    return loss, d_h * -lr


def hierarchical_softmax_step_native(h, w_nodes, targets, points, codes, lengths, lr, weight):
    """The native forward and sparse backward, then one index_add_ into w_nodes."""
    return _minibatch_step(hierarchical_softmax_native, hierarchical_softmax_backward_native, h, w_nodes, targets,
                           points, codes, lengths, lr, weight)


# ------------------------------------------------------------------------------------------- torch entries

def _path_scores(h, w_nodes, targets, points, codes, lengths):
    """(on [B, L] positions on the path, y [B, L] labels 1 - code, p [B, L] node rows, w [B, L, D] their
    rows, s [B, L] scores), in the accumulation dtype; materializes the [B, L, D] gather."""
    acc = acc_dtype(h.dtype)
    p, y = points[targets], 1 - codes[targets].to(acc)
    on = torch.arange(points.shape[1], device=h.device) < lengths[targets].unsqueeze(1)
    w = w_nodes.to(acc)[p]
    return on, y, p, w, torch.einsum("bjd,bd->bj", w, h.to(acc))


def hierarchical_softmax_torch(h, w_nodes, targets, points, codes, lengths):
    """Per-example loss [B] in plain PyTorch (positions past a path's end never enter the loss)."""
    on, y, _, _, s = _path_scores(h, w_nodes, targets, points, codes, lengths)
    loss = -torch.where(on, torch.nn.functional.logsigmoid((2 * y - 1) * s), 0).sum(1)
    return torch.where((torch.isfinite(s) | ~on).all(1), loss, float("nan"))


def hierarchical_softmax_backward_torch(grad, h, w_nodes, targets, points, codes, lengths, sparse=False):
    """(d_h, d_nodes) from the closed form of the module docstring (index_add_ for dense d_nodes)."""
    on, y, p, w, s = _path_scores(h, w_nodes, targets, points, codes, lengths)
    e = grad.to(s.dtype).unsqueeze(1) * (torch.sigmoid(s) - y) * on.to(s.dtype)
    d_h = torch.einsum("bj,bjd->bd", e, w)
    rows = e.unsqueeze(-1) * h.to(s.dtype).unsqueeze(1)                    # [B, L, D]
    if sparse:
        return d_h, rows
    D = h.shape[1]
    d_w = torch.zeros(w_nodes.shape[0], D, dtype=s.dtype, device=h.device)
    return d_h, d_w.index_add_(0, p.reshape(-1), rows.reshape(-1, D))


def hierarchical_softmax_step_torch(h, w_nodes, targets, points, codes, lengths, lr, weight):
    """The torch forward and sparse backward, then one index_add_ into w_nodes."""
    return _minibatch_step(hierarchical_softmax_torch, hierarchical_softmax_backward_torch, h, w_nodes, targets,
                           points, codes, lengths, lr, weight)


IMPLS = declare(OP, Impls(triton=hierarchical_softmax_triton, native=hierarchical_softmax_native,
                          torch=hierarchical_softmax_torch))
BACKWARD_IMPLS = declare("hierarchical_softmax_backward", Impls(
    triton=hierarchical_softmax_backward_triton, native=hierarchical_softmax_backward_native,
    torch=hierarchical_softmax_backward_torch))
STEP_IMPLS = declare("hierarchical_softmax_step", Impls(
    triton=hierarchical_softmax_step_triton, native=hierarchical_softmax_step_native,
    torch=hierarchical_softmax_step_torch))


# ------------------------------------------------------------------------------------------- custom ops

def check_paths(targets: torch.Tensor, points: torch.Tensor, codes: torch.Tensor, lengths: torch.Tensor,
                num_nodes: int) -> torch.Tensor:
    """ValueError unless the paths of these targets have lengths in [0, L], name rows of w_nodes and have codes
    0 or 1 (the backends read other bytes differently: native as 1, the others as 1 - 2c). Returns the used
    points (O(B·L), a few host syncs)."""
    check_index("targets", targets, points.shape[0], "the tree (its words)")
    L = points.shape[1]
    length = lengths[targets]
    lo, hi = (int(v) for v in torch.aminmax(length))
    if lo < 0 or hi > L:
        raise ValueError(f"tree lengths lie in [{lo}, {hi}], outside [0, {L}] (the width of points)")
    used = torch.arange(L, device=points.device) < length.unsqueeze(1)
    path_points = points[targets][used]
    check_index("tree points", path_points, num_nodes, "w_nodes")
    path_codes = codes[targets][used]
    if path_codes.numel() and int(path_codes.max()) > 1:
        raise ValueError(f"tree codes must be 0 or 1 on the paths in use, got {int(path_codes.max())}")
    return path_points


@torch.library.custom_op("fastrepr::hierarchical_softmax", mutates_args=())
def hierarchical_softmax(h: torch.Tensor, w_nodes: torch.Tensor, targets: torch.Tensor, points: torch.Tensor,
                         codes: torch.Tensor, lengths: torch.Tensor, sparse: bool) -> torch.Tensor:
    """Per-example loss [B] (float32; float64 for float64 input). ``sparse`` only selects the gradient layout."""
    path_points = check_paths(targets, points, codes, lengths, w_nodes.shape[0])
    loss = dispatch(OP, IMPLS, h, w_nodes, targets, points, codes, lengths)
    reads = lambda: {"h": (h, torch.arange(h.shape[0], device=h.device)), "w_nodes": (w_nodes, path_points)}  # noqa: E731
    return check_loss(loss, reads, "the scores h·w_nodes (or their loss)")


@torch.library.custom_op("fastrepr::hierarchical_softmax_backward", mutates_args=())
def hierarchical_softmax_backward(grad: torch.Tensor, h: torch.Tensor, w_nodes: torch.Tensor, targets: torch.Tensor,
                                  points: torch.Tensor, codes: torch.Tensor, lengths: torch.Tensor,
                                  sparse: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(d_h [B, D], d_nodes: dense [N, D] or sparse rows [B, L, D]) in the inputs' dtypes."""
    d_h, d_w = dispatch("hierarchical_softmax_backward", BACKWARD_IMPLS, grad, h, w_nodes, targets, points, codes,
                        lengths, sparse)
    return d_h.to(h.dtype), d_w.to(w_nodes.dtype)


@hierarchical_softmax.register_fake
def _(h, w_nodes, targets, points, codes, lengths, sparse):
    return h.new_empty(h.shape[0], dtype=acc_dtype(h.dtype))


@hierarchical_softmax_backward.register_fake
def _(grad, h, w_nodes, targets, points, codes, lengths, sparse):
    if sparse:
        return h.new_empty(h.shape), w_nodes.new_empty(h.shape[0], points.shape[1], w_nodes.shape[1])
    return h.new_empty(h.shape), w_nodes.new_empty(w_nodes.shape)


def _setup(ctx, inputs, output):
    h, w_nodes, targets, points, codes, lengths, sparse = inputs
    ctx.save_for_backward(h, w_nodes, targets, points, codes, lengths)
    ctx.sparse = sparse


def _backward(ctx, grad):
    h, w_nodes, targets, points, codes, lengths = ctx.saved_tensors
    d_h, d_w = hierarchical_softmax_backward(grad, h, w_nodes, targets, points, codes, lengths, ctx.sparse)
    if ctx.sparse:
        idx = points[targets].reshape(1, -1)  # padding positions carry zero rows at index 0
        d_w = torch.sparse_coo_tensor(idx, d_w.reshape(-1, w_nodes.shape[1]), w_nodes.shape, check_invariants=False)
    return d_h, d_w, None, None, None, None, None


hierarchical_softmax.register_autograd(_backward, setup_context=_setup)


def hierarchical_softmax_step_(h: torch.Tensor, w_nodes: torch.Tensor, targets: torch.Tensor, points: torch.Tensor,
                               codes: torch.Tensor, lengths: torch.Tensor, lr: float,
                               weight: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fused SGD step on w_nodes in place (touching only path rows) for the loss sum_b weight_b · loss_b
    (weight [B], default 1; 0 skips an example); returns (loss [B] before the step, unweighted; delta_h =
    -lr · d/dh [B, D]). Triton: atomics as it goes (Hogwild); other implementations: one minibatch step from the
    values before it. Indices are trusted."""
    acc = acc_dtype(h.dtype)
    weight = torch.ones(h.shape[0], dtype=acc, device=h.device) if weight is None else weight.to(acc).contiguous()
    return dispatch("hierarchical_softmax_step", STEP_IMPLS, h, w_nodes, targets, points, codes, lengths, lr, weight)
