"""The native gradient boosting against scikit-learn's GradientBoostingClassifier with the same random_state:
feature importances, decision values and predictions, for binary and multiclass targets."""
import numpy as np
import pytest
import torch
from sklearn.ensemble import GradientBoostingClassifier

from fastrepr.evaluation import boosting


def _data(n, d, k, seed, ties=False):
    rs = np.random.RandomState(seed)
    x = rs.randn(n, d)
    if ties:
        x[:, 1] = np.round(x[:, 1])  # few distinct values
    score = 1.5 * x[:, 0] + x[:, 1] ** 2 - x[:, 2] + 0.7 * rs.randn(n)
    y = np.digitize(score, np.quantile(score, np.linspace(0, 1, k + 1)[1:-1]))
    return x.astype(np.float32), y, rs.randn(n // 2, d).astype(np.float32)


@pytest.mark.parametrize("k, n_estimators", [(2, 60), (3, 40), (6, 15)])
def test_matches_sklearn_on_continuous_features(k, n_estimators):
    x, y, xt = _data(400, 5, k, seed=k)
    sk = GradientBoostingClassifier(n_estimators=n_estimators, random_state=11).fit(x, y)
    ours = boosting.fit_predict(x, y, xt, n_estimators=n_estimators, random_state=11)
    # same trees: importances and decision values agree to rounding (bit for bit on distinct values)
    np.testing.assert_allclose(ours.importances[0], sk.feature_importances_, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours.test_raw[0], sk.decision_function(xt).reshape(len(xt), -1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ours.train_raw[0], sk.decision_function(x).reshape(len(x), -1), rtol=1e-12, atol=1e-12)
    assert np.array_equal(ours.train_pred[:, 0], sk.predict(x)) and np.array_equal(ours.test_pred[:, 0], sk.predict(xt))


def test_several_targets_equal_consecutive_fits_with_one_random_state():
    """DCI's use: one call for all factors draws tree seeds as consecutive sklearn fits sharing a RandomState."""
    x, y1, xt = _data(300, 4, 3, seed=5)
    y2 = (x[:, 3] > 0).astype(int) + 2 * (x[:, 0] > 0.5)
    ours = boosting.fit_predict(x, np.stack([y1, y2], 1), xt, n_estimators=10, random_state=np.random.RandomState(3))
    rs = np.random.RandomState(3)
    for f, y in enumerate((y1, y2)):
        sk = GradientBoostingClassifier(n_estimators=10, random_state=rs).fit(x, y)
        np.testing.assert_allclose(ours.importances[f], sk.feature_importances_, rtol=1e-12, atol=1e-15)
        assert np.array_equal(ours.test_pred[:, f], sk.predict(xt))


def test_tied_feature_values_agree_to_rounding():
    x, y, xt = _data(300, 4, 4, seed=2, ties=True)
    sk = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(x, y)
    ours = boosting.fit_predict(x, y, xt, n_estimators=20, random_state=0)
    np.testing.assert_allclose(ours.importances[0], sk.feature_importances_, atol=2e-3)
    assert np.mean(ours.test_pred[:, 0] == sk.predict(xt)) > 0.97


def test_labels_of_any_kind_and_a_single_class():
    x, y, xt = _data(200, 3, 3, seed=1)
    names = np.array(["a", "b", "c"])[y]
    ours = boosting.fit_predict(torch.from_numpy(x), np.stack([names, np.full(200, "z")], 1), xt, n_estimators=5)
    sk = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(x, names)
    assert list(ours.classes[0]) == ["a", "b", "c"]
    assert np.mean(ours.train_pred[:, 0] == sk.predict(x)) > 0.97
    assert np.all(ours.importances[1] == 0) and np.all(ours.test_pred[:, 1] == "z")  # sklearn would raise


def test_thread_count_does_not_change_results():
    x, y, xt = _data(300, 6, 5, seed=4)
    one = boosting.fit_predict(x, y, xt, n_estimators=8, random_state=1, threads=1)
    two = boosting.fit_predict(x, y, xt, n_estimators=8, random_state=1, threads=3)
    assert np.array_equal(one.importances, two.importances) and np.array_equal(one.test_raw[0], two.test_raw[0])


@pytest.mark.parametrize("call, exc, match", [
    (lambda: boosting.fit_predict(np.zeros((0, 3)), np.zeros(0)), ValueError, "non-empty"),
    (lambda: boosting.fit_predict(np.ones((4, 2)), np.zeros(3)), ValueError, "y must have shape"),
    (lambda: boosting.fit_predict(np.full((4, 2), np.nan), np.zeros(4)), ValueError, "NaN"),
    (lambda: boosting.fit_predict(np.ones((4, 2)), np.zeros(4), np.ones((2, 3))), ValueError, "x_test"),
    (lambda: boosting.fit_predict(np.ones((4, 2)), np.zeros(4), max_depth=0), ValueError, "max_depth"),
    (lambda: boosting.fit_predict(np.ones((4, 2)), np.zeros(4), random_state="x"), TypeError, "random_state"),
])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
