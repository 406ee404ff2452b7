"""pairwise_abs_diff_mean on every backend against the float64 reference, plus gradients, torch.compile,
bad input, NaN propagation, determinism and the memory contract."""
import pytest
import torch

import fastrepr
from fastrepr import _backend, _native, bench, reference
from fastrepr.ops import pairwise as ops
from utils import assert_close, impl_params, use_impl

# every test taking `backend` runs once per implementation the op declares (the conftest fixture forces each)
IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)

DENSE_SHAPES = [(7, 5, 3), (16, 64, 10), (3, 1, 1), (33, 17, 65)]  # odd, typical, B=1, D beyond one tile
INDEX_SHAPES = [(11, 7, 5, 3), (50, 16, 64, 10), (5, 1, 1, 1), (40, 9, 4, 70)]  # N, P, B, D


def _dense(shape, dtype, device):
    return torch.randn(shape, dtype=dtype, device=device), torch.randn(shape, dtype=dtype, device=device)


def _index(shape, dtype, device, idx_dtype=torch.int64):
    n, p, b, d = shape
    z = torch.randn(n, d, dtype=dtype, device=device)
    return z, torch.randint(0, n, (p, b), device=device, dtype=idx_dtype), torch.randint(0, n, (p, b), device=device, dtype=idx_dtype)


def _ref(*args, **kw):
    """float64 reference on CPU."""
    args = [a.double().cpu() if a.is_floating_point() else a.cpu() for a in args]
    kw = {k: v.cpu() for k, v in kw.items()}
    return reference.pairwise_abs_diff_mean(*args, **kw)


@pytest.mark.parametrize("shape", DENSE_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@IMPLS
def test_dense_matches_reference(backend, shape, dtype):
    z1, z2 = _dense(shape, dtype, backend.device)
    out = fastrepr.pairwise_abs_diff_mean(z1, z2)
    assert out.dtype == dtype and out.shape == (shape[0], shape[2]) and out.device == z1.device
    assert_close(out, _ref(z1, z2))


@pytest.mark.parametrize("shape", INDEX_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("idx_dtype", [torch.int64, torch.int32])
@IMPLS
def test_index_matches_reference(backend, shape, dtype, idx_dtype):
    z, i, j = _index(shape, dtype, backend.device, idx_dtype)
    out = fastrepr.pairwise_abs_diff_mean(z, i=i, j=j)
    assert out.dtype == dtype and out.shape == (shape[1], shape[3])
    assert_close(out, _ref(z, i=i.long(), j=j.long()))


@IMPLS
def test_index_equals_dense_of_gathered_rows(backend):
    z, i, j = _index((30, 8, 6, 5), torch.float32, backend.device)
    assert_close(fastrepr.pairwise_abs_diff_mean(z, i=i, j=j), fastrepr.pairwise_abs_diff_mean(z[i], z[j]))


def test_torch_implementation_in_chunks_equals_one_pass(monkeypatch):
    """The torch implementation splits the points into chunks of CHUNK_ELEMENTS differences: a limit that
    makes 5 chunks (and one short one) gives the one-pass result, in both forms."""
    use_impl("torch", monkeypatch)
    z, i, j = _index((30, 11, 6, 5), torch.float32, "cpu")
    z1, z2 = z[i], z[j]
    whole = fastrepr.pairwise_abs_diff_mean(z, i=i, j=j), fastrepr.pairwise_abs_diff_mean(z1, z2)
    monkeypatch.setattr(ops, "CHUNK_ELEMENTS", 2 * 6 * 5)  # 2 points per chunk
    with _backend.recording() as ran:
        chunked = fastrepr.pairwise_abs_diff_mean(z, i=i, j=j), fastrepr.pairwise_abs_diff_mean(z1, z2)
    assert ran == {"pairwise_abs_diff_mean": "torch"}
    for a, b in zip(chunked, whole):
        assert torch.equal(a, b)
    assert_close(chunked[0], _ref(z, i=i, j=j))


@IMPLS
def test_strided_inputs(backend):
    # non-contiguous views: a transposed z and a sliced index matrix
    z = torch.randn(6, 40, device=backend.device).t()  # [40, 6], strides (1, 40)
    i = torch.randint(0, 40, (9, 10), device=backend.device)[:, ::2]
    j = torch.randint(0, 40, (9, 10), device=backend.device)[:, 1::2]
    assert_close(fastrepr.pairwise_abs_diff_mean(z, i=i, j=j), _ref(z, i=i, j=j))
    z1 = torch.randn(5, 4, 8, device=backend.device).transpose(1, 2)  # [5, 8, 4]
    z2 = torch.randn(5, 8, 4, device=backend.device)
    assert_close(fastrepr.pairwise_abs_diff_mean(z1, z2), _ref(z1, z2))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@IMPLS
def test_half_precision_error_within_twice_torch(backend, dtype):
    """16-bit inputs: our error against float64 is at most 2x that of the plain-PyTorch expression run in
    the same precision (the design's rule for bf16/fp16)."""
    z1, z2 = _dense((64, 32, 24), dtype, backend.device)
    ref = _ref(z1, z2)
    ours = fastrepr.pairwise_abs_diff_mean(z1, z2)
    torch_same_precision = (z1 - z2).abs().mean(1)
    assert ours.dtype == dtype
    err_ours = (ours.double().cpu() - ref).abs().max().item()
    err_torch = (torch_same_precision.double().cpu() - ref).abs().max().item()
    assert err_ours <= 2 * err_torch, (err_ours, err_torch)

    z, i, j = _index((100, 64, 32, 24), dtype, backend.device)
    ref = _ref(z, i=i, j=j)
    err_ours = (fastrepr.pairwise_abs_diff_mean(z, i=i, j=j).double().cpu() - ref).abs().max().item()
    err_torch = ((z[i] - z[j]).abs().mean(1).double().cpu() - ref).abs().max().item()
    assert err_ours <= 2 * err_torch, (err_ours, err_torch)


@IMPLS
def test_gradcheck(backend):
    z1, z2 = (t.requires_grad_() for t in _dense((4, 3, 5), torch.float64, backend.device))
    assert torch.autograd.gradcheck(lambda a, b: fastrepr.pairwise_abs_diff_mean(a, b), (z1, z2))
    z, i, j = _index((6, 4, 3, 5), torch.float64, backend.device)
    z.requires_grad_()
    assert torch.autograd.gradcheck(lambda t: fastrepr.pairwise_abs_diff_mean(t, i=i, j=j), (z,))


@IMPLS
def test_gradient_matches_reference_autograd(backend):
    z, i, j = _index((20, 6, 8, 5), torch.float32, backend.device)
    g = torch.randn(6, 5, device=backend.device)
    z_ours, z_ref = z.clone().requires_grad_(), z.clone().double().requires_grad_()
    (fastrepr.pairwise_abs_diff_mean(z_ours, i=i, j=j) * g).sum().backward()
    (reference.pairwise_abs_diff_mean(z_ref, i=i, j=j) * g.double()).sum().backward()
    assert_close(z_ours.grad, z_ref.grad, grad=True)


@IMPLS
def test_opcheck(backend):
    z1, z2 = _dense((4, 3, 5), torch.float32, backend.device)
    torch.library.opcheck(ops.pairwise_abs_diff_mean_dense, (z1.requires_grad_(), z2))
    z, i, j = _index((6, 4, 3, 5), torch.float32, backend.device)
    torch.library.opcheck(ops.pairwise_abs_diff_mean_index, (z.requires_grad_(), i, j))


@IMPLS
def test_torch_compile_fullgraph(backend):
    """The op traces without graph breaks (fullgraph=True fails on any break), forward and backward."""
    torch._dynamo.reset()

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(z, i, j, a, b):
        return fastrepr.pairwise_abs_diff_mean(z, i=i, j=j).sum() + fastrepr.pairwise_abs_diff_mean(a, b).sum()

    z, i, j = _index((12, 5, 4, 3), torch.float32, backend.device)
    a, b = _dense((5, 4, 3), torch.float32, backend.device)
    z.requires_grad_()
    out = f(z, i, j, a, b)
    out.backward()
    expect = reference.pairwise_abs_diff_mean(z.detach(), i=i, j=j).sum() + reference.pairwise_abs_diff_mean(a, b).sum()
    assert_close(out, expect)
    assert z.grad is not None and torch.isfinite(z.grad).all()


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@IMPLS
def test_non_finite_input_names_the_argument(backend, bad):
    z1, z2 = _dense((4, 3, 5), torch.float32, backend.device)
    z2[2, 1, 3] = bad
    with pytest.raises(ValueError, match=r"z2 contains NaN or Inf \(first at index \(2, 1, 3\)\)"):
        fastrepr.pairwise_abs_diff_mean(z1, z2)
    z, i, j = _index((12, 5, 4, 3), torch.float32, backend.device)
    z[7, 2] = bad
    with pytest.raises(ValueError, match=r"z contains NaN or Inf \(first at index \(7, 2\)\)"):
        fastrepr.pairwise_abs_diff_mean(z, i=i, j=j)


@pytest.mark.parametrize("dtype, big", [(torch.float32, 3e38), (torch.float16, 6e4)])
@IMPLS
def test_overflowing_mean_is_an_error(backend, dtype, big):
    """Finite inputs whose |difference| cannot be represented: an error, not an Inf result."""
    z1 = torch.full((2, 3, 4), big, dtype=dtype, device=backend.device)
    with pytest.raises(ValueError, match="z1 and z2: the mean absolute difference overflows"):
        fastrepr.pairwise_abs_diff_mean(z1, -z1)


@pytest.mark.gpu
def test_unchecked_cuda_nan_propagates_only_where_it_is_read(monkeypatch):
    monkeypatch.delenv("FASTREPR_CHECK", raising=False)
    z1, z2 = _dense((4, 3, 5), torch.float32, "cuda")
    z1[2, 1, 3] = float("nan")
    out = fastrepr.pairwise_abs_diff_mean(z1, z2).cpu()
    expected_nan = torch.zeros(4, 5, dtype=torch.bool)
    expected_nan[2, 3] = True
    assert torch.equal(torch.isnan(out), expected_nan)
    monkeypatch.setenv("FASTREPR_CHECK", "1")
    with pytest.raises(ValueError, match="z1 contains NaN"):
        fastrepr.pairwise_abs_diff_mean(z1, z2)


@IMPLS
def test_deterministic(backend):
    z, i, j = _index((200, 64, 32, 7), torch.float32, backend.device)
    assert torch.equal(fastrepr.pairwise_abs_diff_mean(z, i=i, j=j), fastrepr.pairwise_abs_diff_mean(z, i=i, j=j))


def test_native_result_independent_of_thread_count(monkeypatch):

    use_impl("native", monkeypatch)
    z, i, j = _index((500, 301, 16, 9), torch.float32, "cpu")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fastrepr.pairwise_abs_diff_mean(z, i=i, j=j)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, fastrepr.pairwise_abs_diff_mean(z, i=i, j=j))


# ------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, exc, match", [
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(2, 3, 4), torch.randn(2, 3, 5)), ValueError, "same shape"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(2, 3), torch.randn(2, 3)), ValueError, r"\[P, B, D\]"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.ones(2, 3, 4, dtype=torch.int64), torch.ones(2, 3, 4, dtype=torch.int64)), TypeError, "z1 must be float"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(2, 3, 4), torch.randn(2, 3, 4, dtype=torch.float64)), TypeError, "one dtype"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(0, 3, 4), torch.randn(0, 3, 4)), ValueError, "empty"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(2, 0, 4), torch.randn(2, 0, 4)), ValueError, "empty"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(2, 3, 0), torch.randn(2, 3, 0)), ValueError, "empty"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(2, 3, 4), torch.randn(2, 3, 4, device="meta")), ValueError, "one device"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(2, 3, 4)), TypeError, "needs z2"),
    (lambda: fastrepr.pairwise_abs_diff_mean([[1.0]], [[1.0]]), TypeError, "torch.Tensor"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(5, 3), i=torch.zeros(2, 2, dtype=torch.long)), TypeError, "both i= and j="),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(5, 3), torch.randn(5, 3), i=torch.zeros(2, 2, dtype=torch.long), j=torch.zeros(2, 2, dtype=torch.long)), TypeError, "not both"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(5, 3), i=torch.zeros(2, 2), j=torch.zeros(2, 2)), TypeError, "i must be an integer"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randint(0, 3, (5, 3)), i=torch.zeros(2, 2, dtype=torch.long), j=torch.zeros(2, 2, dtype=torch.long)), TypeError, "z must be float"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(5, 3), i=torch.zeros(2, 2, dtype=torch.long), j=torch.zeros(2, 3, dtype=torch.long)), ValueError, "same shape"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(5, 3, 1), i=torch.zeros(2, 2, dtype=torch.long), j=torch.zeros(2, 2, dtype=torch.long)), ValueError, r"\[N, D\]"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(0, 3), i=torch.zeros(2, 2, dtype=torch.long), j=torch.zeros(2, 2, dtype=torch.long)), ValueError, "empty"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(5, 3), i=torch.zeros(2, 0, dtype=torch.long), j=torch.zeros(2, 0, dtype=torch.long)), ValueError, "empty"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(5, 3), i=torch.full((2, 2), 5), j=torch.zeros(2, 2, dtype=torch.long)), ValueError, r"outside \[0, 5\)"),
    (lambda: fastrepr.pairwise_abs_diff_mean(torch.randn(5, 3), i=torch.zeros(2, 2, dtype=torch.long), j=torch.full((2, 2), -1)), ValueError, r"j has pair indices"),
])
@IMPLS
def test_bad_input(backend, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_native_entry_points_validate_buffers(monkeypatch):
    """Direct callers of the extension get ValueErrors, never out-of-bounds reads."""

    use_impl("native", monkeypatch)
    C = _native.get()
    z = torch.randn(5, 3).numpy()
    out = torch.empty(2, 3).numpy()
    i = torch.zeros(2, 4, dtype=torch.long).numpy()
    with pytest.raises(ValueError, match="out of range"):
        C.pairwise_abs_diff_mean_index(z, i, i + 5, out, "float32")
    with pytest.raises(ValueError, match="out must have shape"):
        C.pairwise_abs_diff_mean_index(z, i, i, torch.empty(3, 3).numpy(), "float32")
    with pytest.raises(ValueError, match="C-contiguous"):
        C.pairwise_abs_diff_mean_index(torch.randn(3, 5).numpy().T, i, i, out, "float32")
    with pytest.raises(ValueError, match="bytes"):
        C.pairwise_abs_diff_mean_index(z, i.astype("int32"), i, out, "float32")
    with pytest.raises(TypeError, match="unsupported dtype"):
        C.pairwise_abs_diff_mean_dense(torch.randn(2, 3, 4).numpy(), torch.randn(2, 3, 4).numpy(), out, "int8")


def test_forced_backend_without_implementation_is_clear(monkeypatch):
    monkeypatch.setenv(_backend.ENV, "nonsense")
    with pytest.raises(ValueError, match="FASTREPR_BACKEND='nonsense'"):
        fastrepr.pairwise_abs_diff_mean(torch.randn(2, 3, 4), torch.randn(2, 3, 4))


# ------------------------------------------------------------------------------------------- memory

def test_native_index_memory_is_output_plus_constant(monkeypatch):
    """Peak extra memory of the native index form is the [P, D] output plus a small constant, while the
    plain-PyTorch expression needs several [P, B, D] buffers (which shows that the measurement sees them)."""

    use_impl("native", monkeypatch)
    n, p, b, d = 100_000, 10_000, 64, 10
    z, i, j = _index((n, p, b, d), torch.float32, "cpu")
    fastrepr.pairwise_abs_diff_mean(z, i=i, j=j)  # warm up thread pools
    output = p * d * 4
    ours = bench.peak_memory(lambda: fastrepr.pairwise_abs_diff_mean(z, i=i, j=j), torch.device("cpu"))
    base = bench.peak_memory(lambda: (z[i] - z[j]).abs().mean(1), torch.device("cpu"))
    assert ours <= output + 256 * 1024, ours
    assert base >= 2 * p * b * d * 4, base


# ------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_triton_cuda_large(monkeypatch, dtype):
    """Larger shapes than the interpreter can afford, on the real GPU."""

    use_impl("triton", monkeypatch)
    z, i, j = _index((100_000, 20_000, 64, 33), dtype, "cuda")
    z1, z2 = _dense((5000, 64, 70), dtype, "cuda")
    for ours, ref, same_precision in (
        (fastrepr.pairwise_abs_diff_mean(z, i=i, j=j), _ref(z, i=i, j=j), lambda: (z[i] - z[j]).abs().mean(1)),
        (fastrepr.pairwise_abs_diff_mean(z1, z2), _ref(z1, z2), lambda: (z1 - z2).abs().mean(1)),
    ):
        err = (ours.double().cpu() - ref).abs().max().item()
        if dtype in (torch.float32, torch.float64):
            assert err <= 1e-6
        else:
            assert err <= 2 * (same_precision().double().cpu() - ref).abs().max().item()
