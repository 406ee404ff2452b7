"""Mutation fuzz of every file reader: word2vec text and binary, GloVe, analogy questions, word pairs (each
plain and .gz), and the dSprites npz.

Each case takes a small valid file, mutates its bytes (bit flips, random or telling bytes, insertions,
deletions, duplicated ranges, truncation, header numbers swapped for huge/zero/negative ones; for .gz both
the compressed bytes and the text before compression), and reads it. A case passes when the reader either
returns a well-formed result or raises ``fastrepr.FormatError`` naming the file (the word benchmarks may
also raise a ValueError naming the file when nothing in it is usable). It fails on any other exception,
MemoryError included, on more than ``--max-mb`` MiB of traced allocation (a size taken from a header
without checking it against the file), and on running past ``--case-timeout`` seconds (a hang).

    python benchmarks/fuzz_readers.py --seconds 60 --seed 1        # the long run
    tests/test_reader_fuzz.py                                       # a short seeded run in CI, same code
    python benchmarks/fuzz_readers.py --detection 20000             # text/binary detection on random
                                                                    # binary files: right / error / wrong

Prints the cases per reader and outcome, and every failure with the seed that reproduces it
(``--replay SEED:KIND:INDEX``).
"""
from __future__ import annotations

import argparse
import bz2
import warnings
import gzip
import random
import signal
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

import numpy as np

from fastrepr import FormatError
from fastrepr.data import DSprites
from fastrepr.evaluation import words
from fastrepr.search import EmbeddingIndex
from fastrepr.text import load_glove, load_word2vec_format

KINDS = ("word2vec_text", "word2vec_binary", "glove", "questions", "pairs", "npz")
WORDS = ["king", "queen", "man", "woman", "paris", "france", "rome", "italy", "big", "bigger", "small", "smaller"]


class _Timeout(Exception):
    pass


def _vectors(dim: int = 4, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((len(WORDS), dim)).astype(np.float32), list(WORDS)


def seed_files(directory: Path) -> dict[str, list[tuple[str, bytes]]]:
    """Small valid files per reader kind: (file name, bytes); a '.gz' name is compressed when written."""
    arr, keys = _vectors()
    text = f"{len(keys)} {arr.shape[1]}\n" + "".join(f"{k} {' '.join(f'{x:.6g}' for x in row)}\n"
                                                     for k, row in zip(keys, arr))
    binary = f"{len(keys)} {arr.shape[1]}\n".encode() + b"".join(k.encode() + b" " + row.astype("<f4").tobytes()
                                                                  + b"\n" for k, row in zip(keys, arr))
    glove = text.split("\n", 1)[1]
    questions = (": capitals\nparis france rome italy\nrome italy paris france\n: family\nking queen man woman\n"
                 "man woman king queen\n: gram-comparative\nbig bigger small smaller\n")
    pairs = "# word1\tword2\tscore\nking\tqueen\t8.5\nman\twoman\t8.3\nparis\tfrance\t7.1\nbig\tsmall\t2.0\n" \
            "rome\titaly\t7.0\nking\tsmall\t1.0\n"
    out = {"word2vec_text": [("v.txt", text.encode()), ("v.txt.gz", text.encode())],
           "word2vec_binary": [("v.bin", binary), ("v.bin.gz", binary)],
           "glove": [("g.txt", glove.encode()), ("g.txt.gz", glove.encode())],
           "questions": [("q.txt", questions.encode()), ("q.txt.gz", questions.encode())],
           "pairs": [("p.tsv", pairs.encode()), ("p.tsv.gz", pairs.encode())]}
    sizes = [1, 2, 2, 2, 2, 2]
    n = int(np.prod(sizes))
    classes = np.stack(np.unravel_index(np.arange(n), sizes), 1).astype(np.int64)
    imgs = np.zeros((n, 64, 64), np.uint8)
    imgs[np.arange(n), np.arange(n) % 64, np.arange(n) // 64] = 1
    npz = []
    for name, save in (("d.npz", np.savez), ("dc.npz", np.savez_compressed)):
        path = directory / f"seed-{name}"
        save(path, imgs=imgs, latents_classes=classes, latents_sizes=np.array(sizes))
        npz.append((name, path.read_bytes()))
    out["npz"] = npz
    return out


def _compress(name: str, data: bytes) -> bytes:
    if name.endswith(".gz"):
        return gzip.compress(data, mtime=0)
    if name.endswith(".bz2"):
        return bz2.compress(data)
    return data


_TELLING = [b"\x00", b"\xff", b" ", b"\n", b"\t", b"0", b"9", b"-", b".", b"e", b"nan", b"\xe9", b":", b"#"]
_NUMBERS = [b"0", b"-1", b"1", b"99999999999", b"1000000000000", b"4294967297", b"18446744073709551617",
            b"1e30", b"nan"]


def mutate(rng: random.Random, data: bytes) -> bytes:
    """One to three random edits of ``data``."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        n = len(buf)
        op = rng.randrange(9)
        pos = rng.randrange(n + 1) if n else 0
        if op == 0 and n:
            buf[min(pos, n - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[min(pos, n - 1)] = rng.randrange(256)
        elif op == 2:
            buf[pos:pos] = rng.choice(_TELLING) * rng.randint(1, 4)
        elif op == 3:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 4 and n:
            del buf[pos:pos + rng.randint(1, 32)]
        elif op == 5 and n:
            end = min(n, pos + rng.randint(1, 64))
            buf[pos:pos] = buf[pos:end]
        elif op == 6:
            del buf[rng.randrange(n + 1):]
        else:  # a number (header count, dimension, shape, score) swapped for a telling one
            digits = [i for i in range(n) if 48 <= buf[i] <= 57 and (i == 0 or not 48 <= buf[i - 1] <= 57)]
            if digits:
                start = rng.choice(digits)
                end = start
                while end < n and 48 <= buf[end] <= 57:
                    end += 1
                buf[start:end] = rng.choice(_NUMBERS)
    return bytes(buf)


def make_readers():
    """kind -> (read(path, rng) -> result, expected error types)."""
    arr, keys = _vectors()
    index = EmbeddingIndex(arr, keys, backend="torch")

    def w2v(path, rng):
        return load_word2vec_format(path, binary=rng.choice([None, None, True, False]),
                                    limit=rng.choice([None, None, None, 0, 1, 5]),
                                    unicode_errors=rng.choice(["strict", "replace"]))

    return {
        "word2vec_text": w2v,
        "word2vec_binary": w2v,
        "glove": lambda path, rng: load_glove(path, limit=rng.choice([None, None, 0, 3])),
        "questions": lambda path, rng: words.evaluate_word_analogies(index, path).score,
        "pairs": lambda path, rng: words.evaluate_word_pairs(index, path).spearman,
        "npz": lambda path, rng: DSprites.from_npz(path).factors_num_values,
    }


def _check_result(kind: str, result) -> str | None:
    if kind in ("word2vec_text", "word2vec_binary", "glove"):
        vectors, keys = result
        if not (isinstance(vectors, np.ndarray) and vectors.dtype == np.float32 and vectors.ndim == 2
                and vectors.flags.c_contiguous and len(keys) == len(vectors)):
            return f"malformed result {type(vectors)} {getattr(vectors, 'shape', None)} with {len(keys)} keys"
    elif kind in ("questions", "pairs"):
        if not (isinstance(result, float) and (kind == "pairs" or 0.0 <= result <= 1.0)):
            return f"score {result!r}"
    return None


def run_case(kind: str, read, path: Path, rng: random.Random, *, max_mb: float, timeout_s: float):
    """(outcome, detail): outcome 'parsed', 'error' (the expected kind of error) or 'FAIL'."""
    def alarm(signum, frame):
        raise _Timeout()

    old = signal.signal(signal.SIGALRM, alarm)
    tracemalloc.start()
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout_s)
        try:
            result = read(path, rng)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        outcome, detail = "parsed", _check_result(kind, result)
        if detail:
            outcome = "FAIL"
    except _Timeout:
        outcome, detail = "FAIL", f"no answer within {timeout_s} s"
    except MemoryError as exc:
        outcome, detail = "FAIL", f"MemoryError: {exc}"
    except ValueError as exc:  # FormatError is a ValueError
        named = str(path) in str(exc)
        expected = isinstance(exc, FormatError) or kind in ("questions", "pairs")
        outcome = "error" if named and expected else "FAIL"
        detail = f"{type(exc).__name__}: {exc}"
    except Exception as exc:  # noqa: BLE001 - anything else is what the fuzz looks for
        outcome, detail = "FAIL", f"{type(exc).__name__}: {exc}"
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        signal.signal(signal.SIGALRM, old)
    if peak > max_mb * 2**20 and outcome != "FAIL":
        outcome, detail = "FAIL", f"allocated {peak / 2**20:.0f} MiB for a {path.stat().st_size}-byte file"
    return outcome, detail


def fuzz(directory, seed: int = 0, cases: int | None = None, seconds: float | None = None,
         kinds=KINDS, max_mb: float = 64.0, timeout_s: float = 10.0, replay: tuple | None = None):
    """Runs cases round-robin over ``kinds`` until ``cases`` per kind or ``seconds`` in all.
    Returns (Counter of (kind, outcome), list of failures (kind, index, file name, detail, mutated bytes))."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    seeds, readers = seed_files(directory), make_readers()
    for kind in kinds:  # every seed parses; and first calls (imports, compilation) are paid before any timer
        for name, plain in seeds[kind]:
            path = directory / f"valid-{name}"
            path.write_bytes(_compress(name, plain))
            _check_result(kind, readers[kind](path, random.Random(0)))
            path.unlink()
    counts, failures = Counter(), []
    start, i = time.perf_counter(), 0 if replay is None else replay[2]
    while True:
        if replay is None and cases is not None and i >= cases:
            break
        if seconds is not None and time.perf_counter() - start > seconds:
            break
        for kind in kinds:
            rng = random.Random(f"{seed}:{kind}:{i}")
            name, plain = rng.choice(seeds[kind])
            if name.endswith(".gz") and rng.random() < 0.5:
                data = mutate(rng, _compress(name, plain))  # damage the compressed stream
            else:
                data = _compress(name, mutate(rng, plain) if kind != "npz" else plain)
                if kind == "npz":
                    data = mutate(rng, data)
            path = directory / f"{kind}-{i}-{name}"
            path.write_bytes(data)
            with warnings.catch_warnings():  # duplicate words: a warning, as gensim
                warnings.simplefilter("ignore")
                outcome, detail = run_case(kind, readers[kind], path, rng, max_mb=max_mb, timeout_s=timeout_s)
            counts[kind, outcome] += 1
            if outcome == "FAIL":
                failures.append((kind, i, name, detail, data))
            path.unlink()
        i += 1
        if replay:
            break
    return counts, failures


def detection_errors(trials: int, dims=(1, 2, 4, 16), seed: int = 0) -> dict:
    """How the text/binary detection does on binary files it must not mistake for text: ``trials`` random
    3-record files per (values, D), values float32 normal x 10^U(-30, 30) or uniform random bytes, read
    with ``binary=None``. Returns {(values, D): (read right, raised FormatError, read WRONG)}."""
    import tempfile

    rng = np.random.default_rng(seed)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.bin"
        for values in ("normal", "bytes"):
            for dim in dims:
                right = raised = wrong = 0
                for _ in range(trials):
                    if values == "normal":
                        arr = np.stack([rng.standard_normal(dim) * 10.0 ** rng.integers(-30, 30)
                                        for _ in range(3)]).astype("<f4")
                    else:
                        arr = np.frombuffer(rng.bytes(12 * dim), "<f4").reshape(3, dim)
                    path.write_bytes(b"3 %d\n" % dim + b"".join(b"w%d " % i + arr[i].tobytes() + b"\n"
                                                                for i in range(3)))
                    try:
                        got, keys = load_word2vec_format(path)
                    except FormatError:
                        raised += 1
                        continue
                    same = keys == ["w0", "w1", "w2"] and np.array_equal(got.view(np.uint32), arr.view(np.uint32))
                    right, wrong = right + same, wrong + (not same)
                out[values, dim] = (right, raised, wrong)
    return out


def main(argv=None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="total duration (default 60)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--kinds", default=",".join(KINDS), help=f"comma-separated subset of {','.join(KINDS)}")
    p.add_argument("--max-mb", type=float, default=64.0, help="traced allocation that counts as a failure")
    p.add_argument("--case-timeout", type=float, default=10.0, help="seconds after which a case is a hang")
    p.add_argument("--replay", help="SEED:KIND:INDEX of one failing case (printed with each failure)")
    p.add_argument("--keep", help="directory to copy failing inputs into")
    p.add_argument("--detection", type=int, metavar="TRIALS",
                   help="instead: count misjudged random binary files per (values, D) out of TRIALS")
    args = p.parse_args(argv)
    if args.detection:
        total_wrong = 0
        for (values, dim), (right, raised, wrong) in detection_errors(args.detection, seed=args.seed).items():
            print(f"binary files of {values} values, D={dim}: {right} read right, {raised} raised FormatError, "
                  f"{wrong} read WRONG (of {args.detection})")
            total_wrong += wrong
        return 1 if total_wrong else 0
    kinds = args.kinds.split(",")
    replay = None
    if args.replay:
        s, kind, index = args.replay.split(":")
        replay, args.seed, kinds = (int(s), kind, int(index)), int(s), [kind]
    with tempfile.TemporaryDirectory() as tmp:
        counts, failures = fuzz(tmp, args.seed, seconds=None if replay else args.seconds, kinds=kinds,
                                max_mb=args.max_mb, timeout_s=args.case_timeout, replay=replay)
    for kind in kinds:
        row = {o: counts[kind, o] for o in ("parsed", "error", "FAIL")}
        print(f"{kind:<16} " + "  ".join(f"{o} {n:>6}" for o, n in row.items()))
    for kind, index, name, detail, data in failures:
        print(f"FAIL {args.seed}:{kind}:{index} ({name}): {detail}")
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            (Path(args.keep) / f"{args.seed}-{kind}-{index}-{name}").write_bytes(data)
    print(f"{sum(counts.values())} cases, {len(failures)} failures (seed {args.seed})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
