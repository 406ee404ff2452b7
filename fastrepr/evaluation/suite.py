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
    from ..cli import device_flag, input_file, positive_int

    p.add_argument("--representation", default="factors",
                   help="factors | rotated | noise | moments | module:function (batched function of observations)")
    p.add_argument("--observations", choices=["auto", "factors", "images"], default="auto",
                   help="what the representation sees: the latent factors, or dSprites images (default: by name)")
    p.add_argument("--metrics", help=f"comma-separated subset of {','.join(disentanglement.METRICS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=list(SCALES), default="study", help="sample sizes (study: disentanglement_lib's)")
    p.add_argument("--device", choices=["cpu", "cuda"], type=device_flag,
                   help="where images are rendered (default: cuda if available)")
    p.add_argument("--as-tensor", action="store_true", help="observations as torch tensors on the device (else numpy)")
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads for torch and the native kernels (default: torch's)")
    p.add_argument("--npz", type=input_file,
                   help="the original dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz, instead of rendering")
    p.add_argument("--deterministic", action="store_true",
                   help="the representation is a function of the image: encode each distinct image once (automatic for "
                        "factors, rotated and moments)")
    p.add_argument("--compare-reference", action="store_true",
                   help="also run the plain numpy/scikit-learn implementation; print times and differences")
    p.add_argument("--save", action="store_true",
                   help="with --compare-reference: append the times to --results-dir/<device>.csv")
    p.add_argument("--results-dir", default="benchmarks/results", help="where --save appends (default: %(default)s)")


def main(args) -> int:
    """``fastrepr disentangle``: flag values are checked by the parser (``add_arguments``); metric and
    representation names, the npz file and the results directory before any metric runs."""
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.save:
        if not args.compare_reference:
            raise ValueError("--save records the comparison's times: add --compare-reference")
        from .._io import check_writable

        check_writable(args.results_dir, "--results-dir", directory=True)
    if args.threads:  # torch, the native kernels and numpy's BLAS, for both sides
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(args.threads)
        limits = threadpool_limits(limits=args.threads)  # noqa: F841 (kept alive for the whole run)
    try:
        metrics = metric_names(args.metrics.split(",")) if args.metrics else None
    except ValueError as exc:
        raise ValueError(f"--metrics: {exc}") from None
    deterministic = args.deterministic or args.representation in DETERMINISTIC
    from .._io import FormatError

    try:
        dataset, rep = setup(args.representation, args.observations, device=device, npz=args.npz,
                             as_tensor=args.as_tensor or device == "cuda")
    except FormatError:  # the npz: names the file already
        raise
    except (ValueError, ImportError, AttributeError) as exc:  # a name that is not a representation
        raise ValueError(f"--representation {args.representation}: {exc}") from None
    print(f"dSprites ({'npz' if args.npz else 'procedural'}), representation {args.representation}"
          f"{' (deterministic: each image encoded once)' if deterministic else ''}, observations "
          f"{type(dataset).__name__}, scale {args.scale}, seed {args.seed}, device {device}, "
          f"{torch.get_num_threads()} CPU threads")
    if args.compare_reference:  # pay imports and first calls (sklearn, torch.library) before timing either side
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compare(dataset, rep, metrics, seed=args.seed, cfg=config("tiny"), deterministic=deterministic)
    result = compare(dataset, rep, metrics, seed=args.seed, cfg=config(args.scale), reference=args.compare_reference,
                     deterministic=deterministic,
                     progress=lambda s: print(f"  running {s} ...", file=sys.stderr, flush=True))
    print(format_table(result))
    if args.save and args.compare_reference:
        print(f"appended rows to {save_rows(result, args.scale, device, args.results_dir)}")
    return 0


# ----------------------------------------------------------------------------------------- benchmarks

def bench_entry(Bench):
    """The whole suite as a ``fastrepr bench`` entry: dSprites images, the 10-dim ``moments`` representation,
    every metric with N points (N/2 for tests). No default sizes (the reference takes minutes): run it as
    ``fastrepr bench --op disentanglement_suite --sizes 2000``; the study sizes, metric by metric, are
    ``fastrepr disentangle --representation moments --compare-reference``."""
    def make_inputs(size, device, dtype):
        (n,) = size
        device = torch.device(device)
        data, rep = setup("moments", "images", device=str(device), as_tensor=device.type == "cuda")
        cfg = {m: {k: (n if k in ("num_train", "num_variance_estimate") else n // 2) for k in kw}
               for m, kw in config("study").items()}
        return {"probe": torch.zeros(1, device=device), "data": data, "rep": rep, "cfg": cfg}

    def reference(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _dlib_reference.evaluate(x["data"], x["rep"], config=x["cfg"])

    def ours(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return disentanglement.evaluate(x["data"], x["rep"], config=x["cfg"])

    return Bench(op="disentanglement_suite", baseline_name="numpy/sklearn, disentanglement_lib's algorithms",
                 size_names=("N",), sizes={"cpu": [], "cuda": []}, setup=make_inputs, ours=ours,
                 baseline=reference)


def save_rows(result: dict, scale: str, device: str, results_dir: str = "benchmarks/results"):
    """Appends one CSV row per metric and one for the total (ours vs reference, seconds as ms) through the
    benchmark harness's writer."""
    from .. import bench

    n = config(scale)["mig"]["num_train"]
    rows = [bench.Row(f"disentanglement_{m}", f"N={n}", "codes", "native", 1e3 * t,
                      "numpy/sklearn reference", 1e3 * result["time_reference"][m], float("nan"), float("nan"))
            for m, t in result["time_ours"].items()]
    rows.append(bench.Row("disentanglement_total", f"N={n}", "codes", "native", 1e3 * sum(result["time_ours"].values()),
                          "numpy/sklearn reference", 1e3 * sum(result["time_reference"].values()), float("nan"),
                          float("nan")))
    return bench.save_csv(rows, results_dir, device)
