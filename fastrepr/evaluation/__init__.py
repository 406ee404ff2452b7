"""Evaluation of representations: word benchmarks (``words``), probes (``probes``), disentanglement metrics
(``disentanglement``), native gradient boosting (``boosting``), built-in representations (``representations``)."""

# issue 14: geometry of representations and interpolation
from .geometry import (CKAAccumulator, active_units, alignment, cka, effective_rank, hoyer_sparsity,  # noqa: E402
                       rankme, uniformity)
from .interpolation import interpolate, interpolation_grid, latent_traversal_grid  # noqa: E402
