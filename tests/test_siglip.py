"""siglip_loss / SigLipLoss on every implementation against the float64 oracle (values, gradients for x, y,
logit_scale, logit_bias), gradcheck, awkward shapes, bad input, opcheck, a tile-streaming memory
check, and parity with open_clip's SigLipLoss (skipped when open_clip is absent)."""
import importlib.util

import pytest
import torch

import fastrepr
from fastrepr import reference
from fastrepr.ops import siglip as ops
from utils import assert_close, impl_params, use_impl

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


def _small_blocks(monkeypatch, n):
    """Triton: 16 x 16 tiles up to n = 40 (several, the last one partial; the interpreter is slow), else the
    launch's own 64 x 64 (n = 300: the last row and column blocks partial)."""
    if n <= 40:
        monkeypatch.setattr(ops, "BLOCK_M", 16)
        monkeypatch.setattr(ops, "BLOCK_N", 16)


@IMPLS
@pytest.mark.parametrize("n, d", [(2, 3), (7, 5), (33, 70), (300, 17)])
@pytest.mark.parametrize("scale, bias", [(10.0, -10.0), (1.0, 0.0), (100.0, 3.0)])
def test_matches_oracle(backend, n, d, scale, bias, monkeypatch):
    monkeypatch.setattr(ops, "CHUNK_ELEMENTS", 7 * n)  # torch: tiles of 7 columns, several, the last one partial
    _small_blocks(monkeypatch, n)
    torch.manual_seed(n * d)
    x, y, t, b = _inputs(n, d, device=backend.device, scale=scale, bias=bias)
    got, grads = _value_and_grads(fastrepr.siglip_loss, x, y, t, b)
    ref, ref_grads = _value_and_grads(reference.siglip_loss, x.double(), y.double(), t.double(), b.double())
    assert_close(got, ref, torch.float32, what="loss")
    for name, g, r in zip(("x", "y", "logit_scale", "logit_bias"), grads, ref_grads):
        assert_close(g, r, torch.float32, grad=True, what=name)


@IMPLS
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision(backend, dtype, monkeypatch):
    """Value and gradients of half inputs (fp32 accumulation) against the oracle on the same rounded inputs."""
    _small_blocks(monkeypatch, 17)
    torch.manual_seed(0)
    x, y, t, b = _inputs(17, 24, dtype, device=backend.device)
    got, grads = _value_and_grads(fastrepr.siglip_loss, x, y, t, b)
    ref, ref_grads = _value_and_grads(reference.siglip_loss, x.double(), y.double(), t.double(), b.double())
    assert got.dtype == torch.float32
    assert_close(got, ref, dtype, scale=4, what="half loss")  # x̂, ŷ rounded to the dtype, through t = 10
    for name, g, r in zip(("x", "y", "logit_scale", "logit_bias"), grads, ref_grads):
        assert g.dtype == (torch.float32 if name.startswith("logit") else dtype), name
        assert_close(g, r, dtype, grad=True, scale=4, what=name)


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
    """The torch forward and backward never hold more than CHUNK_ELEMENTS logits (the N×N matrix is never
    formed), in one buffer per pass that every tile reuses."""
    seen, buffers = [], set()
    real = ops._negate

    def spy(tile, at):
        seen.append(tile.numel())
        buffers.add(tile.untyped_storage().data_ptr())
        return real(tile, at)

    use_impl("torch", monkeypatch)
    monkeypatch.setattr(ops, "_negate", spy)
    monkeypatch.setattr(ops, "CHUNK_ELEMENTS", 40 * 8)
    x, y, t, b = (v.requires_grad_() for v in _inputs(40, 4))
    fastrepr.siglip_loss(x, y, t, b).backward()
    assert len(seen) == 3 * 5 and max(seen) <= 40 * 8 < 40 * 40  # 5 tiles: forward once, backward twice
    assert len(buffers) <= 2  # forward's and backward's buffer


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


def test_triton_rejects_float64_naming_it(monkeypatch):
    """Triton accumulates in fp32: forcing it with float64 embeddings raises, saying so (torch takes them)."""
    use_impl("triton", monkeypatch)
    x, y, t, b = (v.double() for v in _inputs(4, 3))
    with pytest.raises(RuntimeError, match="siglip_rows takes no float64 on triton"):
        fastrepr.siglip_loss(x, y, t, b)


def _dense_open_clip(x, y, logit_scale, logit_bias):
    """open_clip's SigLipLoss._loss written out densely (its features arrive normalized): the N×N logits."""
    logits = logit_scale * x @ y.T + logit_bias
    labels = 2 * torch.eye(x.shape[0], dtype=x.dtype, device=x.device) - 1
    return -torch.nn.functional.logsigmoid(labels * logits).sum() / x.shape[0]


@IMPLS
@pytest.mark.parametrize("n, d", [(9, 16), (37, 19)])
def test_matches_dense_open_clip_formula(backend, n, d, monkeypatch):
    """Every implementation against open_clip's dense formula in fp32 on the same normalized features, with a
    learnable log-scale (t = exp(log t)) and bias: value 1e-5, gradients 1e-4 (x, y, log t, b)."""
    _small_blocks(monkeypatch, n)
    torch.manual_seed(n + d)
    x, y, _, _ = _inputs(n, d, device=backend.device)
    x, y = torch.nn.functional.normalize(x, dim=1), torch.nn.functional.normalize(y, dim=1)
    log_t, b = torch.tensor(10.0).log(), torch.tensor(-10.0)
    ours, g_ours = _value_and_grads(lambda a, c, lt, bb: fastrepr.siglip_loss(a, c, lt.exp(), bb, normalize=False),
                                    x, y, log_t, b)
    dense, g_dense = _value_and_grads(lambda a, c, lt, bb: _dense_open_clip(a, c, lt.exp(), bb), x, y, log_t, b)
    assert_close(ours, dense, torch.float32, what="loss vs dense open_clip formula")
    for name, g, r in zip(("x", "y", "log logit_scale", "logit_bias"), g_ours, g_dense):
        assert_close(g, r, torch.float32, grad=True, what=f"{name} vs dense open_clip formula")


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


# ------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_cuda_large_and_lean(monkeypatch, dtype):
    """The Triton kernels at their launch tiles on CUDA: N = 4096, D = 128 against the float64 oracle, then the
    peak memory of a training step at N = 65536 (the dense logits alone would take 16 GiB in fp32)."""
    from fastrepr.bench import harness

    use_impl("triton", monkeypatch)
    torch.manual_seed(5)
    x, y, t, b = _inputs(4096, 128, dtype, device="cuda")
    t, b = t.cuda(), b.cuda()
    got, grads = _value_and_grads(fastrepr.siglip_loss, x, y, t, b)
    ref, ref_grads = _value_and_grads(reference.siglip_loss, x.double(), y.double(), t.double(), b.double())
    scale = 1 if dtype == torch.float32 else 4
    assert_close(got, ref, dtype, scale=scale, what="cuda loss")
    for name, g, r in zip(("x", "y", "logit_scale", "logit_bias"), grads, ref_grads):
        assert_close(g, r, dtype, grad=True, scale=scale, what=f"cuda {name}")
    x, y = (v.requires_grad_() for v in _inputs(65536, 128, dtype, device="cuda")[:2])
    peak = harness.peak_memory(lambda: fastrepr.siglip_loss(x, y, t, b).backward(), torch.device("cuda"))
    # fp32: the normalized copies and their saved inputs (4 x 32 MiB), the fp32 op gradients and the leaves'
    # gradients (4 x 32 MiB): about 256 MiB, O(N·D); the logits would add 16 GiB
    assert peak < 512 * 2**20, peak
