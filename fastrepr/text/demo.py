"""The word2vec section of `fastrepr demo`: train on gensim's own text, against gensim, same settings."""
from __future__ import annotations

import importlib.util
import os
import time


def word_scores(vectors) -> tuple[float, float]:
    """(WordSim353 Spearman, Google-analogy accuracy with restrict_vocab=30000) of an EmbeddingIndex, a
    (vectors, keys) pair or a gensim KeyedVectors, through fastrepr.evaluation.words (gensim's semantics and
    counts, tested against gensim there) on the files of gensim's test data."""
    from ..evaluation import words
    from .corpora import gensim_test_file

    ws = words.evaluate_word_pairs(vectors, gensim_test_file("wordsim353.tsv")).spearman
    an = words.evaluate_word_analogies(vectors, gensim_test_file("questions-words.txt"), restrict_vocab=30000).score
    return float(ws), float(an)


def word2vec_demo(corpus: str = "wiki_lee", workers: int | None = None, probe=("war", "city", "music")) -> dict:
    """Skip-gram with negative sampling (window 5, dim 100, 5 epochs) on a corpus shipped with gensim: ours vs
    gensim's words/s, WordSim353 Spearman, Google-analogy accuracy, and nearest neighbours of a few words.
    corpus: "wiki_lee" (0.51M tokens, gensim's Wikipedia + Lee text) or "lee" (lee_background.cor, 60k)."""
    from .corpora import gensim_test_file, wiki_lee_corpus
    from .word2vec import Word2Vec, default_workers

    print(f"\n== word2vec: skip-gram + negative sampling on gensim's own corpus, ours vs gensim "
          + "=" * 8)
    require_gensim()
    path = str(wiki_lee_corpus() if corpus == "wiki_lee" else gensim_test_file("lee_background.cor"))
    workers = workers or default_workers()
    settings = dict(vector_size=100, window=5, min_count=5, sg=1, negative=5, sample=1e-3, epochs=5, workers=workers)
    ours = Word2Vec(progress=False, **settings)
    ours.build_vocab(path)
    ours.train(path)
    from gensim.models import Word2Vec as GensimWord2Vec

    base = GensimWord2Vec(**settings)
    base.build_vocab(corpus_file=path)
    t0 = time.perf_counter()
    base.train(corpus_file=path, total_words=base.corpus_total_words, epochs=5)
    base_rate = ours.vocab.kept_tokens * 5 / (time.perf_counter() - t0)
    index = ours.wv  # fastrepr.EmbeddingIndex
    (ws, an), (bws, ban) = word_scores(index), word_scores(base.wv)
    print(f"corpus {os.path.basename(path)}: {ours.vocab.total_tokens} tokens, {len(ours.keys)} words; "
          f"{workers} threads, native ISA {_isa()}")
    print(f"  {'':8} {'words/s':>10} {'WS353 Spearman':>15} {'analogy acc.':>13}")
    print(f"  {'fastrepr':8} {ours.words_per_second / 1e6:9.2f}M {ws:15.3f} {100 * an:12.1f}%")
    print(f"  {'gensim':8} {base_rate / 1e6:9.2f}M {bws:15.3f} {100 * ban:12.1f}%")
    print(f"  speed-up {ours.words_per_second / base_rate:.1f}x (a 0.5M-token corpus is small: quality numbers are low "
          "for both and vary by about 0.02 between seeds)")
    for word in probe:
        if word in ours:
            print(f"  nearest to {word!r}: " + ", ".join(str(w) for w, _ in index.most_similar(word, k=6)))
    return {"ours_wps": ours.words_per_second, "gensim_wps": base_rate, "ws": ws, "gensim_ws": bws}


def require_gensim() -> None:
    """The demo compares with gensim on gensim's data; fastrepr depends on gensim, so its absence is a broken
    install, reported rather than skipped (a skipped section would let a broken demo pass)."""
    if importlib.util.find_spec("gensim") is None:
        raise RuntimeError("the demo needs gensim (a dependency of fastrepr; its test data holds the corpora and "
                           "the word benchmarks): pip install gensim, or reinstall fastrepr")


def _isa() -> str:
    from .. import _native

    ok, _ = _native.available()
    return _native.get().word2vec_isa() if ok else "n/a"
