"""The disentanglement suite from the command line, the demo and the benchmarks.

``fastrepr disentangle`` evaluates a representation of dSprites on every metric (or a subset) and prints a
table; ``--compare-reference`` also runs the plain numpy/scikit-learn implementation (``_dlib_reference``,
disentanglement_lib's algorithms) with the same seed and reports both times and the score differences
against the fidelity bar. Sample sizes: ``study`` (disentanglement_lib's study configuration), or ``small``
and ``tiny``, which divide every count by 10 and 100.
"""
from __future__ import annotations

import argparse
import sys
import time

import torch

from . import _dlib_reference, disentanglement, representations

SCALES = {"study": 1, "small": 10, "tiny": 100}
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


def compare(dataset, representation, metrics=None, *, seed: int = 0, cfg: dict | None = None,
            reference: bool = True, progress=None) -> dict:
    """Runs ours (and the reference) metric by metric, alternating; returns scores, times and totals."""
    names = list(disentanglement.METRICS) if metrics is None else list(metrics)
    result = {"ours": {}, "reference": {}, "time_ours": {}, "time_reference": {}}
    for name in names:
        if progress:
            progress(f"{name} (fastrepr)")
        t0 = time.perf_counter()
        result["ours"].update(disentanglement.evaluate(dataset, representation, [name], seed=seed, config=cfg))
        result["time_ours"][name] = time.perf_counter() - t0
        if reference:
            if progress:
                progress(f"{name} (reference)")
            t0 = time.perf_counter()
            try:
                result["reference"].update(_dlib_reference.evaluate(dataset, representation, [name], seed=seed,
                                                                    config=cfg))
            except Exception as exc:  # disentanglement_lib's code fails where ours has defined behaviour
                result["reference"][name] = {k: float("nan") for k in result["ours"][name]}
                result.setdefault("reference_errors", {})[name] = f"{type(exc).__name__}: {exc}"
            result["time_reference"][name] = time.perf_counter() - t0
    return result


def format_table(result: dict) -> str:
    ref = bool(result["reference"])
    header = ["metric", "score", "fastrepr"] + (["reference", "|diff|", "bar"] if ref else [])
    body = []
    for metric, scores in result["ours"].items():
        for key, value in scores.items():
            row = [metric, key, f"{value:.6g}"]
            if ref:
                r = result["reference"][metric][key]
                row += [f"{r:.6g}", f"{abs(value - r):.2e}", "ok" if within_bar(metric, value, r) else "MISS"]
            body.append(row)
    lines = _table(header, body)
    times = [["metric", "fastrepr s"] + (["reference s", "speed-up"] if ref else [])]
    for metric, t in result["time_ours"].items():
        row = [metric, f"{t:.2f}"]
        if ref:
            tr = result["time_reference"][metric]
            row += [f"{tr:.2f}", f"{tr / t:.1f}x"]
        times.append(row)
    total = sum(result["time_ours"].values())
    row = ["total", f"{total:.2f}"]
    if ref:
        total_ref = sum(result["time_reference"].values())
        row += [f"{total_ref:.2f}", f"{total_ref / total:.1f}x"]
    times.append(row)
    notes = "".join(f"\nreference failed on {m}: {e}" for m, e in result.get("reference_errors", {}).items())
    return lines + notes + "\n\n" + _table(times[0], times[1:])


def _table(header, body) -> str:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    return "\n".join([line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(b) for b in body])


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--representation", default="factors",
                   help="factors | rotated | noise | moments | module:function (a batched function of observations)")
    p.add_argument("--observations", choices=["auto", "factors", "images"], default="auto",
                   help="what the representation sees: the latent factors, or dSprites images (default: by representation)")
    p.add_argument("--metrics", help=f"comma-separated subset of {','.join(disentanglement.METRICS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=list(SCALES), default="study", help="sample sizes (study = disentanglement_lib's)")
    p.add_argument("--device", choices=["cpu", "cuda"], help="where images are rendered (default: cuda when available)")
    p.add_argument("--as-tensor", action="store_true", help="observations as torch tensors on the device (default: numpy)")
    p.add_argument("--npz", help="the original dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz, instead of rendering")
    p.add_argument("--compare-reference", action="store_true",
                   help="also run the plain numpy/scikit-learn implementation; print times and differences")


def main(args) -> int:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    metrics = args.metrics.split(",") if args.metrics else None
    unknown = [m for m in metrics or [] if m not in disentanglement.METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; available: {', '.join(disentanglement.METRICS)}")
    dataset, rep = setup(args.representation, args.observations, device=device, npz=args.npz,
                         as_tensor=args.as_tensor or device == "cuda")
    print(f"dSprites ({'npz' if args.npz else 'procedural'}), representation {args.representation}, "
          f"observations {type(dataset).__name__}, scale {args.scale}, seed {args.seed}, device {device}, "
          f"{torch.get_num_threads()} CPU threads")
    result = compare(dataset, rep, metrics, seed=args.seed, cfg=config(args.scale), reference=args.compare_reference,
                     progress=lambda s: print(f"  running {s} ...", file=sys.stderr, flush=True))
    print(format_table(result))
    return 0
