"""Drawing points for the disentanglement metrics: disentanglement_lib's random stream, encoded in big batches.

disentanglement_lib samples point by point (BetaVAE: a random factor index, two factor batches of 64, their
observations, two representation calls, for each of 15 000 points). The random numbers it draws depend only
on the order of the calls, not on when observations are encoded. So ``Sampler`` makes exactly the calls
disentanglement_lib makes on the RandomState, in the same order, records what to encode, and encodes it
afterwards in large chunks:
  * data sets with ``observation_indices`` / ``observations_from_indices`` (``fastrepr.data.DSprites``) only
    record image indices during the loop and render them chunk by chunk afterwards;
  * any other GroundTruthData-like object gets its ``sample_observations_from_factors`` calls in the loop
    (it may draw random numbers there), and observations are buffered and encoded once a chunk is full.
Either way the factors, observations and codes are those of disentanglement_lib for the same seed.
Data sets whose observation step draws nothing (``observation_draws`` False: dSprites, whose only
non-latent factor, the color, has one value) are not even asked for indices inside the loop; all factor
batches are turned into indices at once afterwards.

Data sets that also declare ``sample_factors_by_randint`` (``sample_factors(num, rs)`` is one
``rs.randint(k, size=num)`` per factor, in order; dSprites) get their whole sequence of randint calls replayed
at once from the raw Mersenne Twister words (``replay_randint``, native), the RandomState left exactly where
the call-by-call loop would leave it.

For a deterministic representation (a function of the observation, like the mean of an encoder), a
``CodeCache`` encodes each distinct image once, across the points of a metric and across the metrics of one
``evaluate`` call (dSprites has 737 280 images; the suite draws about 3 million).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import _native
from ..data.ground_truth import sample as _sample_batch

CHUNK = 512  # observations per representation call (8 MB of float32 64x64 images; malloc reuses it)


class Representation:
    """Calls a batched representation function (numpy or torch in, numpy or torch out) and checks it.

    Codes come back as a torch tensor [n, D] on the device the function returned them on (numpy: CPU),
    in its dtype (16-bit floats are widened to float32, integers to float64, both exact). A function that
    returns another number of rows than it was given observations, or a changing D, raises ValueError.
    """

    def __init__(self, fn):
        if not callable(fn):
            raise TypeError(f"representation must be callable (observations -> codes), got {type(fn).__name__}")
        self.fn = fn
        self.dim: int | None = None

    def __call__(self, observations) -> torch.Tensor:
        n = len(observations)
        out = self.fn(observations)
        codes = out.detach() if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))
        if codes.dim() == 1:
            codes = codes[:, None]
        if codes.dim() != 2 or codes.shape[0] != n:
            raise ValueError(f"the representation returned codes of shape {tuple(codes.shape)} for a batch of {n} "
                             f"observations; it must return one row of codes per observation, [{n}, D]")
        if codes.dtype in (torch.float16, torch.bfloat16):
            codes = codes.float()
        elif not codes.dtype.is_floating_point:
            codes = codes.double()
        if self.dim is None:
            self.dim = codes.shape[1]
        elif codes.shape[1] != self.dim:
            raise ValueError(f"the representation returned {codes.shape[1]} dimensions after {self.dim} earlier")
        return codes


def _concat(parts):
    if isinstance(parts[0], torch.Tensor):
        return torch.cat(parts)
    return np.concatenate([np.asarray(p) for p in parts])


class CodeCache:
    """Codes of images already encoded, by image index (for deterministic representations only)."""

    def __init__(self):
        self.row = np.full(0, -1, dtype=np.int64)  # image index -> row of self.codes, or -1
        self.parts: list[torch.Tensor] = []
        self.size = 0
        self.codes: torch.Tensor | None = None

    def lookup(self, indices: np.ndarray, encode) -> torch.Tensor:
        """Codes [len(indices), D] for image indices; encode(missing indices) -> codes fills the gaps."""
        if indices.size == 0:
            return encode(indices)
        top = int(indices.max()) + 1
        if top > self.row.size:
            self.row = np.concatenate([self.row, np.full(top - self.row.size, -1, np.int64)])
        absent = np.zeros(top, dtype=bool)  # a bitmap dedupes in O(n + top), cheaper than np.unique's sort
        absent[indices[self.row[indices] < 0]] = True
        missing = np.flatnonzero(absent)
        if missing.size:
            new = encode(missing)
            self.row[missing] = np.arange(self.size, self.size + missing.size)
            self.size += missing.size
            self.codes = new if self.codes is None else torch.cat([self.codes, new.to(self.codes.device)])
        return self.codes[torch.from_numpy(self.row[indices]).to(self.codes.device)]


class Sampler:
    """Records factor batches in disentanglement_lib's order and returns their codes, in that order."""

    def __init__(self, dataset, representation: Representation, random_state: np.random.RandomState,
                 chunk: int = CHUNK, cache: CodeCache | None = None):
        for name in ("num_factors", "factors_num_values", "sample_factors", "sample_observations_from_factors"):
            if not hasattr(dataset, name):
                raise TypeError(f"dataset must be GroundTruthData-like; it has no {name}")
        self.dataset = dataset
        self.rep = representation
        self.rs = random_state
        self.chunk = chunk
        self.fast = hasattr(dataset, "observation_indices") and hasattr(dataset, "observations_from_indices")
        self.deferred = self.fast and getattr(dataset, "observation_draws", True) is False
        self.replayable = (self.deferred and getattr(dataset, "sample_factors_by_randint", False)
                           and _native.available()[0])
        self.cache = cache if self.fast else None
        self._indices: list[np.ndarray] = []
        self._factors: list[np.ndarray] = []
        self._pending: list = []
        self._pending_n = 0
        self._codes: list[torch.Tensor] = []

    def factors(self, num: int) -> np.ndarray:
        """dataset.sample_factors(num, random_state), nothing recorded."""
        return np.asarray(self.dataset.sample_factors(num, self.rs))

    def observe(self, factors: np.ndarray) -> None:
        """The observation step for a factor batch (sample_observations_from_factors), recorded for encoding."""
        if self.deferred:
            self._factors.append(factors)
        elif self.fast:
            self._indices.append(np.asarray(self.dataset.observation_indices(factors, self.rs)))
        else:
            self._buffer(self.dataset.sample_observations_from_factors(factors, self.rs), len(factors))

    def sample(self, num: int) -> np.ndarray:
        """dataset.sample(num, random_state): factors, then their observations (recorded); returns factors."""
        if self.fast:
            factors = self.factors(num)
            self.observe(factors)
            return factors
        factors, observations = _sample_batch(self.dataset, num, self.rs)
        self._buffer(observations, num)
        return np.asarray(factors)

    def _buffer(self, observations, n: int) -> None:
        self._pending.append(observations)
        self._pending_n += n
        if self._pending_n >= self.chunk:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._codes.append(self.rep(_concat(self._pending)))
            self._pending, self._pending_n = [], 0

    def _encode(self, indices: np.ndarray) -> torch.Tensor:
        parts = [self.rep(self.dataset.observations_from_indices(indices[lo:lo + self.chunk]))
                 for lo in range(0, len(indices), self.chunk)]
        return torch.cat(parts) if parts else torch.zeros((0, self.rep.dim or 0))

    def codes(self) -> torch.Tensor:
        """[M, D] codes of every observation recorded so far, in order; clears the record."""
        if self._factors:  # the observation step draws nothing: one call for every batch
            self._indices = [np.asarray(self.dataset.observation_indices(np.concatenate(self._factors),
                                                                         np.random.RandomState(0)))]
        if self.fast and self._indices:
            indices = np.concatenate(self._indices)
            self._codes.append(self.cache.lookup(indices, self._encode) if self.cache is not None
                               else self._encode(indices))
        self._flush()
        codes = torch.cat(self._codes) if self._codes else torch.zeros((0, self.rep.dim or 0))
        self._indices, self._factors, self._codes = [], [], []
        return codes


def replay_randint(rs: np.random.RandomState, highs: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """np.concatenate([rs.randint(h, size=c) for h, c in zip(highs, counts)]) (c = 1 also stands for the scalar
    rs.randint(h)), computed natively from rs's raw 32-bit words; rs ends in the same state as after the calls."""
    highs = np.ascontiguousarray(highs, dtype=np.int64)
    counts = np.ascontiguousarray(counts, dtype=np.int64)
    out = np.empty(int(counts.sum()), dtype=np.int64)
    state = rs.get_state()
    words = 2 * out.size + 1024  # each draw is kept with probability > 1/2
    while True:
        raw = rs.randint(0, 2**32, size=words, dtype=np.uint32)
        used = _native.get().legacy_randint(raw, highs, counts, out)
        rs.set_state(state)
        if used >= 0:
            break
        words *= 2
    if used:
        rs.randint(0, 2**32, size=used, dtype=np.uint32)  # advance exactly as the calls would have
    return out


def _factor_blocks(sampler: Sampler, sizes: list[int], prefix: int, repeats: int, batch: int, groups: int = 1):
    """Replays `repeats` times: `prefix` scalar randint(num_factors) draws, then `groups` factor batches (one
    randint(k, size=batch) per factor each). Returns (scalars [repeats, prefix], factors [repeats, groups,
    batch, F])."""
    f = len(sizes)
    highs = np.tile(np.r_[[f] * prefix, sizes * groups], repeats)
    counts = np.tile(np.r_[[1] * prefix, [batch] * (f * groups)], repeats)
    out = replay_randint(sampler.rs, highs, counts).reshape(repeats, prefix + groups * f * batch)
    factors = out[:, prefix:].reshape(repeats, groups, f, batch).transpose(0, 1, 3, 2).copy()
    return out[:, :prefix], factors


def fixed_factor_draws(sampler: Sampler, num_points: int, batch_size: int, groups: int) -> np.ndarray:
    """The draws of BetaVAE (groups=2) and FactorVAE (groups=1), recorded for encoding. Per point: a factor
    index, then `groups` factor batches; BetaVAE's second batch takes the first one's values of that factor,
    FactorVAE's batch has it fixed to its first row's value. Returns the indices [num_points]."""
    sizes = list(sampler.dataset.factors_num_values)
    if sampler.replayable:
        index, batches = _factor_blocks(sampler, sizes, 1, num_points, batch_size, groups)
        index, rows = index[:, 0], np.arange(num_points)
        source = batches[rows, 0, :, index] if groups == 2 else batches[rows, 0, :1, index]
        batches[rows, groups - 1, :, index] = source
        sampler.observe(batches.reshape(-1, len(sizes)))
        return index
    index = np.zeros(num_points, dtype=np.int64)
    for p in range(num_points):
        index[p] = sampler.rs.randint(sampler.dataset.num_factors)
        batches = [sampler.factors(batch_size) for _ in range(groups)]
        batches[-1][:, index[p]] = batches[0][:, index[p]] if groups == 2 else batches[0][0, index[p]]
        for factors in batches:
            sampler.observe(factors)
    return index


def factor_codes(sampler: Sampler, num_points: int, batch_size: int) -> tuple[torch.Tensor, np.ndarray]:
    """disentanglement_lib's generate_batch_factor_code, transposed: codes [num_points, D] and factors
    [num_points, F], drawn in batches of batch_size."""
    if sampler.replayable and num_points > 0:
        sizes = list(sampler.dataset.factors_num_values)
        full, rest = divmod(num_points, batch_size)
        parts = []
        if full:
            parts.append(_factor_blocks(sampler, sizes, 0, full, batch_size)[1].reshape(-1, len(sizes)))
        if rest:
            parts.append(_factor_blocks(sampler, sizes, 0, 1, rest)[1].reshape(-1, len(sizes)))
        factors = np.concatenate(parts)
        sampler.observe(factors)
        return sampler.codes(), factors
    factors, i = [], 0
    while i < num_points:
        n = min(num_points - i, batch_size)
        factors.append(sampler.sample(n))
        i += n
    return sampler.codes(), np.concatenate(factors)
