"""`fastrepr demo` runs and its first section shows what it claims."""
from fastrepr import cli, demo


def test_pairwise_section_singles_out_the_fixed_factor_only_for_the_identity_code():
    acc = demo.pairwise_differences(points=50, pairs=32)
    assert acc["identity"] == 1.0
    assert acc["rotated"] < 0.6


def test_demo_runs(capsys, tmp_path):
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "identity code" in out and "rotated code" in out and "speed-up" in out


def test_simclr_section_learns():
    out = demo.simclr_digits(steps=60)
    assert out["loss_after"] < out["loss_before"] - 0.3
    assert out["top1_after"] > out["top1_before"]


def test_simclr_section_writes_embeddings_that_eval_embeddings_reads(tmp_path, capsys):
    import matplotlib.image
    import numpy as np

    demo.simclr_digits(steps=5, out=tmp_path)
    out = capsys.readouterr().out
    emb, labels, pairs = (np.load(tmp_path / f"{n}.npy", allow_pickle=False) for n in ("embeddings", "labels", "pairs"))
    n = len(pairs)
    assert emb.shape == (2 * n, 64) and emb.dtype == np.float32 and labels.shape == (2 * n,)
    assert (pairs[:, 1] - pairs[:, 0] == n).all()
    assert "silhouette" in out and "recall@1" in out  # the eval-embeddings table, printed by the demo
    # the same files through the command line, as a user would run it after the demo
    assert cli.main(["eval-embeddings", str(tmp_path / "embeddings.npy"), "--labels", str(tmp_path / "labels.npy"),
                     "--pairs", str(tmp_path / "pairs.npy"), "--out", str(tmp_path / "again"),
                     "--no-progress"]) == 0
    pngs = sorted((tmp_path / "again").glob("*.png"))
    assert {p.name for p in pngs} == {"spectrum.png", "projection.png", "silhouette.png"}
    for p in pngs + sorted((tmp_path / "eval-embeddings").glob("*.png")):
        image = matplotlib.image.imread(p)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100


def test_demo_out_not_writable_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["demo", "--out", str(blocker / "sub")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and ("--out" in err[0] or str(blocker) in err[0])


def test_vae_section_trains_two_models_and_writes_a_traversal(tmp_path, capsys):
    import matplotlib.image

    out = demo.vae_section(seconds=0.5, out=tmp_path)
    assert set(out) == {1.0, 8.0} and all(r["steps"] >= 1 for r in out.values())
    assert all(0 <= r["mig"] <= 1 for r in out.values())
    assert matplotlib.image.imread(tmp_path / "vae" / "traversal.png").ndim == 3
    assert "beta    8" in capsys.readouterr().out
