"""The benchmark harness: memory measurement, timing, CSV, plots, and the `fastrepr bench` command."""
import csv
import subprocess
import sys

import torch

from fastrepr import bench, cli

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
    assert header == ["op", "size", "ours", "baseline", "speed-up", "peak mem ours", "peak mem baseline"]
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
