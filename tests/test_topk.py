"""The topk_search and analogy_topk ops on every backend against the float64 references: awkward shapes,
ties (exactly representable data), exclusions, several vocabulary chunks and splits, opcheck; GPU shapes
under the gpu marker."""
import pytest
import torch

from fastrepr import reference
from fastrepr.ops import analogy_topk as at
from fastrepr.ops import topk_search as ts


def _assert_same(got, want, atol=2e-6):
    (gs, gi), (ws, wi) = got, want
    assert gi.dtype == torch.int64 and gi.shape == wi.shape
    torch.testing.assert_close(gi.cpu(), wi.cpu(), rtol=0, atol=0)
    finite = torch.isfinite(ws)
    assert torch.equal(torch.isfinite(gs.cpu()), finite.cpu())
    torch.testing.assert_close(gs.cpu()[finite], ws.cpu()[finite], rtol=1e-5, atol=atol)


@pytest.mark.parametrize("shape", [(5, 37, 7, 3), (33, 301, 20, 9), (1, 70, 16, 1)])  # Q, R, D, k
@pytest.mark.parametrize("l2", [False, True])
def test_topk_search_matches_reference(backend, shape, l2):
    Q, R, D, k = shape
    q = torch.randn(Q, D, device=backend.device)
    v = torch.randn(R, D, device=backend.device)
    got = ts.topk_search(q, v, k, l2, "")
    _assert_same(got, reference.topk_search(q.cpu(), v.cpu(), k, "l2" if l2 else "ip"), atol=2e-5)
    if l2:  # ascending distances
        assert bool((got[0][:, 1:] >= got[0][:, :-1]).all())


def test_topk_search_ties_keep_lower_rows(backend):
    # small integer vectors: every score is exact, so many are equal
    g = torch.Generator().manual_seed(1)
    v = torch.randint(-1, 2, (97, 4), generator=g).float().to(backend.device)
    q = torch.randint(-1, 2, (13, 4), generator=g).float().to(backend.device)
    for l2 in (False, True):
        got = ts.topk_search(q, v, 12, l2, "")
        _assert_same(got, reference.topk_search(q.cpu(), v.cpu(), 12, "l2" if l2 else "ip"), atol=0)


def test_topk_search_fewer_rows_than_k(backend):
    q, v = torch.randn(3, 8, device=backend.device), torch.randn(4, 8, device=backend.device)
    s, i = ts.topk_search(q, v, 6, False, "")
    assert (i[:, 4:] == -1).all() and torch.isneginf(s[:, 4:]).all()
    assert sorted(i[0, :4].tolist()) == [0, 1, 2, 3]


def test_triton_search_splits_and_blocks():
    """Several vocabulary ranges per query block (merged on the host) and rows that end mid-tile."""
    q, v = torch.randn(19, 24), torch.randn(203, 24)
    for splits in (2, 5):
        for l2 in (False, True):
            s, i = ts.topk_search_forward(q, v, 9, l2, splits=splits)
            if l2:
                s = q.square().sum(1, keepdim=True) - s
            _assert_same((s, i), reference.topk_search(q, v, 9, "l2" if l2 else "ip"), atol=2e-5)


def _assert_valid_topk(got, want, tol):
    """At large shapes float32 and float64 may order near-tied rows differently: check that the scores
    agree and that every returned row truly scores within tol of the reference's k-th best."""
    (gs, gi), (ws, wi) = (t.cpu() for t in got), (t.cpu() for t in want)
    torch.testing.assert_close(gs, ws, rtol=0, atol=tol)
    assert (gi >= 0).all() and all(len(set(r)) == len(r) for r in gi.tolist())
    moved = (gi != wi).float().mean().item()
    assert moved < 0.01, f"{moved:.2%} of the results differ from the reference"


def _unit(R, D, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(R, D, generator=g), dim=1).to(device)


@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
@pytest.mark.parametrize("shape", [(7, 61, 8, 1), (40, 257, 16, 10)])  # Q, R, D, k
def test_analogy_matches_reference(backend, method, shape):
    Q, R, D, k = shape
    u = _unit(R, D, backend.device)
    words = torch.randint(0, R, (Q, 3), device=backend.device)
    words[0] = torch.tensor([5, 5, 9])  # repeated question word
    got = at.analogy_topk(u, words, k, method, "")
    _assert_same(got, reference.analogy_topk(u.cpu(), words.cpu(), k, method), atol=1e-5)
    assert not (got[1][:, :, None] == words[:, None, :]).any(), "a question word was returned"


@pytest.mark.parametrize("backend_name", ["native", "triton"])
@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_chunks_splits_ties(backend_name, method, monkeypatch):
    """Unit vectors with entries in {0, +-1/2} (exact cosines in multiples of 1/4) give many exactly tied
    scores; several vocabulary chunks and column splits must still keep the lower rows first."""
    from conftest import use_backend

    use_backend(backend_name, monkeypatch)
    g = torch.Generator().manual_seed(3)
    R, D = 150, 8
    u = torch.zeros(R, D)
    for r in range(R):
        u[r, torch.randperm(D, generator=g)[:4]] = 0.5 * (2 * torch.randint(0, 2, (4,), generator=g).float() - 1)
    words = torch.randint(0, R, (21, 3), generator=g)
    want = reference.analogy_topk(u, words, 8, method)
    for chunk, splits in ((64, 1), (32, 3), (1000, 2)):
        got = at.analogy_topk_forward(u, words, 8, method, backend_name, chunk=chunk,
                                      splits=splits if backend_name == "triton" else None)
        _assert_same(got, want, atol=1e-6)


def test_native_merge_rejects_bad_rows():
    from fastrepr import _native

    if not _native.available()[0]:
        pytest.skip("native extension not built")
    S = torch.zeros(3, 5)
    tv, ti = ts.empty_lists(1, 2, torch.device("cpu"))
    with pytest.raises(ValueError, match="outside"):
        ts.native_merge(S, torch.tensor([[0, 1, 7]]), torch.ones(1), 1, torch.zeros((1, 0), dtype=torch.int64), 0, tv, ti)
    with pytest.raises(ValueError, match="mode"):
        ts.native_merge(S, torch.tensor([[0, 1, 2]]), torch.ones(1), 5, torch.zeros((1, 0), dtype=torch.int64), 0, tv, ti)


def test_opcheck(monkeypatch):
    monkeypatch.setenv("FASTREPR_BACKEND", "torch")
    q, v = torch.randn(4, 6), torch.randn(20, 6)
    torch.library.opcheck(torch.ops.fastrepr.topk_search.default, (q, v, 3, False, ""),
                          test_utils=("test_schema", "test_faketensor"))
    u = torch.nn.functional.normalize(v, dim=1)
    torch.library.opcheck(torch.ops.fastrepr.analogy_topk.default, (u, torch.tensor([[0, 1, 2]]), 2, "3cosmul", ""),
                          test_utils=("test_schema", "test_faketensor"))


def test_torch_compile_fullgraph(monkeypatch):
    monkeypatch.setenv("FASTREPR_BACKEND", "torch")
    u = torch.nn.functional.normalize(torch.randn(50, 6), dim=1)
    words = torch.tensor([[0, 1, 2], [3, 4, 5]])

    @torch.compile(fullgraph=True, backend="aot_eager")
    def both(q, u, words):
        s, i = torch.ops.fastrepr.topk_search(q, u, 3, False, "")
        a, j = torch.ops.fastrepr.analogy_topk(u, words, 2, "3cosadd", "")
        return s.sum() + a.sum(), i, j

    _, i, j = both(u[:4], u, words)
    assert torch.equal(i, reference.topk_search(u[:4], u, 3)[1]) and torch.equal(j, reference.analogy_topk(u, words, 2)[1])


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_gpu_large(method):
    R, D, Q = 50_000, 300, 3000
    u = _unit(R, D, "cuda")
    words = torch.randint(0, 2000, (Q, 3), device="cuda")  # few distinct words, as in real analogy sets
    got = at.analogy_topk(u, words, 10, method, "triton")
    _assert_valid_topk(got, reference.analogy_topk(u, words, 10, method), tol=1e-5)
    assert not (got[1][:, :, None] == words[:, None, :]).any()


@pytest.mark.gpu
@pytest.mark.parametrize("l2", [False, True])
def test_search_gpu_large(l2):
    q, v = torch.randn(1000, 300, device="cuda"), torch.randn(100_000, 300, device="cuda")
    got = ts.topk_search(q, v, 10, l2, "triton")
    _assert_valid_topk(got, reference.topk_search(q, v, 10, "l2" if l2 else "ip"), tol=1e-2)


def test_memory_stays_far_below_queries_by_vocabulary():
    """3000 queries x 60000 rows of float32 scores would be 720 MB; the native paths hold a few 16 MB tiles
    (the allocator keeps some freed ones)."""
    from fastrepr import _native, bench

    if not _native.available()[0]:
        pytest.skip("native extension not built")
    cpu = torch.device("cpu")
    u = _unit(60_000, 8, cpu)
    words = torch.randint(0, 300, (3000, 3))
    q = torch.randn(3000, 8)
    full = 3000 * 60_000 * 4
    for fn in (lambda: at.analogy_topk(u, words, 10, "3cosmul", "native"),
               lambda: ts.topk_search(q, u, 10, False, "native")):
        fn()  # thread pools and allocator warm-up are not the op's
        peak = bench.peak_memory(fn, cpu)
        assert peak < full / 4, f"{peak / 2**20:.0f} MB"
