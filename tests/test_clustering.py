"""Clusterability: the fused silhouette against the dense float64 oracle and scikit-learn; k-means NMI/ARI."""
import numpy as np
import pytest
import torch

from fastrepr import reference
from fastrepr.evaluation import clustering
from fastrepr.ops import silhouette as op

from utils import impl_params, use_impl

sklearn_metrics = pytest.importorskip("sklearn.metrics")
IMPLS = pytest.mark.parametrize("impl", impl_params(op.IMPLS))


@IMPLS
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_silhouette_matches_oracle_and_sklearn(impl, metric, dtype, monkeypatch):
    use_impl(impl, monkeypatch)
    monkeypatch.setattr(op, "BLOCK_ROWS", 16)  # several row/key tiles, odd last tile (N = 53)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(53, 7, generator=g, dtype=dtype)
    labels = torch.randint(0, 4, (53,), generator=g)
    labels[5] = 9  # a singleton cluster (scores 0)
    if impl == "native" and dtype == torch.float64:  # float64 tiles are the torch implementation's
        with pytest.raises(RuntimeError, match="float64"):
            clustering.silhouette_samples(z, labels, metric)
        return
    ours = clustering.silhouette_samples(z, labels, metric)
    dense = reference.silhouette_samples(z, labels, metric)
    # float64 input: float64 tiles; float32: float32 tiles on shifted rows (ops/silhouette.py's precision notes)
    tol = 1e-9 if dtype == torch.float64 else 1e-6
    torch.testing.assert_close(ours, dense, rtol=tol, atol=tol)
    assert ours[5] == 0
    sk = sklearn_metrics.silhouette_samples(z.numpy(), labels.numpy(), metric=metric)
    assert np.abs(ours.numpy() - sk).max() < 1e-6
    assert abs(clustering.silhouette(z, labels, metric)
               - sklearn_metrics.silhouette_score(z.numpy(), labels.numpy(), metric=metric)) < 1e-6


@IMPLS
@pytest.mark.parametrize("case", ["offset", "tight", "mid_labels", "many_labels", "duplicates", "cosine_offset"])
def test_silhouette_float32_tiles_hold_on_hard_data(impl, case, monkeypatch):
    # float32 tiles against scikit-learn (float64 distances) where the expansion ||x||² - 2x·y + ||y||² cancels:
    # data far from the origin, clusters much tighter than their spread, and blocks of many labels (the
    # index_add path); the silhouette must still agree to 1e-6
    use_impl(impl, monkeypatch)
    monkeypatch.setattr(op, "BLOCK_ROWS", 64)
    g = torch.Generator().manual_seed(1)
    n, d, c = 700, 24, {"many_labels": 300, "mid_labels": 60}.get(case, 6)  # 1-2, ~6 and ~30 labels a block
    labels = torch.randint(0, c, (n,), generator=g)
    centres = torch.randn(c, d, generator=g, dtype=torch.float64) * (1.0 if case != "tight" else 50.0)
    z = centres[labels] + torch.randn(n, d, generator=g, dtype=torch.float64) * (0.02 if case == "tight" else 1)
    if case in ("offset", "cosine_offset"):
        z = z + 1e3
    if case == "duplicates":  # half the rows repeat another row of their cluster: d = 0 must stay 0
        z[1::2] = z[0::2][: n // 2]
        labels[1::2] = labels[0::2][: n // 2]
    metric = "cosine" if case == "cosine_offset" else "euclidean"
    z32 = z.float()
    ours = clustering.silhouette_samples(z32, labels, metric)
    # scikit-learn's float64 path on the same values (its float32 cosine path is float32 throughout: off by
    # ~0.04 on the offset data; its float32 euclidean path upcasts, and agrees with this to ~1e-7)
    same = z32.double().numpy()
    sk = sklearn_metrics.silhouette_samples(same, labels.numpy(), metric=metric)
    assert np.abs(ours.numpy() - sk).max() < 1e-6
    assert abs(float(ours.mean()) - sklearn_metrics.silhouette_score(same, labels.numpy(), metric=metric)) < 1e-6


@pytest.mark.parametrize("path", ["blas", "loops"])
def test_silhouette_native_pair_loop_blas_and_loops(path, monkeypatch):
    # the C++ pair loop through the registered sgemm and through its built-in loops: both equal the float64
    # oracle, across several blocks, a block of many labels (one unlabelled group) and a singleton
    from fastrepr.ops import _search_plan

    use_impl("native", monkeypatch)
    if path == "loops":
        monkeypatch.setattr(_search_plan, "sgemm_handle", lambda: 0)
    elif _search_plan.sgemm_handle() == 0:
        pytest.skip("no BLAS sgemm loaded in this process")
    monkeypatch.setattr(op, "BLOCK_ROWS", 32)
    g = torch.Generator().manual_seed(3)
    labels = torch.cat([torch.randint(0, 3, (70,), generator=g), torch.arange(3, 43)])  # then 40 labels a block
    labels[7] = 50  # a singleton
    z = torch.randn(labels.shape[0], 9, generator=g) + labels[:, None].float() * 0.3
    ours = clustering.silhouette_samples(z, labels)
    dense = reference.silhouette_samples(z.double(), labels)
    torch.testing.assert_close(ours, dense, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("path", ["blas", "loops"])
def test_silhouette_native_sums_any_valid_groups(path):
    # the C++ pair loop takes any groups that cover the rows in order inside blocks, not only the ones
    # _native_sums makes: a label segment cut into two groups, a group of many labels after a labelled one in
    # the same block, a one-row group. Every pair must be counted once: S equals the dense float64 table.
    from fastrepr import _native
    from fastrepr.ops import _search_plan

    if not _native.available()[0]:
        pytest.skip("native extension not built")
    handle = 0 if path == "loops" else _search_plan.sgemm_handle()
    if path == "blas" and handle == 0:
        pytest.skip("no BLAS sgemm loaded in this process")
    g = torch.Generator().manual_seed(5)
    labels = torch.sort(torch.cat([torch.randint(0, 3, (40,), generator=g), torch.arange(3, 9)])).values
    n, block, c = labels.shape[0], 24, int(labels.max()) + 1
    z = torch.randn(n, 6, generator=g) + labels[:, None].float()
    bounds = [0] + [int(i) for i in torch.nonzero(labels[1:] != labels[:-1]).flatten() + 1] + [n]
    cuts = sorted(set(bounds) | set(range(0, n, block)) | {bounds[1] // 2, bounds[1] // 2 + 1})
    groups = [(s, e, int(labels[s])) for s, e in zip(cuts[:-1], cuts[1:])]
    groups[-2:] = [(groups[-2][0], n, -1)] if groups[-2][0] // block == (n - 1) // block else groups[-2:]
    assert any(lbl == -1 for _, _, lbl in groups) and any(e - s == 1 for s, e, _ in groups)
    sums = torch.zeros(n, c, dtype=torch.float64)
    _native.get().silhouette_sums(_native.as_buffer(z), _native.as_buffer(torch.arange(n)), _native.as_buffer(
        labels.contiguous()), _native.as_buffer(torch.tensor(groups, dtype=torch.long)), sums.numpy(),
        op.EXACT_BELOW, block, handle, 2)
    d = torch.cdist(z.double(), z.double())
    dense = torch.zeros(n, c, dtype=torch.float64).index_add_(1, labels, d)
    torch.testing.assert_close(sums, dense, rtol=1e-6, atol=1e-6)


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
