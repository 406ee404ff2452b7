"""Thin nn.Modules over fastrepr.functional: they hold settings (and learnable temperatures, or their own
weight tables), check them once, and call the functional op. A temperature is checked here in float64 (as a
float: it is stored as one); whether it suits the embeddings' compute dtype (1e-40 does not in float32: its
reciprocal overflows) is checked at each forward, by fastrepr.functional."""
from __future__ import annotations

import math

import torch
from torch import nn

from . import _checks
from . import functional as F


class NTXentLoss(nn.Module):
    """Drop-in replacement for lightly's NTXentLoss (same constructor and forward(out0, out1)).

    temperature: float > 0 (lightly's default 0.5). gather_distributed: negatives from every rank (see
    fastrepr.nt_xent for the gradient scaling). memory_bank_size: lightly's optional memory bank is not
    supported; only 0 is accepted. Memory O(N·D) instead of lightly's O(N²).
    """

    def __init__(self, temperature: float = 0.5, memory_bank_size: int = 0, gather_distributed: bool = False):
        super().__init__()
        if memory_bank_size not in (0, None):
            raise ValueError("fastrepr.NTXentLoss has no memory bank (memory_bank_size must be 0); use "
                             "in-batch negatives, or gather_distributed=True for more of them")
        self.temperature = _checks.temperature(temperature, read=True)
        self.gather_distributed = bool(gather_distributed)

    def forward(self, out0: torch.Tensor, out1: torch.Tensor) -> torch.Tensor:
        return F.nt_xent(out0, out1, self.temperature, gather_distributed=self.gather_distributed)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}, gather_distributed={self.gather_distributed}"


class InfoNCELoss(nn.Module):
    """CLIP-style symmetric InfoNCE. learnable=True makes the temperature a parameter (stored as its log,
    so it stays positive), as CLIP's learnable logit scale."""

    def __init__(self, temperature: float = 0.07, symmetric: bool = True, learnable: bool = False,
                 gather_distributed: bool = False):
        super().__init__()
        temperature = _checks.temperature(temperature, read=True)
        self.symmetric, self.gather_distributed = bool(symmetric), bool(gather_distributed)
        if learnable:
            self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        else:
            self.register_buffer("log_temperature", torch.tensor(math.log(temperature)))

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    def forward(self, q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return F.info_nce(q, k, self.temperature, self.symmetric, gather_distributed=self.gather_distributed)


class SupConLoss(nn.Module):
    """Supervised contrastive loss (Khosla et al. 2020); forward(embeddings, labels), as
    pytorch-metric-learning's SupConLoss(temperature) with its default reducer."""

    def __init__(self, temperature: float = 0.1, gather_distributed: bool = False):
        super().__init__()
        self.temperature = _checks.temperature(temperature, read=True)
        self.gather_distributed = bool(gather_distributed)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.sup_con(embeddings, labels, self.temperature, gather_distributed=self.gather_distributed)


class NegativeSamplingLoss(nn.Module):
    """word2vec negative sampling with its own tables: ``w_in`` [V, D] (the word vectors) and ``w_out`` [V, D].

    forward(inputs, targets, negatives=None, mask=None):
      * skip-gram: inputs [B] centers, targets [B] contexts;
      * CBOW: inputs [B, C] context words (mask [B, C] bool for padding), targets [B] centers.
    When negatives is None, K = ``negative`` of them are drawn per example from unigram^ns_exponent of
    ``counts`` (uniform when counts is None), on the inputs' device. Returns the mean loss (``reduction``).
    Initialization as word2vec: w_in uniform in [-1/D, 1/D) (gensim 4), w_out zero.
    sparse=True gives sparse gradients (use torch.optim.SGD or SparseAdam).
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, *, negative: int = 5, counts=None,
                 ns_exponent: float = 0.75, sparse: bool = False, reduction: str = "mean",
                 dtype: torch.dtype = torch.float32, device=None):
        super().__init__()
        for name, v, lo in (("num_embeddings", num_embeddings, 1), ("embedding_dim", embedding_dim, 1),
                            ("negative", negative, 0)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        from .text.sampling import noise_table

        self.negative, self.sparse, self.reduction = negative, sparse, reduction
        self.noise = noise_table(counts if counts is not None else [1] * num_embeddings, ns_exponent)
        if len(self.noise) != num_embeddings:
            raise ValueError(f"counts must have num_embeddings={num_embeddings} entries, got {len(self.noise)}")
        self.w_in = nn.Parameter((torch.rand(num_embeddings, embedding_dim, dtype=dtype, device=device) * 2 - 1) / embedding_dim)
        self.w_out = nn.Parameter(torch.zeros(num_embeddings, embedding_dim, dtype=dtype, device=device))

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        if negatives is None:
            negatives = self.noise.sample((targets.shape[0], self.negative), device=targets.device)
        if isinstance(inputs, torch.Tensor) and inputs.dim() == 2:
            return F.cbow_ns_loss(self.w_in, self.w_out, inputs, targets, negatives, mask,
                                  reduction=self.reduction, sparse=self.sparse)
        if mask is not None:
            raise ValueError("mask is for CBOW inputs [B, C]; skip-gram inputs are [B]")
        return F.sgns_loss(self.w_in, self.w_out, inputs, targets, negatives, reduction=self.reduction,
                           sparse=self.sparse)


class HierarchicalSoftmaxLoss(nn.Module):
    """word2vec hierarchical softmax over the Huffman tree of ``counts`` [V]; owns ``w_nodes`` [V - 1, D]
    (zero-initialized, as word2vec). forward(h [B, D], targets [B]) -> mean of -log P(target | h)."""

    def __init__(self, counts, embedding_dim: int, *, sparse: bool = False, reduction: str = "mean",
                 dtype: torch.dtype = torch.float32, device=None):
        super().__init__()
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int) or embedding_dim < 1:
            raise ValueError(f"embedding_dim must be an integer >= 1, got {embedding_dim!r}")
        from .text.huffman import build_huffman

        self.tree = build_huffman(counts)
        self.sparse, self.reduction = sparse, reduction
        self.w_nodes = nn.Parameter(torch.zeros(max(self.tree.num_nodes, 1), embedding_dim, dtype=dtype, device=device))

    def forward(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.hierarchical_softmax_loss(h, self.w_nodes, targets, self.tree, reduction=self.reduction,
                                           sparse=self.sparse)


class SigLipLoss(nn.Module):
    """Drop-in for open_clip's ``SigLipLoss``: forward(image_features, text_features, logit_scale, logit_bias)
    with logit_scale already exponentiated (open_clip's convention; see fastrepr.siglip_loss). gather_distributed:
    False, True (all-gather) or "ring" (ring exchange of text blocks, O(N·D) per rank); open_clip's
    ``world_size``/``rank`` come from torch.distributed here. Memory O(N·D), never the N×N logits."""

    def __init__(self, gather_distributed=False, normalize: bool = True):
        super().__init__()
        if gather_distributed not in (False, True, "ring"):
            raise ValueError(f"gather_distributed must be False, True or 'ring', got {gather_distributed!r}")
        self.gather_distributed, self.normalize = gather_distributed, bool(normalize)

    def forward(self, image_features: torch.Tensor, text_features: torch.Tensor, logit_scale,
                logit_bias=0.0) -> torch.Tensor:
        return F.siglip_loss(image_features, text_features, logit_scale, logit_bias, normalize=self.normalize,
                             gather_distributed=self.gather_distributed)

    def extra_repr(self) -> str:
        return f"gather_distributed={self.gather_distributed!r}, normalize={self.normalize}"
