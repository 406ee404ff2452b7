"""The topk_search and analogy_topk ops on every backend against the float64 references: awkward shapes,
ties (exactly representable data), exclusions, several vocabulary chunks and splits, opcheck; GPU shapes
under the gpu marker."""
import pytest
import torch

from fastrepr import _backend, reference
from fastrepr.ops import _topk
from fastrepr.ops import analogy_topk as at
from fastrepr.ops import topk_search as ts
from utils import impl_device, impl_params, use_impl

SEARCH_IMPLS = impl_params(ts.IMPLS)
ANALOGY_IMPLS = impl_params(at.IMPLS)


def _on(impl, monkeypatch) -> torch.device:
    """Force implementation impl for the test; the device its tensors live on."""
    return impl_device(use_impl(impl, monkeypatch))


def _assert_same(got, want, atol=2e-6):
    (gs, gi), (ws, wi) = got, want
    assert gi.dtype == torch.int64 and gi.shape == wi.shape
    torch.testing.assert_close(gi.cpu(), wi.cpu(), rtol=0, atol=0)
    finite = torch.isfinite(ws)
    assert torch.equal(torch.isfinite(gs.cpu()), finite.cpu())
    torch.testing.assert_close(gs.cpu()[finite], ws.cpu()[finite], rtol=1e-5, atol=atol)


@pytest.mark.parametrize("shape", [(5, 37, 7, 3), (33, 301, 20, 9), (1, 70, 16, 1)])  # Q, R, D, k
@pytest.mark.parametrize("l2", [False, True])
@pytest.mark.parametrize("impl", SEARCH_IMPLS)
def test_topk_search_matches_reference(impl, monkeypatch, shape, l2):
    device = _on(impl, monkeypatch)
    Q, R, D, k = shape
    q = torch.randn(Q, D, device=device)
    v = torch.randn(R, D, device=device)
    got = ts.topk_search(q, v, k, l2)
    _assert_same(got, reference.topk_search(q.cpu(), v.cpu(), k, "l2" if l2 else "ip"), atol=2e-5)
    if l2:  # ascending distances
        assert bool((got[0][:, 1:] >= got[0][:, :-1]).all())


@pytest.mark.parametrize("impl", SEARCH_IMPLS)
def test_topk_search_ties_keep_lower_rows(impl, monkeypatch):
    device = _on(impl, monkeypatch)
    # small integer vectors: every score is exact, so many are equal
    g = torch.Generator().manual_seed(1)
    v = torch.randint(-1, 2, (97, 4), generator=g).float().to(device)
    q = torch.randint(-1, 2, (13, 4), generator=g).float().to(device)
    for l2 in (False, True):
        got = ts.topk_search(q, v, 12, l2)
        _assert_same(got, reference.topk_search(q.cpu(), v.cpu(), 12, "l2" if l2 else "ip"), atol=0)


@pytest.mark.parametrize("impl", SEARCH_IMPLS)
def test_topk_search_fewer_rows_than_k(impl, monkeypatch):
    device = _on(impl, monkeypatch)
    q, v = torch.randn(3, 8, device=device), torch.randn(4, 8, device=device)
    s, i = ts.topk_search(q, v, 6, False)
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
@pytest.mark.parametrize("impl", ANALOGY_IMPLS)
def test_analogy_matches_reference(impl, monkeypatch, method, shape):
    device = _on(impl, monkeypatch)
    Q, R, D, k = shape
    u = _unit(R, D, device)
    words = torch.randint(0, R, (Q, 3), device=device)
    words[0] = torch.tensor([5, 5, 9])  # repeated question word
    got = at.analogy_topk(u, words, k, method)
    _assert_same(got, reference.analogy_topk(u.cpu(), words.cpu(), k, method), atol=1e-5)
    assert not (got[1][:, :, None] == words[:, None, :]).any(), "a question word was returned"


@pytest.mark.parametrize("backend_name", ["native", "triton"])  # the two chunk merges of analogy_topk_forward
@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_chunks_splits_ties(backend_name, method, monkeypatch):
    """Unit vectors with entries in {0, +-1/2} (exact cosines in multiples of 1/4) give many exactly tied
    scores; several vocabulary chunks and column splits must still keep the lower rows first."""

    use_impl(backend_name, monkeypatch)
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
    lists = _topk.TopK(1, 2)
    with pytest.raises(ValueError, match="outside"):
        lists.push_tile(S, torch.tensor([[0, 1, 7]]), torch.ones(1), 1, torch.zeros((1, 0), dtype=torch.int64), 0)
    with pytest.raises(ValueError, match="mode"):
        lists.push_tile(S, torch.tensor([[0, 1, 2]]), torch.ones(1), 5, torch.zeros((1, 0), dtype=torch.int64), 0)


def test_opcheck(monkeypatch):
    monkeypatch.setenv("FASTREPR_BACKEND", "torch")
    q, v = torch.randn(4, 6), torch.randn(20, 6)
    torch.library.opcheck(torch.ops.fastrepr.topk_search.default, (q, v, 3, False),
                          test_utils=("test_schema", "test_faketensor"))
    u = torch.nn.functional.normalize(v, dim=1)
    torch.library.opcheck(torch.ops.fastrepr.analogy_topk.default, (u, torch.tensor([[0, 1, 2]]), 2, "3cosmul"),
                          test_utils=("test_schema", "test_faketensor"))


def test_torch_compile_fullgraph(monkeypatch):
    monkeypatch.setenv("FASTREPR_BACKEND", "torch")
    u = torch.nn.functional.normalize(torch.randn(50, 6), dim=1)
    words = torch.tensor([[0, 1, 2], [3, 4, 5]])

    @torch.compile(fullgraph=True, backend="aot_eager")
    def both(q, u, words):
        s, i = torch.ops.fastrepr.topk_search(q, u, 3, False)
        a, j = torch.ops.fastrepr.analogy_topk(u, words, 2, "3cosadd")
        return s.sum() + a.sum(), i, j

    _, i, j = both(u[:4], u, words)
    assert torch.equal(i, reference.topk_search(u[:4], u, 3)[1]) and torch.equal(j, reference.analogy_topk(u, words, 2)[1])


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["3cosadd", "3cosmul"])
def test_analogy_gpu_large(method, monkeypatch):
    use_impl("triton", monkeypatch)
    R, D, Q = 50_000, 300, 3000
    u = _unit(R, D, "cuda")
    words = torch.randint(0, 2000, (Q, 3), device="cuda")  # few distinct words, as in real analogy sets
    got = at.analogy_topk(u, words, 10, method)
    _assert_valid_topk(got, reference.analogy_topk(u, words, 10, method), tol=1e-5)
    assert not (got[1][:, :, None] == words[:, None, :]).any()


@pytest.mark.gpu
@pytest.mark.parametrize("l2", [False, True])
def test_search_gpu_large(l2, monkeypatch):
    use_impl("triton", monkeypatch)
    q, v = torch.randn(1000, 300, device="cuda"), torch.randn(100_000, 300, device="cuda")
    got = ts.topk_search(q, v, 10, l2)
    _assert_valid_topk(got, reference.topk_search(q, v, 10, "l2" if l2 else "ip"), tol=1e-2)


def test_memory_stays_far_below_queries_by_vocabulary(monkeypatch):
    """3000 queries x 60000 rows of float32 scores would be 720 MB; the native paths hold a few 16 MB tiles
    (the allocator keeps some freed ones)."""
    from fastrepr import _native, bench

    if not _native.available()[0]:
        pytest.skip("native extension not built")
    use_impl("native", monkeypatch)
    cpu = torch.device("cpu")
    u = _unit(60_000, 8, cpu)
    words = torch.randint(0, 300, (3000, 3))
    q = torch.randn(3000, 8)
    full = 3000 * 60_000 * 4
    for fn in (lambda: at.analogy_topk(u, words, 10, "3cosmul"),
               lambda: ts.topk_search(q, u, 10, False)):
        fn()  # thread pools and allocator warm-up are not the op's
        peak = bench.peak_memory(fn, cpu)
        assert peak < full / 4, f"{peak / 2**20:.0f} MB"


# ---------------------------------------------------------------------------------------------------------
# CPU exact search: every scan path, the float64 refinement and its certificate

def _paths():
    from fastrepr import _native
    from fastrepr.ops import _search_plan

    if not _native.available()[0]:
        return []
    return list(_search_plan.available())


@pytest.fixture(params=_paths() or [pytest.param("none", marks=pytest.mark.skip(reason="native extension not built"))])
def scan_path(request, monkeypatch):
    use_impl("native", monkeypatch)
    monkeypatch.setenv("FASTREPR_SEARCH_PATH", request.param)
    return request.param


@pytest.mark.parametrize("shape", [(5, 37, 7, 3), (70, 1301, 29, 12), (1, 70, 300, 1), (600, 1100, 17, 5)])
@pytest.mark.parametrize("l2", [False, True])
def test_every_cpu_path_returns_the_float64_ranking(scan_path, shape, l2):
    """Same rows, same order and the same float32-rounded scores as the float64 reference, on every path
    (600 queries span two [512, 512] tiles; D = 300 and 29 leave vector tails)."""
    Q, R, D, k = shape
    q, v = torch.randn(Q, D), torch.randn(R, D)
    got = ts.topk_search(q, v, k, l2)
    want = reference.topk_search(q, v, k, "l2" if l2 else "ip")
    assert torch.equal(got[1], want[1]) and torch.equal(got[0], want[0])


def test_every_cpu_path_keeps_ties_in_row_order(scan_path):
    g = torch.Generator().manual_seed(1)
    v = torch.randint(-1, 2, (297, 4), generator=g).float()
    q = torch.randint(-1, 2, (13, 4), generator=g).float()
    for l2 in (False, True):
        got = ts.topk_search(q, v, 40, l2)
        assert torch.equal(got[1], reference.topk_search(q, v, 40, "l2" if l2 else "ip")[1])


def test_refinement_overrides_float32_ties(scan_path):
    """Rows whose float32 scores all round to 1.0 but whose exact scores increase with the row: a float32
    ranking would return rows 0..4 (ties keep the lower row); the certificate cannot hold, the candidates
    grow until every row is one, and the exact order (the highest rows) comes back."""
    R = 300
    v = torch.ones(R, 2)
    v[:, 1] = torch.arange(R, dtype=torch.float32) * 2.0 ** -40
    q = torch.ones(1, 2)
    assert float((q @ v.T).max()) == float((q @ v.T).min()) == 1.0  # all tied in float32
    s, i = ts.topk_search(q, v, 5, False)
    assert i[0].tolist() == [299, 298, 297, 296, 295]
    assert torch.equal(i, reference.topk_search(q, v, 5)[1])


def test_exact_search_exclusions_and_float64_queries(scan_path):
    v = torch.nn.functional.normalize(torch.randn(800, 16), dim=1)
    x64 = torch.nn.functional.normalize(torch.randn(30, 16, dtype=torch.float64), dim=1)
    excl = torch.randint(0, 800, (30, 3))
    excl[0] = -1
    s, i = ts.exact_search(x64.float(), v, 6, False, x64=x64, excl=excl)
    full = x64 @ v.double().T
    full.scatter_(1, excl.clamp_min(0), float("-inf"))
    full[0] = x64[0] @ v.double().T  # row 0 excludes nothing
    ws, wi = torch.sort(full, dim=1, descending=True, stable=True)
    assert torch.equal(i, wi[:, :6]) and torch.equal(s, ws[:, :6].float())


@pytest.mark.parametrize("impl", SEARCH_IMPLS)
def test_rejects_non_finite_and_overflowing_input(impl, monkeypatch):
    device = _on(impl, monkeypatch)
    v = torch.randn(50, 8, device=device)
    bad = torch.randn(3, 8, device=device)
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match="queries contains NaN"):
        ts.topk_search(bad, v, 3, False)
    big = torch.full((2, 8), 1e30, device=device)
    for l2 in (False, True):
        with pytest.raises(ValueError, match="queries: scores .* beyond float32"):
            ts.topk_search(big, v * 1e10, 3, l2)
    assert ts.topk_search(torch.randn(2, 8, device=device), v, 10**9, False)[1].shape == (2, 50)


def _int8_copies(x, limit):
    """numpy model of the int8 filter's copies: a scale per row (max |x| / limit) and round-to-nearest-even
    integers; rows whose max is below 1e-30 become zero."""
    import numpy as np

    mx = np.abs(x).max(1)
    s = (mx / np.float32(limit)).astype(np.float32)
    s[~(mx >= 1e-30)] = 0
    inv = np.where(s > 0, np.float32(1) / np.where(s > 0, s, 1), 0).astype(np.float32)
    ints = np.clip(np.rint(x * inv[:, None]), -limit, limit)
    return s, ints


@pytest.mark.parametrize("table", [False, True])
@pytest.mark.parametrize("D", [1, 7, 128, 300, 1041])
def test_int8_filter_products_and_bound(D, table):
    """The int8 scan (rows copied per chunk, or read from a table made beforehand) against a numpy model of
    its copies (so its integer products are exact: no saturation, even with every byte at its limit), and
    the refinement's bound against float64 truth on every returned candidate and every row left out (any
    row outside the K returned scores at most worst + bound). Rows of very different norms, a zero row, a
    row below the scaling range, constant rows (every integer at +-127, the queries' too), D = 1041 (sums
    beyond 2^24 in magnitude), full micro kernels and a tail (5 queries each on AVX2, 8 with VNNI)."""
    import numpy as np

    from fastrepr import _native
    from fastrepr.ops import _search_plan as sp

    if not (_native.available()[0] and _native.get().topk_int8_supported()):
        pytest.skip("int8 filter not available (native extension, x86 AVX2)")
    path = sp.available()["int8-table" if table else "int8"]
    rng = np.random.default_rng(D)
    R, Q, K = 300, 14, 40
    v = (rng.standard_normal((R, D)) * rng.choice([1e-3, 1.0, 30.0], size=(R, 1))).astype(np.float32)
    v[0] = 0
    v[1] = 1e-33
    v[2] = 5.0  # all integers 127
    v[3] = np.where(np.arange(D) % 2, -2.0, 2.0)
    Q = 17  # 3 x 5 + 2 (AVX2), 2 x 8 + 1 (VNNI): full micro kernels and a tail
    q = (rng.standard_normal((Q, D)) * 3).astype(np.float32)
    q[0] = 1.0  # all integers 127: with row 2 the largest sums the kernel can meet
    q[1] = np.where(np.arange(D) % 3, -0.5, 0.5)
    for l2 in (False, True):
        vsq = (v.astype(np.float64) ** 2).sum(1).astype(np.float32)
        qt, vt = torch.from_numpy(q), torch.from_numpy(v)
        rows8 = ts.int8_table(vt) if table else None
        vals, cand, int8 = ts.scan(path, qt, vt, K, torch.from_numpy(vsq) if l2 else None, 2, rows8)
        vals, cand = vals.double().numpy(), cand.numpy()
        qs, qi = _int8_copies(q, 127)
        vs, vi = _int8_copies(v, 127)
        qerr = np.linalg.norm(q - qs[:, None].astype(np.float64) * qi, axis=1)
        verr = np.linalg.norm(v - vs[:, None].astype(np.float64) * vi, axis=1)
        qtn = np.linalg.norm(qs[:, None].astype(np.float64) * qi, axis=1)
        model = (qs.astype(np.float64)[:, None] * vs.astype(np.float64)[None]) * (qi @ vi.T)  # q~.v~
        model += qtn[:, None] * (verr[None] - int8[2])  # ranked by q~.v~ + |q~|·e_r, returned less |q~|·max e_r
        if not l2:
            got = model[np.arange(Q)[:, None], cand]
            np.testing.assert_allclose(vals, got, rtol=2.0 ** -20, atol=1e-6 * float(qtn.max()) * int8[2] + 1e-30)
        exact = q.astype(np.float64) @ v.astype(np.float64).T
        qn = torch.from_numpy(np.linalg.norm(q.astype(np.float64), axis=1))
        vmax = ts.max_norm(torch.from_numpy(vsq), D)
        bound = ts._bound(path, qn, vmax, D, l2, int8).numpy()
        if l2:
            exact = (q.astype(np.float64) ** 2).sum(1)[:, None] - 2 * exact + (v.astype(np.float64) ** 2).sum(1)[None]
            approx = (q.astype(np.float64) ** 2).sum(1)[:, None] - vals  # what exact_search forms
            assert (np.abs(approx - exact[np.arange(Q)[:, None], cand]) <= bound[:, None]).all()
            left = np.ones((Q, R), bool)
            left[np.arange(Q)[:, None], cand] = False
            assert (np.where(left, exact, np.inf).min(1) >= approx[:, -1] - bound).all()
        else:
            assert (np.abs(vals - exact[np.arange(Q)[:, None], cand]) <= bound[:, None]).all()
            left = np.ones((Q, R), bool)
            left[np.arange(Q)[:, None], cand] = False
            assert (np.where(left, exact, -np.inf).max(1) <= vals[:, -1] + bound).all()
        # the reported copy errors are what the model's copies have (rounded up, never below)
        assert (int8[1].numpy() >= qtn).all() and (int8[1].numpy() <= qtn * (1 + 1e-9)).all()
        assert (int8[0].numpy() >= qerr).all() and (int8[0].numpy() <= qerr * (1 + 1e-6) + 1e-30).all()
        assert verr.max() <= int8[2] <= verr.max() * (1 + 1e-6)


_INT8_SCAN_SCRIPT = """
import sys, numpy as np, torch
from fastrepr import _native
from fastrepr.ops import _search_plan as sp, topk_search as ts
torch.set_num_threads(2)
rng = np.random.default_rng(7)
out = {"isa": np.array(_native.get().topk_int8_isa())}
for D, R, Q in ((1, 40, 3), (13, 333, 21), (300, 1000, 37)):
    v = torch.from_numpy((rng.standard_normal((R, D)) * rng.choice([1e-3, 1.0, 30.0], size=(R, 1))).astype(np.float32))
    q = torch.from_numpy((rng.standard_normal((Q, D)) * 3).astype(np.float32))
    vsq = (v.double() ** 2).sum(1).float()
    for name in ("int8", "int8-table"):
        for l2 in (False, True):
            rows8 = ts.int8_table(v) if name == "int8-table" else None
            vals, cand, st = ts.scan(sp.available()[name], q, v, min(R, 25), vsq if l2 else None, 2, rows8)
            for j, a in enumerate((vals.numpy(), cand.numpy(), st[0].numpy(), st[1].numpy(), np.array(st[2]))):
                out[f"{D}-{name}-{l2}-{j}"] = a
np.savez(sys.argv[1], **out)
"""


def test_int8_vnni_kernel_gives_the_avx2_kernels_scores_bit_for_bit(tmp_path):
    """Where the CPU has AVX-512 VNNI the int8 filter runs its vpdpbusd kernel (8 queries, sums of v' + 128
    less 128·sum q'); FASTREPR_TOPK_ISA=avx2 forces the AVX2 kernel. The two must return the same scores (bit
    for bit), the same candidates in the same order and the same copy errors: per-chunk copies and a table,
    ip and l2, D = 1, 13 and 300, query counts with tails of both kernels' groups."""
    import os
    import subprocess
    import sys

    import numpy as np

    from fastrepr import _native

    if not (_native.available()[0] and _native.get().topk_int8_isa() == "avx512-vnni"):
        pytest.skip("this CPU has no AVX-512 VNNI: only the AVX2 int8 kernel runs here")
    runs = {}
    for isa in ("", "avx2"):
        env = {**os.environ, "FASTREPR_TOPK_ISA": isa}
        f = tmp_path / f"scan{isa or 'default'}.npz"
        subprocess.run([sys.executable, "-c", _INT8_SCAN_SCRIPT, str(f)], env=env, check=True, timeout=300)
        with np.load(f) as z:
            runs[isa] = {k: z[k] for k in z.files}
    assert str(runs[""].pop("isa")) == "avx512-vnni" and str(runs["avx2"].pop("isa")) == "avx2"
    assert runs[""].keys() == runs["avx2"].keys() and len(runs[""]) == 12 * 5
    for key, got in runs[""].items():
        np.testing.assert_array_equal(got, runs["avx2"][key], err_msg=key)


def _bf16_copies(x):
    """numpy model of the bf16 filter's copies: float32 rounded to 8 significant bits, to nearest even."""
    import numpy as np

    b = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    b = ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) << 16
    return b.astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("D", [1, 7, 128, 300])
def test_bf16_filter_errors_and_bound(D):
    """The bf16 scan (MKL's bfloat16 product) reports its copies' errors as a numpy model of the rounding
    has them (rounded up, never below), and the refinement's bound built from them holds against float64
    truth on every returned candidate and every row left out, ip and l2. Rows of very different norms, a
    zero row, rows of one value (every rounding error of the same sign), queries of several scales."""
    import numpy as np

    from fastrepr import _native
    from fastrepr.ops import _search_plan as sp

    path = sp.available().get("mkl-bf16") if _native.available()[0] else None
    if path is None:
        pytest.skip("the bf16 filter is not available here (MKL's bfloat16 product)")
    rng = np.random.default_rng(D + 1)
    R, Q, K = 700, 13, 40
    v = (rng.standard_normal((R, D)) * rng.choice([1e-3, 1.0, 30.0], size=(R, 1))).astype(np.float32)
    v[0] = 0
    v[1] = 1e-33
    v[2] = 1.0 + 2.0 ** -8 - 2.0 ** -12  # rounds down by almost the largest relative error, in every column
    v[3] = np.where(np.arange(D) % 2, -3.0009, 3.0009)
    q = (rng.standard_normal((Q, D)) * rng.choice([1e-2, 1.0, 50.0], size=(Q, 1))).astype(np.float32)
    q[0] = 1.0 + 2.0 ** -8 - 2.0 ** -12
    qb, vb = _bf16_copies(q).astype(np.float64), _bf16_copies(v).astype(np.float64)
    qerr = np.linalg.norm(q - qb, axis=1)
    qtn = np.linalg.norm(qb, axis=1)
    verr = np.linalg.norm(v - vb, axis=1)
    qt, vt = torch.from_numpy(q), torch.from_numpy(v)
    table = ts.bf16_table(vt).numpy()  # the rows' bits, then each row's error as float32 (rounded up)
    assert np.array_equal(table[:, :D].view(np.uint16), (_bf16_copies(v).view(np.uint32) >> 16).astype(np.uint16))
    row_err = np.ascontiguousarray(table[:, D:]).view(np.float32)[:, 0].astype(np.float64)
    tiny = 1.01 * np.sqrt(D * 2.0 ** -126)  # squares below float32's normal range, counted at their limit
    assert (row_err >= verr).all() and (row_err <= verr * (1 + 1e-5) + tiny).all()
    for l2 in (False, True):
        vsq = (v.astype(np.float64) ** 2).sum(1).astype(np.float32)
        vals, cand, err = ts.scan(path, qt, vt, K, torch.from_numpy(vsq) if l2 else None, 2, None,
                                  torch.from_numpy(table))
        vals, cand = vals.double().numpy(), cand.numpy()
        assert (err[1].numpy() >= qtn).all() and (err[1].numpy() <= qtn * (1 + 1e-9)).all()
        assert (err[0].numpy() >= qerr).all() and (err[0].numpy() <= qerr * (1 + 1e-9) + 1e-30).all()
        assert verr.max() <= err[2] <= verr.max() * (1 + 1e-5) + tiny
        exact = q.astype(np.float64) @ v.astype(np.float64).T
        qn = torch.from_numpy(np.linalg.norm(q.astype(np.float64), axis=1))
        vmax = ts.max_norm(torch.from_numpy(vsq), D)
        bound = ts._bound(path, qn, vmax, D, l2, err).numpy()
        # measured, not the worst case: each copy is off by at most 2^-8 relative (0.0082·|q|·|v| with the
        # slack; the bound before it was measured: 0.0157), by ~2^-9.3 in norm on random rows
        qnn = qn.numpy()
        rel = (bound - 3 * ts.gamma(D + 4) * (qnn + vmax) ** 2 * l2) / ((2 if l2 else 1) * qnn * vmax)
        assert (rel <= 1.05 * 2 * 2.0 ** -8 + 1e-6).all()
        assert D < 128 or np.median(rel) < 0.0045
        left = np.ones((Q, R), bool)
        left[np.arange(Q)[:, None], cand] = False
        if l2:
            exact = (q.astype(np.float64) ** 2).sum(1)[:, None] - 2 * exact + (v.astype(np.float64) ** 2).sum(1)[None]
            approx = (q.astype(np.float64) ** 2).sum(1)[:, None] - vals  # what exact_search forms
            assert (np.abs(approx - exact[np.arange(Q)[:, None], cand]) <= bound[:, None]).all()
            assert (np.where(left, exact, np.inf).min(1) >= approx[:, -1] - bound).all()
        else:
            assert (np.abs(vals - exact[np.arange(Q)[:, None], cand]) <= bound[:, None]).all()
            assert (np.where(left, exact, -np.inf).max(1) <= vals[:, -1] + bound).all()
    C = _native.get()
    args = dict(queries=q, vectors=v, vsq=None, K=5, blas=path.handle, block_q=4, block_v=8,
                out_v=np.zeros((Q, 5), np.float32), out_i=np.zeros((Q, 5), np.int64), filter_stats=np.zeros((2, Q)),
                bf16_table=table)
    C.topk_scan(**args)
    C.topk_scan(**{**args, "vectors": v[:100]})  # the first rows of a larger table (restrict)
    for change, msg in [(dict(filter_stats=None), "needs filter_stats"), (dict(bf16_table=None), "needs bf16_table"),
                        (dict(bf16_table=table[:, :D].copy()), "shape"), (dict(bf16_table=table[:, :D]), "contiguous"), (dict(bf16_table=table[:R - 1]), "shape"),
                        (dict(bf16_table=table.astype(np.float32)), "bytes"), (dict(blas=0), "needs a bf16 handle")]:
        with pytest.raises(ValueError, match=msg):
            C.topk_scan(**{**args, **change})
    with pytest.raises(ValueError, match="shape"):
        C.topk_bf16_table(v, np.zeros((R, D + 1), np.int16))


@pytest.mark.parametrize("table", [False, True])
def test_int8_filter_answers_equal_the_float64_ranking_on_unit_rows(table):
    """Through exact_search at a size where the filter's 3k + 32 candidates decide (unit rows, D = 64): the
    float64 reference's rows and scores, ip and l2, also with near-ties at the k-th place that the int8
    copies cannot separate (near-duplicate rows, queries equal to rows), which the refinement settles; with
    a table, also over the first 3001 rows of a table of all of them (EmbeddingIndex's restrict)."""
    from fastrepr import _native
    from fastrepr.ops import _search_plan as sp

    if not (_native.available()[0] and _native.get().topk_int8_supported()):
        pytest.skip("int8 filter not available (native extension, x86 AVX2)")
    g = torch.Generator().manual_seed(5)
    v = torch.nn.functional.normalize(torch.randn(5000, 64, generator=g), dim=1)
    v[4000:4100] = v[100:200] * (1 + 2.0 ** -20)  # near-duplicates: equal int8 copies, distinct exact scores
    q = torch.nn.functional.normalize(torch.randn(50, 64, generator=g), dim=1)
    q[:10] = v[100:110]
    path = sp.available()["int8-table" if table else "int8"]
    rows8 = ts.int8_table(v) if table else None
    for rows in (5000, 3001) if table else (5000,):
        for l2 in (False, True):
            for k in (1, 10, 64):
                got = ts.exact_search(q, v[:rows], k, l2, path=path, int8_rows=rows8)
                want = reference.topk_search(q, v[:rows], k, "l2" if l2 else "ip")
                assert torch.equal(got[1], want[1])
                # (l2: the reference's cdist gives 4e-16, not 0, for a query equal to its row; every path gives 0)
                torch.testing.assert_close(got[0], want[0], rtol=0, atol=1e-12 if l2 else 0)


def _index_searches_keep_one_table(index, q, v, attr):
    """Two searches (all rows, then restricted to the first 999): both equal the float64 reference, and the
    index's table (attribute attr) is made by the first and reused by the second. Returns (scores, rows) of
    the first and the table."""
    s, i = index.search(q, 7)
    table = getattr(index, attr)
    assert table is not None
    s2, i2 = index.search(q, 7, restrict=999)
    assert getattr(index, attr) is table  # made once
    want = reference.topk_search(q, v, 7)
    assert torch.equal(i, want[1]) and torch.equal(s, want[0].float())
    want = reference.topk_search(q, v[:999], 7)
    assert torch.equal(i2, want[1]) and torch.equal(s2, want[0].float())
    return s, i, table


def test_bf16_table_is_made_once_by_the_index(monkeypatch):
    """EmbeddingIndex makes its bf16 table on the first search that takes the bf16 path (forced here) and
    reuses it, restricted searches reading its first rows; the answers equal the float64 reference. A plain
    search on that path (no table kept) makes its own and answers the same."""
    from fastrepr import EmbeddingIndex, _native
    from fastrepr.ops import _search_plan as sp

    if not (_native.available()[0] and "mkl-bf16" in sp.available()):
        pytest.skip("the bf16 filter is not available here (MKL's bfloat16 product)")
    monkeypatch.setenv("FASTREPR_SEARCH_PATH", "mkl-bf16")
    g = torch.Generator().manual_seed(12)
    v = torch.randn(2000, 37, generator=g)
    q = torch.randn(300, 37, generator=g)  # enough queries for a pilot
    index = EmbeddingIndex(v, metric="ip")
    assert index.search_path(300).startswith("native mkl-bf16-table")
    s, i, table = _index_searches_keep_one_table(index, q, v, "_bf16")
    assert table.shape == (2000, 39)
    got = ts.exact_search(q, v, 7, False, path=sp.available()["mkl-bf16"])
    assert torch.equal(got[1], i) and torch.equal(got[0], s)


def test_int8_table_is_made_once_by_the_index_and_checked(monkeypatch):
    """EmbeddingIndex makes its int8 table on the first search that takes the int8-table path (forced here)
    and reuses it; its answers equal the float64 reference (restricted too). Bad tables: a clear error."""
    import numpy as np

    from fastrepr import EmbeddingIndex, _native
    from fastrepr.ops import _search_plan as sp

    if not (_native.available()[0] and _native.get().topk_int8_supported()):
        pytest.skip("int8 filter not available (native extension, x86 AVX2)")
    C = _native.get()
    monkeypatch.setenv("FASTREPR_SEARCH_PATH", "int8")
    g = torch.Generator().manual_seed(11)
    v = torch.randn(2000, 37, generator=g)
    q = torch.randn(20, 37, generator=g)
    index = EmbeddingIndex(v, metric="ip")
    assert index.search_path(20).startswith("native int8-table")
    assert not sp.choose(20, 2000, sp.INT8_MAX_D + 1, table=True).int8  # beyond the int32 sums: never chosen
    s, i, table = _index_searches_keep_one_table(index, q, v, "_int8")
    assert table.shape == (125, C.topk_int8_table_bytes(37))
    # bad tables and calls
    qn, vn = q.numpy(), v.numpy()
    args = dict(queries=qn, vectors=vn, vsq=None, K=5, blas=0, block_q=96, block_v=256,
                out_v=np.zeros((20, 5), np.float32), out_i=np.zeros((20, 5), np.int64), filter_stats=np.zeros((2, 20)))
    t = table.numpy()
    for change, msg in [(dict(int8_table=t[:100]), "shape"), (dict(int8_table=np.zeros((125, 7), np.uint8)), "shape"),
                        (dict(int8_table=t, block_v=250), "multiple of 16"),
                        (dict(int8_table=t, filter_stats=None), "needs the int8 filter")]:
        with pytest.raises(ValueError, match=msg):
            C.topk_scan(**{**args, **change})
    raw = np.zeros(table.numel() + 64, np.uint8)
    off = (-raw.ctypes.data) % 64 + 1  # 1 byte past a 64-byte boundary
    bad = raw[off:off + table.numel()].reshape(table.shape)
    with pytest.raises(ValueError, match="aligned"):
        C.topk_scan(**{**args, "int8_table": bad})
    with pytest.raises(ValueError, match="aligned"):
        C.topk_int8_table(vn, bad)
    with pytest.raises(ValueError, match="shape"):
        C.topk_int8_table(vn, t[:10])
    with pytest.raises(ValueError, match="int8_rows"):
        ts.exact_search(q, v, 3, False, path=sp.available()["int8-table"])


def _isolated_plan(monkeypatch, tmp_path):
    """The search plan with its cache in tmp_path, nothing measured or forced yet (skips without the native
    extension)."""
    from fastrepr import _native
    from fastrepr.ops import _search_plan as sp

    if not _native.available()[0]:
        pytest.skip("native extension not built")
    monkeypatch.setenv("FASTREPR_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("FASTREPR_SEARCH_PATH", raising=False)
    monkeypatch.setattr(sp, "_table", None)
    return sp


def test_choose_reads_the_calibration(monkeypatch, tmp_path):
    """The rule: the path with the highest measured rate at this query count wins; small searches and
    FASTREPR_SEARCH_CALIBRATE=0 take the default; the table is written once (atomically) and reused."""
    sp = _isolated_plan(monkeypatch, tmp_path)
    names = list(sp.available())
    fake = {"queries": [1, 8, 64, 512], "rows": 1, "dim": 1, "measured": "", "time": 0,
            "gflops": {n: [1.0, 1.0, 1.0, 1.0] for n in names}}
    fake["gflops"][names[-1]] = [0.5, 0.5, 9.0, 9.0]  # best from about 10 queries on
    fake["gflops"][names[0]] = [5.0, 5.0, 0.5, 0.5]
    calls = []
    monkeypatch.setattr(sp, "calibrate", lambda threads=None, save=True: calls.append(1) or fake)
    assert sp.choose(1, 1_000_000, 300).name == names[0]
    assert sp.choose(200, 100_000, 300).name == names[-1]
    assert len(calls) == 1  # measured once per process (then cached)
    # two calibration dimensions: the rate is interpolated in log D too, so the winner can change with D
    fake2 = {"queries": [1, 512], "dims": [128, 320], "gflops": {n: [[1.0, 1.0], [1.0, 1.0]] for n in names}}
    fake2["gflops"][names[0]] = [[1.0, 8.0], [1.0, 2.0]]
    fake2["gflops"][names[-1]] = [[1.0, 2.0], [1.0, 8.0]]
    assert sp._rate(fake2, names[0], 512, 128) == 8.0 and sp._rate(fake2, names[0], 512, 1000) == 2.0
    assert abs(sp._rate(fake2, names[0], 512, int((128 * 320) ** 0.5)) - 5.0) < 0.02  # halfway in log D (202: rounded)
    monkeypatch.setattr(sp, "_table", {"key": sp._key(torch.get_num_threads()), "entry": fake2})
    assert sp.choose(512, 100_000, 128).name == names[0]
    assert sp.choose(512, 100_000, 300).name == names[-1]
    assert sp.choose(200, 10, 10).name == names[0]  # small: the measurements already taken...
    monkeypatch.setattr(sp, "_table", None)
    n = len(calls)
    assert sp.choose(200, 10, 10).name == sp.default(200).name and len(calls) == n  # ...else the default, unmeasured
    monkeypatch.setenv("FASTREPR_SEARCH_CALIBRATE", "0")
    assert sp.choose(200, 100_000, 300).name == sp.default(200).name
    monkeypatch.setenv("FASTREPR_SEARCH_PATH", "nope")
    with pytest.raises(ValueError, match="FASTREPR_SEARCH_PATH"):
        sp.choose(1, 10, 10)


def test_a_cached_calibration_without_a_path_offered_now_is_measured_again(monkeypatch, tmp_path):
    """A cache written before a path existed (its rate would read 0 forever) is measured again by the first
    large search; a small one uses it as it is and measures nothing."""
    import json

    sp = _isolated_plan(monkeypatch, tmp_path)
    names = list(sp.available())
    old = {"queries": [1, 512], "dims": [128, 320], "rows": 1, "measured": "", "time": __import__("time").time(),
           "gflops": {n: [[1.0, 1.0], [1.0, 1.0]] for n in names[:-1]}}
    (tmp_path / "search-paths.json").write_text(json.dumps({sp._key(2): old}))
    calls = []
    fresh = dict(old, gflops={n: [[1.0, 1.0], [1.0, 1.0]] for n in names})
    monkeypatch.setattr(sp, "calibrate", lambda threads=None, save=True: calls.append(1) or fresh)
    assert sp._calibration(2, measure=False) == old and not calls
    assert sp._calibration(2) == fresh and len(calls) == 1
    assert sp._calibration(2) == fresh and len(calls) == 1  # then kept


def test_calibration_is_cached_atomically(monkeypatch, tmp_path):
    from fastrepr import _native
    from fastrepr.ops import _search_plan as sp

    if not _native.available()[0]:
        pytest.skip("native extension not built")
    monkeypatch.setenv("FASTREPR_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(sp, "CAL_ROWS", 512)
    monkeypatch.setattr(sp, "CAL_QUERIES", (1, 8))
    monkeypatch.setattr(sp, "_table", None)
    monkeypatch.setattr(sp, "_busy", lambda: False)
    entry = sp.calibrate(2)
    assert set(entry["gflops"]) == set(sp.available()) and all(r > 0 for v in entry["gflops"].values() for per_dim in v for r in per_dim)
    files = list(tmp_path.iterdir())
    assert [f.name for f in files] == ["search-paths.json"]  # no temporary file left behind
    assert sp._calibration(2) == entry  # read back, not measured again
    # measured on a busy machine: used, not cached
    (tmp_path / "search-paths.json").unlink()
    monkeypatch.setattr(sp, "_busy", lambda: True)
    assert sp.calibrate(2)["busy"] and not (tmp_path / "search-paths.json").exists()


def test_native_entry_points_reject_bad_calls():
    """Wrong calls of the _C entry points from inside the package raise ValueError, never crash."""
    import numpy as np

    from fastrepr import _native

    if not _native.available()[0]:
        pytest.skip("native extension not built")
    C = _native.get()
    q, v = np.zeros((3, 4), np.float32), np.zeros((10, 4), np.float32)
    ov, oi = np.zeros((3, 5), np.float32), np.zeros((3, 5), np.int64)
    cases = [
        (dict(K=11), "K must lie"), (dict(K=0), "K must lie"), (dict(blas=99), "unknown handle"),
        (dict(block_q=0), "block_q"), (dict(block_q=1 << 17), "block_q"), (dict(block_v=1 << 13, block_q=1 << 12), "block_q"),
        (dict(vectors=np.zeros((10, 5), np.float32)), "columns"), (dict(vsq=np.zeros(9, np.float32)), "vsq"),
        (dict(out_v=np.zeros((3, 4), np.float32)), r"\[Q, K\]"), (dict(queries=np.zeros((3, 4))), "bytes"),
        (dict(queries=np.zeros((4, 3), np.float32).T), "contiguous"), (dict(vectors=np.zeros((0, 4), np.float32), K=1), "R, D >= 1"),
    ]
    for change, msg in cases:
        args = dict(queries=q, vectors=v, vsq=None, K=5, blas=0, block_q=4, block_v=8, out_v=ov, out_i=oi)
        args.update(change)
        with pytest.raises(ValueError, match=msg):
            C.topk_scan(**args)
    if C.topk_int8_supported():
        args = dict(queries=q, vectors=v, vsq=None, K=5, blas=0, block_q=4, block_v=8, out_v=ov, out_i=oi)
        for change, msg in [(dict(filter_stats=np.zeros((2, 4))), r"\[2, Q\]"), (dict(filter_stats=np.zeros((3, 2))), r"\[2, Q\]"),
                            (dict(filter_stats=np.zeros((2, 3), np.float32)), "bytes"),
                            (dict(filter_stats=np.zeros((2, 3)), blas=1), "blas")]:
            with pytest.raises(ValueError, match=msg):
                C.topk_scan(**{**args, **change})
    x = np.zeros((3, 4))
    ok = np.zeros(3, np.uint8)
    good = dict(x=x, vectors=v, cand=np.zeros((3, 2), np.int64), scale=None, approx=np.zeros((3, 2)), bound=np.zeros(3),
                excl=np.zeros((3, 0), np.int64), l2=False, out_v=np.zeros((3, 2), np.float32),
                out_i=np.zeros((3, 2), np.int64), ok=ok)
    C.topk_refine(**good)
    for change, msg in [(dict(cand=np.full((3, 2), 10, np.int64)), "outside"), (dict(cand=np.full((3, 2), -2, np.int64)), "outside"),
                        (dict(approx=np.zeros((3, 1))), "agree"), (dict(cand=np.zeros((3, 0), np.int64)), "Kc >= 1"),
                        (dict(out_v=np.zeros((3, 0), np.float32), out_i=np.zeros((3, 0), np.int64)), "k >= 1"),
                        (dict(vectors=np.zeros((10, 3), np.float32)), "D = x.shape"),
                        (dict(scale=np.zeros(2)), "scale")]:
        with pytest.raises(ValueError, match=msg):
            C.topk_refine(**{**good, **change})
    handle, why = C.topk_blas_register("/nonexistent/libnothing.so")
    assert handle == 0 and "not loaded" in why
    S, rows = np.zeros((3, 5), np.float32), np.zeros((2, 3), np.int64)
    merge = dict(S=S, rows=rows, scale=np.ones(2, np.float32), mode=1, excl=np.zeros((2, 0), np.int64), col0=0,
                 top_v=np.zeros((2, 4), np.float32), top_i=np.zeros((2, 4), np.int64))
    C.topk_merge(**merge)
    for change, msg in [(dict(rows=np.zeros((2, 2), np.int64)), r"\[Q, 3\]"), (dict(scale=np.ones(3, np.float32)), "agree"),
                        (dict(top_i=np.zeros((2, 3), np.int64)), "agree"),
                        (dict(top_v=np.zeros((2, 0), np.float32), top_i=np.zeros((2, 0), np.int64)), "K must be"),
                        (dict(rows=np.full((2, 3), -1, np.int64)), "outside")]:
        with pytest.raises(ValueError, match=msg):
            C.topk_merge(**{**merge, **change})


def _tied_unit(R, D, seed):
    """Unit rows with entries in {0, +-1/2}: every cosine is a multiple of 1/4, so many scores tie exactly."""
    g = torch.Generator().manual_seed(seed)
    u = torch.zeros(R, D)
    for r in range(R):
        u[r, torch.randperm(D, generator=g)[:4]] = 0.5 * (2 * torch.randint(0, 2, (4,), generator=g).float() - 1)
    return u


@pytest.mark.parametrize("data", ["random", "tied"])
def test_cosadd_routes_give_identical_answers(data, monkeypatch):
    """3CosAdd through the distinct words' cosines and through one search query per question: the same
    rows and scores (the float64 ranking of the reference), on shared and on nearly distinct question words."""

    use_impl("native", monkeypatch)
    R, D = 1500, 24
    u = _unit(R, D, "cpu", seed=2) if data == "random" else _tied_unit(R, 8, 4)
    g = torch.Generator().manual_seed(6)
    shared = torch.randint(0, 40, (300, 3), generator=g)
    distinct = torch.randperm(R, generator=g)[:900].view(300, 3)
    assert at.cosadd_route(300, 40, R, D) == "distinct" and at.cosadd_route(300, 900, R, D) == "search"
    for words in (shared, distinct):
        want = reference.analogy_topk(u, words, 7, "3cosadd")
        one = at.cosadd_native(u, words, 7, route="distinct")
        two = at.cosadd_native(u, words, 7, route="search")
        assert torch.equal(one[1], two[1]) and torch.equal(one[0], two[0])
        assert torch.equal(one[1], want[1])
        torch.testing.assert_close(one[0], want[0], rtol=0, atol=1e-7)
        assert torch.equal(at.analogy_topk(u, words, 7, "3cosadd")[1], want[1])


@pytest.mark.parametrize("impl", ANALOGY_IMPLS)
def test_analogy_k_above_the_rows(impl, monkeypatch):
    device = _on(impl, monkeypatch)
    u = _unit(12, 6, device)
    words = torch.tensor([[0, 1, 2], [3, 3, 4]], device=device)
    for method in ("3cosadd", "3cosmul"):
        s, i = at.analogy_topk(u, words, 50, method)
        assert s.shape == i.shape == (2, 12)  # k' = min(k, rows)
        assert (i[0, 9:] == -1).all() and (i[1, 10:] == -1).all() and (i[:, :9] >= 0).all()
        assert torch.isneginf(s[0, 9:]).all()


# ---------------------------------------------------------------------------------------------------------
# the shared accumulator (ops/_topk.py) and the declared implementations

def test_topk_accumulator_keeps_the_oracle_ranking():
    """Blocks pushed in any column order, ids shared or per row, many exact ties and -inf entries: the
    finalized lists are the stable sort of the whole row (score descending, lower id first), padded (-inf, -1)."""
    g = torch.Generator().manual_seed(5)
    n, R, k = 7, 90, 12
    full = torch.randint(-3, 4, (n, R), generator=g).double()
    full[:, ::7] = float("-inf")  # masked entries never rank
    full[0, :] = float("-inf")
    full[0, :5] = 1.0  # a row with fewer than k candidates
    want_v, want_i = torch.sort(full, dim=1, descending=True, stable=True)
    want_v, want_i = want_v[:, :k], torch.where(torch.isneginf(want_v[:, :k]), -1, want_i[:, :k])
    perm = torch.randperm(R, generator=g)
    for shared in (True, False):
        lists = _topk.TopK(n, k, dtype=torch.float64)
        for c0 in range(0, R, 17):  # blocks of a shuffled column order
            cols = perm[c0:c0 + 17]
            lists.push(full[:, cols], cols if shared else cols.expand(n, -1))
        v, i = lists.finalize()
        assert i.dtype == torch.int64 and torch.equal(i, want_i) and torch.equal(v, want_v)
    parts = _topk.TopK(n, k, parts=3, width=16, index_dtype=torch.int32)  # Triton's partial-list layout
    assert parts.scores.shape == parts.ids.shape == (n, 3, 16) and parts.ids.dtype == torch.int32
    assert torch.equal(parts.ids[0, 0, :3], torch.tensor([-1, -2, -3], dtype=torch.int32))  # distinct padding
    for p in range(3):  # each part holds the columns p, p + 3, ... (unsorted, as the kernels leave them)
        cols = torch.arange(p, R, 3)[:16]
        parts.scores[:, p, :cols.numel()] = full[:, cols].float()
        parts.ids[:, p, :cols.numel()] = cols.int()
    v, i = parts.finalize()
    cols = torch.cat([torch.arange(p, R, 3)[:16] for p in range(3)]).sort().values
    ref_v, ref_i = torch.sort(full[:, cols], dim=1, descending=True, stable=True)
    ref_i = torch.where(torch.isneginf(ref_v[:, :k]), -1, cols[ref_i[:, :k]])
    assert torch.equal(i, ref_i) and torch.equal(v, ref_v[:, :k].float())
    with pytest.raises(RuntimeError, match="sorted"):
        parts.push(full[:, :4].float(), torch.arange(4))


def test_table_lists_the_declared_implementations():
    rows = {(op, impl) for op, impl, _, _ in _backend.table()}
    for op, impls in (("topk_search", ts.IMPLS), ("analogy_topk", at.IMPLS)):
        assert impls.names == ("triton", "native", "torch")
        assert _backend.OPS[op] is impls
        assert {impl for o, impl in rows if o == op} == set(impls.names)


@pytest.mark.parametrize("impl", SEARCH_IMPLS)
def test_recording_names_the_implementation_that_ran(impl, monkeypatch):
    device = _on(impl, monkeypatch)
    u = _unit(40, 6, device)
    with _backend.recording() as ran:
        ts.topk_search(u[:3], u, 4, False)
        at.analogy_topk(u, torch.tensor([[0, 1, 2]], device=device), 2, "3cosmul")
    assert ran == {"topk_search": impl, "analogy_topk": impl}


def test_custom_ops_take_no_backend_argument():
    """FASTREPR_BACKEND is the one override: the schemas have no backend string any more."""
    for op in (torch.ops.fastrepr.topk_search.default, torch.ops.fastrepr.analogy_topk.default):
        assert "backend" not in [a.name for a in op._schema.arguments]


def test_int8_filter_learns_its_candidate_count_from_a_pilot(monkeypatch):
    """A search of 4·PILOT queries or more on a filter scans the first PILOT with 3k + 32 candidates and the
    rest with what the pilot needed (fewer here: unit rows, D = 128), and still returns the float64
    reference's rows and scores, ip and l2, with exclusions (which take candidate slots)."""
    from fastrepr import _native
    from fastrepr.ops import _search_plan as sp

    if not (_native.available()[0] and _native.get().topk_int8_supported()):
        pytest.skip("int8 filter not available (native extension, x86 AVX2)")
    g = torch.Generator().manual_seed(8)
    v = torch.nn.functional.normalize(torch.randn(20000, 128, generator=g), dim=1)
    q = torch.nn.functional.normalize(torch.randn(4 * ts.PILOT + 3, 128, generator=g), dim=1)
    excl = torch.randint(0, 20000, (q.shape[0], 2), generator=g)
    seen = []
    real_scan = ts.scan
    monkeypatch.setattr(ts, "scan", lambda path, qq, *a, **kw: seen.append((path.name, qq.shape[0], a[1])) or
                        real_scan(path, qq, *a, **kw))
    k = 50
    for l2 in (False, True):
        seen.clear()
        got = ts.exact_search(q, v, k, l2, excl=excl, path=sp.available()["int8"])
        first, second = seen[0], seen[1]
        assert first == ("int8", ts.PILOT, 3 * k + 32 + 2)
        assert second[0] == "int8" and second[1] == q.shape[0] - ts.PILOT and k + 2 < second[2] < 3 * k + 32 + 2
        s = (torch.cdist(q.double(), v.double()).square() if l2 else -(q.double() @ v.double().T))
        s[torch.arange(q.shape[0])[:, None], excl] = float("inf")
        want = torch.sort(s, dim=1, stable=True)
        assert torch.equal(got[1], want.indices[:, :k])
        wv = (want.values[:, :k] if l2 else -want.values[:, :k]).float()
        torch.testing.assert_close(got[0], wv, rtol=0, atol=1e-12 if l2 else 0)  # (l2: cdist's own rounding)


@pytest.mark.parametrize("table", [False, True])
def test_int8_seeded_lists_report_missing_places_with_a_true_bound(table):
    """At K >= 128 the int8 scan seeds each list with the 16th best score of a row sample whose first panel is
    rows 0-15 (csrc/topk_scan.cpp). Rows 0-15 here score about 0.7 and 150 rows elsewhere about 0.8, so fewer
    than K rows beat the seed: the scan reports the missing places as row -1 with the seed's score, which must
    bound every row it left out (within the filter's bound), and the search still returns the float64 ranking."""
    from fastrepr import _native
    from fastrepr.ops import _search_plan as sp

    if not (_native.available()[0] and _native.get().topk_int8_supported()):
        pytest.skip("int8 filter not available (native extension, x86 AVX2)")
    g = torch.Generator().manual_seed(11)
    R, D, k = 8192, 64, 100
    e = torch.nn.functional.normalize(torch.randn(D, generator=g), dim=0)
    q = torch.nn.functional.normalize(e + 0.05 * torch.randn(6, D, generator=g), dim=1)
    v = torch.randn(R, D, generator=g)
    v -= (v @ e)[:, None] * e  # random rows orthogonal to e (scores near 0)
    v = torch.nn.functional.normalize(v, dim=1)
    high = 16 + torch.randperm(R - 16, generator=g)[:150]
    v[:16] = v[:16] * 0.7 + e * 0.7
    v[high] = v[high] * 0.6 + e * 0.8
    v = torch.nn.functional.normalize(v, dim=1)
    path = sp.available()["int8-table" if table else "int8"]
    rows8 = ts.int8_table(v) if table else None
    K = ts.filter_candidates(k)
    qn = torch.linalg.vector_norm(q, dim=1, dtype=torch.float64)
    vsq, vmax = ts.check_inputs(q, v, None, False)
    exact = q.double() @ v.double().T
    for l2 in (False, True):
        vals, ids, errors = ts.scan(path, q, v, K, vsq if l2 else None, 2, rows8)
        bound = ts._bound(path, qn, vmax, D, l2, errors)
        vals = vals.double()
        score = 2 * exact - v.double().square().sum(1) if l2 else exact  # what the l2 scan ranks by
        for r in range(q.shape[0]):
            kept = ids[r][ids[r] >= 0]
            assert 0 < kept.numel() < K and torch.all(ids[r, kept.numel():] == -1)
            pad = vals[r, -1]
            left = torch.ones(R, dtype=torch.bool)
            left[kept] = False
            assert float(score[r][left].max()) <= float(pad + bound[r])  # (l2: |q|^2 - score is the distance)
            assert torch.all(vals[r, :kept.numel()] >= pad)
        got = ts.exact_search(q, v, k, l2, path=path, int8_rows=rows8)
        want = reference.topk_search(q, v, k, l2)
        assert torch.equal(got[1], want[1])


@pytest.mark.parametrize("l2", [False, True])
def test_refinement_in_row_order_matches_query_order_bit_for_bit(l2):
    """With at least R/2 candidates to score, the refinement reads their rows in row order (csrc/topk.cpp);
    one query at a time it reads them query by query. Same scores, rows and certificates either way, with
    exclusions, missing candidates (-1) and an analogy-style scale."""
    from fastrepr import _native

    if not _native.available()[0]:
        pytest.skip("native extension not built")
    g = torch.Generator().manual_seed(12)
    R, D, Q, Kc, k = 2000, 37, 64, 40, 10
    v = torch.randn(R, D, generator=g)
    x = torch.randn(Q, D, generator=g, dtype=torch.float64)
    exact = torch.cdist(x, v.double()).square() if l2 else x @ v.double().T
    approx, cand = torch.sort(exact + 1e-3 * torch.randn(Q, R, generator=g, dtype=torch.float64), dim=1,
                              descending=not l2)
    approx, cand = approx[:, :Kc].contiguous(), cand[:, :Kc].contiguous()
    cand[3, 5] = -1
    excl = cand[:, 2:3].clone()
    excl[::2] = -1
    bound = 0.6 * (approx[:, k + 1] - approx[:, -1]).abs()  # (the k-th non-excluded is at most k + 1 in)
    scale = None if l2 else torch.rand(Q, generator=g, dtype=torch.float64) + 0.5
    whole = ts.refine(x, v, cand, approx, bound, excl, l2, k, 2, scale)
    # every candidate lies within 2 bounds of the k-th: the row-order pass runs for the whole batch (2 Q Kc >= R),
    # not for one query
    assert 2 * Q * Kc >= R and Kc < R / 2
    parts = [ts.refine(x[q:q + 1], v, cand[q:q + 1], approx[q:q + 1], bound[q:q + 1], excl[q:q + 1], l2, k, 2,
                       None if scale is None else scale[q:q + 1]) for q in range(Q)]
    for got, want in zip(whole, (torch.cat(p) for p in zip(*parts))):
        assert torch.equal(got, want)
    assert bool(whole[2].any())
