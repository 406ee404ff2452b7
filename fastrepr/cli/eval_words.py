"""``fastrepr eval-words``: load a vector file, run the word benchmarks, print per-section tables (the table
printers are shared with ``fastrepr demo``)."""
from __future__ import annotations

import time
from pathlib import Path

from ..bench.harness import table
from .args import device_flag, input_file, nonnegative_int, positive_int

HELP = "word analogies and word-pair similarity of a vector file, with gensim's exact semantics"


def load_vectors(path, fmt: str = "auto", limit: int | None = None):
    """(vectors, keys, format) from a word2vec text/binary file (header "count dim") or GloVe text
    (no header); ``fmt`` "auto" decides from the first line: a header of two integers is word2vec's (a GloVe
    row holds a word and at least one number, so it is never two integers)."""
    from .._io import open_read, stream_errors
    from ..text import io

    if fmt == "auto":
        with open_read(path) as f, stream_errors(path, lambda: {"line": 1}):
            first = f.readline(256).split()
        fmt = "word2vec" if len(first) == 2 and all(p.isdigit() for p in first) else "glove"
    if fmt == "glove":
        vectors, keys = io.load_glove(path, limit=limit)
    else:
        vectors, keys = io.load_word2vec_format(path, limit=limit)
    return vectors, keys, fmt


def analogy_table(result) -> str:
    """| section | correct | total | accuracy | for each section and the total, gensim's numbers."""
    rows = []
    for s in result.sections:
        right, total = len(s["correct"]), len(s["correct"]) + len(s["incorrect"])
        rows.append((s["section"], str(right), str(total), f"{100.0 * right / total:.1f}%" if total else "-"))
    return table(("section", "correct", "total", "accuracy"), rows)


def pairs_table(results: dict) -> str:
    rows = [(Path(name).name, str(r.pairs), f"{r.pearson:.4f}", f"{r.spearman:.4f}", f"{r.oov_ratio:.1f}%")
            for name, r in results.items()]
    return table(("file", "pairs", "pearson", "spearman", "OOV pairs"), rows)


def add_arguments(p) -> None:
    p.add_argument("vectors", type=input_file, help="word2vec text/binary or GloVe text file (.gz/.bz2 allowed)")
    p.add_argument("--analogies", type=input_file, help="analogy questions (default: gensim's questions-words.txt)")
    p.add_argument("--pairs", nargs="+", type=input_file,
                   help="word-pair files (default: gensim's wordsim353.tsv, simlex999.txt)")
    p.add_argument("--method", choices=["3cosadd", "3cosmul"], default="3cosadd")
    p.add_argument("--restrict-vocab", type=positive_int, default=300000,
                   help="only the first N words (gensim's default)")
    p.add_argument("--case-sensitive", action="store_true", help="do not fold case (gensim: case_insensitive=False)")
    p.add_argument("--format", choices=["auto", "word2vec", "glove"], default="auto")
    p.add_argument("--limit", type=nonnegative_int, help="read only the first N vectors of the file")
    p.add_argument("--device", choices=["cpu", "cuda"], type=device_flag,
                   help="where to search (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args) -> int:
    import torch

    from ..data.corpora import bundled
    from ..evaluation import words
    from ..search import EmbeddingIndex

    questions = args.analogies or bundled("questions-words.txt")  # before the long load
    pairs = args.pairs or [bundled("wordsim353.tsv"), bundled("simlex999.txt")]
    t0 = time.perf_counter()
    vectors, keys, fmt = load_vectors(args.vectors, args.format, args.limit)
    if not keys:
        raise ValueError(f"{args.vectors}: no vectors to evaluate" + (" (--limit 0)" if args.limit == 0 else ""))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    index = EmbeddingIndex(torch.from_numpy(vectors).to(device), keys)
    print(f"loaded {len(keys)} x {vectors.shape[1]} vectors ({fmt}) from {args.vectors} in "
          f"{time.perf_counter() - t0:.1f} s; index: {index.engine} on {device}")
    t0 = time.perf_counter()
    result = words.evaluate_word_analogies(index, questions, args.restrict_vocab, not args.case_sensitive,
                                           args.method, progress=not args.no_progress)
    print(f"\nanalogies: {questions} ({args.method}, restrict_vocab={args.restrict_vocab}) in "
          f"{time.perf_counter() - t0:.2f} s")
    print(analogy_table(result))
    print(f"questions with out-of-vocabulary words: {result.oov} of {result.questions} ({result.oov_ratio:.1f}%, "
          f"skipped as gensim does); near-ties settled with gensim's float32 arithmetic: {result.rescored}")
    scored = {str(p): words.evaluate_word_pairs(index, p, restrict_vocab=args.restrict_vocab,
                                                case_insensitive=not args.case_sensitive) for p in pairs}
    print("\nword pairs (Pearson / Spearman against human scores):")
    print(pairs_table(scored))
    return 0
