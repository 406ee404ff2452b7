"""effective_rank / rankme, CKA (linear, RBF, debiased, minibatch accumulator), Hoyer sparsity and active units
against numpy float64 oracles (fastrepr.reference), awkward shapes (N <= D) and bad input."""
import numpy as np
import pytest
import torch

from fastrepr import reference
from fastrepr.evaluation import geometry


@pytest.mark.parametrize("shape", [(50, 8), (5, 40), (1, 7), (13, 13)])  # N > D, N < D (the floor bug), one row
def test_effective_rank_and_rankme_match_numpy(shape):
    z = torch.randn(shape)
    assert geometry.effective_rank(z) == pytest.approx(reference.effective_rank(z.numpy()), rel=1e-10)
    assert geometry.rankme(z) == pytest.approx(reference.effective_rank(z.numpy(), 1e-7), rel=1e-10)


def test_effective_rank_of_known_spectra():
    """k orthonormal directions with equal weight: effective rank exactly k, whatever N and D."""
    q, _ = torch.linalg.qr(torch.randn(30, 30, dtype=torch.float64))
    z = q[:, :4] @ torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))[0].T * 3.0   # rank 4, equal singular values
    assert geometry.effective_rank(z) == pytest.approx(4.0, rel=1e-9)
    assert geometry.effective_rank(torch.ones(6, 9)) == pytest.approx(1.0)
    # rankme's epsilon adds mass to the zero singular values: min(N, D) = 6 terms, exactly as the paper's formula
    assert geometry.rankme(torch.ones(6, 9)) == pytest.approx(reference.effective_rank(np.ones((6, 9)), 1e-7))


@pytest.mark.parametrize("debiased", [False, True])
@pytest.mark.parametrize("kernel", ["linear", "rbf"])
@pytest.mark.parametrize("n, d1, d2", [(40, 7, 12), (9, 30, 3)])
def test_cka_matches_gram_oracle(kernel, debiased, n, d1, d2):
    x = torch.randn(n, d1)
    y = x[:, :min(d1, d2)].repeat(1, 2)[:, :d2] + 0.5 * torch.randn(n, d2)
    got = geometry.cka(x, y, kernel, debiased)
    want = reference.cka_gram(x.numpy(), y.numpy(), kernel, debiased)
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_cka_float32_within_1e5_and_invariances():
    x, y = torch.randn(200, 16), torch.randn(200, 8)
    y = torch.cat([x[:, :4], y[:, 4:]], 1)
    want = reference.cka_gram(x.double().numpy(), y.double().numpy())
    assert geometry.cka(x, y) == pytest.approx(want, rel=1e-5)
    q, _ = torch.linalg.qr(torch.randn(16, 16))
    assert geometry.cka(x @ q * 7.0 + 3.0, y) == pytest.approx(want, rel=1e-4)   # rotation, scale, shift
    assert geometry.cka(x, x) == pytest.approx(1.0)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_accumulator_equals_full(debiased):
    x = torch.randn(103, 9, dtype=torch.float64) + 5.0    # off-centre data: the shift keeps the moments exact
    y = x[:, :5] ** 2 + torch.randn(103, 5, dtype=torch.float64)
    acc = geometry.CKAAccumulator(debiased)
    for r0 in range(0, 103, 17):
        acc.update(x[r0:r0 + 17], y[r0:r0 + 17])
    assert acc.value() == pytest.approx(geometry.cka(x, y, debiased=debiased), rel=1e-9)
    assert acc.value() == pytest.approx(reference.cka_gram(x.numpy(), y.numpy(), debiased=debiased), rel=1e-9)


def test_hoyer_and_active_units():
    z = torch.randn(20, 6)
    z[3] = 0  # zero rows are skipped
    assert geometry.hoyer_sparsity(z) == pytest.approx(reference.hoyer_sparsity(z.numpy()), rel=1e-10)
    one_hot = torch.eye(5)
    assert geometry.hoyer_sparsity(one_hot) == pytest.approx(1.0)
    assert geometry.hoyer_sparsity(torch.ones(3, 5)) == pytest.approx(0.0, abs=1e-12)
    z = torch.randn(100, 4)
    z[:, 1] *= 1e-3   # variance 1e-6: inactive
    z[:, 3] = 2.0     # constant: inactive
    assert geometry.active_units(z) == 0.5
    assert geometry.active_units(z, threshold=1e-8) == 0.75


@pytest.mark.parametrize("call, err, word", [
    (lambda: geometry.effective_rank(torch.zeros(3, 4)), ValueError, "all zeros"),
    (lambda: geometry.effective_rank(torch.randn(3, 4), eps=-1.0), ValueError, "eps"),
    (lambda: geometry.rankme(torch.randn(4)), ValueError, "z"),
    (lambda: geometry.rankme(torch.tensor([[float("inf"), 1.0]])), ValueError, "NaN or Inf"),
    (lambda: geometry.cka(torch.randn(5, 3), torch.randn(6, 3)), ValueError, "same number of rows"),
    (lambda: geometry.cka(torch.randn(5, 3), torch.randn(5, 3), kernel="poly"), ValueError, "kernel"),
    (lambda: geometry.cka(torch.randn(3, 3), torch.randn(3, 3), debiased=True), ValueError, "at least 4"),
    (lambda: geometry.cka(torch.ones(5, 3), torch.randn(5, 3), kernel="rbf"), ValueError, "median"),
    (lambda: geometry.cka(torch.randn(5, 3), torch.randint(0, 2, (5, 3))), TypeError, "y"),
    (lambda: geometry.CKAAccumulator().value(), ValueError, "at least 2"),
    (lambda: geometry.hoyer_sparsity(torch.zeros(3, 4)), ValueError, "zero rows"),
    (lambda: geometry.hoyer_sparsity(torch.randn(3, 1)), ValueError, "2 columns"),
    (lambda: geometry.active_units(torch.randn(1, 4)), ValueError, "at least 2 rows"),
])
def test_bad_input(call, err, word):
    with pytest.raises(err, match=word):
        call()


def test_accumulator_rejects_width_change():
    acc = geometry.CKAAccumulator()
    acc.update(torch.randn(4, 3), torch.randn(4, 2))
    with pytest.raises(ValueError, match="widths"):
        acc.update(torch.randn(4, 5), torch.randn(4, 2))
