"""The downstream protocol reproduces disentanglement_lib's: its draws, and scikit-learn's LogisticRegression /
GradientBoostingClassifier accuracies on the same codes (to 0.5 point)."""
import warnings

import numpy as np
import pytest

from fastrepr.data import DSprites, FactorObservations
from fastrepr.evaluation import downstream as ds
from fastrepr.evaluation import representations as reps

DATA = FactorObservations(DSprites())


def _rep():
    rot = reps.rotated_factors(DATA.factors_num_values, 0)
    return lambda obs: np.tanh(np.asarray(rot(obs), np.float64) / 10.0)  # deterministic, not linear in the factors


def _sklearn_scores(sizes, num_test, seed, C=1.0):
    """disentanglement_lib's compute_downstream_task, written out with scikit-learn: per size, train then test
    draws in batches of 16 from one RandomState, one classifier per factor."""
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    rs, rep, draws = np.random.RandomState(seed), _rep(), []

    def codes(n):
        xs, ys = [], []
        for i in range(0, n, 16):
            f = DATA.sample_factors(min(16, n - i), rs)
            xs.append(rep(DATA.sample_observations_from_factors(f, rs)))
            ys.append(f)
        return np.concatenate(xs), np.concatenate(ys)

    for n in sizes:
        draws.append((n,) + codes(n) + codes(num_test))
    out = {}
    for n, x, y, xt, yt in draws:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out[f"lr{n}"] = [LogisticRegression(C=C, max_iter=1000).fit(x, y[:, j]).score(xt, yt[:, j])
                             for j in range(y.shape[1])]
    for n, x, y, xt, yt in draws:  # trees seeded from the RandomState after all the sampling, size by size
        out[f"gbt{n}"] = [GradientBoostingClassifier(random_state=rs).fit(x, y[:, j]).score(xt, yt[:, j])
                          for j in range(y.shape[1])]
    return out


def test_downstream_reproduces_disentanglement_lib_with_sklearn():
    sizes, num_test = (10, 100, 200), 200
    ours = ds.downstream(DATA, _rep(), sizes=sizes, num_test=num_test, seed=3)
    ref = _sklearn_scores(sizes, num_test, seed=3)
    for key, accs in ref.items():
        got = [ours[f"{key}:test_accuracy_factor_{j}"] for j in range(len(accs))]
        assert np.abs(np.array(got) - accs).max() <= 0.005, (key, got, accs)
        assert ours[f"{key}:mean_test_accuracy"] == pytest.approx(np.mean(got))
    assert np.isnan(ours["lr_efficiency"])  # 10000 not run
    # the codes carry the factors: more labels help
    assert ours["gbt200:mean_test_accuracy"] > ours["gbt10:mean_test_accuracy"]


def test_probes_match_sklearn_on_the_same_codes():
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    rs = np.random.RandomState(1)
    y, yt = DATA.sample_factors(250, rs), DATA.sample_factors(250, rs)
    rep = _rep()
    x, xt = rep(y.astype(np.float32)) + 0.05 * rs.randn(250, 5), rep(yt.astype(np.float32)) + 0.05 * rs.randn(250, 5)
    for C in (0.1, 1.0):
        _, test = ds.logistic_regression(x, y, xt, yt, C=C)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = [LogisticRegression(C=C, max_iter=1000).fit(x, y[:, j]).score(xt, yt[:, j])
                  for j in range(5)]
        assert np.abs(test - sk).max() <= 0.005, (C, test, sk)
    _, test = ds.gradient_boosting(x, y, xt, yt, random_state=np.random.RandomState(7))
    r = np.random.RandomState(7)
    sk = [GradientBoostingClassifier(random_state=r).fit(x, y[:, j]).score(xt, yt[:, j]) for j in range(5)]
    assert np.abs(test - sk).max() <= 0.005, (test, sk)


def test_efficiency_is_the_ratio_of_mean_accuracies():
    s = ds.downstream(DATA, _rep(), sizes=(100, 10000), num_test=20, predictors=("gbt",), seed=0)
    assert s["gbt_efficiency"] == pytest.approx(s["gbt100:mean_test_accuracy"] / s["gbt10000:mean_test_accuracy"])
    assert "lr_efficiency" not in s


def test_same_seed_same_scores_other_seed_other_draws():
    kw = dict(sizes=(20,), num_test=100, predictors=("lr",))
    a, b, c = ({k: v for k, v in ds.downstream(DATA, _rep(), seed=s, **kw).items() if "efficiency" not in k}
               for s in (0, 0, 1))
    assert a == b and a != c


@pytest.mark.parametrize("kwargs, err", [(dict(sizes=()), ValueError), (dict(sizes=(0,)), ValueError),
                                         (dict(predictors=("svm",)), ValueError), (dict(lr_C=0.0), ValueError),
                                         (dict(num_test=2.5), TypeError), (dict(sizes=(2**27,)), ValueError)])
def test_bad_arguments(kwargs, err):
    with pytest.raises(err):
        ds.downstream(DATA, _rep(), **kwargs)


def test_non_finite_codes_give_nan_with_a_warning():
    with pytest.warns(RuntimeWarning, match="NaN"):
        s = ds.downstream(DATA, lambda obs: np.full((len(obs), 3), np.nan), sizes=(10,), num_test=10)
    assert np.isnan(s["lr10:mean_test_accuracy"])
