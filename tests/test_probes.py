"""Probes against scikit-learn on the same data: kNN (uniform and distance votes) and the logistic-regression
probe within 0.5 accuracy points; label efficiency; projection plots; bad input."""
import numpy as np
import pytest
import torch

from fastrepr import _backend
from fastrepr.evaluation import probes
from utils import use_impl

sklearn = pytest.importorskip("sklearn")
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier  # noqa: E402


def _blobs(n, classes=10, dim=24, seed=0, spread=0.4):
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(99).standard_normal((classes, dim)) * spread
    y = rng.integers(0, classes, n)
    x = centers[y] + rng.standard_normal((n, dim))
    return x.astype(np.float32), (y * 3 + 2)  # labels that are not 0..C-1


@pytest.fixture(scope="module")
def data():
    xtr, ytr = _blobs(3000, seed=0)
    xte, yte = _blobs(1500, seed=1)
    return xtr, ytr, xte, yte


@pytest.mark.parametrize("metric, weights", [("cosine", "uniform"), ("cosine", "distance"), ("l2", "uniform"),
                                             ("l2", "distance")])
def test_knn_matches_sklearn(data, metric, weights):
    xtr, ytr, xte, yte = data
    ours = probes.knn_accuracy(xtr, ytr, xte, yte, k=15, metric=metric, weights=weights)
    sk = KNeighborsClassifier(15, metric="cosine" if metric == "cosine" else "euclidean", weights=weights,
                              algorithm="brute").fit(xtr, ytr).score(xte, yte)
    assert 0.5 < sk < 0.98
    assert abs(ours - sk) <= 0.005, (ours, sk)


@pytest.mark.parametrize("metric, weights", [("cosine", "uniform"), ("cosine", "distance"), ("l2", "uniform"),
                                             ("l2", "distance")])
def test_knn_predictions_are_sklearns(data, metric, weights):
    """The same predictions, test row by test row, as KNeighborsClassifier on the same (float32-valued) data in
    float64, where its distances are exact to rounding like our float64 ranking: so the same accuracy."""
    xtr, ytr, xte, yte = data
    ours = probes.knn_predict(xtr, ytr, xte, k=15, metric=metric, weights=weights).numpy()
    sk = KNeighborsClassifier(15, metric="cosine" if metric == "cosine" else "euclidean", weights=weights,
                              algorithm="brute").fit(xtr.astype(np.float64), ytr).predict(xte.astype(np.float64))
    assert (ours == sk).all(), f"{(ours != sk).sum()} of {len(sk)} predictions differ"
    assert probes.knn_accuracy(xtr, ytr, xte, yte, k=15, metric=metric, weights=weights) == (sk == yte).mean()


def test_knn_similarity_votes_and_torch_inputs(data, monkeypatch):
    xtr, ytr, xte, yte = data
    with monkeypatch.context() as m:
        use_impl("torch", m)
        with _backend.recording() as ran:
            acc = probes.knn_accuracy(torch.from_numpy(xtr), torch.from_numpy(ytr), xte, yte, k=15,
                                      weights="similarity")
        assert ran == {"topk_search": "torch"}
    assert acc > 0.5
    with pytest.warns(DeprecationWarning, match="knn_predict.*FASTREPR_BACKEND=torch"):  # the old argument
        with _backend.recording() as ran:
            assert probes.knn_accuracy(torch.from_numpy(xtr), torch.from_numpy(ytr), xte, yte, k=15,
                                       weights="similarity", backend="torch") == acc
    assert ran == {"topk_search": "torch"}
    # the exact copy of a training row takes only its own vote with distance weights
    pred = probes.knn_predict(xtr, ytr, xtr[:5], k=15, weights="distance")
    assert pred.tolist() == ytr[:5].tolist()


def test_linear_probe_matches_sklearn(data):
    xtr, ytr, xte, yte = data
    for C in (0.05, 1.0):
        probe = probes.fit_linear_probe(xtr, ytr, C=C)
        sk = LogisticRegression(C=C, max_iter=5000, tol=1e-8).fit(xtr, ytr)
        ours, theirs = probe.accuracy(xte, yte), sk.score(xte, yte)
        assert 0.5 < theirs < 0.99
        assert abs(ours - theirs) <= 0.005, (C, ours, theirs)
        # same optimum: coefficients agree closely
        np.testing.assert_allclose(probe.weight.numpy(), sk.coef_, atol=2e-3 * np.abs(sk.coef_).max())
        assert sorted(probe.classes.tolist()) == sk.classes_.tolist()
    assert probes.linear_probe(xtr, ytr, xte, yte, C=1.0) == pytest.approx(theirs, abs=0.005)


def test_label_efficiency(data):
    xtr, ytr, xte, yte = data
    res = probes.label_efficiency(xtr, ytr, xte, yte, sizes=(10, 100, 1000, 10000))
    assert list(res.accuracy) == [10, 100, 1000, 10000]
    assert res.used == {10: 10, 100: 100, 1000: 1000, 10000: 3000}  # more than the training set: all of it
    assert res.accuracy[10] < res.accuracy[1000]
    assert res.efficiency == pytest.approx(res.accuracy[100] / res.accuracy[10000])
    knn = probes.label_efficiency(xtr, ytr, xte, yte, sizes=(10, 100), efficiency_sizes=(10, 100), probe="knn", k=5)
    assert 0 < knn.efficiency <= 1.5 and knn.used[10] == 10
    one = probes.fit_linear_probe(xtr[:3], np.full(3, 4))  # a single class predicts that class
    assert one.predict(xte[:4]).tolist() == [4] * 4


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_projection_plot(tmp_path, data, method):
    xtr, ytr, _, _ = data
    path = probes.projection_plot(xtr[:120], ytr[:120], tmp_path / f"{method}.png", method=method)
    assert path.exists() and path.stat().st_size > 5000
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_bad_input(data):
    xtr, ytr, xte, yte = data
    with pytest.raises(ValueError, match="weights"):
        probes.knn_accuracy(xtr, ytr, xte, yte, weights="rank")
    with pytest.raises(ValueError, match="inner product is not a distance"):
        probes.knn_accuracy(xtr, ytr, xte, yte, metric="ip", weights="distance")
    with pytest.raises(ValueError, match=r"train_y must have shape \[3000\]"):
        probes.knn_accuracy(xtr, ytr[:5], xte, yte)
    with pytest.raises(TypeError, match="integer"):
        probes.knn_accuracy(xtr, ytr.astype(np.float32), xte, yte)
    with pytest.raises(ValueError, match="k must be"):
        probes.knn_accuracy(xtr, ytr, xte, yte, k=0)
    with pytest.raises(ValueError, match="C must be positive"):
        probes.fit_linear_probe(xtr, ytr, C=0)
    with pytest.raises(ValueError, match="probe"):
        probes.label_efficiency(xtr, ytr, xte, yte, probe="svm")
    with pytest.raises(ValueError, match="method"):
        probes.projection_plot(xtr, ytr, "x.png", method="umap")
