"""`fastrepr disentangle`, the demo section and the benchmark entry of the disentanglement suite."""
import pytest

from fastrepr import bench, cli, demo
from fastrepr.evaluation import suite


def test_cli_prints_a_table(capsys):
    assert cli.main(["disentangle", "--scale", "tiny", "--metrics", "mig,unsupervised", "--representation", "rotated"]) == 0
    out = capsys.readouterr().out
    assert "discrete_mig" in out and "mutual_info_score" in out and "total" in out


def test_cli_compares_with_the_reference(capsys):
    assert cli.main(["disentangle", "--scale", "small", "--metrics", "mig", "--compare-reference"]) == 0
    out = capsys.readouterr().out
    assert "reference" in out and "speed-up" in out and "| ok" in out


def test_cli_takes_a_module_function_and_rejects_bad_names(capsys):
    assert cli.main(["disentangle", "--scale", "tiny", "--metrics", "mig",
                     "--representation", "fastrepr.evaluation.representations:factors"]) == 0
    assert cli.main(["disentangle", "--metrics", "nope"]) == 2
    assert "unknown metric" in capsys.readouterr().err
    assert cli.main(["disentangle", "--representation", "nope"]) == 2


def test_scales_divide_the_study_sizes():
    study, small = suite.config("study"), suite.config("small")
    assert study["dci"] == {"num_train": 10000, "num_test": 5000}
    assert small["factor_vae"] == {"num_train": 1000, "num_eval": 500, "num_variance_estimate": 1000}


def test_demo_section_shows_the_rotation_effect(capsys):
    tiny = {m: {k: max(2, v // 10) for k, v in kw.items()} for m, kw in demo.DEMO_SIZES.items()}
    out = demo.disentanglement(sizes=tiny)
    s = out["scores"]
    assert s["factors"]["mig"]["discrete_mig"] > 2 * s["rotated"]["mig"]["discrete_mig"]
    assert s["factors"]["dci"]["disentanglement"] > s["rotated"]["dci"]["disentanglement"]
    assert abs(s["noise"]["mig"]["discrete_mig"]) < 0.1
    assert out["importance_diff"] < 1e-9
    assert "Theorem 1" in capsys.readouterr().out


def test_bench_entry_is_registered():
    entry = bench.REGISTRY["disentanglement_suite"]
    assert entry.size_names == ("N",) and entry.sizes["cpu"] == []
    x = entry.setup((40,), __import__("torch").device("cpu"), None)
    assert x["cfg"]["dci"] == {"num_train": 40, "num_test": 20}
