"""The CPU bars of the representation-diagnostics issue, same run, same process:

  silhouette  fastrepr.evaluation.clustering.silhouette against sklearn.metrics.silhouette_score (euclidean
              and cosine), N=20000, D=128, C=10 Gaussian clusters: ≥10x, scores to 1e-6
  uniformity  fastrepr.evaluation.geometry.uniformity against Wang & Isola's plain-torch expression
              torch.pdist(F.normalize(z)).pow(2).mul(-t).exp().mean().log(), N=20000, D=128: ≥3x
  memory      peak extra resident memory of one call at N=50000, D=128 (each in its own child process, warmed
              at a small size first, VmHWM reset before the call): < 64 MB for both

Times are medians of alternating calls (fastrepr.bench.harness.time_pair), each call after an untimed
--settle sleep (scikit-learn's OpenBLAS workers spin ~0.1 s after each of its calls, which on 2 cores took a
core from the call after it); each row names the CPU, the threads and the implementation that ran.

    flock /tmp/fastrepr-bench.lock .venv/bin/python benchmarks/geometry_cpu.py [--n 20000] [--n-memory 50000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch

from fastrepr import _backend
from fastrepr.bench.harness import device_name, peak_memory, table, time_pair
from fastrepr.evaluation.clustering import silhouette
from fastrepr.evaluation.geometry import uniformity


def labelled(n: int, d: int = 128, c: int = 10, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, c, (n,), generator=g)
    return (torch.randn(c, d, generator=g) * 2)[labels] + torch.randn(n, d, generator=g), labels


def pdist_uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    return torch.pdist(torch.nn.functional.normalize(z, dim=1)).pow(2).mul(-t).exp().mean().log()


def memory_child(what: str, n: int) -> None:
    z, labels = labelled(n)
    fn = (lambda: silhouette(z, labels)) if what == "silhouette" else (lambda: uniformity(z))
    small_z, small_labels = labelled(2000)
    silhouette(small_z, small_labels) if what == "silhouette" else uniformity(small_z)  # warm the code paths
    with _backend.recording() as ran:
        peak = peak_memory(fn, torch.device("cpu"))
    print(json.dumps({"peak": peak, "impl": ",".join(f"{k}={v}" for k, v in ran.items())}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--n-memory", type=int, default=50000)
    p.add_argument("--budget", type=float, default=20.0, help="seconds per side for the timing loops")
    p.add_argument("--settle", type=float, default=0.3,
                   help="untimed seconds of sleep before each call, so that no call starts while the other "
                        "side's idle BLAS threads still spin (0: back to back)")
    p.add_argument("--memory-of", choices=["silhouette", "uniformity"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_of:
        return memory_child(args.memory_of, args.n_memory)
    from sklearn.metrics import silhouette_score

    cpu = device_name(torch.device("cpu"))
    z, labels = labelled(args.n)
    zn, ln = z.numpy(), labels.numpy()
    rows = []
    for metric in ("euclidean", "cosine"):
        with _backend.recording() as ran:
            ours_value = silhouette(z, labels, metric)
        base_value = silhouette_score(zn, ln, metric=metric)
        t_ours, t_base = time_pair(lambda: silhouette(z, labels, metric),
                                   lambda: silhouette_score(zn, ln, metric=metric), torch.device("cpu"),
                                   budget_s=args.budget, warmup=False, settle_s=args.settle)
        rows.append([f"silhouette ({metric})", f"N={args.n} D=128 C=10", ran.get("silhouette_samples", "?"),
                     f"{t_ours:.0f} ms", f"{t_base:.0f} ms sklearn", f"{t_base / t_ours:.1f}x",
                     f"|diff| {abs(ours_value - base_value):.1e}", cpu])
    with _backend.recording() as ran:
        ours_value = float(uniformity(z))
    base_value = float(pdist_uniformity(z))
    t_ours, t_base = time_pair(lambda: uniformity(z), lambda: pdist_uniformity(z), torch.device("cpu"),
                               budget_s=args.budget, warmup=False, settle_s=args.settle)
    rows.append(["uniformity (t=2)", f"N={args.n} D=128", ran.get("uniformity_lse", "?"), f"{t_ours:.0f} ms",
                 f"{t_base:.0f} ms torch.pdist", f"{t_base / t_ours:.1f}x",
                 f"|diff| {abs(ours_value - base_value):.1e}", cpu])
    for what in ("uniformity", "silhouette"):
        proc = subprocess.run([sys.executable, __file__, "--memory-of", what, "--n-memory", str(args.n_memory)],
                              capture_output=True, text=True, check=True)
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append([f"{what} peak extra memory", f"N={args.n_memory} D=128", got["impl"], "", "",
                     f"{got['peak'] / 2**20:.1f} MiB", "bar < 64 MB", cpu])
    print(table(["op", "size", "impl", "ours", "baseline", "speed-up / memory", "check", "cpu"], rows))


if __name__ == "__main__":
    main()
