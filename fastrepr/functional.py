"""Functional API: validate arguments at the edge, then call the registered op (torch.ops.fastrepr.*).

Each function picks its backend per call (``fastrepr._backend.select``): Triton for CUDA tensors, the native
C++ extension for CPU tensors, the plain-PyTorch reference otherwise; ``FASTREPR_BACKEND`` forces one.
"""
from __future__ import annotations

import torch

from . import _checks
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
