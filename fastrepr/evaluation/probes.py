"""Probes of frozen representations: kNN classification through ``EmbeddingIndex``, an L2-regularized
multinomial logistic-regression linear probe in torch, the label-efficiency protocol of Locatello et al.
(2019), and a 2-D projection plot coloured by label.

Features are [N, D] torch or numpy arrays (any float dtype); labels are [N] integers (any values: they are
mapped to the sorted distinct training labels, as scikit-learn's ``classes_``).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import _backend, _checks
from ..search import EmbeddingIndex, deprecated_impl


def _features(x, name: str, device=None) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(x)) if not isinstance(x, torch.Tensor) else x
    _checks.floating(t, name)
    _checks.ndim(t, 2, name, "[N, D]")
    _checks.nonempty(t, name, "[N, D]")
    if not _checks.all_finite(t):
        raise ValueError(f"{name} contains NaN or Inf")
    return t.detach().to(device or t.device)


def _labels(y, n: int, name: str, device) -> torch.Tensor:
    t = torch.from_numpy(np.asarray(y)) if not isinstance(y, torch.Tensor) else y
    _checks.integer(t, name)
    if t.shape != (n,):
        raise ValueError(f"{name} must have shape [{n}] (one label per row), got {tuple(t.shape)}")
    return t.detach().to(device, torch.int64)


# -------------------------------------------------------------------------------------------------------
# k nearest neighbours

def knn_predict(train_x, train_y, test_x, k: int = 20, metric: str = "cosine", weights: str = "uniform",
                temperature: float = 0.07, backend: str = "auto") -> torch.Tensor:
    """Labels [M] of test_x [M, D] by a vote of their k nearest training rows (``EmbeddingIndex`` search,
    exact: on a CPU the neighbours are the float64 ranking, equal scores keeping the lower training row).

    weights: "uniform" (one vote each), "distance" (scikit-learn's 1/distance, distance = 1 - cosine for
    metric "cosine" and Euclidean for "l2"; a query at distance 0 from some rows takes only their votes), or
    "similarity" (exp(similarity / temperature), the weighted kNN of Wu et al. 2018 / DINO; metric "cosine"
    or "ip"; computed as exp((s - s_max) / temperature) per query, so a small temperature cannot overflow).
    Equal vote totals go to the smallest label, as in scikit-learn. Features must be finite (ValueError
    naming the argument). backend: "auto" or "faiss" (``EmbeddingIndex``); "triton" | "native" | "torch" are
    deprecated (DeprecationWarning; set FASTREPR_BACKEND instead).
    Memory: the index plus O(M·k) for the neighbours and O(M·C) for the votes.
    """
    if weights not in ("uniform", "distance", "similarity"):
        raise ValueError(f"weights must be 'uniform', 'distance' or 'similarity', got {weights!r}")
    if weights == "distance" and metric == "ip":
        raise ValueError("weights='distance' needs metric 'cosine' or 'l2' (an inner product is not a distance)")
    if weights == "similarity":
        if metric == "l2":
            raise ValueError("weights='similarity' needs metric 'cosine' or 'ip' (l2 scores are distances)")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or \
                not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(f"temperature must be a finite number > 0, got {temperature!r}")
    xtr = _features(train_x, "train_x")
    ytr = _labels(train_y, xtr.shape[0], "train_y", xtr.device)
    xte = _features(test_x, "test_x", xtr.device)
    if xte.shape[1] != xtr.shape[1]:
        raise ValueError(f"test_x must have {xtr.shape[1]} columns (as train_x), got {xte.shape[1]}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= xtr.shape[0]:
        raise ValueError(f"k must be an int in [1, {xtr.shape[0]}] (the training rows), got {k!r}")
    classes, ytr = torch.unique(ytr, return_inverse=True)
    impl = deprecated_impl(backend, "knn_predict")
    with _backend.forcing(impl):
        scores, ids = EmbeddingIndex(xtr, metric=metric, backend="auto" if impl else backend).search(xte, k)
    scores = scores.double()
    if weights == "uniform":
        w = torch.ones_like(scores)
    elif weights == "similarity":  # the votes of a query compare among themselves: shift by its best score
        w = torch.exp((scores - scores.max(1, keepdim=True).values) / float(temperature))
    else:
        dist = 1.0 - scores if metric == "cosine" else scores.clamp_min(0).sqrt()
        dist = dist.clamp_min(0)
        zero = dist == 0
        w = torch.where(zero.any(1, keepdim=True), zero.double(), 1.0 / dist.clamp_min(1e-300))
    votes = torch.zeros((xte.shape[0], len(classes)), dtype=torch.float64, device=xtr.device)
    votes.scatter_add_(1, ytr[ids], w)  # one vectorized vote: [M, k] weights into [M, C] totals
    return classes[votes.argmax(1)]  # first maximum: the smallest label


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 20, metric: str = "cosine",
                 weights: str = "uniform", temperature: float = 0.07, backend: str = "auto") -> float:
    """Fraction of test rows whose kNN vote (``knn_predict``) equals test_y."""
    pred = knn_predict(train_x, train_y, test_x, k, metric, weights, temperature, backend)
    return float((pred == _labels(test_y, pred.shape[0], "test_y", pred.device)).double().mean())


# -------------------------------------------------------------------------------------------------------
# linear probe

@dataclass
class LinearProbe:
    """A fitted multinomial logistic regression: logits = x @ weight.T + bias over ``classes``."""

    weight: torch.Tensor  # [C, D]
    bias: torch.Tensor  # [C]
    classes: torch.Tensor  # [C] original labels
    iterations: int = 0

    def predict(self, x) -> torch.Tensor:
        x = _features(x, "x", self.weight.device).to(self.weight.dtype)
        if x.shape[1] != self.weight.shape[1]:
            raise ValueError(f"x must have {self.weight.shape[1]} columns (the probe's features), got {x.shape[1]}")
        if len(self.classes) == 1:
            return self.classes.expand(x.shape[0])
        return self.classes[(x @ self.weight.T + self.bias).argmax(1)]

    def accuracy(self, x, y) -> float:
        pred = self.predict(x)
        return float((pred == _labels(y, pred.shape[0], "y", pred.device)).double().mean())


def fit_linear_probe(x, y, C: float = 1.0, max_iter: int = 500, tol: float = 1e-6, device=None,
                     dtype: torch.dtype | None = None) -> LinearProbe:
    """L2-regularized multinomial logistic regression, full-batch L-BFGS (strong Wolfe line search).

    Minimizes scikit-learn's objective for ``LogisticRegression(C=C)``: C * sum_i CE(x_i W^T + b, y_i)
    + ||W||^2 / 2 (the bias is not penalized), here divided by C*N for conditioning (same minimizer).
    Runs on ``device`` (default: x's), in float64 on CPU and float32 on GPU unless ``dtype`` says otherwise.
    Stops when the gradient's largest entry falls below ``tol`` or after ``max_iter`` iterations.
    Memory: O(N·D) for the features plus O(N·C) logits.
    """
    if isinstance(C, bool) or not isinstance(C, (int, float)) or not C > 0:
        raise ValueError(f"C must be positive (a number), got {C!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol!r}")
    xs = _features(x, "x", device)
    dtype = dtype or (torch.float64 if xs.device.type == "cpu" else torch.float32)
    xs = xs.to(dtype)
    ys = _labels(y, xs.shape[0], "y", xs.device)
    classes, target = torch.unique(ys, return_inverse=True)
    W = torch.zeros((len(classes), xs.shape[1]), dtype=dtype, device=xs.device, requires_grad=True)
    b = torch.zeros(len(classes), dtype=dtype, device=xs.device, requires_grad=True)
    if len(classes) == 1:
        return LinearProbe(W.detach(), b.detach(), classes)
    n = xs.shape[0]
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, tolerance_grad=tol, tolerance_change=0,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xs @ W.T + b, target) + W.square().sum() / (2 * C * n)
        loss.backward()
        return loss

    opt.step(closure)
    steps = opt.state[opt._params[0]].get("n_iter", 0)
    return LinearProbe(W.detach(), b.detach(), classes, steps)


def linear_probe(train_x, train_y, test_x, test_y, C: float = 1.0, max_iter: int = 500, device=None) -> float:
    """Test accuracy of ``fit_linear_probe`` trained on (train_x, train_y)."""
    return fit_linear_probe(train_x, train_y, C, max_iter, device=device).accuracy(
        _features(test_x, "test_x", device), test_y)


# -------------------------------------------------------------------------------------------------------
# label efficiency (Locatello et al. 2019)

@dataclass
class LabelEfficiency:
    accuracy: dict  # labelled samples -> test accuracy
    used: dict  # labelled samples asked -> used (fewer when the training set is smaller)
    efficiency: float  # accuracy[small] / accuracy[large]
    probe: str = "linear"
    details: dict = field(default_factory=dict)


def label_efficiency(train_x, train_y, test_x, test_y, sizes=(10, 100, 1000, 10000), probe: str = "linear",
                     efficiency_sizes=(100, 10000), seed: int = 0, **probe_kwargs) -> LabelEfficiency:
    """Accuracy of a probe trained on n labelled samples for each n in ``sizes``, and the statistical
    efficiency of Locatello et al. 2019 ("Challenging common assumptions in the unsupervised learning of
    disentangled representations", ICML): accuracy(100) / accuracy(10000).

    The n samples are the first n of one seeded permutation of the training set (nested subsets); n larger
    than the training set uses all of it (``used`` records that). probe: "linear" (``fit_linear_probe``,
    kwargs C, max_iter) or "knn" (``knn_predict``, kwargs k, metric, weights; k is capped at n).
    """
    if probe not in ("linear", "knn"):
        raise ValueError(f"probe must be 'linear' or 'knn', got {probe!r}")
    small, large = efficiency_sizes
    sizes = sorted(set(sizes) | {small, large})
    xtr = _features(train_x, "train_x")
    ytr = _labels(train_y, xtr.shape[0], "train_y", xtr.device)
    xte = _features(test_x, "test_x", xtr.device)
    yte = _labels(test_y, xte.shape[0], "test_y", xtr.device)
    order = torch.randperm(xtr.shape[0], generator=torch.Generator().manual_seed(seed)).to(xtr.device)
    accuracy, used = {}, {}
    for n in sizes:
        m = min(int(n), xtr.shape[0])
        pick = order[:m]
        if probe == "linear":
            acc = fit_linear_probe(xtr[pick], ytr[pick], **probe_kwargs).accuracy(xte, yte)
        else:
            kw = dict(probe_kwargs)
            kw["k"] = min(kw.get("k", 20), m)
            pred = knn_predict(xtr[pick], ytr[pick], xte, **kw)
            acc = float((pred == yte).double().mean())
        accuracy[n], used[n] = acc, m
    eff = accuracy[small] / accuracy[large] if accuracy[large] > 0 else float("nan")
    return LabelEfficiency(accuracy, used, eff, probe)


# -------------------------------------------------------------------------------------------------------
# 2-D projection plot

def projection_plot(x, labels, path, method: str = "pca", max_points: int = 5000, seed: int = 0,
                    title: str | None = None) -> Path:
    """Scatter of a 2-D projection of x [N, D] coloured by label, written as PNG (matplotlib, Agg).

    method: "pca" (top two principal components, torch SVD) or "tsne" (scikit-learn's TSNE, PCA
    initialisation). At most ``max_points`` rows, a seeded random subset, are drawn. Returns the path.
    """
    if method not in ("pca", "tsne"):
        raise ValueError(f"method must be 'pca' or 'tsne', got {method!r}")
    xs = _features(x, "x", "cpu").double()
    ys = _labels(labels, xs.shape[0], "labels", "cpu")
    if xs.shape[0] > max_points:
        keep = torch.randperm(xs.shape[0], generator=torch.Generator().manual_seed(seed))[:max_points]
        xs, ys = xs[keep], ys[keep]
    if method == "pca":
        centered = xs - xs.mean(0)
        _, _, vh = torch.linalg.svd(centered, full_matrices=False)
        xy = (centered @ vh[:2].T).numpy()
    else:
        try:
            from sklearn.manifold import TSNE
        except ImportError:
            raise RuntimeError("method='tsne' needs scikit-learn (pip install scikit-learn)") from None
        perplexity = min(30.0, max(2.0, (xs.shape[0] - 1) / 3))
        tsne = TSNE(2, init="pca", random_state=seed, perplexity=perplexity)
        # scikit-learn's OpenMP threads compete with torch's (still spinning after its last parallel op):
        # on a 2-core machine, half the cores made t-SNE 3x faster than all of them
        from threadpoolctl import threadpool_limits

        with threadpool_limits(max(1, (os.cpu_count() or 2) // 2), user_api="openmp"):
            xy = tsne.fit_transform(xs.numpy())
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    classes = torch.unique(ys).tolist()
    cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20")
    fig, ax = plt.subplots(figsize=(6, 5))
    for n, c in enumerate(classes):
        pts = xy[(ys == c).numpy()]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, color=cmap(n % cmap.N), label=str(c) if len(classes) <= 20 else None)
    if len(classes) <= 20:
        ax.legend(markerscale=2, fontsize=7, loc="best", title="label")
    ax.set_title(title or f"{method.upper()} of {xs.shape[0]} embeddings ({xs.shape[1]}-D)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from .._io import atomic_write

    with atomic_write(path) as f:  # a failed save leaves an existing plot intact
        fig.savefig(f, format=path.suffix[1:] or "png", dpi=110)
    plt.close(fig)
    return path
