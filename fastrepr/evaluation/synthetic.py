"""Deterministic word vectors for word benchmarks: every word of an analogy set, with the set's relations
planted, among random distractors (used by tests, ``fastrepr demo`` and the benchmarks).

Planting: each section s gets a random offset o_s; walking the questions in file order, for each pair (x, y)
(a -> b and c -> expected) whose y has no vector yet, y = x + o_s + noise * N(0, I). Words whose vectors
were set earlier keep them, so relations are only partly consistent and 3CosAdd gets a realistic mix of
right and wrong answers. ``ties=True`` adds the hard cases for exactness tests: case variants of question
words at later rows with vectors equal to the original up to 1e-7 relative noise, exact duplicates under new
names, near-duplicates (3e-7), and one upper-case variant placed before its original. ``pair_paths`` adds
the words of word-pair files (tab-separated word, word, score) with similarities planted: walking the pairs,
an unplanted second word gets cosine about score / max score with the first.
"""
from __future__ import annotations

import numpy as np


def read_questions(path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Section names and (section, words) for each question line of an analogy file."""
    sections, quads = [], []
    with open(path, encoding="utf8") as f:
        for line in f:
            if line.startswith(": "):
                sections.append(line[2:].strip())
            elif sections and len(line.split()) == 4:
                quads.append((len(sections) - 1, line.split()))
    return sections, quads


def analogy_vectors(size: int, dim: int, seed: int = 0, *, noise: float = 0.8, ties: bool = False,
                    shuffle: bool = True, questions_path=None, pair_paths=()) -> tuple[np.ndarray, list[str]]:
    """(vectors [V, dim] float32, keys): the analogy set's words with planted relations plus distractors
    "w0", "w1", ... up to ``size`` rows (more if the set's words and the tie cases need them). ``shuffle``
    spreads the question words over the rows (so that restrict_vocab cuts some off)."""
    if questions_path is None:
        from .words import bundled

        questions_path = bundled("questions-words.txt")
    rng = np.random.default_rng(seed)
    sections, quads = read_questions(questions_path)
    words = list(dict.fromkeys(w for _, q in quads for w in q))
    vec = {w: rng.standard_normal(dim) for w in words}
    offsets = rng.standard_normal((len(sections), dim))
    planted = set()
    for s, (a, b, c, d) in quads:
        for x, y in ((a, b), (c, d)):
            if y not in planted:
                vec[y] = vec[x] + offsets[s] + noise * rng.standard_normal(dim)
                planted.add(y)
    for path in pair_paths:
        _plant_pairs(path, vec, planted, rng, dim)
    keys, rows = list(vec), list(vec.values())
    if ties:
        for w in words[::7]:
            keys.append(w.lower() if w != w.lower() else w.upper())
            rows.append(vec[w] * (1 + 1e-7 * rng.standard_normal(dim)))
        for w in words[3::11]:
            keys.append(w + "_dup")
            rows.append(vec[w].copy())
        for w in words[5::13]:
            keys.append(w + "_near")
            rows.append(vec[w] * (1 + 3e-7 * rng.standard_normal(dim)))
    extra = max(0, size - len(keys))
    keys += [f"w{i}" for i in range(extra)]
    rows += list(1.5 * rng.standard_normal((extra, dim)))
    order = rng.permutation(len(keys)) if shuffle else np.arange(len(keys))
    if ties:  # an upper-case variant ahead of its original: it becomes the word's row when case folding
        early = words[200].upper() + "X" if words[200].upper() in keys else words[200].upper()
        keys.append(early)
        rows.append(rng.standard_normal(dim))
        order = np.r_[len(keys) - 1, order]
    return np.asarray(rows, dtype=np.float32)[order], [keys[i] for i in order]


def _plant_pairs(path, vec: dict, planted: set, rng, dim: int) -> None:
    pairs = []
    with open(path, encoding="utf8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if not line.startswith("#") and len(parts) == 3:
                pairs.append((parts[0], parts[1], float(parts[2])))
    top = max(s for _, _, s in pairs)
    for a, b, score in pairs:
        for w in (a, b):
            if w not in vec:
                vec[w] = rng.standard_normal(dim)
        if b not in planted:
            t = score / top
            norm = np.linalg.norm(vec[a])
            other = rng.standard_normal(dim)
            other -= other @ vec[a] / norm**2 * vec[a]
            vec[b] = t * vec[a] + np.sqrt(max(0.0, 1 - t * t)) * other / np.linalg.norm(other) * norm
            planted.add(b)
