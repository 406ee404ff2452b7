"""Histogram discretization fused with discrete mutual information.

MIG (Chen et al. 2018), modularity (Ridgeway & Mozer 2018) and the unsupervised mutual-information score,
as disentanglement_lib computes them, discretize every code dimension into 20 equal-width bins over its
sample range and take the mutual information (in nats, as sklearn.metrics.mutual_info_score) with each
ground-truth factor, or with every other discretized code:

    edges[d]  = np.histogram(x[:, d], B)[1][:-1]                  (B left bin edges, in x's dtype)
    bin[n, d] = #{b : edges[d, b] <= x[n, d]}  in [0, B]          (np.digitize(x[:, d], edges[d]))
    c[i, j]   = #{n : bin[n, d] = i, y[n, f] = j},  a = row sums, b = column sums
    mi[d, f]  = sum_{c_ij > 0} c_ij / N * log(N c_ij / (a_i b_j))

y is a label matrix [N, F] (values in [0, K)), or, without labels, the bins of every column (F = D).
The kernels never materialize the [N, D] discretization: each program owns one (d, f) pair (and a tile of
K labels) and streams over N, building its contingency table as a matrix product of one-hot rows
(c += onehot(bin)^T @ onehot(y), exact in fp32 for counts below 2^24), then reduces it to the MI. The row
sums a come from all labels, so label tiles give partial sums that add up exactly.

Products N c and a b are formed in float64 (exact below 2^53), so an independent or single-valued table
gives exactly 0. The result is clipped at 0 (as sklearn's). Not differentiable (counts).

Implementations (IMPLS): triton (below; up to MAX_TRITON_BINS_PAD padded bins, and above 2^24 rows, where fp32
counts stop being exact, the kernel stores the tables of row chunks below that size and they are added in
float64), native (csrc/mutual_info.cpp) and torch (searchsorted bins, one bincount per code column: O(N·D)
memory and O(N·D·log B) comparisons, against the oracle's O(N·D·B)).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import _backend, _native
from .._triton import CompileCase, next_power_of_2, tl, triton

OP = "histogram_mutual_info"
MAX_TRITON_N = 2**24  # fp32 counts stay exact below this
# Size limits every backend shares (csrc/mutual_info.h: kHistogramMaxBins, kHistogramMaxTable; the native
# module exports them as HISTOGRAM_MAX_BINS / HISTOGRAM_MAX_TABLE and a test keeps them equal): the
# discretization costs N·D·B comparisons, and each CPU thread holds one (B + 1) x K int64 count table.
MAX_BINS = 1024
MAX_TABLE = 2**24
# The Triton kernel keeps the (bins, labels) tile in registers and stages one-hot [64, bins] tiles in shared
# memory; above 256 padded bins that no longer fits (untuned; no GPU was available), so larger histograms
# take the torch implementation on CUDA (IMPLS.rejects).
MAX_TRITON_BINS_PAD = 256


def histogram_edges(x: torch.Tensor, num_bins: int) -> torch.Tensor:
    """[D, num_bins] left bin edges of np.histogram(x[:, d], num_bins), bit for bit, in x's dtype and device.

    np.histogram's edges depend only on the column's min, max and dtype (np.linspace in that dtype, the range
    widened by 0.5 each side when min == max), so they are computed by numpy itself from the two extremes.
    """
    lo, hi = torch.aminmax(x, dim=0)
    pairs = torch.stack([lo, hi], 1).cpu().numpy()
    rows = []
    for d, p in enumerate(pairs):
        with np.errstate(over="ignore"):  # a range that overflows is reported below, not warned about
            span = p[1] - p[0]
        if not np.isfinite(span):
            raise ValueError(f"codes column {d}: its range [{p[0]:.3g}, {p[1]:.3g}] overflows {p.dtype} "
                             "(np.histogram cannot bin it)")
        try:
            rows.append(np.histogram_bin_edges(p, bins=num_bins)[:-1])
        except ValueError as exc:  # numpy: a range too narrow for num_bins distinct edges in this dtype
            raise ValueError(f"codes column {d}: its range [{p[0]!r}, {p[1]!r}] is too narrow for {num_bins} "
                             f"distinct {p.dtype} bin edges ({exc})") from None
    edges = np.stack(rows)
    return torch.from_numpy(edges.astype(pairs.dtype, copy=False)).to(x.device)


@triton.jit
def _histogram_mutual_info_fwd_kernel(
    # pointers
    x_ptr, edges_ptr, y_ptr, out_ptr,
    # shapes
    N, B,
    # strides (STORE_TABLE: out is [D, F, BINS_PAD, tiles * BLOCK_K] fp32, labels contiguous; stride_ob its bins)
    stride_xn, stride_xd, stride_ed, stride_yn, stride_yf, stride_od, stride_of, stride_ob,
    # constants
    SELF: tl.constexpr, STORE_TABLE: tl.constexpr, BINS_PAD: tl.constexpr, BLOCK_K: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Program (d, f, t): partial MI of code d with label column f (or code f when SELF) over labels
    [t * BLOCK_K, (t + 1) * BLOCK_K), or with STORE_TABLE that part of the contingency table of these N rows
    (the caller adds the tables of row chunks). Deterministic: no atomics."""
    d = tl.program_id(0)
    f = tl.program_id(1)
    offs_b = tl.arange(0, BINS_PAD)
    offs_k = tl.program_id(2) * BLOCK_K + tl.arange(0, BLOCK_K)
    e = tl.load(edges_ptr + d * stride_ed + offs_b, mask=offs_b < B, other=float("inf"))
    if SELF:  # f is a code column too (with labels, f may exceed the rows of edges)
        ey = tl.load(edges_ptr + f * stride_ed + offs_b, mask=offs_b < B, other=float("inf"))
    else:
        ey = e
    table = tl.zeros([BINS_PAD, BLOCK_K], dtype=tl.float32)
    rows = tl.zeros([BINS_PAD], dtype=tl.float32)
    for start in range(0, N, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        mask_n = offs_n < N
        xv = tl.load(x_ptr + offs_n * stride_xn + d * stride_xd, mask=mask_n, other=0.0)
        bx = tl.sum((xv[:, None] >= e[None, :]).to(tl.int32), axis=1)
        bx = tl.where(mask_n, bx, -1)
        if SELF:
            yv = tl.load(x_ptr + offs_n * stride_xn + f * stride_xd, mask=mask_n, other=0.0)
            y = tl.sum((yv[:, None] >= ey[None, :]).to(tl.int32), axis=1)
        else:
            y = tl.load(y_ptr + offs_n * stride_yn + f * stride_yf, mask=mask_n, other=0).to(tl.int32)
        y = tl.where(mask_n, y, -1)
        ox = (bx[:, None] == offs_b[None, :]).to(tl.float32)  # [BLOCK_N, BINS_PAD]
        oy = (y[:, None] == offs_k[None, :]).to(tl.float32)   # [BLOCK_N, BLOCK_K]
        table += tl.dot(tl.trans(ox), oy, input_precision="ieee")
        rows += tl.sum(ox, axis=0)
    if STORE_TABLE:
        tl.store(out_ptr + d * stride_od + f * stride_of + offs_b[:, None] * stride_ob + offs_k[None, :], table)
    else:
        cols = tl.sum(table, axis=0)
        n = N.to(tl.float64)
        c = table.to(tl.float64)
        ab = rows.to(tl.float64)[:, None] * cols.to(tl.float64)[None, :]
        nonzero = table > 0
        ratio = tl.where(nonzero, (n * c) / tl.where(nonzero, ab, 1.0), 1.0)
        term = tl.where(nonzero, c / n * tl.log(ratio), 0.0)
        partial = tl.sum(tl.sum(term, axis=1), axis=0)
        tl.store(out_ptr + d * stride_od + f * stride_of + tl.program_id(2), partial)


def _tiles(B: int, K: int) -> tuple[int, int, int]:
    """(BINS_PAD, BLOCK_K, BLOCK_N) for B bins and K labels. Untuned (no GPU was available when this was
    written): one label tile up to 64 labels, 64 points per step."""
    return max(16, next_power_of_2(B + 1)), min(max(16, next_power_of_2(K)), 64), 64


def compile_cases():
    """How histogram_mutual_info_triton launches the kernel on a GPU (tests/test_gpu_compile.py): float32 and
    float64 codes (the op takes no other), with labels (each label tile width) or code against code, each padded
    bin count the CUDA path takes (MAX_TRITON_BINS_PAD), the MI or (above MAX_TRITON_N rows) the tables,
    contiguous inputs, N = 2**16, D = F = 10."""
    N, D = 1 << 16, 10
    for dt in (torch.float32, torch.float64):
        for bins_pad in (16, 32, 64, 128, MAX_TRITON_BINS_PAD):
            B = bins_pad - 1
            for self_mi, K in ((True, B + 1), (False, 16), (False, 32), (False, 64)):
                bp, block_k, block_n = _tiles(B, K)
                labels = dict(y_ptr=dt, stride_yn=0, stride_yf=0) if self_mi else dict(
                    y_ptr=torch.int64, stride_yn=D, stride_yf=1)
                tiles = triton.cdiv(K, block_k)
                table = bp * tiles * block_k
                for store, out in ((False, dict(out_ptr=torch.float64, stride_od=D * tiles, stride_of=tiles,
                                                stride_ob=0)),
                                   (True, dict(out_ptr=torch.float32, stride_od=D * table, stride_of=table,
                                               stride_ob=tiles * block_k))):
                    yield CompileCase(_histogram_mutual_info_fwd_kernel, dict(
                        x_ptr=dt, edges_ptr=dt, N=N, B=B, stride_xn=D, stride_xd=1, stride_ed=B, **labels, **out),
                        dict(SELF=self_mi, STORE_TABLE=store, BINS_PAD=bp, BLOCK_K=block_k, BLOCK_N=block_n),
                        num_warps=4)


def _launch(x: torch.Tensor, edges: torch.Tensor, labels: torch.Tensor | None, num_labels: int,
            store_table: bool) -> torch.Tensor:
    """One launch over all rows of x: [D, F, tiles] float64 partial MIs, or with store_table the contingency
    tables [D, F, BINS_PAD, tiles * BLOCK_K] fp32 (exact below 2^24 rows)."""
    N, D = x.shape
    B = edges.shape[1]
    self_mi = labels is None
    F, K = (D, B + 1) if self_mi else (labels.shape[1], num_labels)
    BINS_PAD, BLOCK_K, BLOCK_N = _tiles(B, K)
    tiles = triton.cdiv(K, BLOCK_K)
    if store_table:
        out = torch.empty((D, F, BINS_PAD, tiles * BLOCK_K), dtype=torch.float32, device=x.device)
    else:
        out = torch.empty((D, F, tiles), dtype=torch.float64, device=x.device)
    y = x if self_mi else labels
    sy = (0, 0) if self_mi else (labels.stride(0), labels.stride(1))
    _histogram_mutual_info_fwd_kernel[(D, F, tiles)](
        x, edges, y, out,
        N, B,
        x.stride(0), x.stride(1), edges.stride(0), *sy, out.stride(0), out.stride(1),
        out.stride(2) if store_table else 0,
        SELF=self_mi, STORE_TABLE=store_table, BINS_PAD=BINS_PAD, BLOCK_K=BLOCK_K, BLOCK_N=BLOCK_N, num_warps=4,
    )
    return out


def _mi_of_counts(c: torch.Tensor, n: int) -> torch.Tensor:
    """sum_{c_ij > 0} c_ij / n log(n c_ij / (a_i b_j)) over the last two axes of float64 counts [..., R, K],
    clipped at 0 (the kernel's reduction, in torch)."""
    ab = c.sum(-1, keepdim=True) * c.sum(-2, keepdim=True)
    nonzero = c > 0
    ratio = torch.where(nonzero, n * c / torch.where(nonzero, ab, 1.0), 1.0)
    return torch.where(nonzero, c / n * torch.log(ratio), 0.0).sum((-2, -1)).clamp_(min=0.0)


def histogram_mutual_info_triton(x: torch.Tensor, edges: torch.Tensor, labels: torch.Tensor | None,
                                 num_labels: int) -> torch.Tensor:
    """Triton launcher. x: [N, D] float32/float64; edges: [D, B] in x's dtype (B + 1 <= MAX_TRITON_BINS_PAD);
    labels: [N, F] int64 in [0, num_labels) or None. Returns [D, F] float64. Extra memory: [D, F, tiles] float64
    partial sums; above MAX_TRITON_N rows, the [D, F, BINS_PAD, tiles * BLOCK_K] tables of one row chunk (fp32)
    and their float64 sum."""
    N = x.shape[0]
    if N < MAX_TRITON_N:
        return _launch(x, edges, labels, num_labels, False).sum(-1).clamp_(min=0.0)
    counts = None
    for r0 in range(0, N, MAX_TRITON_N - 1):  # fp32 counts are exact in each chunk; float64 in their sum
        rows = slice(r0, r0 + MAX_TRITON_N - 1)
        part = _launch(x[rows], edges, None if labels is None else labels[rows], num_labels, True).double()
        counts = part if counts is None else counts.add_(part)
    return _mi_of_counts(counts, N)


def histogram_mutual_info_native(x: torch.Tensor, edges: torch.Tensor, labels: torch.Tensor | None,
                                 num_labels: int) -> torch.Tensor:
    """The C++ kernel (CPU tensors; arguments as histogram_mutual_info_triton). Extra memory: O(N·D) int32
    bins and one (B + 1) x K int64 table per thread."""
    F = x.shape[1] if labels is None else labels.shape[1]
    out = torch.empty((x.shape[1], F), dtype=torch.float64)
    _native.get().histogram_mutual_info(_native.as_buffer(x), _native.as_buffer(edges),
                                        None if labels is None else _native.as_buffer(labels), out.numpy(),
                                        num_labels, _native.dtype_name(x.dtype), torch.get_num_threads())
    return out


def histogram_mutual_info_torch(x: torch.Tensor, edges: torch.Tensor, labels: torch.Tensor | None,
                                num_labels: int) -> torch.Tensor:
    """Plain PyTorch (any device; arguments as histogram_mutual_info_triton): bin[n, d] = #{b: edges[d, b] <=
    x[n, d]} by binary search (edges ascend), then per code column one bincount of all F pairs. Extra memory
    O(N·D) bins, O(N·F) flat indices and the [F, B + 1, K] tables of one column."""
    n, d = x.shape
    rows = edges.shape[1] + 1
    bins = torch.searchsorted(edges, x.t().contiguous(), right=True)  # [D, N] in [0, B]
    ys, k = (bins, rows) if labels is None else (labels.t(), num_labels)
    offsets = torch.arange(ys.shape[0], device=x.device)[:, None] * (rows * k)
    out = torch.empty((d, ys.shape[0]), dtype=torch.float64, device=x.device)
    for i in range(d):
        flat = (bins[i] * k + ys + offsets).reshape(-1)
        counts = torch.bincount(flat, minlength=ys.shape[0] * rows * k).view(ys.shape[0], rows, k)
        out[i] = _mi_of_counts(counts.double(), n)
    return out


def _rejects(name, args, kwargs):
    bins = args[1].shape[1]
    if name == "triton" and next_power_of_2(bins + 1) > MAX_TRITON_BINS_PAD:
        return (f"takes at most {MAX_TRITON_BINS_PAD - 1} bins on triton (its (bins, labels) tile lives in "
                f"registers), got {bins}")
    return None


IMPLS = _backend.declare(OP, _backend.Impls(triton=histogram_mutual_info_triton, native=histogram_mutual_info_native,
                                            torch=histogram_mutual_info_torch, rejects=_rejects))


@torch.library.custom_op("fastrepr::histogram_mutual_info", mutates_args=())
def histogram_mutual_info(x: torch.Tensor, edges: torch.Tensor, labels: torch.Tensor | None,
                          num_labels: int) -> torch.Tensor:
    return _backend.dispatch(OP, IMPLS, x, edges, labels, num_labels)


@histogram_mutual_info.register_fake
def _(x, edges, labels, num_labels):
    F = x.shape[1] if labels is None else labels.shape[1]
    return x.new_empty((x.shape[1], F), dtype=torch.float64)
