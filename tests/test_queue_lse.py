"""The op fastrepr::queue_lse (the queue / memory-bank log-sum-exp behind info_nce(queue=) and
NTXentLoss(memory_bank_size=)): every implementation against the float64 oracle (values and the weighted mean,
gradients in q and the temperature), shapes that cross the tiles of each implementation, 16-bit queues, the
native kernel with and without BLAS, opcheck, torch.compile, and bad input naming the argument."""
import pytest
import torch

import fastrepr
from fastrepr import reference
from fastrepr.ops import _search_plan, queue_lse as ops
from utils import assert_close, impl_params

IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)
# N = 1, K = 1, D = 1; N past the native kernel's 128-row block and K past its 256-column tile; odd D
SHAPES = [(1, 1, 1), (5, 3, 7), (130, 300, 70), (33, 600, 16)]


@pytest.fixture(params=["blas", "loops"])
def native_path(request, monkeypatch):
    """The native kernel through the BLAS sgemm (when one is loaded) or through its built-in loops."""
    if request.param == "loops":
        monkeypatch.setattr(_search_plan, "sgemm_handle", lambda: 0)
    elif _search_plan.sgemm_handle() == 0:
        pytest.skip("no BLAS sgemm loaded in this process")
    return request.param


def _inputs(n, k, d, dtype, device, scale=1.0):
    q = torch.randn(n, d, dtype=dtype, device=device) * scale
    queue = torch.randn(k, d, dtype=dtype, device=device) * scale
    return q, queue


@IMPLS
@pytest.mark.parametrize("n, k, d", SHAPES)
@pytest.mark.parametrize("normalize", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_values_match_float64_oracle(backend, n, k, d, normalize, dtype):
    q, queue = _inputs(n, k, d, dtype, backend.device, 1.0 if normalize else 0.3)
    t = torch.tensor(0.2, dtype=dtype)
    lse, wmean = ops.queue_lse(q, queue, t, normalize)
    ref_lse, ref_wmean = reference.queue_lse(q.double(), queue.double(), 0.2, normalize)
    assert lse.dtype == dtype and wmean.shape == (n, d)
    assert_close(lse, ref_lse, dtype, what="lse")
    assert_close(wmean, ref_wmean, dtype, what="weighted mean")


def test_native_blas_and_loops_match_oracle(native_path, monkeypatch):
    monkeypatch.setenv("FASTREPR_BACKEND", "native")
    q, queue = _inputs(257, 513, 33, torch.float32, "cpu")
    lse, wmean = ops.queue_lse(q, queue, torch.tensor(0.07), True)
    ref_lse, ref_wmean = reference.queue_lse(q.double(), queue.double(), 0.07)
    assert_close(lse, ref_lse, torch.float32, what=f"lse ({native_path})")
    assert_close(wmean, ref_wmean, torch.float32, what=f"weighted mean ({native_path})")


@IMPLS
@pytest.mark.parametrize("n, k, d", SHAPES[1:])
@pytest.mark.parametrize("normalize", [True, False])
def test_gradients_match_float64_oracle(backend, n, k, d, normalize):
    """d/dq and d/dτ of a weighted sum of lse (the O(N·D) backward from the saved weighted mean)."""
    q, queue = _inputs(n, k, d, torch.float32, backend.device, 1.0 if normalize else 0.3)
    w = torch.rand(n)
    grads = []
    for dt in (torch.float32, torch.float64):
        qq = q.to(dt).detach().clone().requires_grad_(True)
        t = torch.tensor(0.3, dtype=dt, requires_grad=True)
        fn = ops.queue_lse if dt == torch.float32 else reference.queue_lse
        lse, _ = fn(qq, queue.to(dt), t, normalize)
        (lse * w.to(dt)).sum().backward()
        grads.append((qq.grad, t.grad))
    (gq, gt), (rq, rt) = grads
    assert_close(gq, rq, torch.float32, grad=True, what="d/dq")
    assert_close(gt, rt, torch.float32, grad=True, what="d/dtemperature")


@IMPLS
@pytest.mark.parametrize("normalize", [True, False])
def test_gradcheck_float64(backend, normalize):
    q = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(0.4, dtype=torch.float64, requires_grad=True)
    queue = torch.randn(11, 5, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: ops.queue_lse(a, queue, b, normalize)[0], (q, t))


def test_torch_tiles_equal_one_tile(monkeypatch):
    """Many [ROW_CHUNK, COL_BLOCK] tiles (online max and rescaled weighted sums) give the one-tile numbers."""
    q, queue = _inputs(9, 23, 4, torch.float64, "cpu")
    rq = ops.queue_inverse_norms(queue, True)
    qh = torch.nn.functional.normalize(q, dim=1)
    t = torch.tensor(0.1, dtype=torch.float64)
    whole = ops.queue_lse_torch(qh, queue, rq, t)
    monkeypatch.setattr(ops, "ROW_CHUNK", 2)
    monkeypatch.setattr(ops, "COL_BLOCK", 3)
    monkeypatch.setattr(ops, "QUEUE_CHUNK", 5)
    tiled = ops.queue_lse_torch(qh, queue, ops.queue_inverse_norms(queue, True), t)
    for a, b in zip(tiled, whole):
        assert_close(a, b)
    assert_close(whole[0], reference.queue_lse(q, queue, 0.1)[0])


@IMPLS
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_queue(backend, dtype):
    q, queue = (x.to(dtype) for x in _inputs(37, 300, 24, torch.float32, backend.device))
    lse, wmean = ops.queue_lse(q, queue, torch.tensor(0.2), True)
    ref_lse, ref_wmean = reference.queue_lse(q.double(), queue.double(), 0.2)
    assert lse.dtype == torch.float32
    assert_close(lse, ref_lse, dtype, what="lse")
    assert_close(wmean, ref_wmean, dtype, what="weighted mean")


@IMPLS
def test_zero_rows_and_sharp_temperature(backend):
    """A zero row of q or of the queue scores 0 (as F.normalize leaves it); τ = 1e-3 puts 2000 between scores,
    which the running max keeps finite and exact."""
    q, queue = _inputs(6, 40, 8, torch.float32, backend.device)
    q[2] = 0
    queue[7] = 0
    for t in (0.5, 1e-3):
        lse, wmean = ops.queue_lse(q, queue, torch.tensor(t), True)
        ref_lse, ref_wmean = reference.queue_lse(q.double(), queue.double(), t)
        assert torch.isfinite(lse).all()
        assert_close(lse, ref_lse, torch.float32, what=f"lse t={t}")
        assert_close(wmean, ref_wmean, torch.float32, what=f"weighted mean t={t}", scale=10 if t < 0.01 else 1)


@IMPLS
def test_queue_gets_no_gradient(backend):
    q = torch.randn(4, 6, requires_grad=True)
    queue = torch.randn(9, 6, requires_grad=True)
    lse, wmean = ops.queue_lse(q, queue, torch.tensor(0.5), True)
    assert not wmean.requires_grad
    lse.sum().backward()
    assert queue.grad is None and q.grad is not None


@IMPLS
def test_opcheck(backend):
    q = torch.randn(5, 4, requires_grad=True)
    torch.library.opcheck(ops.queue_lse, (q, torch.randn(7, 4), torch.tensor(0.3), True))


def test_torch_compile_fullgraph():
    """The op traces in one graph (its checks run inside it on real tensors), forward and backward."""
    torch._dynamo.reset()
    q, queue, t = torch.randn(6, 8, requires_grad=True), torch.randn(20, 8), torch.tensor(0.2)
    out = torch.compile(lambda a: ops.queue_lse(a, queue, t, True)[0].sum(), fullgraph=True, backend="aot_eager")(q)
    out.backward()
    q64 = q.detach().double().requires_grad_(True)
    ref = reference.queue_lse(q64, queue.double(), 0.2)[0].sum()
    ref.backward()
    assert_close(out, ref, torch.float32)
    assert_close(q.grad, q64.grad, torch.float32, grad=True)


@pytest.mark.parametrize("args, error, match", [
    (lambda: (torch.full((3, 4), float("nan")), torch.randn(5, 4)), ValueError, "q contains NaN or Inf"),
    (lambda: (torch.randn(3, 4), torch.full((5, 4), float("inf"))), ValueError, "queue contains NaN or Inf"),
    (lambda: (torch.randn(3, 4), torch.randn(5, 3)), ValueError, "queue must have D=4"),
    (lambda: (torch.randn(3, 4), torch.randn(0, 4)), ValueError, "queue must have shape"),
    (lambda: (torch.randn(3), torch.randn(5, 3)), ValueError, "q must have shape"),
    (lambda: (torch.randn(3, 4), torch.randn(5, 4, dtype=torch.float64)), TypeError, "queue must have q's dtype"),
    (lambda: (torch.randn(3, 4), torch.ones(5, 4, dtype=torch.long)), TypeError, "queue must be a floating"),
])
def test_bad_input_names_the_argument(args, error, match):
    q, queue = args()
    with pytest.raises(error, match=match):
        ops.queue_lse(q, queue, torch.tensor(0.1), True)


@pytest.mark.parametrize("t, match", [(0.0, "temperature"), (float("nan"), "temperature"),
                                      (torch.ones(2), "temperature must be a 0-dim")])
def test_bad_temperature(t, match):
    with pytest.raises(ValueError, match=match):
        ops.queue_lse(torch.randn(3, 4), torch.randn(5, 4), torch.as_tensor(t), True)


def test_normalize_false_overflow_is_an_error():
    with pytest.raises(ValueError, match="normalize=False"):
        ops.queue_lse(torch.full((2, 4), 1e19), torch.full((3, 4), 1e19), torch.tensor(0.1), False)
