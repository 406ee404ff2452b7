"""The downstream protocol of Locatello et al. (ICML 2019), as disentanglement_lib's ``downstream_task``.

For each training size n in (10, 100, 1000, 10000), draw n labelled codes, then 5000 test codes, from one
``np.random.RandomState(seed)`` (disentanglement_lib's ``generate_batch_factor_code`` twice per size, batches
of 16), and fit one classifier per ground-truth factor on the codes:

  "lr"   multinomial logistic regression (``fastrepr.evaluation.probes.fit_linear_probe``: scikit-learn's
         ``LogisticRegression(C=lr_C)`` objective, L2-regularized, L-BFGS run to a tighter tolerance). The study
         used ``LogisticRegressionCV(Cs=10, cv=KFold(5))``, choosing C per factor; that is not reproduced here
         (50 fits per factor and size, minutes on a CPU): lr_C is one fixed C, default 1 (scikit-learn's).
  "gbt"  ``GradientBoostingClassifier()`` (``fastrepr.evaluation.boosting.fit_predict``, native): log loss, 100
         depth-3 trees per class, learning rate 0.1. Its tree seeds come from the same RandomState after all the
         sampling (as DCI here); disentanglement_lib leaves them to numpy's global state, so with the same seed
         the samples are disentanglement_lib's and the trees are one valid draw.
Scores (disentanglement_lib's keys, prefixed): "<p><n>:mean_test_accuracy", ":min_test_accuracy",
":mean_train_accuracy", ":test_accuracy_factor_<i>", and per predictor "<p>_efficiency" = mean test accuracy at
100 / at 10000 (the study's statistical efficiency; NaN when either size is not run). A factor that takes a
single value in a small training sample (rare: 10 draws of 3 shapes) is kept and scores the accuracy of
predicting that value, where scikit-learn (and so disentanglement_lib) would raise.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from .. import _checks
from . import boosting
from ._sampling import factor_codes
from .disentanglement import MAX_OBSERVATIONS, _finite, _setup, _small_blas
from .probes import fit_linear_probe

SIZES = (10, 100, 1000, 10000)
NUM_TEST = 5000
BATCH_SIZE = 16
PREDICTORS = ("lr", "gbt")
EFFICIENCY_SIZES = (100, 10000)


def _lr_fit(x: np.ndarray, y: np.ndarray, C: float, max_iter: int):
    return fit_linear_probe(torch.from_numpy(x), torch.from_numpy(y), C=C, max_iter=max_iter)


def logistic_regression(x_train, y_train, x_test, y_test, *, C: float = 1.0,
                        max_iter: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """Per factor column: (train accuracies [F], test accuracies [F]) of multinomial logistic regression
    (``LogisticRegression(C=C)``'s minimizer) on codes x [N, D] (float) for labels y [N, F] (integers)."""
    x, xt = np.asarray(x_train, np.float64), np.asarray(x_test, np.float64)
    y, yt = np.asarray(y_train), np.asarray(y_test)
    C = _checks.float_arg(C, "C", positive=True)
    train, test = [], []
    for j in range(y.shape[1]):
        probe = _lr_fit(x, y[:, j], C, max_iter)
        train.append(probe.accuracy(torch.from_numpy(x), torch.from_numpy(y[:, j])))
        test.append(probe.accuracy(torch.from_numpy(xt), torch.from_numpy(yt[:, j])))
    return np.array(train), np.array(test)


def gradient_boosting(x_train, y_train, x_test, y_test, *, random_state=None,
                      threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per factor column: (train accuracies [F], test accuracies [F]) of scikit-learn-equivalent default
    ``GradientBoostingClassifier``s (native, all factors in one call; seeds drawn factor after factor)."""
    y, yt = np.asarray(y_train), np.asarray(y_test)
    result = boosting.fit_predict(x_train, y, x_test, random_state=random_state, threads=threads)
    return np.mean(result.train_pred == y, axis=0), np.mean(result.test_pred == yt, axis=0)


def downstream(dataset, representation, *, seed: int = 0, random_state=None, code_cache=None, sizes=SIZES,
               num_test: int = NUM_TEST, batch_size: int = BATCH_SIZE, predictors=PREDICTORS, lr_C: float = 1.0,
               threads: int | None = None) -> dict:
    """The study's downstream scores of a representation (module docstring): a flat dict of floats.

    dataset: a GroundTruthData-like data set (``fastrepr.data.DSprites()``); representation: a batched function
    of observations (``VAE.representation``); code_cache: a ``_sampling.CodeCache`` for deterministic
    representations (each distinct image encoded once, shared with the metrics). Memory: the codes of
    sum(sizes) + len(sizes) · num_test observations, O(N·D), and the classifiers' (boosting: O(threads·N·D)).
    """
    sizes = [_checks.int_arg(n, "sizes", 1) for n in sizes]
    if not sizes:
        raise ValueError("sizes must name at least one training size")
    num_test = _checks.int_arg(num_test, "num_test", 1)
    batch_size = _checks.int_arg(batch_size, "batch_size", 1)
    predictors = list(predictors)
    bad = [p for p in predictors if p not in PREDICTORS]
    if bad or not predictors:
        raise ValueError(f"predictors must be a non-empty subset of {PREDICTORS}, got {predictors!r}")
    lr_C = _checks.float_arg(lr_C, "lr_C", positive=True)
    total = sum(sizes) + len(sizes) * num_test
    if total > MAX_OBSERVATIONS:
        raise ValueError(f"downstream: sizes {sizes} and num_test={num_test} would draw {total} observations, above "
                         f"the limit of {MAX_OBSERVATIONS}")
    sampler = _setup(dataset, representation, seed, random_state, code_cache)
    draws = []
    for n in sizes:  # disentanglement_lib's order: train n, test num_test, next size
        x, y = factor_codes(sampler, n, batch_size)
        xt, yt = factor_codes(sampler, num_test, batch_size)
        draws.append((n, x, y, xt, yt))
    scores = {}
    if not _finite(*[t for d in draws for t in (d[1], d[3])]):
        warnings.warn("downstream: the representation returned NaN or Inf codes; every score is NaN",
                      RuntimeWarning, stacklevel=2)
        return {f"{p}{n}:mean_test_accuracy": float("nan") for p in predictors for n in sizes} | {
            f"{p}_efficiency": float("nan") for p in predictors}
    for n, x, y, xt, yt in draws:
        xs, xts = x.cpu().double().numpy(), xt.cpu().double().numpy()
        for p in predictors:
            with warnings.catch_warnings(), _small_blas():
                warnings.simplefilter("ignore")
                if p == "lr":
                    train, test = logistic_regression(xs, y, xts, yt, C=lr_C)
                else:
                    train, test = gradient_boosting(x.cpu().numpy(), y, xt.cpu().numpy(), yt,
                                                    random_state=sampler.rs, threads=threads)
            key = f"{p}{n}"
            scores[f"{key}:mean_train_accuracy"] = float(np.mean(train))
            scores[f"{key}:mean_test_accuracy"] = float(np.mean(test))
            scores[f"{key}:min_test_accuracy"] = float(np.min(test))
            for i, a in enumerate(test):
                scores[f"{key}:test_accuracy_factor_{i}"] = float(a)
    small, large = EFFICIENCY_SIZES
    for p in predictors:
        a, b = scores.get(f"{p}{small}:mean_test_accuracy"), scores.get(f"{p}{large}:mean_test_accuracy")
        scores[f"{p}_efficiency"] = float(a / b) if a is not None and b else float("nan")
    return scores
