"""A plain numpy / scikit-learn implementation of the disentanglement metrics, the way disentanglement_lib
computes them: the test oracle and the benchmark baseline of ``fastrepr.evaluation.disentanglement``.

disentanglement_lib itself (TF1-era, gin) cannot be installed here, so this module stands in for it: written
from its published algorithms and study configuration, with its structure — point-by-point sampling loops,
representation calls on batches of 64 or 16 observations, one scikit-learn estimator per factor or
(code, factor) pair, ``np.histogram`` + ``np.digitize`` discretization and ``sklearn.metrics.mutual_info_score``
per pair, scipy's entropy and sqrtm. Same random calls, so the same seed draws the same points.

Differences from disentanglement_lib, all deliberate:
  * DCI seeds its ``GradientBoostingClassifier`` with the metric's RandomState (disentanglement_lib leaves
    ``random_state=None``, i.e. numpy's global generator, so its trees break exact ties irreproducibly);
  * the scikit-learn here is current (LogisticRegression defaults to lbfgs, LinearSVC to dual="auto"), as
    for any user running disentanglement_lib's code today;
  * FactorVAE's ``num_active_dims`` counts active dimensions (disentanglement_lib: all dimensions).
"""
from __future__ import annotations

import numpy as np
import torch

from ..data.ground_truth import sample as _sample


def _numpy_representation(fn):
    def call(observations):
        out = fn(observations)
        if isinstance(out, torch.Tensor):
            out = out.detach().cpu().numpy()
        return np.asarray(out)
    return call


def generate_batch_factor_code(data, rep, num_points, random_state, batch_size):
    """(codes [D, num_points], factors [F, num_points]), sampled batch by batch."""
    representations, factors, i = [], [], 0
    while i < num_points:
        n = min(num_points - i, batch_size)
        f, obs = _sample(data, n, random_state)
        factors.append(np.asarray(f))
        representations.append(rep(obs))
        i += n
    return np.transpose(np.vstack(representations)), np.transpose(np.vstack(factors))


def histogram_discretize(target, num_bins=20):
    out = np.zeros_like(target)
    for i in range(target.shape[0]):
        out[i, :] = np.digitize(target[i, :], np.histogram(target[i, :], num_bins)[1][:-1])
    return out


def discrete_mutual_info(mus, ys):
    from sklearn.metrics import mutual_info_score

    m = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            m[i, j] = mutual_info_score(ys[j, :], mus[i, :])
    return m


def discrete_entropy(ys):
    from sklearn.metrics import mutual_info_score

    return np.array([mutual_info_score(ys[j, :], ys[j, :]) for j in range(ys.shape[0])])


def compute_beta_vae(data, rep, random_state, batch_size=64, num_train=10000, num_eval=5000):
    from sklearn.linear_model import LogisticRegression

    rep = _numpy_representation(rep)

    def training_batch(num_points):
        points, labels = None, np.zeros(num_points, dtype=np.int64)
        for i in range(num_points):
            index = random_state.randint(data.num_factors)
            f1 = data.sample_factors(batch_size, random_state)
            f2 = data.sample_factors(batch_size, random_state)
            f2[:, index] = f1[:, index]
            r1 = rep(data.sample_observations_from_factors(f1, random_state))
            r2 = rep(data.sample_observations_from_factors(f2, random_state))
            feature = np.mean(np.abs(r1 - r2), axis=0)
            if points is None:
                points = np.zeros((num_points, feature.shape[0]))
            labels[i], points[i] = index, feature
        return points, labels

    x_train, y_train = training_batch(num_train)
    model = LogisticRegression(random_state=random_state).fit(x_train, y_train)
    train_accuracy = np.mean(model.predict(x_train) == y_train)
    x_eval, y_eval = training_batch(num_eval)
    return {"train_accuracy": train_accuracy, "eval_accuracy": model.score(x_eval, y_eval)}


def compute_factor_vae(data, rep, random_state, batch_size=64, num_train=10000, num_eval=5000,
                       num_variance_estimate=10000, prune_threshold=0.05):
    rep = _numpy_representation(rep)
    observations = _sample(data, num_variance_estimate, random_state)[1]
    global_variances = np.var(rep(observations), axis=0, ddof=1)
    active = np.sqrt(global_variances) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}

    def votes_for(num_points):
        votes = np.zeros((data.num_factors, global_variances.shape[0]), dtype=np.int64)
        for _ in range(num_points):
            index = random_state.randint(data.num_factors)
            factors = data.sample_factors(batch_size, random_state)
            factors[:, index] = factors[0, index]
            codes = rep(data.sample_observations_from_factors(factors, random_state))
            local = np.var(codes, axis=0, ddof=1)
            votes[index, np.argmin(local[active] / global_variances[active])] += 1
        return votes

    train_votes = votes_for(num_train)
    classifier = np.argmax(train_votes, axis=0)
    other = np.arange(train_votes.shape[1])
    train_accuracy = np.sum(train_votes[classifier, other]) / np.sum(train_votes)
    eval_votes = votes_for(num_eval)
    eval_accuracy = np.sum(eval_votes[classifier, other]) / np.sum(eval_votes)
    return {"train_accuracy": train_accuracy, "eval_accuracy": eval_accuracy, "num_active_dims": int(active.sum())}


def compute_mig(data, rep, random_state, num_train=10000, batch_size=16, num_bins=20):
    mus, ys = generate_batch_factor_code(data, _numpy_representation(rep), num_train, random_state, batch_size)
    m = discrete_mutual_info(histogram_discretize(mus, num_bins), ys)
    entropy = discrete_entropy(ys)
    sorted_m = np.sort(m, axis=0)[::-1]
    return {"discrete_mig": np.mean(np.divide(sorted_m[0, :] - sorted_m[1, :], entropy[:]))}


def dci_scores(importance_matrix):
    from scipy.stats import entropy

    per_code = 1.0 - entropy(importance_matrix.T + 1e-11, base=importance_matrix.shape[1])
    per_factor = 1.0 - entropy(importance_matrix + 1e-11, base=importance_matrix.shape[0])
    weights = importance_matrix if importance_matrix.sum() != 0.0 else np.ones_like(importance_matrix)
    disentanglement = np.sum(per_code * weights.sum(axis=1) / weights.sum())
    completeness = np.sum(per_factor * weights.sum(axis=0) / weights.sum())
    return disentanglement, completeness


def compute_dci(data, rep, random_state, num_train=10000, num_test=5000, batch_size=16):
    from sklearn.ensemble import GradientBoostingClassifier

    rep = _numpy_representation(rep)
    x_train, y_train = generate_batch_factor_code(data, rep, num_train, random_state, batch_size)
    x_test, y_test = generate_batch_factor_code(data, rep, num_test, random_state, batch_size)
    importance = np.zeros((x_train.shape[0], y_train.shape[0]))
    train_acc, test_acc = [], []
    for i in range(y_train.shape[0]):
        model = GradientBoostingClassifier(random_state=random_state).fit(x_train.T, y_train[i, :])
        importance[:, i] = np.abs(model.feature_importances_)
        train_acc.append(np.mean(model.predict(x_train.T) == y_train[i, :]))
        test_acc.append(np.mean(model.predict(x_test.T) == y_test[i, :]))
    disentanglement, completeness = dci_scores(importance)
    return {"informativeness_train": np.mean(train_acc), "informativeness_test": np.mean(test_acc),
            "disentanglement": disentanglement, "completeness": completeness}


def compute_sap(data, rep, random_state, num_train=10000, num_test=5000, batch_size=16, continuous_factors=False):
    from sklearn.svm import LinearSVC

    rep = _numpy_representation(rep)
    mus, ys = generate_batch_factor_code(data, rep, num_train, random_state, batch_size)
    mus_test, ys_test = generate_batch_factor_code(data, rep, num_test, random_state, batch_size)
    score = np.zeros([mus.shape[0], ys.shape[0]])
    for i in range(mus.shape[0]):
        for j in range(ys.shape[0]):
            if continuous_factors:
                c = np.cov(mus[i, :], ys[j, :], ddof=1)
                score[i, j] = c[0, 1] ** 2 / (c[0, 0] * c[1, 1]) if c[0, 0] > 1e-12 else 0.0
            else:
                classifier = LinearSVC(C=0.01, class_weight="balanced").fit(mus[i, :, None], ys[j, :])
                score[i, j] = np.mean(classifier.predict(mus_test[i, :, None]) == ys_test[j, :])
    sorted_score = np.sort(score, axis=0)
    return {"SAP_score": np.mean(sorted_score[-1, :] - sorted_score[-2, :])}


def modularity(mutual_information):
    squared = np.square(mutual_information)
    top = np.max(squared, axis=1)
    score = 1.0 - (np.sum(squared, axis=1) - top) / (top * (squared.shape[1] - 1.0))
    score[top == 0.0] = 0.0
    return np.mean(score)


def compute_modularity_explicitness(data, rep, random_state, num_train=10000, num_test=5000, batch_size=16,
                                    num_bins=20):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import MultiLabelBinarizer

    rep = _numpy_representation(rep)
    mus, ys = generate_batch_factor_code(data, rep, num_train, random_state, batch_size)
    mus_test, ys_test = generate_batch_factor_code(data, rep, num_test, random_state, batch_size)
    mi = discrete_mutual_info(histogram_discretize(mus, num_bins), ys)
    mean, std = np.mean(mus, axis=1), np.std(mus, axis=1)
    x_train = ((mus - mean[:, None]) / std[:, None]).T
    x_test = ((mus_test - mean[:, None]) / std[:, None]).T
    train, test = [], []
    for i in range(ys.shape[0]):
        clf = LogisticRegression().fit(x_train, ys[i, :])
        mlb = MultiLabelBinarizer()
        train.append(roc_auc_score(mlb.fit_transform(ys[i, :, None]), clf.predict_proba(x_train)))
        test.append(roc_auc_score(mlb.fit_transform(ys_test[i, :, None]), clf.predict_proba(x_test)))
    return {"modularity_score": modularity(mi), "explicitness_score_train": np.mean(train),
            "explicitness_score_test": np.mean(test)}


def gaussian_scores(cov):
    """(Gaussian total correlation, Gaussian Wasserstein dependency) of a covariance matrix."""
    import scipy.linalg

    total_correlation = 0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1])
    sqrtm = scipy.linalg.sqrtm(cov * np.diag(cov)[:, None])
    return total_correlation, float(np.real(2 * np.trace(cov) - 2 * np.trace(sqrtm)))


def compute_unsupervised(data, rep, random_state, num_train=10000, batch_size=16, num_bins=20):
    mus, _ = generate_batch_factor_code(data, _numpy_representation(rep), num_train, random_state, batch_size)
    d = mus.shape[0]
    cov = np.cov(mus)
    total_correlation, wasserstein = gaussian_scores(cov)
    discrete = histogram_discretize(mus, num_bins)
    mi = discrete_mutual_info(discrete, discrete)
    np.fill_diagonal(mi, 0)
    return {"gaussian_total_correlation": total_correlation, "gaussian_wasserstein_correlation": wasserstein,
            "gaussian_wasserstein_correlation_norm": wasserstein / np.sum(np.diag(cov)),
            "mutual_info_score": np.sum(mi) / (d ** 2 - d)}


METRICS = {"beta_vae": compute_beta_vae, "factor_vae": compute_factor_vae, "mig": compute_mig,
           "dci": compute_dci, "sap": compute_sap, "modularity_explicitness": compute_modularity_explicitness,
           "unsupervised": compute_unsupervised}


def evaluate(dataset, representation, metrics=None, *, seed: int = 0, config: dict | None = None,
             timings: dict | None = None) -> dict:
    """Same interface as ``fastrepr.evaluation.disentanglement.evaluate``."""
    import time

    config = config or {}
    out = {}
    for name in (list(METRICS) if metrics is None else metrics):
        t0 = time.perf_counter()
        scores = METRICS[name](dataset, representation, np.random.RandomState(seed), **config.get(name, {}))
        out[name] = {k: float(v) for k, v in scores.items()}
        if timings is not None:
            timings[name] = time.perf_counter() - t0
    return out
