"""Retrieval recall@K / mAP: identical to the dense argsort reference (ties, K > 2048, exclusions)."""
import pytest
import torch

from fastrepr import reference
from fastrepr.evaluation import retrieval


def _dense(q, k, mask, excl_mask, ks, metric="cosine"):
    ranks = reference.retrieval_ranks(q, k, mask, excl_mask, metric)
    ranks = [r for r in ranks if r is not None]
    recall = {K: sum(int(r[0] < K) for r in ranks) / len(ranks) for K in ks}
    ap = sum(float((torch.arange(1, r.numel() + 1, dtype=torch.float64) / (r + 1.0)).mean()) for r in ranks) / len(ranks)
    return recall, ap


@pytest.mark.parametrize("form", ["index", "sets", "mask"])
def test_matches_dense_with_ties_and_exclusions(form):
    g = torch.Generator().manual_seed(0)
    # integer-valued embeddings: many exact score ties
    q = torch.randint(-1, 2, (37, 3), generator=g).double()
    k = torch.randint(-1, 2, (53, 3), generator=g).double()
    q[0] = 0  # a zero query: every score ties at 0
    pos_index = torch.randint(0, 53, (37,), generator=g)
    mask = torch.zeros(37, 53, dtype=torch.bool)
    mask[torch.arange(37), pos_index] = True
    if form != "index":
        mask |= torch.rand(37, 53, generator=g) < 0.2
    excl = [{int(pos_index[i])} if i % 5 == 0 else {(i * 7) % 53} for i in range(37)]
    excl_mask = torch.zeros(37, 53, dtype=torch.bool)
    for i, e in enumerate(excl):
        excl_mask[i, list(e)] = True
    positives = {"index": pos_index, "sets": [set(torch.nonzero(r).reshape(-1).tolist()) for r in mask],
                 "mask": mask}[form]
    ks = (1, 2, 5, 60)
    for metric in ("cosine", "dot"):
        want_r, want_ap = _dense(q, k, mask & ~excl_mask, excl_mask, ks, metric)
        got = retrieval.retrieval_scores(q, k, positives, ks, exclude=excl, metric=metric, chunk_elements=200)
        assert got.recall == want_r
        assert got.mean_average_precision == pytest.approx(want_ap, rel=1e-12)


def test_k_above_2048_and_chunking():
    g = torch.Generator().manual_seed(1)
    q = torch.randn(6, 4, generator=g)
    k = torch.randn(5000, 4, generator=g)
    pos = torch.randint(0, 5000, (6,), generator=g)
    mask = torch.zeros(6, 5000, dtype=torch.bool)
    mask[torch.arange(6), pos] = True
    ks = (1, 10, 2049, 3000, 4999, 6000)
    want_r, want_ap = _dense(q, k, mask, None, ks)
    got = retrieval.retrieval_scores(q, k, pos, ks, chunk_elements=5000)
    assert got.recall == want_r and got.recall[6000] == 1.0
    assert got.mean_average_precision == pytest.approx(want_ap, rel=1e-12)


def test_self_retrieval_excluding_query():
    z = torch.randn(20, 5)
    pairs = torch.arange(20) ^ 1  # rows 2i and 2i+1 are each other's positive
    z[1::2] = z[0::2] + 0.01 * torch.randn(10, 5)
    r = retrieval.recall_at_k(z, z, pairs, ks=(1,), exclude=torch.arange(20))
    assert r[1] == 1.0


@pytest.mark.parametrize("kw, err, word", [
    (dict(positives=torch.tensor([0, 9])), ValueError, "positives"),
    (dict(positives=torch.tensor([0])), ValueError, "positives"),
    (dict(positives=torch.tensor([0, 1]), ks=(0,)), ValueError, "ks"),
    (dict(positives=torch.tensor([0, 1]), metric="l2"), ValueError, "metric"),
    (dict(positives=[{0}, {1, 7}]), ValueError, "positives"),
    (dict(positives=torch.tensor([0, 1]), exclude=torch.tensor([0, 1])), ValueError, "no query"),
])
def test_bad_input(kw, err, word):
    with pytest.raises(err, match=word):
        retrieval.retrieval_scores(torch.randn(2, 3), torch.randn(4, 3), **kw)
