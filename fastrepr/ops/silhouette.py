"""Fused silhouette: per-sample silhouette coefficients without the N x N distance matrix.

Rousseeuw 1987: for sample i in cluster c_i, with d(i, j) the distance between samples,

    a_i = sum_{j in c_i, j != i} d(i, j) / (n_{c_i} - 1)          (mean intra-cluster distance)
    b_i = min_{c != c_i} sum_{j in c} d(i, j) / n_c               (mean distance to the nearest other cluster)
    s_i = (b_i - a_i) / max(a_i, b_i),      s_i = 0 when n_{c_i} = 1 (scikit-learn's rule for singletons)

and silhouette_score is the mean of s_i. Everything needed is the [N, C] table of per-cluster distance sums
S[i, c] = sum_{j in c} d(i, j). We stream [BLOCK_ROWS, BLOCK_ROWS] tiles of distances and scatter-add each
tile into S (index_add over the key labels), so memory is O(N·D + N·C) plus one tile, never N x N.

Precision: like scikit-learn's ``euclidean_distances`` (which upcasts float32 chunks to float64), each tile is
computed in float64 through the expansion ||x||² - 2 x·y + ||y||², clamped at 0 (and d(i, i) set to 0), and
S accumulates in float64, so the result matches ``sklearn.metrics.silhouette_score`` to ~1e-8 on float32 and
float64 input (scikit-learn rounds float32 distances to float32 before summing; that is below 1e-6). Cosine:
d = 1 - x̂·ŷ with x̂ = x / ||x|| in float64, as sklearn's ``cosine_distances`` (clamped to [0, 2]).

Symmetry: d is symmetric, so only tiles with key block >= row block are computed; an off-diagonal tile adds
its rows into S[rows, labels(keys)] and its transpose into S[keys, labels(rows)], halving the distance work.

Implementations (IMPLS): torch only (the cost is two float64 GEMMs per tile and one index_add; a native
kernel would pay by fusing the scatter into the GEMM epilogue and by running the GEMM in float32 with a
float64 correction; a Triton one on GPU likewise).
"""
from __future__ import annotations

import torch

from .. import _backend

OP = "silhouette_samples"
BLOCK_ROWS = 1024  # 1024 x 1024 float64 tile = 8 MB (untuned: chosen for the memory bar, not measured)


def _rows(z: torch.Tensor, r0: int, r1: int, inv_norm: torch.Tensor | None) -> torch.Tensor:
    """Rows r0:r1 of z in float64 (cosine: scaled to unit norm; sklearn's normalize() leaves zero rows 0).
    Cast per tile so that no float64 copy of all of z is kept (it would be 51 MB at N=50000, D=128)."""
    x = z[r0:r1].to(torch.float64)
    return x if inv_norm is None else x * inv_norm[r0:r1, None]


def _tile(xi: torch.Tensor, xj: torch.Tensor, sqi: torch.Tensor, sqj: torch.Tensor, metric: str) -> torch.Tensor:
    d = xi @ xj.T
    if metric == "cosine":
        return d.neg_().add_(1.0).clamp_(0.0, 2.0)
    # ||x||^2 - 2 x.y + ||y||^2 in place (one [block, block] float64 buffer), clamped at 0 before the sqrt
    return d.mul_(-2.0).add_(sqi[:, None]).add_(sqj[None, :]).clamp_(min=0.0).sqrt_()


def cluster_distance_sums(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, metric: str = "euclidean",
                          block: int | None = None) -> torch.Tensor:
    """S [N, C] float64: S[i, c] = sum over samples j with labels[j] = c of d(z_i, z_j) (d(i, i) = 0).

    z [N, D] float (any float dtype; each tile computed in float64), labels [N] int64 in [0, C). Memory: S
    (N·C·8 bytes), two float64 [N] vectors, two float64 row blocks and a block x block float64 tile (8 MB at
    the default block of 1024); never N x N and no float64 copy of z.
    """
    block = block or BLOCK_ROWS
    n = z.shape[0]
    sq = torch.cat([z[r:r + block].to(torch.float64).pow(2).sum(1) for r in range(0, n, block)])
    inv_norm = None
    if metric == "cosine":
        norm = sq.sqrt()
        inv_norm = torch.where(norm == 0, torch.zeros_like(norm), 1.0 / torch.where(norm == 0, 1.0, norm))
    sums = torch.zeros(n, n_clusters, dtype=torch.float64, device=z.device)
    for r0 in range(0, n, block):
        r1 = min(n, r0 + block)
        xi = _rows(z, r0, r1, inv_norm)
        for k0 in range(r0, n, block):
            k1 = min(n, k0 + block)
            d = _tile(xi, xi if k0 == r0 else _rows(z, k0, k1, inv_norm), sq[r0:r1], sq[k0:k1], metric)
            if k0 == r0:
                d.fill_diagonal_(0.0)  # rounding of the expansion leaves ~1e-8 on the diagonal
                sums[r0:r1].index_add_(1, labels[k0:k1], d)
            else:
                sums[r0:r1].index_add_(1, labels[k0:k1], d)
                sums[k0:k1].index_add_(1, labels[r0:r1], d.T)
    return sums


def silhouette_from_sums(sums: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-sample s_i [N] float64 from S [N, C] (see the module docstring); singletons score 0."""
    counts = torch.bincount(labels, minlength=sums.shape[1]).to(torch.float64)
    own = counts[labels]
    rows = torch.arange(labels.shape[0], device=labels.device)
    a = sums[rows, labels] / (own - 1).clamp(min=1)
    means = sums / counts.clamp(min=1)
    means[rows, labels] = float("inf")
    means[:, counts == 0] = float("inf")  # label values with no sample are not clusters
    b = means.min(1).values
    denom = torch.maximum(a, b)
    s = torch.where(denom > 0, (b - a) / torch.where(denom > 0, denom, torch.ones_like(denom)), 0.0)
    return torch.where(own > 1, s, 0.0)


def silhouette_samples_torch(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, metric: str) -> torch.Tensor:
    """Streaming silhouette coefficients [N] float64 (labels already 0..C-1)."""
    with torch.no_grad():
        return silhouette_from_sums(cluster_distance_sums(z, labels, n_clusters, metric), labels)


IMPLS = _backend.declare(OP, _backend.Impls(torch=silhouette_samples_torch))


def silhouette_samples_op(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, metric: str) -> torch.Tensor:
    """The dispatched op (one implementation today)."""
    return _backend.dispatch(OP, IMPLS, z, labels, n_clusters, metric)
