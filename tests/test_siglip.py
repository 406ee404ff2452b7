"""siglip_loss / SigLipLoss on every implementation against the float64 oracle (values, gradients for x, y,
logit_scale, logit_bias), gradcheck, awkward shapes, bad input, opcheck, a tile-streaming memory
check, and parity with open_clip's SigLipLoss (skipped when open_clip is absent)."""
import importlib.util

import pytest
import torch

import fastrepr
from fastrepr import reference
from fastrepr.ops import siglip as ops
from utils import assert_close, impl_params

IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)


def _inputs(n, d, dtype=torch.float32, device="cpu", scale=10.0, bias=-10.0):
    x = torch.randn(n, d, dtype=dtype, device=device)
    y = x + 0.5 * torch.randn(n, d, dtype=dtype, device=device)  # correlated pairs: positives matter
    return x, y, torch.tensor(scale), torch.tensor(bias)


def _value_and_grads(fn, x, y, t, b):
    leaves = [v.detach().clone().requires_grad_(True) for v in (x, y, t, b)]
    out = fn(*leaves)
    out.backward()
    return out.detach(), [v.grad for v in leaves]


@IMPLS
@pytest.mark.parametrize("n, d", [(2, 3), (7, 5), (33, 70), (300, 17)])
@pytest.mark.parametrize("scale, bias", [(10.0, -10.0), (1.0, 0.0), (100.0, 3.0)])
def test_matches_oracle(backend, n, d, scale, bias, monkeypatch):
    monkeypatch.setattr(ops, "CHUNK_ELEMENTS", 7 * n)  # tiles of 7 columns: several, the last one partial
    torch.manual_seed(n * d)
    x, y, t, b = _inputs(n, d, device=backend.device, scale=scale, bias=bias)
    got, grads = _value_and_grads(fastrepr.siglip_loss, x, y, t, b)
    ref, ref_grads = _value_and_grads(reference.siglip_loss, x.double(), y.double(), t.double(), b.double())
    assert_close(got, ref, torch.float32, what="loss")
    for name, g, r in zip(("x", "y", "logit_scale", "logit_bias"), grads, ref_grads):
        assert_close(g, r, torch.float32, grad=True, what=name)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision(dtype):
    torch.manual_seed(0)
    x, y, t, b = _inputs(17, 24, dtype)
    got = fastrepr.siglip_loss(x, y, t, b)
    ref = reference.siglip_loss(x.double(), y.double(), t.double(), b.double())
    assert got.dtype == torch.float32
    assert_close(got, ref, dtype, scale=4, what="half loss")  # the inputs' own rounding through t = 10


def test_gradcheck_float64():
    torch.manual_seed(1)
    x, y, t, b = (v.double().requires_grad_() for v in _inputs(6, 5, scale=2.0, bias=-1.0))
    assert torch.autograd.gradcheck(fastrepr.siglip_loss, (x, y, t, b))
    assert torch.autograd.gradcheck(lambda *a: fastrepr.siglip_loss(*a, normalize=False), (x, y, t, b))


def test_normalize_false_scale_invariance_and_module():
    torch.manual_seed(2)
    x, y, t, b = _inputs(9, 8)
    xn, yn = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(y, dim=1)
    assert_close(fastrepr.siglip_loss(xn, yn, t, b, normalize=False), fastrepr.siglip_loss(x, y, t, b))
    assert_close(fastrepr.siglip_loss(1e20 * x, 1e-20 * y, t, b), fastrepr.siglip_loss(x, y, t, b))
    assert_close(fastrepr.SigLipLoss()(x, y, t, b), fastrepr.siglip_loss(x, y, t, b))


def test_streams_column_tiles(monkeypatch):
    """Forward and backward never hold more than CHUNK_ELEMENTS logits: the N×N matrix is never formed."""
    seen = []
    real = ops._labels

    def spy(pos_col, c0, c1):
        seen.append(pos_col.shape[0] * (c1 - c0))
        return real(pos_col, c0, c1)

    monkeypatch.setattr(ops, "_labels", spy)
    monkeypatch.setattr(ops, "CHUNK_ELEMENTS", 40 * 8)
    x, y, t, b = (v.requires_grad_() for v in _inputs(40, 4))
    fastrepr.siglip_loss(x, y, t, b).backward()
    assert seen and max(seen) <= 40 * 8 < 40 * 40


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(x=torch.randn(4, 3), y=torch.randn(5, 3)), ValueError, "same shape"),
    (dict(x=torch.randn(1, 3), y=torch.randn(1, 3)), ValueError, "N=1"),
    (dict(x=torch.randn(4, 0), y=torch.randn(4, 0)), ValueError, "D=0"),
    (dict(x=torch.ones(4, 3, dtype=torch.long), y=torch.ones(4, 3, dtype=torch.long)), TypeError, "x"),
    (dict(x=torch.randn(4, 3), y=torch.randn(4, 3, dtype=torch.float64)), (TypeError, ValueError), "dtype"),
    (dict(x=torch.tensor([[1.0, float("nan")], [1.0, 2.0]]), y=torch.randn(2, 2)), ValueError, "x contains NaN"),
    (dict(y=torch.tensor([[1.0, float("inf")], [1.0, 2.0]]), x=torch.randn(2, 2)), ValueError, "y contains NaN"),
    (dict(logit_scale=0.0), ValueError, "logit_scale"),
    (dict(logit_scale=-1.0), ValueError, "logit_scale"),
    (dict(logit_scale=float("inf")), ValueError, "logit_scale"),
    (dict(logit_scale=torch.tensor(float("nan"))), ValueError, "logit_scale"),
    (dict(logit_scale=torch.ones(2)), ValueError, "logit_scale"),
    (dict(logit_scale="10"), TypeError, "logit_scale"),
    (dict(logit_bias=float("nan")), ValueError, "logit_bias"),
    (dict(gather_distributed="all"), ValueError, "gather_distributed"),
])
def test_bad_input(kwargs, err, match):
    args = dict(x=torch.randn(4, 3), y=torch.randn(4, 3), logit_scale=10.0, logit_bias=-10.0)
    args.update(kwargs)
    with pytest.raises(err, match=match):
        fastrepr.siglip_loss(**args)
    with pytest.raises(ValueError, match="gather_distributed"):
        fastrepr.SigLipLoss(gather_distributed="all")


@IMPLS
def test_opcheck(backend):
    torch.manual_seed(3)
    x, y, t, b = _inputs(6, 4, device=backend.device)
    xh, yh = (v.requires_grad_() for v in (x.clone(), y.clone()))
    pos = torch.arange(6, device=backend.device)
    torch.library.opcheck(ops.siglip_rows, (xh, yh, pos, t.requires_grad_(), b.requires_grad_()))
    torch.library.opcheck(ops.siglip_rows_backward, (x, y, pos, t.detach(), b.detach(), torch.ones(6)))


def _open_clip_loss():
    """open_clip's loss module, loaded by file path (its package __init__ pulls timm, hf hub, ...)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("open_clip not installed")
    path = f"{list(spec.submodule_search_locations)[0]}/loss.py"
    mod_spec = importlib.util.spec_from_file_location("_open_clip_loss", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("n, d", [(8, 16), (37, 19)])
@pytest.mark.parametrize("normalize", [True, False])
def test_matches_open_clip(n, d, normalize):
    """open_clip's convention for logit_scale (already exp'd), value 1e-5 and grads 1e-4. open_clip takes normalized
    features: normalize=True compares gradients w.r.t. the raw features (both normalized by F.normalize first for
    open_clip, by fastrepr itself for ours); normalize=False w.r.t. the normalized features both receive."""
    oc = _open_clip_loss()
    torch.manual_seed(n)
    x, y, _, _ = _inputs(n, d)
    if not normalize:
        x, y = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(y, dim=1)
    log_t, b = torch.tensor(2.3), torch.tensor(-10.0)
    unit = (lambda v: torch.nn.functional.normalize(v, dim=1)) if normalize else (lambda v: v)
    ours, g_ours = _value_and_grads(lambda a, c, lt, bb: fastrepr.SigLipLoss(normalize=normalize)(a, c, lt.exp(), bb),
                                    x, y, log_t, b)
    theirs, g_theirs = _value_and_grads(lambda a, c, lt, bb: oc.SigLipLoss()(unit(a), unit(c), lt.exp(), bb),
                                        x, y, log_t, b)
    assert_close(ours, theirs, torch.float32, what="loss vs open_clip")
    for name, g, r in zip(("x", "y", "log logit_scale", "logit_bias"), g_ours, g_theirs):
        assert_close(g, r, torch.float32, grad=True, what=f"{name} vs open_clip")
