"""Bad input for the disentanglement side: histogram_mutual_info on every backend (sizes that allocate, NaN/Inf,
ranges numpy cannot bin), gradient boosting, the metrics' size arguments (checked before any sampling), and
dSprites image indices. Each raises ValueError/TypeError naming the argument; none allocates first."""
import numpy as np
import pytest
import torch

import fastrepr
from fastrepr.data import DSprites
from fastrepr.evaluation import boosting, disentanglement

X = torch.randn(50, 3)
LABELS = torch.randint(0, 4, (50, 2))


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fastrepr.histogram_mutual_info(X, num_bins=10**6), ValueError, r"num_bins must be an int in \[1, 1024\]"),
    (lambda: fastrepr.histogram_mutual_info(X, LABELS, num_bins=1025), ValueError, "num_bins"),
    (lambda: fastrepr.histogram_mutual_info(X, num_bins=2.5), ValueError, "num_bins"),
    (lambda: fastrepr.histogram_mutual_info(X, num_bins=True), ValueError, "num_bins"),
    (lambda: fastrepr.histogram_mutual_info(X, num_bins=-(2**63)), ValueError, "num_bins"),
    (lambda: fastrepr.histogram_mutual_info(torch.tensor([[1.0, 0.0], [float("inf"), 1.0]])), ValueError,
     r"codes contains NaN or Inf \(first at index \(1, 0\)\)"),
    (lambda: fastrepr.histogram_mutual_info(torch.tensor([[-3e38], [3e38], [0.0]])), ValueError,
     "codes column 0: its range .* overflows float32"),
    (lambda: fastrepr.histogram_mutual_info(torch.tensor([[1.0], [1.0000001]]), num_bins=1024), ValueError,
     "codes column 0: its range .* is too narrow for 1024"),
    (lambda: fastrepr.histogram_mutual_info(torch.randn(20000, 1), torch.arange(20000)[:, None], 1024), ValueError,
     "count table exceeds"),
    (lambda: fastrepr.histogram_mutual_info(X, torch.full((50, 1), -2**63)), ValueError, "non-negative"),
])
def test_histogram_mutual_info_bad_input(backend, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_histogram_mutual_info_huge_label_values_are_relabelled(backend):
    """Label values up to 2**62 need no 2**62-wide table: they are relabelled densely (same MI)."""
    big = LABELS.long() * 2**60
    torch.testing.assert_close(fastrepr.histogram_mutual_info(X, big), fastrepr.histogram_mutual_info(X, LABELS))


def test_histogram_mutual_info_many_bins_agree_across_backends(backend):
    """300 bins: above the Triton tile limit (the torch implementation runs on CUDA; forced triton says why),
    same answer as the oracle."""
    from fastrepr import reference
    from fastrepr.ops.mutual_info import histogram_edges

    x = torch.randn(400, 2)
    if backend.name == "triton":
        with pytest.raises(RuntimeError, match="takes at most 255 bins on triton"):
            fastrepr.histogram_mutual_info(x, num_bins=300)
        return
    edges = histogram_edges(x, 300)
    expect = reference.histogram_mutual_info(x, edges, None, 0)
    torch.testing.assert_close(fastrepr.histogram_mutual_info(x, num_bins=300), expect, rtol=1e-12, atol=1e-12)


XB, YB = np.random.RandomState(0).randn(30, 3), np.arange(30) % 3


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(learning_rate=float("nan")), ValueError, "learning_rate must be finite and > 0"),
    (dict(learning_rate=float("inf")), ValueError, "learning_rate must be finite and > 0"),
    (dict(learning_rate=0.0), ValueError, "learning_rate"),
    (dict(n_estimators=10**9), ValueError, r"n_estimators must lie in \[0, 100000\]"),
    (dict(n_estimators=2.5), TypeError, "n_estimators must be an integer"),
    (dict(max_depth=0), ValueError, "max_depth"),
    (dict(max_depth=10**6), ValueError, "max_depth"),
    (dict(min_samples_split=1), ValueError, "min_samples_split"),
    (dict(min_samples_leaf=0), ValueError, "min_samples_leaf"),
    (dict(threads=-1), ValueError, "threads"),
    (dict(threads=10**6), ValueError, "threads"),
])
def test_boosting_bad_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        boosting.fit_predict(XB, YB, **kwargs)


@pytest.mark.parametrize("x, match", [
    (np.where(np.arange(90).reshape(30, 3) == 7, np.nan, XB), "x contains NaN or Inf"),
    (XB * 1e300, "x contains NaN or Inf"),  # beyond float32: inf after the cast scikit-learn also does
])
def test_boosting_non_finite_features(x, match):
    with pytest.raises(ValueError, match=match):
        boosting.fit_predict(x, YB)


def test_boosting_huge_leaf_sizes_mean_no_split():
    """min_samples_leaf far beyond N is valid (no node can split): zero importances, prior predictions."""
    out = boosting.fit_predict(XB, YB, n_estimators=3, min_samples_leaf=2**62, min_samples_split=2**62)
    assert np.all(out.importances == 0)


class _Never:
    """A representation that fails the test if it is ever called: the size checks must come first."""

    def __call__(self, observations):
        raise AssertionError("the representation was called before the arguments were checked")


@pytest.mark.parametrize("metric, kwargs, exc, match", [
    ("beta_vae", dict(batch_size=0), ValueError, r"beta_vae: batch_size must lie in \[1"),
    ("beta_vae", dict(num_train=10**12), ValueError, "would draw .* observations, above the limit"),
    ("factor_vae", dict(num_variance_estimate=-1), ValueError, "num_variance_estimate"),
    ("factor_vae", dict(prune_threshold=float("nan")), ValueError, "prune_threshold must be finite"),
    ("factor_vae", dict(prune_threshold=-0.1), ValueError, "prune_threshold must be >= 0"),
    ("mig", dict(num_bins=10**6), ValueError, r"mig: num_bins must lie in \[1, 1024\]"),
    ("mig", dict(batch_size=2.0), TypeError, "batch_size must be an integer"),
    ("dci", dict(num_test=0), ValueError, "num_test"),
    ("dci", dict(num_train=2**40), ValueError, "above the limit"),
    ("sap", dict(threads=-3), ValueError, "sap: threads"),
    ("modularity_explicitness", dict(num_bins=0), ValueError, "num_bins"),
    ("unsupervised", dict(num_train=True), TypeError, "num_train must be an integer"),
])
def test_metric_sizes_are_checked_before_sampling(metric, kwargs, exc, match):
    with pytest.raises(exc, match=match):
        getattr(disentanglement, metric)(DSprites(), _Never(), **kwargs)


@pytest.mark.parametrize("indices, exc, match", [
    (np.array([1.7]), TypeError, "image indices must be integers"),
    (np.array([-1]), ValueError, r"image indices must lie in \[0, 737280\)"),
    (np.array([2**62]), ValueError, "image indices must lie in"),
    (np.array([-2**63]), ValueError, "image indices must lie in"),
])
def test_dsprites_indices(indices, exc, match):
    data = DSprites()
    with pytest.raises(exc, match=match):
        data.render(indices)
    with pytest.raises(exc, match=match):
        data.index_to_factors(indices)
