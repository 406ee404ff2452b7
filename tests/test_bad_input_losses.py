"""Bad input for the losses, on every backend each op has: NaN/Inf named by argument (and row), temperatures
that round to 0 or overflow in the compute dtype, overflowing norms and scores, codes outside {0, 1}; the same
error on every backend. Plus the scale invariance of the contrastive losses at 1e20 and 1e-20, and what the
unchecked (CUDA without FASTREPR_CHECK=1) path returns: NaN, never a plausible number."""
import types

import pytest
import torch

import fastrepr
from fastrepr import _checks
from fastrepr.ops import contrastive
from fastrepr.text.huffman import build_huffman
from utils import assert_close, impl_params

NAN, INF = float("nan"), float("inf")
# the contrastive tests run once per implementation contrastive_stats declares (triton, torch: their CPU path
# is the chunked torch algorithm; triton runs in the interpreter), forced by the conftest `backend` fixture
CONTRASTIVE = pytest.mark.parametrize("backend", impl_params(contrastive.IMPLS), indirect=True)


def _with(t, index, value):
    t = t.clone()
    t[index] = value
    return t


Z = torch.randn(6, 5)
Y = torch.randn(6, 5)
LAB = torch.tensor([0, 1, 0, 1, 2, 2])


# ------------------------------------------------------------------------------------------- contrastive

@pytest.mark.parametrize("call, match", [
    (lambda: fastrepr.nt_xent(_with(Z, (3, 1), NAN), Y), r"z1 contains NaN or Inf \(row 3\)"),
    (lambda: fastrepr.nt_xent(Z, _with(Y, (4, 0), INF)), r"z2 contains NaN or Inf \(row 4\)"),
    (lambda: fastrepr.nt_xent(Z, _with(Y, (0, 0), -INF), normalize=False), r"z2 contains NaN or Inf \(row 0\)"),
    (lambda: fastrepr.info_nce(_with(Z, (5, 4), NAN), Y), r"q contains NaN or Inf \(row 5\)"),
    (lambda: fastrepr.info_nce(Z, _with(Y, (2, 2), INF)), r"k contains NaN or Inf \(row 2\)"),
    (lambda: fastrepr.sup_con(_with(Z, (1, 3), NAN), LAB), r"z contains NaN or Inf \(row 1\)"),
    (lambda: fastrepr.NTXentLoss(0.5)(Z, _with(Y, (1, 1), NAN)), r"z2 contains NaN"),
    (lambda: fastrepr.InfoNCELoss(0.07)(Z, _with(Y, (1, 1), NAN)), r"k contains NaN"),
    (lambda: fastrepr.SupConLoss(0.1)(_with(Z, (1, 1), INF), LAB), r"z contains NaN"),
    # temperatures as the compute dtype (float32 here) stores them
    (lambda: fastrepr.nt_xent(Z, Y, 1e-40), "temperature=1e-40 is too small for float32"),
    (lambda: fastrepr.nt_xent(Z, Y, 1e-50), "temperature must be finite and > 0 in float32"),
    (lambda: fastrepr.nt_xent(Z, Y, 1e39), "temperature must be finite and > 0 in float32"),
    (lambda: fastrepr.nt_xent(Z, Y, NAN), "temperature must be finite and > 0"),
    (lambda: fastrepr.nt_xent(Z, Y, -0.0), "temperature must be finite and > 0"),
    (lambda: fastrepr.info_nce(Z, Y, 1e-40), "temperature=1e-40 is too small"),
    (lambda: fastrepr.sup_con(Z, LAB, 1e-40), "temperature=1e-40 is too small"),
    (lambda: fastrepr.nt_xent(Z, Y, torch.tensor(1e-40)), "temperature=.* is too small for float32"),
    (lambda: fastrepr.info_nce(Z, Y, torch.tensor(NAN)), "temperature must be finite and > 0"),
    (lambda: fastrepr.sup_con(Z, LAB, torch.tensor(INF)), "temperature must be finite and > 0"),
    (lambda: fastrepr.NTXentLoss(temperature=1e-40)(Z, Y), "temperature=1e-40 is too small for float32"),
    (lambda: fastrepr.InfoNCELoss(temperature=1e-40)(Z, Y), "temperature=.* is too small for float32"),
    # unnormalized scores that cannot be represented (with normalize=True they are fine: see below)
    (lambda: fastrepr.nt_xent(Z * 1e19, Y * 1e19, 0.1, normalize=False), "z1, z2: with normalize=False"),
    (lambda: fastrepr.info_nce(Z * 1e19, Y * 1e19, 0.1, normalize=False), "q and k: with normalize=False"),
    (lambda: fastrepr.sup_con(Z * 1e30, LAB, 1.0, normalize=False), "z: with normalize=False"),
])
@CONTRASTIVE
def test_contrastive_bad_values(backend, call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fastrepr.NTXentLoss(temperature=0.0), ValueError, "temperature must be finite and > 0"),
    (lambda: fastrepr.NTXentLoss(temperature=NAN), ValueError, "temperature must be finite and > 0"),
    (lambda: fastrepr.SupConLoss(temperature=INF), ValueError, "temperature must be finite and > 0"),
    (lambda: fastrepr.InfoNCELoss(temperature="0.1"), TypeError, "temperature must be a float"),
    (lambda: fastrepr.nt_xent(Z[:, :0], Y[:, :0]), ValueError, "D=0"),
    (lambda: fastrepr.nt_xent(Z.half(), Y.half(), 1e-40), ValueError, "too small for float32"),
])
def test_contrastive_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _float64_runs_on(backend) -> bool:
    """Whether float64 losses run on this implementation: triton declares that it takes none (Impls.rejects),
    so forced it raises that clear error (automatically, float64 goes to the torch implementation)."""
    if backend.name != "triton":
        return True
    with pytest.raises(RuntimeError, match="FASTREPR_BACKEND=triton: contrastive_stats takes no float64"):
        fastrepr.nt_xent(Z.double(), Y.double())
    return False


@CONTRASTIVE
def test_float64_keeps_temperatures_that_float64_represents(backend):
    """1e-40 is too small for float32 but fine in float64: the check is per compute dtype."""
    if not _float64_runs_on(backend):
        return
    z, y = Z.double(), Y.double()
    loss = fastrepr.nt_xent(z, y, 1e-40)
    assert torch.isfinite(loss)


LOSSES = {
    "nt_xent": lambda a, b: fastrepr.nt_xent(a, b, 0.2),
    "nt_xent none": lambda a, b: fastrepr.nt_xent(a, b, 0.2, reduction="none"),
    "info_nce": lambda a, b: fastrepr.info_nce(a, b, 0.2),
    "info_nce one-way": lambda a, b: fastrepr.info_nce(a, b, 0.2, symmetric=False),
    "sup_con": lambda a, b: fastrepr.sup_con(torch.cat([a, b]), torch.arange(2 * a.shape[0]) % 3, 0.2),
}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("scale", [1e20, 1e-20])
@pytest.mark.parametrize("name", sorted(LOSSES))
@CONTRASTIVE
def test_contrastive_losses_are_scale_invariant(backend, name, scale, dtype):
    """loss(c·z) = loss(z) for c > 0 (normalized embeddings): ||1e20 z|| used to overflow float32 and give
    log(2N - 1); at 1e-20 the 1e-12 norm clamp did the same. Gradients scale by 1/c."""
    if dtype == torch.float64 and not _float64_runs_on(backend):
        return
    fn = LOSSES[name]
    g = torch.Generator().manual_seed(1)
    a, b = (torch.randn(7, 9, generator=g).to(dtype) for _ in range(2))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype != torch.bfloat16 else dict(rtol=2e-2, atol=1e-2)

    def run(x, y):
        x, y = x.clone().requires_grad_(), y.clone().requires_grad_()
        out = fn(x, y)
        out.sum().backward()
        return out.detach(), x.grad, y.grad

    base, ga, gb = run(a, b)
    scaled, sa, sb = run(a * scale, b * scale)
    assert torch.isfinite(scaled).all()
    torch.testing.assert_close(scaled, base, **tol)
    if dtype != torch.bfloat16:  # 1e±20 times a bf16 gradient loses more than the loss tolerance
        torch.testing.assert_close(sa.double() * scale, ga.double(), rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(sb.double() * scale, gb.double(), rtol=1e-4, atol=1e-6)


@CONTRASTIVE
def test_zero_rows_stay_zero_like_f_normalize(backend):
    """A zero embedding has cosine 0 with everything (as torch.nn.functional.normalize makes it): finite loss."""
    z = _with(Z, 2, 0.0)
    ref = fastrepr.reference.nt_xent(torch.nn.functional.normalize(z.double(), dim=1),
                                     torch.nn.functional.normalize(Y.double(), dim=1), 0.3, normalize=False)
    assert_close(fastrepr.nt_xent(z, Y, 0.3), ref, torch.float32)


def test_unchecked_path_returns_nan_not_a_number(monkeypatch):
    """What CUDA without FASTREPR_CHECK=1 does (emulated on CPU): no host sync, and invalid input gives NaN."""
    monkeypatch.setattr(_checks, "data_checks", lambda t: False)
    assert torch.isnan(fastrepr.nt_xent(Z, Y, torch.tensor(1e-40)))
    assert torch.isnan(fastrepr.info_nce(Z, Y, torch.tensor(-1.0)))
    assert torch.isnan(fastrepr.nt_xent(_with(Z, (0, 0), NAN), Y))
    assert torch.isnan(fastrepr.nt_xent(_with(Z, (0, 0), INF), Y))


def test_data_checks_on_cuda_follow_fastrepr_check(monkeypatch):
    cuda = types.SimpleNamespace(device=torch.device("cuda"))
    monkeypatch.delenv(_checks.CHECK_ENV, raising=False)
    assert _checks.data_checks(torch.zeros(1)) and not _checks.data_checks(cuda)
    monkeypatch.setenv(_checks.CHECK_ENV, "1")
    assert _checks.data_checks(cuda)


# ------------------------------------------------------------------------------------------- word2vec losses

W_IN, W_OUT = torch.randn(10, 4), torch.randn(12, 4)
CEN, CTX = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
NEG = torch.tensor([[7, 8], [9, 10], [11, 0]])
CBOW = torch.tensor([[1, 2], [3, 4], [5, 6]])
MASK = torch.tensor([[True, False], [True, True], [False, True]])
TREE = build_huffman([9, 7, 5, 3, 2])
H = torch.randn(4, 4)
NODES = torch.randn(4, 4)
TGT = torch.tensor([0, 1, 2, 4])


def _inf_hidden_behind_zero_loss():
    """An Inf in w_in whose scores are +inf for the target and -inf for the negative: log sigmoid gives 0 for
    both, so the loss would be a plausible 0 if only the loss were looked at."""
    w_in = _with(W_IN, 2, 0.0)
    w_in[2, 0] = INF
    w_out = W_OUT.clone()
    w_out[5] = torch.tensor([1.0, 0, 0, 0])
    w_out[[9, 10]] = torch.tensor([-1.0, 0, 0, 0])
    return fastrepr.sgns_loss(w_in, w_out, CEN[1:2], CTX[1:2], NEG[1:2])


def _tree(codes):
    points, _, lengths = TREE.tensors("cpu")
    return points, codes, lengths


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fastrepr.sgns_loss(_with(W_IN, (2, 1), NAN), W_OUT, CEN, CTX, NEG), ValueError,
     "w_in contains NaN or Inf in row 2, which this batch reads"),
    (lambda: fastrepr.sgns_loss(W_IN, _with(W_OUT, (10, 3), -INF), CEN, CTX, NEG), ValueError,
     "w_out contains NaN or Inf in row 10"),
    (_inf_hidden_behind_zero_loss, ValueError, "w_in contains NaN or Inf in row 2"),
    (lambda: fastrepr.sgns_loss(W_IN * 1e20, W_OUT * 1e20, CEN, CTX, NEG), ValueError,
     r"the scores h·w_out \(or their loss\) overflow float32"),
    (lambda: fastrepr.sgns_loss(W_IN.double() * 1e160, W_OUT.double() * 1e160, CEN, CTX, NEG), ValueError,
     "overflow float64"),
    (lambda: fastrepr.cbow_ns_loss(_with(W_IN, (3, 0), NAN), W_OUT, CBOW, CTX, NEG, MASK), ValueError,
     "w_in contains NaN or Inf in row 3"),
    (lambda: fastrepr.NegativeSamplingLoss(10, 4)(CEN, CTX, torch.full((3, 2), 2**62)), ValueError,
     "negatives has indices"),
    (lambda: fastrepr.sgns_loss(W_IN, W_OUT, CEN, CTX, torch.full((3, 2), -2**63)), ValueError,
     "negatives has indices"),
    (lambda: fastrepr.hierarchical_softmax_loss(_with(H, (1, 2), NAN), NODES, TGT, TREE), ValueError,
     "h contains NaN or Inf in row 1"),
    (lambda: fastrepr.hierarchical_softmax_loss(H, _with(NODES, (TREE.points[4, 0], 1), INF), TGT, TREE),
     ValueError, f"w_nodes contains NaN or Inf in row {int(TREE.points[4, 0])}"),
    (lambda: fastrepr.hierarchical_softmax_loss(H * 1e20, NODES * 1e20, TGT, TREE), ValueError,
     "h·w_nodes .* overflow float32"),
    (lambda: fastrepr.hierarchical_softmax_loss(H, NODES, TGT, _tree(torch.as_tensor(TREE.codes).long() * 2)),
     ValueError, r"tree codes must be 0 or 1, got values in \[0, 2\]"),
    (lambda: fastrepr.hierarchical_softmax_loss(H, NODES, TGT, _tree(torch.as_tensor(TREE.codes).long() - 1)),
     ValueError, "tree codes must be 0 or 1"),
    (lambda: fastrepr.hierarchical_softmax_loss(H, NODES, TGT, _tree(torch.as_tensor(TREE.codes).long() + 256)),
     ValueError, "tree codes must be 0 or 1"),  # 256 would wrap to byte 0
    (lambda: fastrepr.hierarchical_softmax_loss(H, NODES, TGT, _tree(torch.full(TREE.codes.shape, 2, dtype=torch.uint8))),
     ValueError, "tree codes must be 0 or 1 on the paths in use, got 2"),
    (lambda: fastrepr.hierarchical_softmax_loss(H, NODES, TGT, _tree(torch.as_tensor(TREE.codes).float() * 0.5)),
     TypeError, "tree codes must be an integer"),
    (lambda: fastrepr.hierarchical_softmax_loss(H, NODES, TGT, (*TREE.tensors("cpu")[:2], torch.full((5,), 10**9))),
     ValueError, "tree lengths"),
    (lambda: fastrepr.hierarchical_softmax_loss(H, NODES, torch.full((4,), -2**63), TREE), ValueError,
     "targets has indices"),
])
def test_word2vec_losses_bad_values(backend, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_rows_that_are_not_read_do_not_matter(backend):
    """NaN in a masked-out context row or in a row no index names: the same loss as without it, everywhere."""
    w_in = _with(W_IN, 2, NAN)  # CBOW[0, 1] = 2 is masked out; no other index is 2
    w_in[0] = INF  # never named
    clean = fastrepr.cbow_ns_loss(W_IN, W_OUT, CBOW, CTX, NEG, MASK, reduction="none")
    torch.testing.assert_close(fastrepr.cbow_ns_loss(w_in, W_OUT, CBOW, CTX, NEG, MASK, reduction="none"), clean)
    nodes = torch.cat([NODES, torch.full((1, 4), NAN)])  # an extra node row no path uses
    torch.testing.assert_close(fastrepr.hierarchical_softmax_loss(H, nodes, TGT, TREE),
                               fastrepr.hierarchical_softmax_loss(H, NODES, TGT, TREE))


def test_word2vec_unchecked_path_returns_nan(backend, monkeypatch):
    """Without the checks (CUDA, no FASTREPR_CHECK), a hidden Inf gives NaN on every backend, not 0."""
    monkeypatch.setattr(_checks, "data_checks", lambda t: False)
    assert torch.isnan(_inf_hidden_behind_zero_loss())
