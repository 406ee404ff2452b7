"""The streaming β-TCVAE log-density log-sum-exps (fastrepr.ops.total_correlation) and fastrepr.total_correlation
against the dense [B, B, D] float64 oracle (fastrepr.reference.total_correlation, disentanglement_lib's formula
and Chen et al.'s MWS/MSS), on every implementation: values, gradients, gradcheck, chunking, bad input."""
import pytest
import torch

import fastrepr
from fastrepr import reference
from fastrepr.ops import total_correlation as ops
from utils import assert_close, impl_params

IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)
ESTIMATORS = [("mws", None), ("mws", 1000), ("mss", 1000), ("mss", 9)]  # N = B + 2: a tiny stratum weight


def _codes(B, D, dtype, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(B, D, generator=g, dtype=torch.float64)
    logvar = 0.7 * torch.randn(B, D, generator=g, dtype=torch.float64) - 1
    z = mu + torch.randn(B, D, generator=g, dtype=torch.float64) * (0.5 * logvar).exp()
    return [t.to(dtype).to(device) for t in (z, mu, logvar)]


@pytest.mark.parametrize("estimator, N", ESTIMATORS)
@pytest.mark.parametrize("B, D", [(7, 5), (37, 10), (2, 1)])  # odd sizes, beyond one 16/32 tile, the smallest
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@IMPLS
def test_values_and_gradients_match_dense_oracle(backend, estimator, N, B, D, dtype):
    if backend.name == "triton" and dtype == torch.float64:
        pytest.skip("the triton kernels take no float64 (dispatch rejects it)")
    N = None if N is None else max(N, B)
    inputs = [t.requires_grad_(True) for t in _codes(B, D, dtype, backend.device)]
    tc = fastrepr.total_correlation(*inputs, estimator=estimator, dataset_size=N)
    leaves = [t.detach().double().cpu().requires_grad_(True) for t in inputs]
    ref = reference.total_correlation(*leaves, estimator, N)
    # TC is a difference of log-sum-exps of size ~D·|l|: the 1e-5 bar is relative to those terms' scale
    with torch.no_grad():
        dens = reference.gaussian_log_density(leaves[0][:, None], leaves[1][None], leaves[2][None])
        scale = float(dens.abs().sum(2).max())
    assert_close(tc, ref, what="tc", scale=max(1.0, scale / max(float(ref.abs().max()), 1e-3)))
    w = torch.randn(B, dtype=torch.float64)
    grads = torch.autograd.grad((tc * w.to(tc.dtype)).sum(), inputs)
    for g, r, name in zip(grads, torch.autograd.grad((ref * w).sum(), leaves), ("z", "mu", "logvar")):
        assert_close(g, r, dtype, grad=True, what=f"d{name}")


@pytest.mark.parametrize("estimator, N", [("mws", None), ("mss", 20)])
def test_gradcheck_float64(estimator, N):
    inputs = tuple(t.requires_grad_(True) for t in _codes(6, 3, torch.float64))
    assert torch.autograd.gradcheck(lambda *a: fastrepr.total_correlation(*a, estimator=estimator, dataset_size=N),
                                    inputs)
    lse = lambda *a: ops.tc_log_density_lse(*a, 0)  # noqa: E731  both outputs, each alone in the graph
    assert torch.autograd.gradcheck(lambda *a: lse(*a)[0], inputs)
    assert torch.autograd.gradcheck(lambda *a: lse(*a)[1], inputs)


def test_torch_chunks_give_the_same_result(monkeypatch):
    z, mu, lv = _codes(23, 4, torch.float64)
    whole = ops.tc_log_density_lse_torch(z, mu, lv, 50)
    monkeypatch.setattr(ops, "CHUNK_ELEMENTS", 1)  # one row per chunk
    for a, b in zip(ops.tc_log_density_lse_torch(z, mu, lv, 50), whole):
        assert_close(a, b)


def test_tcvae_objective_is_kl_plus_beta_minus_one_tc():
    z, mu, lv = _codes(9, 4, torch.float64)
    logits, x = torch.randn(9, 12, dtype=torch.float64), torch.rand(9, 12) > 0.5
    loss, parts = fastrepr.beta_vae_loss(logits, x, mu, lv, 6.0, objective="tcvae", z=z, return_parts=True)
    assert_close(loss, parts["recon"] + parts["kl"] + 5.0 * parts["tc"])
    assert_close(loss, reference.beta_vae_loss(logits, x, mu, lv, 6.0, objective="tcvae", z=z))


@pytest.mark.parametrize("kwargs, exc, words", [
    (dict(estimator="mss"), ValueError, "dataset_size"),
    (dict(estimator="mss", dataset_size=3), ValueError, "dataset_size"),
    (dict(estimator="exact"), ValueError, "estimator"),
    (dict(dataset_size=4.5), TypeError, "dataset_size"),
])
def test_bad_settings(kwargs, exc, words):
    z, mu, lv = _codes(5, 2, torch.float32)
    with pytest.raises(exc) as info:
        fastrepr.total_correlation(z, mu, lv, **kwargs)
    assert words in str(info.value)


def test_one_code_is_an_error():
    z, mu, lv = _codes(1, 2, torch.float32)
    with pytest.raises(ValueError, match="B >= 2"):
        fastrepr.total_correlation(z, mu, lv)


@IMPLS
def test_bfloat16_codes_accumulate_in_float32(backend):
    """bf16 inputs are read as they are and everything after is fp32: the result equals the oracle on the
    bf16-rounded inputs at fp32's tolerance (scaled like the values test), not bf16's."""
    z, mu, lv = _codes(19, 6, torch.bfloat16, backend.device)
    tc = fastrepr.total_correlation(z, mu, lv)
    assert tc.dtype == torch.float32
    ref = reference.total_correlation(*(t.double().cpu() for t in (z, mu, lv)))
    assert_close(tc, ref, torch.float32, scale=50.0)
