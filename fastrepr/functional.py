"""Functional API: validate arguments at the edge, then call the registered op (torch.ops.fastrepr.*).

Each op picks its implementation per call (``fastrepr._backend.dispatch`` over the op's declared ``IMPLS``):
Triton for CUDA tensors, the native C++ extension for CPU tensors, the op's plain-PyTorch implementation
otherwise; ``FASTREPR_BACKEND`` forces one.
"""
from __future__ import annotations

import torch

from . import _checks
from .ops._precision import acc_dtype
from .ops import contrastive as _contrastive
from .ops import mutual_info as _mutual_info
from .ops import pairwise as _pairwise


def pairwise_abs_diff_mean(z1: torch.Tensor, z2: torch.Tensor | None = None, *, i: torch.Tensor | None = None,
                           j: torch.Tensor | None = None) -> torch.Tensor:
    """Batched pairwise latent differences: mean over B pairs of |difference|, per point and latent.

    Dense form, ``pairwise_abs_diff_mean(z1, z2)``:
        z1, z2: [P, B, D] floating tensors (P points, B pairs each, D latents) -> [P, D],
        ``out[p, d] = mean_b |z1[p, b, d] - z2[p, b, d]|``.
    Index form, ``pairwise_abs_diff_mean(z, i=i, j=j)``:
        z: [N, D]; i, j: [P, B] integer row indices into z -> [P, D],
        ``out[p, d] = mean_b |z[i[p, b], d] - z[j[p, b], d]|``.

    dtypes: float16, bfloat16, float32, float64. The result has the input dtype; sums accumulate in float32
    (float64 for float64 input).
    Memory: the [P, D] output only (plus an fp32 copy of it for 16-bit input on CPU); the index form never
    materializes the [P, B, D] gather. The backward pass (if z requires grad) needs O(P·B·D).
    Deterministic on every backend.

    Raises TypeError for non-floating z or non-integer indices, ValueError for mismatched shapes, empty
    inputs, tensors on different devices, indices outside [0, N), NaN/Inf in z1, z2 or z (naming it and the
    first entry), or a mean that overflows the dtype. On CUDA the NaN/Inf and overflow checks synchronize, so
    they run only under FASTREPR_CHECK=1; without it NaN/Inf propagate to the outputs they touch.
    """
    if i is None and j is None:
        if z2 is None:
            raise TypeError("pairwise_abs_diff_mean needs z2 (dense form) or i= and j= (index form)")
        _checks.floating(z1, "z1")
        _checks.floating(z2, "z2")
        _checks.ndim(z1, 3, "z1", "[P, B, D]")
        if z2.shape != z1.shape:
            raise ValueError(f"z1 and z2 must have the same shape [P, B, D], got {tuple(z1.shape)} and {tuple(z2.shape)}")
        _checks.same_dtype(z1=z1, z2=z2)
        _checks.same_device(z1=z1, z2=z2)
        _checks.nonempty(z1, "z1", "[P, B, D]")
        return _pairwise.pairwise_abs_diff_mean_dense(z1, z2)

    if z2 is not None:
        raise TypeError("pass either z2 (dense form) or i= and j= (index form), not both")
    if i is None or j is None:
        raise TypeError("the index form needs both i= and j=")
    z = _checks.floating(z1, "z")
    _checks.integer(i, "i")
    _checks.integer(j, "j")
    _checks.ndim(z, 2, "z", "[N, D]")
    _checks.ndim(i, 2, "i", "[P, B]")
    if j.shape != i.shape:
        raise ValueError(f"i and j must have the same shape [P, B], got {tuple(i.shape)} and {tuple(j.shape)}")
    _checks.same_device(z=z, i=i, j=j)
    _checks.nonempty(z, "z", "[N, D]")
    _checks.nonempty(i, "i", "[P, B]")
    return _pairwise.pairwise_abs_diff_mean_index(z, i.long(), j.long())


# ------------------------------------------------------------------------------------ contrastive losses

_REDUCTIONS = ("mean", "sum", "none")


def _temperature(temperature, dtype: torch.dtype, columns: int, normalize: bool) -> None:
    """The temperature as the compute dtype (float32, or float64 for float64 embeddings) stores it, with scores
    summed over ``columns`` when normalized (see _checks.temperature; a tensor's value is checked in the op)."""
    _checks.temperature(temperature, acc_dtype(dtype), columns if normalize else 1)


def _reduction(reduction: str) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return reduction


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """The one reduction of per-example losses: "mean", "sum" or "none" (the losses as they are)."""
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def _check_embeddings(name: str, x, min_rows: int = 2) -> torch.Tensor:
    _checks.floating(x, name)
    _checks.ndim(x, 2, name, "[N, D]")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has D=0 features")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} has N={x.shape[0]} rows; contrastive losses need N >= {min_rows} "
                         "(with one sample there are no negatives)")
    return x


def _check_pair(a_name: str, a, b_name: str, b) -> None:
    _check_embeddings(a_name, a)
    _check_embeddings(b_name, b)
    if a.shape != b.shape:
        raise ValueError(f"{a_name} and {b_name} must have the same shape [N, D], got {tuple(a.shape)} and {tuple(b.shape)}")
    _checks.same_dtype(**{a_name: a, b_name: b})
    _checks.same_device(**{a_name: a, b_name: b})


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature=0.1, reduction: str = "mean", normalize: bool = True,
            gather_distributed=False, tau_plus: float = 0.0, beta: float = 0.0) -> torch.Tensor:
    """NT-Xent, the SimCLR loss (Chen et al. 2020), fused.

    z1, z2: [N, D] embeddings of two views (float16/bfloat16/float32/float64, same dtype and device).
    Anchor i of the 2N anchors [z1; z2] has its other view as positive and the other 2N-2 embeddings as
    negatives: loss_i = -log softmax_{k != i}(s_i)[pos(i)], s = ẑ ẑᵀ / temperature, ẑ = z / ||z|| when
    normalize. reduction: "mean" (over the 2N anchors), "sum", or "none" ([2N] losses, z1's anchors first).
    temperature: float > 0, or a 0-dim tensor (may require grad: its gradient is computed by the kernel).
    Returns float32 (float64 for float64 input). ẑ is exact at any scale (nt_xent(c·z1, c·z2) = nt_xent(z1, z2)
    for c > 0: no overflow at 1e20, no eps clamp at 1e-20); a zero row stays zero, as F.normalize.

    Raises ValueError for NaN/Inf in z1 or z2 (naming it and the row), for a temperature that is not > 0 and
    finite in the compute dtype or so small that the sums of scores (up to 2N/τ) overflow it (1e-40 in
    float32), and with normalize=False for embeddings whose scores |z_a·z_b|/τ could overflow. On CUDA these
    data checks need a host sync and run only under FASTREPR_CHECK=1 (a float temperature is always checked);
    without it such input gives a NaN loss.

    Memory: O(N·D) — the normalized inputs and O(N) row statistics; never the 2N x 2N similarity matrix
    (CPU: row chunks of ~2 MB). Deterministic (no atomics).

    gather_distributed: with torch.distributed initialized and W > 1 ranks, negatives come from every rank
    (an all_gather that carries gradients); each rank's loss is the mean over its own 2N anchors. Then the
    gradient on each rank w.r.t. its own z1, z2 equals W times the gradient of the single-process loss over
    the rank-major concatenated batch, so DDP's averaging of parameter gradients over W ranks reproduces
    single-process training exactly. Every rank must pass the same N.
    gather_distributed="ring": the same loss and gradients without the all_gather: the other ranks' [z1; z2]
    blocks travel around the ring (batch_isend_irecv; Inf-CL, Cheng et al. 2024) and their gradients travel back
    (fastrepr/ops/_contrastive_ring.py). Per-rank memory O(N·D) plus one block, independent of W (the all-gather
    holds the 2WN gathered rows and their gradient); W - 1 block exchanges each way. Shapes, dtypes and NaN/Inf are
    checked on every rank together first, so that bad input on one rank raises on all of them.

    tau_plus, beta: debiased (Chuang et al. 2020; τ⁺ in [0, 1), the probability that a negative shares the
    anchor's class) and hard-negative (Robinson et al. 2021; β >= 0, the concentration on hard negatives)
    NT-Xent, as the HCL repository's code computes them (its paper's pseudo-code differs, a typo by the
    authors' account; equations in fastrepr/ops/dcl.py). 0, 0 is plain NT-Xent. Streamed, at 1.5x (β = 0) or
    3x (β > 0) NT-Xent's work; not with gather_distributed.
    """
    _check_pair("z1", z1, "z2", z2)
    _temperature(temperature, z1.dtype, 2 * z1.shape[0], normalize)
    _reduction(reduction)
    _gather_arg(gather_distributed)
    tau_plus, beta = _checks.float_arg(tau_plus, "tau_plus"), _checks.float_arg(beta, "beta")
    if tau_plus or beta:
        from .ops import dcl as _dcl

        _debias_args(tau_plus, beta, gather_distributed)
        return _reduce(_dcl.debiased_nt_xent(z1, z2, temperature, normalize, tau_plus, beta), reduction)
    return _reduce(_contrastive.nt_xent(z1, z2, temperature, normalize, gather_distributed), reduction)


def info_nce(q: torch.Tensor, k: torch.Tensor, temperature=0.07, symmetric: bool = True, normalize: bool = True,
             gather_distributed=False, queue: torch.Tensor | None = None, tau_plus: float = 0.0,
             beta: float = 0.0) -> torch.Tensor:
    """CLIP-style InfoNCE (Radford et al. 2021), fused: row i of q is matched with row i of k against the
    other rows of k (cross-modal negatives only); symmetric=True averages with the k -> q direction.

    q, k: [N, D], same dtype and device. temperature: float or 0-dim tensor (learnable, like CLIP's logit
    scale = 1 / temperature). Returns a float32 scalar (float64 for float64 input). Memory O(N·D).
    Normalization, NaN/Inf, temperature and overflow checks as in nt_xent (naming q or k).
    gather_distributed: negatives from every rank (as open_clip's gather_with_grad with local loss); the
    gradient scaling is that of nt_xent (W times the single-process gradient). "ring": as in nt_xent, the k
    blocks travel around the ring (and, symmetric, the q blocks in a second ring for the k -> q direction).
    queue: [K, D] negatives (MoCo, He et al. 2020; lightly's memory bank), same dtype and device as q: then
    loss_i = -log(e^{l_i} / (e^{l_i} + sum_j e^{q̂_i·Q̂_j/τ})), l_i = q̂_i·k̂_i/τ, the mean over i: MoCo's logits
    [l_pos, l_neg], the other rows of k are not negatives. Needs symmetric=False. The queue gets no gradient
    and is streamed in tiles by the op fastrepr.ops.queue_lse, never turned into the N x K logits or copied:
    extra memory O(N·D) at any K, and the backward is O(N·D) (no second pass over the queue). Its rows are
    normalized like q's (a zero row stays zero).
    tau_plus, beta: debiased / hard-negative weighting as in nt_xent (the N - 1 other rows of k are row i's
    negatives); not with queue or gather_distributed.
    """
    _check_pair("q", q, "k", k)
    if _gather_arg(gather_distributed) == "ring" and queue is not None:
        raise ValueError("queue= does not support gather_distributed='ring' (the queue is not sharded by rank)")
    tau_plus, beta = _checks.float_arg(tau_plus, "tau_plus"), _checks.float_arg(beta, "beta")
    if tau_plus or beta:
        from .ops import dcl as _dcl

        _debias_args(tau_plus, beta, gather_distributed or queue is not None)
        _temperature(temperature, q.dtype, q.shape[0], normalize)
        return _dcl.debiased_info_nce(q, k, temperature, symmetric, normalize, tau_plus, beta)
    if queue is not None:
        _checks.floating(queue, "queue")
        _checks.ndim(queue, 2, "queue", "[K, D]")
        _checks.nonempty(queue, "queue", "[K, D]")
        if queue.shape[1] != q.shape[1]:
            raise ValueError(f"queue must have D={q.shape[1]} features like q, got {tuple(queue.shape)}")
        _checks.same_dtype(q=q, queue=queue)
        _checks.same_device(q=q, queue=queue)
        if symmetric:
            raise ValueError("queue= needs symmetric=False (MoCo's loss has no k -> q direction)")
        if _checks.data_checks(k):
            _checks.finite(k, "k")  # q and the queue are checked in the op
        _temperature(temperature, q.dtype, queue.shape[0] + 1, normalize)
        from .ops import dcl as _dcl

        return _dcl.info_nce_queue(q, k, temperature, normalize, queue)
    _temperature(temperature, q.dtype, q.shape[0], normalize)
    return _contrastive.info_nce(q, k, temperature, symmetric, normalize, gather_distributed)


def sup_con(z: torch.Tensor, labels: torch.Tensor, temperature=0.1, normalize: bool = True,
            gather_distributed=False) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the L_out form), fused.

    z: [N, D] (or [N, V, D]: V views per sample, sharing the sample's label); labels: [N] integers.
    For anchor a, the positives P(a) are the other samples with its label, the candidates all samples but
    a: loss_a = -1/|P(a)| sum_{p in P(a)} log softmax_{k != a}(s_a)[p]. The result is the mean over anchors
    that have at least one positive (0, still differentiable, if none has), as pytorch-metric-learning's
    SupConLoss. Returns a float32 scalar (float64 for float64 input). Memory O(N·D).
    Normalization, NaN/Inf, temperature and overflow checks as in nt_xent (naming z).
    gather_distributed: candidates and positives from every rank; each rank's loss is the mean over its own
    anchors that have a positive, and its gradient is that of the sum of all ranks' losses (the anchor counts
    differ by rank, so unlike nt_xent this is not a fixed multiple of the single-process gradient).
    "ring": the same loss and gradients, each rank's z block travelling around the ring with its labels (as in
    nt_xent: per-rank memory O(N·D) plus one block, independent of W).
    """
    _gather_arg(gather_distributed)
    _checks.tensor(z, "z")
    _checks.integer(labels, "labels")
    if z.dim() == 3:
        labels = labels.repeat_interleave(z.shape[1]) if labels.dim() == 1 and labels.shape[0] == z.shape[0] else labels
        z = z.reshape(-1, z.shape[-1])
    _check_embeddings("z", z)
    _checks.ndim(labels, 1, "labels", "[N]")
    if labels.shape[0] != z.shape[0]:
        raise ValueError(f"labels has {labels.shape[0]} entries for {z.shape[0]} embeddings")
    _checks.same_device(z=z, labels=labels)
    _temperature(temperature, z.dtype, z.shape[0], normalize)
    return _contrastive.sup_con(z, labels.long(), temperature, normalize, gather_distributed)
def histogram_mutual_info(codes: torch.Tensor, labels: torch.Tensor | None = None, num_bins: int = 20) -> torch.Tensor:
    """Mutual information (nats) between histogram-discretized codes and discrete labels, fused.

    codes: [N, D] floating (float16/bfloat16 are widened to float32; float32 and float64 are discretized in
    their own precision, as numpy would). Each column is cut into ``num_bins`` equal-width bins over its
    range, exactly as ``np.digitize(c, np.histogram(c, num_bins)[1][:-1])`` (disentanglement_lib's
    histogram discretizer). labels: [N, F] integer (any non-negative values; columns with large values are
    relabelled densely), or None for the MI between every pair of discretized code columns (F = D; the
    diagonal holds each column's discrete entropy).
    Returns [D, F] float64 on codes' device, ``out[d, f] = sklearn.metrics.mutual_info_score(y_f, bin_d)``.
    Memory: never materializes the [N, D] discretization on GPU (the native CPU kernel keeps O(N·D) int32
    bins); O(D·F) output plus one (num_bins + 1) x K count table per program or thread, limited to 2**24
    entries (K = distinct labels of a column, or num_bins + 1 without labels).
    Raises ValueError for NaN/Inf codes (always checked: the bin edges need a host sync anyway), a column
    whose range overflows its dtype, negative labels, mismatched N, num_bins outside [1, 1024], or a count
    table above the limit.
    """
    MAX_BINS, MAX_TABLE = _mutual_info.MAX_BINS, _mutual_info.MAX_TABLE
    _checks.floating(codes, "codes")
    _checks.ndim(codes, 2, "codes", "[N, D]")
    _checks.nonempty(codes, "codes", "[N, D]")
    if not isinstance(num_bins, int) or isinstance(num_bins, bool) or not 1 <= num_bins <= MAX_BINS:
        raise ValueError(f"num_bins must be an int in [1, {MAX_BINS}], got {num_bins!r}")
    if codes.dtype in (torch.float16, torch.bfloat16):
        codes = codes.float()
    _checks.finite(codes, "codes")
    num_labels = 0
    if labels is not None:
        _checks.integer(labels, "labels")
        _checks.ndim(labels, 2, "labels", "[N, F]")
        _checks.nonempty(labels, "labels", "[N, F]")
        _checks.same_device(codes=codes, labels=labels)
        if labels.shape[0] != codes.shape[0]:
            raise ValueError(f"labels must have N = {codes.shape[0]} rows like codes, got {tuple(labels.shape)}")
        labels = labels.long()
        lo, hi = (int(v) for v in torch.aminmax(labels))
        if lo < 0:
            raise ValueError(f"labels must be non-negative, got a minimum of {lo}")
        # keep count tables small: relabel each column densely when the values are sparse or the table big
        if hi >= max(1024, labels.shape[0]) or (num_bins + 1) * (hi + 1) > MAX_TABLE:
            labels = torch.stack([torch.unique(col, return_inverse=True)[1] for col in labels.T], 1)
            hi = int(labels.max())
        num_labels = hi + 1
        if (num_bins + 1) * num_labels > MAX_TABLE:
            raise ValueError(f"labels: a column has {num_labels} distinct values; with num_bins={num_bins} the "
                             f"(num_bins + 1) x {num_labels} count table exceeds {MAX_TABLE} entries (use fewer bins "
                             "or coarser labels)")
        labels = labels.contiguous()
    codes = codes.contiguous()
    return _mutual_info.histogram_mutual_info(codes, _mutual_info.histogram_edges(codes, num_bins), labels,
                                              num_labels)


# ---- word2vec losses ----------------------------------------------------------------------------------------

def _check_tables(reduction: str, **tables: torch.Tensor) -> None:
    _reduction(reduction)
    for name, t in tables.items():
        _checks.floating(t, name)
        _checks.ndim(t, 2, name, "[rows, D]")
        _checks.nonempty(t, name, "[rows, D]")
    _checks.same_dtype(**tables)


def _index(x, name: str, ndim: int, layout: str, rows: int | None = None) -> torch.Tensor:
    _checks.integer(x, name)
    _checks.ndim(x, ndim, name, layout)
    if rows is not None and x.shape[0] != rows:
        raise ValueError(f"{name} must have {rows} rows (one per example), got shape {tuple(x.shape)}")
    return x.long().contiguous()


def _negative_sampling_call(w_in, w_out, inputs, targets, negatives, mask, reduction, sparse):
    from .ops import negative_sampling as _ns

    if not isinstance(sparse, bool):
        raise TypeError(f"sparse must be a bool, got {type(sparse).__name__}")
    if w_in.shape[1] != w_out.shape[1]:
        raise ValueError(f"w_in and w_out must have the same width D, got {w_in.shape[1]} and {w_out.shape[1]}")
    _checks.same_device(w_in=w_in, w_out=w_out, inputs=inputs, targets=targets, negatives=negatives,
                        **({} if mask is None else {"mask": mask}))
    _checks.nonempty(inputs, "inputs" if inputs.shape[1] > 1 else "centers", "[B, ...] with B >= 1")
    return _reduce(_ns.negative_sampling(w_in, w_out, inputs, targets, negatives, mask, sparse), reduction)


def sgns_loss(w_in: torch.Tensor, w_out: torch.Tensor, centers: torch.Tensor, contexts: torch.Tensor,
              negatives: torch.Tensor, *, reduction: str = "mean", sparse: bool = False) -> torch.Tensor:
    """Skip-gram negative-sampling loss (Mikolov et al. 2013), fused gather -> dot -> log-sigmoid.

    loss_b = -log sigmoid(w_in[c_b]·w_out[o_b]) - sum_k log sigmoid(-w_in[c_b]·w_out[n_bk])

    w_in: [V_in, D] input (center) vectors; w_out: [V_out, D] output (context) vectors, same float dtype;
    centers, contexts: [B] integer rows; negatives: [B, K] integer rows of w_out (K >= 0).
    reduction: "mean" (default) | "sum" | "none" (per-pair [B]). Returns float32 (float64 for float64 tables).
    sparse=True makes the gradients of w_in/w_out sparse COO tensors holding only the touched rows (use with
    torch.optim.SGD or SparseAdam); dense gradients scatter-add into zero [V, D] tables.
    Memory: O(B·(K + 2)) besides the gradients; never materializes the [B, K + 1, D] gathers (the plain-PyTorch
    expression does). Triton accumulates dense gradients with atomics (order, hence last bits, may vary between
    runs); the native backend is deterministic.
    Raises ValueError for indices out of range, NaN/Inf in a row of w_in or w_out that the batch reads (naming
    the table and row), or a score or loss that overflows, on every backend: each makes an example's loss NaN
    when a score is not finite, and one O(B) check of the loss catches it (the [V, D] tables are never scanned).
    On CUDA that check synchronizes and runs only under FASTREPR_CHECK=1; without it the loss is NaN.
    """
    _check_tables(reduction, w_in=w_in, w_out=w_out)
    centers = _index(centers, "centers", 1, "[B]")
    contexts = _index(contexts, "contexts", 1, "[B]", centers.shape[0])
    negatives = _index(negatives, "negatives", 2, "[B, K]", centers.shape[0])
    return _negative_sampling_call(w_in, w_out, centers.unsqueeze(1), contexts, negatives, None, reduction, sparse)


def cbow_ns_loss(w_in: torch.Tensor, w_out: torch.Tensor, contexts: torch.Tensor, targets: torch.Tensor,
                 negatives: torch.Tensor, mask: torch.Tensor | None = None, *, reduction: str = "mean",
                 sparse: bool = False) -> torch.Tensor:
    """CBOW negative-sampling loss: the masked mean of the context rows predicts the target.

    h_b = mean over c with mask[b, c] of w_in[contexts[b, c]];
    loss_b = -log sigmoid(h_b·w_out[t_b]) - sum_k log sigmoid(-h_b·w_out[n_bk]).

    w_in: [V_in, D], w_out: [V_out, D]; contexts: [B, C] integer rows (masked-out entries must still be valid
    rows, e.g. 0); mask: [B, C] bool (None = all used; every row needs at least one True); targets: [B];
    negatives: [B, K]. reduction, sparse, dtypes and memory as in sgns_loss. The gradient is that of the mean
    (each context row gets 1/n_b of d h_b). NaN/Inf and overflow checks as in sgns_loss (masked-out rows are
    never read).
    """
    _check_tables(reduction, w_in=w_in, w_out=w_out)
    contexts = _index(contexts, "contexts", 2, "[B, C]")
    targets = _index(targets, "targets", 1, "[B]", contexts.shape[0])
    negatives = _index(negatives, "negatives", 2, "[B, K]", contexts.shape[0])
    if mask is not None:
        _checks.tensor(mask, "mask")
        if mask.shape != contexts.shape:
            raise ValueError(f"mask must have the shape of contexts {tuple(contexts.shape)}, got {tuple(mask.shape)}")
        mask = mask.bool().contiguous()
        if mask.numel() and not bool(mask.any(1).all()):
            raise ValueError("mask has a row with no context word; every example needs at least one")
    _checks.nonempty(contexts, "contexts", "[B, C] with B, C >= 1")
    return _negative_sampling_call(w_in, w_out, contexts, targets, negatives, mask, reduction, sparse)


def hierarchical_softmax_loss(h: torch.Tensor, w_nodes: torch.Tensor, targets: torch.Tensor, tree, *,
                              reduction: str = "mean", sparse: bool = False) -> torch.Tensor:
    """Hierarchical-softmax loss: -log P(target | h) along the target's Huffman path.

    loss_b = -sum_{j < len[t]} log sigmoid((1 - 2 codes[t, j]) · h_b·w_nodes[points[t, j]]),  t = targets[b]

    h: [B, D] hidden vectors (any float dtype); w_nodes: [N, D] inner-node vectors (N >= V - 1), same dtype;
    targets: [B] word ids; tree: a ``fastrepr.text.huffman.HuffmanTree`` (``build_huffman(counts)``) or a
    tuple (points [V, L] int, codes [V, L] 0/1, lengths [V] int) of tensors. The paths in use are checked on
    every call (O(B·L)).
    reduction as in sgns_loss. h gets a dense gradient; w_nodes a dense one, or with sparse=True a sparse COO
    tensor of the path rows. Memory: O(B·L) besides the gradients (L = longest code, about log2 V).
    Raises ValueError for codes other than 0/1, indices out of range, NaN/Inf in h or in a w_nodes row on a path
    in use, or a score or loss that overflows (checked through the [B] loss: every backend makes an example's
    loss NaN when a score is not finite; on CUDA only under FASTREPR_CHECK=1, else the loss is NaN).
    """
    from .ops import hierarchical_softmax as _hs
    from .text.huffman import HuffmanTree

    _check_tables(reduction, h=h, w_nodes=w_nodes)
    if h.shape[1] != w_nodes.shape[1]:
        raise ValueError(f"h and w_nodes must have the same width D, got {h.shape[1]} and {w_nodes.shape[1]}")
    if not isinstance(sparse, bool):
        raise TypeError(f"sparse must be a bool, got {type(sparse).__name__}")
    targets = _index(targets, "targets", 1, "[B]", h.shape[0])
    if isinstance(tree, HuffmanTree):
        if tree.num_nodes > w_nodes.shape[0]:
            raise ValueError(f"w_nodes has {w_nodes.shape[0]} rows but the tree has {tree.num_nodes} inner nodes")
        points, codes, lengths = tree.tensors(h.device)
    elif isinstance(tree, (tuple, list)) and len(tree) == 3:
        points = _index(tree[0], "tree points", 2, "[V, L]")
        codes = tree[1]
        if not (isinstance(codes, torch.Tensor) and codes.dtype == torch.bool):
            _checks.integer(codes, "tree codes")
        lengths = _index(tree[2], "tree lengths", 1, "[V]", points.shape[0])
        if codes.shape != points.shape:
            raise ValueError(f"tree codes must have the shape of points {tuple(points.shape)}, got {tuple(codes.shape)}")
        if codes.dtype not in (torch.bool, torch.uint8) and codes.numel():
            # the conversion to bytes must not wrap (-1 -> 255, 256 -> 0); uint8 codes are checked on the
            # paths in use by the op
            lo, hi = (int(v) for v in torch.aminmax(codes))
            if lo < 0 or hi > 1:
                raise ValueError(f"tree codes must be 0 or 1, got values in [{lo}, {hi}]")
        codes = codes.to(torch.uint8).contiguous()
        _checks.same_device(points=points, codes=codes, lengths=lengths)
    else:
        raise TypeError(f"tree must be a HuffmanTree or a tuple (points, codes, lengths), got {type(tree).__name__}")
    _checks.same_device(h=h, w_nodes=w_nodes, targets=targets, tree=points)
    return _reduce(_hs.hierarchical_softmax(h, w_nodes, targets, points, codes, lengths, sparse), reduction)


# ---- decoupled contrastive loss (issue 13) -------------------------------------------------------------------

def dcl_loss(z1: torch.Tensor, z2: torch.Tensor, temperature=0.1, sigma: float | None = None,
             reduction: str = "mean", normalize: bool = True) -> torch.Tensor:
    """Decoupled contrastive loss (Yeh et al. 2022), fused: NT-Xent without the positive in the denominator.

    z1, z2: [N, D] views (float16/bfloat16/float32/float64, same dtype and device), N >= 2. Anchor i of view 1:
    L_i = -w_i ŝ¹²_ii + log(sum_{j != i} exp ŝ¹¹_ij + sum_{j != i} exp ŝ¹²_ij), ŝ^{uv}_ij = ẑ^u_i·ẑ^v_j/τ, and
    view 2's anchors likewise; reduction over the 2N anchors ("mean", "sum", "none": [2N], z1's first).
    sigma: None gives DCL (w = 1, lightly's DCLLoss); a float > 0 gives DCLW, w = 2 - N softmax(ẑ¹_i·ẑ²_i/σ)
    (detached, lightly's DCLWLoss with negative_mises_fisher_weights). temperature: float > 0 or a 0-dim tensor
    (learnable). Returns float32 (float64 for float64 input). Same checks as nt_xent (naming z1 or z2).
    Memory O(N·D): three streamed passes of the contrastive kernels (fastrepr/ops/dcl.py), never N x N.
    """
    from .ops import dcl as _dcl

    _check_pair("z1", z1, "z2", z2)
    _temperature(temperature, z1.dtype, 2 * z1.shape[0], normalize)
    _reduction(reduction)
    if sigma is not None:
        sigma = _checks.float_arg(sigma, "sigma", positive=True)
    return _reduce(_dcl.dcl(z1, z2, temperature, normalize, sigma), reduction)


def _debias_args(tau_plus: float, beta: float, unsupported: bool) -> None:
    """tau_plus in [0, 1), beta >= 0 (finite: float_arg); unsupported: gather_distributed or a queue was passed."""
    if not 0 <= tau_plus < 1:
        raise ValueError(f"tau_plus must be in [0, 1), got {tau_plus}")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if unsupported:
        raise ValueError("tau_plus and beta do not support gather_distributed (True or 'ring') or queue= yet")


def _gather_arg(gather_distributed):
    """gather_distributed must be False, True or "ring"."""
    if gather_distributed not in (False, True, "ring"):
        raise ValueError(f"gather_distributed must be False, True or 'ring', got {gather_distributed!r}")
    return gather_distributed


# ------------------------------------------------------------------------------------ SigLIP (issue 13)
def _scalar_arg(value, name: str, like: torch.Tensor, positive: bool = False) -> None:
    """A float, or a 0-dim/1-element floating tensor on like's device; finite (> 0 with positive) when it can be
    read without a host sync."""
    if isinstance(value, torch.Tensor):
        _checks.floating(value, name)
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar (one element), got shape {tuple(value.shape)}")
        _checks.same_device(**{name: value, "x": like})
        if _checks.data_checks(value):
            _checks.float_arg(float(value.detach()), name, positive)
    else:
        _checks.float_arg(value, name, positive)


def siglip_loss(x: torch.Tensor, y: torch.Tensor, logit_scale=10.0, logit_bias=-10.0, normalize: bool = True,
                gather_distributed=False) -> torch.Tensor:
    """SigLIP's pairwise sigmoid loss (Zhai et al. 2023), streamed.

    loss = -1/N sum_i sum_j log σ(z_ij (t x̂_i·ŷ_j + b)), z_ij = +1 for i = j and -1 otherwise; x̂, ŷ the
    L2-normalized rows of x, y [N, D] (normalize=False: used as given, as open_clip expects them normalized).
    logit_scale: t itself, **already exponentiated**, exactly as open_clip's ``SigLipLoss.forward(...,
    logit_scale, logit_bias)`` takes it (the model passes ``self.logit_scale.exp()``; the paper initializes
    log t = log 10, b = -10, the defaults here). A float, or a 0-dim tensor that may require grad (so pass
    ``log_t.exp()`` for a learnable log-scale); logit_bias likewise. So ``fastrepr.siglip_loss(img, txt, s, b)``
    is a drop-in for ``open_clip.loss.SigLipLoss()(img, txt, s, b)`` on normalized features.
    dtypes: float16/bfloat16/float32/float64 (same for x and y); returns float32 (float64 for float64 input).

    Memory: O(N·D) forward and backward, never the N×N logits. CUDA (triton): 64 x 64 logit tiles in registers,
    extra memory the fp32 gradients plus two floats per 64-row block. CPU (torch): one reused [N, 2^20 / N]
    tile buffer (4 MiB in fp32) per pass. Each side is normalized once (before the streamed op).

    gather_distributed: False (local batch), True (an all_gather of y with gradient: every rank holds W·N rows)
    or "ring" (y blocks travel around the ring by batch_isend_irecv: per-rank memory O(N·D) plus one block).
    Either way each rank's loss is its own rows' loss over all W·N columns, divided by its N, as open_clip's
    distributed SigLipLoss; each rank's x, y get W times the gradient of the single-process loss on the
    rank-major concatenated batch, and logit_scale/logit_bias get this rank's share, so DDP's gradient average
    reproduces single-process training exactly (fastrepr.distributed). Every rank must pass the same N.

    Raises TypeError/ValueError naming the argument for non-float or mismatched x, y, N < 2, D = 0, NaN/Inf in x
    or y (off CUDA, or with FASTREPR_CHECK=1), a non-finite or non-scalar logit_scale/logit_bias, logit_scale
    <= 0, or an unknown gather_distributed.
    """
    _check_pair("x", x, "y", y)
    _scalar_arg(logit_scale, "logit_scale", x, positive=True)
    _scalar_arg(logit_bias, "logit_bias", x)
    if gather_distributed not in (False, True, "ring"):
        raise ValueError(f"gather_distributed must be False, True or 'ring', got {gather_distributed!r}")
    if _checks.data_checks(x):
        _checks.finite(x, "x")
        _checks.finite(y, "y")
    return _siglip.siglip_loss(x, y, logit_scale, logit_bias, bool(normalize), gather_distributed)


from .ops import siglip as _siglip  # noqa: E402  (kept in this block so the shared file merges trivially)
