"""fastrepr: fused GPU (Triton) and CPU (C++) kernels for learning and evaluating representations.

Public API re-exports only; see fastrepr.functional for the ops and `fastrepr info` for what is available.
"""
from ._version import __version__
from .functional import histogram_mutual_info, pairwise_abs_diff_mean

__all__ = ["__version__", "pairwise_abs_diff_mean", "histogram_mutual_info"]
