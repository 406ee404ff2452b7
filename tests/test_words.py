"""Word benchmarks against gensim on the same vectors: per-section analogy counts identical (3CosAdd),
3CosMul answers equal to most_similar_cosmul where gensim is not tied, word-pair correlations within 1e-6.

The vectors hold every word of the Google set with planted relations and the hard cases (case variants,
exact and near duplicates of answers, an upper-case variant ahead of its original), so near-ties that
float32 rounding decides occur by the thousand."""
import numpy as np
import pytest
import torch

from fastrepr import EmbeddingIndex, FormatError
from fastrepr.evaluation import words
from fastrepr.evaluation.synthetic import analogy_vectors, read_questions
from utils import use_impl

gensim_models = pytest.importorskip("gensim.models")
pytestmark = pytest.mark.filterwarnings("ignore:Call to deprecated:DeprecationWarning")
QUESTIONS = words.bundled("questions-words.txt")


@pytest.fixture(scope="module")
def vectors():
    arr, keys = analogy_vectors(4000, 32, seed=1, ties=True)
    kv = gensim_models.KeyedVectors(arr.shape[1])
    kv.add_vectors(keys, arr)
    return arr, keys, kv


def _same_sections(ours, theirs):
    assert [s["section"] for s in ours] == [s["section"] for s in theirs]
    for a, b in zip(ours, theirs):
        assert (len(a["correct"]), len(a["incorrect"])) == (len(b["correct"]), len(b["incorrect"])), a["section"]
        assert a["correct"] == b["correct"] and a["incorrect"] == b["incorrect"], a["section"]


@pytest.mark.parametrize("restrict, case_insensitive, dummy", [(300000, True, False), (2600, True, True),
                                                                (300000, False, False)])
def test_analogies_identical_to_gensim(vectors, restrict, case_insensitive, dummy):
    arr, keys, kv = vectors
    score, theirs = kv.evaluate_word_analogies(str(QUESTIONS), restrict_vocab=restrict,
                                               case_insensitive=case_insensitive, dummy4unknown=dummy)
    result = words.evaluate_word_analogies((arr, keys), restrict_vocab=restrict, case_insensitive=case_insensitive,
                                           dummy4unknown=dummy)
    _same_sections(result.sections, theirs)
    assert result.score == score and len(theirs[-1]["correct"]) > 1000 and len(theirs[-1]["incorrect"]) > 1000
    assert result.questions == 19544
    if restrict < len(keys):
        assert result.oov > 0
    # the near-ties were real: some questions needed gensim's own arithmetic to be settled
    assert result.rescored > 0


def test_3cosmul_evaluation_identical_to_gensim_protocol(vectors, monkeypatch):
    """gensim's evaluation loop with most_similar_cosmul in place of most_similar (equivalent when the whole
    vocabulary is searched) gives exactly our 3CosMul sections, near-ties and case variants included."""
    arr, keys, kv = vectors
    monkeypatch.setattr(kv, "most_similar", kv.most_similar_cosmul)
    _, theirs = kv.evaluate_word_analogies(str(QUESTIONS))
    result = words.evaluate_word_analogies((arr, keys), method="3cosmul")
    _same_sections(result.sections, theirs)
    assert result.rescored > 0


def test_inputs_index_keyedvectors_and_progress(vectors, monkeypatch):
    arr, keys, kv = vectors
    ref = words.evaluate_word_analogies((arr, keys), restrict_vocab=3000)
    for given in ("torch", kv):
        with monkeypatch.context() as m:
            if given == "torch":  # the analogy op's torch implementation, through the dispatcher
                use_impl("torch", m)
                given = EmbeddingIndex(torch.from_numpy(arr), keys)
            got = words.evaluate_word_analogies(given, restrict_vocab=3000, batch_size=5000, progress=True)
        assert got.sections == ref.sections and got.predictions == ref.predictions
    score, sections = ref  # unpacks like gensim's return value
    assert sections[-1]["section"] == "Total accuracy"


def test_replicated_arithmetic_is_bit_exact(vectors):
    """The fallback scorer reproduces gensim's float32 scores and candidate lists exactly."""
    arr, keys, kv = vectors
    norms = np.linalg.norm(arr, axis=1)
    rng = np.random.default_rng(0)
    for a, b, c in rng.integers(0, len(keys), (25, 3)):
        got = words._gensim_candidates(arr, norms, a, b, c, len(keys), "3cosadd")
        want = kv.most_similar(positive=[keys[b], keys[c]], negative=[keys[a]], topn=5)
        assert [keys[i] for i in got] == [w for w, _ in want]
        got = words._gensim_candidates(arr, norms, a, b, c, len(keys), "3cosmul")
        want = kv.most_similar_cosmul(positive=[keys[b], keys[c]], negative=[keys[a]], topn=5)
        assert [keys[i] for i in got] == [w for w, _ in want]


def test_3cosmul_agrees_with_most_similar_cosmul(vectors):
    """Every question of the set (first 3000) whose two best gensim scores are not tied; with case
    folding off the evaluation asks exactly gensim's most_similar_cosmul(positive=[b, c], negative=[a])."""
    arr, keys, kv = vectors
    result = words.evaluate_word_analogies((arr, keys), case_insensitive=False, method="3cosmul")
    quads = [q for _, q in read_questions(QUESTIONS)[1]]  # file order; every word is in the vocabulary
    assert len(result.predictions) == len(quads) == 19544
    checked = 0
    for q, pred in list(zip(quads, result.predictions))[:3000]:
        top = kv.most_similar_cosmul(positive=[q[1], q[2]], negative=[q[0]], topn=2)
        if abs(top[0][1] - top[1][1]) <= 1e-6 * abs(top[0][1]):
            continue
        checked += 1
        assert pred == top[0][0], q
    assert checked > 2000  # the rest are the planted exact and near duplicates


@pytest.mark.parametrize("name", ["wordsim353.tsv", "simlex999.txt"])
@pytest.mark.parametrize("restrict, case_insensitive, dummy", [(300000, True, False), (500, True, True),
                                                                (300000, False, False)])
def test_word_pairs_match_gensim(name, restrict, case_insensitive, dummy):
    path = words.bundled(name)
    pair_words = sorted({w for line in open(path) if not line.startswith("#") for w in line.split("\t")[:2]})
    rng = np.random.default_rng(2)
    keys = list(dict.fromkeys(pair_words[::2] + [w.upper() for w in pair_words[1::3]] + [f"x{i}" for i in range(300)]))
    keys = [keys[i] for i in rng.permutation(len(keys))]
    arr = rng.standard_normal((len(keys), 16)).astype(np.float32)
    kv = gensim_models.KeyedVectors(16)
    kv.add_vectors(keys, arr)
    pearson, spearman, oov = kv.evaluate_word_pairs(str(path), restrict_vocab=restrict,
                                                    case_insensitive=case_insensitive, dummy4unknown=dummy)
    got = words.evaluate_word_pairs((arr, keys), path, restrict_vocab=restrict, case_insensitive=case_insensitive,
                                    dummy4unknown=dummy)
    assert abs(got.pearson - pearson[0]) < 1e-6 and abs(got.spearman - spearman[0]) < 1e-6
    assert got.oov_ratio == pytest.approx(oov, abs=1e-12) and got.oov > 0


def test_ranks_and_pearson_helpers():
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0])
    np.testing.assert_array_equal(words._ranks(x), [4, 1, 4, 2, 4])
    assert np.isnan(words._pearson(np.ones(3), np.arange(3.0)))


def test_bad_input(tmp_path, vectors):
    arr, keys, _ = vectors
    bad = tmp_path / "q.txt"
    bad.write_text("Athens Greece Baghdad Iraq\n")
    with pytest.raises(ValueError, match="Missing section header"):
        words.evaluate_word_analogies((arr, keys), bad)
    with pytest.raises(ValueError, match="method"):
        words.evaluate_word_analogies((arr, keys), method="3cosdiv")
    with pytest.raises(TypeError, match="EmbeddingIndex"):
        words.evaluate_word_analogies(arr)
    with pytest.raises(ValueError, match="needs keys"):
        words.evaluate_word_analogies(EmbeddingIndex(arr))
    pairs = tmp_path / "p.tsv"
    pairs.write_text("# only a comment\nfoo\tbar\n")
    with pytest.raises(ValueError, match="No valid similarity judgements"):
        words.evaluate_word_pairs((arr, keys), pairs)


def _small():
    arr = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    return arr, ["king", "queen", "man", "woman", "paris", "france"]


# (file bytes, expected FormatError message): every reader error names the file and line
QUESTION_FILES = [
    (b"", "no analogy questions"),
    (b": only-a-section\n", "no analogy questions"),
    (b": s\nking queen man\n", "no analogy questions"),  # 3 words: skipped as gensim does, then none left
    (b"king queen man woman\n", "line 1: Missing section header"),
    (b": s\nking queen man woman\nk\xffng queen man woman\n", "line 3: b'k\\xffng queen man woman\\n' is not "
                                                          "valid utf8"),
]


@pytest.mark.parametrize("content, message", QUESTION_FILES)
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_question_file_errors_name_file_and_line(tmp_path, content, message, suffix):
    import gzip
    import re

    path = tmp_path / f"q.txt{suffix}"
    path.write_bytes(gzip.compress(content) if suffix else content)
    with pytest.raises(FormatError, match=re.escape(message)) as info:
        words.evaluate_word_analogies(_small(), path)
    assert str(info.value).startswith(str(path))


def test_question_and_pair_files_gz_and_damage(tmp_path):
    import gzip

    questions = b": s\nking queen man woman\nman woman king queen\n"
    plain, packed = tmp_path / "q.txt", tmp_path / "q.txt.gz"
    plain.write_bytes(questions)
    packed.write_bytes(gzip.compress(questions))
    want = words.evaluate_word_analogies(_small(), plain)
    assert words.evaluate_word_analogies(_small(), packed).sections == want.sections
    packed.write_bytes(gzip.compress(questions)[:-6])  # truncated: no bare EOFError
    with pytest.raises(FormatError, match=r"q.txt.gz: line \d: the compressed data is truncated"):
        words.evaluate_word_analogies(_small(), packed)
    pairs = tmp_path / "p.tsv.gz"
    pairs.write_bytes(gzip.compress(b"king\tqueen\t8\nman\twoman\t7\nparis\tfrance\t3\n")[:-6])
    with pytest.raises(FormatError, match="p.tsv.gz: line"):
        words.evaluate_word_pairs(_small(), pairs)


def test_all_questions_out_of_vocabulary_is_an_error_not_zero(tmp_path):
    path = tmp_path / "q.txt"
    path.write_bytes(b": s\nking queen man zebra\n")
    with pytest.raises(ValueError, match="q.txt: none of its 1 questions has all four words"):
        words.evaluate_word_analogies(_small(), path)
    result = words.evaluate_word_analogies(_small(), path, dummy4unknown=True)  # counted wrong: 0 of 1
    assert result.score == 0.0 and result.oov == 1


PAIR_FILES = [
    (b"king\tqueen\tnan\nman\twoman\t7\n", "line 1: the similarity score nan is not a finite number"),
    (b"# c\nking\tqueen\t8\nman\twoman\t1e999\n", "line 3: the similarity score inf is not a finite number"),
    (b"king\tqueen\t8\nm\xe4n\twoman\t7\n", "line 2: b'm\\xe4n\\twoman\\t7\\n' is not valid utf8"),
]


@pytest.mark.parametrize("content, message", PAIR_FILES)
def test_pair_file_errors_name_file_and_line(tmp_path, content, message):
    import re

    path = tmp_path / "p.tsv"
    path.write_bytes(content)
    with pytest.raises(FormatError, match=re.escape(message)) as info:
        words.evaluate_word_pairs(_small(), path)
    assert str(info.value).startswith(str(path))
    if b"\xe4" in content:  # the encoding argument is honoured
        assert words.evaluate_word_pairs(_small(), path, encoding="latin-1").pairs == 1


@pytest.mark.parametrize("bad", [-3, 0, True, 2.5, "10"])
def test_restrict_vocab_and_batch_size_must_be_positive_ints(tmp_path, bad):
    pairs = tmp_path / "p.tsv"
    pairs.write_bytes(b"king\tqueen\t8\nman\twoman\t7\nparis\tfrance\t3\n")
    with pytest.raises(ValueError, match="restrict_vocab must be a positive int"):
        words.evaluate_word_pairs(_small(), pairs, restrict_vocab=bad)
    with pytest.raises(ValueError, match="restrict_vocab must be a positive int"):
        words.evaluate_word_analogies(_small(), restrict_vocab=bad)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        words.evaluate_word_analogies(_small(), batch_size=bad)
    with pytest.raises(ValueError, match="delimiter"):
        words.evaluate_word_pairs(_small(), pairs, delimiter="")


@pytest.mark.gpu
def test_analogies_identical_to_gensim_on_gpu(tmp_path):
    arr, keys = analogy_vectors(20000, 64, seed=2, ties=True)
    kv = gensim_models.KeyedVectors(64)
    kv.add_vectors(keys, arr)
    subset = tmp_path / "q.txt"
    subset.write_text("".join(QUESTIONS.read_text().splitlines(keepends=True)[:3001]))
    _, theirs = kv.evaluate_word_analogies(str(subset))
    index = EmbeddingIndex(torch.from_numpy(arr).cuda(), keys)
    for batch in (65536, 700):
        result = words.evaluate_word_analogies(index, subset, batch_size=batch)
        _same_sections(result.sections, theirs)
