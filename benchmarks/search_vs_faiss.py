"""Exact search, kNN probe and analogies against FAISS on this CPU (issue 11): every number in the search
sections of RESULTS.md comes from this script.

    python benchmarks/search_vs_faiss.py [--threads 2] [--quick | --vocab 1000000] [--search-only] [--save]
    python benchmarks/search_vs_faiss.py --cpu-time      # the single-thread tables of RESULTS.md

1. The paths this machine offers, their BLAS, and a fresh calibration (``_search_plan.calibrate``).
2. The registry rows ``search_faiss`` (the grid of issue 11; ``--quick``: V = 1e5 only), ``search_gemm``,
   ``knn_faiss``, ``knn_probe`` and ``analogy_faiss`` (``fastrepr.bench.run``: ours and the baseline in one
   process, alternating, medians), each naming the path that ran.
3. Identity: on every search size, 64 queries (all of them when fewer) against the float64 reference
   (rows and scores must be equal), and the share of rows FAISS returns identically (FAISS ranks in float32, so
   near-ties may come out in another order there; ours is the float64 order).
``--cpu-time``: one thread everywhere, process CPU time (robust to other jobs on a shared machine), every
scan path forced in turn against FAISS and the blocked GEMM (V = 1e5, D in {128, 300}, k in {10, 100}, Q in
{1, 16, 200, 1000, 5000}), the kNN probe per path, and the two analogy sets; best of 2, alternating.
Wrap it in ``flock /tmp/fastrepr-bench.lock`` on a shared machine.
"""
from __future__ import annotations

import argparse
import json

import torch


def identity(size) -> str:
    from fastrepr import reference
    from fastrepr.bench.entries import search as entries

    x = entries._search_faiss_setup(size, torch.device("cpu"), torch.float32)
    q = x["queries"][:64]
    s, i = x["index"].search(q, x["k"])
    ws, wi = reference.topk_search(q, x["vectors"], x["k"])
    same = bool(torch.equal(i, wi) and torch.equal(s, ws))
    _, fi = x["flat"].search(q.numpy(), x["k"])
    agree = float((torch.from_numpy(fi) == i).double().mean())
    return f"{x['index'].search_path(len(q), x['k'])}: float64 reference identical={same}, FAISS rows equal {agree:.4f}"


def _best(fns: dict) -> dict:
    """Best process CPU time of each function over 2 alternating rounds (after one warm-up call each)."""
    import time

    from fastrepr.ops._search_plan import best_times

    return best_times(fns, reps=2, clock=time.process_time)


def cpu_time_tables() -> None:
    import os

    import faiss

    from fastrepr.bench.entries import search as entries
    from fastrepr.evaluation import probes
    from fastrepr.ops import _search_plan
    from fastrepr.ops import topk_search as ts

    torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    cpu = torch.device("cpu")
    paths = _search_plan.available()
    print("| D | k | Q | FAISS ms | " + " | ".join(paths) + " | gemm ms |")
    for D in (128, 300):
        for k in (10, 100):
            for Q in (1, 16, 200, 1000, 5000):
                x = entries._gemm_setup((100_000, D, Q), cpu, torch.float32)
                v, vsq, q = x["index"].vectors, x["index"].sqnorms(), x["queries"]
                fns = {"faiss_flat": lambda: x["flat"].search(x["q"], k)}
                for name, path in paths.items():
                    fns[name] = lambda p=path: ts.exact_search(q, v, k, False, vsq, threads=1, path=p)
                if Q >= 16:
                    fns["gemm"] = x["gemm"]
                t = _best(fns)
                base = t["faiss_flat"]
                cells = [f"{t[n] * 1e3:.1f} ({base / t[n]:.2f}x)" for n in paths]
                gemm = f"{t['gemm'] * 1e3:.1f}" if "gemm" in t else ""
                print(f"| {D} | {k} | {Q} | {base * 1e3:.1f} | " + " | ".join(cells) + f" | {gemm} |", flush=True)
    x = entries._knn_setup((50_000, 10_000, 128), cpu, torch.float32)
    fns = {"faiss+vote": lambda: entries._knn_faiss_baseline(x)}
    for name in paths:
        def knn(name=name):
            os.environ["FASTREPR_SEARCH_PATH"] = name
            try:
                return probes.knn_accuracy(x["xtr"], x["ytr"], x["xte"], x["yte"], k=20)
            finally:
                del os.environ["FASTREPR_SEARCH_PATH"]
        fns[name] = knn
    t = _best(fns)
    print("knn probe 50000/10000/128, k=20:", {n: f"{v * 1e3:.0f} ms ({t['faiss+vote'] / v:.2f}x)" for n, v in t.items()})
    for size in ((100_000, 300, 19_544, 0), (100_000, 300, 19_544, 45_000)):
        x = entries._analogy_faiss_setup(size, cpu, torch.float32)
        ours = lambda: x["index"].analogy(x["ids"][:, 0], x["ids"][:, 1], x["ids"][:, 2], "3cosadd")  # noqa: E731
        t = _best({"ours": ours, "faiss": lambda: entries._analogy_faiss_baseline(x)})
        same = float((ours()[1][:, 0] == entries._analogy_faiss_baseline(x)[:, 0]).double().mean())
        print(f"analogy {size} [{x['path']}]: ours {t['ours']:.2f} s, FAISS {t['faiss']:.2f} s, "
              f"{t['faiss'] / t['ours']:.2f}x, same top-1 {same:.5f}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="search grid at V=1e5 only")
    ap.add_argument("--vocab", type=int, nargs="+", help="search grid at these V only (e.g. 1000000)")
    ap.add_argument("--search-only", action="store_true", help="the search grid and its identity checks only")
    ap.add_argument("--save", action="store_true", help="append rows to benchmarks/results/<device>.csv")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of timing per side and size")
    ap.add_argument("--cpu-time", action="store_true", help="the single-thread CPU-time tables instead")
    args = ap.parse_args(argv)
    if args.cpu_time:
        return cpu_time_tables()
    torch.set_num_threads(args.threads)
    from fastrepr import bench
    from fastrepr.bench.entries import search as entries
    from fastrepr.ops import _search_plan

    print(json.dumps({k: v for k, v in _search_plan.describe().items() if k != "calibration"}, indent=1))
    cal = _search_plan.calibrate(args.threads)
    print(f"calibration (GFLOP/s of a k=10 exact search, R={cal['rows']}, at Q =", cal["queries"], "):")
    for name, per_dim in cal["gflops"].items():
        for d, rates in zip(cal["dims"], per_dim):
            print(f"  {name:9s} D={d:<4d} " + " ".join(f"{r:7.1f}" for r in rates))
    grid = [s for s in entries._SEARCH_GRID if not (args.quick and s[0] > 100_000)
            and (not args.vocab or s[0] in args.vocab)]
    rows = []
    ops = (("search_faiss", grid),) + (() if args.search_only else (
        ("search_gemm", None), ("knn_faiss", None), ("knn_probe", None), ("analogy_faiss", None)))
    for op, sizes in ops:
        labels = [f"{'x'.join(map(str, s))}" for s in sizes] if sizes else None
        rows += bench.run([op], labels, device="cpu", budget_s=args.budget, progress=lambda m: print("..", m, flush=True))
        print(bench.format_table(rows[-len(sizes or bench.REGISTRY[op].sizes["cpu"]):]), flush=True)
    print("\nall rows:\n" + bench.format_table(rows))
    print("\nidentity:")
    for size in grid:
        print(" ", "x".join(map(str, size)), identity(size), flush=True)
    if args.save:
        print(bench.save_csv(rows, "benchmarks/results", "cpu"))


if __name__ == "__main__":
    main()
