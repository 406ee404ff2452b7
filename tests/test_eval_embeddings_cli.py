"""``fastrepr eval-embeddings``: the table, the PNGs, and one-line errors (exit 2) on bad files."""
import numpy as np
import pytest

from fastrepr.cli import main


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 120)
    z = (rng.standard_normal((3, 8))[y] * 4 + rng.standard_normal((120, 8))).astype(np.float32)
    np.save(tmp_path / "z.npy", z)
    np.save(tmp_path / "y.npy", y)
    np.save(tmp_path / "p.npy", np.stack([np.arange(0, 120, 2), np.arange(1, 120, 2)], 1))
    return tmp_path, z, y


def test_report_numbers_and_plots(files, capsys):
    pytest.importorskip("matplotlib")
    from sklearn.metrics import silhouette_score

    d, z, y = files
    rc = main(["eval-embeddings", str(d / "z.npy"), "--labels", str(d / "y.npy"), "--pairs", str(d / "p.npy"),
               "--out", str(d / "out"), "--no-progress"])
    out = capsys.readouterr().out
    assert rc == 0
    line = next(row for row in out.splitlines() if "silhouette (euclidean)" in row)
    assert abs(float(line.split("|")[2]) - silhouette_score(z, y)) < 1e-5
    assert "recall@1 (pairs, cosine)" in out and "mAP" in out
    for name in ("spectrum.png", "projection.png", "silhouette.png"):
        assert (d / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_embeddings_only(files, capsys):
    d, _, _ = files
    assert main(["eval-embeddings", str(d / "z.npy"), "--no-progress"]) == 0
    assert "dimension" in capsys.readouterr().out


@pytest.mark.parametrize("make, flag", [
    (lambda d: np.save(d / "bad.npy", np.array([{}], dtype=object), allow_pickle=True), "embeddings"),
    (lambda d: (d / "bad.npy").write_bytes(b"not an npy file"), "embeddings"),
    (lambda d: np.save(d / "bad.npy", np.ones(5)), "embeddings"),
])
def test_bad_embeddings_one_line_exit_2(files, capsys, make, flag):
    d, _, _ = files
    make(d)
    assert main(["eval-embeddings", str(d / "bad.npy")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err


def test_bad_labels_and_pairs(files, capsys):
    d, _, _ = files
    np.save(d / "short.npy", np.zeros(3, dtype=np.int64))
    assert main(["eval-embeddings", str(d / "z.npy"), "--labels", str(d / "short.npy")]) == 2
    assert "--labels" in capsys.readouterr().err
    np.save(d / "far.npy", np.array([[0, 500]]))
    assert main(["eval-embeddings", str(d / "z.npy"), "--pairs", str(d / "far.npy")]) == 2
    assert "--pairs" in capsys.readouterr().err
    assert main(["eval-embeddings", str(d / "missing.npy")]) == 2


def test_demo_embedding_numbers_section(capsys):
    import torch

    from fastrepr.cli import demo

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    x = torch.nn.functional.one_hot(labels, 64).float() + 0.05 * torch.rand(60, 64, generator=g)
    identity = torch.nn.Identity()
    rows = demo.embedding_numbers(torch.nn.Linear(64, 8), identity, x, labels, g)
    assert rows["silhouette (cosine)"][1] > 0.5 and rows["kNN top-1 (k=20, cosine)"][1] == 1.0
    assert "before" in capsys.readouterr().out
