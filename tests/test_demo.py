"""`fastrepr demo` runs and its first section shows what it claims."""
from fastrepr import cli, demo


def test_pairwise_section_singles_out_the_fixed_factor_only_for_the_identity_code():
    acc = demo.pairwise_differences(points=50, pairs=32)
    assert acc["identity"] == 1.0
    assert acc["rotated"] < 0.6


def test_demo_runs(capsys):
    assert cli.main(["demo"]) == 0
    out = capsys.readouterr().out
    assert "identity code" in out and "rotated code" in out and "speed-up" in out


def test_simclr_section_learns():
    out = demo.simclr_digits(steps=60)
    assert out["loss_after"] < out["loss_before"] - 0.3
    assert out["top1_after"] > out["top1_before"]
