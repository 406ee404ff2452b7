"""Bad input for EmbeddingIndex (constructor, search, most_similar, analogy) and the probes, on every engine:
each row of a table must raise the named error (naming the argument), never abort, never answer with a
plausible number; oversized k gives the documented min(k, rows) columns everywhere."""
import math

import numpy as np
import pytest
import torch

from fastrepr.evaluation import probes
from fastrepr.ops import topk_search
from fastrepr.search import EmbeddingIndex
from utils import engine_fixture, index_backend

# FAISS, or the topk_search op forced to each implementation it declares (through FASTREPR_BACKEND)
ENGINES = ["auto", "faiss", *topk_search.IMPLS.names]
engine = engine_fixture(ENGINES)
V, D = 60, 8


@pytest.fixture(scope="module")
def vectors():
    return torch.randn(V, D, generator=torch.Generator().manual_seed(0))


def _index(vectors, engine, **kw):
    return EmbeddingIndex(vectors, [f"w{i}" for i in range(V)], backend=index_backend(engine), **kw)


def _nan(shape, where=(0, 0), value=float("nan")):
    t = torch.randn(*shape)
    t[where] = value
    return t


CONSTRUCTOR = [
    (dict(vectors=[[1.0, 2.0]]), TypeError, "vectors must be a torch.Tensor"),
    (dict(vectors=torch.ones(3, 2, dtype=torch.int64)), TypeError, "vectors must be float"),
    (dict(vectors=torch.ones(3)), ValueError, r"vectors must have shape \[V, D\]"),
    (dict(vectors=torch.ones(0, 4)), ValueError, "vectors is empty"),
    (dict(vectors=torch.ones(4, 0)), ValueError, "vectors is empty"),
    (dict(vectors=_nan((5, 3))), ValueError, "vectors contains NaN"),
    (dict(vectors=_nan((5, 3), value=float("inf"))), ValueError, "vectors contains NaN or Inf"),
    (dict(vectors=torch.full((3, 2), 1e300, dtype=torch.float64)), ValueError, "beyond float32"),
    (dict(vectors=torch.full((3, 2), 1e20), metric="l2"), ValueError, "squared row norms overflow"),
    (dict(metric="dot"), ValueError, "metric must be"),
    (dict(backend="gpu"), ValueError, "backend must be"),
    (dict(keys=["a", "b"]), ValueError, "keys has 2 entries"),
    (dict(approximate="pq"), ValueError, "approximate must be"),
    (dict(approximate="ivf", nlist=0), ValueError, r"nlist must be an int in \[1, 60\]"),
    (dict(approximate="ivf", nlist=V + 1), ValueError, "nlist must be"),
    (dict(approximate="ivf", nlist=2.5), ValueError, "nlist must be"),
    (dict(approximate="ivf", nlist=True), ValueError, "nlist must be"),
    (dict(approximate="ivf", nlist=4, nprobe=0), ValueError, r"nprobe must be an int in \[1, 4\]"),
    (dict(approximate="ivf", nlist=4, nprobe=5), ValueError, "nprobe must be"),
    (dict(approximate="hnsw", hnsw_m=0), ValueError, r"hnsw_m must be an int in \[2, 512\]"),
    (dict(approximate="hnsw", hnsw_m=1), ValueError, "hnsw_m must be"),
    (dict(approximate="hnsw", hnsw_m=10**6), ValueError, "hnsw_m must be"),
    (dict(approximate="hnsw", ef_search=0), ValueError, "ef_search must be"),
    (dict(approximate="hnsw", ef_search=10**9), ValueError, "ef_search must be"),
    (dict(shards=0), ValueError, "shards must be"),
    (dict(shards=V + 1), ValueError, "shards must be"),
    (dict(shards=True), ValueError, "shards must be"),
    (dict(gpus="0"), ValueError, "gpus must be a sequence"),
    (dict(gpus=[0, 0]), ValueError, "distinct"),
    (dict(gpus=[]), ValueError, "at least one"),
    (dict(gpus=[-1]), ValueError, r"gpus\[i\] must be"),
]


@pytest.mark.parametrize("case", range(len(CONSTRUCTOR)))
def test_constructor_table(vectors, engine, case):
    change, err, msg = CONSTRUCTOR[case]
    args = dict(vectors=vectors, keys=None, backend=index_backend(engine))
    args.update(change)
    with pytest.raises(err, match=msg):
        EmbeddingIndex(args.pop("vectors"), **args)


SEARCH = [
    (dict(queries=torch.randn(2, D + 1)), ValueError, f"queries must have {D} columns"),
    (dict(queries=torch.randn(2, 2, D)), ValueError, r"queries must have shape \[Q, D\]"),
    (dict(queries=torch.ones(2, D, dtype=torch.int32)), TypeError, "queries must be float"),
    (dict(queries=_nan((3, D), (1, 4))), ValueError, "queries contains NaN"),
    (dict(queries=_nan((3, D), (2, 0), float("-inf"))), ValueError, "queries contains NaN or Inf"),
    (dict(queries=torch.full((1, D), 1e300, dtype=torch.float64)), ValueError, "queries contains NaN or Inf"),
    (dict(k=0), ValueError, "k must be a positive int"),
    (dict(k=-3), ValueError, "k must be"),
    (dict(k=2.5), ValueError, "k must be"),
    (dict(k=True), ValueError, "k must be"),
    (dict(k="3"), ValueError, "k must be"),
    (dict(exclude=[[1]]), ValueError, "one row per query"),
    (dict(exclude=torch.ones(3, 1)), TypeError, "exclude must be an integer"),
    (dict(exclude=torch.zeros(3, V + 1, dtype=torch.int64)), ValueError, "more than the 60 rows"),
    (dict(restrict=0), ValueError, "restrict must be a positive int"),
    (dict(restrict=True), ValueError, "restrict must be"),
    (dict(restrict=2.5), ValueError, "restrict must be"),
]


@pytest.mark.parametrize("case", range(len(SEARCH)))
def test_search_table(vectors, engine, case):
    index = _index(vectors, engine)
    change, err, msg = SEARCH[case]
    args = dict(queries=torch.randn(3, D), k=4)
    args.update(change)
    with pytest.raises(err, match=msg):
        index.search(args.pop("queries"), **args)


@pytest.mark.parametrize("metric", ["cosine", "ip", "l2"])
def test_shapes_at_the_edges(vectors, engine, metric):
    """k beyond the rows: min(k, rows) columns, the same on every engine; zero queries; restrict."""
    index = _index(vectors, engine, metric=metric)
    s, i = index.search(torch.randn(3, D), k=10**9)
    assert s.shape == i.shape == (3, V) and sorted(i[0].tolist()) == list(range(V))
    s, i = index.search(torch.randn(3, D), k=10**9, restrict=7)
    assert i.shape == (3, 7) and sorted(i[1].tolist()) == list(range(7))
    s, i = index.search(torch.randn(2, D), k=V, exclude=[[0, 1, 2], []])
    assert i.shape == (2, V) and (i[0, -3:] == -1).all() and (i[1] >= 0).all()
    assert math.isinf(float(s[0, -1]))
    s, i = index.search(torch.randn(0, D), k=5)
    assert s.shape == i.shape == (0, 5)
    assert len(index.most_similar("w3", k=10**6)) == V - 1
    sa, ia = index.analogy(["w1", "w4"], ["w2", "w4"], ["w3", "w5"], k=10**6)
    assert sa.shape == ia.shape == (2, V) and (ia[0, -3:] == -1).all() and (ia[1, -2:] == -1).all()


MOST_SIMILAR = [
    (dict(), ValueError, "at least one positive or negative"),
    (dict(positive=["nope"]), KeyError, "nope"),
    (dict(positive=[torch.ones(D + 1)]), ValueError, "vector item must have shape"),
    (dict(positive=[_nan((D,), (3,))]), ValueError, "queries contains NaN"),
    (dict(positive=["w1"], k=0), ValueError, "k must be"),
    (dict(positive=["w1"], restrict_vocab=0), ValueError, "restrict must be"),
    (dict(positive=["w1"], exclude=["nope"]), KeyError, "nope"),
]

ANALOGY = [
    (dict(method="3cosdiv"), ValueError, "method must be"),
    (dict(b=["w2", "w3"]), ValueError, "same length"),
    (dict(k=0), ValueError, "k must be"),
    (dict(k=1.5), ValueError, "k must be"),
    (dict(c=["nope"]), KeyError, "nope"),
    (dict(a=torch.tensor([V])), ValueError, r"a has rows outside \[0, 60\)"),
    (dict(a=torch.tensor([-1])), ValueError, "a has rows outside"),
    (dict(a=torch.tensor([1.0])), TypeError, "a must be an integer"),
    (dict(c=["w30"], restrict_vocab=10), ValueError, "first restrict_vocab=10 rows"),
]


def test_most_similar_and_analogy_tables(vectors, engine):
    index = _index(vectors, engine)
    for change, err, msg in MOST_SIMILAR:
        with pytest.raises(err, match=msg):
            index.most_similar(**change)
    for change, err, msg in ANALOGY:
        args = dict(a=["w1"], b=["w2"], c=["w3"])
        args.update(change)
        with pytest.raises(err, match=msg):
            index.analogy(args.pop("a"), args.pop("b"), args.pop("c"), **args)


# ---------------------------------------------------------------------------------------------------------
# probes

@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = (rng.standard_normal((3, 6))[y] + rng.standard_normal((90, 6))).astype(np.float32)
    return x, y


def _with(x, where, value):
    x = x.copy()
    x[where] = value
    return x


def test_probe_tables(blobs):
    x, y = blobs
    knn = [
        (dict(train_x=_with(x, (4, 2), np.nan)), ValueError, "train_x contains NaN"),
        (dict(train_x=_with(x, (4, 2), np.inf)), ValueError, "train_x contains NaN or Inf"),
        (dict(test_x=_with(x, (0, 0), np.nan)), ValueError, "test_x contains NaN"),
        (dict(train_x=x.astype(np.int64)), TypeError, "train_x must be float"),
        (dict(train_x=x[:, 0]), ValueError, r"train_x must have shape \[N, D\]"),
        (dict(train_x=x[:0], train_y=y[:0]), ValueError, "train_x is empty"),
        (dict(test_x=x[:, :4]), ValueError, "test_x must have 6 columns"),
        (dict(train_y=y[:5]), ValueError, r"train_y must have shape \[90\]"),
        (dict(train_y=y.astype(np.float64)), TypeError, "integer"),
        (dict(k=0), ValueError, r"k must be an int in \[1, 90\]"),
        (dict(k=91), ValueError, "k must be"),
        (dict(k=True), ValueError, "k must be"),
        (dict(weights="rank"), ValueError, "weights must be"),
        (dict(weights="distance", metric="ip"), ValueError, "not a distance"),
        (dict(weights="similarity", metric="l2"), ValueError, "l2 scores are distances"),
        (dict(weights="similarity", temperature=0.0), ValueError, "temperature must be"),
        (dict(weights="similarity", temperature=-1.0), ValueError, "temperature must be"),
        (dict(weights="similarity", temperature=float("nan")), ValueError, "temperature must be"),
        (dict(weights="similarity", temperature=float("inf")), ValueError, "temperature must be"),
        (dict(metric="hamming"), ValueError, "metric must be"),
    ]
    for change, err, msg in knn:
        args = dict(train_x=x, train_y=y, test_x=x[:10], k=5)
        args.update(change)
        with pytest.raises(err, match=msg):
            probes.knn_predict(**args)
    linear = [
        (dict(x=_with(x, (1, 1), np.nan)), ValueError, "x contains NaN"),
        (dict(C=0), ValueError, "C must be positive"),
        (dict(C=float("nan")), ValueError, "C must be positive"),
        (dict(C=True), ValueError, "C must be positive"),
        (dict(max_iter=0), ValueError, "max_iter must be"),
        (dict(tol=-1.0), ValueError, "tol must be"),
        (dict(y=y[:3]), ValueError, r"y must have shape \[90\]"),
    ]
    for change, err, msg in linear:
        args = dict(x=x, y=y)
        args.update(change)
        with pytest.raises(err, match=msg):
            probes.fit_linear_probe(**args)
    probe = probes.fit_linear_probe(x, y, max_iter=20)
    with pytest.raises(ValueError, match="x must have 6 columns"):
        probe.predict(x[:, :5])
    with pytest.raises(ValueError, match="test_x contains NaN"):
        probes.linear_probe(x, y, _with(x, (2, 2), np.nan), y)
    with pytest.raises(ValueError, match="probe must be"):
        probes.label_efficiency(x, y, x, y, probe="svm")


def test_similarity_votes_do_not_overflow(blobs):
    """exp(cos / T) overflows float64 below T ~ 1.4e-3; the shifted form stays finite, and as T -> 0 the
    vote goes to the single nearest neighbour."""
    x, y = blobs
    nearest = probes.knn_predict(x, y, x[:30] + 0.01, k=1)
    for t in (1e-3, 1e-6, 1e-12):
        got = probes.knn_predict(x, y, x[:30] + 0.01, k=9, weights="similarity", temperature=t)
        assert torch.equal(got, nearest), t
