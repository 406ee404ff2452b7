"""A small version of Locatello et al.'s (ICML 2019) unsupervised study on procedural dSprites (issue 15).

Trains objectives x parameter x seeds with ``fastrepr.vae_training.train_vae``, scores every model's mean encoder
with every disentanglement metric and the downstream protocol, and writes, under --out:
  vae_study.csv                     one row per model: settings, training time, scores
  spearman_metrics.png              Spearman rank correlations between the metrics
  spearman_metrics_downstream.png   the metrics against downstream accuracy and efficiency
and with --append-results a table in benchmarks/RESULTS.md beside the study's published Noisy-dSprites numbers.

  python benchmarks/vae_study.py --tiny            # 4 models, a few minutes on 2 cores: checks the pipeline
  python benchmarks/vae_study.py                   # 24 models, about 40 minutes on 2 cores
  python benchmarks/vae_study.py --device cuda --arch conv --steps 20000   # larger, on a GPU

What a small sweep can say: the study ranks 10 800 models trained 300 000 steps each; rank correlations over a
few dozen short runs are dominated by which objective/β was trained, have wide confidence intervals (with 24
models a Spearman rho of 0.4 is barely distinguishable from 0), and are not a replication.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastrepr import _io  # noqa: E402
from fastrepr.data import DSprites  # noqa: E402
from fastrepr.evaluation import disentanglement, downstream, suite  # noqa: E402
from fastrepr.evaluation._sampling import CodeCache  # noqa: E402
from fastrepr.vae_training import train_vae  # noqa: E402

SWEEP = {"beta": (1.0, 2.0, 4.0, 8.0, 16.0), "tcvae": (1.0, 4.0, 8.0), "annealed": (5.0, 25.0), "dip": (1.0, 10.0)}
TINY = {"beta": (1.0, 8.0)}
METRICS = {"BetaVAE": ("beta_vae", "eval_accuracy"), "FactorVAE": ("factor_vae", "eval_accuracy"),
           "MIG": ("mig", "discrete_mig"), "DCI": ("dci", "disentanglement"),
           "Modularity": ("modularity_explicitness", "modularity_score"), "SAP": ("sap", "SAP_score")}
# Locatello et al. 2019, Fig. 2 (Noisy-dSprites rank correlations between metrics, in percent)
PUBLISHED = {("BetaVAE", "FactorVAE"): 80, ("MIG", "DCI"): 76, ("Modularity", "DCI"): -8}


def score(model, seed: int, scale: str, sizes, num_test: int) -> dict:
    data, cache = DSprites(), CodeCache()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = disentanglement.evaluate(data, model.representation, seed=seed, config=suite.config(scale),
                                     deterministic=True)
        d = downstream.downstream(data, model.representation, seed=seed, code_cache=cache, sizes=sizes,
                                  num_test=num_test)
    row = {name: s[m][k] for name, (m, k) in METRICS.items()}
    for p in downstream.PREDICTORS:
        for n in sizes:
            row[f"{p.upper()}{n}"] = d[f"{p}{n}:mean_test_accuracy"]
        small, large = sizes[1], sizes[-1]
        row[f"{p.upper()} efficiency"] = d[f"{p}{small}:mean_test_accuracy"] / d[f"{p}{large}:mean_test_accuracy"]
    return row


def spearman(rows, a_names, b_names) -> np.ndarray:
    from scipy.stats import spearmanr

    out = np.full((len(a_names), len(b_names)), np.nan)
    for i, a in enumerate(a_names):
        for j, b in enumerate(b_names):
            x, y = np.array([r[a] for r in rows], float), np.array([r[b] for r in rows], float)
            ok = np.isfinite(x) & np.isfinite(y)
            if ok.sum() >= 3 and np.ptp(x[ok]) > 0 and np.ptp(y[ok]) > 0:
                out[i, j] = spearmanr(x[ok], y[ok])[0]
    return out


def heatmap(matrix, rows, cols, title, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.0 + 0.8 * len(cols), 1.0 + 0.6 * len(rows)))
    ax.imshow(np.nan_to_num(matrix), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(cols)), cols, rotation=60, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, "nan" if np.isnan(matrix[i, j]) else f"{100 * matrix[i, j]:.0f}", ha="center",
                    va="center", fontsize=7)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with _io.atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)


def results_table(rows, corr, names, args, seconds) -> str:
    import platform
    import subprocess

    try:
        cpu = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (StopIteration, OSError):
        cpu = platform.processor() or "unknown CPU"
    lines = [f"\n### VAE study ({'--tiny' if args.tiny else 'small sweep'}): {len(rows)} models, {args.arch} "
             f"{args.steps} steps, {seconds / 60:.1f} min on {torch.get_num_threads()} threads of {cpu}\n",
             "| metric pair | this sweep (Spearman, %) | Locatello et al. 2019, Noisy-dSprites (%) |",
             "|---|---|---|"]
    for (a, b), pub in PUBLISHED.items():
        v = corr[names.index(a), names.index(b)]
        lines.append(f"| {a} – {b} | {'n/a' if np.isnan(v) else f'{100 * v:.0f}'} | {pub} |")
    lines.append(f"\n{len(rows)} short runs of {', '.join(sorted({r['objective'] for r in rows}))}, "
                 f"{len({r['seed'] for r in rows})} seed(s): the correlations mostly reflect which parameter was "
                 "trained, their uncertainty is large at this size (n < 30), and the study's are over 10 800 models "
                 "trained 300 000 steps on Noisy-dSprites. Agreement or disagreement here is not a replication.\n")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tiny", action="store_true", help="4 models, small sizes: a check of the pipeline")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--steps", type=int)
    p.add_argument("--arch", choices=["mlp", "conv"], default="mlp")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "vae_study"))
    p.add_argument("--append-results", action="store_true", help="append the table to benchmarks/RESULTS.md")
    args = p.parse_args(argv)
    args.steps = args.steps or (300 if args.tiny else 1500)
    scale, sizes, num_test = ("tiny", (10, 100, 1000), 500) if args.tiny else ("small", downstream.SIZES, 5000)
    out = _io.check_writable(args.out, "--out", directory=True)
    sweep = TINY if args.tiny else SWEEP
    rows, t0 = [], time.perf_counter()
    for objective, params in sweep.items():
        for param in params:
            for seed in range(args.seeds):
                r = train_vae(objective, param, args.steps, seed, lr=args.lr, arch=args.arch,
                              hidden=(args.hidden, args.hidden), device=args.device)
                row = dict(objective=objective, param=param, seed=seed, steps=r.steps, train_s=round(r.seconds, 1),
                           loss=round(r.losses[-1], 2))
                row.update(score(r.model, seed, scale, sizes, num_test))
                rows.append(row)
                print(f"{objective} {param:g} seed {seed}: " + ", ".join(
                    f"{k} {v:.3f}" for k, v in row.items() if isinstance(v, float) and k not in ("param",)),
                    flush=True)
    seconds = time.perf_counter() - t0
    with _io.atomic_write(out / "vae_study.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    names = list(METRICS)
    down = [k for k in rows[0] if k.startswith(("LR", "GBT"))]
    corr = spearman(rows, names, names)
    heatmap(corr, names, names, "Spearman rank correlation between metrics (%)", out / "spearman_metrics.png")
    heatmap(spearman(rows, names, down), names, down, "Spearman: metrics vs downstream accuracy / efficiency (%)",
            out / "spearman_metrics_downstream.png")
    table = results_table(rows, corr, names, args, seconds)
    print(table)
    if args.append_results:
        with _io.atomic_write(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(table)
    print(f"wrote {out / 'vae_study.csv'} and two heatmaps in {out} ({seconds / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
