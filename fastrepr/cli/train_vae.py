"""``fastrepr train-vae``: train a β-VAE-family model on procedural dSprites, checkpoint it, reload it from the
checkpoint (weights_only) and score the reloaded model's mean encoder with the disentanglement metrics."""
from __future__ import annotations

import json
import sys
import warnings

import torch

from .args import device_flag, nonnegative_int, positive_float, positive_int

HELP = "train a beta-VAE / beta-TCVAE / AnnealedVAE / DIP-VAE on procedural dSprites and score it"


def _parameter(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def add_arguments(p) -> None:
    from ..evaluation.suite import SCALES
    from ..vae_training import OBJECTIVES

    p.add_argument("--objective", choices=OBJECTIVES, default="beta",
                   help="beta (Higgins et al.), tcvae (Chen et al.), annealed (Burgess et al.), dip = dip-i, dip-ii")
    p.add_argument("--beta", type=_parameter, default=4.0,
                   help="the objective's parameter: beta (beta, tcvae), C_max (annealed), lambda_od (dip)")
    p.add_argument("--steps", type=positive_int, default=1000)
    p.add_argument("--seed", type=nonnegative_int, default=0)
    p.add_argument("--out", required=True, help="directory for model.pt, config.json, scores.json and the PNGs")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--lr", type=positive_float, default=1e-4, help="Adam learning rate (the study's: 1e-4)")
    p.add_argument("--arch", choices=["conv", "mlp"], default="conv",
                   help="conv: the study's encoder/decoder; mlp: fully connected, for quick runs")
    p.add_argument("--hidden", type=positive_int, default=1200, help="mlp width (disentanglement_lib: 1200)")
    p.add_argument("--latent-dim", type=positive_int, default=10)
    p.add_argument("--time-limit", type=positive_float, help="stop training after this many seconds")
    p.add_argument("--scale", choices=list(SCALES) + ["none"], default="tiny",
                   help="metric sample sizes for scoring (study: disentanglement_lib's; none: skip)")
    p.add_argument("--device", choices=["cpu", "cuda"], type=device_flag, default="cpu")
    p.add_argument("--threads", type=positive_int, help="CPU threads for torch (default: torch's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args) -> int:
    from .._io import atomic_write, check_writable
    from ..data import DSprites
    from ..evaluation import disentanglement, suite
    from ..vae_training import load_vae, train_vae

    if args.objective == "tcvae" and args.batch_size < 2:
        raise ValueError("--batch-size: tcvae needs batches of at least 2 (its total correlation is over pairs)")
    out = check_writable(args.out, "--out", directory=True)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = train_vae(args.objective, args.beta, args.steps, args.seed, args.batch_size, args.lr, out,
                       arch=args.arch, latent_dim=args.latent_dim, hidden=(args.hidden, args.hidden),
                       device=args.device, progress=not args.no_progress, time_limit=args.time_limit)
    print(f"{args.objective} {args.beta:g}: {result.steps} steps in {result.seconds:.1f} s, final loss "
          f"{result.losses[-1]:.1f}; wrote {', '.join(str(p) for p in result.paths.values())}")
    if args.scale == "none":
        return 0
    model = load_vae(out)  # from the checkpoint just written (weights_only=True), not the in-memory model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scores = disentanglement.evaluate(DSprites(), model.representation, seed=args.seed,
                                          config=suite.config(args.scale), deterministic=True)
    with atomic_write(out / "scores.json", "w") as f:
        json.dump(scores, f, indent=1, sort_keys=True)
    print(f"scores of the reloaded model (scale {args.scale}):")
    for metric, values in scores.items():
        print("  " + metric + ": " + ", ".join(f"{k} {v:.3f}" for k, v in values.items()))
    print(f"wrote {out / 'scores.json'}", file=sys.stderr)
    return 0
