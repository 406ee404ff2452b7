"""Streaming log q(z) of β-TCVAE: the B×B×D log-density log-sum-exps, in O(B·D) memory, with their backward.

β-TCVAE (Chen et al. 2018, "Isolating Sources of Disentanglement in VAEs") estimates the aggregate posterior of
sample z_i [D] (drawn from q(z | x_i) = N(mu_i, diag exp(logvar_i))) from the minibatch:

    l[i, j, d] = log N(z_id; mu_jd, exp(lv_jd)) = -1/2 ((z_id - mu_jd)^2 exp(-lv_jd) + lv_jd + log 2π)
    lse_dims[i, d] = log sum_j w[i, j] exp l[i, j, d]             (log q(z_id), one marginal per dimension)
    lse_joint[i]   = log sum_j w[i, j] exp sum_d l[i, j, d]       (log q(z_i), jointly)

with log-weights w: all 0 for minibatch weighted sampling (MWS; the -log(N·B) normalization is a constant that
fastrepr.functional adds), or for stratified sampling (MSS, Chen et al. Appendix C) with M = B - 1:
w = 1/N on j = i, (N - M)/(N M) on j = (i + 1) mod B, 1/M elsewhere (each row sums to 1). TC_i = lse_joint[i] -
sum_d lse_dims[i, d]. disentanglement_lib's ``total_correlation`` is MWS without the constant (its [B, B, D]
tensor is materialized, 4096² x 10 x 4 bytes = 671 MB at B = 4096, D = 10).

Backward: with upstream gradients g_d [B, D] and g_j [B], the weight of pair (i, j) in dimension d is
    G[i, j, d] = g_d[i, d] P_d[i, j, d] + g_j[i] P_j[i, j],
    P_d = exp(w + l - lse_dims[i, d]) (a softmax over j), P_j = exp(w + sum_d l - lse_joint[i]),
and with u = (z_id - mu_jd) exp(-lv_jd):  dl/dz_id = -u, dl/dmu_jd = u, dl/dlv_jd = (u (z_id - mu_jd) - 1) / 2, so
    dz[i] = -sum_j G u,   dmu[j] = sum_i G u,   dlv[j] = sum_i G (u (z - mu) - 1) / 2.
Every exponent is <= 0 (lse >= each term), so nothing overflows. The statistics are recomputed tile by tile from
the saved z, mu, logvar and the O(B·D) outputs: nothing of size B² is stored.

Implementations (IMPLS, BACKWARD_IMPLS): torch (row chunks i of a [chunk, B, D] dense tile, chunk =
CHUNK_ELEMENTS / (B·D) rows, float64 anywhere) only, in this version. A Triton kernel (online log-sum-exp over
column tiles of a [BLOCK_I, BLOCK_J, D] tile, rows owning dz and columns owning dmu/dlv as in ops/contrastive.py)
is the next step; a native one would pay on CPU (the chunked torch tile makes ~8 passes over [chunk, B, D]).
"""
from __future__ import annotations

import math

import torch

from .. import _backend
from ._precision import acc_dtype

OP = "tc_log_density_lse"
BACKWARD_OP = "tc_log_density_lse_backward"
CHUNK_ELEMENTS = 1 << 20  # the torch implementation's [chunk, B, D] tile: 4 MB in fp32 (a few of them live)
LOG_2PI = math.log(2 * math.pi)


def mss_log_weights(B: int, dataset_size: int, rows: slice, device, dtype) -> torch.Tensor:
    """[len(rows), B] log-weights of stratified sampling (module docstring) for batch rows ``rows``."""
    M = B - 1
    i = torch.arange(B, device=device)[rows]
    j = torch.arange(B, device=device)
    w = torch.full((i.numel(), B), math.log(1.0 / M), dtype=dtype, device=device)
    w[j[None, :] == ((i + 1) % B)[:, None]] = math.log((dataset_size - M) / (dataset_size * M)) \
        if dataset_size > M else float("-inf")
    w[j[None, :] == i[:, None]] = math.log(1.0 / dataset_size)
    return w


def _chunk(B: int, D: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(B * D, 1))


def _tile(z, mu, lv, rows, dataset_size):
    """(l [c, B, D], w [c, B, 1] or None, diff, u) for batch rows ``rows`` in the accumulation dtype."""
    diff = z[rows, None, :] - mu[None, :, :]
    u = diff * torch.exp(-lv)[None]
    l = -0.5 * (diff * u + lv[None] + LOG_2PI)
    w = None if dataset_size <= 0 else mss_log_weights(z.shape[0], dataset_size, rows, z.device, z.dtype)[..., None]
    return l, w, diff, u


def tc_log_density_lse_torch(z, mu, logvar, dataset_size: int):
    """(lse_dims [B, D], lse_joint [B]) in the accumulation dtype; dataset_size > 0: MSS weights, else MWS (all
    0). Extra memory O(B·D + CHUNK_ELEMENTS), never the [B, B, D] tensor."""
    acc = acc_dtype(z.dtype)
    z, mu, lv = z.to(acc), mu.to(acc), logvar.to(acc)
    B, D = z.shape
    lse_d = torch.empty((B, D), dtype=acc, device=z.device)
    lse_j = torch.empty(B, dtype=acc, device=z.device)
    step = _chunk(B, D)
    for i0 in range(0, B, step):
        rows = slice(i0, i0 + step)
        l, w, _, _ = _tile(z, mu, lv, rows, dataset_size)
        joint = l.sum(2)
        if w is not None:
            l, joint = l + w, joint + w[..., 0]
        lse_d[rows] = torch.logsumexp(l, 1)
        lse_j[rows] = torch.logsumexp(joint, 1)
    return lse_d, lse_j


def tc_log_density_lse_backward_torch(z, mu, logvar, dataset_size: int, lse_d, lse_j, g_d, g_j):
    """(dz, dmu, dlogvar) in the inputs' dtype (module docstring), over the same row chunks as forward."""
    acc = acc_dtype(z.dtype)
    zc, mc, lv = z.to(acc), mu.to(acc), logvar.to(acc)
    B, D = zc.shape
    g_d, g_j, lse_d, lse_j = g_d.to(acc), g_j.to(acc), lse_d.to(acc), lse_j.to(acc)
    dz = torch.empty_like(zc)
    dmu = torch.zeros_like(zc)
    dlv = torch.zeros_like(zc)
    step = _chunk(B, D)
    for i0 in range(0, B, step):
        rows = slice(i0, i0 + step)
        l, w, diff, u = _tile(zc, mc, lv, rows, dataset_size)
        joint = l.sum(2, keepdim=True)
        if w is not None:
            l, joint = l + w, joint + w
        G = g_d[rows, None, :] * torch.exp(l - lse_d[rows, None, :]) + \
            g_j[rows, None, None] * torch.exp(joint - lse_j[rows, None, None])
        Gu = G * u
        dz[rows] = -Gu.sum(1)
        dmu += Gu.sum(0)
        dlv += 0.5 * (Gu * diff - G).sum(0)
    return dz.to(z.dtype), dmu.to(mu.dtype), dlv.to(logvar.dtype)


IMPLS = _backend.declare(OP, _backend.Impls(torch=tc_log_density_lse_torch))
BACKWARD_IMPLS = _backend.declare(BACKWARD_OP, _backend.Impls(torch=tc_log_density_lse_backward_torch))


@torch.library.custom_op("fastrepr::tc_log_density_lse", mutates_args=())
def tc_log_density_lse(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
                       dataset_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(log q(z_id) [B, D], log q(z_i) [B]) up to MWS's constant (validated by fastrepr.functional)."""
    return _backend.dispatch(OP, IMPLS, z, mu, logvar, dataset_size)


@tc_log_density_lse.register_fake
def _(z, mu, logvar, dataset_size):
    acc = acc_dtype(z.dtype)
    return z.new_empty(z.shape, dtype=acc), z.new_empty(z.shape[0], dtype=acc)


@torch.library.custom_op("fastrepr::tc_log_density_lse_backward", mutates_args=())
def tc_log_density_lse_backward(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                                lse_d: torch.Tensor, lse_j: torch.Tensor, g_d: torch.Tensor,
                                g_j: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return _backend.dispatch(BACKWARD_OP, BACKWARD_IMPLS, z, mu, logvar, dataset_size, lse_d, lse_j, g_d, g_j)


@tc_log_density_lse_backward.register_fake
def _(z, mu, logvar, dataset_size, lse_d, lse_j, g_d, g_j):
    return torch.empty_like(z), torch.empty_like(mu), torch.empty_like(logvar)


def _setup(ctx, inputs, output):
    z, mu, logvar, dataset_size = inputs
    ctx.dataset_size = dataset_size
    ctx.save_for_backward(z, mu, logvar, *output)


def _backward(ctx, g_d, g_j):
    z, mu, logvar, lse_d, lse_j = ctx.saved_tensors
    g_d = torch.zeros_like(lse_d) if g_d is None else g_d
    g_j = torch.zeros_like(lse_j) if g_j is None else g_j
    dz, dmu, dlv = tc_log_density_lse_backward(z, mu, logvar, ctx.dataset_size, lse_d, lse_j, g_d, g_j)
    return dz, dmu, dlv, None


tc_log_density_lse.register_autograd(_backward, setup_context=_setup)
