"""Speed of the word2vec readers against another revision's (default: the one before the issue-9 reader
changes), on the same files, alternating in one process; median of --repeats.

    flock /tmp/fastrepr-bench.lock python benchmarks/reader_speed.py [--base REV] [--rows 50000 --dim 100]
"""
import argparse
import importlib.util
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from fastrepr.text import io as ours
from fastrepr.text import save_word2vec_format

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", default="0a4422f", help="git revision whose fastrepr/text/io.py is the baseline")
    p.add_argument("--rows", type=int, default=50000)
    p.add_argument("--dim", type=int, default=100)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as d:
        old_path = Path(d) / "old_io.py"
        old_path.write_bytes(subprocess.run(["git", "show", f"{args.base}:fastrepr/text/io.py"], cwd=ROOT,
                                            check=True, capture_output=True).stdout)
        spec = importlib.util.spec_from_file_location("old_io", old_path)
        base = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(base)
        arr = np.random.default_rng(0).standard_normal((args.rows, args.dim)).astype(np.float32)
        keys = [f"w{i}" for i in range(args.rows)]
        for binary in (False, True):
            path = Path(d) / f"v{int(binary)}"
            save_word2vec_format(path, arr, keys, binary=binary)
            times = {"base": [], "ours": []}
            for _ in range(args.repeats):
                for name, module in (("base", base), ("ours", ours)):
                    t0 = time.perf_counter()
                    vectors, _ = module.load_word2vec_format(path)
                    times[name].append(time.perf_counter() - t0)
                    assert np.array_equal(vectors, arr)
            b, o = statistics.median(times["base"]), statistics.median(times["ours"])
            print(f"{'binary' if binary else 'text'} {args.rows}x{args.dim}: {args.base} {1e3 * b:.0f} ms, "
                  f"this tree {1e3 * o:.0f} ms, ratio {o / b:.2f}")


if __name__ == "__main__":
    main()
