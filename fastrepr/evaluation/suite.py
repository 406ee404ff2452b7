"""The disentanglement suite: every metric (or a subset) of a representation of dSprites, optionally beside
the plain numpy/scikit-learn implementation of disentanglement_lib's algorithms (``evaluate_reference``) with
the same seed, with both times and the fidelity bar of each score. ``fastrepr disentangle`` (fastrepr/cli)
prints what ``compare`` returns. Sample sizes: ``study`` (disentanglement_lib's study configuration), or
``small`` and ``tiny``, which divide every count by 10 and 100.
"""
from __future__ import annotations

import time
import warnings

import torch

from . import _dlib_reference, disentanglement, representations
from ._sampling import CodeCache

SCALES = {"study": 1, "small": 10, "tiny": 100}
DETERMINISTIC = ("factors", "rotated", "moments")  # built-in representations that are functions of the input
# The fidelity bar, per key: absolute tolerance, or relative (unsupervised scores).
BAR_ABS = {"beta_vae": 0.02, "factor_vae": 0.02, "mig": 0.02, "sap": 0.02, "dci": 0.02,
           "modularity_explicitness": 0.01}
BAR_REL = {"unsupervised": 0.05}


def config(scale: str | int) -> dict:
    """Per-metric keyword arguments: the study's sample sizes divided by the scale's factor."""
    div = SCALES[scale] if isinstance(scale, str) else int(scale)
    out = {}
    for metric, defaults in disentanglement.DEFAULTS.items():
        out[metric] = {k: max(2, v // div) if k.startswith("num_") else v
                       for k, v in defaults.items() if k.startswith("num_") and k != "num_bins"}
    return out


def setup(representation: str, observations: str = "auto", *, device: str = "cpu", npz: str | None = None,
          as_tensor: bool = False):
    """(dataset, representation function) for a representation name or module:function path.

    observations: "factors" (FactorObservations over dSprites: no rendering), "images" (dSprites images),
    or "auto" (factors for factors/rotated/noise, images otherwise).
    """
    from ..data import DSprites, FactorObservations

    if observations == "auto":
        observations = "factors" if representation in ("factors", "rotated", "noise") else "images"
    base = (DSprites.from_npz(npz, device=device, as_tensor=as_tensor) if npz
            else DSprites(device=device, as_tensor=as_tensor))
    dataset = FactorObservations(base, as_tensor=as_tensor, device=device) if observations == "factors" else base
    return dataset, representations.load(representation, dataset)


def within_bar(metric: str, ours: float, ref: float) -> bool:
    if metric in BAR_REL:
        return abs(ours - ref) <= BAR_REL[metric] * max(abs(ref), 1e-12)
    return abs(ours - ref) <= BAR_ABS[metric]


def metric_names(metrics=None) -> list:
    """The metrics to run (all when None); ValueError naming the unknown ones."""
    names = list(disentanglement.METRICS) if metrics is None else list(metrics)
    unknown = [m for m in names if m not in disentanglement.METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; available: {', '.join(disentanglement.METRICS)}")
    return names


def evaluate_reference(dataset, representation, metrics=None, *, seed: int = 0, config: dict | None = None) -> dict:
    """disentanglement_lib's algorithms in plain numpy/scikit-learn (the fidelity oracle of
    ``disentanglement.evaluate``): {metric: {score: value}}, same arguments, same seeds."""
    return _dlib_reference.evaluate(dataset, representation, metrics, seed=seed, config=config)


def compare(dataset, representation, metrics=None, *, seed: int = 0, cfg: dict | None = None,
            reference: bool = True, deterministic: bool = False, progress=None) -> dict:
    """Runs ours (and the reference) metric by metric, alternating; returns scores, times and totals.
    deterministic: ours encodes each distinct image once across its metrics (see ``evaluate``)."""
    names = metric_names(metrics)
    cfg = cfg or {}
    cache = CodeCache() if deterministic else None
    result = {"ours": {}, "reference": {}, "time_ours": {}, "time_reference": {}}
    for name in names:
        if progress:
            progress(f"{name} (fastrepr)")
        t0 = time.perf_counter()
        result["ours"][name] = disentanglement.METRICS[name](dataset, representation, seed=seed, code_cache=cache,
                                                             **cfg.get(name, {}))
        result["time_ours"][name] = time.perf_counter() - t0
        if reference:
            if progress:
                progress(f"{name} (reference)")
            t0 = time.perf_counter()
            try:
                with warnings.catch_warnings():  # its scikit-learn convergence chatter
                    warnings.simplefilter("ignore")
                    result["reference"].update(evaluate_reference(dataset, representation, [name], seed=seed,
                                                                  config=cfg))
            except Exception as exc:  # disentanglement_lib's code fails where ours has defined behaviour
                result["reference"][name] = {k: float("nan") for k in result["ours"][name]}
                result.setdefault("reference_errors", {})[name] = f"{type(exc).__name__}: {exc}"
            result["time_reference"][name] = time.perf_counter() - t0
    return result
