"""Clusterability: the fused silhouette against the dense float64 oracle and scikit-learn; k-means NMI/ARI."""
import numpy as np
import pytest
import torch

from fastrepr import reference
from fastrepr.evaluation import clustering
from fastrepr.ops import silhouette as op

sklearn_metrics = pytest.importorskip("sklearn.metrics")


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_silhouette_matches_oracle_and_sklearn(metric, dtype, monkeypatch):
    monkeypatch.setattr(op, "BLOCK_ROWS", 16)  # several row/key tiles, odd last tile (N = 53)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(53, 7, generator=g, dtype=dtype)
    labels = torch.randint(0, 4, (53,), generator=g)
    labels[5] = 9  # a singleton cluster (scores 0)
    ours = clustering.silhouette_samples(z, labels, metric)
    dense = reference.silhouette_samples(z, labels, metric)
    torch.testing.assert_close(ours, dense, rtol=1e-9, atol=1e-9)
    assert ours[5] == 0
    sk = sklearn_metrics.silhouette_samples(z.numpy(), labels.numpy(), metric=metric)
    assert np.abs(ours.numpy() - sk).max() < 1e-6
    assert abs(clustering.silhouette(z, labels, metric)
               - sklearn_metrics.silhouette_score(z.numpy(), labels.numpy(), metric=metric)) < 1e-6


def test_silhouette_tiles_are_exact(monkeypatch):
    z = torch.randn(40, 3, dtype=torch.float64)
    labels = torch.arange(40) % 3
    whole = clustering.silhouette_samples(z, labels)
    monkeypatch.setattr(op, "BLOCK_ROWS", 7)
    torch.testing.assert_close(clustering.silhouette_samples(z, labels), whole, rtol=1e-12, atol=1e-12)


def test_silhouette_string_labels_and_duplicates():
    z = np.array([[0.0, 0], [0, 0], [1, 1], [1, 1], [5, 5]])
    labels = np.array(["a", "a", "b", "b", "c"])
    assert abs(clustering.silhouette(z, labels) - sklearn_metrics.silhouette_score(z, labels)) < 1e-12


@pytest.mark.parametrize("bad, err, word", [
    (dict(z=torch.randn(5, 2), labels=torch.zeros(5)), ValueError, "classes"),
    (dict(z=torch.randn(5, 2), labels=torch.arange(5)), ValueError, "classes"),
    (dict(z=torch.randn(5, 2), labels=torch.zeros(4)), ValueError, "labels"),
    (dict(z=torch.randn(5), labels=torch.zeros(5)), ValueError, "z"),
    (dict(z=torch.full((5, 2), float("nan")), labels=torch.arange(5) % 2), ValueError, "z"),
    (dict(z=torch.ones(5, 2, dtype=torch.int64), labels=torch.arange(5) % 2), TypeError, "z"),
    (dict(z=torch.randn(5, 2), labels=torch.arange(5) % 2, metric="l1"), ValueError, "metric"),
])
def test_silhouette_bad_input(bad, err, word):
    with pytest.raises(err, match=word):
        clustering.silhouette(**bad)


def test_kmeans_nmi_ari_equal_sklearn_on_same_clustering():
    pytest.importorskip("faiss")
    g = torch.Generator().manual_seed(1)
    centers = torch.randn(4, 8, generator=g) * 4
    labels = torch.randint(0, 4, (300,), generator=g)
    z = centers[labels] + torch.randn(300, 8, generator=g)
    assign = clustering.kmeans(z, 4, seed=3)
    assert clustering.kmeans_nmi(z, labels, 4, seed=3) == sklearn_metrics.normalized_mutual_info_score(
        labels.numpy(), assign)
    assert clustering.kmeans_ari(z, labels, 4, seed=3) == sklearn_metrics.adjusted_rand_score(labels.numpy(), assign)
    assert clustering.kmeans_nmi(z, labels, seed=3) > 0.8  # well-separated blobs are recovered
    with pytest.raises(ValueError, match="k"):
        clustering.kmeans(z, 0)
