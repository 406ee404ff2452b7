"""Backend selection, and `import fastrepr` without the optional pieces (native build, triton, faiss)."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import fastrepr
from fastrepr import _backend
from fastrepr.ops import contrastive, mutual_info, pairwise
from utils import impl_device, use_impl


_ALL = _backend.Impls(triton=lambda x: x, native=lambda x: x, torch=lambda x: x)
_NO_NATIVE = _backend.Impls(triton=lambda x: x, torch=lambda x: x)


def _choose(impls, t):
    return _backend.choose("op", impls, t.device, (t,), {})


def test_auto_selection_by_device(monkeypatch):
    monkeypatch.delenv(_backend.ENV, raising=False)
    cpu = torch.zeros(1)
    native_ok = _backend.available("native")[0]
    assert _choose(_ALL, cpu) == ("native" if native_ok else "torch")
    assert _choose(_NO_NATIVE, cpu) == "torch"
    assert _choose(_ALL, torch.zeros(1, device="meta")) == "torch"
    if torch.cuda.is_available() and _backend.available("triton")[0]:
        assert _choose(_ALL, torch.zeros(1, device="cuda")) == "triton"


@pytest.mark.parametrize("name", _backend.BACKENDS)
def test_forced_backend(monkeypatch, name):
    monkeypatch.setenv(_backend.ENV, name)
    if not _backend.available(name)[0]:
        with pytest.raises(RuntimeError, match=f"{_backend.ENV}={name}"):
            _choose(_ALL, torch.zeros(1))
        return
    assert _choose(_ALL, torch.zeros(1)) == name


def test_forced_backend_errors(monkeypatch):
    monkeypatch.setenv(_backend.ENV, "cuda")
    with pytest.raises(ValueError, match="not a backend"):
        _choose(_ALL, torch.zeros(1))
    monkeypatch.setenv(_backend.ENV, "native")
    with pytest.raises(RuntimeError, match="has no native implementation"):
        _choose(_NO_NATIVE, torch.zeros(1))
    if _backend.available("native")[0]:
        with pytest.raises(RuntimeError, match="takes CPU tensors"):
            _choose(_ALL, torch.zeros(1, device="meta"))
    with pytest.raises(ValueError, match="unknown backend"):
        _backend.available("tpu")


def _impls():
    def rejects(name, args, kwargs):
        return "takes no float64" if name == "native" and args[0].dtype == torch.float64 else None
    return _backend.Impls(native=lambda x: ("native", x), torch=lambda x: ("torch", x), rejects=rejects)


def test_dispatch_picks_records_and_passes_over(monkeypatch):
    monkeypatch.delenv(_backend.ENV, raising=False)
    impls = _impls()
    native_ok = _backend.available("native")[0]
    with _backend.recording() as ran:
        name, _ = _backend.dispatch("toy", impls, torch.zeros(2))
    assert name == ("native" if native_ok else "torch") and ran == {"toy": name}
    assert _backend.dispatch("toy", impls, torch.zeros(2, dtype=torch.float64))[0] == "torch"  # rejected
    assert _backend.dispatch("toy", impls, torch.zeros(2, device="meta"))[0] == "torch"
    with pytest.raises(TypeError, match="tensor argument"):
        _backend.dispatch("toy", impls, 3)


def test_no_float64_is_declared_as_data(monkeypatch):
    impls = _backend.Impls(native=lambda x: ("native", x), torch=lambda x: ("torch", x), no_float64=("native",),
                           rejects=lambda name, args, kwargs: "too long" if args[0].numel() > 3 else None)
    assert impls.reason("native", (torch.zeros(2, dtype=torch.float64),), {}) == "takes no float64 on native (torch does)"
    assert impls.reason("torch", (torch.zeros(2, dtype=torch.float64),), {}) is None
    assert impls.reason("native", (torch.zeros(2),), {}) is None
    assert impls.reason("torch", (torch.zeros(5),), {}) == "too long"  # rejects still asked after it
    monkeypatch.delenv(_backend.ENV, raising=False)
    assert _backend.dispatch("toy", impls, torch.zeros(2, dtype=torch.float64))[0] == "torch"


def test_dispatch_forced_errors(monkeypatch):
    impls = _impls()
    monkeypatch.setenv(_backend.ENV, "triton")
    with pytest.raises(RuntimeError, match="toy has no triton implementation"):
        _backend.dispatch("toy", impls, torch.zeros(2))
    if _backend.available("native")[0]:
        monkeypatch.setenv(_backend.ENV, "native")
        with pytest.raises(RuntimeError, match="takes no float64"):
            _backend.dispatch("toy", impls, torch.zeros(2, dtype=torch.float64))
        with pytest.raises(RuntimeError, match="takes CPU tensors"):
            _backend.dispatch("toy", impls, torch.zeros(2, device="meta"))
    only_native = _backend.Impls(native=lambda x: x)
    monkeypatch.delenv(_backend.ENV)
    with pytest.raises(RuntimeError, match="no implementation can take meta tensors"):
        _backend.dispatch("toy2", only_native, torch.zeros(2, device="meta"))


def test_declare_and_table():
    impls = _impls()
    assert _backend.declare("toy_table_op", impls) is impls
    with pytest.raises(ValueError, match="declared twice"):
        _backend.declare("toy_table_op", _impls())
    with pytest.raises(ValueError, match="at least one"):
        _backend.declare("empty_op", _backend.Impls())
    rows = [r for r in _backend.table() if r[0] == "toy_table_op"]
    assert [r[1] for r in rows] == ["native", "torch"]
    assert rows[1][2] is True and rows[0][2] == _backend.available("native")[0]
    del _backend.OPS["toy_table_op"]


# What each op of the losses track declares (its IMPLS): the table that `fastrepr info --ops`, the tests and the
# benchmarks read must list exactly these. contrastive_stats has no native implementation (on CPU the chunked
# torch one runs).
LOSS_OPS = {
    "contrastive_stats": ("triton", "torch"),
    "contrastive_stats_backward": ("triton", "torch"),
    "pairwise_abs_diff_mean": ("triton", "native", "torch"),
    "histogram_mutual_info": ("triton", "native", "torch"),
}
DECLARED = {"contrastive_stats": contrastive.IMPLS, "contrastive_stats_backward": contrastive.BACKWARD_IMPLS,
            "pairwise_abs_diff_mean": pairwise.IMPLS, "histogram_mutual_info": mutual_info.IMPLS}


def test_table_lists_the_loss_ops_with_exactly_their_implementations():
    rows = _backend.table()
    for op, names in LOSS_OPS.items():
        assert _backend.OPS[op] is DECLARED[op] and DECLARED[op].names == names
        assert tuple(r[1] for r in rows if r[0] == op) == names, op
        for _, name, ok, why in (r for r in rows if r[0] == op):
            assert (ok, why) == _backend.available(name)


def _run_op(op: str, device: torch.device) -> None:
    """One call of the public function behind each op (the backward op through a loss's backward)."""
    z1, z2 = torch.randn(4, 3, device=device, requires_grad=True), torch.randn(4, 3, device=device)
    if op.startswith("contrastive_stats"):
        fastrepr.nt_xent(z1, z2).backward()
    elif op == "pairwise_abs_diff_mean":
        fastrepr.pairwise_abs_diff_mean(torch.randn(2, 3, 4, device=device), torch.randn(2, 3, 4, device=device))
    else:
        fastrepr.histogram_mutual_info(torch.randn(20, 2, device=device))


@pytest.mark.parametrize("op, name", [(op, name) for op, names in LOSS_OPS.items() for name in names])
def test_recording_reports_the_implementation_that_ran(monkeypatch, op, name):
    use_impl(name, monkeypatch)
    with _backend.recording() as ran:
        _run_op(op, impl_device(name))
    assert ran[op] == name


def test_recording_reports_the_automatic_choice_on_cpu(monkeypatch):
    monkeypatch.delenv(_backend.ENV, raising=False)
    native = "native" if _backend.available("native")[0] else "torch"
    expect = {"contrastive_stats": "torch", "contrastive_stats_backward": "torch",
              "pairwise_abs_diff_mean": native, "histogram_mutual_info": native}
    for op in LOSS_OPS:
        with _backend.recording() as ran:
            _run_op(op, torch.device("cpu"))
        assert ran[op] == expect[op], op


def test_float64_contrastive_passes_over_triton(monkeypatch):
    """On CUDA tensors contrastive_stats takes triton, except float64 (Impls.rejects), which the torch
    implementation computes in float64 (the choice only reads dtypes, so CPU tensors stand in for CUDA ones)."""
    if not _backend.available("triton")[0]:
        pytest.skip(_backend.available("triton")[1])
    monkeypatch.delenv(_backend.ENV, raising=False)
    cuda = torch.device("cuda")
    for impls in (contrastive.IMPLS, contrastive.BACKWARD_IMPLS):
        for dtype, expect in ((torch.float32, "triton"), (torch.bfloat16, "triton"), (torch.float64, "torch")):
            assert _backend.choose("contrastive_stats", impls, cuda, (torch.zeros(2, 3, dtype=dtype),)) == expect


BLOCKED_IMPORT = textwrap.dedent("""
    import sys
    for name in {blocked!r}:
        sys.modules[name] = None  # makes `import name` raise ImportError
    import torch
    import fastrepr
    from fastrepr import _backend, cli
    z1, z2 = torch.randn(4, 3, 2), torch.randn(4, 3, 2)
    with _backend.recording() as ran:
        out = fastrepr.pairwise_abs_diff_mean(z1, z2)
    assert torch.allclose(out, (z1 - z2).abs().mean(1))
    print("SELECTED", ran["pairwise_abs_diff_mean"])
    for b in _backend.BACKENDS:
        print("AVAILABLE", b, *_backend.available(b))
    cli.main(["info"])
""")


def _run_blocked(blocked, **env):
    code = BLOCKED_IMPORT.format(blocked=blocked)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, **env})
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_import_without_native_triton_and_faiss():
    out = _run_blocked(["fastrepr._C", "triton", "faiss"], FASTREPR_BACKEND="")
    assert "SELECTED torch" in out
    assert "AVAILABLE native False" in out and "not built" in out
    assert "AVAILABLE triton False" in out and "pip install triton" in out
    assert "faiss      no" in out


def test_forced_native_without_build_says_how_to_build():
    code = textwrap.dedent("""
        import sys; sys.modules["fastrepr._C"] = None
        import torch, fastrepr
        try:
            fastrepr.pairwise_abs_diff_mean(torch.randn(2, 3, 4), torch.randn(2, 3, 4))
        except RuntimeError as e:
            print("ERR", e)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "FASTREPR_BACKEND": "native"})
    assert "ERR FASTREPR_BACKEND=native" in res.stdout and "pip install -e ." in res.stdout, res.stdout + res.stderr
