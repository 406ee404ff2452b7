"""fastrepr.beta_vae_loss (fused Bernoulli-logits reconstruction + the β-VAE family's regularizers) against the
float64 oracles of fastrepr.reference (disentanglement_lib's formulas), on every implementation of the
reconstruction op, with gradients, gradcheck, bf16, target dtypes and bad input."""
import pytest
import torch

import fastrepr
from fastrepr import reference
from fastrepr.ops import vae as ops
from utils import assert_close, impl_params

IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)
NON_TC = ["beta", "annealed", "dip-i", "dip-ii"]
SETTINGS = dict(capacity=3.0, gamma=100.0, lambda_od=2.0)


def _batch(B, pixels, D, dtype, target, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn((B, *pixels), generator=g, dtype=torch.float64)).to(dtype).to(device)
    bits = torch.rand((B, *pixels), generator=g) > 0.6
    x = {"uint8": bits.to(torch.uint8), "bool": bits, "float": torch.rand((B, *pixels), generator=g).to(dtype)}[target]
    mu = torch.randn(B, D, generator=g, dtype=torch.float64).to(dtype).to(device)
    logvar = (0.5 * torch.randn(B, D, generator=g, dtype=torch.float64)).to(dtype).to(device)
    return logits, x.to(device), mu, logvar


def _oracle(logits, x, mu, logvar, beta, objective, **kw):
    d = lambda t: t.detach().double().cpu()  # noqa: E731
    xx = x.cpu() if not x.is_floating_point() else d(x)
    return reference.beta_vae_loss(d(logits), xx, d(mu), d(logvar), beta, objective=objective, **kw)


@pytest.mark.parametrize("objective", NON_TC)
@pytest.mark.parametrize("target", ["uint8", "bool", "float"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@IMPLS
def test_values_and_gradients_match_oracle(backend, objective, target, dtype):
    if backend.name == "triton" and dtype == torch.float64:
        pytest.skip("the triton kernel takes no float64 (dispatch rejects it)")
    logits, x, mu, logvar = _batch(5, (3, 7, 9), 6, dtype, target, backend.device)  # odd sizes
    for t in (logits, mu, logvar):
        t.requires_grad_(True)
    loss = fastrepr.beta_vae_loss(logits, x, mu, logvar, 4.0, objective=objective, **SETTINGS)
    assert loss.dtype == dtype and loss.shape == ()
    leaves = [t.detach().double().cpu().requires_grad_(True) for t in (logits, mu, logvar)]
    xx = x.cpu() if not x.is_floating_point() else x.double().cpu()
    ref = reference.beta_vae_loss(leaves[0], xx, leaves[1], leaves[2], 4.0, objective=objective, **SETTINGS)
    assert_close(loss, ref, what=objective)
    grads = torch.autograd.grad(loss, (logits, mu, logvar))
    for g, r, name in zip(grads, torch.autograd.grad(ref, leaves), ("logits", "mu", "logvar")):
        assert_close(g, r, dtype, grad=True, what=f"{objective} d{name}")


@pytest.mark.parametrize("objective", NON_TC)
def test_gradcheck_float64(objective):
    logits, x, mu, logvar = _batch(3, (5,), 3, torch.float64, "float")
    inputs = tuple(t.requires_grad_(True) for t in (logits, mu, logvar))
    assert torch.autograd.gradcheck(
        lambda s, m, lv: fastrepr.beta_vae_loss(s, x, m, lv, 2.0, objective=objective, **SETTINGS), inputs)


@IMPLS
def test_bfloat16_error_within_twice_pytorch(backend):
    logits, x, mu, logvar = _batch(8, (64,), 4, torch.bfloat16, "uint8", backend.device)
    ours = fastrepr.beta_vae_loss(logits, x, mu, logvar, 4.0)
    ref = _oracle(logits, x, mu, logvar, 4.0, "beta")
    plain = (torch.nn.functional.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
             .sum(1) + 4.0 * 0.5 * (mu * mu + logvar.exp() - logvar - 1).sum(1)).mean()
    assert abs(float(ours) - float(ref)) <= max(2 * abs(float(plain) - float(ref)), 1e-3 * abs(float(ref)))


def test_reductions_and_parts():
    logits, x, mu, logvar = _batch(4, (10,), 3, torch.float64, "bool")
    per = fastrepr.beta_vae_loss(logits, x, mu, logvar, 2.0, reduction="none")
    assert per.shape == (4,)
    assert_close(fastrepr.beta_vae_loss(logits, x, mu, logvar, 2.0, reduction="sum"), per.sum())
    loss, parts = fastrepr.beta_vae_loss(logits, x, mu, logvar, 2.0, return_parts=True)
    assert_close(loss, parts["recon"] + 2.0 * parts["kl"])
    assert_close(parts["elbo"], -(parts["recon"] + parts["kl"]))
    module = fastrepr.BetaVAELoss(2.0)
    assert_close(module(logits, x, mu, logvar), loss)


def test_uint8_and_bool_and_float_targets_agree():
    logits, x, mu, logvar = _batch(4, (8, 8), 3, torch.float32, "bool")
    a = fastrepr.beta_vae_loss(logits, x, mu, logvar)
    assert_close(fastrepr.beta_vae_loss(logits, x.to(torch.uint8), mu, logvar), a)
    assert_close(fastrepr.beta_vae_loss(logits, x.float(), mu, logvar), a)


def test_torch_chunks_cover_every_row(monkeypatch):
    monkeypatch.setattr(ops, "CHUNK_ELEMENTS", 17)  # several rows per chunk is impossible: one row at a time
    logits, x, mu, logvar = _batch(5, (33,), 2, torch.float64, "uint8")
    assert_close(ops.bernoulli_nll_torch(logits, x), reference.bernoulli_nll(logits, x))


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(x=torch.full((2, 4), 255, dtype=torch.uint8)), ValueError, "uint8"),
    (dict(x=torch.full((2, 4), 1.5)), ValueError, "[0, 1]"),
    (dict(x=torch.zeros(2, 4, dtype=torch.int32)), TypeError, "x must"),
    (dict(x=torch.zeros(2, 5)), ValueError, "x must have"),
    (dict(logits=torch.zeros(2, 4, dtype=torch.int64)), TypeError, "logits"),
    (dict(logits=torch.full((2, 4), float("nan"))), ValueError, "logits"),
    (dict(mu=torch.zeros(3, 2)), ValueError, "mu"),
    (dict(logvar=torch.zeros(2, 3)), ValueError, "logvar"),
    (dict(logvar=torch.full((2, 2), float("inf"))), ValueError, "logvar"),
    (dict(beta=-1.0), ValueError, "beta"),
    (dict(beta=float("nan")), ValueError, "beta"),
    (dict(objective="factor"), ValueError, "objective"),
    (dict(objective="tcvae"), ValueError, "z="),
    (dict(objective="annealed", capacity=-1.0), ValueError, "capacity"),
    (dict(reduction="avg"), ValueError, "reduction"),
])
def test_bad_input_names_the_argument(kwargs, exc, words):
    args = dict(logits=torch.zeros(2, 4), x=torch.zeros(2, 4), mu=torch.zeros(2, 2), logvar=torch.zeros(2, 2))
    args.update(kwargs)
    with pytest.raises(exc, match=None) as info:
        fastrepr.beta_vae_loss(**args)
    assert words in str(info.value)


def test_overflowing_logvar_is_an_error_not_nan():
    logits, x, mu, _ = _batch(2, (4,), 2, torch.float32, "bool")
    with pytest.raises(ValueError, match="overflow"):
        fastrepr.beta_vae_loss(logits, x, mu, torch.full((2, 2), 100.0))
