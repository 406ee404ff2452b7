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
from .functional_vae import VAE_OBJECTIVES, beta_vae_loss


class NTXentLoss(nn.Module):
    """Drop-in replacement for lightly's NTXentLoss (same constructor and forward(out0, out1)).

    temperature: float > 0 (lightly's default 0.5). gather_distributed: negatives from every rank, False, True
    (all-gather) or "ring" (ring exchange, per-rank memory independent of W; see fastrepr.nt_xent for both and
    for the gradient scaling; "ring" not with a memory bank). Memory O(N·D) instead of lightly's O(N²).

    memory_bank_size: 0 (in-batch negatives), (K, D) as lightly 1.6 (the bank [K, D] float32 buffer is drawn at
    construction: randn(K, D) rows normalized, from torch's global generator, so the same seed gives lightly's
    bank), or an int K as lightly < 1.5 (drawn at the first forward: randn(D, K) normalized over D, transposed).
    With a bank, lightly's semantics: the anchors out0 have out1 as positive and the K bank rows (not the other
    rows of the batch) as negatives (fastrepr.info_nce(out0, out1, queue=bank)); after the loss, if
    out0.requires_grad, the normalized out1 (gathered from every rank first when gather_distributed) is enqueued
    FIFO at the bank pointer; a batch that reaches the end fills it and its remaining rows are dropped, the
    pointer returning to 0 (as lightly's MemoryBankModule). The bank is a ring buffer written in place, N·D per
    step and never a K·D copy (lightly clones it every step): the loss's backward does not read it (the op
    fastrepr.ops.queue_lse keeps the softmax-weighted bank mean per row, so the gradient is O(N·D)). Memory
    O(K·D) for the bank plus O(N·D), never lightly's N x (K + 1) logits.
    """

    def __init__(self, temperature: float = 0.5, memory_bank_size=0, gather_distributed=False):
        super().__init__()
        self.temperature = _checks.temperature(temperature, read=True)
        self.gather_distributed = F._gather_arg(gather_distributed)
        size = tuple(memory_bank_size) if isinstance(memory_bank_size, (tuple, list)) else (memory_bank_size,)
        if any(isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in size) or (
                len(size) != 1 if not isinstance(memory_bank_size, (tuple, list)) else len(size) != 2 or 0 in size):
            raise ValueError(f"memory_bank_size must be 0, an int K > 0 or a (K, D) pair of ints > 0, got "
                             f"{memory_bank_size!r}")
        self.bank_size = size[0]
        if self.bank_size and gather_distributed == "ring":
            raise ValueError("memory_bank_size > 0 does not support gather_distributed='ring' (the bank's negatives "
                             "are not sharded by rank; gather_distributed=True gathers the batch before enqueueing)")
        self.register_buffer("bank", torch.randn(size) if len(size) == 2 else torch.empty(0), persistent=False)
        if len(size) == 2:
            self.bank = torch.nn.functional.normalize(self.bank, dim=-1)
        self.bank_ptr = 0

    @torch.no_grad()
    def _enqueue(self, out1: torch.Tensor) -> None:
        from .distributed import all_gather, rank_and_world

        batch = torch.nn.functional.normalize(out1.detach(), dim=1)
        if self.gather_distributed and rank_and_world()[1] > 1:
            batch = all_gather(batch)
        take = min(batch.shape[0], self.bank_size - self.bank_ptr)
        self.bank[self.bank_ptr:self.bank_ptr + take] = batch[:take]  # in place: the ring's rows at the pointer
        self.bank_ptr = 0 if self.bank_ptr + batch.shape[0] >= self.bank_size else self.bank_ptr + take

    def forward(self, out0: torch.Tensor, out1: torch.Tensor) -> torch.Tensor:
        if self.bank_size == 0:
            return F.nt_xent(out0, out1, self.temperature, gather_distributed=self.gather_distributed)
        if self.bank.numel() == 0:  # lightly < 1.5: an int size, drawn at the first call on out1's device
            self.bank = torch.nn.functional.normalize(torch.randn(out1.shape[1], self.bank_size), dim=0).t(
            ).contiguous().to(out1.device)
        loss = F.info_nce(out0, out1, self.temperature, symmetric=False, queue=self.bank.to(out0.dtype))
        if out0.requires_grad:
            self._enqueue(out1)
        return loss

    def extra_repr(self) -> str:
        return (f"temperature={self.temperature}, memory_bank_size={self.bank_size}, "
                f"gather_distributed={self.gather_distributed!r}")


class InfoNCELoss(nn.Module):
    """CLIP-style symmetric InfoNCE. learnable=True makes the temperature a parameter (stored as its log,
    so it stays positive), as CLIP's learnable logit scale. gather_distributed: False, True (all-gather) or
    "ring" (ring exchange of k and q blocks, per-rank memory independent of W; fastrepr.info_nce)."""

    def __init__(self, temperature: float = 0.07, symmetric: bool = True, learnable: bool = False,
                 gather_distributed=False):
        super().__init__()
        temperature = _checks.temperature(temperature, read=True)
        self.symmetric, self.gather_distributed = bool(symmetric), F._gather_arg(gather_distributed)
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
    pytorch-metric-learning's SupConLoss(temperature) with its default reducer. gather_distributed: False, True
    (all-gather) or "ring" (ring exchange of embedding and label blocks; fastrepr.sup_con)."""

    def __init__(self, temperature: float = 0.1, gather_distributed=False):
        super().__init__()
        self.temperature = _checks.temperature(temperature, read=True)
        self.gather_distributed = F._gather_arg(gather_distributed)

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


class DCLLoss(nn.Module):
    """Decoupled contrastive loss (Yeh et al. 2022) as lightly's DCLLoss(temperature=0.1): forward(out0, out1)
    is fastrepr.functional.dcl_loss, the mean over the 2N anchors. gather_distributed is not supported yet."""

    def __init__(self, temperature: float = 0.1):
        super().__init__()
        self.temperature = _checks.temperature(temperature, read=True)

    def forward(self, out0: torch.Tensor, out1: torch.Tensor) -> torch.Tensor:
        return F.dcl_loss(out0, out1, self.temperature)


class DCLWLoss(DCLLoss):
    """Weighted DCL as lightly's DCLWLoss(temperature=0.1, sigma=0.5): the positive term weighted by
    w = 2 - N softmax(ẑ¹_i·ẑ²_i / sigma), detached."""

    def __init__(self, temperature: float = 0.1, sigma: float = 0.5):
        super().__init__(temperature)
        self.sigma = _checks.float_arg(sigma, "sigma", positive=True)

    def forward(self, out0: torch.Tensor, out1: torch.Tensor) -> torch.Tensor:
        return F.dcl_loss(out0, out1, self.temperature, sigma=self.sigma)
class BetaVAELoss(nn.Module):
    """The β-VAE family's loss as a module: holds the objective's settings and calls fastrepr.beta_vae_loss.

    forward(logits, x, mu, logvar, z=None) -> scalar (see fastrepr.beta_vae_loss for shapes, dtypes, memory).
    capacity may be changed between steps (AnnealedVAE's schedule: ``loss.capacity = c_max * min(1, t / T)``).
    """

    def __init__(self, beta: float = 1.0, objective: str = "beta", *, capacity: float = 0.0, gamma: float = 1000.0,
                 lambda_od: float = 10.0, lambda_d: float | None = None, dataset_size: int | None = None,
                 estimator: str = "mws", reduction: str = "mean"):
        super().__init__()
        if objective not in VAE_OBJECTIVES:
            raise ValueError(f"objective must be one of {VAE_OBJECTIVES}, got {objective!r}")
        self.beta, self.objective = _checks.float_arg(beta, "beta"), objective
        self.capacity, self.gamma = _checks.float_arg(capacity, "capacity"), _checks.float_arg(gamma, "gamma")
        self.lambda_od = _checks.float_arg(lambda_od, "lambda_od")
        self.lambda_d = None if lambda_d is None else _checks.float_arg(lambda_d, "lambda_d")
        self.dataset_size, self.estimator, self.reduction = dataset_size, estimator, reduction

    def forward(self, logits, x, mu, logvar, z=None, return_parts: bool = False):
        return beta_vae_loss(logits, x, mu, logvar, self.beta, objective=self.objective, capacity=self.capacity,
                               gamma=self.gamma, lambda_od=self.lambda_od, lambda_d=self.lambda_d,
                               dataset_size=self.dataset_size, estimator=self.estimator, z=z,
                               reduction=self.reduction, return_parts=return_parts)

    def extra_repr(self) -> str:
        return f"objective={self.objective!r}, beta={self.beta}"
class SigLipLoss(nn.Module):
    """Drop-in for open_clip's ``SigLipLoss``: forward(image_features, text_features, logit_scale, logit_bias)
    with logit_scale already exponentiated (open_clip's convention; see fastrepr.siglip_loss). gather_distributed:
    False, True (all-gather) or "ring" (ring exchange of text blocks, O(N·D) per rank); open_clip's
    ``world_size``/``rank`` come from torch.distributed here. Memory O(N·D) plus one logit tile (64 x 64 in
    registers on CUDA, one [N, 2^20 / N] buffer on CPU), never the N×N logits."""

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
