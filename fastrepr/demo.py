"""`fastrepr demo`: the package's main job in a few minutes on a CPU, one section per capability.

Each section is a function that prints its part of the report; later capabilities add sections to SECTIONS.
"""
from __future__ import annotations

import time

import torch

from . import bench
from .functional import pairwise_abs_diff_mean


def _rule(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


def pairwise_differences(seed: int = 0, factors: int = 5, points: int = 200, pairs: int = 64) -> dict:
    """BetaVAE-style probe on synthetic codes: one latent per factor vs a random rotation of the same codes.

    For each factor k, draw `points` x `pairs` pairs of factor vectors that share factor k and average |z1 - z2|
    over the pairs. A code with one latent per factor shows a zero in latent k; a rotated code spreads the fixed
    factor over every latent, so no latent singles it out.
    """
    _rule("pairwise latent differences (BetaVAE core): identity vs rotated codes")
    g = torch.Generator().manual_seed(seed)
    rotation, _ = torch.linalg.qr(torch.randn(factors, factors, generator=g, dtype=torch.float64))
    codes = {"identity": torch.eye(factors, dtype=torch.float64), "rotated": rotation}
    result = {}
    for name, enc in codes.items():
        enc = enc.float()
        profile, hits = [], 0
        for k in range(factors):
            f1 = torch.rand(points, pairs, factors, generator=g)
            f2 = torch.rand(points, pairs, factors, generator=g)
            f2[..., k] = f1[..., k]
            z1, z2 = f1 @ enc, f2 @ enc
            d = pairwise_abs_diff_mean(z1, z2)  # [points, latents]
            # the index form over a pool of codes gives the same numbers without building [P, B, D]
            pool = torch.cat([z1.reshape(-1, factors), z2.reshape(-1, factors)])
            i = torch.arange(points * pairs).view(points, pairs)
            assert torch.allclose(pairwise_abs_diff_mean(pool, i=i, j=i + points * pairs), d)
            profile.append(d.mean(0))
            hits += int((d.argmin(1) == k).sum())
        result[name] = (torch.stack(profile), hits / (points * factors))
    print(f"mean |z1 - z2| over {points} points x {pairs} pairs; row = fixed factor, column = latent")
    for name, (prof, acc) in result.items():
        print(f"\n  {name} code (the smallest entry of each row is marked *)")
        print("    factor | " + " ".join(f"  z{d}  " for d in range(factors)))
        for k in range(factors):
            m = int(prof[k].argmin())
            cells = " ".join(f"{v:.3f}{'*' if d == m else ' '}" for d, v in enumerate(prof[k].tolist()))
            print(f"    {k:>6} | {cells}")
        print(f"    argmin latent == fixed factor for {100 * acc:.1f}% of points (chance {100 / factors:.0f}%)")
    return {name: acc for name, (_, acc) in result.items()}


def benchmark_table(budget_s: float = 0.3) -> list:
    _rule("benchmark (this machine, ours vs the plain-PyTorch expression, same run)")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    small = {"cpu": {"pairwise_abs_diff_mean": ["100000x10000x64x10"], "pairwise_abs_diff_mean_dense": ["10000x64x10"]},
             "cuda": {"pairwise_abs_diff_mean": ["1000000x100000x64x16"], "pairwise_abs_diff_mean_dense": ["100000x64x16"]}}
    rows = []
    for op, sizes in small[device].items():
        rows += bench.run([op], sizes, device=device, budget_s=budget_s)
    print(bench.format_table(rows))
    print("(full sweep: `fastrepr bench`; results in benchmarks/results, plots in benchmarks/plots)")
    return rows


# Reduced sample sizes for the demo (the study's are 10000 / 5000; `fastrepr disentangle` runs those).
DEMO_SIZES = {"beta_vae": dict(num_train=500, num_eval=250), "factor_vae": dict(num_train=500, num_eval=250,
              num_variance_estimate=2000), "mig": dict(num_train=2000), "dci": dict(num_train=1000, num_test=500),
              "sap": dict(num_train=2000, num_test=1000), "modularity_explicitness": dict(num_train=2000, num_test=1000),
              "unsupervised": dict(num_train=2000)}


def disentanglement(seed: int = 0, sizes: dict | None = None) -> dict:
    """The metrics of Locatello et al. 2019 on dSprites for three representations of its factors: the factors
    themselves, a random rotation of them (same information, entangled), and noise. Then DCI's gradient
    boosting against scikit-learn's on one factor: same importances, time of each."""
    import warnings

    import numpy as np

    from .data import DSprites, FactorObservations
    from .evaluation import boosting
    from .evaluation import disentanglement as dis
    from .evaluation import representations as reps

    sizes = sizes or DEMO_SIZES
    _rule("disentanglement metrics on dSprites: factors vs a rotation of them vs noise")
    data = FactorObservations(DSprites())
    representations = {"factors": reps.factors, "rotated": reps.rotated_factors(data.factors_num_values, seed),
                       "noise": reps.noise(5, seed)}
    scores, seconds = {}, {}
    for name, rep in representations.items():
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores[name] = dis.evaluate(data, rep, seed=seed, config=sizes)
        seconds[name] = time.perf_counter() - t0
    print(f"reduced sample sizes for the demo (MIG {sizes['mig']['num_train']} points, DCI "
          f"{sizes['dci']['num_train']}/{sizes['dci']['num_test']}, BetaVAE {sizes['beta_vae']['num_train']} points; "
          "the study uses 10000/5000: `fastrepr disentangle`)")
    print(f"    {'metric':<24} {'score':<38} " + " ".join(f"{n:>9}" for n in representations))
    for metric, keys in dis.KEYS.items():
        for key in keys:
            print(f"    {metric:<24} {key:<38} " + " ".join(f"{scores[n][metric][key]:9.3f}" for n in representations))
    print(f"    {'seconds':<63} " + " ".join(f"{seconds[n]:9.1f}" for n in representations))
    print("  The rotation keeps all the information (explicitness: a linear probe on all codes does as well), but")
    print("  every code mixes every factor, so MIG, SAP, DCI disentanglement and modularity fall. Which of the two")
    print("  a model learns is not identifiable without supervision (Locatello et al. 2019, Theorem 1).")

    from sklearn.ensemble import GradientBoostingClassifier

    rs = np.random.RandomState(seed)
    factors = data.sample_factors(1000, rs)
    codes = np.asarray(representations["rotated"](factors.astype(np.float32)))
    t0 = time.perf_counter()
    ours = boosting.fit_predict(codes, factors[:, 0], random_state=seed)
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    sk = GradientBoostingClassifier(random_state=seed).fit(codes, factors[:, 0])
    t_sk = time.perf_counter() - t0
    diff = float(np.abs(ours.importances[0] - sk.feature_importances_).max())
    print(f"  DCI's boosted trees, factor 'shape' (3 classes, 1000 points, 300 trees): fastrepr {t_ours:.2f} s, "
          f"scikit-learn {t_sk:.2f} s; importances differ by at most {diff:.1e}")
    return {"scores": scores, "importance_diff": diff}


SECTIONS = [pairwise_differences, disentanglement, benchmark_table]


def run() -> None:
    t0 = time.perf_counter()
    print("fastrepr demo: fused kernels for learning and evaluating representations")
    for section in SECTIONS:
        section()
    print(f"\ndemo finished in {time.perf_counter() - t0:.1f} s")
