"""Does a short run on 2 CPU cores separate β = 1 from β = 8? (issue 15's bar) Several seeds of each.

Trains ``train_vae("beta", β, --steps, seed, arch="mlp", hidden=(256, 256), lr=1e-3)`` for β in {1, 8} and each
seed, scores every mean encoder with all six metrics (``disentanglement.evaluate``, config "small", deterministic),
prints one JSON line per model and, per metric, the mean ± sd of each β and whether the two sets of seeds overlap,
with the exact one-sided Mann-Whitney p-value of a complete separation.

    flock /tmp/fastrepr-bench.lock .venv/bin/python benchmarks/vae_beta_separation.py [--seeds 5] [--steps 1500]
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fastrepr.data import DSprites  # noqa: E402
from fastrepr.evaluation import disentanglement, suite  # noqa: E402
from fastrepr.vae_training import train_vae  # noqa: E402
from vae_study import METRICS  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--scale", default="small", help="suite.config scale of the metrics' sample sizes")
    a = p.parse_args(argv)
    rows = []
    for seed in range(a.seeds):
        for beta in (1.0, 8.0):
            t0 = time.perf_counter()
            r = train_vae("beta", beta, a.steps, seed, lr=1e-3, arch="mlp", hidden=(256, 256))
            t1 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                s = disentanglement.evaluate(DSprites(), r.model.representation, seed=seed,
                                             config=suite.config(a.scale), deterministic=True)
            row = dict(beta=beta, seed=seed, train_s=round(t1 - t0, 1), score_s=round(time.perf_counter() - t1, 1),
                       loss=round(r.losses[-1], 2))
            row.update({k: s[m][key] for k, (m, key) in METRICS.items()})
            rows.append(row)
            print(json.dumps(row), flush=True)
    p_sep = 1.0 / math.comb(2 * a.seeds, a.seeds)
    print(f"\n| metric | β = 1, mean ± sd | β = 8, mean ± sd | seeds overlap? |\n|---|---|---|---|")
    for k in METRICS:
        one = [r[k] for r in rows if r["beta"] == 1.0]
        eight = [r[k] for r in rows if r["beta"] == 8.0]
        sep = ("no: every β = 1 above every β = 8" if min(one) > max(eight) else
               "no: every β = 8 above every β = 1" if min(eight) > max(one) else "yes")
        sd = (lambda v: statistics.stdev(v) if len(v) > 1 else 0.0)
        print(f"| {k} | {statistics.mean(one):.3f} ± {sd(one):.3f} | {statistics.mean(eight):.3f} ± {sd(eight):.3f} "
              f"| {sep} |")
    print(f"\n(a complete separation of {a.seeds} seeds against {a.seeds}: one-sided Mann-Whitney p = {p_sep:.4f})")


if __name__ == "__main__":
    main()
