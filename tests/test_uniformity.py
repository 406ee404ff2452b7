"""uniformity / alignment (Wang & Isola 2020): every implementation of the fused op against the float64 pdist
oracle, gradients, opcheck, torch.compile, small batches and large t (finite), bad input, the memory contract,
and (skipped when absent) open-source reference code."""
import math

import pytest
import torch

from fastrepr import bench, reference
from fastrepr.evaluation import geometry
from fastrepr.ops import uniformity as ops
from utils import assert_close, impl_params

IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)
SHAPES = [(2, 3), (7, 5), (65, 17), (130, 70)]  # N = 2, odd, beyond one 64-row tile, D beyond one 64-wide tile


@IMPLS
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("t", [2.0, 0.5])
def test_uniformity_matches_pdist_oracle(backend, shape, t):
    dtypes = [torch.float32] + ([torch.float64] if backend.name == "torch" else [])
    for dtype in dtypes:
        z = torch.randn(shape, dtype=dtype, device=backend.device)
        got = geometry.uniformity(z, t)
        assert got.dtype == dtype
        assert_close(got, reference.uniformity(z.cpu(), t), dtype, what=f"{shape} t={t}")


@IMPLS
def test_uniformity_gradient(backend):
    z = torch.randn(70, 9, device=backend.device, requires_grad=True)
    geometry.uniformity(z, 2.0).backward()
    z64 = z.detach().double().cpu().requires_grad_()
    reference.uniformity(z64, 2.0).backward()
    assert_close(z.grad, z64.grad, torch.float32, grad=True)


def test_uniformity_gradcheck_float64():
    z = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a: geometry.uniformity(a, 1.5), (z,))


@pytest.mark.parametrize("t", [2.0, 30.0])  # 2t <= FACTOR_MAX_TWO_T (factored) and above it (subtracted first)
def test_torch_chunks_equal_one_pass(monkeypatch, t):
    """Tiles of the block upper triangle (and row chunks of the backward) give the same numbers as one tile:
    N = 50 in 7 x 7 tiles leaves a last 1 x 1 diagonal tile (no pair) and partial tiles; both equal the
    float64 pdist oracle."""
    z = torch.randn(50, 6, dtype=torch.float64)
    t = torch.tensor(t, dtype=torch.float64)
    whole = ops.uniformity_lse_torch(z, t)
    g_whole = ops.uniformity_lse_backward_torch(z, t, whole, torch.tensor(1.0, dtype=torch.float64))
    zh = torch.nn.functional.normalize(z, dim=1)
    assert_close(ops.uniformity_lse_torch(zh, t) - math.log(50 * 49), reference.uniformity(z, float(t)))
    monkeypatch.setattr(ops, "CHUNK_ELEMENTS", 7 * 50)
    monkeypatch.setattr(ops, "TILE", 7)
    assert_close(ops.uniformity_lse_torch(z, t), whole)
    assert_close(ops.uniformity_lse_backward_torch(z, t, whole, torch.tensor(1.0, dtype=torch.float64)), g_whole)


@IMPLS
def test_opcheck(backend):
    zh = torch.nn.functional.normalize(torch.randn(6, 5, device=backend.device), dim=1).requires_grad_()
    torch.library.opcheck(ops.uniformity_lse, (zh, torch.tensor(2.0, device=backend.device)))


def test_torch_compile_fullgraph():
    torch._dynamo.reset()
    z = torch.randn(12, 5, requires_grad=True)
    out = torch.compile(lambda a: geometry.uniformity(a, 2.0), fullgraph=True)(z)
    out.backward()
    assert_close(out, reference.uniformity(z.detach(), 2.0), torch.float32)


def test_finite_at_small_batch_and_large_t():
    """Two antipodal points at t=100: exp(-400) underflows float32 and float64's pdist expression gives -inf;
    the streamed log-sum-exp gives the exact -400."""
    z = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert math.isinf(torch.pdist(z).pow(2).mul(-100.0).exp().mean().log().item())
    assert_close(geometry.uniformity(z, 100.0), torch.tensor(-400.0), torch.float32)
    assert torch.isfinite(geometry.uniformity(torch.randn(3, 128), 50.0))


def test_alignment_matches_oracle():
    x, y = torch.randn(33, 7), torch.randn(33, 7)
    for alpha in (2.0, 1.0, 0.5):
        assert_close(geometry.alignment(x, y, alpha), reference.alignment(x, y, alpha), torch.float32)
    x64 = x.double().requires_grad_()
    assert torch.autograd.gradcheck(lambda a: geometry.alignment(a, y.double(), 2.0), (x64,))


def test_overflow_safe_normalization():
    z = torch.randn(10, 4)
    assert_close(geometry.uniformity(z * 1e30, 2.0), reference.uniformity(z, 2.0), torch.float32)
    assert_close(geometry.alignment(z * 1e30, z.flip(0), 2.0), reference.alignment(z, z.flip(0)),
                 torch.float32)


@pytest.mark.parametrize("call, err, word", [
    (lambda: geometry.uniformity(torch.randn(1, 4)), ValueError, "at least 2 rows"),
    (lambda: geometry.uniformity(torch.randn(4)), ValueError, "z"),
    (lambda: geometry.uniformity(torch.randint(0, 3, (4, 4))), TypeError, "z"),
    (lambda: geometry.uniformity(torch.randn(4, 4), t=0.0), ValueError, "t"),
    (lambda: geometry.uniformity(torch.randn(4, 4), t=1e38), ValueError, "t="),
    (lambda: geometry.uniformity(torch.tensor([[1.0, float("nan")], [0.0, 1.0]])), ValueError, "NaN"),
    (lambda: geometry.uniformity([[1.0, 2.0]]), TypeError, "z"),
    (lambda: geometry.alignment(torch.randn(4, 3), torch.randn(5, 3)), ValueError, "same shape"),
    (lambda: geometry.alignment(torch.randn(4, 3), torch.randn(4, 3), alpha=-1), ValueError, "alpha"),
    (lambda: geometry.alignment(torch.randn(4, 3), torch.randn(4, 3).double()), TypeError, "dtype"),
])
def test_bad_input(call, err, word):
    with pytest.raises(err, match=word):
        call()


def test_memory_is_linear_in_n():
    """N = 20000, D = 128 on CPU: the pdist expression needs N²/2 distances (800 MB in fp32); ours < 64 MB
    (the 50000-row bar is a benchmark: `fastrepr bench --op uniformity`)."""
    z = torch.randn(8000, 32)
    assert bench.peak_memory(lambda: geometry.uniformity(z), torch.device("cpu")) < 64 * 2 ** 20


def test_against_wang_isola_code():
    """Wang & Isola's published code (github.com/SsnL/align_uniform, `align_uniform/__init__.py`) is two lines;
    their package is imported when present, otherwise the test skips."""
    au = pytest.importorskip("align_uniform")
    x = torch.nn.functional.normalize(torch.randn(40, 8), dim=1)
    y = torch.nn.functional.normalize(torch.randn(40, 8), dim=1)
    assert_close(geometry.uniformity(x, 2), au.uniform_loss(x.double(), 2), torch.float32)
    assert_close(geometry.alignment(x, y, 2), au.align_loss(x.double(), y.double(), 2), torch.float32)
