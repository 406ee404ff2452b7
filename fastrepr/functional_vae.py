"""Validated public functions of the β-VAE family's objectives (issue 15): the reconstruction + KL of β-VAE and
AnnealedVAE, DIP-VAE's covariance penalties, and β-TCVAE's total correlation, on the fused ops in
``fastrepr/ops/vae.py`` and ``fastrepr/ops/total_correlation.py``. Split from ``functional.py`` to keep files
under ~600 lines; the shared argument checks come from there.
"""
from __future__ import annotations

import math

import torch

from . import _checks
from .functional import _reduce, _reduction
from .ops._precision import acc_dtype
from .ops import total_correlation as _total_correlation
from .ops import vae as _vae

VAE_OBJECTIVES = ("beta", "annealed", "dip-i", "dip-ii", "tcvae")


def _check_vae_inputs(logits, x, mu, logvar, z):
    _checks.floating(logits, "logits")
    _checks.tensor(x, "x")
    if x.dtype not in _vae.TARGET_DTYPES:
        raise TypeError(f"x must be uint8 (0/1), bool or a float tensor in [0, 1], got {x.dtype}")
    if logits.ndim < 2 or logits.shape[0] == 0 or logits[0].numel() == 0:
        raise ValueError(f"logits must be [B, ...] with B >= 1 and at least one pixel, got {tuple(logits.shape)}")
    if x.shape != logits.shape:
        raise ValueError(f"x must have logits' shape {tuple(logits.shape)}, got {tuple(x.shape)}")
    for name, t in (("mu", mu), ("logvar", logvar)) + ((("z", z),) if z is not None else ()):
        _checks.floating(t, name)
        _checks.ndim(t, 2, name, "[B, D]")
        if t.shape[0] != logits.shape[0] or t.shape[1] == 0:
            raise ValueError(f"{name} must be [B={logits.shape[0]}, D >= 1], got {tuple(t.shape)}")
    if logvar.shape != mu.shape or (z is not None and z.shape != mu.shape):
        raise ValueError(f"mu, logvar (and z) must share one shape [B, D], got {tuple(mu.shape)}, "
                         f"{tuple(logvar.shape)}" + (f", {tuple(z.shape)}" if z is not None else ""))
    _checks.same_dtype(mu=mu, logvar=logvar, **({"z": z} if z is not None else {}))
    _checks.same_device(logits=logits, x=x, mu=mu, logvar=logvar, **({"z": z} if z is not None else {}))
    if _checks.data_checks(logits):
        for name, t in (("logits", logits), ("mu", mu), ("logvar", logvar)) + ((("z", z),) if z is not None else ()):
            _checks.finite(t, name)
        if x.numel() and x.dtype != torch.bool:
            lo, hi = torch.aminmax(x.reshape(-1))
            lo, hi = float(lo), float(hi)
            if x.dtype == torch.uint8 and hi > 1:
                raise ValueError(f"x is uint8 with values up to {hi:g}; uint8 targets must be 0/1 (as dSprites "
                                 "stores them). Pass a bool tensor, or x.float() / 255 for grey levels")
            if not (0.0 <= lo and hi <= 1.0):
                raise ValueError(f"x must lie in [0, 1] (Bernoulli targets), got values in [{lo:g}, {hi:g}]")


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """[B] KL(N(mu, diag exp(logvar)) || N(0, I)) = 1/2 sum_d (mu² + exp(logvar) - logvar - 1), closed form,
    accumulated in float32 (float64 for float64). mu, logvar: [B, D]. Memory O(B·D)."""
    acc = acc_dtype(mu.dtype)
    m, lv = mu.to(acc), logvar.to(acc)
    return 0.5 * (m * m + torch.exp(lv) - lv - 1).sum(1)


def dip_covariance_penalty(mu: torch.Tensor, logvar: torch.Tensor, variant: str, lambda_od: float,
                           lambda_d: float) -> torch.Tensor:
    """DIP-VAE's penalty (Kumar et al. 2018; disentanglement_lib ``DIPVAE.regularizer``): with Cov the batch
    covariance of mu (E[mu muᵀ] - E[mu] E[mu]ᵀ, divided by B), plus E[diag exp(logvar)] for "ii",
    lambda_od · sum_{k != l} Cov_kl² + lambda_d · sum_k (Cov_kk - 1)². A scalar; memory O(B·D + D²)."""
    acc = acc_dtype(mu.dtype)
    m = mu.to(acc)
    centered = m - m.mean(0)
    cov = centered.t() @ centered / m.shape[0]
    if variant == "dip-ii":
        cov = cov + torch.diag(torch.exp(logvar.to(acc)).mean(0))
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * (off * off).sum() + lambda_d * ((diag - 1) ** 2).sum()


def total_correlation(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *, estimator: str = "mws",
                      dataset_size: int | None = None) -> torch.Tensor:
    """[B] β-TCVAE total-correlation terms log q(z_i) - sum_d log q(z_id) (Chen et al. 2018), from the fused
    streaming log-sum-exp over all B×B pairs (fastrepr.ops.total_correlation).

    z: [B, D] sampled codes, mu, logvar: [B, D] the encoder's parameters (same dtype, B >= 2). estimator "mws"
    (minibatch weighted sampling; dataset_size=None gives disentanglement_lib's form, without the constant
    (D - 1) log(N·B), which changes neither gradients nor rankings) or "mss" (stratified; needs dataset_size >= B).
    Memory O(B·D) plus a bounded tile: never the [B, B, D] log densities. Gradients to z, mu and logvar.
    """
    if estimator not in ("mws", "mss"):
        raise ValueError(f"estimator must be 'mws' or 'mss', got {estimator!r}")
    for name, t in (("z", z), ("mu", mu), ("logvar", logvar)):
        _checks.floating(t, name)
        _checks.ndim(t, 2, name, "[B, D]")
        if t.shape != z.shape or t.shape[1] == 0:
            raise ValueError(f"z, mu and logvar must share one shape [B, D >= 1], got {tuple(t.shape)} for {name}")
        if _checks.data_checks(t):
            _checks.finite(t, name)
    _checks.same_dtype(z=z, mu=mu, logvar=logvar)
    _checks.same_device(z=z, mu=mu, logvar=logvar)
    B, D = z.shape
    if B < 2:
        raise ValueError(f"the total correlation needs a batch of B >= 2 codes, got B={B}")
    if dataset_size is not None:
        dataset_size = _checks.int_arg(dataset_size, "dataset_size", B)
    elif estimator == "mss":
        raise ValueError("estimator='mss' needs dataset_size (the number of training examples N >= B)")
    lse_d, lse_j = _total_correlation.tc_log_density_lse(z, mu, logvar, dataset_size if estimator == "mss" else 0)
    tc = lse_j - lse_d.sum(1)
    if estimator == "mws" and dataset_size is not None:
        tc = tc + (D - 1) * math.log(dataset_size * B)  # -log(NB) jointly, -D log(NB) in the product
    return tc


def beta_vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, beta=1.0, *,
                  objective: str = "beta", capacity: float = 0.0, gamma: float = 1000.0, lambda_od: float = 10.0,
                  lambda_d: float | None = None, dataset_size: int | None = None, estimator: str = "mws",
                  z: torch.Tensor | None = None, reduction: str = "mean", return_parts: bool = False):
    """The β-VAE family's training loss, as disentanglement_lib (Locatello et al. 2019) defines it.

    logits: [B, ...] decoder logits (float16/bfloat16/float32/float64); x: the targets, same shape, uint8 0/1
    (dSprites' convention; other uint8 values raise), bool, or float in [0, 1]; read in its own dtype (never
    copied to a per-pixel float32 batch). mu, logvar: [B, D] encoder outputs; z: [B, D] the sampled codes
    (objective "tcvae" only).

    recon[b] = sum over pixels of the Bernoulli negative log-likelihood of x under sigmoid(logits) and
    kl[b] = KL(q(z|x_b) || N(0, I)) in closed form, then, with KL = mean_b kl[b]:
      "beta"     (Higgins et al. 2017):  recon + beta · kl
      "annealed" (Burgess et al. 2018):  recon + gamma · |KL - capacity|   (capacity C: the caller anneals it)
      "dip-i" / "dip-ii" (Kumar et al. 2018): recon + beta · kl + dip_covariance_penalty(lambda_od, lambda_d),
                 lambda_d defaulting to disentanglement_lib's study: 10 · lambda_od ("dip-i"), lambda_od ("dip-ii")
      "tcvae"    (Chen et al. 2018):     recon + kl + (beta - 1) · tc   (tc: total_correlation(z, mu, logvar))
    Batch-level terms (|KL - C|, the DIP penalty, and nothing else) are added once per example, so that
    reduction="mean" is disentanglement_lib's loss; "sum" is B times it; "none" gives [B] per-example values.
    Result: float32 (float64 for float64 logits). return_parts=True returns (loss, {"recon", "kl", "tc"
    (tcvae), "dip" (dip), "elbo"}) with batch means (detached).

    Memory: O(B·D) beyond the inputs and dlogits; the reconstruction reads x in chunks or tiles.
    Raises TypeError/ValueError naming the argument for wrong dtypes, shapes, devices, NaN/Inf, targets outside
    [0, 1] and bad settings (on CUDA the data checks need FASTREPR_CHECK=1).
    """
    if objective not in VAE_OBJECTIVES:
        raise ValueError(f"objective must be one of {VAE_OBJECTIVES}, got {objective!r}")
    _reduction(reduction)
    _check_vae_inputs(logits, x, mu, logvar, z)
    beta = _checks.float_arg(beta, "beta")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if objective == "tcvae" and z is None:
        raise ValueError("objective='tcvae' needs z=, the codes sampled from q(z|x) (the reparameterized batch)")
    B = logits.shape[0]
    recon = _vae.bernoulli_nll(logits.reshape(B, -1), x.reshape(B, -1))
    kl = gaussian_kl(mu, logvar).to(recon.dtype)
    parts = {}
    if objective == "beta":
        loss = recon + beta * kl
    elif objective == "annealed":
        capacity, gamma = _checks.float_arg(capacity, "capacity"), _checks.float_arg(gamma, "gamma")
        if capacity < 0 or gamma < 0:
            raise ValueError(f"capacity and gamma must be >= 0, got {capacity} and {gamma}")
        loss = recon + gamma * (kl.mean() - capacity).abs()
    elif objective in ("dip-i", "dip-ii"):
        lambda_od = _checks.float_arg(lambda_od, "lambda_od")
        lambda_d = (lambda_od * (10.0 if objective == "dip-i" else 1.0) if lambda_d is None
                    else _checks.float_arg(lambda_d, "lambda_d"))
        if lambda_od < 0 or lambda_d < 0:
            raise ValueError(f"lambda_od and lambda_d must be >= 0, got {lambda_od} and {lambda_d}")
        dip = dip_covariance_penalty(mu, logvar, objective, lambda_od, lambda_d).to(recon.dtype)
        loss, parts["dip"] = recon + beta * kl + dip, dip
    else:
        tc = total_correlation(z, mu, logvar, estimator=estimator, dataset_size=dataset_size).to(recon.dtype)
        loss, parts["tc"] = recon + kl + (beta - 1.0) * tc, tc.mean()
    if _checks.data_checks(loss) and not _checks.all_finite(loss):
        raise ValueError(f"the {objective!r} loss overflows {str(loss.dtype)[6:]} for this batch (the inputs are "
                         "finite; a logvar far below -80 makes exp(-logvar) overflow float32)")
    loss = _reduce(loss, reduction)
    if not return_parts:
        return loss
    parts.update(recon=recon.mean(), kl=kl.mean(), elbo=-(recon.mean() + kl.mean()))
    return loss, {k: v.detach() for k, v in parts.items()}
