"""DCL / DCLW (Yeh et al. 2022) on every implementation against the float64 oracle (values, gradients,
learnable temperature), gradcheck, bad input, and lightly's DCLLoss / DCLWLoss when lightly is importable."""
import pytest
import torch

import fastrepr
from fastrepr import reference
from fastrepr.ops import contrastive as ops
from utils import assert_close, impl_params

IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)


def _grads(fn, tensors):
    leaves = [t.detach().clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves)
    out.backward()
    return out.detach(), [leaf.grad for leaf in leaves]


@IMPLS
@pytest.mark.parametrize("n, d", [(2, 3), (9, 16), (33, 70)])
@pytest.mark.parametrize("sigma", [None, 0.5])
def test_dcl_fp32_matches_float64(backend, n, d, sigma):
    z1, z2 = torch.randn(n, d, device=backend.device), torch.randn(n, d, device=backend.device)
    t = torch.tensor(0.2, device=backend.device)
    loss, grads = _grads(lambda a, b, c: fastrepr.dcl_loss(a, b, c, sigma=sigma), (z1, z2, t))
    ref, ref_grads = _grads(lambda a, b, c: reference.dcl_loss(a, b, c, sigma=sigma),
                            (z1.double(), z2.double(), t.double()))
    assert loss.dtype == torch.float32
    assert_close(loss, ref, torch.float32, what="loss")
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, torch.float32, grad=True, what="gradient")


@IMPLS
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dcl_half_precision(backend, dtype):
    z1, z2 = torch.randn(12, 32, device=backend.device), torch.randn(12, 32, device=backend.device)
    a, b = z1.to(dtype), z2.to(dtype)
    loss = fastrepr.dcl_loss(a, b, 0.5, reduction="none")
    ref = reference.dcl_loss(a.double(), b.double(), 0.5, reduction="none")
    assert loss.dtype == torch.float32 and torch.isfinite(loss).all()
    assert_close(loss, ref, dtype, what="per-anchor loss")


def test_dcl_gradcheck_float64():
    z1, z2 = (torch.randn(5, 7, dtype=torch.float64, requires_grad=True) for _ in range(2))
    t = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    # DCL only: DCLW's weights are detached by definition, so finite differences (which see them) disagree
    assert torch.autograd.gradcheck(lambda a, b, c: fastrepr.dcl_loss(a, b, c, reduction="sum"),
                                    (z1, z2, t))


def test_dcl_positive_not_in_denominator():
    """Identical views: NT-Xent's positive term stays in its denominator, DCL's does not (DCL < NT-Xent)."""
    z = torch.randn(6, 8)
    assert float(fastrepr.dcl_loss(z, z, 0.1)) < float(fastrepr.nt_xent(z, z, 0.1)) - 1.0


@pytest.mark.parametrize("call, match", [
    (lambda z: fastrepr.dcl_loss(z, z[:3]), "same shape"),
    (lambda z: fastrepr.dcl_loss(z[:1], z[:1]), "N >= 2"),
    (lambda z: fastrepr.dcl_loss(z, z, 0.0), "temperature"),
    (lambda z: fastrepr.dcl_loss(z, z, sigma=-1.0), "sigma"),
    (lambda z: fastrepr.dcl_loss(z, z, reduction="avg"), "reduction"),
    (lambda z: fastrepr.dcl_loss(z, torch.full_like(z, float("nan"))), "z2 contains NaN"),
    (lambda z: fastrepr.DCLWLoss(sigma=0.0), "sigma"),
])
def test_dcl_bad_input(call, match):
    with pytest.raises(ValueError, match=match):
        call(torch.randn(4, 5))


def _lightly_module(relpath: str):
    """Load one lightly loss module by file path (lightly's package __init__ needs torchvision), with its
    lightly.* imports stubbed to the few files they need; skip when lightly is not on the path."""
    import importlib.util
    import sys
    import types

    spec = importlib.util.find_spec("lightly")  # the package spec only: its __init__ does not run
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("lightly is not installed")
    root = list(spec.submodule_search_locations)[0]
    saved = {k: v for k, v in sys.modules.items() if k == "lightly" or k.startswith("lightly.")}

    def load(name, path):
        s = importlib.util.spec_from_file_location(name, f"{root}/{path}")
        mod = importlib.util.module_from_spec(s)
        sys.modules[name] = mod
        s.loader.exec_module(mod)
        return mod

    try:
        for pkg in ("lightly", "lightly.utils", "lightly.models", "lightly.models.modules", "lightly.loss"):
            sys.modules[pkg] = types.ModuleType(pkg)
        sys.modules["lightly.utils"].dist = load("lightly.utils.dist", "utils/dist.py")
        sys.modules["lightly.models"].utils = types.SimpleNamespace(concat_all_gather=None)
        if "ntx_ent" in relpath:
            load("lightly.models.modules.memory_bank", "models/modules/memory_bank.py")
        return load("lightly.loss._fastrepr_cmp", relpath)
    finally:
        for k in [k for k in sys.modules if k == "lightly" or k.startswith("lightly.")]:
            del sys.modules[k]
        sys.modules.update(saved)


@pytest.mark.parametrize("weighted", [False, True])
def test_dcl_matches_lightly(weighted):
    lightly = _lightly_module("loss/dcl_loss.py")
    z1, z2 = torch.randn(17, 24), torch.randn(17, 24)
    ours_fn = fastrepr.DCLWLoss(0.2, sigma=0.7) if weighted else fastrepr.DCLLoss(0.2)
    theirs_fn = lightly.DCLWLoss(0.2, sigma=0.7) if weighted else lightly.DCLLoss(0.2)
    loss, grads = _grads(ours_fn, (z1, z2))
    ref, ref_grads = _grads(theirs_fn, (z1, z2))
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)


@IMPLS
@pytest.mark.parametrize("tau_plus, beta", [(0.1, 0.0), (0.0, 1.0), (0.2, 0.5), (0.9, 2.0)])  # 0.9: the clamp
def test_debiased_hard_negative_matches_float64(backend, tau_plus, beta):
    z1, z2 = torch.randn(9, 17, device=backend.device), torch.randn(9, 17, device=backend.device)
    fn = lambda a, b: fastrepr.nt_xent(a, b, 0.5, tau_plus=tau_plus, beta=beta)  # noqa: E731
    loss, grads = _grads(fn, (z1, z2))
    ref, ref_grads = _grads(lambda a, b: reference.debiased_nt_xent(a, b, 0.5, tau_plus, beta),
                            (z1.double(), z2.double()))
    assert_close(loss, ref, torch.float32, what="loss")
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, torch.float32, grad=True, what="gradient")


def test_debiased_reduces_to_nt_xent_and_gradcheck():
    z1, z2 = (torch.randn(5, 6, dtype=torch.float64, requires_grad=True) for _ in range(2))
    none = fastrepr.nt_xent(z1, z2, 0.4, reduction="none")
    # a tiny tau_plus / beta take the debiased path and must be NT-Xent to first order
    torch.testing.assert_close(fastrepr.nt_xent(z1, z2, 0.4, reduction="none", tau_plus=1e-12, beta=1e-12), none)
    assert torch.autograd.gradcheck(lambda a, b: fastrepr.nt_xent(a, b, 0.4, tau_plus=0.1, beta=0.7), (z1, z2))


@pytest.mark.parametrize("kwargs, match", [
    (dict(tau_plus=1.0), "tau_plus"), (dict(tau_plus=-0.1), "tau_plus"), (dict(beta=-1.0), "beta"),
    (dict(beta=float("nan")), "beta"), (dict(tau_plus=0.1, gather_distributed=True), "gather_distributed"),
])
def test_debiased_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fastrepr.nt_xent(torch.randn(4, 5), torch.randn(4, 5), **kwargs)


@IMPLS
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("tau_plus, beta", [(0.1, 0.0), (0.3, 2.0)])
def test_info_nce_debiased_matches_float64(backend, symmetric, tau_plus, beta):
    q, k = torch.randn(11, 18, device=backend.device), torch.randn(11, 18, device=backend.device)
    fn = lambda a, b: fastrepr.info_nce(a, b, 0.5, symmetric, tau_plus=tau_plus, beta=beta)  # noqa: E731
    loss, grads = _grads(fn, (q, k))
    ref, ref_grads = _grads(lambda a, b: reference.debiased_info_nce(a, b, 0.5, tau_plus, beta, symmetric),
                            (q.double(), k.double()))
    assert_close(loss, ref, torch.float32, what="loss")
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, torch.float32, grad=True, what="gradient")


def test_info_nce_debiased_bad_input():
    q = torch.randn(4, 5)
    with pytest.raises(ValueError, match="tau_plus"):
        fastrepr.info_nce(q, q, tau_plus=1.5)
    with pytest.raises(ValueError, match="queue"):
        fastrepr.info_nce(q, q, symmetric=False, beta=1.0, queue=torch.randn(3, 5))
