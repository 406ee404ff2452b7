"""fastrepr.Word2Vec against gensim on a real multi-million-token English text: quality and speed, same run.

    python benchmarks/word2vec_quality.py [--quick] [--modes sgns,cbow,sghs,cbowhs] [--seeds 3] [--workers 2]
                                          [--gensim gensim,gensim-iterable] [--rules exact,window,exact-cfschedule]
                                          [--epochs 3] [--out table.md]

Corpus (fetched once into ~/.cache/fastrepr/corpora, or $FASTREPR_CACHE/corpora): the glosses of Debian's
``dict-wn`` (WordNet 3.0) and ``dict-foldoc`` (the Free On-line Dictionary of Computing), downloaded with
``apt-get download`` when missing, unpacked with ``dpkg-deb -x``; the dictd markup (headwords, part-of-speech
tags and sense numbers, [syn: {...}] lists, braces, <category> tags, URLs, dates, pronunciations) is stripped,
leaving lower-case words [a-z]+, one gloss, example or sentence per line: about 3.4M tokens.

Settings (the issue's): vector_size=100, window=5, min_count=5, sample=1e-3, epochs=3, the same number of
workers for every trainer (2), seeds 1..3, for skip-gram / CBOW x negative sampling (negative=5) /
hierarchical softmax (hs=1, negative=0). gensim runs in both of its modes: ``corpus_file`` (its fastest, the
speed baseline) and iterable (``LineSentence``), which differ in their learning-rate schedule (see
benchmarks/RESULTS.md); ours from the same file, with each update rule asked for (exact = the default;
window = the faster option; exact-cfschedule = the exact rule under gensim corpus_file's schedule, a
diagnostic; batched = the device trainer's rule). The vocabulary is built before the clock starts; in each
seed the trainers run one after the other in alternating order. Words/s = corpus words in the vocabulary x
epochs / training wall time, so all divide the same number. Quality: WordSim353 Spearman and Google-analogy
accuracy (restrict_vocab=30000) of each model's vectors, all scored by fastrepr.evaluation.words (gensim's
counts). Prints a markdown table: mean (min-max) over the seeds, and the median words/s with the ratio to the
first gensim mode's in the same run. --quick: the first 400k tokens, one seed. Speed: run it alone, e.g.
``flock /tmp/fastrepr-bench.lock python benchmarks/word2vec_quality.py --seeds 1 --gensim gensim --rules
exact,window``.
"""
import argparse
import datetime
import gzip
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

MODES = {"sgns": dict(sg=1, hs=0, negative=5), "cbow": dict(sg=0, hs=0, negative=5),
         "sghs": dict(sg=1, hs=1, negative=0), "cbowhs": dict(sg=0, hs=1, negative=0)}
PACKAGES = {"dict-wn": "usr/share/dictd/wn.dict.dz", "dict-foldoc": "usr/share/dictd/foldoc.dict.dz"}
WORD = re.compile(r"[a-z]+")


def cache_dir() -> Path:
    root = os.environ.get("FASTREPR_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "fastrepr")
    path = Path(root) / "corpora"
    path.mkdir(parents=True, exist_ok=True)
    return path


def dict_file(package: str, cache: Path) -> Path:
    """The .dict.dz of a Debian dictd package, downloaded and unpacked into the cache when missing."""
    unpacked = cache / package
    target = unpacked / PACKAGES[package]
    if target.exists():
        return target
    if shutil.which("dpkg-deb") is None or shutil.which("apt-get") is None:
        raise SystemExit(f"fetching {package} needs apt-get and dpkg-deb (Debian/Ubuntu); or put its .deb in {cache}")
    debs = sorted(cache.glob(f"{package}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", package], cwd=cache, check=True)
        debs = sorted(cache.glob(f"{package}_*.deb"))
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(unpacked)], check=True)
    return target


def entries(path: Path):
    """(headword, body) of each dictd entry: a headword line at column 0, then indented lines."""
    text = gzip.open(path, "rt", encoding="utf-8", errors="replace").read()
    for entry in re.split(r"\n(?=\S)", text):
        head, _, body = entry.partition("\n")
        if not head.startswith("00-database") and body.strip():
            yield head, " ".join(body.split())


def wordnet_lines(path: Path):
    """WordNet glosses: drop [syn: ...]-style lists, split at sense markers ('n 1:', '2:') and at ';' or a
    quote (definition vs. examples)."""
    for _, body in entries(path):
        body = re.sub(r"\[[a-z]*:?[^\]]*\]", " ", body)
        for sense in re.split(r"(?:\b(?:n|v|adj|adv)\s+)?\b\d+:\s", body):
            for part in re.split(r'[;"]', sense):
                yield WORD.findall(part.lower())


def foldoc_lines(path: Path):
    """FOLDOC articles: drop <category> tags, URLs, (yyyy-mm-dd) dates and /pronunciations/; one sentence a line."""
    for _, body in entries(path):
        body = re.sub(r"<[^>]*>", " ", body)
        body = re.sub(r"\b(?:ftp|https?|mailto|news|telnet|gopher):\S+", " ", body)
        body = re.sub(r"\(\d{4}-\d{2}-\d{2}\)", " ", body)
        body = re.sub(r"/[^/ ][^/]{0,60}/", " ", body)
        for sentence in re.split(r"(?<=[.!?;:])\s+", body):
            yield WORD.findall(sentence.lower())


def dictionary_corpus() -> Path:
    """The cached corpus text (built on first use, written atomically)."""
    cache = cache_dir()
    path = cache / "dict_wn_foldoc.txt"
    if path.exists():
        return path
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        for package, lines in (("dict-wn", wordnet_lines), ("dict-foldoc", foldoc_lines)):
            for tokens in lines(dict_file(package, cache)):
                if len(tokens) >= 2:
                    out.write(" ".join(tokens) + "\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return path


def head_of(path: Path, tokens: int) -> Path:
    """The first lines of path holding about `tokens` tokens (for --quick)."""
    small = path.with_name(f"{path.stem}_head{tokens}.txt")
    if not small.exists():
        n = 0
        with open(path, encoding="utf-8") as src, open(small.with_suffix(".tmp"), "w", encoding="utf-8") as dst:
            for line in src:
                dst.write(line)
                n += len(line.split())
                if n >= tokens:
                    break
        os.replace(small.with_suffix(".tmp"), small)
    return small


def run(path: str, modes, seeds: int, workers: int, epochs: int, rules, gensim_modes):
    from gensim.models import Word2Vec as GensimWord2Vec
    from gensim.models.word2vec import LineSentence

    from fastrepr import Word2Vec
    from fastrepr.evaluation.report import word_scores

    results = {}
    for name in modes:
        res = results[name] = {side: [] for side in [*gensim_modes, *rules]}
        for seed in range(1, seeds + 1):
            common = dict(vector_size=100, window=5, min_count=5, sample=1e-3, epochs=epochs, workers=workers,
                          seed=seed, **MODES[name])
            models = {}
            for gm in gensim_modes:
                models[gm] = GensimWord2Vec(**common)
                models[gm].build_vocab(corpus_file=path)
            for rule in rules:
                device_rule = dict(batch_words=16384) if rule == "batched" else {}  # the CUDA default step
                models[rule] = Word2Vec(progress=False, update=rule.split("-")[0], **device_rule, **common)
                models[rule].build_vocab(path)
            words = models[rules[0]].vocab.kept_tokens * epochs
            order = list(models) if seed % 2 else list(models)[::-1]
            for side in order:
                model = models[side]
                t0 = time.perf_counter()
                if side == "gensim":
                    model.train(corpus_file=path, total_words=model.corpus_total_words, epochs=epochs)
                    vectors = model.wv
                elif side == "gensim-iterable":
                    model.train(LineSentence(path), total_examples=model.corpus_count, epochs=epochs)
                    vectors = model.wv
                elif side.endswith("-cfschedule"):
                    # gensim's corpus_file schedule: each of W workers decays alpha by its own words over the
                    # whole corpus's, so epoch e runs from a(e / E) down to a((e + 1 / W) / E) only
                    # (word2vec_corpusfile.pyx, get_next_alpha): emulated by one train call per epoch.
                    a0, a1 = model.alpha, model.min_alpha
                    for e in range(epochs):
                        model.alpha = a0 - (a0 - a1) * e / epochs
                        model.min_alpha = a0 - (a0 - a1) * (e + 1 / workers) / epochs
                        model.train(path, epochs=1)
                    model.alpha, model.min_alpha = a0, a1
                    vectors = (model.vectors, model.keys)
                else:
                    model.train(path)
                    vectors = (model.vectors, model.keys)
                dt = time.perf_counter() - t0
                ws, an = word_scores(vectors)
                res[side].append((words / dt, ws, an))
                print(f"{name} seed {seed} {side}: {words / dt / 1e6:.3f}M words/s, WS353 {ws:.4f}, "
                      f"analogy {100 * an:.2f}%", flush=True)
    return results


def table(results, rules, gensim_modes) -> str:
    def span(values, scale=1.0, digits=3):
        vals = [v * scale for v in values]
        return f"{statistics.mean(vals):.{digits}f} ({min(vals):.{digits}f}-{max(vals):.{digits}f})"

    lines = ["| mode | trainer | analogy % | WordSim353 | words/s (median) | speed-up vs gensim |",
             "|---|---|---|---|---|---|"]
    for name, res in results.items():
        base = statistics.median(r[0] for r in res[gensim_modes[0]])
        for side in [*gensim_modes, *rules]:
            rows = res[side]
            wps = statistics.median(r[0] for r in rows)
            label = {"gensim": "gensim corpus_file", "gensim-iterable": "gensim iterable",
                     "exact-cfschedule": "fastrepr exact, corpus_file's alpha schedule"}.get(side, f"fastrepr {side}")
            lines.append(f"| {name} | {label} | {span([r[2] for r in rows], 100, 2)} | "
                         f"{span([r[1] for r in rows])} | {wps / 1e6:.3f}M | "
                         f"{'' if side == 'gensim' else f'{wps / base:.2f}x'} |")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="400k tokens, one seed (a smoke run)")
    ap.add_argument("--modes", default="sgns,cbow,sghs,cbowhs")
    ap.add_argument("--rules", default="exact,window,exact-cfschedule",
                    help="fastrepr update rules to run; exact-cfschedule: the exact rule under gensim "
                         "corpus_file's per-worker learning-rate schedule (a diagnostic); batched: the device "
                         "trainer's rule, here on the CPU (torch backend, 16384 centers per step)")
    ap.add_argument("--gensim", default="gensim,gensim-iterable",
                    help="gensim runs: gensim (corpus_file, its fastest mode: the speed baseline) and/or "
                         "gensim-iterable (LineSentence)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--out", help="also write the table (markdown) here")
    args = ap.parse_args()

    import torch

    from fastrepr import _native
    from fastrepr.bench import device_name

    path = dictionary_corpus()
    if args.quick:
        path, args.seeds = head_of(path, 400_000), 1
    tokens = sum(len(line.split()) for line in open(path, encoding="utf-8"))
    rules = args.rules.split(",")
    gensim_modes = args.gensim.split(",")
    results = run(str(path), args.modes.split(","), args.seeds, args.workers, args.epochs, rules, gensim_modes)
    import gensim

    header = (f"{datetime.date.today()} {device_name(torch.device('cpu'))}, {args.workers} workers each, "
              f"gensim {gensim.__version__}, ISA {_native.get().word2vec_isa()}, corpus {path.name} "
              f"({tokens:,} tokens), {args.epochs} epochs, seeds 1-{args.seeds}")
    text = header + "\n\n" + table(results, rules, gensim_modes) + "\n"
    print("\n" + text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
