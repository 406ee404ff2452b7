"""fastrepr: fused GPU (Triton) and CPU (C++) kernels for learning and evaluating representations.

Public API re-exports only; see fastrepr.functional for the ops and `fastrepr info` for what is available.
"""
from ._version import __version__
from .functional import histogram_mutual_info, info_nce, nt_xent, pairwise_abs_diff_mean, sup_con
from .losses import InfoNCELoss, NTXentLoss, SupConLoss
from .search import EmbeddingIndex

__all__ = ["__version__", "pairwise_abs_diff_mean", "histogram_mutual_info", "nt_xent", "info_nce", "sup_con",
           "NTXentLoss", "InfoNCELoss", "SupConLoss", "EmbeddingIndex"]
