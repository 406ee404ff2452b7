"""`fastrepr word2vec` and the word2vec section of `fastrepr demo`."""
import importlib.util

import pytest

from fastrepr import cli
from fastrepr.text.corpora import gensim_test_file
from fastrepr.cli.demo import word2vec_demo

HAS_IO = importlib.util.find_spec("fastrepr.text.io") is not None


def test_demo_section_trains_and_compares_with_gensim(capsys):
    out = word2vec_demo(corpus="lee", workers=2)
    text = capsys.readouterr().out
    assert "fastrepr" in text and "gensim" in text and "words/s" in text and "WS353" in text
    assert out["ours_wps"] > 0 and out["gensim_wps"] > 0
    assert -1 <= out["ws"] <= 1


@pytest.mark.skipif(not HAS_IO, reason="fastrepr.text.io (word-vector IO, issue 4) is not on this branch")
def test_cli_writes_vectors_gensim_loads(tmp_path, capsys):
    from gensim.models import KeyedVectors

    out = tmp_path / "vectors.txt"
    rc = cli.main(["word2vec", str(gensim_test_file("lee_background.cor")), "-o", str(out), "--size", "20",
                   "--epochs", "1", "--threads", "2", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    kv = KeyedVectors.load_word2vec_format(str(out))
    assert kv.vector_size == 20 and len(kv) > 1000


def test_cli_errors_are_clear(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    args = ["word2vec", str(empty), "-o", str(tmp_path / "v.txt"), "--quiet"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert ("corpus is empty" in err) if HAS_IO else ("fastrepr.text.io" in err)
    assert cli.main(["word2vec", str(empty), "-o", str(tmp_path / "v.txt"), "--negative", "0", "--hs", "0"]) == 2
    assert "negative=0 with hs=0" in capsys.readouterr().err
    assert cli.main(["word2vec", str(empty), "-o", str(tmp_path / "v.txt"), "--size", "0"]) == 2
    assert "vector_size must be" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_IO, reason="fastrepr.text.io (word-vector IO, issue 4) is not on this branch")
def test_cli_update_rule_flags_reach_the_trainer(tmp_path, capsys, monkeypatch):
    """--update/--saturation/--sigmoid are the Word2Vec options of the same names (seen by the trainer)."""
    from fastrepr.text import word2vec as w2v

    seen = {}
    real_train = w2v.Word2Vec.train

    def spy(self, *a, **kw):
        seen.update(update=self.update, saturation=self.saturation, sigmoid=self.sigmoid)
        return real_train(self, *a, **kw)

    monkeypatch.setattr(w2v.Word2Vec, "train", spy)
    out = tmp_path / "vectors.txt"
    rc = cli.main(["word2vec", str(gensim_test_file("lee_background.cor")), "-o", str(out), "--size", "8",
                   "--epochs", "1", "--threads", "1", "--quiet", "--update", "window", "--saturation", "clamp",
                   "--sigmoid", "interpolated"])
    assert rc == 0, capsys.readouterr().err
    assert seen == {"update": "window", "saturation": "clamp", "sigmoid": "interpolated"}
    assert cli.main(["word2vec", str(out), "-o", str(out), "--update", "nope"]) == 2
