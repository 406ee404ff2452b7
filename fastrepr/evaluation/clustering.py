"""Semantic clusterability: silhouette (fused, exact), and k-means NMI / ARI against labels.

Do same-class points cluster? Two standard numbers answer it:
  * the silhouette coefficient of the labels themselves (Rousseeuw 1987), here streamed through
    ``fastrepr.ops.silhouette`` in O(N·D + N·C) memory, equal to ``sklearn.metrics.silhouette_score``;
  * the agreement between a k-means clustering of the embeddings and the labels: normalized mutual
    information and adjusted Rand index, computed by scikit-learn's own metrics on FAISS's k-means clustering.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import _checks
from ..ops.silhouette import silhouette_samples_op

METRICS = ("euclidean", "cosine")


def _embeddings(z, name: str = "z") -> torch.Tensor:
    z = torch.as_tensor(z) if not isinstance(z, torch.Tensor) else z
    z = _checks.floating(z, name)
    _checks.ndim(z, 2, name, "[N, D]")
    _checks.nonempty(z, name, "[N, D]")
    return _checks.finite(z.detach(), name)


def _label_codes(labels, n: int, name: str = "labels") -> tuple[torch.Tensor, int]:
    """labels (any integer/str array of length n) -> (codes [N] int64 in 0..C-1, C)."""
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"{name} must be a 1-D array of {n} labels (one per row of z), got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or (arr != np.round(arr)).any():
            raise ValueError(f"{name} must hold integer class labels, got non-integer floats")
    _, codes = np.unique(arr, return_inverse=True)
    codes = torch.from_numpy(codes.reshape(-1).astype(np.int64))
    return codes, int(codes.max()) + 1


def silhouette_samples(z, labels, metric: str = "euclidean") -> torch.Tensor:
    """Silhouette coefficient of every sample, as ``sklearn.metrics.silhouette_samples``.

    z: [N, D] float tensor or array (float64 input: float64 tiles; float32 and lower: float32 tiles on
    per-cluster-shifted rows, with the pairs whose expansion could cancel recomputed exactly in float64, sums in
    float64: within 1e-6 of scikit-learn's float64 computation; see fastrepr.ops.silhouette). labels: [N] class
    labels (any values; 2 <= number of classes <= N - 1, as scikit-learn requires). metric: "euclidean" or
    "cosine". Returns [N] float64 on z's device; samples of singleton clusters score 0.
    Memory: O(N·D + N·C): the [N, C] float64 sums, a few row blocks and 1024-column tiles (4 MB in float32 for
    the torch loop, 256 KB per thread for the native one); never the N x N distances (native: a float32 copy of
    z for lower precisions only). Time, euclidean: N²·D/2 multiply-adds (symmetric tiles), the C++ pair loop
    on CPU; cosine: O(N·C·D) (the distance is linear in the unit rows).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    z = _embeddings(z)
    codes, c = _label_codes(labels, z.shape[0])
    if not 2 <= c <= z.shape[0] - 1:
        raise ValueError(f"labels: the number of classes is {c}; silhouette needs 2 <= classes <= N - 1 "
                         f"(N = {z.shape[0]}), as scikit-learn")
    return silhouette_samples_op(z, codes.to(z.device), c, metric)


def silhouette(z, labels, metric: str = "euclidean") -> float:
    """Mean silhouette coefficient (``sklearn.metrics.silhouette_score(z, labels, metric=metric)``, to 1e-6).

    Shapes, dtypes and memory as ``silhouette_samples``."""
    return float(silhouette_samples(z, labels, metric).mean())


def per_class_silhouette(z, labels, metric: str = "euclidean") -> dict:
    """{class label: mean silhouette of its samples} (the bars of the eval-embeddings report)."""
    s = silhouette_samples(z, labels, metric).cpu().numpy()
    arr = labels.detach().cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    return {k.item() if hasattr(k, "item") else k: float(s[arr == k].mean()) for k in np.unique(arr)}


def kmeans(z, k: int, seed: int = 0, niter: int = 25, nredo: int = 1) -> np.ndarray:
    """FAISS k-means assignments [N] int64 of z [N, D] (converted to float32 on the CPU: FAISS's input).

    ``faiss.Kmeans(D, k, niter=niter, nredo=nredo, seed=seed)`` (FAISS's defaults: 25 iterations, one run;
    with nredo > 1 the run of lowest objective is kept), then each row is assigned to its nearest centroid.
    Deterministic for a fixed seed and thread count. Memory: O(N·D + k·D); FAISS subsamples to 256·k
    training points when N is larger (its ``max_points_per_centroid``), and assigns every point.
    """
    from .. import _faiss

    faiss = _faiss.load()
    x = np.ascontiguousarray(_embeddings(z).cpu().numpy(), dtype=np.float32)
    k = _checks.int_arg(k, "k", 1, x.shape[0])
    niter = _checks.int_arg(niter, "niter", 1)
    nredo = _checks.int_arg(nredo, "nredo", 1)
    seed = _checks.int_arg(seed, "seed", 0, 2**31 - 1)
    km = faiss.Kmeans(x.shape[1], k, niter=niter, nredo=nredo, seed=seed, verbose=False)
    km.train(x)
    _, assign = km.index.search(x, 1)
    return assign.reshape(-1).astype(np.int64)


def _kmeans_score(z, labels, k, seed, niter, nredo, score) -> float:
    z = _embeddings(z)
    codes, c = _label_codes(labels, z.shape[0])
    k = c if k is None else k
    return float(score(codes.numpy(), kmeans(z, k, seed, niter, nredo)))


def kmeans_nmi(z, labels, k: int | None = None, seed: int = 0, niter: int = 25, nredo: int = 1) -> float:
    """Normalized mutual information between FAISS k-means clusters of z [N, D] and labels [N].

    k defaults to the number of classes. The score is ``sklearn.metrics.normalized_mutual_info_score``
    (arithmetic normalization) of (labels, ``kmeans(z, k, seed, niter, nredo)``), exactly."""
    from sklearn.metrics import normalized_mutual_info_score

    return _kmeans_score(z, labels, k, seed, niter, nredo, normalized_mutual_info_score)


def kmeans_ari(z, labels, k: int | None = None, seed: int = 0, niter: int = 25, nredo: int = 1) -> float:
    """Adjusted Rand index between FAISS k-means clusters of z [N, D] and labels [N]
    (``sklearn.metrics.adjusted_rand_score`` on the same clustering as ``kmeans_nmi``)."""
    from sklearn.metrics import adjusted_rand_score

    return _kmeans_score(z, labels, k, seed, niter, nredo, adjusted_rand_score)
