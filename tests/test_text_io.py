"""word2vec text/binary and GloVe files: round trips through gensim's KeyedVectors, limits, and malformed input."""
import bz2
import re
import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from fastrepr import FormatError
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
    with pytest.raises(ValueError, match="pretrained.vec: line 3: the header declares 3 vectors but the file ends after 1"):
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
    (b"3 2\nfoo 1 2\nbar 3 4\n", "line 4: the header declares 3 vectors but the file ends after 2"),
    (b"1 2\nfoo 1 2\nbar 3 4\n", "line 3: the header declares 1 vectors but the file has more data after vector 1"),
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
    path.write_bytes(b"2 4\nfoo " + vec + b"bar " + vec[:9])  # shorter than 2 records can be: the size says so
    with pytest.raises(FormatError, match=r"line 1: .*2 of them need at least 36 bytes, the file holds 33"):
        load_word2vec_format(path, binary=True)
    path.write_bytes(b"2 4\nfoo " + vec + b"barbazqux " + vec[:9])
    with pytest.raises(FormatError, match="record 2: truncated"):
        load_word2vec_format(path, binary=True)
    path.write_bytes(b"3 4\nfoo " + vec + b"bar " + vec)
    with pytest.raises(FormatError, match=r"line 1: the header declares 3 vectors .* \(at most 2 vectors\)"):
        load_word2vec_format(path, binary=True)
    path.write_bytes(b"3 4\nfoofoofoofoo " + vec + b"barbarbarbar " + vec)  # long words: the size allows 3
    with pytest.raises(FormatError, match="record 3: the header declares 3 vectors but the file ends after 2"):
        load_word2vec_format(path, binary=True)
    path.write_bytes(b"1 4\nfoo " + vec + b"bar " + vec)
    with pytest.raises(FormatError, match="record 2: the header declares 1 vectors but the file has more data"):
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
    for bad in (True, 1.5, "3"):
        with pytest.raises(TypeError, match="limit"):
            load_word2vec_format(path, limit=bad)
    with pytest.raises(ValueError, match="unicode_errors"):
        load_word2vec_format(path, unicode_errors="nope")
    with pytest.raises(ValueError, match="encoding"):
        save_word2vec_format(path, v, ["a", "b"], encoding="nope")
    with pytest.raises(ValueError, match="at least one column"):
        save_word2vec_format(path, np.zeros((2, 0), np.float32), ["a", "b"])


# (file bytes, binary argument, expected message): the detection and size checks, never a silent misread
DETECTION = [
    (b"3 5\nfoo 1 2 3\nbar 4 5 6\nbaz 7 8 9\n", None, "line 2: the header declares dimension 5 but this row of "
                                                    "text holds 3 values"),
    (b"2 2\nfoo 1 2 3\nbar 4 5 6\n", None, "line 2: the header declares dimension 2 but this row of text holds 3"),
    (b"2 3\nfoo 1 2 3\nbar 4 5 6\n", True, "line 2: binary=True, but lines 2 and 3 are words with 3 numbers in text"),
    (b"0 3\nfoo 1 2 3\n", None, "the header declares 0 vectors but the file has more data after vector 0"),
    (b"1000000000000 3\nfoo 1 2 3\n", None, "line 1: the header declares 1000000000000 vectors of dimension 3; "
                                            "as word2vec text"),
    (b"2 100\nfoo " + np.ones(100, "<f4").tobytes(), None, "line 1: the header declares 2 vectors of dimension "
                                                         "100; as word2vec binary 2 of them need at least 804"),
    (b"1 99999999999\nfoo 1\n", None, "line 1: header declares 1 vectors of dimension 99999999999"),
    (b"1 -3\nfoo 1\n", None, "line 1: expected the header"),
    (b"1 2 3\nfoo 1 2\n", None, "line 1: expected the header"),
    (b"1 2\n" + b"x" * 70000 + b" \x00\x00\x00\x00\x00\x00\x00\x00", None, "record 1: no space after the word"),
    (b"2 2\n\nfoo 1 2\n", None, "line 2: empty line where vector 1 was expected"),
    (b"1 2\n", None, "the header declares 1 vectors but the file ends after 0"),
    (b"", None, "line 1: expected the header"),
]


@pytest.mark.parametrize("content, binary, message", DETECTION)
def test_detection_and_sizes_never_guess(tmp_path, content, binary, message):
    for name, data in (("f.w2v", content), ("f.w2v.gz", gzip.compress(content))):
        path = tmp_path / name
        path.write_bytes(data)
        if name.endswith(".gz") and "as word2vec" in message:
            continue  # a compressed file's size is unknown: the reader finds the shortfall by reading
        with pytest.raises(FormatError, match=re.escape(message)) as info:
            load_word2vec_format(path, binary=binary)
        assert info.value.path == str(path) and str(info.value).startswith(str(path))


def test_detection_is_right_on_random_files(tmp_path):
    """Auto-detection on 300 random files of both formats, dims 1..8, values from 1e-30 to 1e30."""
    rng = np.random.default_rng(3)
    for n in range(300):
        v, d = int(rng.integers(1, 6)), int(rng.integers(1, 9))
        arr = (rng.standard_normal((v, d)) * 10.0 ** rng.integers(-30, 30, (v, d))).astype(np.float32)
        keys = [f"w{n}_{i}" for i in range(v)]
        binary = bool(n % 2)
        path = tmp_path / f"{n}.w2v"
        save_word2vec_format(path, arr, keys, binary=binary)
        got, got_keys = load_word2vec_format(path)
        assert got_keys == keys
        np.testing.assert_array_equal(got, arr)


def test_latin1_text_with_replace_is_read_as_text(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("2 2\nf\xe9o 1 2\nbar 3 4\n".encode("latin-1"))
    vectors, keys = load_word2vec_format(path, unicode_errors="replace")  # the error message's own advice
    assert keys == ["f\ufffdo", "bar"] and vectors.tolist() == [[1, 2], [3, 4]]
    assert load_word2vec_format(path, encoding="latin-1")[1] == ["féo", "bar"]
    with pytest.raises(FormatError, match="line 2: .* is not valid utf8"):
        load_word2vec_format(path)


def test_zero_vectors_and_limits(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_bytes(b"0 3\n")
    assert load_word2vec_format(path)[0].shape == (0, 3)
    glove = tmp_path / "g.txt"
    glove.write_bytes(b"a 1 2\n\nb 3 4\nc 5 6\n")
    for limit, want in ((0, []), (1, ["a"]), (2, ["a", "b"]), (None, ["a", "b", "c"]), (10, ["a", "b", "c"])):
        vectors, keys = load_glove(glove, limit=limit)
        assert keys == want and vectors.shape == (len(want), 2)
    # limit reads no further than it needs: a damaged row after the limit is not seen
    bad = tmp_path / "b.txt"
    bad.write_bytes(b"3 2\nfoo 1 2\nbar 3 4\nbaz x y\n")
    assert load_word2vec_format(bad, limit=2)[1] == ["foo", "bar"]
    with pytest.raises(FormatError, match="line 4: 'x' is not a floating-point number"):
        load_word2vec_format(bad)


def test_compressed_errors_name_the_file_and_line(tmp_path):
    arr, keys = _random(v=400, d=6)
    path = tmp_path / "v.txt.gz"
    save_word2vec_format(path, arr, keys)
    data = path.read_bytes()
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut.txt.gz: line \d+: the compressed data is truncated or damaged"):
        load_word2vec_format(cut)
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    (tmp_path / "flip.txt.gz").write_bytes(bytes(flipped))
    with pytest.raises(FormatError, match="flip.txt.gz"):
        load_word2vec_format(tmp_path / "flip.txt.gz")
    glove = tmp_path / "g.txt.bz2"
    glove.write_bytes(bz2.compress(b"a 1 2\nb 3 4\n")[:-8])
    with pytest.raises(FormatError, match=r"g.txt.bz2: line \d+: the compressed data"):
        load_glove(glove)


def test_a_lying_header_in_a_compressed_file_allocates_only_what_was_read(tmp_path):
    import tracemalloc

    path = tmp_path / "lie.txt.gz"
    path.write_bytes(gzip.compress(b"2000000000 300\n" + b"".join(b"w%d " % i + b"0 " * 300 + b"\n"
                                                                   for i in range(3))))
    tracemalloc.start()
    try:
        with pytest.raises(FormatError, match="declares 2000000000 vectors but the file ends after 3"):
            load_word2vec_format(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20  # the header asks for 2.4 TB
