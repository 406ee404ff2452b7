"""word2vec's two sampling distributions.

Subsampling (Mikolov et al. 2013, "Distributed Representations of Words and Phrases", eq. 5, in the form
word2vec.c and gensim compute): a word of relative frequency f = count / total is kept with probability

    p_keep(w) = min(1, sqrt(t / f) + t / f)          t = ``sample`` (1e-3 by default; 0 keeps every word)

so words rarer than about t are always kept and very frequent ones mostly dropped. gensim's shorthand
``sample >= 1`` (drop words with a count above ``sample``) is supported: then t·total = sample·(3+sqrt 5)/2.

Noise distribution for negative sampling: P(w) ∝ count(w)^α (α = ``ns_exponent`` = 0.75). word2vec.c samples it
from a 1e8-entry table (400 MB); gensim bisects a cumulative table (O(log V) per draw). We use Walker's alias
method (Vose's O(V) construction): two arrays of V entries, O(1) per draw, on CPU and GPU alike:
draw a bucket i uniformly in [0, V), keep it with probability prob[i], else take alias[i].
"""
from __future__ import annotations

import math

import numpy as np
import torch


def check_counts(counts, name: str = "counts") -> np.ndarray:
    """counts as float64 [V] (V >= 1), or ValueError/TypeError naming the argument."""
    c = np.asarray(counts)
    if c.ndim != 1 or c.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of word counts, got shape {c.shape}")
    if not np.issubdtype(c.dtype, np.number) or np.issubdtype(c.dtype, np.complexfloating):
        raise TypeError(f"{name} must hold numbers, got {c.dtype}")
    c = c.astype(np.float64)
    if not np.all(np.isfinite(c)) or (c < 0).any():
        raise ValueError(f"{name} must be finite and >= 0")
    return c


def keep_probability(counts, sample: float = 1e-3) -> np.ndarray:
    """Per-word keep probability min(1, sqrt(t/f) + t/f), float64 [V]; sample=0 keeps every word."""
    c = check_counts(counts)
    if not (isinstance(sample, (int, float)) and math.isfinite(sample) and sample >= 0):
        raise ValueError(f"sample must be a finite number >= 0, got {sample!r}")
    if sample == 0:
        return np.ones_like(c)
    if (c <= 0).any():
        raise ValueError("counts must be > 0 for subsampling")
    threshold = sample * c.sum() if sample < 1 else float(int(sample * (3 + math.sqrt(5)) / 2))
    return np.minimum(1.0, (np.sqrt(c / threshold) + 1.0) * (threshold / c))


def keep_thresholds(counts, sample: float = 1e-3) -> np.ndarray:
    """keep_probability as uint32 thresholds (gensim's ``sample_int``): a word is kept when a uniform
    32-bit random integer is <= its threshold."""
    return np.floor(keep_probability(counts, sample) * (2**32 - 1)).astype(np.uint32)


def unigram_weights(counts, ns_exponent: float = 0.75) -> np.ndarray:
    """Unnormalised noise weights count^α, float64 [V]."""
    c = check_counts(counts)
    if not (isinstance(ns_exponent, (int, float)) and math.isfinite(ns_exponent)):
        raise ValueError(f"ns_exponent must be a finite number, got {ns_exponent!r}")
    with np.errstate(divide="ignore"):
        w = np.where(c > 0, c ** ns_exponent, 0.0)
    if not np.isfinite(w).all() or w.sum() <= 0:
        raise ValueError(f"counts ** ns_exponent (ns_exponent={ns_exponent}) must be finite with a positive sum")
    return w


class AliasTable:
    """Walker/Vose alias table for a discrete distribution over V outcomes.

    prob: float64 [V] (acceptance probability of each bucket), alias: int64 [V]. Built in O(V); memory 16·V
    bytes (plus 8·V for the uint32/int32 copies the native trainer uses). ``sample`` draws on any torch device.
    """

    def __init__(self, weights):
        w = check_counts(weights, "weights")
        total = w.sum()
        if total <= 0:
            raise ValueError("weights must have a positive sum")
        n = w.size
        scaled = w * (n / total)
        prob = np.ones(n, dtype=np.float64)
        alias = np.arange(n, dtype=np.int64)
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        # Vose: pair each under-full bucket with an over-full one, which donates the missing mass.
        while small and large:
            s, g = small.pop(), large[-1]
            prob[s] = scaled[s]
            alias[s] = g
            scaled[g] -= 1.0 - scaled[s]
            if scaled[g] < 1.0:
                large.pop()
                small.append(g)
        # What is left is full up to rounding error.
        self.prob = prob
        self.alias = alias
        self.probabilities = w / total
        self._cache: dict = {}

    def __len__(self) -> int:
        return self.prob.size

    def native_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(prob as uint32 thresholds [V], alias int32 [V]) for the C++ sampler: keep bucket i when a uniform
        32-bit integer is < threshold[i] (prob 1 maps to 2^32 - 1, an error of 2^-32)."""
        thr = np.minimum(np.floor(self.prob * 2.0**32), 2**32 - 1).astype(np.uint32)
        return thr, self.alias.astype(np.int32)

    def tensors(self, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(prob float32 [V], alias int64 [V]) on device, cached."""
        device = torch.device(device)
        if device not in self._cache:
            self._cache[device] = (torch.as_tensor(self.prob, dtype=torch.float32, device=device),
                                   torch.as_tensor(self.alias, dtype=torch.int64, device=device))
        return self._cache[device]

    def sample(self, shape, device="cpu", generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw int64 samples of the given shape on device; O(1) per draw, two random numbers each."""
        prob, alias = self.tensors(device)
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        bucket = torch.randint(0, len(self), shape, device=device, generator=generator)
        accept = torch.rand(shape, device=device, generator=generator) < prob[bucket]
        return torch.where(accept, bucket, alias[bucket])


def noise_table(counts, ns_exponent: float = 0.75) -> AliasTable:
    """The alias table of the unigram^α noise distribution."""
    return AliasTable(unigram_weights(counts, ns_exponent))
