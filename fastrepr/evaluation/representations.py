"""Built-in representations for the ``fastrepr disentangle`` command, the demo and the benchmarks.

Factor-based ones are meant for ``fastrepr.data.FactorObservations`` (observations = latent factors):
  * ``factors``: the factors themselves, one code per factor (the ideal disentangled code);
  * ``rotated_factors``: the standardized factors times a random orthogonal matrix (as informative as the
    factors, but every code mixes every factor: Locatello et al. 2019, Theorem 1, in action);
  * ``noise``: i.i.d. standard normal codes that ignore the observations.
``moments`` encodes dSprites images: 10 image moments (mass, centroid, second and third central moments), a
cheap image-based 10-dim representation (one [n, 4096] x [4096, 10] product) used by the benchmark.
All take numpy or torch batches and return codes of the same kind.
"""
from __future__ import annotations

import numpy as np
import torch


def _as_tensor(x):
    return (torch.from_numpy(np.asarray(x)), True) if not isinstance(x, torch.Tensor) else (x, False)


def factors(observations):
    """The observations (factor values) as float codes."""
    x, was_numpy = _as_tensor(observations)
    x = x.reshape(x.shape[0], -1).to(torch.float32)
    return x.numpy() if was_numpy else x


class rotated_factors:
    """Standardized factors (mean (K - 1) / 2, std sqrt((K^2 - 1) / 12) for K uniform levels) times a random
    orthogonal matrix drawn from ``seed``."""

    def __init__(self, factors_num_values, seed: int = 0):
        k = torch.tensor(list(factors_num_values), dtype=torch.float64)
        self.mean = (k - 1) / 2
        self.std = torch.sqrt(torch.clamp((k * k - 1) / 12, min=1e-12))
        g = torch.Generator().manual_seed(seed)
        q, r = torch.linalg.qr(torch.randn(len(k), len(k), generator=g, dtype=torch.float64))
        self.rotation = q * torch.sign(torch.diagonal(r))  # Haar-distributed

    def __call__(self, observations):
        x, was_numpy = _as_tensor(observations)
        z = ((x.double() - self.mean.to(x.device)) / self.std.to(x.device)) @ self.rotation.to(x.device)
        z = z.float()
        return z.numpy() if was_numpy else z


class noise:
    """Codes drawn i.i.d. from N(0, 1), ignoring the observations (a generator seeded once)."""

    def __init__(self, dim: int = 10, seed: int = 0):
        self.dim = dim
        self.generator = torch.Generator().manual_seed(seed)

    def __call__(self, observations):
        x, was_numpy = _as_tensor(observations)
        z = torch.randn(x.shape[0], self.dim, generator=self.generator)
        return z.numpy() if was_numpy else z.to(x.device)


_BASIS: dict = {}


def _moment_basis(device) -> torch.Tensor:
    """[4096, 10] monomials 1, x, y, x^2, xy, y^2, x^3, x^2 y, x y^2, y^3 at the 64x64 pixel centres, with
    coordinates scaled to [-1, 1] (x: column, y: row)."""
    if device not in _BASIS:
        c = (torch.arange(64, dtype=torch.float64) + 0.5) / 32 - 1
        y, x = torch.meshgrid(c, c, indexing="ij")
        x, y = x.reshape(-1), y.reshape(-1)
        mono = [torch.ones_like(x), x, y, x * x, x * y, y * y, x ** 3, x * x * y, x * y * y, y ** 3]
        _BASIS[device] = torch.stack(mono, 1).float().to(device)
    return _BASIS[device]


def moments(observations):
    """[n, 10] image moments of 64x64 images (numpy [n, 64, 64, 1] or torch [n, 1, 64, 64]): mass fraction,
    centroid (x, y), central second moments (xx, xy, yy) and central third moments (xxx, xxy, xyy, yyy)."""
    x, was_numpy = _as_tensor(observations)
    n = x.shape[0]
    raw = (x.reshape(n, 4096).float() @ _moment_basis(x.device)).double()
    m = raw[:, :1].clamp(min=1e-12)
    e = raw / m  # E[monomial] under the image's mass
    cx, cy = e[:, 1], e[:, 2]
    out = torch.stack([
        raw[:, 0] / 4096, cx, cy,
        e[:, 3] - cx * cx, e[:, 4] - cx * cy, e[:, 5] - cy * cy,
        e[:, 6] - 3 * cx * e[:, 3] + 2 * cx ** 3,
        e[:, 7] - 2 * cx * e[:, 4] - cy * e[:, 3] + 2 * cx * cx * cy,
        e[:, 8] - 2 * cy * e[:, 4] - cx * e[:, 5] + 2 * cx * cy * cy,
        e[:, 9] - 3 * cy * e[:, 5] + 2 * cy ** 3,
    ], 1).float()
    return out.numpy() if was_numpy else out


def load(spec: str, dataset=None):
    """A representation from a name (factors, rotated, noise, moments) or a ``module:function`` path."""
    if spec == "factors":
        return factors
    if spec == "rotated":
        return rotated_factors(dataset.factors_num_values)
    if spec == "noise":
        return noise(10)
    if spec == "moments":
        return moments
    if ":" not in spec:
        raise ValueError(f"unknown representation {spec!r}: use factors, rotated, noise, moments or module:function")
    import importlib

    module, _, attr = spec.partition(":")
    fn = importlib.import_module(module)
    for part in attr.split("."):
        fn = getattr(fn, part)
    if not callable(fn):
        raise ValueError(f"{spec} is not callable")
    return fn
