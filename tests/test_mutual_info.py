"""histogram_mutual_info on every backend against np.histogram + np.digitize + sklearn's mutual_info_score
(disentanglement_lib's discretizer and MI), plus edges bit for bit, degenerate columns, bad input, opcheck."""
import numpy as np
import pytest
import torch
from sklearn.metrics import mutual_info_score

import fastrepr
from fastrepr import _backend
from fastrepr.ops import mutual_info as ops
from utils import impl_device, impl_params, use_impl

# every test taking `backend` runs once per implementation the op declares (the conftest fixture forces each)
IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)


def _digitize(col, bins=20):
    return np.digitize(col, np.histogram(col, bins)[1][:-1])


def _oracle(x, y=None, bins=20):
    """disentanglement_lib: discretize each code column, then mutual_info_score per pair."""
    xb = [_digitize(x[:, d], bins) for d in range(x.shape[1])]
    ys = xb if y is None else [y[:, f] for f in range(y.shape[1])]
    return np.array([[mutual_info_score(yf, bd) for yf in ys] for bd in xb])


def _data(n, d, dtype, seed=0):
    rs = np.random.RandomState(seed)
    x = rs.randn(n, d).astype(dtype)
    x[:, 0] = np.round(x[:, 0] * 2) / 2     # ties and values on bin edges
    x[:, -1] = 3.0                          # a constant code
    if d > 2:
        x[:, 1] = rs.randint(0, 6, size=n)  # integer-valued code: values land exactly on edges
    y = np.stack([rs.randint(k, size=n) for k in (3, 40, 1, 6)], 1)  # includes a single-valued factor
    return x, y


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(97, 5), (1000, 3)])
@IMPLS
def test_matches_sklearn(backend, dtype, shape):
    n, d = shape
    if backend.name == "triton" and not torch.cuda.is_available() and n > 200:
        n = 150  # the interpreter is slow
    x, y = _data(n, d, dtype)
    codes = torch.from_numpy(x).to(backend.device)
    out = fastrepr.histogram_mutual_info(codes, torch.from_numpy(y).to(backend.device))
    assert out.dtype == torch.float64 and out.shape == (d, 4) and out.device == codes.device
    np.testing.assert_allclose(out.cpu().numpy(), _oracle(x, y), rtol=1e-12, atol=1e-14)
    self_mi = fastrepr.histogram_mutual_info(codes, num_bins=7)
    np.testing.assert_allclose(self_mi.cpu().numpy(), _oracle(x, bins=7), rtol=1e-12, atol=1e-14)
    assert torch.all(out[:, 2] == 0) and torch.all(out[-1] == 0)  # single-valued factor, constant code: exactly 0


def test_edges_match_numpy_bit_for_bit():
    rs = np.random.RandomState(3)
    for dtype in (np.float32, np.float64):
        x = (rs.randn(500, 6) * rs.rand(6) * 1e3 + rs.randn(6)).astype(dtype)
        x[:, 5] = 1.25
        edges = ops.histogram_edges(torch.from_numpy(x), 20).numpy()
        assert edges.dtype == dtype
        for d in range(6):
            assert np.array_equal(edges[d], np.histogram(x[:, d], 20)[1][:-1])


@IMPLS
def test_large_labels_are_relabelled(backend):
    x, _ = _data(120, 3, np.float32)
    y = np.random.RandomState(1).choice([5, 10**7, 3 * 10**9], size=(120, 2))
    out = fastrepr.histogram_mutual_info(torch.from_numpy(x).to(backend.device), torch.from_numpy(y).to(backend.device))
    np.testing.assert_allclose(out.cpu().numpy(), _oracle(x, y), rtol=1e-12, atol=1e-14)


def test_half_precision_codes_are_widened():
    x, y = _data(200, 3, np.float32)
    h = torch.from_numpy(x).half()
    out = fastrepr.histogram_mutual_info(h, torch.from_numpy(y))
    np.testing.assert_allclose(out.numpy(), _oracle(h.float().numpy(), y), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fastrepr.histogram_mutual_info(torch.randn(5)), ValueError, r"\[N, D\]"),
    (lambda: fastrepr.histogram_mutual_info(torch.ones(5, 2, dtype=torch.long)), TypeError, "codes must be float"),
    (lambda: fastrepr.histogram_mutual_info(torch.randn(0, 2)), ValueError, "empty"),
    (lambda: fastrepr.histogram_mutual_info(torch.tensor([[1.0], [float("nan")]])), ValueError, "NaN"),
    (lambda: fastrepr.histogram_mutual_info(torch.randn(5, 2), num_bins=0), ValueError, "num_bins"),
    (lambda: fastrepr.histogram_mutual_info(torch.randn(5, 2), torch.zeros(4, 1, dtype=torch.long)), ValueError, "N = 5"),
    (lambda: fastrepr.histogram_mutual_info(torch.randn(5, 2), torch.zeros(5, 1)), TypeError, "labels must be an integer"),
    (lambda: fastrepr.histogram_mutual_info(torch.randn(5, 2), -torch.ones(5, 1, dtype=torch.long)), ValueError, "non-negative"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_native_entry_point_validates(monkeypatch):

    from fastrepr import _native

    use_impl("native", monkeypatch)
    C = _native.get()
    x = np.random.randn(10, 2).astype(np.float32)
    e = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="labels outside"):
        C.histogram_mutual_info(x, e, np.full((10, 1), 7, np.int64), np.zeros((2, 1)), 3, "float32")
    with pytest.raises(ValueError, match="edges must have shape"):
        C.histogram_mutual_info(x, np.zeros((3, 4), np.float32), None, np.zeros((2, 2)), 0, "float32")
    with pytest.raises(TypeError, match="unsupported dtype"):
        C.histogram_mutual_info(x, e, None, np.zeros((2, 2)), 0, "int8")


@IMPLS
def test_opcheck(backend):
    x = torch.randn(40, 3, device=backend.device)
    edges = ops.histogram_edges(x, 5)
    y = torch.randint(0, 4, (40, 2), device=backend.device)
    torch.library.opcheck(ops.histogram_mutual_info, (x, edges, y, 4))
    torch.library.opcheck(ops.histogram_mutual_info, (x, edges, None, 0))


@pytest.mark.gpu
def test_triton_cuda_large():
    x, y = _data(50_000, 10, np.float32)
    out = fastrepr.histogram_mutual_info(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda())
    np.testing.assert_allclose(out.cpu().numpy(), _oracle(x, y), rtol=1e-10, atol=1e-12)
    y = np.random.RandomState(0).randint(0, 300, size=(50_000, 2))  # several label tiles
    out = fastrepr.histogram_mutual_info(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda())
    np.testing.assert_allclose(out.cpu().numpy(), _oracle(x, y), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("labelled", [True, False])
def test_triton_above_the_row_limit_adds_chunk_tables(monkeypatch, labelled):
    """Above MAX_TRITON_N rows (2^24 on a GPU: fp32 counts stop being exact) the Triton implementation counts
    row chunks below the limit and adds their tables in float64: a limit of 64 rows makes 3 chunks of 150."""
    device = impl_device(use_impl("triton", monkeypatch))
    x, y = _data(150, 3, np.float32)
    codes, labels = torch.from_numpy(x).to(device), (torch.from_numpy(y).to(device) if labelled else None)
    whole = fastrepr.histogram_mutual_info(codes, labels).cpu()
    monkeypatch.setattr(ops, "MAX_TRITON_N", 64)
    with _backend.recording() as ran:
        chunked = fastrepr.histogram_mutual_info(codes, labels).cpu()
    assert ran == {"histogram_mutual_info": "triton"}
    np.testing.assert_allclose(chunked.numpy(), _oracle(x, y if labelled else None), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(chunked.numpy(), whole.numpy(), rtol=1e-12, atol=1e-14)


def test_more_bins_than_the_triton_tile_pass_over_triton(monkeypatch):
    """On CUDA tensors the automatic choice takes triton up to 255 bins and the torch implementation above (the
    choice only reads shapes, so CPU tensors stand in for CUDA ones); a forced triton says why it cannot."""
    if not _backend.available("triton")[0]:
        pytest.skip(_backend.available("triton")[1])
    monkeypatch.delenv(_backend.ENV, raising=False)
    x = torch.randn(40, 2)
    cuda = torch.device("cuda")
    for bins, expect in ((255, "triton"), (256, "torch")):
        assert _backend.choose(ops.OP, ops.IMPLS, cuda, (x, ops.histogram_edges(x, bins), None, 0)) == expect
    use_impl("triton", monkeypatch)
    with pytest.raises(RuntimeError, match="FASTREPR_BACKEND=triton: histogram_mutual_info takes at most 255 bins"):
        fastrepr.histogram_mutual_info(x, num_bins=300)
