"""fastrepr: fused GPU (Triton) and CPU (C++) kernels for learning and evaluating representations.

Public API re-exports only; see fastrepr.functional for the ops and `fastrepr info` for what is available.
"""
from ._version import __version__
from .functional import pairwise_abs_diff_mean
from .functional import cbow_ns_loss, hierarchical_softmax_loss, sgns_loss
from .losses import HierarchicalSoftmaxLoss, NegativeSamplingLoss
from .text.word2vec import Word2Vec

__all__ = ["__version__", "pairwise_abs_diff_mean",
           "sgns_loss", "cbow_ns_loss", "hierarchical_softmax_loss", "NegativeSamplingLoss",
           "HierarchicalSoftmaxLoss", "Word2Vec"]
