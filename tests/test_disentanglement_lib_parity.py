"""Fidelity against disentanglement_lib's own metric code (Locatello et al. 2019), run side by side.

disentanglement_lib 1.5 is installed by the Makefile without its TensorFlow dependencies (`pip install
--no-deps`): its metric modules need only numpy, scipy, scikit-learn, gin-config and absl. They import
`gin.tf` solely for `gin.configurable`, so an empty `gin.tf` module stands in for the TensorFlow binding.
Both sides get the same data set (fastrepr's procedural dSprites, observations = its factors), the same
representation and the same seed; the tolerances are the issue's bar. DCI's boosting in disentanglement_lib
is unseeded (scikit-learn's default random_state), hence its small tolerance rather than equality.
"""
import sys
import types
import warnings

import numpy as np
import pytest

dlib = pytest.importorskip("disentanglement_lib", reason="disentanglement_lib (installed by `make test`) is absent")
gin = pytest.importorskip("gin")
sys.modules.setdefault("gin.tf", types.ModuleType("gin.tf"))

from disentanglement_lib.evaluation.metrics import (beta_vae, dci, factor_vae, mig, modularity_explicitness,  # noqa: E402
                                                    sap_score, unsupervised_metrics)
from disentanglement_lib.evaluation.metrics import utils as dlib_utils  # noqa: E402

from fastrepr.data import DSprites, FactorObservations  # noqa: E402
from fastrepr.evaluation import disentanglement as dis  # noqa: E402
from fastrepr.evaluation import representations as reps  # noqa: E402

N = 1000
CONFIG = {"beta_vae": dict(num_train=200, num_eval=100),
          "factor_vae": dict(num_train=200, num_eval=100, num_variance_estimate=1000),
          "mig": dict(num_train=N), "dci": dict(num_train=N, num_test=N // 2),
          "sap": dict(num_train=N, num_test=N // 2), "modularity_explicitness": dict(num_train=N, num_test=N // 2),
          "unsupervised": dict(num_train=N)}
ABS_TOL = {"beta_vae": 0.02, "factor_vae": 0.02, "mig": 0.02, "dci": 0.02, "sap": 0.02,
           "modularity_explicitness": 0.01}


def _theirs(data, rep):
    gin.clear_config()
    gin.bind_parameter("discretizer.discretizer_fn", dlib_utils._histogram_discretize)
    gin.bind_parameter("discretizer.num_bins", 20)
    rs = lambda: np.random.RandomState(0)  # noqa: E731  (each metric its own RandomState(seed), as ours)
    return {
        "beta_vae": beta_vae.compute_beta_vae_sklearn(data, rep, rs(), None, 64, 200, 100),
        "factor_vae": factor_vae.compute_factor_vae(data, rep, rs(), None, 64, 200, 100, 1000),
        "mig": mig.compute_mig(data, rep, rs(), None, N, 16),
        "dci": dci.compute_dci(data, rep, rs(), None, N, N // 2, 16),
        "sap": sap_score.compute_sap(data, rep, rs(), None, N, N // 2, 16, False),
        "modularity_explicitness": modularity_explicitness.compute_modularity_explicitness(
            data, rep, rs(), None, N, N // 2, 16),
        "unsupervised": unsupervised_metrics.unsupervised_metrics(data, rep, rs(), None, N, 16),
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rotated", "factors"])
def test_scores_match_disentanglement_lib(name):
    data = FactorObservations(DSprites())
    rep = reps.rotated_factors(data.factors_num_values, 0) if name == "rotated" else reps.factors

    def rep_np(x):
        return np.asarray(rep(np.asarray(x, dtype=np.float32)), dtype=np.float64)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = dis.evaluate(data, rep, seed=0, config=CONFIG)
        theirs = _theirs(data, rep_np)
    checked = 0
    for metric, values in theirs.items():
        for key, value in values.items():
            got, want = ours[metric][key], float(value)
            if metric == "unsupervised":
                assert got == pytest.approx(want, rel=0.05, abs=1e-9), (metric, key, got, want)
            else:
                assert abs(got - want) <= ABS_TOL[metric], (metric, key, got, want)
            checked += 1
    assert checked == 18  # every score disentanglement_lib reports was compared
