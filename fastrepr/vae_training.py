"""Train β-VAE-family models on procedural dSprites (issue 15), as disentanglement_lib's unsupervised study
does, at whatever length a machine allows.

``train_vae(objective, beta, steps, seed, ...)`` streams batches rendered on the fly
(``fastrepr.data.DSprites.render``: uniform image indices from ``np.random.RandomState(seed)``, uint8 0/1 images
that the fused loss reads without a float copy), optimizes ``fastrepr.beta_vae_loss`` with Adam (the study's
β1 0.9, β2 0.999, ε 1e-8; its lr is 1e-4 and batch 64 for 300 000 steps) and, with ``out``, writes:

  model.pt          torch.save of the model's state dict only (tensors; loaded with weights_only=True)
  config.json       what it takes to rebuild the model and repeat the run (objective, parameter, arch, seed, ...)
  traversal.png     latent traversals of one image's mean code (Higgins et al. 2017, Fig. 1), one row per latent
  reconstruction.png  eight images (top row) and their reconstructions from the mean code (bottom row)
all written atomically. ``load_vae(out)`` rebuilds the model; ``model.representation`` is the mean encoder that
``fastrepr.evaluation.disentanglement.evaluate(..., deterministic=True)`` takes.

The objective's parameter (``beta``) means what the study sweeps: β for "beta" and "tcvae", the final capacity
C_max for "annealed" (γ = 1000, C raised linearly over ``anneal_steps``, the study's 100 000 or the run's length
when shorter), λ_od for "dip" / "dip-i" (λ_d = 10 λ_od) and "dip-ii" (λ_d = λ_od).
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import _checks, _io
from ._progress import Progress
from .functional_vae import beta_vae_loss
from .models import ARCHS, VAE

OBJECTIVES = ("beta", "tcvae", "annealed", "dip", "dip-i", "dip-ii")
STUDY_ANNEAL_STEPS = 100_000
CHECKPOINT, CONFIG = "model.pt", "config.json"


@dataclass
class TrainResult:
    model: VAE
    config: dict
    steps: int                      # steps run (fewer than asked when time_limit stopped it)
    seconds: float
    losses: list = field(default_factory=list)   # mean loss of every log_every steps
    paths: dict = field(default_factory=dict)    # name -> Path of the files written


def _loss_kwargs(objective: str, param: float, step: int, anneal_steps: int) -> dict:
    if objective in ("beta", "tcvae"):
        return dict(objective=objective, beta=param)
    if objective == "annealed":
        return dict(objective="annealed", capacity=min(param, param * step / anneal_steps), gamma=1000.0)
    return dict(objective="dip-i" if objective == "dip" else objective, beta=1.0, lambda_od=param)


def _check_args(objective, beta, steps, seed, batch_size, lr, arch, time_limit):
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
    beta = _checks.float_arg(beta, "beta")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    steps = _checks.int_arg(steps, "steps", 1, 10**8)
    seed = _checks.int_arg(seed, "seed", 0, 2**32 - 1)
    batch_size = _checks.int_arg(batch_size, "batch_size", 2 if objective == "tcvae" else 1, 1 << 16)
    lr = _checks.float_arg(lr, "lr", positive=True)
    if time_limit is not None:
        time_limit = _checks.float_arg(time_limit, "time_limit", positive=True)
    return beta, steps, seed, batch_size, lr, time_limit


def train_vae(objective: str = "beta", beta: float = 4.0, steps: int = 1000, seed: int = 0, batch_size: int = 64,
              lr: float = 1e-4, out=None, *, arch: str = "conv", latent_dim: int = 10, hidden=(1200, 1200),
              device=None, progress: bool = False, time_limit: float | None = None,
              anneal_steps: int | None = None, log_every: int = 50, dataset=None, threads: int | None = None
              ) -> TrainResult:
    """Train a ``VAE`` on procedural dSprites with one β-VAE-family objective (module docstring).

    seed seeds the weights (torch.manual_seed), the batches (np.random.RandomState(seed)) and the
    reparameterization noise: the same arguments on the same machine give the same model. time_limit (seconds)
    stops early, after the step that crosses it. out: a directory (created) for the checkpoint, config and PNGs;
    checked before training. Memory: the model, Adam's two moments, one batch of activations.
    Raises ValueError/TypeError naming the argument for a bad objective, parameter, size or path.
    """
    beta, steps, seed, batch_size, lr, time_limit = _check_args(objective, beta, steps, seed, batch_size, lr, arch,
                                                                time_limit)
    anneal_steps = _checks.int_arg(anneal_steps, "anneal_steps", 1) if anneal_steps is not None else min(
        STUDY_ANNEAL_STEPS, steps)
    log_every = _checks.int_arg(log_every, "log_every", 1)
    if out is not None:
        out = _io.check_writable(out, "out", directory=True)
    from .data import DSprites

    data = dataset if dataset is not None else DSprites()
    total_images = int(np.prod(data.full_factor_sizes))
    device = torch.device(device or "cpu")
    if threads:
        torch.set_num_threads(_checks.int_arg(threads, "threads", 1, 1024))
    torch.manual_seed(seed)
    model = VAE(latent_dim, arch, hidden).to(device)
    config = dict(objective=objective, beta=beta, steps=steps, seed=seed, batch_size=batch_size, lr=lr, arch=arch,
                  latent_dim=model.latent_dim, hidden=list(hidden) if not isinstance(hidden, int) else hidden,
                  anneal_steps=anneal_steps)
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.999), eps=1e-8)
    rs = np.random.RandomState(seed)
    losses, run_sum, run_n, done, total_sum, total_n = [], 0.0, 0, 0, 0.0, 0
    t0 = time.perf_counter()
    with Progress(steps, enabled=progress, unit="step", desc=f"{objective} {beta:g}") as bar:
        for step in range(steps):
            x = data.render(rs.randint(total_images, size=batch_size), torch.uint8, device).unsqueeze(1)
            logits, mu, logvar, z = model(x)
            loss = beta_vae_loss(logits, x, mu, logvar, z=z if objective == "tcvae" else None,
                                 **_loss_kwargs(objective, beta, step, anneal_steps))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach())
            if not math.isfinite(value):
                raise RuntimeError(f"training diverged at step {step + 1} (loss {value}); lower lr")
            run_sum, run_n, done = run_sum + value, run_n + 1, step + 1
            total_sum, total_n = total_sum + value, total_n + 1
            bar.to(done, total_sum, total_n)
            if run_n == log_every:
                losses.append(run_sum / run_n)
                run_sum, run_n = 0.0, 0
            if time_limit is not None and time.perf_counter() - t0 >= time_limit:
                break
    if run_n:
        losses.append(run_sum / run_n)
    seconds = time.perf_counter() - t0
    config["steps_run"] = done
    model.eval()
    result = TrainResult(model, config, done, seconds, losses)
    if out is not None:
        result.paths = save(model, config, out)
        result.paths.update(write_pngs(model, out, seed=seed, dataset=data))
    return result


def save(model: VAE, config: dict, out) -> dict:
    """Write model.pt (the state dict only) and config.json into ``out``, atomically."""
    out = Path(out)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with _io.atomic_write(out / CHECKPOINT, "wb") as f:
        torch.save(state, f)
    with _io.atomic_write(out / CONFIG, "w") as f:
        json.dump(config, f, indent=1, sort_keys=True)
    return {"checkpoint": out / CHECKPOINT, "config": out / CONFIG}


def load_vae(path, device=None) -> VAE:
    """The model ``train_vae(out=path)`` saved: ``path`` is its directory (or its model.pt, beside config.json).
    The weights are read with ``torch.load(weights_only=True)`` (tensors only: nothing is unpickled).
    Raises FileNotFoundError for a missing file and ValueError for a config or checkpoint that does not fit."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    ckpt = path if not path.is_dir() else directory / CHECKPOINT
    with open(directory / CONFIG, encoding="utf-8") as f:
        try:
            config = json.load(f)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{directory / CONFIG}: not JSON ({exc})") from None
    try:
        hidden = config.get("hidden", (1200, 1200))
        model = VAE(int(config["latent_dim"]), config["arch"], hidden)
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{directory / CONFIG}: missing or bad entry {exc}") from None
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch's unpickler raises several types for a damaged or foreign file
        if isinstance(exc, OSError):
            raise
        raise ValueError(f"{ckpt}: not a fastrepr VAE checkpoint ({type(exc).__name__}: {str(exc).splitlines()[0]})"
                         ) from None
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError, AttributeError) as exc:
        raise ValueError(f"{ckpt}: does not match {directory / CONFIG} ({str(exc).splitlines()[0]})") from None
    return model.to(device or "cpu").eval()


def mean_representation(model: VAE):
    """The mean encoder as a batched function observations -> [N, D] codes (disentanglement_lib's ``mean``
    representation), for ``disentanglement.evaluate(data, fn, deterministic=True)`` and the downstream probes."""
    return model.representation


def _pixels(model: VAE):
    def decode(z):
        p = next(model.parameters())
        return torch.sigmoid(model.decode(z.to(device=p.device, dtype=p.dtype))).cpu()
    return decode


def write_pngs(model: VAE, out, *, seed: int = 0, dataset=None, span: float = 2.0, steps: int = 7) -> dict:
    """traversal.png (every latent of one image's mean code from -span to span, the others fixed) and
    reconstruction.png (8 images over their mean-code reconstructions), through the interpolation grids."""
    from .data import DSprites
    from .evaluation.interpolation import image_grid, latent_traversal_grid

    data = dataset if dataset is not None else DSprites()
    rs = np.random.RandomState(seed + 1)
    x = data.render(rs.randint(int(np.prod(data.full_factor_sizes)), size=8), torch.float32).unsqueeze(1)
    model.eval()
    with torch.no_grad():
        mu = model.encode(x)[0]
        recon = _pixels(model)(mu)
    out = Path(out)
    latent_traversal_grid(_pixels(model), mu[0].cpu(), list(range(model.latent_dim)), span, out / "traversal.png",
                          steps)
    image_grid(torch.stack([x, recon]), out / "reconstruction.png")
    return {"traversal": out / "traversal.png", "reconstruction": out / "reconstruction.png"}
