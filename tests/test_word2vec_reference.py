"""The exact update rule of the native word2vec trainer against a plain Python/numpy transcription of gensim's
``word2vec_inner`` loop (which is word2vec.c's), in float64, on a tiny corpus with one worker and the
trainer's documented random stream (csrc/word2vec.h): subsampling, shrinking windows, fresh negatives per
pair, sequential updates, learning-rate decay by words, both saturation rules, cbow_mean, and
hierarchical softmax together with negative sampling. Every weight must agree to 1e-5.

The loop is compared with the interpolated sigmoid (sigmoid="interpolated", within 2e-6 of the true one): the
default, word2vec.c's and gensim's table lookup, is piecewise constant, so a float32 and a float64 score on
either side of a step would differ by 3e-3 in sigmoid. That lookup is compared bit for bit on its own below,
and it is the only thing the two settings change."""
import numpy as np
import pytest

import fastrepr
from fastrepr import _native
from utils import use_impl as use_backend

MASK48 = (1 << 48) - 1
MAX_EXP = 6.0


class Lcg:
    """gensim's / word2vec.c's generator: next = next * 25214903917 + 11 mod 2^48, a draw is next >> 16. The seed
    of thread t is splitmix64(seed + (t + 1) * 0x9E3779B97F4A7C15) mod 2^48 (csrc/word2vec.h)."""

    def __init__(self, seed, thread=0):
        z = (seed + (thread + 1) * 0x9E3779B97F4A7C15) & (2**64 - 1)
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & (2**64 - 1)
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & (2**64 - 1)
        self.s = (z ^ (z >> 31)) & MASK48

    def next(self):
        x = self.s >> 16
        self.s = (self.s * 25214903917 + 11) & MASK48
        return x


def draw_noise(rng, prob, alias):
    xv = rng.next() * prob.size
    bucket, frac = xv >> 32, xv & 0xFFFFFFFF
    return bucket if frac < prob[bucket] else int(alias[bucket])


def predict(x, targets, alpha, clamp):
    """gensim's fast_sentence_*: targets scored and updated one after the other; returns the error of x."""
    e = np.zeros_like(x)
    for table, row, label in targets:
        f = x @ table[row]
        if -MAX_EXP < f < MAX_EXP:
            g = (label - 1 / (1 + np.exp(-f))) * alpha
        elif clamp:  # word2vec.c
            g = (label - (1.0 if f > 0 else 0.0)) * alpha
        else:        # gensim
            continue
        e += g * table[row]
        table[row] += g * x
    return e


def reference_train(tokens, offsets, syn0, syn1neg, syn1, keep, prob, alias, tree, *, sg, hs, negative, window,
                    cbow_mean, shrink_windows, epochs, alpha, min_alpha, seed, clamp):
    syn0, syn1neg, syn1 = (t.astype(np.float64) for t in (syn0, syn1neg, syn1))
    rng = Lcg(seed)
    total, done = epochs * tokens.size, 0
    for _ in range(epochs):
        for s in range(offsets.size - 1):
            raw = tokens[offsets[s]:offsets[s + 1]]
            a = float(np.float32(max(min_alpha, alpha - (alpha - min_alpha) * done / total)))
            sen = [int(w) for w in raw if keep is None or not keep[w] < rng.next()]
            shrink = [rng.next() % window if shrink_windows else 0 for _ in sen]
            for i, w in enumerate(sen):
                lo, hi = max(0, i - window + shrink[i]), min(len(sen), i + window + 1 - shrink[i])
                path = [(syn1, p, 1.0 - c) for p, c in zip(tree.path(w), tree.code(w))] if hs else []

                def noise():
                    draws = [draw_noise(rng, prob, alias) for _ in range(negative)]
                    return [(syn1neg, w, 1.0)] + [(syn1neg, nw, 0.0) for nw in draws if nw != w]

                if sg:  # the context row predicts the center: HS pair, then NS pair with fresh noise
                    for j in range(lo, hi):
                        if j == i:
                            continue
                        c = sen[j]
                        if hs:
                            syn0[c] += predict(syn0[c].copy(), path, a, False)
                        if negative:
                            syn0[c] += predict(syn0[c].copy(), noise(), a, clamp)
                    continue
                ctx = [sen[j] for j in range(lo, hi) if j != i]
                for targets in ([path] if hs else []) + ([noise()] if negative else []):
                    if not ctx:
                        continue  # h = 0 changes nothing (the noise was still drawn)
                    h = syn0[ctx].sum(0)
                    if cbow_mean:
                        h /= len(ctx)
                    e = predict(h, targets, a, clamp)
                    for c in ctx:
                        syn0[c] += e if cbow_mean else e / len(ctx)
            done += raw.size
    return syn0, syn1neg, syn1


def corpus(n_sentences=40, seed=0):
    """Sentences of 1 to 14 words over a Zipf-like vocabulary of 25 words (frequent words get subsampled)."""
    rng = np.random.default_rng(seed)
    p = 1 / np.arange(1, 26)
    p /= p.sum()
    return [[f"w{i}" for i in rng.choice(25, size=rng.integers(1, 15), p=p)] for _ in range(n_sentences)]


CASES = {  # name: (sg, hs, negative, cbow_mean, saturation)
    "sg-ns": (1, 0, 4, 1, "skip"),
    "sg-ns-clamp": (1, 0, 4, 1, "clamp"),
    "sg-hs": (1, 1, 0, 1, "skip"),
    "cbow-ns": (0, 0, 4, 1, "skip"),
    "cbow-ns-clamp-sum": (0, 0, 4, 0, "clamp"),
    "cbow-hs": (0, 1, 0, 1, "skip"),
    "cbow-hs-sum": (0, 1, 0, 0, "skip"),
    "sg-hs-ns": (1, 1, 3, 1, "skip"),
    "sg-ns-many": (1, 0, 12, 1, "skip"),   # K > 8: repeated noise words found through stamps
}


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])  # unsupported ones fall back to another
@pytest.mark.parametrize("case", list(CASES))
def test_exact_mode_equals_numpy_transcription(monkeypatch, case, isa):
    from fastrepr.text.sampling import keep_thresholds

    use_backend("native", monkeypatch)
    monkeypatch.setenv("FASTREPR_W2V_ISA", isa)
    sg, hs, negative, cbow_mean, saturation = CASES[case]
    D, window, epochs, alpha, min_alpha, seed = 20, 3, 2, 0.1, 0.01, 7
    sentences = corpus()
    model = fastrepr.Word2Vec(vector_size=D, window=window, min_count=1, sg=sg, hs=hs, negative=negative,
                              cbow_mean=cbow_mean, sample=0.05, alpha=alpha, min_alpha=min_alpha, epochs=epochs,
                              workers=1, seed=seed, saturation=saturation, sigmoid="interpolated", progress=False)
    model.build_vocab(sentences)
    # Weights large enough that some scores saturate (|f| >= 6), so both saturation rules are exercised.
    rng = np.random.default_rng(1)
    for table in (model.syn0, model.syn1neg, model.syn1):
        if table is not None:
            table.copy_(fastrepr_tensor(rng.uniform(-0.9, 0.9, tuple(table.shape))))
    before = [None if t is None else t.numpy().copy() for t in (model.syn0, model.syn1neg, model.syn1)]
    model.train(sentences)
    assert model.update_rule == "exact"
    tokens, offsets = model.vocab.encode(sentences)
    keep = keep_thresholds(model.vocab.counts, 0.05)
    assert (keep < 2**32 - 1).any()  # subsampling is on for the frequent words
    prob, alias = model.noise.native_arrays() if negative else (None, None)
    V = len(model.vocab)
    ref = reference_train(tokens, offsets, before[0], before[1] if negative else np.zeros((V, D)),
                          before[2] if hs else np.zeros((V - 1, D)), keep, prob, alias, model.tree, sg=sg, hs=hs,
                          negative=negative, window=window, cbow_mean=cbow_mean, shrink_windows=True,
                          epochs=epochs, alpha=alpha, min_alpha=min_alpha, seed=seed, clamp=saturation == "clamp")
    got = [model.syn0, model.syn1neg, model.syn1]
    for name, g, r, b in zip(("syn0", "syn1neg", "syn1"), got, ref, before):
        if g is None:
            continue
        g = g.numpy()
        assert np.abs(g - b).max() > 0.05, f"{name} barely moved: the test would not see a wrong update"
        np.testing.assert_allclose(g, r, atol=1e-5, rtol=0, err_msg=name)


def fastrepr_tensor(a):
    import torch

    return torch.as_tensor(a, dtype=torch.float32)


def test_exact_mode_saturation_rules_differ(monkeypatch):
    """The two saturation rules give different weights once scores saturate (so the test above can tell them
    apart), and the same weights when nothing saturates (small weights, few epochs)."""

    use_backend("native", monkeypatch)
    sentences = corpus()

    def run(saturation, scale):
        m = fastrepr.Word2Vec(vector_size=20, window=3, min_count=1, negative=4, sample=0, epochs=1, workers=1,
                              seed=3, saturation=saturation, sigmoid="interpolated", progress=False)
        m.build_vocab(sentences)
        rng = np.random.default_rng(2)
        m.syn0.copy_(fastrepr_tensor(rng.uniform(-scale, scale, tuple(m.syn0.shape))))
        m.syn1neg.copy_(fastrepr_tensor(rng.uniform(-scale, scale, tuple(m.syn1neg.shape))))
        return m.train(sentences).vectors.copy()

    assert not np.allclose(run("skip", 1.5), run("clamp", 1.5), atol=1e-3)
    np.testing.assert_array_equal(run("skip", 0.01), run("clamp", 0.01))


def test_random_stream_is_the_documented_lcg(monkeypatch):
    """The exposed samplers draw from thread 0's LCG stream exactly as the transcription above does."""
    from fastrepr.text.sampling import noise_table

    use_backend("native", monkeypatch)
    C = _native.get()
    prob, alias = noise_table(np.arange(1, 40) ** 2).native_arrays()
    out = np.empty(500, np.int32)
    C.word2vec_draw_noise(prob, alias, 11, out)
    rng = Lcg(11)
    assert out.tolist() == [draw_noise(rng, prob, alias) for _ in range(500)]
    keep = np.array([2**31, 2**30, 2**32 - 1, 0], np.uint32)
    tokens = np.tile(np.arange(4, dtype=np.int32), 100)
    kept = np.empty_like(tokens)
    n = C.word2vec_subsample(tokens, keep, 5, kept)
    rng = Lcg(5)
    assert kept[:n].tolist() == [int(w) for w in tokens if not keep[w] < rng.next()]


def reference_table_sigmoid(f):
    """word2vec.c's / gensim's lookup: expTable[(int)((f + MAX_EXP) * (EXP_TABLE_SIZE / MAX_EXP / 2))] with
    integer division (1000 / 6 / 2 = 83), the table built in float32 as gensim's init() builds it; NaN outside
    (-6, 6), where the saturation rule applies instead."""
    i = np.arange(1000, dtype=np.float32)
    x = (i / np.float32(1000) * np.float32(2) - np.float32(1)) * np.float32(6)
    e = np.exp(x.astype(np.float64)).astype(np.float32)
    table = e / (e + np.float32(1))
    f = np.asarray(f, dtype=np.float32)
    inside = (f > -MAX_EXP) & (f < MAX_EXP)
    idx = np.where(inside, (np.where(inside, f, 0).astype(np.float64) + 6.0) * 83, 0).astype(np.int64)
    return np.where(inside, table[np.minimum(idx, 999)], np.nan).astype(np.float32)


def test_table_sigmoid_is_the_references_lookup_bit_for_bit(monkeypatch):

    use_backend("native", monkeypatch)
    C = _native.get()
    rng = np.random.default_rng(0)
    steps = (np.arange(0, 996) / 83.0 - 6.0).astype(np.float32)  # the lookup's step edges, and their neighbours
    f = np.concatenate([rng.uniform(-7, 7, 100_000).astype(np.float32), steps, np.nextafter(steps, -np.inf),
                        np.nextafter(steps, np.inf), np.float32([-6, 6, np.nextafter(6, 0), np.nextafter(-6, 0),
                                                                 0, np.nan, np.inf, -np.inf])])
    out = np.empty_like(f)
    C.word2vec_sigmoid(f, out, 0)
    np.testing.assert_array_equal(out, reference_table_sigmoid(f))
    assert out[np.isclose(f, 0, atol=1e-9)][0] == pytest.approx(0.494, abs=1e-3)  # sigmoid(-0.024), not 0.5
    C.word2vec_sigmoid(f, out, 1)
    inside = (f > -6) & (f < 6)
    np.testing.assert_allclose(out[inside], 1 / (1 + np.exp(-f[inside].astype(np.float64))), atol=2e-6, rtol=0)
    assert np.isnan(out[~inside]).all()


def test_default_trains_with_the_table_sigmoid(monkeypatch):
    """The default reads the references' table; only the sigmoid separates it from the interpolated run."""

    use_backend("native", monkeypatch)
    sentences = corpus()
    runs = {s: fastrepr.Word2Vec(sentences, vector_size=20, window=3, min_count=1, negative=4, sample=0, epochs=2,
                                 workers=1, seed=3, sigmoid=s, progress=False).vectors for s in ("table", "interpolated")}
    default = fastrepr.Word2Vec(sentences, vector_size=20, window=3, min_count=1, negative=4, sample=0, epochs=2,
                                workers=1, seed=3, progress=False).vectors
    np.testing.assert_array_equal(default, runs["table"])
    gap = np.abs(runs["table"] - runs["interpolated"]).max()
    assert 1e-6 < gap < 0.1  # a small, systematic difference (sigmoid(0) reads 0.494 in the table)
