"""Clusterability and retrieval against what a user would otherwise run: scikit-learn's silhouette_score,
normalized_mutual_info_score on sklearn KMeans, and a dense recall@K (full similarity matrix + argsort)."""
from __future__ import annotations

import torch

from ..harness import Bench


def _labelled(size, device, dtype):
    n, d, c = size
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(0, c, (n,), generator=g)
    z = (torch.randn(c, d, generator=g) * 2)[labels] + torch.randn(n, d, generator=g)
    return {"z": z.to(device=device, dtype=dtype), "labels": labels, "k": c}


def _pairs(size, device, dtype):
    q, n, d = size
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(n, d, generator=g)
    pos = torch.randint(0, n, (q,), generator=g)
    return {"q": (keys[pos] + 0.5 * torch.randn(q, d, generator=g)).to(device=device, dtype=dtype),
            "keys": keys.to(device=device, dtype=dtype), "pos": pos.to(device)}


def _dense_recall(x, ks=(1, 5, 10)):
    qn = torch.nn.functional.normalize(x["q"].double(), dim=1)
    kn = torch.nn.functional.normalize(x["keys"].double(), dim=1)
    order = torch.argsort(-(qn @ kn.T), dim=1, stable=True)
    rank = (order == x["pos"][:, None]).int().argmax(1)
    return {k: float((rank < k).double().mean()) for k in ks}


def entries() -> list[Bench]:
    try:
        from sklearn.metrics import normalized_mutual_info_score, silhouette_score
    except ImportError:
        return []
    from fastrepr.evaluation.clustering import kmeans_nmi, silhouette
    from fastrepr.evaluation.retrieval import recall_at_k

    def sk_nmi(x):
        from sklearn.cluster import KMeans

        assign = KMeans(x["k"], n_init=1, random_state=0).fit_predict(x["z"].cpu().numpy())
        return normalized_mutual_info_score(x["labels"].numpy(), assign)

    lab = {"cpu": [(20000, 128, 10), (50000, 128, 10)], "cuda": [(20000, 128, 10)]}
    out = [
        Bench(op="silhouette", baseline_name="sklearn.metrics.silhouette_score", size_names=("N", "D", "C"),
              sizes=lab, setup=_labelled, ours=lambda x: silhouette(x["z"], x["labels"]),
              baseline=lambda x: silhouette_score(x["z"].cpu().numpy(), x["labels"].numpy()),
              test_size=(300, 8, 4)),
        Bench(op="recall_at_k", baseline_name="dense similarity + argsort", size_names=("Q", "N", "D"),
              sizes={"cpu": [(20000, 20000, 128)], "cuda": [(20000, 100000, 128)]}, setup=_pairs,
              ours=lambda x: recall_at_k(x["q"], x["keys"], x["pos"]), baseline=_dense_recall,
              test_size=(50, 300, 8)),
    ]
    try:
        import faiss  # noqa: F401
    except ImportError:
        return out
    out.append(Bench(op="kmeans_nmi", baseline_name="sklearn KMeans(n_init=1) + NMI", size_names=("N", "D", "C"),
                     sizes={"cpu": [(20000, 128, 10)], "cuda": [(20000, 128, 10)]}, setup=_labelled,
                     ours=lambda x: kmeans_nmi(x["z"], x["labels"]), baseline=sk_nmi, test_size=(300, 8, 4)))
    return out
