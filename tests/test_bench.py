"""The benchmark harness: memory measurement, timing, CSV, plots, and the `fastrepr bench` command."""
import csv
import subprocess
import sys

import pytest
import torch

from fastrepr import _backend, bench, cli
from fastrepr.bench import harness

CPU = torch.device("cpu")


def test_peak_memory_sees_allocations_and_frees():
    mb = 2**20
    big = bench.peak_memory(lambda: torch.ones(64 * mb // 4), CPU)
    assert 60 * mb <= big <= 80 * mb, big
    # memory freed by an earlier call must not hide the next one (malloc_trim before measuring)
    again = bench.peak_memory(lambda: torch.ones(64 * mb // 4), CPU)
    assert again >= 60 * mb, again
    transient = bench.peak_memory(lambda: torch.ones(32 * mb // 4).sum(), CPU)  # peak, not what is left
    assert transient >= 30 * mb, transient
    assert bench.peak_memory(lambda: None, CPU) < 4 * mb


def test_time_pair_orders_cheap_and_expensive():
    x = torch.randn(512, 512)
    cheap, costly = bench.time_pair(lambda: x.sum(), lambda: x @ x @ x, CPU, budget_s=0.2)
    assert 0 < cheap < costly


def test_run_table_csv_and_plot(tmp_path):
    rows = bench.run(["pairwise_abs_diff_mean"], ["2000x300x8x4", "2000x600x8x4"], device="cpu", budget_s=0.05)
    assert [r.size for r in rows] == ["N=2000 P=300 B=8 D=4", "N=2000 P=600 B=8 D=4"]
    assert all(r.ours_ms > 0 and r.baseline_ms > 0 for r in rows)
    table = bench.format_table(rows)
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert header == ["op", "size", "impl", "ours", "baseline", "speed-up", "peak mem ours", "peak mem baseline"]
    path = bench.save_csv(rows, tmp_path / "results", "cpu")
    bench.save_csv(rows[:1], tmp_path / "results", "cpu")  # appends, header once
    recs = list(csv.DictReader(path.open()))
    assert len(recs) == 3 and recs[0]["op"] == "pairwise_abs_diff_mean" and recs[0]["torch"] == torch.__version__
    plots = bench.plot(tmp_path / "results", tmp_path / "plots")
    assert [p.name for p in plots] == ["pairwise_abs_diff_mean.png"] and plots[0].stat().st_size > 1000


def test_cli_bench_writes_results(tmp_path, capsys):
    rc = cli.main(["bench", "--op", "pairwise_abs_diff_mean_dense", "--sizes", "100x8x4", "--budget", "0.05",
                   "--results-dir", str(tmp_path / "r"), "--plots-dir", str(tmp_path / "p")])
    out = capsys.readouterr().out
    assert rc == 0 and "| op" in out and "speed-up" in out
    assert len(list((tmp_path / "r").glob("*.csv"))) == 1
    assert (tmp_path / "p" / "pairwise_abs_diff_mean_dense.png").exists()


def test_cli_bench_rejects_unknown_op_and_bad_size(capsys):
    assert cli.main(["bench", "--op", "nope", "--no-save"]) == 2
    assert "unknown benchmark" in capsys.readouterr().err
    assert cli.main(["bench", "--op", "pairwise_abs_diff_mean", "--sizes", "10x10", "--no-save"]) == 2
    assert "must give NxPxBxD" in capsys.readouterr().err


def test_python_m_fastrepr_info():
    res = subprocess.run([sys.executable, "-m", "fastrepr", "info"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    for word in ("torch", "native", "triton", "CUDA", "faiss", "faiss GPU"):
        assert word in res.stdout


def _toy_bench(op):
    impls = _backend.declare(op, _backend.Impls(native=lambda x: x * 2, torch=lambda x: x + x))
    return bench.Bench(op=op, baseline_name="x + x", size_names=("N",), sizes={"cpu": [(64,)]},
                       setup=lambda size, device, dtype: {"x": torch.ones(size[0], device=device, dtype=dtype)},
                       ours=lambda x: _backend.dispatch(op, impls, x["x"]), baseline=lambda x: x["x"] + x["x"])


@pytest.fixture
def toy(monkeypatch):
    """A toy op declared through _backend.declare/dispatch, registered for the test only."""
    monkeypatch.setattr(_backend, "OPS", dict(_backend.OPS))
    monkeypatch.setattr(bench.registry, "REGISTRY", dict(bench.REGISTRY))
    entry = bench.register(_toy_bench("toy_bench_op"))
    return entry


def test_rows_name_the_implementation_that_ran(toy, monkeypatch):
    native_ok = _backend.available("native")[0]
    (row,) = bench.run(["toy_bench_op"], device="cpu", budget_s=0.01)
    assert row.impl == ("native" if native_ok else "torch")
    monkeypatch.setenv("FASTREPR_BACKEND", "torch")
    (row,) = bench.run(["toy_bench_op"], device="cpu", budget_s=0.01)
    assert row.impl == "torch"
    assert "| torch " in bench.format_table([row])


def test_impl_is_a_dash_when_nothing_was_recorded_and_lists_mixed_ops():
    assert bench.impl_label({}) == "-"
    assert bench.impl_label({"a": "native", "b": "native"}) == "native"
    assert bench.impl_label({"b": "torch", "a": "native"}) == "a=native, b=torch"
    entry = bench.Bench(op="plain", baseline_name="same", size_names=("N",), sizes={"cpu": [(8,)]},
                        setup=lambda s, d, t: {"x": torch.ones(s[0])}, ours=lambda x: x["x"] * 2,
                        baseline=lambda x: x["x"] * 2)
    row = harness.measure(entry, (8,), CPU, 0.01, bench.recorded_impl)
    assert row.impl == "-"


def test_info_ops_prints_the_backend_table(toy, capsys):
    assert cli.main(["info", "--ops"]) == 0
    out = capsys.readouterr().out
    header = [c.strip() for c in out.splitlines()[0].strip("|").split("|")]
    assert header == ["op", "implementation", "available here", "why not"]
    rows = {tuple(c.strip() for c in line.strip("|").split("|"))[:3] for line in out.splitlines()[2:]}
    ok = "yes" if _backend.available("native")[0] else "no"
    assert ("toy_bench_op", "native", ok) in rows and ("toy_bench_op", "torch", "yes") in rows
    assert len(rows) == len(_backend.table())


def test_loss_entries_time_forward_backward_and_both():
    for op in ("nt_xent", "info_nce", "sup_con"):
        assert {op, f"{op}_forward", f"{op}_backward"} <= set(bench.REGISTRY)
    rows = bench.run(["nt_xent_forward", "nt_xent_backward", "nt_xent"], ["64x8"], device="cpu", budget_s=0.01)
    assert [r.op for r in rows] == ["nt_xent_forward", "nt_xent_backward", "nt_xent"]
    assert all(r.ours_ms > 0 and r.baseline_ms > 0 for r in rows)
    entry = bench.REGISTRY["nt_xent_backward"]
    x = entry.setup((64, 8), CPU, torch.float32)
    ours, base = entry.ours(x).clone(), entry.baseline(x).clone()
    assert torch.allclose(entry.ours(x), ours) and torch.allclose(ours, base, atol=1e-5)  # same graph, same grad


def test_every_entry_has_a_smallest_size_and_the_demo_sizes_are_registry_sizes():
    for name, entry in bench.REGISTRY.items():
        if entry.sizes.get("cpu") or entry.test_size:
            assert entry.smallest("cpu") is not None, name
        for device, size in entry.demo.items():
            assert size in entry.sizes[device], (name, device)
    assert any(e.demo.get("cpu") for e in bench.REGISTRY.values())


def test_the_entry_modules_import_only_the_harness_and_the_public_api():
    import ast
    import inspect

    for module in bench.ENTRY_MODULES:
        tree = ast.parse(inspect.getsource(module))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level:
                assert node.module == "harness" and node.level == 2, (module.__name__, node.module)
            names = ([node.module] if isinstance(node, ast.ImportFrom) and not node.level else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name and name.startswith("fastrepr"):
                    assert not any(p.startswith("_") for p in name.split(".")), (module.__name__, name)
