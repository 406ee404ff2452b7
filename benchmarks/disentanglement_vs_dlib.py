"""fastrepr's disentanglement metrics against disentanglement_lib's own metric code, at the study's sample
sizes, same data set / representation / seed, timed in the same process (metric by metric, ours first).

    python benchmarks/disentanglement_vs_dlib.py [--representation rotated|factors|noise] [--seed 0]

Needs disentanglement_lib installed without its TensorFlow dependencies (`make test` does it:
`pip install --no-deps disentanglement-lib==1.5 gin-config==0.3.0 absl-py six future`). The data set is
fastrepr's procedural dSprites with observations = the factors (FactorObservations), so both sides spend
their time in the metrics, not in an encoder.
"""
import argparse
import sys
import time
import types
import warnings

import numpy as np

sys.modules.setdefault("gin.tf", types.ModuleType("gin.tf"))  # the metrics use gin.tf only for gin.configurable
import gin  # noqa: E402
from disentanglement_lib.evaluation.metrics import (beta_vae, dci, factor_vae, mig, modularity_explicitness,  # noqa: E402
                                                    sap_score, unsupervised_metrics)
from disentanglement_lib.evaluation.metrics import utils as dlib_utils  # noqa: E402

from fastrepr.data import DSprites, FactorObservations  # noqa: E402
from fastrepr.evaluation import disentanglement as dis  # noqa: E402
from fastrepr.evaluation import representations as reps  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--representation", default="rotated", choices=["rotated", "factors", "noise"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = FactorObservations(DSprites())
    rep = {"rotated": lambda: reps.rotated_factors(data.factors_num_values, args.seed), "factors": lambda: reps.factors,
           "noise": lambda: reps.noise(5, args.seed)}[args.representation]()

    def rep_np(x):
        return np.asarray(rep(np.asarray(x, dtype=np.float32)), dtype=np.float64)

    gin.bind_parameter("discretizer.discretizer_fn", dlib_utils._histogram_discretize)
    gin.bind_parameter("discretizer.num_bins", 20)
    rs = lambda: np.random.RandomState(args.seed)  # noqa: E731
    theirs = {
        "beta_vae": lambda: beta_vae.compute_beta_vae_sklearn(data, rep_np, rs(), None, 64, 10000, 5000),
        "factor_vae": lambda: factor_vae.compute_factor_vae(data, rep_np, rs(), None, 64, 10000, 5000, 10000),
        "mig": lambda: mig.compute_mig(data, rep_np, rs(), None, 10000, 16),
        "dci": lambda: dci.compute_dci(data, rep_np, rs(), None, 10000, 5000, 16),
        "sap": lambda: sap_score.compute_sap(data, rep_np, rs(), None, 10000, 5000, 16, False),
        "modularity_explicitness": lambda: modularity_explicitness.compute_modularity_explicitness(
            data, rep_np, rs(), None, 10000, 5000, 16),
        "unsupervised": lambda: unsupervised_metrics.unsupervised_metrics(data, rep_np, rs(), None, 10000, 16),
    }
    rows, totals = [], [0.0, 0.0]
    for metric, run_theirs in theirs.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            ours = dis.evaluate(data, rep, seed=args.seed, metrics=[metric])[metric]
            t1 = time.perf_counter()
            ref = run_theirs()
            t2 = time.perf_counter()
        totals[0] += t1 - t0
        totals[1] += t2 - t1
        for key, value in ref.items():
            rows.append((metric, key, ours[key], float(value)))
        print(f"{metric:<24} fastrepr {t1 - t0:8.2f} s   disentanglement_lib {t2 - t1:8.2f} s   "
              f"{(t2 - t1) / max(t1 - t0, 1e-9):6.1f}x", flush=True)
    print(f"{'total':<24} fastrepr {totals[0]:8.2f} s   disentanglement_lib {totals[1]:8.2f} s   "
          f"{totals[1] / totals[0]:6.1f}x")
    print(f"\n| metric | score | fastrepr | disentanglement_lib | abs diff |\n|---|---|---|---|---|")
    for metric, key, a, b in rows:
        print(f"| {metric} | {key} | {a:.6f} | {b:.6f} | {abs(a - b):.1e} |")


if __name__ == "__main__":
    main()
