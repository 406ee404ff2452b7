"""nt_xent, info_nce and sup_con on every backend against the float64 reference (values and gradients,
learnable temperature), parity with pytorch-metric-learning, torch.compile, bad input, memory."""
import pytest
import torch

import fastrepr
from fastrepr import _backend, bench, reference
from fastrepr.ops import contrastive as ops
from utils import assert_close, impl_params, use_impl

# every test taking `backend` runs once per implementation the op declares (triton, torch: no native one; the
# CPU path is the chunked torch algorithm): the conftest fixture forces each through use_impl
IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)


def _grads(fn, tensors):
    """Value and gradients of fn(*tensors) (fresh leaves)."""
    leaves = [t.detach().clone().requires_grad_(t.requires_grad) for t in tensors]
    out = fn(*leaves)
    out.backward()
    return out.detach(), [l.grad for l in leaves if l.requires_grad]


def _close_to_oracle(loss, grads, ref, ref_grads, grad_tol=False):
    """fp32 loss and gradients against the float64 oracle's, elementwise at tests/utils' fp32 value tolerance
    (DESIGN.md: 1e-5 relative; the gradients meet it too at these small sizes), or with grad_tol the gradients
    at GRAD_TOL (large GPU sizes, where the sums run over thousands of columns)."""
    assert_close(loss, ref, torch.float32, what="loss")
    for n, (g, r) in enumerate(zip(grads, ref_grads)):
        assert_close(g, r, torch.float32, grad=grad_tol, what=f"gradient {n}")


def _views(n, d, device, dtype=torch.float32):
    return (torch.randn(n, d, device=device, dtype=dtype, requires_grad=True),
            torch.randn(n, d, device=device, dtype=dtype, requires_grad=True))


@IMPLS
@pytest.mark.parametrize("n, d", [(2, 3), (5, 16), (33, 70), (20, 300)])  # 300: D split over tiles
@pytest.mark.parametrize("tau", [1.0, 0.1, 0.01])
def test_nt_xent_fp32_matches_float64(backend, n, d, tau):
    z1, z2 = _views(n, d, backend.device)
    t = torch.tensor(tau, device=backend.device, requires_grad=True)
    loss, grads = _grads(lambda a, b, c: fastrepr.nt_xent(a, b, c), (z1, z2, t))
    ref, ref_grads = _grads(lambda a, b, c: reference.nt_xent(a, b, c), (z1.double(), z2.double(), t.double()))
    assert loss.dtype == torch.float32
    # dz1, dz2 and the learnable temperature's gradient. At tau = 0.01 the logits reach 100: the fp32 rounding of
    # each logit (~1e-5 absolute) enters the softmax gradients amplified by 1/tau, on every implementation alike
    # (torch's own fp32 ops included; on an AMD EPYC one entry in 80 came out 3e-5 relative): there the gradients
    # are held to the issues' gradient bar, 1e-4.
    _close_to_oracle(loss, grads, ref, ref_grads, grad_tol=tau < 0.1)


@IMPLS
@pytest.mark.parametrize("reduction", ["sum", "none"])
@pytest.mark.parametrize("normalize", [True, False])
def test_nt_xent_reduction_and_unnormalized(backend, reduction, normalize):
    z1, z2 = _views(9, 12, backend.device)
    scale = 1.0 if normalize else 0.3  # unnormalized logits stay moderate
    fn = lambda a, b: (fastrepr.nt_xent(a * scale, b * scale, 0.5, reduction, normalize) * torch.linspace(  # noqa: E731
        1, 2, 18 if reduction == "none" else 1, device=a.device, dtype=torch.float64 if a.dtype == torch.float64 else torch.float32)).sum()
    ref_fn = lambda a, b: (reference.nt_xent(a * scale, b * scale, 0.5, reduction, normalize) * torch.linspace(  # noqa: E731
        1, 2, 18 if reduction == "none" else 1, device=a.device, dtype=torch.float64)).sum()
    loss, grads = _grads(fn, (z1, z2))
    ref, ref_grads = _grads(ref_fn, (z1.double(), z2.double()))
    _close_to_oracle(loss, grads, ref, ref_grads)


@IMPLS
@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("n, d", [(3, 5), (19, 40)])
def test_info_nce_matches_float64(backend, symmetric, n, d):
    q, k = _views(n, d, backend.device)
    t = torch.tensor(0.07, device=backend.device, requires_grad=True)
    loss, grads = _grads(lambda a, b, c: fastrepr.info_nce(a, b, c, symmetric), (q, k, t))
    ref, ref_grads = _grads(lambda a, b, c: reference.info_nce(a, b, c, symmetric), (q.double(), k.double(), t.double()))
    _close_to_oracle(loss, grads, ref, ref_grads)


@IMPLS
@pytest.mark.parametrize("n, classes", [(12, 3), (25, 20)])  # 20 classes in 25 samples: many anchors lack positives
def test_sup_con_matches_float64(backend, n, classes):
    z = torch.randn(n, 24, device=backend.device, requires_grad=True)
    labels = torch.randint(0, classes, (n,), device=backend.device)
    t = torch.tensor(0.1, device=backend.device, requires_grad=True)
    loss, grads = _grads(lambda a, c: fastrepr.sup_con(a, labels, c), (z, t))
    ref, ref_grads = _grads(lambda a, c: reference.sup_con(a, labels, c), (z.double(), t.double()))
    _close_to_oracle(loss, grads, ref, ref_grads)


@IMPLS
def test_sup_con_multiview_and_no_positives(backend):
    z = torch.randn(6, 2, 8, device=backend.device)
    labels = torch.tensor([0, 1, 2, 0, 1, 2], device=backend.device)
    flat = fastrepr.sup_con(z.reshape(12, 8), labels.repeat_interleave(2))
    torch.testing.assert_close(fastrepr.sup_con(z, labels), flat)
    lonely = torch.randn(4, 8, device=backend.device, requires_grad=True)
    loss = fastrepr.sup_con(lonely, torch.arange(4, device=backend.device))
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(lonely.grad, torch.zeros_like(lonely))


@IMPLS
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_error_within_twice_torch(backend, dtype):
    """16-bit inputs: error against float64 at most 2x that of the plain-PyTorch loss run in that dtype."""
    z1, z2 = _views(24, 32, backend.device, dtype)
    loss, grads = _grads(lambda a, b: fastrepr.nt_xent(a, b, 0.1), (z1, z2))
    ref, ref_grads = _grads(lambda a, b: reference.nt_xent(a, b, 0.1), (z1.double(), z2.double()))
    same, same_grads = _grads(lambda a, b: reference.nt_xent(a, b, 0.1), (z1, z2))
    assert loss.dtype == torch.float32 and grads[0].dtype == dtype
    assert abs(loss.double() - ref).item() <= 2 * abs(same.double() - ref).item() + 1e-6
    for g, r, s in zip(grads, ref_grads, same_grads):
        assert (g.double() - r).abs().max() <= 2 * (s.double() - r).abs().max()


def test_gradcheck_float64():
    z1, z2 = (torch.randn(4, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    t = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 0, 1])
    assert torch.autograd.gradcheck(lambda a, b, c: fastrepr.nt_xent(a, b, c), (z1, z2, t))
    assert torch.autograd.gradcheck(lambda a, b, c: fastrepr.info_nce(a, b, c), (z1, z2, t))
    assert torch.autograd.gradcheck(lambda a, c: fastrepr.sup_con(a, labels, c), (z1, t))
    assert torch.autograd.gradcheck(lambda a, b: fastrepr.nt_xent(a, b, 0.7, "none", normalize=False), (z1, z2))


def test_parity_with_pytorch_metric_learning():
    losses = pytest.importorskip("pytorch_metric_learning.losses")
    z1, z2 = torch.randn(32, 16), torch.randn(32, 16)
    pml = losses.SelfSupervisedLoss(losses.NTXentLoss(temperature=0.07))(z1, z2)
    assert_close(fastrepr.nt_xent(z1, z2, 0.07), pml, torch.float32)
    z, labels = torch.randn(48, 16), torch.randint(0, 5, (48,))
    assert_close(fastrepr.sup_con(z, labels, 0.1), losses.SupConLoss(temperature=0.1)(z, labels), torch.float32)


def test_modules():
    z1, z2 = torch.randn(8, 4), torch.randn(8, 4)
    torch.testing.assert_close(fastrepr.NTXentLoss(temperature=0.2)(z1, z2), fastrepr.nt_xent(z1, z2, 0.2))
    assert fastrepr.NTXentLoss().temperature == 0.5  # lightly's default
    loss = fastrepr.InfoNCELoss(temperature=0.07, learnable=True)
    out = loss(z1, z2)
    out.backward()
    assert loss.log_temperature.grad is not None and loss.log_temperature.grad.abs() > 0
    torch.testing.assert_close(out.detach(), fastrepr.info_nce(z1, z2, 0.07))
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    torch.testing.assert_close(fastrepr.SupConLoss(0.1)(z1, labels), fastrepr.sup_con(z1, labels, 0.1))
    with pytest.raises(ValueError, match="memory_bank_size"):  # banks: tests/test_memory_bank.py
        fastrepr.NTXentLoss(memory_bank_size=-4096)
    with pytest.raises(ValueError, match="temperature"):
        fastrepr.NTXentLoss(temperature=0.0)


@IMPLS
def test_deterministic(backend):
    z1, z2 = _views(20, 17, backend.device)
    _, g1 = _grads(lambda a, b: fastrepr.nt_xent(a, b), (z1, z2))
    _, g2 = _grads(lambda a, b: fastrepr.nt_xent(a, b), (z1, z2))
    assert all(torch.equal(a, b) for a, b in zip(g1, g2))


@IMPLS
def test_opcheck_and_compile(backend):
    z = torch.randn(6, 5, device=backend.device, requires_grad=True)
    lab = torch.arange(6, device=backend.device) % 3
    t = torch.tensor(0.3, device=backend.device)
    torch.library.opcheck(ops.contrastive_stats, (z, z, lab, lab, torch.arange(6, device=backend.device), t,
                                                  True, True, False))
    torch._dynamo.reset()
    f = torch.compile(lambda a, b: fastrepr.nt_xent(a, b, 0.2) + fastrepr.info_nce(a, b, 0.2), fullgraph=True,
                      backend="aot_eager")
    z1, z2 = _views(6, 5, backend.device)
    out = f(z1, z2)
    out.backward()
    expect = reference.nt_xent(z1.detach(), z2.detach(), 0.2) + reference.info_nce(z1.detach(), z2.detach(), 0.2)
    assert_close(out, expect, torch.float32)
    assert torch.isfinite(z1.grad).all()


# ------------------------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, exc, match", [
    (lambda: fastrepr.nt_xent(torch.randn(4, 3), torch.randn(5, 3)), ValueError, "same shape"),
    (lambda: fastrepr.nt_xent(torch.randn(1, 3), torch.randn(1, 3)), ValueError, "N >= 2"),
    (lambda: fastrepr.nt_xent(torch.randn(4), torch.randn(4)), ValueError, r"\[N, D\]"),
    (lambda: fastrepr.nt_xent(torch.randn(4, 0), torch.randn(4, 0)), ValueError, "D=0"),
    (lambda: fastrepr.nt_xent(torch.ones(4, 3, dtype=torch.long), torch.ones(4, 3, dtype=torch.long)), TypeError, "float"),
    (lambda: fastrepr.nt_xent(torch.randn(4, 3), torch.randn(4, 3, dtype=torch.float64)), TypeError, "one dtype"),
    (lambda: fastrepr.nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature=0.0), ValueError, "temperature"),
    (lambda: fastrepr.nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature=-1.0), ValueError, "temperature"),
    (lambda: fastrepr.nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature=torch.tensor(-0.1)), ValueError, "temperature"),
    (lambda: fastrepr.nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature="0.1"), TypeError, "temperature"),
    (lambda: fastrepr.nt_xent(torch.randn(4, 3), torch.randn(4, 3), temperature=torch.ones(2)), TypeError, "0-dim"),
    (lambda: fastrepr.nt_xent(torch.randn(4, 3), torch.randn(4, 3), reduction="avg"), ValueError, "reduction"),
    (lambda: fastrepr.nt_xent(torch.full((4, 3), float("nan")), torch.randn(4, 3)), ValueError, "NaN"),
    (lambda: fastrepr.info_nce(torch.randn(4, 3), torch.randn(4, 2)), ValueError, "same shape"),
    (lambda: fastrepr.info_nce(torch.randn(4, 3), torch.tensor([[float("inf")] * 3] * 4)), ValueError, "NaN or Inf"),
    (lambda: fastrepr.sup_con(torch.randn(4, 3), torch.zeros(5, dtype=torch.long)), ValueError, "labels has 5"),
    (lambda: fastrepr.sup_con(torch.randn(4, 3), torch.zeros(4)), TypeError, "labels must be an integer"),
    (lambda: fastrepr.sup_con(torch.randn(1, 3), torch.zeros(1, dtype=torch.long)), ValueError, "N >= 2"),
])
@IMPLS
def test_bad_input(backend, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_forced_native_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("FASTREPR_BACKEND", "native")
    with pytest.raises(RuntimeError, match="contrastive_stats has no native implementation"):
        fastrepr.nt_xent(torch.randn(4, 3), torch.randn(4, 3))


# ------------------------------------------------------------------------------------------- memory

def test_cpu_memory_is_a_fraction_of_the_reference(monkeypatch):
    """O(N·chunk) on CPU: at 2N=8192 the fused forward+backward needs at most 10% of the extra memory of
    the plain-PyTorch reference (whose 2N x 2N matrices dominate): the issue's CPU bar (D=32 here to keep
    the test short; D only changes the O(N·D) part)."""

    use_impl("torch", monkeypatch)
    z1, z2 = _views(4096, 32, "cpu")

    def run(fn):
        def call():
            z1.grad = z2.grad = None
            out = fn(z1, z2, 0.1)
            out.backward()
            return out
        return call

    run(fastrepr.nt_xent)()  # warm-up
    ours = bench.peak_memory(run(fastrepr.nt_xent), torch.device("cpu"))
    ref = bench.peak_memory(run(reference.nt_xent), torch.device("cpu"))
    assert ref > 3 * 8192 * 8192 * 4 * 0.9, ref  # the reference holds several 2N x 2N fp32 matrices
    assert ours <= 0.10 * ref, (ours, ref)


# ------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_triton_cuda_large_and_lean(monkeypatch, dtype):

    use_impl("triton", monkeypatch)
    torch.backends.cuda.matmul.allow_tf32 = False
    z1, z2 = _views(2048, 128, "cuda", dtype)
    loss, grads = _grads(lambda a, b: fastrepr.nt_xent(a, b, 0.1), (z1, z2))
    ref, ref_grads = _grads(lambda a, b: reference.nt_xent(a, b, 0.1), (z1.double(), z2.double()))
    if dtype == torch.float32:
        _close_to_oracle(loss, grads, ref, ref_grads, grad_tol=True)
    else:
        same, same_grads = _grads(lambda a, b: reference.nt_xent(a, b, 0.1), (z1, z2))
        assert abs(loss.double() - ref).item() <= 2 * abs(same.double() - ref).item() + 1e-6
        for g, r, s in zip(grads, ref_grads, same_grads):
            assert (g.double() - r).abs().max() <= 2 * (s.double() - r).abs().max()
    # 2N = 65536 at D=128: far below the 2N x 2N matrix (16 GiB in fp32)
    z1, z2 = _views(32768, 128, "cuda", dtype)
    peak = bench.peak_memory(lambda: fastrepr.nt_xent(z1, z2, 0.1).backward(), torch.device("cuda"))
    assert peak < 256 * 2**20, peak
