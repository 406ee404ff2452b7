"""Plain-PyTorch oracles of every fastrepr op.

These are the test oracles and the ``torch`` backend: written for clarity, not speed or memory. Each takes
the same arguments as its ``fastrepr.functional`` counterpart, already validated.
"""
from __future__ import annotations

import torch


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    """Accumulation dtype: float64 stays float64, everything else accumulates in float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def pairwise_abs_diff_mean(z1: torch.Tensor, z2: torch.Tensor | None = None, *, i: torch.Tensor | None = None,
                           j: torch.Tensor | None = None) -> torch.Tensor:
    """mean over B of |z1 - z2| ([P, B, D] -> [P, D]), or of |z[i] - z[j]| with z = z1 [N, D], i, j [P, B].

    Materializes the [P, B, D] differences. Accumulates in float32 (float64 for float64 input) and returns
    the input dtype.
    """
    acc = _acc_dtype(z1.dtype)
    if i is not None:
        z = z1.to(acc)
        a, b = z[i], z[j]
    else:
        a, b = z1.to(acc), z2.to(acc)
    return (a - b).abs().mean(1).to(z1.dtype)


# ---- word2vec losses (per example; the functional API reduces) --------------------------------------------

def negative_sampling(w_in: torch.Tensor, w_out: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                      negatives: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example negative-sampling loss [B] (Mikolov et al. 2013):
    h_b = masked mean of w_in[inputs[b, :]] (inputs [B, C]; skip-gram: C = 1),
    loss_b = -log sigmoid(h_b·w_out[targets[b]]) - sum_k log sigmoid(-h_b·w_out[negatives[b, k]]).
    Accumulates in float32 (float64 for float64 input). Materializes [B, C, D] and [B, 1 + K, D] gathers."""
    acc = _acc_dtype(w_in.dtype)
    x = w_in.to(acc)[inputs]                                    # [B, C, D]
    if mask is None:
        h = x.mean(1)
    else:
        m = mask.to(acc).unsqueeze(-1)
        h = (x * m).sum(1) / m.sum(1).clamp_min(1)  # no input used: h = 0, as in the kernels
    rows = torch.cat([targets.unsqueeze(1), negatives], 1)      # [B, 1 + K]
    s = torch.einsum("bjd,bd->bj", w_out.to(acc)[rows], h)
    sign = torch.ones_like(s)
    sign[:, 1:] = -1
    return -torch.nn.functional.logsigmoid(sign * s).sum(1)


def hierarchical_softmax(h: torch.Tensor, w_nodes: torch.Tensor, targets: torch.Tensor, points: torch.Tensor,
                         codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-example hierarchical-softmax loss [B] over a Huffman tree (points/codes [V, L], lengths [V]):
    loss_b = -sum_{j < lengths[t]} log sigmoid((1 - 2 codes[t, j]) h_b·w_nodes[points[t, j]]), t = targets[b].
    Accumulates in float32 (float64 for float64 input). Materializes the [B, L, D] gather of path nodes."""
    acc = _acc_dtype(h.dtype)
    p, c = points[targets], codes[targets].to(acc)              # [B, L]
    valid = torch.arange(points.shape[1], device=h.device) < lengths[targets].unsqueeze(1)
    s = torch.einsum("bjd,bd->bj", w_nodes.to(acc)[p], h.to(acc))
    return -(torch.nn.functional.logsigmoid((1 - 2 * c) * s) * valid).sum(1)
