"""Disentanglement metrics: against the numpy/scikit-learn implementation of disentanglement_lib's algorithms
(on fixed arrays and end to end, same seed), known answers on synthetic ground truth, invariances, and
defined behaviour on bad representations and degenerate data."""
import warnings

import numpy as np
import pytest
import torch
from scipy.stats import entropy as scipy_entropy
from sklearn.metrics import mutual_info_score, roc_auc_score
from sklearn.preprocessing import MultiLabelBinarizer

from fastrepr.data import DSprites, FactorObservations
from fastrepr.evaluation import _dlib_reference as ref
from fastrepr.evaluation import disentanglement as dis
from fastrepr.evaluation import representations as reps


class ToyData:
    """A GroundTruthData without the fast path: observations are noisy factors, and the noise is drawn from
    the same RandomState (so the order of random calls matters)."""

    def __init__(self, sizes=(3, 4, 2), noise=0.05):
        self.sizes, self.noise = tuple(sizes), noise

    @property
    def num_factors(self):
        return len(self.sizes)

    @property
    def factors_num_values(self):
        return list(self.sizes)

    def sample_factors(self, num, random_state):
        return np.stack([random_state.randint(k, size=num) for k in self.sizes], 1).astype(np.int64)

    def sample_observations_from_factors(self, factors, random_state):
        return factors + random_state.uniform(-self.noise, self.noise, size=factors.shape)


SMALL = {"beta_vae": dict(num_train=80, num_eval=40, batch_size=16),
         "factor_vae": dict(num_train=80, num_eval=40, num_variance_estimate=300, batch_size=16),
         "mig": dict(num_train=400), "dci": dict(num_train=240, num_test=120),
         "sap": dict(num_train=300, num_test=150), "modularity_explicitness": dict(num_train=300, num_test=200),
         "unsupervised": dict(num_train=400)}


def identity(x):
    return np.asarray(x, dtype=np.float64)


def _rotation(d, seed=0):
    q, _ = np.linalg.qr(np.random.RandomState(seed).randn(d, d))
    return q


def _run(data, rep, metrics=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return dis.evaluate(data, rep, metrics, config=SMALL, **kw)


# ----------------------------------------------------------------------------- pieces, on fixed arrays

def test_dci_scores_match_scipy_entropy_formulas():
    rs = np.random.RandomState(0)
    for imp in (rs.rand(6, 4), rs.rand(3, 5) ** 4, np.zeros((4, 3)), np.eye(4)[:, :3]):
        assert np.allclose(dis._dci_scores(imp), ref.dci_scores(imp), rtol=1e-12, atol=1e-12)
    # the definition: 1 - H_F(p_d.) weighted by code importance
    imp = rs.rand(5, 3)
    p = imp + 1e-11
    expect = np.sum((1 - scipy_entropy(p.T, base=3)) * imp.sum(1) / imp.sum())
    assert np.isclose(dis._dci_scores(imp)[0], expect, rtol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference divides 0 by 0 for an empty row
def test_modularity_matches_reference_formula():
    rs = np.random.RandomState(1)
    for mi in (rs.rand(7, 5), np.vstack([rs.rand(3, 4), np.zeros((1, 4))]), np.eye(4)):
        assert np.isclose(dis._modularity(mi), ref.modularity(mi), rtol=1e-12)


def test_macro_auc_matches_sklearn():
    rs = np.random.RandomState(2)
    y = rs.randint(0, 5, size=300)
    proba = rs.rand(300, 5)
    proba[:, 2] = np.round(proba[:, 2], 1)  # ties
    expect = roc_auc_score(MultiLabelBinarizer().fit_transform(y[:, None]), proba)
    assert np.isclose(dis._macro_auc(y, proba, np.arange(5)), expect, rtol=1e-12)


def test_gaussian_scores_match_sqrtm():
    rs = np.random.RandomState(3)
    a = rs.randn(200, 6) @ rs.randn(6, 6)
    cov = np.cov(a.T)
    tc, w = dis._gaussian_scores(cov)
    tc_ref, w_ref = ref.gaussian_scores(cov)
    assert np.isclose(tc, tc_ref, rtol=1e-10) and np.isclose(w, w_ref, rtol=1e-8)


def test_entropy_is_sklearn_mutual_info_of_a_label_with_itself():
    y = np.random.RandomState(4).randint(0, 7, size=(500, 2))
    assert np.allclose(dis._entropy(y), [mutual_info_score(y[:, j], y[:, j]) for j in range(2)], rtol=1e-12)


# ------------------------------------------------------------------ end to end against the reference

@pytest.mark.parametrize("rep_name", ["identity", "rotated"])
def test_every_metric_matches_the_reference(rep_name):
    data = ToyData()
    rep = identity if rep_name == "identity" else (lambda x, q=_rotation(3): np.asarray(x) @ q)
    ours = _run(data, rep)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = ref.evaluate(data, rep, config=SMALL)
    for metric, scores in theirs.items():
        assert set(ours[metric]) == set(scores), metric
        for key, value in scores.items():
            tol = 1e-9 if metric != "modularity_explicitness" else 1e-6
            assert ours[metric][key] == pytest.approx(value, rel=tol, abs=tol), (metric, key)


def test_dsprites_fast_path_matches_the_reference():
    """DSprites records image indices and renders later; the reference renders batch by batch."""
    data = FactorObservations(DSprites())
    rep = reps.rotated_factors(data.factors_num_values)
    cfg = {"mig": dict(num_train=300), "beta_vae": dict(num_train=30, num_eval=20),
           "factor_vae": dict(num_train=30, num_eval=20, num_variance_estimate=200)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dis.evaluate(data, rep, list(cfg), config=cfg)
        theirs = ref.evaluate(data, rep, list(cfg), config=cfg)
    for metric in cfg:
        for key, value in theirs[metric].items():
            assert ours[metric][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (metric, key)


def test_code_cache_keeps_the_scores_and_encodes_each_image_once():
    images = DSprites()
    cfg = {"mig": dict(num_train=300), "unsupervised": dict(num_train=300),
           "factor_vae": dict(num_train=20, num_eval=10, num_variance_estimate=300, batch_size=8)}
    seen = []

    def rep(x):
        seen.append(len(x))
        return reps.moments(x)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = dis.evaluate(images, reps.moments, list(cfg), config=cfg)
        cached = dis.evaluate(images, rep, list(cfg), config=cfg, deterministic=True)
    assert cached == plain
    drawn = 300 + 300 + 300 + 30 * 8
    assert sum(seen) <= drawn - 300  # mig and unsupervised draw the same 300 images: encoded once


def test_representation_changing_its_width_is_an_error():
    width = iter([3, 4] * 100)
    with pytest.raises(ValueError, match="dimensions after"):
        dis.mig(ToyData(), lambda x: np.zeros((len(x), next(width))), num_train=1100, batch_size=16)


def test_replayed_randint_is_numpys_stream():
    from fastrepr.evaluation._sampling import replay_randint

    rs = np.random.RandomState(0)
    highs = rs.randint(1, 60, size=300)
    highs[::7] = 1
    highs[5] = 2**32
    counts = rs.randint(0, 40, size=300)
    counts[::5] = 1
    a, b = np.random.RandomState(11), np.random.RandomState(11)
    expect = np.concatenate([a.randint(h, size=c) for h, c in zip(highs, counts)])
    assert np.array_equal(replay_randint(b, highs, counts), expect)
    assert a.randint(2**31) == b.randint(2**31)  # the state moved exactly as far


# ------------------------------------------------------------------------------------ known answers

def test_known_answers_identity_rotation_noise():
    data = ToyData(sizes=(4, 5, 3), noise=0.0)
    q = _rotation(3, seed=1)
    gen = torch.Generator().manual_seed(0)
    noise = lambda x: torch.randn(len(x), 3, generator=gen).numpy()  # noqa: E731
    metrics = ["mig", "dci", "sap", "beta_vae", "factor_vae"]
    good = _run(data, identity, metrics)
    rotated = _run(data, lambda x: np.asarray(x) @ q, metrics)
    bad = _run(data, noise, metrics)
    assert good["mig"]["discrete_mig"] > 0.9 and good["dci"]["disentanglement"] > 0.9 and good["sap"]["SAP_score"] > 0.25
    assert good["beta_vae"]["eval_accuracy"] == 1.0 and good["factor_vae"]["eval_accuracy"] == 1.0
    assert rotated["mig"]["discrete_mig"] < 0.5 * good["mig"]["discrete_mig"]
    assert rotated["dci"]["disentanglement"] < 0.6 * good["dci"]["disentanglement"]
    assert rotated["sap"]["SAP_score"] < 0.5 * good["sap"]["SAP_score"]
    assert rotated["dci"]["informativeness_test"] > 0.9  # rotation keeps the information
    assert abs(bad["mig"]["discrete_mig"]) < 0.05 and abs(bad["sap"]["SAP_score"]) < 0.05
    assert bad["dci"]["disentanglement"] < 0.2 and bad["dci"]["informativeness_test"] < 0.5


# --------------------------------------------------------------------------------------- invariances

def test_invariant_to_permuting_latents():
    data = ToyData(noise=0.2)
    perm = [2, 0, 1]
    a = _run(data, identity)
    b = _run(data, lambda x: identity(x)[:, perm])
    for metric, scores in a.items():
        for key, value in scores.items():
            tol = 1e-6 if metric in ("beta_vae", "modularity_explicitness") else 1e-9
            assert b[metric][key] == pytest.approx(value, rel=tol, abs=tol), (metric, key)


def test_invariant_to_positive_scaling_of_latents():
    """Scale-free definitions (not BetaVAE's and SAP's regularized classifiers, nor the Wasserstein
    dependency, which is in code units); powers of two keep the floating-point arithmetic exact."""
    data = ToyData(noise=0.2)
    scale = np.array([4.0, 0.5, 2.0])
    metrics = ["factor_vae", "mig", "dci", "modularity_explicitness", "unsupervised"]
    a = _run(data, identity, metrics)
    b = _run(data, lambda x: identity(x) * scale, metrics)
    for metric in metrics:
        for key, value in a[metric].items():
            if key.startswith("gaussian_wasserstein"):
                continue
            assert b[metric][key] == pytest.approx(value, rel=1e-9, abs=1e-12), (metric, key)
    c = _run(data, lambda x: identity(x) * np.array([3.3, 0.7, 11.0]), ["mig", "dci"])
    assert c["mig"]["discrete_mig"] == pytest.approx(a["mig"]["discrete_mig"], abs=0.02)
    assert c["dci"]["disentanglement"] == pytest.approx(a["dci"]["disentanglement"], abs=1e-9)


# -------------------------------------------------------------------------------- defined behaviour

def test_wrong_batch_size_raises_a_clear_error():
    for metric in dis.METRICS:
        with pytest.raises(ValueError, match="one row of codes per observation"):
            dis.evaluate(ToyData(), lambda x: identity(x)[:-1], [metric], config=SMALL)


def test_nan_codes_give_nan_scores_with_a_warning():
    def rep(x):
        z = identity(x).copy()
        z[0, 0] = np.nan
        return z

    for metric in dis.METRICS:
        with pytest.warns(RuntimeWarning, match="NaN or Inf"):
            out = dis.evaluate(ToyData(), rep, [metric], config=SMALL)[metric]
        assert set(out) == set(dis.KEYS[metric]) and all(np.isnan(v) for v in out.values())


def test_constant_latents_are_harmless():
    out = _run(ToyData(noise=0.2), lambda x: np.hstack([identity(x), np.full((len(x), 1), 7.0)]))
    flat = {(m, k): v for m, s in out.items() for k, v in s.items()}
    assert all(np.isfinite(v) for v in flat.values()), flat
    assert out["factor_vae"]["num_active_dims"] == 3 and out["mig"]["discrete_mig"] > 0.8
    everything_constant = _run(ToyData(), lambda x: np.zeros((len(x), 2)), ["factor_vae", "mig", "dci", "sap"])
    assert everything_constant["factor_vae"] == {"train_accuracy": 0.0, "eval_accuracy": 0.0, "num_active_dims": 0}
    assert everything_constant["mig"]["discrete_mig"] == 0.0 and everything_constant["sap"]["SAP_score"] == 0.0
    assert everything_constant["dci"]["informativeness_test"] < 0.7


def test_a_factor_with_one_value_is_left_out():
    data = ToyData(sizes=(3, 1, 4), noise=0.1)
    with pytest.warns(RuntimeWarning, match="single value"):
        out = dis.evaluate(data, identity, ["mig", "dci", "sap", "modularity_explicitness"], config=SMALL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.update(dis.evaluate(data, identity, ["beta_vae", "factor_vae", "unsupervised"], config=SMALL))
    assert all(np.isfinite(v) for s in out.values() for v in s.values()), out
    assert out["mig"]["discrete_mig"] > 0.8 and out["dci"]["disentanglement"] > 0.8
    assert 0 < out["beta_vae"]["eval_accuracy"] <= 1 and 0 < out["factor_vae"]["eval_accuracy"] <= 1
    assert out["dci"]["informativeness_test"] > 0.9


def test_evaluate_rejects_unknown_metrics():
    with pytest.raises(ValueError, match="unknown metric"):
        dis.evaluate(ToyData(), identity, ["nope"])
    with pytest.raises(TypeError, match="GroundTruthData-like"):
        dis.mig(object(), identity)


@pytest.mark.gpu
def test_gpu_suite_equals_cpu():
    cfg = {"beta_vae": dict(num_train=500, num_eval=200), "factor_vae": dict(num_train=500, num_eval=200),
           "mig": dict(num_train=3000), "dci": dict(num_train=1000, num_test=500),
           "sap": dict(num_train=2000, num_test=1000), "modularity_explicitness": dict(num_train=2000, num_test=1000),
           "unsupervised": dict(num_train=3000)}
    cpu = FactorObservations(DSprites())
    gpu = FactorObservations(DSprites(device="cuda", as_tensor=True), as_tensor=True, device="cuda")
    rep = reps.rotated_factors(cpu.factors_num_values)
    a = dis.evaluate(cpu, rep, config=cfg)
    b = dis.evaluate(gpu, rep, config=cfg)
    for metric, scores in a.items():
        for key, value in scores.items():
            assert b[metric][key] == pytest.approx(value, rel=1e-6, abs=1e-6), (metric, key)
    images = DSprites(device="cuda", as_tensor=True)
    out = dis.evaluate(images, reps.moments, ["beta_vae", "mig"], config=cfg)
    assert 0.5 < out["beta_vae"]["eval_accuracy"] <= 1.0 and out["mig"]["discrete_mig"] > 0.1
