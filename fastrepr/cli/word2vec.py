"""``fastrepr word2vec``: train word vectors on a text corpus with gensim-like flags, write word2vec format."""
from __future__ import annotations

from .._io import check_writable
from .args import device_flag, input_file

HELP = "train word vectors on a text corpus (gensim-like flags)"
DESCRIPTION = ("Train word2vec on CORPUS (one sentence per line, whitespace tokens) and write the vectors in "
               "word2vec format.")


def add_arguments(p) -> None:
    p.add_argument("corpus", type=input_file)
    p.add_argument("-o", "--output", required=True, help="vectors file (word2vec text format; --binary for binary)")
    p.add_argument("--vector-size", "--size", type=int, default=100)
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--min-count", type=int, default=5)
    p.add_argument("--max-vocab", type=int, default=None)
    p.add_argument("--cbow", action="store_true", help="CBOW instead of skip-gram")
    p.add_argument("--hs", type=int, choices=[0, 1], default=0, help="hierarchical softmax")
    p.add_argument("--negative", type=int, default=5, help="negative samples (0: none; then --hs 1)")
    p.add_argument("--ns-exponent", type=float, default=0.75)
    p.add_argument("--cbow-mean", type=int, choices=[0, 1], default=1)
    p.add_argument("--sample", type=float, default=1e-3)
    p.add_argument("--alpha", type=float, default=0.025)
    p.add_argument("--min-alpha", type=float, default=1e-4)
    p.add_argument("--epochs", "--iter", type=int, default=5)
    p.add_argument("--workers", "--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--device", default="cpu", type=device_flag, help="cpu or cuda")
    p.add_argument("--update", choices=["exact", "window", "batched"], default=None,
                   help="update rule (default: exact on CPU, as gensim/word2vec.c; see fastrepr.Word2Vec)")
    p.add_argument("--saturation", choices=["skip", "clamp"], default="skip",
                   help="beyond +-MAX_EXP: skip the term (gensim) or clamp the gradient (word2vec.c)")
    p.add_argument("--sigmoid", choices=["table", "interpolated"], default="table",
                   help="sigmoid lookup: the references' table (bit-exact) or interpolated")
    p.add_argument("--binary", action="store_true")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def main(args) -> int:
    from ..text.word2vec import Word2Vec

    model = Word2Vec(vector_size=args.vector_size, window=args.window, min_count=args.min_count,
                     max_vocab=args.max_vocab, sg=0 if args.cbow else 1, hs=args.hs, negative=args.negative,
                     ns_exponent=args.ns_exponent, cbow_mean=args.cbow_mean, sample=args.sample, alpha=args.alpha,
                     min_alpha=args.min_alpha, epochs=args.epochs, workers=args.workers, seed=args.seed,
                     device=args.device, progress=not args.quiet, update=args.update,
                     saturation=args.saturation, sigmoid=args.sigmoid)
    check_writable(args.output, "-o/--output")  # fail before training, not after
    model.train(args.corpus)
    model.save_word2vec_format(args.output, binary=args.binary)
    print(f"{len(model.keys)} words x {model.vector_size} dims -> {args.output} "
          f"({model.words_per_second / 1e6:.2f}M words/s, {model.train_seconds:.1f} s, loss {model.loss:.4f})")
    return 0
