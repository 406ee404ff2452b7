"""Helpers for disentanglement_lib-style ground-truth data sets (GroundTruthData-like objects).

A GroundTruthData-like object has ``num_factors``, ``factors_num_values``, ``sample_factors(num, random_state)``
and ``sample_observations_from_factors(factors, random_state)`` (``sample`` is optional). Data sets that can
also split the second step into ``observation_indices(factors, random_state)`` (all the randomness) and
``observations_from_indices(indices)`` (deterministic) let the evaluation render observations in large
batches while drawing random numbers in disentanglement_lib's order.
"""
from __future__ import annotations

import numpy as np
import torch


def sample(dataset, num: int, random_state: np.random.RandomState):
    """(factors, observations), as GroundTruthData.sample: factors first, then observations, one stream."""
    if hasattr(dataset, "sample"):
        return dataset.sample(num, random_state)
    factors = dataset.sample_factors(num, random_state)
    return factors, dataset.sample_observations_from_factors(factors, random_state)


class FactorObservations:
    """A ground-truth data set whose observations are its latent factors themselves (float32 [n, F]).

    It draws random numbers exactly as ``base`` does (its factors, then the non-latent factors of each
    observation), so metrics see the same factor samples as on ``base``; only the rendering is skipped.
    This is disentanglement_lib's ``IdentityObservationsData`` idea over a real factor grid: a representation
    of these observations is a function of the factors (identity, a rotation, noise).
    ``base`` needs ``observation_indices`` and ``index_to_factors`` (as ``fastrepr.data.DSprites``).
    """

    def __init__(self, base, *, as_tensor: bool = False, device=None):
        for name in ("observation_indices", "index_to_factors", "latent_factor_indices"):
            if not hasattr(base, name):
                raise TypeError(f"FactorObservations needs a base data set with {name} (like fastrepr.data.DSprites)")
        self.base = base
        self.as_tensor = as_tensor
        self.device = torch.device(device or "cpu")

    @property
    def num_factors(self) -> int:
        return self.base.num_factors

    @property
    def factors_num_values(self):
        return self.base.factors_num_values

    @property
    def observation_shape(self):
        return [self.num_factors]

    @property
    def observation_draws(self):
        return getattr(self.base, "observation_draws", True)

    @property
    def sample_factors_by_randint(self):
        return getattr(self.base, "sample_factors_by_randint", False)

    def sample_factors(self, num, random_state):
        return self.base.sample_factors(num, random_state)

    def observation_indices(self, factors, random_state):
        return self.base.observation_indices(factors, random_state)

    def observations_from_indices(self, indices):
        obs = self.base.index_to_factors(indices)[:, self.base.latent_factor_indices].astype(np.float32)
        return torch.from_numpy(obs).to(self.device) if self.as_tensor else obs

    def sample_observations_from_factors(self, factors, random_state):
        return self.observations_from_indices(self.observation_indices(factors, random_state))

    def sample(self, num, random_state):
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num, random_state):
        return self.sample(num, random_state)[1]
