"""Geometry of representations: uniformity and alignment, effective rank / RankMe, CKA, sparsity.

  uniformity(z, t)        Wang & Isola 2020: log mean_{i != j} exp(-t ||ẑ_i - ẑ_j||²), fused (ops/uniformity.py)
  alignment(x, y, alpha)  Wang & Isola 2020: mean_i ||x̂_i - ŷ_i||^alpha over positive pairs
  effective_rank(z)       Roy & Vetterli 2007: exp of the entropy of the normalized singular values
  rankme(z)               Garrido et al. 2023: the same with p_k = σ_k / ||σ||_1 + 1e-7
  cka(x, y, ...)          Kornblith et al. 2019 (linear, RBF; debiased HSIC of Song et al. 2012 / Nguyen et al. 2021)
  CKAAccumulator          linear CKA over minibatches, in O(D1² + D2² + D1·D2) memory
  hoyer_sparsity(z)       Hoyer 2004, mean over rows; active_units(z, threshold) Burda et al. 2016
All return Python floats except uniformity and alignment, which return differentiable 0-d tensors (usable as
training regularizers) in the accumulation dtype (float32; float64 for float64 input).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import _checks
from ..ops import uniformity as _uniformity
from ..ops._precision import acc_dtype


def _rows(z, name: str, min_rows: int = 1, data: bool = True) -> torch.Tensor:
    """Validate a [N, D] floating tensor; data=False leaves the NaN/Inf check to the op (torch.compile traces)."""
    z = _checks.floating(_checks.tensor(z, name), name)
    _checks.ndim(z, 2, name, "[N, D]")
    _checks.nonempty(z, name, "[N, D]")
    if z.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} rows, got shape {tuple(z.shape)}")
    if data and _checks.data_checks(z):
        _checks.finite(z, name)
    return z


def _unit_rows(z: torch.Tensor) -> torch.Tensor:
    """ẑ = z / ||z|| with autograd, overflow-safe: rows are first divided by their (detached) max |z_d|, so the
    norm never overflows (||1e20·x|| does in float32) and the gradient is exactly that of z / ||z||. Zero rows
    stay zero, as torch.nn.functional.normalize (Wang & Isola's code) leaves them. Memory: one [N, D] copy
    when no gradient is recorded (the max |z_d| is a reduction, the division in place), autograd's when one is."""
    scale = torch.linalg.vector_norm(z.detach(), ord=float("inf"), dim=1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    if torch.is_grad_enabled() and z.requires_grad:
        return torch.nn.functional.normalize(z / scale, dim=1)
    u = z / scale
    return u.div_(torch.linalg.vector_norm(u, dim=1, keepdim=True).clamp_min(1e-12))


def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Uniformity loss of Wang & Isola 2020: log of the mean over pairs i != j of exp(-t ||ẑ_i - ẑ_j||²).

    z: [N, D] floating (N >= 2), rows L2-normalized inside (zero rows stay 0). t > 0. Ordered and unordered
    pairs give the same mean (the number equals ``torch.pdist(ẑ).pow(2).mul(-t).exp().mean().log()``, SimCSE's
    and Wang & Isola's reference expression). Exact, not sampled, and finite for N >= 2 at any t (a streamed
    log-sum-exp with the max subtracted). Returns a differentiable 0-d tensor in float32 (float64 for float64 z).
    Memory: O(N·D) plus one score tile (8 MB on CPU; 64x64 per program on a GPU); never the N×N matrix.
    Time O(N²·D): Triton on CUDA, chunked BLAS on CPU.
    """
    z = _rows(z, "z", 2, data=False)  # NaN/Inf: checked inside the op (on CUDA only under FASTREPR_CHECK=1)
    t = _checks.float_arg(t, "t", positive=True)
    if not math.isfinite(4.0 * t) or 4.0 * t > torch.finfo(torch.float32).max:
        raise ValueError(f"t={t} makes -t·||ẑ_i - ẑ_j||² overflow float32 (need 4t finite)")
    n = z.shape[0]
    tt = torch.tensor(t, dtype=acc_dtype(z.dtype), device=z.device)
    return _uniformity.uniformity_lse(_unit_rows(z).contiguous(), tt) - math.log(n * (n - 1.0))


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Alignment loss of Wang & Isola 2020: mean_i ||x̂_i - ŷ_i||₂^alpha over the positive pairs (x_i, y_i).

    x, y: [N, D] floating, same shape, dtype and device; rows L2-normalized inside. alpha > 0. Returns a
    differentiable 0-d tensor in float32 (float64 for float64 input). Memory O(N·D)."""
    x, y = _rows(x, "x"), _rows(y, "y")
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape [N, D], got {tuple(x.shape)} and {tuple(y.shape)}")
    _checks.same_device(x=x, y=y)
    _checks.same_dtype(x=x, y=y)
    alpha = _checks.float_arg(alpha, "alpha", positive=True)
    acc = acc_dtype(x.dtype)
    return (_unit_rows(x.to(acc)) - _unit_rows(y.to(acc))).norm(dim=1).pow(alpha).mean()


def _spectrum_entropy_exp(z: torch.Tensor, eps: float) -> float:
    s = torch.linalg.svdvals(z.detach().to(torch.float64))  # min(N, D) values: no floor when N <= D
    total = s.sum()
    if not total > 0:
        raise ValueError("z is all zeros: its effective rank is undefined")
    p = s / total + eps
    h = -(p * torch.log(p)).sum() if eps > 0 else -torch.special.xlogy(p, p).sum()
    return float(torch.exp(h))


def effective_rank(z: torch.Tensor, eps: float = 0.0) -> float:
    """Effective rank of Roy & Vetterli 2007: exp(-sum_k p_k log p_k), p_k = σ_k / ||σ||_1 + eps over the
    min(N, D) singular values of z [N, D] (not centered; 0 log 0 = 0). In [1, min(N, D)] for eps = 0.
    Computed in float64; memory O(N·D) (an SVD of z). ValueError for an all-zero z."""
    z = _rows(z, "z")
    eps = _checks.float_arg(eps, "eps")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    return _spectrum_entropy_exp(z, eps)


def rankme(z: torch.Tensor, eps: float = 1e-7) -> float:
    """RankMe of Garrido et al. 2023 (ICML): effective_rank with the paper's p_k = σ_k / ||σ||_1 + 1e-7.
    z: [N, D] embeddings (not centered), any N and D (N <= D uses the N singular values). float64, O(N·D)."""
    return effective_rank(z, eps)


# ------------------------------------------------------------------------------------------- CKA

def _debiased_dot(xty, rx, ry, nx, ny, n):
    """Song et al. 2012's unbiased HSIC times n(n-3), in Kornblith et al.'s feature-space form (rx, ry: squared
    norms of the centered rows; nx, ny their sums)."""
    return xty - n / (n - 2.0) * torch.dot(rx, ry) + nx * ny / ((n - 1.0) * (n - 2.0))


def _linear_cka(x: torch.Tensor, y: torch.Tensor, debiased: bool) -> float:
    x = x - x.mean(0, keepdim=True)
    y = y - y.mean(0, keepdim=True)
    xy = torch.linalg.matrix_norm(x.T @ y) ** 2
    xx = torch.linalg.matrix_norm(x.T @ x)
    yy = torch.linalg.matrix_norm(y.T @ y)
    if debiased:
        n = x.shape[0]
        rx, ry = (x * x).sum(1), (y * y).sum(1)
        nx, ny = rx.sum(), ry.sum()
        xy = _debiased_dot(xy, rx, ry, nx, ny, n)
        xx = torch.sqrt(_debiased_dot(xx ** 2, rx, rx, nx, nx, n))
        yy = torch.sqrt(_debiased_dot(yy ** 2, ry, ry, ny, ny, n))
    return float(xy / (xx * yy))


def _rbf_gram(x: torch.Tensor, threshold: float, chunk: int = 2048) -> torch.Tensor:
    """Kornblith et al.'s gram_rbf: exp(-d²_ij / (2 threshold² median(d²))), the median over all N² entries
    (diagonal included, numpy's median). Built in row chunks; the result itself is N×N."""
    sq = (x * x).sum(1)
    d2 = torch.empty((x.shape[0], x.shape[0]), dtype=x.dtype)
    for r0 in range(0, x.shape[0], chunk):
        d2[r0:r0 + chunk] = sq[r0:r0 + chunk, None] + sq[None, :] - 2.0 * (x[r0:r0 + chunk] @ x.T)
    med = float(np.median(d2.numpy()))
    if not med > 0:
        raise ValueError("the median squared distance is 0 (most rows are equal): the RBF bandwidth is undefined")
    return torch.exp_(d2.mul_(-1.0 / (2.0 * threshold ** 2 * med)))


def _center_gram(k: torch.Tensor, debiased: bool) -> torch.Tensor:
    """Kornblith et al.'s center_gram (unbiased=True: Song et al.'s U-statistic centering, diagonal zeroed)."""
    n = k.shape[0]
    if debiased:
        k.fill_diagonal_(0)
        means = k.sum(0) / (n - 2)
        means -= means.sum() / (2 * (n - 1))
    else:
        means = k.mean(0)
        means -= means.mean() / 2
    k -= means[:, None]
    k -= means[None, :]
    if debiased:
        k.fill_diagonal_(0)
    return k


def cka(x: torch.Tensor, y: torch.Tensor, kernel: str = "linear", debiased: bool = False,
        threshold: float = 1.0) -> float:
    """Centered kernel alignment of Kornblith et al. 2019 between two representations of the same N examples.

    x: [N, D1], y: [N, D2] floating (N >= 2; N >= 4 when debiased). kernel="linear": ||Yᵀ X||_F² /
    (||XᵀX||_F ||YᵀY||_F) after centering, in feature space: memory O(N·(D1 + D2) + D1² + D2² + D1·D2), never
    N×N. kernel="rbf": Gaussian Gram matrices with sigma² = threshold² · median squared distance (the paper's
    choice, its code's threshold): O(N²) memory and time (two N×N float64 matrices), built in row chunks.
    debiased=True: the unbiased HSIC estimator (Song et al. 2012; used for CKA by Nguyen et al. 2021). Computed in
    float64 on x's device (RBF on CPU). Returns a float (biased: in [0, 1]; debiased may be slightly negative)."""
    x, y = _rows(x, "x", 2), _rows(y, "y", 2)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")
    if kernel not in ("linear", "rbf"):
        raise ValueError(f"kernel must be 'linear' or 'rbf', got {kernel!r}")
    if debiased and x.shape[0] < 4:
        raise ValueError(f"debiased CKA needs at least 4 rows (n(n-3) > 0), got {x.shape[0]}")
    x, y = x.detach().to(torch.float64), y.detach().to(torch.float64).to(x.device)
    if kernel == "linear":
        return _linear_cka(x, y, debiased)
    threshold = _checks.float_arg(threshold, "threshold", positive=True)
    gx = _center_gram(_rbf_gram(x.cpu(), threshold), debiased)
    gy = _center_gram(_rbf_gram(y.cpu(), threshold), debiased)
    return float((gx * gy).sum() / (torch.linalg.matrix_norm(gx) * torch.linalg.matrix_norm(gy)))


class CKAAccumulator:
    """Linear CKA (biased or debiased) over minibatches of paired rows, for data that does not fit in memory.

    ``acc.update(x, y)`` with x [B, D1], y [B, D2] (any B, same across the pair); ``acc.value()`` gives what
    ``cka(X, Y, "linear", debiased)`` gives on the concatenated rows (to float64 rounding). Keeps float64 raw
    moments after shifting every row by the first batch's mean (CKA is shift-invariant; the shift keeps the
    centering's cancellation small): sums of x, y, XᵀX, YᵀY, XᵀY, and for the debiased form the sums of
    ||x||²||y||², ||x||⁴, ||y||⁴, ||x||² y, ||y||² x, ||x||² x, ||y||² y. Memory O(D1² + D2² + D1·D2)."""

    def __init__(self, debiased: bool = False):
        self.debiased = bool(debiased)
        self.n = 0

    def update(self, x: torch.Tensor, y: torch.Tensor) -> None:
        x, y = _rows(x, "x"), _rows(y, "y")
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"x and y must have the same number of rows, got {x.shape[0]} and {y.shape[0]}")
        x, y = x.detach().to(torch.float64), y.detach().to(torch.float64).to(x.device)
        if self.n == 0:
            self.shift = (x.mean(0), y.mean(0))
            d1, d2 = x.shape[1], y.shape[1]
            z = lambda *s: torch.zeros(s, dtype=torch.float64, device=x.device)  # noqa: E731
            self.m = dict(sx=z(d1), sy=z(d2), xx=z(d1, d1), yy=z(d2, d2), xy=z(d1, d2), ab=z(), aa=z(), bb=z(),
                          ay=z(d2), bx=z(d1), ax=z(d1), by=z(d2), a=z(), b=z())
        elif (x.shape[1], y.shape[1]) != (self.m["sx"].shape[0], self.m["sy"].shape[0]):
            raise ValueError(f"x and y must keep their widths {self.m['sx'].shape[0]} and {self.m['sy'].shape[0]}")
        x, y = x - self.shift[0], y - self.shift[1]
        a, b = (x * x).sum(1), (y * y).sum(1)
        m = self.m
        m["sx"] += x.sum(0); m["sy"] += y.sum(0)                       # noqa: E702
        m["xx"] += x.T @ x; m["yy"] += y.T @ y; m["xy"] += x.T @ y       # noqa: E702
        m["a"] += a.sum(); m["b"] += b.sum()                             # noqa: E702
        m["ab"] += a @ b; m["aa"] += a @ a; m["bb"] += b @ b             # noqa: E702
        m["ay"] += a @ y; m["bx"] += b @ x; m["ax"] += a @ x; m["by"] += b @ y  # noqa: E702
        self.n += x.shape[0]

    @staticmethod
    def _cross_r(n, suv, su, sv, u_mean, v_mean, su_ab, sau_v, sbv_u, cross):
        """sum_i r_i s_i with r_i = ||u_i - μ||², s_i = ||v_i - ν||², from raw moments (see the class doc)."""
        mu2, nu2 = u_mean @ u_mean, v_mean @ v_mean
        return (su_ab - 2 * (v_mean @ sau_v) + nu2 * su - 2 * (u_mean @ sbv_u) + 4 * (u_mean @ cross @ v_mean)
                - 2 * nu2 * (u_mean @ suv[0]) + mu2 * sv - 2 * mu2 * (v_mean @ suv[1]) + n * mu2 * nu2)

    def value(self) -> float:
        """CKA of everything seen so far (ValueError before 2 rows, or 4 for the debiased form)."""
        n, m = self.n, getattr(self, "m", None)
        if n < (4 if self.debiased else 2):
            raise ValueError(f"CKAAccumulator.value needs at least {4 if self.debiased else 2} rows, got {n}")
        mx, my = m["sx"] / n, m["sy"] / n
        cxy = m["xy"] - n * torch.outer(mx, my)
        cxx = m["xx"] - n * torch.outer(mx, mx)
        cyy = m["yy"] - n * torch.outer(my, my)
        xy, xx, yy = (cxy ** 2).sum(), torch.linalg.matrix_norm(cxx), torch.linalg.matrix_norm(cyy)
        if not self.debiased:
            return float(xy / (xx * yy))
        nx, ny = torch.trace(cxx), torch.trace(cyy)
        rxy = self._cross_r(n, (m["sx"], m["sy"]), m["a"], m["b"], mx, my, m["ab"], m["ay"], m["bx"], m["xy"])
        rxx = self._cross_r(n, (m["sx"], m["sx"]), m["a"], m["a"], mx, mx, m["aa"], m["ax"], m["ax"], m["xx"])
        ryy = self._cross_r(n, (m["sy"], m["sy"]), m["b"], m["b"], my, my, m["bb"], m["by"], m["by"], m["yy"])

        def dd(v, r, p, q):
            return v - n / (n - 2.0) * r + p * q / ((n - 1.0) * (n - 2.0))
        return float(dd(xy, rxy, nx, ny) / torch.sqrt(dd(xx ** 2, rxx, nx, nx) * dd(yy ** 2, ryy, ny, ny)))


# ------------------------------------------------------------------------------------------- sparsity

def hoyer_sparsity(z: torch.Tensor) -> float:
    """Hoyer 2004 sparsity, mean over rows: (sqrt(d) - ||z_i||_1 / ||z_i||_2) / (sqrt(d) - 1), in [0, 1] (1: one
    nonzero entry, 0: all entries equal in magnitude). z: [N, d] floating, d >= 2. All-zero rows are skipped (the
    ratio is 0/0); ValueError if every row is zero. float64; memory O(N·d) for the |z| temporaries."""
    z = _rows(z, "z")
    d = z.shape[1]
    if d < 2:
        raise ValueError(f"z needs at least 2 columns for Hoyer sparsity, got shape {tuple(z.shape)}")
    z = z.detach().to(torch.float64)
    scale = z.abs().amax(1, keepdim=True)
    keep = scale.squeeze(1) > 0
    if not keep.any():
        raise ValueError("z has only zero rows: Hoyer sparsity is undefined")
    u = z[keep] / scale[keep]
    ratio = u.abs().sum(1) / u.norm(dim=1)
    return float(((math.sqrt(d) - ratio) / (math.sqrt(d) - 1)).mean())


def active_units(z: torch.Tensor, threshold: float = 1e-2) -> float:
    """Fraction of the D dimensions of z [N, D] (N >= 2) whose variance over the rows exceeds ``threshold`` (Burda
    et al. 2016's active units of a VAE, applied to posterior means; unbiased variance, as torch.var). float64."""
    z = _rows(z, "z", 2)
    threshold = _checks.float_arg(threshold, "threshold")
    return float((z.detach().to(torch.float64).var(0) > threshold).double().mean())
