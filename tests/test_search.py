"""EmbeddingIndex: every engine agrees with the reference and with gensim (most_similar, most_similar_cosmul),
exclusions and restrict_vocab, FAISS shards / IVF / HNSW, the faiss-gpu selection logic (with a stand-in
faiss module), bad input, and `import fastrepr` without faiss."""
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

import fastrepr
from fastrepr import _backend, _faiss, reference
from fastrepr.ops import _search_plan, topk_search
from fastrepr.search import EmbeddingIndex
from utils import engine_fixture, index_backend, use_impl

KeyedVectors = pytest.importorskip("gensim.models").KeyedVectors
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")
# FAISS, or the topk_search op forced to each implementation it declares (through FASTREPR_BACKEND)
ENGINES = ["faiss", *topk_search.IMPLS.names]
engine = engine_fixture(ENGINES)


@pytest.fixture(scope="module")
def table():
    g = torch.Generator().manual_seed(0)
    vectors = torch.randn(1500, 24, generator=g)
    keys = [f"w{i}" for i in range(len(vectors))]
    kv = KeyedVectors(24)
    kv.add_vectors(keys, vectors.numpy())
    return vectors, keys, kv


def _index(table, engine, metric="cosine"):
    vectors, keys, _ = table
    return EmbeddingIndex(vectors, keys, metric=metric, backend=index_backend(engine))


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_search_matches_reference(table, engine, metric):
    vectors = table[0]
    index = _index(table, engine, metric)
    q = torch.randn(9, 24)
    scores, ids = index.search(q, 6)
    base = torch.nn.functional.normalize(vectors, dim=1) if metric == "cosine" else vectors
    qq = torch.nn.functional.normalize(q, dim=1) if metric == "cosine" else q
    ws, wi = reference.topk_search(qq, base, 6, "l2" if metric == "l2" else "ip")
    assert torch.equal(ids, wi)
    torch.testing.assert_close(scores, ws, rtol=1e-5, atol=1e-4)
    s1, i1 = index.search(q[0], 6)  # a single query gives 1-D results
    assert torch.equal(i1, wi[0]) and s1.shape == (6,)


def test_most_similar_is_gensims(table, engine):
    _, _, kv = table
    index = _index(table, engine)
    cases = [dict(positive=["w1", "w2"], negative=["w3"]), dict(positive="w7"), dict(negative=["w9", "w10"]),
             dict(positive=[("w4", 2.0), "w5"], negative=[("w6", -0.5)]), dict(positive=["w11"], restrict_vocab=400),
             dict(positive=[kv["w12"], "w13"])]
    for case in cases:
        restrict = case.pop("restrict_vocab", None)
        ours = index.most_similar(**case, k=7, restrict_vocab=restrict)
        theirs = kv.most_similar(**case, topn=7, restrict_vocab=restrict)
        assert [w for w, _ in ours] == [w for w, _ in theirs], case
        np.testing.assert_allclose([s for _, s in ours], [s for _, s in theirs], atol=2e-6)
    extra = index.most_similar("w7", k=5, exclude=["w8", 9])
    assert not {"w7", "w8", "w9"} & {w for w, _ in extra} and len(extra) == 5


def test_analogy_agrees_with_gensim(table, engine):
    """Top-1 of 3CosAdd (most_similar) and 3CosMul (most_similar_cosmul) on every question where gensim's
    best two scores are not tied within float32 rounding."""
    _, keys, kv = table
    index = _index(table, engine)
    g = torch.Generator().manual_seed(5)
    q = torch.randint(0, len(keys), (60 if engine != "triton" else 20, 3), generator=g)
    a, b, c = ([keys[i] for i in q[:, t]] for t in range(3))
    for method, fn in (("3cosadd", kv.most_similar), ("3cosmul", kv.most_similar_cosmul)):
        scores, ids = index.analogy(a, b, c, method=method, k=3)
        checked = 0
        for n in range(len(a)):
            theirs = fn(positive=[b[n], c[n]], negative=[a[n]], topn=2)
            if abs(theirs[0][1] - theirs[1][1]) <= 1e-5 * abs(theirs[0][1]):
                continue
            checked += 1
            assert index.keys_of(ids[n])[0] == theirs[0][0], (method, a[n], b[n], c[n])
            assert abs(float(scores[n, 0]) - theirs[0][1]) < 1e-5 * max(1.0, abs(theirs[0][1]))
        assert checked >= 0.9 * len(a)


def test_search_exclude_and_restrict(table, monkeypatch):
    vectors, keys, _ = table
    for engine in ("faiss", "torch"):
        if engine == "torch":
            use_impl("torch", monkeypatch)
        index = _index(table, engine)
        q = vectors[:4]
        _, ids = index.search(q, 3, exclude=[[0], [1, 5], [], [3, -1]])
        assert ids[0, 0] != 0 and ids[1, 0] != 1 and ids[2, 0] == 2 and ids[3, 0] != 3
        _, ids = index.search(q, 5, restrict=100)
        assert (ids < 100).all() and ids[0, 0] == 0
        _, ids = index.search(q, 3, exclude=torch.arange(4)[:, None], restrict=50)
        assert (ids < 50).all() and not (ids == torch.arange(4)[:, None]).any()


def test_faiss_shards_and_approximate(table):
    vectors, keys, _ = table
    exact = EmbeddingIndex(vectors, keys, backend="faiss")
    q = vectors[::50] + 0.1 * torch.randn(30, 24)
    _, want = exact.search(q, 10)
    sharded = EmbeddingIndex(vectors, keys, backend="faiss", shards=3)
    assert sharded._faiss.plan.shards == 3
    assert torch.equal(sharded.search(q, 10)[1], want)
    for kind, opts in (("ivf", dict(nlist=16, nprobe=8)), ("hnsw", dict(hnsw_m=16, ef_search=64))):
        approx = EmbeddingIndex(vectors, keys, approximate=kind, **opts)
        _, got = approx.search(q, 10)
        recall = np.mean([len(set(g.tolist()) & set(w.tolist())) / 10 for g, w in zip(got, want)])
        assert recall >= 0.9, (kind, recall)
        _, got = approx.search(q, 10, restrict=700)  # IDSelector inside faiss
        assert (got < 700).all()


class _FakeGpuFaiss(types.SimpleNamespace):
    """A stand-in faiss with GPU support: records what the searcher builds."""

    def __init__(self, gpus=2):
        import faiss

        calls = []
        super().__init__(calls=calls, METRIC_L2=faiss.METRIC_L2, METRIC_INNER_PRODUCT=faiss.METRIC_INNER_PRODUCT)
        self.get_num_gpus = lambda: gpus
        self.StandardGpuResources = lambda: calls.append("resources") or "res"
        self.GpuIndexFlatConfig = lambda: types.SimpleNamespace(device=None)
        self.IndexFlatIP, self.IndexFlatL2, self.IndexIVFFlat = faiss.IndexFlatIP, faiss.IndexFlatL2, faiss.IndexIVFFlat
        self.ParameterSpace = faiss.ParameterSpace

        def gpu_flat(kind):
            def make(res, d, cfg):
                calls.append((kind, res, d, cfg.device))
                return faiss.IndexFlatL2(d) if kind == "l2" else faiss.IndexFlatIP(d)
            return make

        self.GpuIndexFlatIP, self.GpuIndexFlatL2 = gpu_flat("ip"), gpu_flat("l2")
        self.index_cpu_to_gpu = lambda res, dev, index: calls.append(("to_gpu", dev)) or index

        def multiple(resources, index, co, gpus):
            calls.append(("to_gpus", tuple(gpus), co.shard))
            return index

        self.index_cpu_to_gpu_multiple_py = multiple
        self.GpuMultipleClonerOptions = lambda: types.SimpleNamespace(shard=False)


def test_faiss_gpu_selection_logic():
    fake = _FakeGpuFaiss()
    cpu, cuda1 = torch.device("cpu"), torch.device("cuda", 1)
    assert _faiss.plan(fake, cuda1, None, 1, None) == _faiss.Plan("gpu", "flat", 1, 1, ())
    assert _faiss.plan(fake, cpu, None, 1, None).where == "cpu"
    assert _faiss.plan(fake, cuda1, "hnsw", 1, None).where == "cpu"  # no GPU HNSW in faiss
    assert _faiss.plan(fake, cpu, "ivf", 1, [0, 1]) == _faiss.Plan("gpus", "ivf", 1, -1, (0, 1))
    assert _faiss.plan(_FakeGpuFaiss(gpus=0), cuda1, None, 1, None).where == "cpu"
    with pytest.raises(RuntimeError, match="faiss-gpu"):
        import faiss

        _faiss.plan(faiss, cpu, None, 1, [0, 1])
    with pytest.raises(ValueError, match="no GPU HNSW"):
        _faiss.plan(fake, cpu, "hnsw", 1, [0, 1])

    # build with the stand-in (vectors on the CPU, as if they were on cuda:1)
    v = torch.nn.functional.normalize(torch.randn(200, 8), dim=1)
    searcher = _faiss.FaissSearcher(v, "ip", faiss=fake)
    assert searcher.plan.where == "cpu"  # the vectors are CPU tensors
    fake.calls.clear()
    searcher.plan = None
    s = _faiss.FaissSearcher.__new__(_faiss.FaissSearcher)
    original = _faiss.plan
    try:
        _faiss.plan = lambda *a: _faiss.Plan("gpu", "flat", 1, 1, ())
        s.__init__(v, "l2", faiss=fake)
        assert ("l2", "res", 8, 1) in fake.calls
        _faiss.plan = lambda *a: _faiss.Plan("gpus", "flat", 1, -1, (0, 1))
        s.__init__(v, "ip", faiss=fake)
        assert ("to_gpus", (0, 1), True) in fake.calls
        _faiss.plan = lambda *a: _faiss.Plan("gpu", "ivf", 1, 0, ())
        s.__init__(v, "ip", "ivf", nlist=4, faiss=fake)
        assert ("to_gpu", 0) in fake.calls
    finally:
        _faiss.plan = original
    scores, ids = s.search(v[:3], 2)
    assert ids[:, 0].tolist() == [0, 1, 2]


def test_bad_input(table, monkeypatch):
    vectors, keys, _ = table
    with pytest.raises(ValueError, match="metric"):
        EmbeddingIndex(vectors, metric="dot")
    with pytest.raises(ValueError, match="backend"):
        EmbeddingIndex(vectors, backend="gpu")
    with pytest.raises(ValueError, match="keys has 3 entries"):
        EmbeddingIndex(vectors, ["a", "b", "c"])
    with pytest.raises(ValueError, match="distinct"):
        EmbeddingIndex(vectors[:2], ["a", "a"])
    with pytest.raises(ValueError, match="NaN"):
        EmbeddingIndex(torch.tensor([[1.0, float("nan")]]))
    with pytest.raises(TypeError, match="vectors must be float"):
        EmbeddingIndex(torch.ones(3, 2, dtype=torch.int64))
    with pytest.raises(ValueError, match=r"\[V, D\]"):
        EmbeddingIndex(torch.ones(3))
    with pytest.raises(ValueError, match="need FAISS"), pytest.warns(DeprecationWarning):
        EmbeddingIndex(vectors, backend="torch", approximate="ivf")
    use_impl("torch", monkeypatch)
    index = EmbeddingIndex(vectors, keys)
    with pytest.raises(ValueError, match="24 columns"):
        index.search(torch.randn(2, 5))
    with pytest.raises(ValueError, match="k must be"):
        index.search(torch.randn(2, 24), 0)
    with pytest.raises(ValueError, match="one row per query"):
        index.search(torch.randn(2, 24), 3, exclude=[[1]])
    with pytest.raises(KeyError, match="nope"):
        index.most_similar("nope")
    with pytest.raises(ValueError, match="method"):
        index.analogy(["w1"], ["w2"], ["w3"], method="3cosdiv")
    with pytest.raises(ValueError, match="same length"):
        index.analogy(["w1"], ["w2", "w4"], ["w3"])
    with pytest.raises(ValueError, match="first restrict_vocab=10 rows"):
        index.analogy(["w1"], ["w2"], ["w300"], restrict_vocab=10)
    with pytest.raises(ValueError, match="at least one"):
        index.most_similar()


def test_numpy_and_half_inputs_and_fp64_queries(monkeypatch):
    use_impl("torch", monkeypatch)
    v = np.random.default_rng(0).standard_normal((50, 6)).astype(np.float64)
    a = EmbeddingIndex(v)
    b = EmbeddingIndex(torch.from_numpy(v).half())
    assert a.vectors.dtype == torch.float32 and b.vectors.dtype == torch.float32
    s, i = a.search(v[:3], 1)
    assert i[:, 0].tolist() == [0, 1, 2]
    assert a.most_similar(0, k=2)[0][0] != 0  # ints name rows when there are no keys


def _python(blocked: str, code: str) -> str:
    """Run code in a fresh interpreter where the named modules cannot be imported; return its stdout."""
    block = "".join(f"sys.modules[{m!r}] = None; " for m in blocked.split())
    res = subprocess.run([sys.executable, "-c", f"import sys; {block}\n{code}"], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_native_and_torch_engines_without_triton():
    out = _python("triton triton.language", "import torch, fastrepr\n"
                  "import os\n"
                  "for engine in ('native', 'torch'):\n"
                  "    os.environ['FASTREPR_BACKEND'] = engine\n"
                  "    ix = fastrepr.EmbeddingIndex(torch.randn(300, 8))\n"
                  "    s, i = ix.analogy(torch.tensor([1, 4]), torch.tensor([2, 5]), torch.tensor([3, 6]), k=2)\n"
                  "    print(engine, tuple(i.shape), tuple(ix.search(torch.randn(2, 8), 3)[1].shape))\n")
    assert "native (2, 2) (2, 3)" in out and "torch (2, 2) (2, 3)" in out


@pytest.mark.parametrize("impl", topk_search.IMPLS.names)
def test_deprecated_backend_argument_routes_through_the_dispatcher(table, impl, monkeypatch):
    """EmbeddingIndex(backend="triton"|"native"|"torch") still works for one release: it warns, naming
    FASTREPR_BACKEND, and the ops it calls run that implementation (recorded by the one dispatcher)."""
    use_impl(impl, monkeypatch)  # skips an implementation that cannot run here
    monkeypatch.delenv(_backend.ENV)
    vectors, keys, _ = table
    with pytest.warns(DeprecationWarning, match=f"FASTREPR_BACKEND={impl}"):
        index = EmbeddingIndex(vectors[:300], keys[:300], backend=impl)
    with _backend.recording() as ran:
        _, ids = index.search(vectors[:5], 4)
        _, aids = index.analogy(torch.tensor([1, 2]), torch.tensor([3, 4]), torch.tensor([5, 6]), k=3)
    assert ran == {"topk_search": impl, "analogy_topk": impl}
    assert _backend.forced() is None  # the forcing ends with the call
    want = reference.topk_search(torch.nn.functional.normalize(vectors[:5], dim=1),
                                 torch.nn.functional.normalize(vectors[:300], dim=1), 4)[1]
    assert torch.equal(ids, want) and aids.shape == (2, 3)


@pytest.mark.parametrize("impl", topk_search.IMPLS.names)
def test_search_path_reports_what_the_dispatcher_runs(table, impl, monkeypatch):
    """search_path (what benchmark rows record) asks the dispatcher, and the search then runs that
    implementation; the native one also names its calibrated scan path."""
    use_impl(impl, monkeypatch)
    vectors, keys, _ = table
    index = EmbeddingIndex(vectors, keys)
    path = index.search_path(5)
    with _backend.recording() as ran:
        index.search(vectors[:5], 3)
    assert ran == {"topk_search": impl} and path.split()[0] == impl
    if impl == "native":
        assert path.split()[1].rstrip(":") in {p.name for p in _search_plan.available().values()}


def test_import_without_faiss():
    out = _python("faiss", "import torch, fastrepr\n"
                  "ix = fastrepr.EmbeddingIndex(torch.randn(30, 4))\n"
                  "assert ix.engine == 'op', ix.engine\n"
                  "print(ix.search(torch.randn(2, 4), 3)[1].shape)\n"
                  "try:\n    fastrepr.EmbeddingIndex(torch.randn(30, 4), backend='faiss')\n"
                  "except RuntimeError as e:\n    print('error:', e)\n")
    assert "torch.Size([2, 3])" in out and "pip install faiss-cpu" in out
