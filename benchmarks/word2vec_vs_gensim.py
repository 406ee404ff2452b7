"""fastrepr.Word2Vec against gensim on the same corpus: speed (same run, alternating) and quality.

    python benchmarks/word2vec_vs_gensim.py [--configs sgns,cbow,sghs,cbowhs] [--seeds 3] [--threads 2]
                                            [--copies 1] [--out results.md]

Settings (the issue's bar): window 5, negative 5 (NS) or hs=1 negative=0 (HS), dim 100, sample 1e-3, 5 epochs,
min_count 5, both with the same number of worker threads; the vocabulary is built before timing. Corpus:
gensim's Wikipedia + Lee text (fastrepr.text.corpora.wiki_lee_corpus, 0.51M tokens). Quality: WordSim353
Spearman and Google analogy accuracy (restrict_vocab=30000) of each model's vectors, computed the same way for
both by fastrepr.evaluation.words (gensim's semantics and counts). Words/s = in-vocabulary corpus tokens x epochs / training wall time. Prints a markdown table.
"""
import argparse
import datetime
import platform
import statistics
import time

import torch

CONFIGS = {"sgns": dict(sg=1, hs=0, negative=5), "cbow": dict(sg=0, hs=0, negative=5),
           "sghs": dict(sg=1, hs=1, negative=0), "cbowhs": dict(sg=0, hs=1, negative=0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", default="sgns,cbow,sghs,cbowhs")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--copies", type=int, default=1)
    args = ap.parse_args()

    from gensim.models import Word2Vec as GensimWord2Vec

    from fastrepr import Word2Vec, _native
    from fastrepr.bench import device_name
    from fastrepr.text.corpora import wiki_lee_corpus
    from fastrepr.text.demo import word_scores

    path = str(wiki_lee_corpus(args.copies))
    rows = []
    for name in args.configs.split(","):
        cfg = CONFIGS[name]
        res = {"ours": [], "gensim": []}
        for seed in range(1, args.seeds + 1):
            common = dict(vector_size=100, window=5, min_count=5, sample=1e-3, epochs=5, workers=args.threads, seed=seed, **cfg)
            g = GensimWord2Vec(**common)
            g.build_vocab(corpus_file=path)
            ours = Word2Vec(progress=False, **common)
            ours.build_vocab(path)
            words = ours.vocab.kept_tokens * 5
            order = [("gensim", g), ("ours", ours)] if seed % 2 else [("ours", ours), ("gensim", g)]
            for side, model in order:
                t0 = time.perf_counter()
                if side == "gensim":
                    model.train(corpus_file=path, total_words=model.corpus_total_words, epochs=5)
                    keys, vecs = model.wv.index_to_key, model.wv.vectors
                else:
                    model.train(path)
                    keys, vecs = model.keys, model.vectors
                dt = time.perf_counter() - t0
                ws, an = word_scores((vecs, keys))
                res[side].append((words / dt, ws, an))
                print(f"{name} seed {seed} {side}: {words / dt / 1e6:.3f}M words/s, WS353 {ws:.4f}, analogy {an:.4f}",
                      flush=True)
        med = {s: [statistics.median(v[i] for v in res[s]) for i in range(3)] for s in res}
        mean = {s: [statistics.mean(v[i] for v in res[s]) for i in range(3)] for s in res}
        rows.append((name, med, mean, res))
    print(f"\n{datetime.date.today()} {device_name(torch.device('cpu'))}, {args.threads} threads, torch "
          f"{torch.__version__}, ISA {_native.get().word2vec_isa()}, corpus {path} ({args.copies} copies), "
          f"{args.seeds} seeds (speed: median; quality: mean)\n")
    print("| config | ours words/s | gensim words/s | speed-up | WS353 ours | WS353 gensim | analogy ours | analogy gensim |")
    print("|---|---|---|---|---|---|---|---|")
    for name, med, mean, _ in rows:
        print(f"| {name} | {med['ours'][0] / 1e6:.3f}M | {med['gensim'][0] / 1e6:.3f}M | "
              f"{med['ours'][0] / med['gensim'][0]:.2f}x | {mean['ours'][1]:.4f} | {mean['gensim'][1]:.4f} | "
              f"{100 * mean['ours'][2]:.2f}% | {100 * mean['gensim'][2]:.2f}% |")


if __name__ == "__main__":
    main()
