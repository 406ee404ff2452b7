"""Exact search, kNN probe and analogies against FAISS on this CPU (issue 11): every number in the search
sections of RESULTS.md comes from this script.

    python benchmarks/search_vs_faiss.py [--threads 2] [--quick] [--save]

1. The paths this machine offers, their BLAS, and a fresh calibration (``_search_plan.calibrate``).
2. The registry rows ``search_faiss`` (the grid of issue 11; ``--quick``: V = 1e5 only), ``search_gemm``,
   ``knn_faiss``, ``knn_probe`` and ``analogy_faiss`` (``fastrepr.bench.run``: ours and the baseline in one
   process, alternating, medians), each naming the path that ran.
3. Identity: on every search size, 64 queries (all of them when fewer) against the float64 reference
   (rows and scores must be equal), and the share of rows FAISS returns identically (FAISS ranks in float32, so
   near-ties may come out in another order there; ours is the float64 order).
Wrap it in ``flock /tmp/fastrepr-bench.lock`` on a shared machine.
"""
from __future__ import annotations

import argparse
import json

import torch


def identity(size) -> str:
    from fastrepr import reference
    from fastrepr.evaluation import benchmarks as entries

    x = entries._search_faiss_setup(size, torch.device("cpu"), torch.float32)
    q = x["queries"][:64]
    s, i = x["index"].search(q, x["k"])
    ws, wi = reference.topk_search(q, x["vectors"], x["k"])
    same = bool(torch.equal(i, wi) and torch.equal(s, ws))
    _, fi = x["flat"].search(q.numpy(), x["k"])
    agree = float((torch.from_numpy(fi) == i).double().mean())
    return f"{x['index'].search_path(len(q), x['k'])}: float64 reference identical={same}, FAISS rows equal {agree:.4f}"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="search grid at V=1e5 only")
    ap.add_argument("--save", action="store_true", help="append rows to benchmarks/results/<device>.csv")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds of timing per side and size")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    from fastrepr import bench
    from fastrepr.evaluation import benchmarks as entries
    from fastrepr.ops import _search_plan

    print(json.dumps({k: v for k, v in _search_plan.describe().items() if k != "calibration"}, indent=1))
    cal = _search_plan.calibrate(args.threads)
    print("calibration (GFLOP/s of a k=10 exact search, R=32768, D=256, at Q =", cal["queries"], "):")
    for name, rates in cal["gflops"].items():
        print(f"  {name:9s} " + " ".join(f"{r:7.1f}" for r in rates))
    grid = [s for s in entries._SEARCH_GRID if not (args.quick and s[0] > 100_000)]
    rows = []
    for op, sizes in (("search_faiss", grid), ("search_gemm", None), ("knn_faiss", None), ("knn_probe", None),
                      ("analogy_faiss", None)):
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
