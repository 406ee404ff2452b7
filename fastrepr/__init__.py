"""fastrepr: fused GPU (Triton) and CPU (C++) kernels for learning and evaluating representations.

Public API re-exports only; see fastrepr.functional for the ops and `fastrepr info` for what is available.
"""
from ._io import FormatError
from ._version import __version__
from .functional import histogram_mutual_info, info_nce, nt_xent, pairwise_abs_diff_mean, sup_con
from .functional import cbow_ns_loss, hierarchical_softmax_loss, sgns_loss
from .losses import InfoNCELoss, NTXentLoss, SupConLoss
from .losses import HierarchicalSoftmaxLoss, NegativeSamplingLoss
from .search import EmbeddingIndex
from .text.word2vec import Word2Vec

__all__ = ["__version__", "pairwise_abs_diff_mean", "histogram_mutual_info", "nt_xent", "info_nce", "sup_con",
           "NTXentLoss", "InfoNCELoss", "SupConLoss", "EmbeddingIndex",
           "sgns_loss", "cbow_ns_loss", "hierarchical_softmax_loss", "NegativeSamplingLoss",
           "HierarchicalSoftmaxLoss", "Word2Vec", "FormatError"]

# losses added after the first release (issue 13: DCL, SigLIP, GradCache; issue 15: the beta-VAE family)
from .functional import dcl_loss, siglip_loss  # noqa: E402
from .functional_vae import beta_vae_loss, gaussian_kl, total_correlation  # noqa: E402
from .gradcache import GradCache, cached_backward  # noqa: E402
from .losses import BetaVAELoss, DCLLoss, DCLWLoss, SigLipLoss  # noqa: E402

__all__ += ["dcl_loss", "DCLLoss", "DCLWLoss", "GradCache", "cached_backward", "beta_vae_loss", "gaussian_kl",
            "total_correlation", "BetaVAELoss", "siglip_loss", "SigLipLoss"]
