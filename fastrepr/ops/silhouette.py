"""Fused silhouette: per-sample silhouette coefficients without the N x N distance matrix.

Rousseeuw 1987: for sample i in cluster c_i, with d(i, j) the distance between samples,

    a_i = sum_{j in c_i, j != i} d(i, j) / (n_{c_i} - 1)          (mean intra-cluster distance)
    b_i = min_{c != c_i} sum_{j in c} d(i, j) / n_c               (mean distance to the nearest other cluster)
    s_i = (b_i - a_i) / max(a_i, b_i),      s_i = 0 when n_{c_i} = 1 (scikit-learn's rule for singletons)

and silhouette_score is the mean of s_i. Everything needed is the [N, C] table of per-cluster distance sums
S[i, c] = sum_{j in c} d(i, j). We stream [BLOCK_ROWS, BLOCK_ROWS] tiles of distances and add each tile's
per-cluster row sums into S, so memory is O(N·D + N·C) plus one tile, never N x N.

Order: the samples are visited sorted by label (a stable argsort; blocks are gathered through the permutation,
never a sorted copy of z), so every block's columns fall into a few contiguous label segments, and a tile's
contribution to S is one float64 sum per (row, segment): d[:, s:e].sum(1). A row block is cut into one row
group per label segment (each its own shift and GEMM, below), up to MAX_SEGMENTS of them; blocks with more
labels (many small clusters) are one group, and the torch epilogue scatters their tiles with index_add.

Symmetry: d is symmetric, so only tiles with key block >= row block are computed; an off-diagonal tile adds
its row sums into S[rows, labels(keys)] and its column sums into S[keys, labels(rows)], halving the work. The
native implementation also halves the diagonal tiles: a row group takes the keys from its own first row on,
and a labelled group's row chunk those from its own first row on (its own small square as row sums, every
later key as row and column sums), so each pair is computed once (~5% of all pairs at N=20000).

Precision. scikit-learn's ``euclidean_distances`` upcasts float32 chunks to float64 and rounds the distances
to float32; its sums are float64. Here:
- float64 input: tiles in float64 (one float64 GEMM each), the expansion ||x||² - 2 x·y + ||y||².
- float32 (and lower) input: tiles in float32 (an sgemm, ~4x the float64 one on AVX-512). The expansion's
  error is ~eps32·(||x||² + ||y||²), so it is made small in two steps:
  1. translation invariance: the rows of each label segment of a row block (one cluster) and every key row are
     shifted by that segment's mean m (rounded to float32: any m is an exact translation of both sides, and
     float32 x - m is rounded once, as the float64 difference rounded to float32 would be) before the GEMM.
     ||x - m|| is then the cluster's spread, not the data's offset (a shift of 1e3 costs nothing), and
     ||y - m|| at most d(x, y) plus that spread;
  2. the pairs where the expansion can still lose more than ~1e-5 of d², those with
     d² < EXACT_BELOW·(||x - m||² + ||y - m||²) (near-duplicates, close pairs in a wide cluster), are recomputed
     exactly as float64 sums of squared differences of the unshifted rows (in chunks of EXACT_CHUNK pairs).
  Every other distance carries a relative error of ~1e-6 or less, of random sign, and the sums are float64,
  so per-sample scores agree with scikit-learn's to ~1e-7 (tests: random, shifted, tight and many-label
  clusters; the bar is 1e-6). Blocks with more than MAX_SEGMENTS labels shift by the block's mean and rely on
  step 2.
Cosine: d(i, j) = 1 - x̂_i·x̂_j is linear in x̂_j, so S needs no pairs at all:
    S[i, c] = n_c - x̂_i · (sum_{j in c} x̂_j),   less the self term 1 - x̂_i·x̂_i on S[i, c_i] (d(i, i) = 0),
with x̂ = x / ||x|| in float64 (scikit-learn's normalize() leaves zero rows 0, whose distance to any row is 1):
O(N·C·D) float64 work in row chunks, for every implementation. The error of each sum is ~eps64·n_c, that of
n_c per-pair float64 distances (scikit-learn's float64 path); scikit-learn's float32 cosine path is float32
throughout, and off by 0.04 on data far from the origin, so the tests' oracle is its float64 path on the
same values. (Its clip of each distance to [0, 2] moves a pair by rounding only.)

Implementations (IMPLS), euclidean: both run the same blocks, row groups and shifts. torch: a Python loop over
the tiles, one torch GEMM per (row group, key block) into a reused buffer, the epilogue in elementwise passes,
segment sums and index_add (float64 input too). native (float32 tiles; float64 input takes torch): the whole
loop in C++ (csrc/silhouette.h): per thread, a single-threaded sgemm of up to 128 rows x one key block into an
L2-sized tile (MKL from torch, else numpy's OpenBLAS: the BLAS registered for search), the group's shifted
rows packed once, then per row and key label segment, while the tile is hot: a read-only cancellation test and,
where nothing cancelled (nearly always), one AVX2 pass of expansion, sqrt, row sum and column sums; elsewhere
(and on the diagonal squares) a general pass that also recomputes the cancelled pairs exactly.
"""
from __future__ import annotations

import torch

from .. import _backend, _native
from . import _search_plan

OP = "silhouette_samples"
BLOCK_ROWS = 1024  # 1024 x 1024 float32 tile = 4 MB: 2-core Xeon, N=20000 D=128: 512 is 1.3x slower, 2048 even
MAX_SEGMENTS = 8  # label segments per block beyond which it is one row group (per-group GEMMs get small)
EXACT_BELOW = 0.05  # float32 expansion error ~ sqrt(D)·eps32·(|x|² + |y|²) <= 1.3e-5·d² above this (D <= 128)
EXACT_CHUNK = 8192  # pairs recomputed at once: 8192 x D float64 differences (8 MB at D=128)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


class _Blocks:
    """The samples in label order, one block of rows at a time (in the work dtype: float32 rows for float32
    and lower, float64 rows for float64)."""

    def __init__(self, z: torch.Tensor, labels: torch.Tensor, block: int):
        self.z, self.block, self.work = z, block, _work_dtype(z.dtype)
        self.order = torch.argsort(labels, stable=True)
        self.labels = labels[self.order]
        self.n = z.shape[0]

    def rows(self, r0: int) -> torch.Tensor:
        return torch.index_select(self.z, 0, self.order[r0:r0 + self.block]).to(self.work)  # 3x z[idx] here

    def unsorted(self, sums: torch.Tensor) -> torch.Tensor:
        """sums [N, ...] in label order -> in the caller's order of z."""
        out = torch.empty_like(sums)
        out[self.order] = sums
        return out

    def segments(self, r0: int) -> tuple[list[int], list[int]]:
        """(labels, starts) of the block at r0: its runs of equal labels, starts relative to r0 (len + 1)."""
        values, counts = torch.unique_consecutive(self.labels[r0:r0 + self.block], return_counts=True)
        return values.tolist(), [0] + torch.cumsum(counts, 0).tolist()


class _RowGroup:
    """Rows s:e of a row block with one shift (module docstring, precision): one label segment, or the whole
    block when it has more than MAX_SEGMENTS labels (label None)."""

    def __init__(self, xr: torch.Tensor, label, s: int, e: int, scratch: torch.Tensor):
        self.label, self.s, self.e, self.work, self.scratch = label, s, e, xr.dtype, scratch
        self.xr = xr[s:e]  # the unshifted rows (the exact recomputation's)
        self.shift = self.xr.mean(0)
        self.x = self.xr - self.shift
        self.sq = self.x.pow(2).sum(1)

    def products(self, yr: torch.Tensor):
        """(g, sqy): the [e - s, B2] dot products of the shifted rows with the shifted key rows yr [B2, D]
        (work dtype, unshifted), and the keys' shifted squared norms [B2]. g is a view of the scratch
        buffer shared by every tile (a fresh 4 MB product per tile cost as much again as the GEMM: page
        faults on first touch)."""
        y = yr - self.shift
        g = self.scratch[:self.x.shape[0] * y.shape[0]].view(self.x.shape[0], y.shape[0])
        return torch.mm(self.x, y.T, out=g), y.pow(2).sum(1)


def _group_bounds(values: list[int], starts: list[int]) -> list[tuple]:
    """(start, end, label) of a block's row groups from its label segments: one per segment, or the whole block
    (label None) when it has more than MAX_SEGMENTS labels."""
    if len(values) > MAX_SEGMENTS:
        return [(0, starts[-1], None)]
    return [(starts[i], starts[i + 1], v) for i, v in enumerate(values)]


def _row_groups(xr, values: list[int], starts: list[int], scratch):
    return [_RowGroup(xr, label, s, e, scratch) for s, e, label in _group_bounds(values, starts)]


def _exact_where_cancelled(d2: torch.Tensor, xr: torch.Tensor, yr: torch.Tensor, sqx, sqy) -> None:
    """Recompute in float64 from the unshifted rows, in place, the squared distances whose expansion may have
    cancelled."""
    suspect = torch.nonzero(d2 < EXACT_BELOW * (sqx[:, None] + sqy[None, :]))
    for chunk in suspect.split(EXACT_CHUNK):
        i, j = chunk.unbind(1)
        d2[i, j] = (xr[i].double() - yr[j].double()).pow(2).sum(1).to(d2.dtype)


def _tile_torch(g: _RowGroup, yr, seg, labels_k, rows_out, cols_out, labels_r, diag: bool):
    """Add one tile (rows of group g x key block yr) into rows_out [R, C] and cols_out [B2, C] (None on the
    diagonal tile, whose column sums are its own row sums)."""
    d, sqy = g.products(yr)
    d.mul_(-2.0).add_(g.sq[:, None]).add_(sqy[None, :])
    if g.work != torch.float64:
        _exact_where_cancelled(d, g.xr, yr, g.sq, sqy)
    d = d.clamp_(min=0.0).sqrt_()
    if diag:
        d[:, g.s:g.e].fill_diagonal_(0.0)
    values, starts = seg
    if len(values) > MAX_SEGMENTS:
        rows_out.index_add_(1, labels_k, d.to(torch.float64))
    else:
        for i, label in enumerate(values):
            rows_out[:, label] += d[:, starts[i]:starts[i + 1]].sum(1, dtype=torch.float64)
    if cols_out is None:
        return
    if g.label is None:
        cols_out.index_add_(1, labels_r, d.T.to(torch.float64))
    else:
        cols_out[:, g.label] += d.sum(0, dtype=torch.float64)


def cluster_distance_sums(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, metric: str = "euclidean",
                          block: int | None = None) -> torch.Tensor:
    """S [N, C] float64: S[i, c] = sum over samples j with labels[j] = c of d(z_i, z_j) (d(i, i) = 0).

    z [N, D] float (float64 tiles for float64 input, float32 tiles otherwise: module docstring), labels [N]
    int64 in [0, C). The torch implementation's loop (native: _native_sums). Memory: S (N·C·8 bytes) twice
    (label order, then the caller's), the [N] permutation, a few float64 and float32 row blocks, one block x
    block tile (4 MB in float32, 8 MB in float64 at the default block of 1024) and its comparison mask (torch);
    never N x N and no copy of z. Cosine: no tiles (module docstring), the [C, D] cluster sums and one row chunk.
    """
    if metric == "cosine":
        return _cosine_sums(z, labels, n_clusters, block or BLOCK_ROWS)
    blocks = _Blocks(z, labels, block or BLOCK_ROWS)
    n, step, work = blocks.n, blocks.block, blocks.work
    sums = torch.zeros(n, n_clusters, dtype=torch.float64, device=z.device)
    segments = [blocks.segments(r0) for r0 in range(0, n, step)]
    scratch = torch.empty(min(n, step) ** 2, dtype=work, device=z.device)  # every tile's products, in turn
    for bi, r0 in enumerate(range(0, n, step)):
        xr = blocks.rows(r0)
        groups = _row_groups(xr, *segments[bi], scratch)
        for bk, k0 in enumerate(range(r0, n, step), start=bi):
            k1 = min(n, k0 + step)
            diag = k0 == r0
            yr = xr if diag else blocks.rows(k0)
            for g in groups:
                _tile_torch(g, yr, segments[bk], blocks.labels[k0:k1], sums[r0 + g.s:r0 + g.e],
                            None if diag else sums[k0:k1], blocks.labels[r0 + g.s:r0 + g.e], diag)
    return blocks.unsorted(sums)


def _unit_rows(z: torch.Tensor, r0: int, r1: int) -> torch.Tensor:
    x = z[r0:r1].to(torch.float64)
    norm = x.norm(dim=1, keepdim=True)
    return torch.where(norm > 0, x / torch.where(norm > 0, norm, 1.0), 0.0)


def _cosine_sums(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, chunk: int) -> torch.Tensor:
    """S [N, C] float64 for d = 1 - x̂·ŷ through the cluster sums of the unit rows (module docstring)."""
    n = z.shape[0]
    centroid_sums = torch.zeros(n_clusters, z.shape[1], dtype=torch.float64, device=z.device)
    for r0 in range(0, n, chunk):
        centroid_sums.index_add_(0, labels[r0:r0 + chunk], _unit_rows(z, r0, r0 + chunk))
    counts = torch.bincount(labels, minlength=n_clusters).to(torch.float64)
    sums = torch.empty(n, n_clusters, dtype=torch.float64, device=z.device)
    for r0 in range(0, n, chunk):
        x = _unit_rows(z, r0, r0 + chunk)
        out = sums[r0:r0 + chunk]
        torch.sub(counts, x @ centroid_sums.T, out=out)
        own = labels[r0:r0 + chunk, None]
        out.scatter_add_(1, own, (x * x).sum(1, keepdim=True) - 1.0)  # less d(i, i) = 1 - x̂_i·x̂_i
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


def _native_sums(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, block: int) -> torch.Tensor:
    """cluster_distance_sums (euclidean) through csrc/silhouette.h: the same blocks, row groups and shifts,
    the whole pair loop in C++ (a single-threaded sgemm per thread into L2-sized tiles, each tile's epilogue
    while it is hot). float32 rows (other dtypes are converted: a float32 copy of z)."""
    blocks = _Blocks(z, labels, block)
    groups = [(r0 + s, r0 + e, -1 if label is None else label) for r0 in range(0, blocks.n, block)
              for s, e, label in _group_bounds(*blocks.segments(r0))]
    sums = torch.zeros(blocks.n, n_clusters, dtype=torch.float64)
    _native.get().silhouette_sums(_native.as_buffer(z.to(torch.float32).contiguous()), _native.as_buffer(
        blocks.order), _native.as_buffer(blocks.labels.contiguous()), _native.as_buffer(
        torch.tensor(groups, dtype=torch.long)), sums.numpy(), EXACT_BELOW, block, _search_plan.sgemm_handle(),
        torch.get_num_threads())
    return blocks.unsorted(sums)


def silhouette_samples_native(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, metric: str) -> torch.Tensor:
    """As silhouette_samples_torch, with the euclidean pair loop in C++ (float32 tiles: not float64 input;
    CPU tensors)."""
    with torch.no_grad():
        sums = (_cosine_sums(z, labels, n_clusters, BLOCK_ROWS) if metric == "cosine"
                else _native_sums(z, labels, n_clusters, BLOCK_ROWS))
        return silhouette_from_sums(sums, labels)


# float64 input is computed in float64 tiles, which only the torch implementation has
IMPLS = _backend.declare(OP, _backend.Impls(native=silhouette_samples_native, torch=silhouette_samples_torch,
                                            no_float64=("native",)))


def silhouette_samples_op(z: torch.Tensor, labels: torch.Tensor, n_clusters: int, metric: str) -> torch.Tensor:
    """The dispatched op (native for float32 CPU input, else torch)."""
    return _backend.dispatch(OP, IMPLS, z, labels, n_clusters, metric)
