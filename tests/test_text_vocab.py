"""fastrepr.text: vocabulary counting, subsampling and noise distributions, word2vec's Huffman tree."""
import heapq
import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats

from fastrepr import _native
from fastrepr.text import sampling
from fastrepr.text.huffman import build_huffman
from fastrepr.text.vocab import Vocab, iter_sentences
from utils import use_impl as use_backend

CORPUS = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat"], [], ["a", "cat", "and", "a", "dog"]]


def _write(tmp_path, sentences, name="corpus.txt"):
    path = tmp_path / name
    path.write_text("".join(" ".join(s) + "\n" for s in sentences))
    return path


# ------------------------------------------------------------------------------------------- vocabulary

def test_vocab_counts_sorted_by_frequency_with_gensim_ties(tmp_path):
    v = Vocab.build(CORPUS, min_count=1)
    assert v.keys[:5] == ["the", "a", "dog", "sat", "cat"]  # 3, then the 2s last-first-seen first (gensim)
    assert v.counts.tolist()[:5] == [3, 2, 2, 2, 2]
    assert v.total_tokens == 14 and v.sentences == 4 and v.kept_tokens == 14
    # the same corpus as a file gives the same vocabulary
    from_file = Vocab.build(_write(tmp_path, CORPUS), min_count=1)
    assert from_file.keys == v.keys and np.array_equal(from_file.counts, v.counts)


def test_vocab_min_count_and_max_vocab():
    v = Vocab.build(CORPUS, min_count=2)
    assert v.keys == ["the", "a", "dog", "sat", "cat"]
    assert v.kept_tokens == 11 and v.total_tokens == 14
    assert Vocab.build(CORPUS, min_count=2, max_vocab=2).keys == ["the", "a"]
    # gensim's max_final_vocab: min_count rises past the count of the 3rd word (2), so only "the" stays
    assert Vocab.build(CORPUS, min_count=1, max_final_vocab=2).keys == ["the"]
    assert Vocab.build(CORPUS, min_count=1, max_final_vocab=5).keys == ["the", "a", "dog", "sat", "cat"]


def test_vocab_matches_gensim(tmp_path):
    from gensim.models import Word2Vec as GensimWord2Vec

    from fastrepr.text.corpora import gensim_test_file

    path = gensim_test_file("lee_background.cor")
    ours = Vocab.build(path, min_count=5)
    g = GensimWord2Vec(vector_size=10, min_count=5)
    g.build_vocab(corpus_file=str(path))
    assert ours.keys == g.wv.index_to_key  # same words in the same order (ties included)
    assert all(int(c) == g.wv.get_vecattr(w, "count") for w, c in zip(ours.keys, ours.counts))
    g = GensimWord2Vec(vector_size=10, min_count=2, max_final_vocab=700)
    g.build_vocab(corpus_file=str(path))
    assert Vocab.build(path, min_count=2, max_final_vocab=700).keys == g.wv.index_to_key
    assert np.all(np.diff(ours.counts) <= 0)
    assert ours.total_tokens == g.corpus_total_words


def test_encode_drops_unknown_words_and_cuts_long_sentences():
    v = Vocab.build(CORPUS, min_count=2)
    tokens, offsets = v.encode(CORPUS)
    idx = v.index
    expect = [idx["the"], idx["cat"], idx["sat"], idx["the"], idx["the"], idx["dog"], idx["sat"],
              idx["a"], idx["cat"], idx["a"], idx["dog"]]
    assert tokens.dtype == np.int32 and tokens.tolist() == expect
    assert offsets.tolist() == [0, 4, 7, 11]  # the empty sentence is skipped
    tokens, offsets = v.encode([["the"] * 7], max_sentence_len=3)
    assert offsets.tolist() == [0, 3, 6, 7]


@pytest.mark.parametrize("corpus, exc, match", [
    ([], ValueError, "corpus is empty"),
    ([[], []], ValueError, "corpus is empty"),
    ([["a", "b"], ["c"]], ValueError, "no word occurs at least min_count=5"),
    (["the cat sat", "on the mat"], TypeError, "iterable of token lists"),
    ((s for s in CORPUS), TypeError, "one-shot iterator"),
    (None, TypeError, "corpus is None"),
    (42, TypeError, "file path or an iterable"),
    ("/nonexistent/corpus.txt", ValueError, "does not exist"),
])
def test_vocab_bad_corpus(corpus, exc, match):
    with pytest.raises(exc, match=match):
        Vocab.build(corpus, min_count=5)


@pytest.mark.parametrize("kw, match", [({"min_count": 0}, "min_count"), ({"min_count": 1.5}, "min_count"),
                                       ({"max_vocab": 0}, "max_vocab")])
def test_vocab_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        Vocab.build(CORPUS, **kw)


def test_empty_file_is_an_empty_corpus(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n")
    assert list(iter_sentences(path)) == [[], []]
    with pytest.raises(ValueError, match="corpus is empty"):
        Vocab.build(path)


# ------------------------------------------------------------------------------------------- subsampling

def test_keep_probability_formula_and_gensim_thresholds():
    counts = np.array([100000, 5000, 300, 20, 5])
    t, total = 1e-3, counts.sum()
    f = counts / total
    expect = np.minimum(1.0, np.sqrt(t / f) + t / f)
    np.testing.assert_allclose(sampling.keep_probability(counts, t), expect, rtol=1e-12)
    assert sampling.keep_probability(counts, 0).tolist() == [1.0] * 5
    # gensim's sample_int for the same counts (prepare_vocab): floor(p * (2^32 - 1))
    assert np.array_equal(sampling.keep_thresholds(counts, t), np.floor(expect * (2**32 - 1)).astype(np.uint32))
    # sample >= 1: gensim's "downsample words with a count above sample" shorthand
    thr = int(1000 * (3 + math.sqrt(5)) / 2)
    np.testing.assert_allclose(sampling.keep_probability(counts, 1000),
                               np.minimum(1, (np.sqrt(counts / thr) + 1) * thr / counts))


def test_native_subsampling_rate_matches_formula(monkeypatch):

    use_backend("native", monkeypatch)
    counts = np.array([400_000, 100_000, 20_000, 3000, 50])
    keep = sampling.keep_thresholds(counts, 1e-3)
    p = sampling.keep_probability(counts, 1e-3)
    n_each = 200_000
    tokens = np.repeat(np.arange(5, dtype=np.int32), n_each)
    out = np.empty_like(tokens)
    kept = _native.get().word2vec_subsample(tokens, keep, 123, out)
    observed = np.bincount(out[:kept], minlength=5)
    # each count is Binomial(n_each, p): within 5 standard deviations
    sd = np.sqrt(n_each * p * (1 - p))
    assert np.all(np.abs(observed - n_each * p) <= 5 * sd + 1e-9), (observed, n_each * p)
    assert observed[-1] == n_each  # rare words are always kept


# ------------------------------------------------------------------------------------------- noise

def _chi_square_p(samples, probabilities):
    observed = np.bincount(samples, minlength=probabilities.size)
    return stats.chisquare(observed, probabilities * samples.size).pvalue


@pytest.mark.parametrize("alpha", [0.75, 1.0, 0.0, 0.5])
def test_alias_table_matches_unigram_power(alpha):
    counts = np.random.default_rng(0).zipf(1.5, 300).clip(max=10**6)
    table = sampling.noise_table(counts, alpha)
    expect = counts.astype(np.float64) ** alpha
    expect /= expect.sum()
    np.testing.assert_allclose(table.probabilities, expect, rtol=1e-12)
    # the table encodes the distribution exactly: P(i) = (prob[i] + sum of 1 - prob[j] over j aliased to i) / V
    V = len(table)
    implied = table.prob.copy()
    np.add.at(implied, table.alias, 1 - table.prob)
    np.testing.assert_allclose(implied / V, expect, atol=1e-12)
    g = torch.Generator().manual_seed(1)
    draws = table.sample(400_000, generator=g).numpy()
    assert _chi_square_p(draws, expect) > 1e-4


def test_native_noise_draws_match_unigram_power(monkeypatch):

    use_backend("native", monkeypatch)
    counts = np.random.default_rng(1).zipf(1.3, 1000).clip(max=10**7)
    table = sampling.noise_table(counts, 0.75)
    prob, alias = table.native_arrays()
    out = np.empty(1_000_000, np.int32)
    _native.get().word2vec_draw_noise(prob, alias, 7, out)
    assert _chi_square_p(out, table.probabilities) > 1e-4


def test_noise_sampler_shapes_and_zero_counts():
    table = sampling.noise_table([5, 0, 3])
    draws = table.sample((100, 7))
    assert draws.shape == (100, 7) and draws.dtype == torch.int64
    assert not (draws == 1).any()  # zero count, zero probability


@pytest.mark.parametrize("call, exc, match", [
    (lambda: sampling.keep_probability([], 1e-3), ValueError, "non-empty"),
    (lambda: sampling.keep_probability([1, -2], 1e-3), ValueError, ">= 0"),
    (lambda: sampling.keep_probability([1, 2], -1), ValueError, "sample"),
    (lambda: sampling.keep_probability([0, 2], 1e-3), ValueError, "> 0"),
    (lambda: sampling.noise_table([0, 0]), ValueError, "positive sum"),
    (lambda: sampling.noise_table([1, 2], float("nan")), ValueError, "ns_exponent"),
    (lambda: sampling.AliasTable(["a"]), TypeError, "numbers"),
])
def test_sampling_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------------------- Huffman

def _heap_huffman_cost(counts):
    """Optimal expected code length (sum of merge weights) from a plain heap Huffman."""
    heap = [(float(c), i) for i, c in enumerate(counts)]
    heapq.heapify(heap)
    tie = itertools.count(len(counts))
    cost = 0.0
    while len(heap) > 1:
        a, _ = heapq.heappop(heap)
        b, _ = heapq.heappop(heap)
        cost += a + b
        heapq.heappush(heap, (a + b, next(tie)))
    return cost


def _check_tree(tree, counts):
    V = len(counts)
    codes = ["".join(map(str, tree.code(w))) for w in range(V)]
    # prefix-free: after sorting, no code is a prefix of its successor
    ordered = sorted(codes)
    assert all(not b.startswith(a) for a, b in zip(ordered, ordered[1:]))
    assert len(set(codes)) == V
    # paths start at the root (the last inner node, row V - 2) and follow parent -> child consistently
    if V > 1:
        assert all(tree.path(w)[0] == V - 2 for w in range(V))
        children = {}
        for w in range(V):
            path, code = tree.path(w), tree.code(w)
            for j in range(len(path) - 1):
                key = (path[j], code[j])
                assert children.setdefault(key, path[j + 1]) == path[j + 1]
        assert np.all((tree.points >= 0) & (tree.points < V - 1))
    # optimal: expected length equals the heap Huffman's
    assert (tree.lengths * np.asarray(counts, dtype=np.float64)).sum() == pytest.approx(_heap_huffman_cost(counts), rel=1e-12)


@pytest.mark.parametrize("rule", ["gensim", "word2vec"])
@pytest.mark.parametrize("V", [2, 3, 7, 100, 1001])
def test_huffman_prefix_free_and_optimal(V, rule):
    counts = np.sort(np.random.default_rng(V).zipf(1.4, V).clip(max=10**6))[::-1]
    _check_tree(build_huffman(counts, rule), counts)


@pytest.mark.parametrize("rule", ["gensim", "word2vec"])
def test_huffman_unsorted_counts_and_ties(rule):
    counts = np.array([3, 10, 1, 10, 5, 5, 2])
    tree = build_huffman(counts, rule)
    _check_tree(tree, counts)
    assert tree.lengths[1] <= tree.lengths[2]  # a more frequent word never gets a longer code
    flat = build_huffman(np.ones(8), rule)
    assert flat.lengths.tolist() == [3] * 8


def test_huffman_single_word_and_gensim_lengths():
    one = build_huffman([5])
    assert one.lengths.tolist() == [0] and one.num_nodes == 0
    from gensim.models import Word2Vec as GensimWord2Vec

    from fastrepr.text.corpora import gensim_test_file

    g = GensimWord2Vec(vector_size=10, min_count=5, hs=1, negative=0)
    g.build_vocab(corpus_file=str(gensim_test_file("lee_background.cor")))
    counts = np.array([g.wv.get_vecattr(w, "count") for w in g.wv.index_to_key])
    ours = build_huffman(counts)
    # the default breaks ties as gensim: the same codes and inner nodes for every word
    for i, w in enumerate(g.wv.index_to_key):
        assert ours.code(i) == g.wv.get_vecattr(w, "code").tolist()
        assert ours.path(i) == g.wv.get_vecattr(w, "point").tolist()
    # word2vec.c's tie rule: another tree, as optimal (the same expected code length)
    gensim_len = np.array([len(g.wv.get_vecattr(w, "code")) for w in g.wv.index_to_key])
    other = build_huffman(counts, "word2vec")
    assert (other.lengths * counts).sum() == (gensim_len * counts).sum()
    assert not np.array_equal(other.points, ours.points)


def test_huffman_bad_input():
    with pytest.raises(ValueError, match="non-empty"):
        build_huffman([])
    with pytest.raises(ValueError, match=">= 0"):
        build_huffman([1, -1])
    with pytest.raises(TypeError, match="numbers"):
        build_huffman(np.array(["a", "b"]))
    with pytest.raises(ValueError, match="rule must be 'gensim' or 'word2vec'"):
        build_huffman([1, 2], "heap")


@pytest.mark.parametrize("rule", ["gensim", "word2vec"])
def test_huffman_large_vocabulary_is_fast(rule):
    import time

    counts = np.sort(np.random.default_rng(0).zipf(1.2, 200_000).clip(max=10**9))[::-1]
    t0 = time.perf_counter()
    tree = build_huffman(counts, rule)
    assert time.perf_counter() - t0 < 5.0
    assert tree.lengths.max() <= tree.points.shape[1]
