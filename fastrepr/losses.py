"""Thin nn.Modules over fastrepr.functional: they hold settings (and learnable temperatures), check them
once, and call the functional op."""
from __future__ import annotations

import math

import torch
from torch import nn

from . import functional as F


def _check_temperature(temperature: float) -> float:
    temperature = float(temperature)
    if not (temperature > 0) or math.isinf(temperature):
        raise ValueError(f"temperature must be finite and > 0, got {temperature}")
    return temperature


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
        self.temperature = _check_temperature(temperature)
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
        temperature = _check_temperature(temperature)
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
        self.temperature = _check_temperature(temperature)
        self.gather_distributed = bool(gather_distributed)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.sup_con(embeddings, labels, self.temperature, gather_distributed=self.gather_distributed)
