"""word2vec text/binary and GloVe files: round trips through gensim's KeyedVectors, limits, and malformed input."""
import bz2
import re
import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fastrepr.text import load_glove, load_word2vec_format, save_word2vec_format

gensim_kv = pytest.importorskip("gensim.models.keyedvectors")
TEST_DATA = Path(gensim_kv.__file__).resolve().parents[1] / "test" / "test_data"


def _random(v=37, d=13, seed=0):
    rng = np.random.default_rng(seed)
    vectors = (rng.standard_normal((v, d)) * 10.0 ** rng.integers(-6, 4, (v, d))).astype(np.float32)
    keys = [f"w{i}" for i in range(v - 3)] + ["ünïcödé", "日本語", "a.b-c"]
    return vectors, keys


@pytest.mark.parametrize("binary", [False, True])
def test_round_trip_through_gensim(tmp_path, binary):
    vectors, keys = _random()
    ours = tmp_path / "ours.w2v"
    save_word2vec_format(ours, vectors, keys, binary=binary)
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(ours), binary=binary)
    assert kv.index_to_key == keys
    np.testing.assert_array_equal(kv.vectors, vectors)  # bit-exact, text included (9 significant digits)

    theirs = tmp_path / "theirs.w2v"
    kv.save_word2vec_format(str(theirs), binary=binary)
    for b in (binary, None):  # explicit and detected format
        back, back_keys = load_word2vec_format(theirs, binary=b)
        assert back_keys == keys and back.dtype == np.float32 and back.flags.c_contiguous
        np.testing.assert_array_equal(back, vectors)


def test_reads_gensim_test_files():
    for name, binary in (("euclidean_vectors.bin", True), ("toy-model.vec", False), ("lee_fasttext.vec", False),
                         ("crime-and-punishment.vec", False), ("high_precision.kv.txt", False)):
        path = TEST_DATA / name
        kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path), binary=binary)
        vectors, keys = load_word2vec_format(path)  # format detected
        assert keys == kv.index_to_key, name
        np.testing.assert_array_equal(vectors, kv.vectors)
    # gensim ships one damaged file: its header declares 3 vectors and it holds 1
    with pytest.raises(ValueError, match="declares 3 vectors but the file ends after 1"):
        load_word2vec_format(TEST_DATA / "pretrained.vec")


def test_glove_matches_gensim_no_header():
    path = TEST_DATA / "test_glove.txt"
    kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=True)
    vectors, keys = load_glove(path)
    assert keys == kv.index_to_key
    np.testing.assert_array_equal(vectors, kv.vectors)
    few, few_keys = load_glove(path, limit=3)
    assert few_keys == keys[:3] and few.shape == (3, vectors.shape[1])


@pytest.mark.parametrize("binary", [False, True])
def test_limit_and_torch_input_and_compression(tmp_path, binary):
    vectors, keys = _random(v=20, d=5)
    for suffix, opener in (("", open), (".gz", gzip.open), (".bz2", bz2.open)):
        path = tmp_path / f"v.w2v{suffix}"
        save_word2vec_format(path, torch.from_numpy(vectors).double(), keys, binary=binary)
        with opener(path, "rb") as f:
            assert f.readline() == b"20 5\n"
        got, got_keys = load_word2vec_format(path, limit=7)
        assert got_keys == keys[:7]
        np.testing.assert_array_equal(got, vectors[:7])
        assert load_word2vec_format(path, limit=0)[0].shape == (0, 5)
        assert load_word2vec_format(path, limit=100)[1] == keys


def test_c_tool_text_layout_and_duplicates(tmp_path):
    # the C tool writes a space before each newline; a duplicate word keeps its first vector (gensim does too)
    path = tmp_path / "c.txt"
    path.write_bytes(b"3 2\nfoo 1 2 \nbar 3.5 -4e-3 \nfoo 9 9 \n")
    with pytest.warns(UserWarning, match="duplicate"):
        vectors, keys = load_word2vec_format(path)
    assert keys == ["foo", "bar"]
    np.testing.assert_array_equal(vectors, np.array([[1, 2], [3.5, -4e-3]], dtype=np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kv = gensim_kv.KeyedVectors.load_word2vec_format(str(path))
    # gensim keeps the first vector too (it leaves a placeholder slot for the dropped duplicate)
    assert kv.index_to_key[:2] == keys
    np.testing.assert_array_equal(kv.vectors[:2], vectors)


MALFORMED_TEXT = [
    (b"3\nfoo 1 2\n", "line 1: expected the header"),
    (b"x y\nfoo 1 2\n", "line 1: expected the header"),
    (b"1 0\nfoo\n", "dimension 0"),
    (b"3 2\nfoo 1 2\nbar 3 4\n", "declares 3 vectors but the file ends after 2"),
    (b"1 2\nfoo 1 2\nbar 3 4\n", "has more data after vector 1"),
    (b"2 2\nfoo 1 2\nbar 3\n", "line 3: expected a word and 2 values, got 1"),
    (b"2 2\nfoo 1 2\nbar 3 4 5\n", "line 3: expected a word and 2 values, got 3"),
    (b"2 2\nfoo 1 2\nbar 3 x4\n", "line 3: 'x4' is not a floating-point number"),
    (b"2 2\nfoo 1 2\n\n", "line 3: empty line"),
    (b"2 2\nfoo 1 2\nb\xffr 3 4\n", "line 3: b'b\\xffr 3 4\\n' is not valid utf8"),
]


@pytest.mark.parametrize("content, message", MALFORMED_TEXT)
def test_malformed_text_files(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=re.escape(message)):
        load_word2vec_format(path, binary=False)


def test_malformed_binary_files(tmp_path):
    vec = np.arange(4, dtype="<f4").tobytes()
    path = tmp_path / "bad.bin"
    path.write_bytes(b"2 4\nfoo " + vec + b"bar " + vec[:9])
    with pytest.raises(ValueError, match="record 2: truncated"):
        load_word2vec_format(path, binary=True)
    path.write_bytes(b"3 4\nfoo " + vec + b"bar " + vec)
    with pytest.raises(ValueError, match="declares 3 vectors but the file ends after 2"):
        load_word2vec_format(path, binary=True)
    path.write_bytes(b"1 4\nfoo " + vec + b"bar " + vec)
    with pytest.raises(ValueError, match="more data after vector 1"):
        load_word2vec_format(path, binary=True)
    path.write_bytes(b"1 4\nf\xe9o " + vec)
    with pytest.raises(ValueError, match="not valid utf8"):
        load_word2vec_format(path, binary=True)
    vectors, keys = load_word2vec_format(path, binary=True, unicode_errors="replace")
    assert keys == ["f\ufffdo"] and vectors.tolist() == [[0, 1, 2, 3]]
    assert load_word2vec_format(path, binary=True, encoding="latin-1")[1] == ["féo"]


def test_glove_errors(tmp_path):
    path = tmp_path / "g.txt"
    path.write_bytes(b"a 1 2 3\nb 1 2\n")
    with pytest.raises(ValueError, match="line 2: expected a word and 3 values, got 2"):
        load_glove(path)
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_glove(path)
    path.write_bytes(b"a 1 nan 3\n")
    assert np.isnan(load_glove(path)[0][0, 1])


def test_save_rejects_bad_keys_and_shapes(tmp_path):
    path = tmp_path / "x.txt"
    v = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="keys has 1 entries but vectors has 2 rows"):
        save_word2vec_format(path, v, ["a"])
    with pytest.raises(ValueError, match="whitespace"):
        save_word2vec_format(path, v, ["a b", "c"])
    with pytest.raises(ValueError, match="duplicate"):
        save_word2vec_format(path, v, ["a", "a"])
    with pytest.raises(ValueError, match="non-empty str"):
        save_word2vec_format(path, v, ["a", ""])
    with pytest.raises(ValueError, match=r"shape \[V, D\]"):
        save_word2vec_format(path, np.zeros(3), ["a", "b", "c"])
    with pytest.raises(TypeError, match="floating-point"):
        save_word2vec_format(path, np.zeros((2, 3), dtype=np.int64), ["a", "b"])
    with pytest.raises(ValueError, match="limit"):
        load_word2vec_format(path, limit=-1)
