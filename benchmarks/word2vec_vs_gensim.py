"""fastrepr.Word2Vec against gensim at the extremes gensim accepts: alpha 0.75, 1, 2, 10 and 1000 negatives.

    python benchmarks/word2vec_vs_gensim.py [--epochs 3] [--workers 2]

On gensim's lee_background.cor (60k tokens; gensim's defaults otherwise: dim 100, window 5, min_count 5,
sample 1e-3), skip-gram and CBOW with negative sampling: the largest |vector entry| of gensim's vectors and of
ours under each update rule and saturation rule, or "FPE" where our trainer stopped with FloatingPointError
(a diverged run: NaN/Inf scores, or the clamp rule's exploding loss). gensim's skip rule keeps the weights
bounded at these settings, and so does our default; the numbers of a quality comparison on a real corpus are
benchmarks/word2vec_quality.py's. Prints a markdown table (the one in benchmarks/RESULTS.md).
"""
import argparse

import numpy as np

CASES = [dict(alpha=1.0), dict(alpha=2.0), dict(alpha=10.0), dict(alpha=0.75), dict(negative=1000),
         dict(alpha=0.75, negative=1000)]
OURS = [("exact", "skip"), ("exact", "clamp"), ("window", "skip"), ("window", "clamp")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()

    from gensim.models import Word2Vec as GensimWord2Vec

    import fastrepr
    from fastrepr.text.corpora import gensim_test_file

    path = str(gensim_test_file("lee_background.cor"))
    print("| input | gensim | exact (default) | exact, clamp | window | window, clamp |")
    print("|---|---|---|---|---|---|")
    for kw in CASES:
        for sg in (1, 0):
            common = dict(sg=sg, epochs=args.epochs, workers=args.workers, **kw)
            cells = [f"{np.abs(GensimWord2Vec(corpus_file=path, **common).wv.vectors).max():.3g}"]
            for update, saturation in OURS:
                try:
                    model = fastrepr.Word2Vec(corpus_file=path, update=update, saturation=saturation,
                                              progress=False, **common)
                    cells.append(f"{np.abs(model.vectors).max():.3g}")
                except FloatingPointError:
                    cells.append("FPE")
            name = ", ".join(f"{k}={v}" for k, v in kw.items()) + (", skip-gram" if sg else ", CBOW")
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
