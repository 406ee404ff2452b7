"""`fastrepr eval-words`, the demo's word-benchmark section, and the search/evaluation benchmark entries."""
import numpy as np
import pytest
import torch

from fastrepr import bench, cli, demo
from fastrepr.evaluation import words
from fastrepr.evaluation.synthetic import analogy_vectors
from fastrepr.text import save_word2vec_format

pytest.importorskip("gensim")
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def vector_file(tmp_path_factory):
    arr, keys = analogy_vectors(3000, 32, pair_paths=[words.bundled("wordsim353.tsv")])
    path = tmp_path_factory.mktemp("v") / "vectors.bin"
    save_word2vec_format(path, arr, keys, binary=True)
    glove = path.with_name("glove.txt")
    glove.write_text("".join(f"{k} {' '.join(f'{x:.6f}' for x in row)}\n" for k, row in zip(keys, arr)))
    return path, glove, arr, keys


def test_eval_words_prints_sections_and_pairs(vector_file, capsys):
    path, glove, arr, keys = vector_file
    assert cli.main(["eval-words", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "| section" in out and "capital-common-countries" in out and "Total accuracy" in out
    assert "wordsim353.tsv" in out and "simlex999.txt" in out and "spearman" in out
    # the total line holds gensim's numbers for the same vectors
    from gensim.models import KeyedVectors

    kv = KeyedVectors(32)
    kv.add_vectors(keys, arr)
    total = kv.evaluate_word_analogies(str(words.bundled("questions-words.txt")))[1][-1]
    right, count = len(total["correct"]), len(total["correct"]) + len(total["incorrect"])
    line = next(ln for ln in out.splitlines() if "Total accuracy" in ln)
    assert [c.strip() for c in line.strip("|").split("|")][1:3] == [str(right), str(count)]


def test_eval_words_options(vector_file, capsys, tmp_path):
    path, glove, _, _ = vector_file
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(words.bundled("wordsim353.tsv").read_text().splitlines(keepends=True)[:60]))
    assert cli.main(["eval-words", str(glove), "--method", "3cosmul", "--pairs", str(pairs), "--restrict-vocab",
                     "2000", "--case-sensitive", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "(glove)" in out and "3cosmul, restrict_vocab=2000" in out and "pairs.tsv" in out
    assert cli.main(["eval-words", str(tmp_path / "missing.bin")]) == 2
    assert "missing.bin" in capsys.readouterr().err


def test_demo_word_section():
    out = demo.word_benchmarks(size=3000, dim=32, gensim_questions=300)
    assert out["identical"] is True
    assert 0.2 < out["3cosadd"].score < 1 and 0.2 < out["3cosmul"].score < 1


def test_benchmark_entries_run(tmp_path):
    sizes = {"analogy_eval": "3000x32x100", "analogy_3cosadd": "3000x32x200", "analogy_3cosmul": "3000x32x200",
             "most_similar": "2000x16x20", "knn_probe": "600x100x8"}
    for op, size in sizes.items():
        rows = bench.run([op], [size], device="cpu", budget_s=0.01)
        assert rows[0].ours_ms > 0 and rows[0].baseline_ms > 0, op
    # ours and the PyTorch baseline give the same answers
    spec = bench.REGISTRY["analogy_3cosadd"]
    x = spec.setup((3000, 32, 300), torch.device("cpu"), torch.float32)
    _, ours = spec.ours(x)
    base = spec.baseline(x)
    assert (ours[:, 0] == base[:, 0]).float().mean() > 0.99
    assert np.isfinite(rows[0].speedup)
