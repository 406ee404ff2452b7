"""``fastrepr disentangle``: a representation of dSprites on every metric (or a subset), as a table;
``--compare-reference`` also runs the plain numpy/scikit-learn implementation of disentanglement_lib's
algorithms with the same seed and reports both times and the score differences against the fidelity bar
(the computation is ``fastrepr.evaluation.suite.compare``)."""
from __future__ import annotations

import sys
import warnings

import torch

from ..bench.harness import table
from ..evaluation import suite
from ..evaluation.disentanglement import METRICS
from .args import device_flag, input_file, positive_int

HELP = "disentanglement metrics of a representation of dSprites (Locatello et al. 2019)"


def format_table(result: dict) -> str:
    ref = bool(result["reference"])
    header = ["metric", "score", "fastrepr"] + (["reference", "|diff|", "bar"] if ref else [])
    body = []
    for metric, scores in result["ours"].items():
        for key, value in scores.items():
            row = [metric, key, f"{value:.6g}"]
            if ref:
                r = result["reference"][metric][key]
                row += [f"{r:.6g}", f"{abs(value - r):.2e}", "ok" if suite.within_bar(metric, value, r) else "MISS"]
            body.append(row)
    lines = table(header, body)
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
    return lines + notes + "\n\n" + table(times[0], times[1:])


def add_arguments(p) -> None:
    p.add_argument("--representation", default="factors",
                   help="factors | rotated | noise | moments | module:function (batched function of observations)")
    p.add_argument("--observations", choices=["auto", "factors", "images"], default="auto",
                   help="what the representation sees: the latent factors, or dSprites images (default: by name)")
    p.add_argument("--metrics", help=f"comma-separated subset of {','.join(METRICS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", choices=list(suite.SCALES), default="study", help="sample sizes (study: disentanglement_lib's)")
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
        metrics = suite.metric_names(args.metrics.split(",")) if args.metrics else None
    except ValueError as exc:
        raise ValueError(f"--metrics: {exc}") from None
    deterministic = args.deterministic or args.representation in suite.DETERMINISTIC
    from .._io import FormatError

    try:
        dataset, rep = suite.setup(args.representation, args.observations, device=device, npz=args.npz,
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
            suite.compare(dataset, rep, metrics, seed=args.seed, cfg=suite.config("tiny"), deterministic=deterministic)
    result = suite.compare(dataset, rep, metrics, seed=args.seed, cfg=suite.config(args.scale),
                           reference=args.compare_reference, deterministic=deterministic,
                           progress=lambda s: print(f"  running {s} ...", file=sys.stderr, flush=True))
    print(format_table(result))
    if args.save and args.compare_reference:
        print(f"appended rows to {save_rows(result, args.scale, device, args.results_dir)}")
    return 0


def save_rows(result: dict, scale: str, device: str, results_dir: str = "benchmarks/results"):
    """Appends one CSV row per metric and one for the total (ours vs reference, seconds as ms) through the
    benchmark harness's writer."""
    from .. import bench

    n = suite.config(scale)["mig"]["num_train"]
    rows = [bench.Row(f"disentanglement_{m}", f"N={n}", "codes", "native", 1e3 * t,
                      "numpy/sklearn reference", 1e3 * result["time_reference"][m], float("nan"), float("nan"))
            for m, t in result["time_ours"].items()]
    rows.append(bench.Row("disentanglement_total", f"N={n}", "codes", "native", 1e3 * sum(result["time_ours"].values()),
                          "numpy/sklearn reference", 1e3 * sum(result["time_reference"].values()), float("nan"),
                          float("nan")))
    return bench.save_csv(rows, results_dir, device)
