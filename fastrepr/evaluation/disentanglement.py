"""Disentanglement metrics of Locatello et al. (ICML 2019), as disentanglement_lib computes them, fast.

Every metric takes a ground-truth data set (any disentanglement_lib GroundTruthData-like object, e.g.
``fastrepr.data.DSprites()``), a representation (a batched function of observations, numpy or torch in and
out) and a seed, and returns a dict with disentanglement_lib's keys. Each metric draws from its own
``np.random.RandomState(seed)`` (seed 0 by default, as the study's ``evaluation.random_seed = 0``), making the
same calls on it as disentanglement_lib, so for the same seed it sees the same factors and observations.
Defaults are the study's (``unsupervised_study_v1/metric_configs``).

What is faster, without changing a definition:
  * points are drawn in disentanglement_lib's order but observations are rendered and encoded in big
    batches (``_sampling``), not 64 or 16 at a time;
  * BetaVAE's pair differences run on ``fastrepr.pairwise_abs_diff_mean``;
  * the histogram discretization and every mutual information (MIG, modularity, unsupervised MI) run as one
    fused op, ``fastrepr.histogram_mutual_info``;
  * DCI's gradient-boosted trees run natively (``fastrepr.evaluation.boosting``), reproducing scikit-learn's
    ``GradientBoostingClassifier()`` (its trees are seeded from the metric's RandomState after sampling);
  * SAP's 1-D LinearSVC fits run in a thread pool; explicitness's ROC-AUC is computed from ranks.
The logistic regressions (BetaVAE, explicitness) and LinearSVC (SAP) are scikit-learn's own.

Defined behaviour where disentanglement_lib crashes or returns NaN:
  * a representation that returns another number of rows than observations: ValueError;
  * non-finite codes: every score is NaN, with a RuntimeWarning;
  * constant code dimensions: they carry no information (zero MI, never split on, pruned by FactorVAE);
    explicitness standardizes them to 0 instead of dividing by a zero std, and the Gaussian total
    correlation is taken over the non-constant dimensions (a constant variable adds none);
  * a factor that takes a single value in the sample: it carries no information and is dropped (with a
    warning) from MIG, DCI, SAP and modularity/explicitness, instead of dividing by a zero entropy or failing
    to fit a classifier. BetaVAE and FactorVAE keep it (it is a valid, unlearnable, class).
Every metric also takes ``code_cache`` (a ``_sampling.CodeCache``; ``evaluate(deterministic=True)`` shares one
between metrics) to encode each distinct image once, for deterministic representations.
Also, FactorVAE's ``num_active_dims`` is the number of active dimensions (disentanglement_lib reports the
number of all dimensions).
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from .. import _checks
from ..functional import histogram_mutual_info, pairwise_abs_diff_mean
from ..ops.mutual_info import MAX_BINS
from . import boosting
from ._sampling import CodeCache, Representation, Sampler, factor_codes, fixed_factor_draws

# The study configuration (disentanglement_lib/config/unsupervised_study_v1/metric_configs).
DEFAULTS = {
    "beta_vae": dict(batch_size=64, num_train=10000, num_eval=5000),
    "factor_vae": dict(batch_size=64, num_train=10000, num_eval=5000, num_variance_estimate=10000,
                       prune_threshold=0.05),
    "mig": dict(num_train=10000, batch_size=16, num_bins=20),
    "dci": dict(num_train=10000, num_test=5000, batch_size=16),
    "sap": dict(num_train=10000, num_test=5000, batch_size=16, continuous_factors=False),
    "modularity_explicitness": dict(num_train=10000, num_test=5000, batch_size=16, num_bins=20),
    "unsupervised": dict(num_train=10000, batch_size=16, num_bins=20),
}
KEYS = {
    "beta_vae": ("train_accuracy", "eval_accuracy"),
    "factor_vae": ("train_accuracy", "eval_accuracy", "num_active_dims"),
    "mig": ("discrete_mig",),
    "dci": ("informativeness_train", "informativeness_test", "disentanglement", "completeness"),
    "sap": ("SAP_score",),
    "modularity_explicitness": ("modularity_score", "explicitness_score_train", "explicitness_score_test"),
    "unsupervised": ("gaussian_total_correlation", "gaussian_wasserstein_correlation",
                     "gaussian_wasserstein_correlation_norm", "mutual_info_score"),
}


# Observations one metric call may draw (and encode): 50x the study's largest (BetaVAE: 15000 points x 2 x 64).
# Every size argument is checked before any sampling, so a bad one fails at once, not after minutes of encoding.
MAX_OBSERVATIONS = 2**26


def _sizes(metric: str, observations, num_bins: int | None = None, **sizes) -> None:
    """Each size an int >= 1, num_bins in [1, MAX_BINS], and observations(**sizes) <= MAX_OBSERVATIONS."""
    for name, value in sizes.items():
        sizes[name] = _checks.int_arg(value, f"{metric}: {name}", 1)
    if num_bins is not None:
        _checks.int_arg(num_bins, f"{metric}: num_bins", 1, MAX_BINS)
    total = observations(**sizes)
    if total > MAX_OBSERVATIONS:
        listed = ", ".join(f"{k}={v}" for k, v in sizes.items())
        raise ValueError(f"{metric}: {listed} would draw {total} observations, above the limit of "
                         f"{MAX_OBSERVATIONS} per metric call")


def _setup(dataset, representation, seed, random_state, code_cache=None):
    rs = random_state if random_state is not None else np.random.RandomState(seed)
    return Sampler(dataset, Representation(representation), rs, cache=code_cache)


def _nan(metric: str) -> dict:
    warnings.warn(f"{metric}: the representation returned NaN or Inf codes; every score is NaN", RuntimeWarning,
                  stacklevel=3)
    return {k: float("nan") for k in KEYS[metric]}


def _finite(*codes: torch.Tensor) -> bool:
    return all(bool(torch.isfinite(c).all()) for c in codes)


def _informative(metric: str, *factor_sets: np.ndarray) -> np.ndarray:
    """Indices of the factors that take more than one value in the (first) sample; warns about the rest."""
    ys = factor_sets[0]
    keep = np.array([np.unique(ys[:, j]).size > 1 for j in range(ys.shape[1])])
    if not keep.all():
        warnings.warn(f"{metric}: factor(s) {np.flatnonzero(~keep).tolist()} take a single value and are left out",
                      RuntimeWarning, stacklevel=3)
    return np.flatnonzero(keep)


def _small_blas():
    """Single-threaded BLAS around scikit-learn's fits: their matrices ([10000, 10]) are too small for threads,
    which only add synchronization (and stall badly on a busy machine)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


def _entropy(labels: np.ndarray) -> np.ndarray:
    """Discrete entropy in nats of each column (sklearn.metrics.mutual_info_score(y, y))."""
    out = np.zeros(labels.shape[1])
    for j in range(labels.shape[1]):
        p = np.unique(labels[:, j], return_counts=True)[1] / labels.shape[0]
        out[j] = -np.sum(p * np.log(p))
    return out


# ------------------------------------------------------------------------------------------------ BetaVAE

def _beta_vae_features(sampler: Sampler, batch_size: int, num_points: int):
    """Per point: a random factor index, two factor batches sharing it; features = mean |z1 - z2| per dim."""
    labels = fixed_factor_draws(sampler, num_points, batch_size, groups=2)
    z = sampler.codes()  # [num_points * 2 * batch_size, D]: f1's codes, then f2's, per point
    if not _finite(z):
        return None, labels
    i = torch.arange(num_points, device=z.device)[:, None] * (2 * batch_size) + torch.arange(batch_size, device=z.device)
    features = pairwise_abs_diff_mean(z.double(), i=i, j=i + batch_size)
    return features.cpu().numpy(), labels


def beta_vae(dataset, representation, *, seed: int = 0, random_state=None, code_cache=None,
             batch_size: int = 64, num_train: int = 10000, num_eval: int = 5000) -> dict:
    """BetaVAE score (Higgins et al. 2017): accuracy of a logistic regression predicting which factor was
    held fixed from the mean absolute code difference over ``batch_size`` pairs. Keys: train_accuracy,
    eval_accuracy."""
    from sklearn.linear_model import LogisticRegression

    _sizes("beta_vae", lambda batch_size, num_train, num_eval: (num_train + num_eval) * 2 * batch_size,
           batch_size=batch_size, num_train=num_train, num_eval=num_eval)
    sampler = _setup(dataset, representation, seed, random_state, code_cache)
    x_train, y_train = _beta_vae_features(sampler, batch_size, num_train)
    if x_train is None:
        return _nan("beta_vae")
    model = LogisticRegression(random_state=sampler.rs)  # as disentanglement_lib (lbfgs draws nothing)
    with warnings.catch_warnings(), _small_blas():
        warnings.simplefilter("ignore")  # convergence warnings, as disentanglement_lib logs none either
        model.fit(x_train, y_train)
    train_accuracy = float(np.mean(model.predict(x_train) == y_train))
    x_eval, y_eval = _beta_vae_features(sampler, batch_size, num_eval)
    if x_eval is None:
        return _nan("beta_vae")
    return {"train_accuracy": train_accuracy, "eval_accuracy": float(model.score(x_eval, y_eval))}


# ---------------------------------------------------------------------------------------------- FactorVAE

def _factor_vae_votes(sampler: Sampler, batch_size: int, num_points: int, global_var: np.ndarray,
                      active: np.ndarray):
    num_factors = sampler.dataset.num_factors
    index = fixed_factor_draws(sampler, num_points, batch_size, groups=1)
    z = sampler.codes()
    if not _finite(z):
        return None
    local = torch.var(z.double().view(num_points, batch_size, -1), dim=1, correction=1).cpu().numpy()
    argmin = np.argmin(local[:, active] / global_var[active], axis=1)  # position among the active dims
    votes = np.zeros((num_factors, global_var.shape[0]), dtype=np.int64)
    np.add.at(votes, (index, argmin), 1)
    return votes


def factor_vae(dataset, representation, *, seed: int = 0, random_state=None, code_cache=None,
               batch_size: int = 64, num_train: int = 10000, num_eval: int = 5000,
               num_variance_estimate: int = 10000, prune_threshold: float = 0.05) -> dict:
    """FactorVAE score (Kim & Mnih 2018): majority-vote accuracy of predicting the fixed factor from the code
    dimension with the least variance (normalized by its global variance, ddof=1; dimensions with a global
    std below ``prune_threshold`` are pruned). Keys: train_accuracy, eval_accuracy, num_active_dims."""
    _sizes("factor_vae", lambda batch_size, num_train, num_eval, num_variance_estimate:
           num_variance_estimate + (num_train + num_eval) * batch_size, batch_size=batch_size, num_train=num_train,
           num_eval=num_eval, num_variance_estimate=num_variance_estimate)
    if _checks.float_arg(prune_threshold, "factor_vae: prune_threshold") < 0:
        raise ValueError(f"factor_vae: prune_threshold must be >= 0, got {prune_threshold}")
    sampler = _setup(dataset, representation, seed, random_state, code_cache)
    z, _ = factor_codes(sampler, num_variance_estimate, num_variance_estimate)  # one sample_observations call
    if not _finite(z):
        return _nan("factor_vae")
    global_var = torch.var(z.double(), dim=0, correction=1).cpu().numpy()
    active = np.sqrt(global_var) >= prune_threshold
    if not active.any():
        return {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    train_votes = _factor_vae_votes(sampler, batch_size, num_train, global_var, active)
    if train_votes is None:
        return _nan("factor_vae")
    classifier = np.argmax(train_votes, axis=0)
    columns = np.arange(train_votes.shape[1])
    train_accuracy = train_votes[classifier, columns].sum() / train_votes.sum()
    eval_votes = _factor_vae_votes(sampler, batch_size, num_eval, global_var, active)
    if eval_votes is None:
        return _nan("factor_vae")
    eval_accuracy = eval_votes[classifier, columns].sum() / eval_votes.sum()
    return {"train_accuracy": float(train_accuracy), "eval_accuracy": float(eval_accuracy),
            "num_active_dims": int(active.sum())}


def _train_test(metric, dataset, representation, seed, random_state, code_cache, num_train, num_test, batch_size):
    """disentanglement_lib's train and test draws (generate_batch_factor_code twice): (early, draws) where
    early is the NaN result for non-finite codes or no informative factor, else None, and draws is
    (sampler, x_train, y_train, x_test, y_test) with the single-valued factors left out."""
    _sizes(metric, lambda num_train, num_test, batch_size: num_train + num_test, num_train=num_train,
           num_test=num_test, batch_size=batch_size)
    sampler = _setup(dataset, representation, seed, random_state, code_cache)
    x_train, y_train = factor_codes(sampler, num_train, batch_size)
    x_test, y_test = factor_codes(sampler, num_test, batch_size)
    if not _finite(x_train, x_test):
        return _nan(metric), None
    keep = _informative(metric, y_train)
    if keep.size == 0:
        return {k: float("nan") for k in KEYS[metric]}, None
    return None, (sampler, x_train, y_train[:, keep], x_test, y_test[:, keep])


# ---------------------------------------------------------------------------------------------------- MIG

def mig(dataset, representation, *, seed: int = 0, random_state=None, code_cache=None, num_train: int = 10000,
        batch_size: int = 16, num_bins: int = 20) -> dict:
    """Mutual information gap (Chen et al. 2018): per factor, the gap between the two codes with the highest
    mutual information with it (20-bin histogram discretization, nats), over the factor's entropy, averaged.
    Key: discrete_mig."""
    _sizes("mig", lambda num_train, batch_size: num_train, num_bins, num_train=num_train, batch_size=batch_size)
    sampler = _setup(dataset, representation, seed, random_state, code_cache)
    codes, factors = factor_codes(sampler, num_train, batch_size)
    if not _finite(codes):
        return _nan("mig")
    keep = _informative("mig", factors)
    if keep.size == 0:
        return {"discrete_mig": float("nan")}
    ys = factors[:, keep]
    m = histogram_mutual_info(codes, torch.from_numpy(ys).to(codes.device), num_bins).cpu().numpy()
    top = -np.sort(-m, axis=0)
    second = top[1] if top.shape[0] > 1 else np.zeros(top.shape[1])
    return {"discrete_mig": float(np.mean((top[0] - second) / _entropy(ys)))}


# ---------------------------------------------------------------------------------------------------- DCI

def _dci_scores(importance: np.ndarray) -> tuple[float, float]:
    """Disentanglement and completeness (Eastwood & Williams 2018) of an importance matrix [D, F], with
    disentanglement_lib's 1e-11 smoothing and weighting (uniform weights when all importances are 0)."""
    def one_minus_entropy(p: np.ndarray, base: int) -> np.ndarray:  # along axis 1, as scipy.stats.entropy
        p = p / p.sum(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            return 1.0 - (-np.sum(p * np.log(p), axis=1) / np.log(base))

    weights = importance if importance.sum() != 0 else np.ones_like(importance)
    per_code = one_minus_entropy(importance + 1e-11, importance.shape[1])
    per_factor = one_minus_entropy(importance.T + 1e-11, importance.shape[0])
    disentanglement = np.sum(per_code * weights.sum(axis=1) / weights.sum())
    completeness = np.sum(per_factor * weights.sum(axis=0) / weights.sum())
    return float(disentanglement), float(completeness)


def dci(dataset, representation, *, seed: int = 0, random_state=None, code_cache=None, num_train: int = 10000,
        num_test: int = 5000, batch_size: int = 16) -> dict:
    """DCI (Eastwood & Williams 2018) with gradient-boosted trees: importances of each code for each factor
    give disentanglement and completeness; train/test accuracies give informativeness."""
    early, draws = _train_test("dci", dataset, representation, seed, random_state, code_cache, num_train, num_test,
                               batch_size)
    if early is not None:
        return early
    sampler, x_train, y_train, x_test, y_test = draws
    result = boosting.fit_predict(x_train.cpu().numpy(), y_train, x_test.cpu().numpy(), random_state=sampler.rs)
    importance = np.abs(result.importances.T)  # [D, F]
    disentanglement, completeness = _dci_scores(importance)
    return {"informativeness_train": float(np.mean(np.mean(result.train_pred == y_train, axis=0))),
            "informativeness_test": float(np.mean(np.mean(result.test_pred == y_test, axis=0))),
            "disentanglement": disentanglement, "completeness": completeness}


# ---------------------------------------------------------------------------------------------------- SAP

def _svc_accuracy(x_train, y_train, x_test, y_test) -> float:
    from sklearn.svm import LinearSVC

    classifier = LinearSVC(C=0.01, class_weight="balanced")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        classifier.fit(x_train[:, None], y_train)
    return float(np.mean(classifier.predict(x_test[:, None]) == y_test))


def sap(dataset, representation, *, seed: int = 0, random_state=None, code_cache=None, num_train: int = 10000,
        num_test: int = 5000, batch_size: int = 16, continuous_factors: bool = False,
        threads: int | None = None) -> dict:
    """SAP score (Kumar et al. 2018): per factor, the gap between the two codes that best predict it alone
    (test accuracy of a LinearSVC(C=0.01, class_weight="balanced") on one code; R^2 for continuous
    factors), averaged. Key: SAP_score."""
    if threads is not None:
        _checks.int_arg(threads, "sap: threads", 0, 1024)
    early, draws = _train_test("sap", dataset, representation, seed, random_state, code_cache, num_train, num_test,
                               batch_size)
    if early is not None:
        return early
    _, x_train, ys, x_test, yt = draws
    xs, xt = x_train.cpu().double().numpy(), x_test.cpu().double().numpy()
    d, f = xs.shape[1], ys.shape[1]
    score = np.zeros((d, f))
    if continuous_factors:
        for i in range(d):
            for j in range(f):
                c = np.cov(xs[:, i], ys[:, j], ddof=1)
                score[i, j] = c[0, 1] ** 2 / (c[0, 0] * c[1, 1]) if c[0, 0] > 1e-12 else 0.0
    else:
        pairs = [(i, j) for i in range(d) for j in range(f)]
        with ThreadPoolExecutor(max_workers=threads or torch.get_num_threads()) as pool:  # liblinear drops the GIL
            accs = pool.map(lambda ij: _svc_accuracy(xs[:, ij[0]], ys[:, ij[1]], xt[:, ij[0]], yt[:, ij[1]]), pairs)
            for (i, j), acc in zip(pairs, accs):
                score[i, j] = acc
    top = np.sort(score, axis=0)
    second = top[-2] if d > 1 else np.zeros(f)
    return {"SAP_score": float(np.mean(top[-1] - second))}


# --------------------------------------------------------------------------- modularity and explicitness

def _modularity(mi: np.ndarray) -> float:
    """Ridgeway & Mozer 2018: per code, 1 - (sum of squared MI - max) / (max * (F - 1)); 0 for codes with no
    information; 1 for informative codes when there is a single factor."""
    sq = mi ** 2
    top = sq.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = (sq.sum(axis=1) - top) / (top * (sq.shape[1] - 1.0))
    score = np.where(top == 0.0, 0.0, 1.0 - np.nan_to_num(delta, nan=0.0))
    return float(np.mean(score))


def _macro_auc(y: np.ndarray, proba: np.ndarray, classes: np.ndarray) -> float:
    """One-vs-rest ROC-AUC averaged over classes (sklearn's roc_auc_score on MultiLabelBinarizer columns),
    from ranks (Mann-Whitney, ties counted half); classes absent from y, or making up all of it, are skipped."""
    from scipy.stats import rankdata

    aucs = []
    for c, cls in enumerate(classes):
        pos = y == cls
        n_pos = int(pos.sum())
        n_neg = y.shape[0] - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(proba[:, c])
        aucs.append((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))
    return float(np.mean(aucs)) if aucs else float("nan")


def modularity_explicitness(dataset, representation, *, seed: int = 0, random_state=None, code_cache=None,
                            num_train: int = 10000, num_test: int = 5000, batch_size: int = 16,
                            num_bins: int = 20) -> dict:
    """Modularity (from the 20-bin discretized mutual information) and explicitness (ROC-AUC of a logistic
    regression on standardized codes, per factor) of Ridgeway & Mozer 2018. Keys: modularity_score,
    explicitness_score_train, explicitness_score_test."""
    from sklearn.linear_model import LogisticRegression

    _checks.int_arg(num_bins, "modularity_explicitness: num_bins", 1, MAX_BINS)
    early, draws = _train_test("modularity_explicitness", dataset, representation, seed, random_state, code_cache,
                               num_train, num_test, batch_size)
    if early is not None:
        return early
    _, x_train, ys, x_test, yt = draws
    mi = histogram_mutual_info(x_train, torch.from_numpy(ys).to(x_train.device), num_bins).cpu().numpy()
    # standardize in the codes' dtype, reducing [D, N] rows as disentanglement_lib does (same rounding)
    xs, xt = x_train.cpu().numpy().T.copy(), x_test.cpu().numpy().T.copy()
    mean, std = np.mean(xs, axis=1), np.std(xs, axis=1)
    std = np.where(std == 0, np.ones_like(std), std)  # constant codes standardize to 0
    xs, xt = ((xs - mean[:, None]) / std[:, None]).T, ((xt - mean[:, None]) / std[:, None]).T
    train, test = [], []
    for j in range(ys.shape[1]):
        with warnings.catch_warnings(), _small_blas():
            warnings.simplefilter("ignore")
            clf = LogisticRegression().fit(xs, ys[:, j])
        train.append(_macro_auc(ys[:, j], clf.predict_proba(xs), clf.classes_))
        test.append(_macro_auc(yt[:, j], clf.predict_proba(xt), clf.classes_))
    return {"modularity_score": _modularity(mi), "explicitness_score_train": float(np.mean(train)),
            "explicitness_score_test": float(np.mean(test))}


# ------------------------------------------------------------------------------------------- unsupervised

def _gaussian_scores(cov: np.ndarray) -> tuple[float, float]:
    """Gaussian total correlation 0.5 (sum log diag - log det) over the non-constant dimensions, and the
    Wasserstein dependency 2 tr(C) - 2 tr(sqrtm(diag(C) C)); diag(C) C is similar to S C S with
    S = diag(C)^(1/2), symmetric PSD, so tr(sqrtm) = sum of sqrt(eigenvalues of S C S)."""
    var = np.diag(cov)
    live = var > 0
    sub = cov[np.ix_(live, live)]
    total_correlation = 0.5 * (np.sum(np.log(var[live])) - np.linalg.slogdet(sub)[1]) if live.any() else 0.0
    s = np.sqrt(var)
    eig = np.clip(np.linalg.eigvalsh(s[:, None] * cov * s[None, :]), 0.0, None)
    wasserstein = 2.0 * np.trace(cov) - 2.0 * np.sum(np.sqrt(eig))
    return float(total_correlation), float(wasserstein)


def unsupervised(dataset, representation, *, seed: int = 0, random_state=None, code_cache=None,
                 num_train: int = 10000, batch_size: int = 16, num_bins: int = 20) -> dict:
    """Unsupervised scores of the code distribution: Gaussian total correlation, Gaussian Wasserstein
    dependency (and normalized by the total variance), and the mean mutual information between pairs of
    discretized codes."""
    _sizes("unsupervised", lambda num_train, batch_size: num_train, num_bins, num_train=num_train,
           batch_size=batch_size)
    sampler = _setup(dataset, representation, seed, random_state, code_cache)
    codes, _ = factor_codes(sampler, num_train, batch_size)
    if not _finite(codes):
        return _nan("unsupervised")
    cov = np.cov(codes.cpu().double().numpy().T, ddof=1).reshape(codes.shape[1], codes.shape[1])
    total_correlation, wasserstein = _gaussian_scores(cov)
    mi = histogram_mutual_info(codes, None, num_bins).cpu().numpy()
    np.fill_diagonal(mi, 0.0)
    d = codes.shape[1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"gaussian_total_correlation": total_correlation, "gaussian_wasserstein_correlation": wasserstein,
                "gaussian_wasserstein_correlation_norm": float(wasserstein / np.trace(cov)),
                "mutual_info_score": float(np.sum(mi) / (d * d - d)) if d > 1 else float("nan")}


METRICS = {"beta_vae": beta_vae, "factor_vae": factor_vae, "mig": mig, "dci": dci, "sap": sap,
           "modularity_explicitness": modularity_explicitness, "unsupervised": unsupervised}


def evaluate(dataset, representation, metrics=None, *, seed: int = 0, config: dict | None = None,
             timings: dict | None = None, deterministic: bool = False) -> dict:
    """Run several metrics (default: all, in METRICS order), each with its own RandomState(seed).

    config: per-metric keyword overrides, e.g. {"dci": {"num_train": 1000}}. timings: if a dict, filled
    with the wall-clock seconds of each metric. deterministic: the representation is a function of the
    observation (as disentanglement_lib's mean representation), so each distinct image of an indexable data
    set (DSprites) is encoded once for all metrics; the scores are the same, the work is about 4x less on
    dSprites. Leave it False for stochastic representations. Returns {metric: scores}.
    """
    import time

    names = list(METRICS) if metrics is None else list(metrics)
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; available: {', '.join(METRICS)}")
    config = config or {}
    cache = CodeCache() if deterministic else None
    out = {}
    for name in names:
        t0 = time.perf_counter()
        out[name] = METRICS[name](dataset, representation, seed=seed, code_cache=cache, **config.get(name, {}))
        if timings is not None:
            timings[name] = time.perf_counter() - t0
    return out
