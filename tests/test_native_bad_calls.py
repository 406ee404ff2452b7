"""The private fastrepr._C entry points (all but the word2vec trainer's) called with absurd
sizes, indices, offsets, values and thread counts: each must raise a Python exception, never abort or fault.

The calls run in a child process, so that a regression that kills the interpreter fails this test (with the
case it was running) instead of taking the test session down. One case caps the child's address space so
that per-thread scratch allocations fail inside OpenMP regions, where an escaping C++ exception used to call
std::terminate.
"""
import json
import subprocess
import sys
import textwrap

import pytest

from utils import NATIVE_EXPECTED

pytestmark = pytest.mark.skipif(not NATIVE_EXPECTED, reason="native extension not built (FASTREPR_SKIP_NATIVE=1)")

CHILD = textwrap.dedent(r'''
    import json, resource, sys
    import numpy as np
    from fastrepr import _C as C

    f32, f64, i64, u8, u32 = np.float32, np.float64, np.int64, np.uint8, np.uint32
    BIG = 2**62
    z = lambda *s, t=f32: np.zeros(s, t)

    def hist(**kw):
        a = dict(x=z(10, 2), edges=z(2, 4), labels=None, out=z(2, 2, t=f64), num_labels=0, dtype="float32",
                 threads=0)
        a.update(kw)
        return C.histogram_mutual_info(**a)

    def gbt(**kw):
        n, d = 6, 2
        a = dict(x=np.arange(n * d, dtype=f32).reshape(n, d), labels=(np.arange(n) % 2).reshape(n, 1).astype(i64),
                 n_classes=np.array([2], i64), init=z(1, t=f64), seeds=np.ones((3, 1), u32), x_test=z(0, d),
                 importances=z(1, d, t=f64), raw_train=z(1, n, t=f64), raw_test=z(1, 0, t=f64), n_estimators=3,
                 learning_rate=0.1, max_depth=3, min_samples_split=2, min_samples_leaf=1, threads=1)
        a.update(kw)
        return C.gbt_fit_predict(**a)

    def render(**kw):
        a = dict(patches=z(3, 4, 4, t=u8), patch=np.zeros(2, i64), row0=np.zeros(2, i64), col0=np.zeros(2, i64),
                 out=z(2, 8, 8, t=u8), dtype="uint8", threads=0)
        a.update(kw)
        return C.dsprites_render(**a)

    def ns(fn=C.negative_sampling_forward, **kw):
        a = dict(w_in=z(5, 3), w_out=z(5, 3), inputs=np.zeros((2, 1), i64), mask=z(0, 0, t=u8),
                 targets=np.zeros(2, i64), negatives=np.zeros((2, 1), i64), loss=z(2), dtype="float32", threads=0)
        a.update(kw)
        return fn(**a)

    def hs(**kw):
        a = dict(h=z(2, 3), w_nodes=z(3, 3), targets=np.zeros(2, i64), points=np.zeros((4, 2), i64),
                 codes=z(4, 2, t=u8), lengths=np.ones(4, i64), loss=z(2), dtype="float32", threads=0)
        a.update(kw)
        return C.hierarchical_softmax_forward(**a)

    def merge(**kw):
        a = dict(S=z(3, 5), rows=np.zeros((2, 3), i64), scale=np.ones(2, f32), mode=1, excl=np.zeros((2, 0), i64),
                 col0=0, top_v=z(2, 4), top_i=np.zeros((2, 4), i64), threads=0)
        a.update(kw)
        return C.topk_merge(**a)

    def scan(**kw):
        a = dict(queries=z(3, 4), vectors=z(10, 4), vsq=None, K=5, blas=0, block_q=4, block_v=8, out_v=z(3, 5),
                 out_i=np.zeros((3, 5), i64), threads=0)
        a.update(kw)
        return C.topk_scan(**a)

    def refine(**kw):
        a = dict(x=z(3, 4, t=f64), vectors=z(10, 4), cand=np.zeros((3, 2), i64), scale=None, approx=z(3, 2, t=f64),
                 bound=z(3, t=f64), excl=np.zeros((3, 0), i64), l2=False, out_v=z(3, 2), out_i=np.zeros((3, 2), i64),
                 ok=z(3, t=u8), threads=0)
        a.update(kw)
        return C.topk_refine(**a)

    def qlse(**kw):
        a = dict(qh=z(3, 4), queue=z(5, 4), rq=np.ones(5, f32), inv_t=10.0, lse=z(3), wmean=z(3, 4), dtype="float32",
                 blas=0, threads=0)
        a.update(kw)
        return C.queue_lse(**a)

    def capped(call):
        """call() with the address space capped at 64 MiB above what the process uses now."""
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        with open("/proc/self/statm") as fh:
            used = int(fh.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + (64 << 20), hard))
        try:
            return call()
        finally:
            resource.setrlimit(resource.RLIMIT_AS, (soft, hard))

    def labels_table():
        # K = 2**23 labels, B = 1: a 2 x K int64 count table (128 MiB) per thread, allocated inside the region
        k = C.HISTOGRAM_MAX_TABLE // 2
        return hist(x=z(10, 1), edges=z(1, 1), labels=np.zeros((10, 1), i64), out=z(1, 1, t=f64), num_labels=k,
                    threads=1)

    def sil(**kw):
        a = dict(z=z(4, 2), order=np.arange(4, dtype=i64), labels=np.array([0, 0, 1, 1], i64),
                 groups=np.array([[0, 2, 0], [2, 4, 1]], i64), sums=z(4, 2, t=f64), exact_below=0.05, block=4,
                 blas=0, threads=1)
        a.update(kw)
        return C.silhouette_sums(**a)

    CASES = {
        "silhouette: label 2**62": lambda: sil(labels=np.array([0, 0, 1, BIG], i64)),
        "silhouette: label -1": lambda: sil(labels=np.array([-1, 0, 1, 1], i64)),
        "silhouette: order repeats": lambda: sil(order=np.array([0, 0, 2, 3], i64)),
        "silhouette: order 2**62": lambda: sil(order=np.array([0, 1, 2, BIG], i64)),
        "silhouette: order short": lambda: sil(order=np.arange(3, dtype=i64)),
        "silhouette: groups past N": lambda: sil(groups=np.array([[0, 2, 0], [2, 2**40, 1]], i64)),
        "silhouette: group label wrong": lambda: sil(groups=np.array([[0, 2, 1], [2, 4, 1]], i64)),
        "silhouette: group spans blocks": lambda: sil(block=2, groups=np.array([[0, 3, -1], [3, 4, 1]], i64)),
        "silhouette: blas 999": lambda: sil(blas=999),
        "silhouette: threads 10**6": lambda: sil(threads=10**6),
        "silhouette: valid call": lambda: sil(groups=np.array([[0, 4, -1]], i64)),
        "hist: 10**6 bins": lambda: hist(edges=z(2, 10**6)),
        "hist: num_labels 1e15": lambda: hist(labels=np.zeros((10, 1), i64), out=z(2, 1, t=f64), num_labels=10**15),
        "hist: num_labels 0": lambda: hist(labels=np.zeros((10, 1), i64), out=z(2, 1, t=f64), num_labels=0),
        "hist: label -2**63": lambda: hist(labels=np.full((10, 1), -2**63, i64), out=z(2, 1, t=f64), num_labels=3),
        "hist: threads -1": lambda: hist(threads=-1),
        "hist: threads 10**6": lambda: hist(threads=10**6),
        "hist: allocation fails inside OpenMP": lambda: capped(labels_table),
        "pairwise: threads 10**9": lambda: C.pairwise_abs_diff_mean_dense(z(2, 3, 4), z(2, 3, 4), z(2, 4), "float32",
                                                                         10**9),
        "pairwise: index -2**63": lambda: C.pairwise_abs_diff_mean_index(z(5, 3), np.full((2, 2), -2**63, i64),
                                                                        np.zeros((2, 2), i64), z(2, 3), "float32"),
        "pairwise: index 2**62": lambda: C.pairwise_abs_diff_mean_index(z(5, 3), np.zeros((2, 2), i64),
                                                                       np.full((2, 2), BIG, i64), z(2, 3), "float32"),
        "gbt: n_classes 1e15": lambda: gbt(n_classes=np.array([10**15], i64)),
        "gbt: x NaN": lambda: gbt(x=np.full((6, 2), np.nan, f32)),
        "gbt: learning_rate NaN": lambda: gbt(learning_rate=float("nan")),
        "gbt: init Inf": lambda: gbt(init=np.full(1, np.inf)),
        "gbt: label 2**62": lambda: gbt(labels=np.full((6, 1), BIG, i64)),
        "gbt: seeds shorter than n_estimators": lambda: gbt(n_estimators=10**9),
        "gbt: threads 10**6": lambda: gbt(threads=10**6),
        "gbt: max_depth 10**6": lambda: gbt(max_depth=10**6),
        "gbt: min_samples_leaf 2**62 (valid: no split)": lambda: gbt(min_samples_leaf=BIG, min_samples_split=BIG),
        "render: row0 -2**63": lambda: render(row0=np.array([0, -2**63], i64)),
        "render: col0 2**62": lambda: render(col0=np.array([BIG, 0], i64)),
        "render: patch 2**62": lambda: render(patch=np.array([BIG, 0], i64)),
        "render: patch -1": lambda: render(patch=np.array([-1, 0], i64)),
        "render: threads -7": lambda: render(threads=-7),
        "randint: counts wrap around": lambda: C.legacy_randint(np.zeros(8, u32), np.array([2, 2, 2, 2], i64),
                                                                np.array([BIG, BIG, BIG, BIG], i64), np.zeros(0, i64)),
        "randint: high 0": lambda: C.legacy_randint(np.zeros(8, u32), np.array([0], i64), np.array([1], i64),
                                                    np.zeros(1, i64)),
        "randint: count -1": lambda: C.legacy_randint(np.zeros(8, u32), np.array([2], i64), np.array([-1], i64),
                                                      np.zeros(0, i64)),
        "ns forward: input -2**63": lambda: ns(inputs=np.full((2, 1), -2**63, i64)),
        "ns forward: negative 2**62": lambda: ns(negatives=np.full((2, 1), BIG, i64)),
        "ns forward: threads 10**6": lambda: ns(threads=10**6),
        "ns backward: d_in too small": lambda: C.negative_sampling_backward(
            z(5, 3), z(5, 3), np.zeros((2, 1), i64), z(0, 0, t=u8), np.zeros(2, i64), np.zeros((2, 1), i64), z(2),
            z(1, 3), z(5, 3), False, "float32", 0),
        "ns step: lr NaN": lambda: C.negative_sampling_step(
            z(5, 3), z(5, 3), np.zeros((2, 1), i64), z(0, 0, t=u8), np.zeros(2, i64), np.zeros((2, 1), i64), z(2),
            float("nan"), True, "float32", 0),
        "ns step: target 2**62": lambda: C.negative_sampling_step(
            z(5, 3), z(5, 3), np.zeros((2, 1), i64), z(0, 0, t=u8), np.full(2, BIG, i64), np.zeros((2, 1), i64),
            z(2), 0.1, True, "float32", 0),
        "hs: target -2**63": lambda: hs(targets=np.full(2, -2**63, i64)),
        "hs: length 10**9": lambda: hs(lengths=np.full(4, 10**9, i64)),
        "hs: point 2**62": lambda: hs(points=np.full((4, 2), BIG, i64)),
        "hs: code 2": lambda: hs(codes=np.full((4, 2), 2, u8)),
        "hs: threads -1": lambda: hs(threads=-1),
        # threads=10**6 made OpenMP start a million threads in topk_merge (segfault) before the check
        "merge: threads 10**6": lambda: merge(threads=10**6),
        "merge: threads -1": lambda: merge(threads=-1),
        "merge: row 2**62": lambda: merge(rows=np.full((2, 3), BIG, i64)),
        "scan: threads 10**6": lambda: scan(threads=10**6),
        "scan: K 2**62": lambda: scan(K=BIG),
        "refine: threads 10**6": lambda: refine(threads=10**6),
        "refine: cand 2**62": lambda: refine(cand=np.full((3, 2), BIG, i64)),
        "queue_lse: threads 10**6": lambda: qlse(threads=10**6),
        "queue_lse: queue D 3": lambda: qlse(queue=z(5, 3)),
        "queue_lse: queue K 0": lambda: qlse(queue=z(0, 4), rq=z(0)),
        "queue_lse: rq short": lambda: qlse(rq=np.ones(4, f32)),
        "queue_lse: wmean rows short": lambda: qlse(wmean=z(2, 4)),
        "queue_lse: lse float64": lambda: qlse(lse=z(3, t=f64)),
        "queue_lse: inv_t NaN": lambda: qlse(inv_t=float("nan")),
        "queue_lse: inv_t 0": lambda: qlse(inv_t=0.0),
        "queue_lse: blas handle 2**30": lambda: qlse(blas=2**30),
        "queue_lse: dtype int8": lambda: qlse(dtype="int8"),
        "queue_lse: float64 qh for a float32 queue": lambda: qlse(qh=z(3, 4, t=f64)),
        "queue_lse: valid call": lambda: qlse(),
    }
    for name, call in CASES.items():
        print(json.dumps({"start": name}), flush=True)
        try:
            call()
            result = {"case": name, "raised": None}
        except Exception as exc:  # noqa: BLE001 - the point is that it is an exception, not an abort
            result = {"case": name, "raised": type(exc).__name__, "message": str(exc)}
        print(json.dumps(result), flush=True)
''')

# case -> (exception type, message fragment); None: the call is valid and must succeed
EXPECTED = {
    "silhouette: label 2**62": ("ValueError", "labels must lie in"),
    "silhouette: label -1": ("ValueError", "labels must lie in"),
    "silhouette: order repeats": ("ValueError", "order must be a permutation"),
    "silhouette: order 2**62": ("ValueError", "order must be a permutation"),
    "silhouette: order short": ("ValueError", "order [N] and labels [N]"),
    "silhouette: groups past N": ("ValueError", "groups must cover"),
    "silhouette: group label wrong": ("ValueError", "labelled group's rows"),
    "silhouette: group spans blocks": ("ValueError", "each inside one block"),
    "silhouette: blas 999": ("ValueError", "blas: no registered"),
    "silhouette: threads 10**6": ("ValueError", "threads must lie in"),
    "silhouette: valid call": None,
    "hist: 10**6 bins": ("ValueError", "at most 1024 bins"),
    "hist: num_labels 1e15": ("ValueError", "count table would exceed"),
    "hist: num_labels 0": ("ValueError", "num_labels must be at least 1"),
    "hist: label -2**63": ("ValueError", "labels outside"),
    "hist: threads -1": ("ValueError", "threads must lie in"),
    "hist: threads 10**6": ("ValueError", "threads must lie in"),
    "hist: allocation fails inside OpenMP": ("MemoryError", ""),
    "pairwise: threads 10**9": ("ValueError", "threads must lie in"),
    "pairwise: index -2**63": ("ValueError", "out of range"),
    "pairwise: index 2**62": ("ValueError", "out of range"),
    "gbt: n_classes 1e15": ("ValueError", "n_classes must lie in"),
    "gbt: x NaN": ("ValueError", "x contains NaN"),
    "gbt: learning_rate NaN": ("ValueError", "learning_rate must be finite"),
    "gbt: init Inf": ("ValueError", "init contains NaN"),
    "gbt: label 2**62": ("ValueError", "labels outside"),
    "gbt: seeds shorter than n_estimators": ("ValueError", "seeds must have shape"),
    "gbt: threads 10**6": ("ValueError", "threads must lie in"),
    "gbt: max_depth 10**6": ("ValueError", "max_depth"),
    "gbt: min_samples_leaf 2**62 (valid: no split)": None,
    "render: row0 -2**63": ("ValueError", "row0[1]"),
    "render: col0 2**62": ("ValueError", "col0[0]"),
    "render: patch 2**62": ("ValueError", "patch index out of range"),
    "render: patch -1": ("ValueError", "patch index out of range"),
    "render: threads -7": ("ValueError", "threads must lie in"),
    "randint: counts wrap around": ("ValueError", "sum(counts)"),
    "randint: high 0": ("ValueError", "highs must lie in"),
    "randint: count -1": ("ValueError", "non-negative"),
    "ns forward: input -2**63": ("ValueError", "outside its table"),
    "ns forward: negative 2**62": ("ValueError", "outside its table"),
    "ns forward: threads 10**6": ("ValueError", "threads must lie in"),
    "ns backward: d_in too small": ("ValueError", "wrong shape"),
    "ns step: lr NaN": ("ValueError", "lr must be finite"),
    "ns step: target 2**62": ("ValueError", "outside its table"),
    "hs: target -2**63": ("ValueError", "outside its range"),
    "hs: length 10**9": ("ValueError", "outside its range"),
    "hs: point 2**62": ("ValueError", "outside its range"),
    "hs: code 2": ("ValueError", "code is not 0/1"),
    "hs: threads -1": ("ValueError", "threads must lie in"),
    "merge: threads 10**6": ("ValueError", "threads must lie in"),
    "merge: threads -1": ("ValueError", "threads must lie in"),
    "merge: row 2**62": ("ValueError", "rows: an entry is outside"),
    "scan: threads 10**6": ("ValueError", "threads must lie in"),
    "scan: K 2**62": ("ValueError", "K must lie in"),
    "refine: threads 10**6": ("ValueError", "threads must lie in"),
    "refine: cand 2**62": ("ValueError", "cand: an entry is outside"),
    "queue_lse: threads 10**6": ("ValueError", "threads must lie in"),
    "queue_lse: queue D 3": ("ValueError", "queue must have D columns"),
    "queue_lse: queue K 0": ("ValueError", "queue: K (rows) must be at least 1"),
    "queue_lse: rq short": ("ValueError", "rq must have shape [K]"),
    "queue_lse: wmean rows short": ("ValueError", "wmean must have shape [N, D]"),
    "queue_lse: lse float64": ("ValueError", "lse: expected items of 4 bytes"),
    "queue_lse: inv_t NaN": ("ValueError", "inv_t must be finite"),
    "queue_lse: inv_t 0": ("ValueError", "inv_t must be finite and > 0"),
    "queue_lse: blas handle 2**30": ("ValueError", "blas: no registered float32 sgemm"),
    "queue_lse: dtype int8": ("TypeError", "unsupported dtype 'int8'"),
    "queue_lse: float64 qh for a float32 queue": ("ValueError", "qh: expected items of 4 bytes"),
    "queue_lse: valid call": None,
}


@pytest.fixture(scope="module")
def child_results():
    proc = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    started = [line["start"] for line in lines if "start" in line]
    results = {line["case"]: line for line in lines if "case" in line}
    if proc.returncode != 0:
        pytest.fail(f"the child died (exit {proc.returncode}) in case {started[-1] if started else None!r}:\n"
                    f"{proc.stderr[-3000:]}")
    return results


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_absurd_native_call_raises(child_results, case):
    got = child_results[case]
    if EXPECTED[case] is None:
        assert got["raised"] is None, got
        return
    kind, fragment = EXPECTED[case]
    assert got["raised"] == kind and fragment in got["message"], got


def test_every_case_ran(child_results):
    assert set(child_results) == set(EXPECTED)


def test_histogram_limits_agree_with_python():
    from fastrepr import _native
    from fastrepr.ops import mutual_info

    C = _native.get()
    assert (C.HISTOGRAM_MAX_BINS, C.HISTOGRAM_MAX_TABLE) == (mutual_info.MAX_BINS, mutual_info.MAX_TABLE)
