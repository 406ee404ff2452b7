"""Functional API: validate arguments at the edge, then call the registered op (torch.ops.fastrepr.*).

Each function picks its backend per call (``fastrepr._backend.select``): Triton for CUDA tensors, the native
C++ extension for CPU tensors, the plain-PyTorch reference otherwise; ``FASTREPR_BACKEND`` forces one.
"""
from __future__ import annotations

import torch

from . import _checks
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
    NaN or Inf in a row propagates to the outputs it touches. Deterministic on every backend.

    Raises TypeError for non-floating z or non-integer indices, ValueError for mismatched shapes, empty
    inputs, tensors on different devices, or indices outside [0, N).
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


def _check_temperature(temperature) -> None:
    if isinstance(temperature, torch.Tensor):
        if temperature.numel() != 1 or not temperature.is_floating_point():
            raise TypeError(f"temperature must be a float or a 0-dim float tensor, got {temperature.dtype} "
                            f"of shape {tuple(temperature.shape)}")
        return  # its value is checked inside the op (no host sync here)
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        raise TypeError(f"temperature must be a float or a 0-dim tensor, got {type(temperature).__name__}")
    if not (temperature > 0) or temperature == float("inf"):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")


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
            gather_distributed: bool = False) -> torch.Tensor:
    """NT-Xent, the SimCLR loss (Chen et al. 2020), fused.

    z1, z2: [N, D] embeddings of two views (float16/bfloat16/float32/float64, same dtype and device).
    Anchor i of the 2N anchors [z1; z2] has its other view as positive and the other 2N-2 embeddings as
    negatives: loss_i = -log softmax_{k != i}(s_i)[pos(i)], s = ẑ ẑᵀ / temperature, ẑ = z / ||z|| when
    normalize. reduction: "mean" (over the 2N anchors), "sum", or "none" ([2N] losses, z1's anchors first).
    temperature: float > 0, or a 0-dim tensor (may require grad: its gradient is computed by the kernel).
    Returns float32 (float64 for float64 input).

    Memory: O(N·D) — the normalized inputs and O(N) row statistics; never the 2N x 2N similarity matrix
    (CPU: row chunks of ~16 MB). Deterministic (no atomics).

    gather_distributed: with torch.distributed initialized and W > 1 ranks, negatives come from every rank
    (an all_gather that carries gradients); each rank's loss is the mean over its own 2N anchors. Then the
    gradient on each rank w.r.t. its own z1, z2 equals W times the gradient of the single-process loss over
    the rank-major concatenated batch, so DDP's averaging of parameter gradients over W ranks reproduces
    single-process training exactly. Every rank must pass the same N.
    """
    _check_pair("z1", z1, "z2", z2)
    _check_temperature(temperature)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
    return _contrastive.nt_xent(z1, z2, temperature, reduction, normalize, gather_distributed)


def info_nce(q: torch.Tensor, k: torch.Tensor, temperature=0.07, symmetric: bool = True, normalize: bool = True,
             gather_distributed: bool = False) -> torch.Tensor:
    """CLIP-style InfoNCE (Radford et al. 2021), fused: row i of q is matched with row i of k against the
    other rows of k (cross-modal negatives only); symmetric=True averages with the k -> q direction.

    q, k: [N, D], same dtype and device. temperature: float or 0-dim tensor (learnable, like CLIP's logit
    scale = 1 / temperature). Returns a float32 scalar (float64 for float64 input). Memory O(N·D).
    gather_distributed: negatives from every rank (as open_clip's gather_with_grad with local loss); the
    gradient scaling is that of nt_xent (W times the single-process gradient).
    """
    _check_pair("q", q, "k", k)
    _check_temperature(temperature)
    return _contrastive.info_nce(q, k, temperature, symmetric, normalize, gather_distributed)


def sup_con(z: torch.Tensor, labels: torch.Tensor, temperature=0.1, normalize: bool = True,
            gather_distributed: bool = False) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, the L_out form), fused.

    z: [N, D] (or [N, V, D]: V views per sample, sharing the sample's label); labels: [N] integers.
    For anchor a, the positives P(a) are the other samples with its label, the candidates all samples but
    a: loss_a = -1/|P(a)| sum_{p in P(a)} log softmax_{k != a}(s_a)[p]. The result is the mean over anchors
    that have at least one positive (0, still differentiable, if none has), as pytorch-metric-learning's
    SupConLoss. Returns a float32 scalar (float64 for float64 input). Memory O(N·D).
    gather_distributed: candidates and positives from every rank; each rank's loss is the mean over its own
    anchors that have a positive, and its gradient is that of the sum of all ranks' losses (the anchor counts
    differ by rank, so unlike nt_xent this is not a fixed multiple of the single-process gradient).
    """
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
    _check_temperature(temperature)
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
    bins); O(D·F) output plus one (num_bins + 1) x K count table per program or thread.
    Raises ValueError for non-finite codes, negative labels, mismatched N or bad num_bins.
    """
    _checks.floating(codes, "codes")
    _checks.ndim(codes, 2, "codes", "[N, D]")
    _checks.nonempty(codes, "codes", "[N, D]")
    if not isinstance(num_bins, int) or isinstance(num_bins, bool) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}")
    if codes.dtype in (torch.float16, torch.bfloat16):
        codes = codes.float()
    if not bool(torch.isfinite(codes).all()):
        raise ValueError("codes contain NaN or Inf; histogram bins need a finite range (as np.histogram)")
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
        if hi >= max(1024, labels.shape[0]):  # keep count tables small: relabel each column densely
            labels = torch.stack([torch.unique(col, return_inverse=True)[1] for col in labels.T], 1)
            hi = int(labels.max())
        num_labels = hi + 1
        labels = labels.contiguous()
    codes = codes.contiguous()
    return _mutual_info.histogram_mutual_info(codes, _mutual_info.histogram_edges(codes, num_bins), labels,
                                              num_labels)
