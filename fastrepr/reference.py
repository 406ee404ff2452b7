"""Plain-PyTorch oracles of every fastrepr op.

These are the test oracles and the ``torch`` backend: written for clarity, not speed or memory. Each takes
the same arguments as its ``fastrepr.functional`` counterpart, already validated.
"""
from __future__ import annotations

import torch

from .ops._precision import acc_dtype


def pairwise_abs_diff_mean(z1: torch.Tensor, z2: torch.Tensor | None = None, *, i: torch.Tensor | None = None,
                           j: torch.Tensor | None = None) -> torch.Tensor:
    """mean over B of |z1 - z2| ([P, B, D] -> [P, D]), or of |z[i] - z[j]| with z = z1 [N, D], i, j [P, B].

    Materializes the [P, B, D] differences. Accumulates in float32 (float64 for float64 input) and returns
    the input dtype.
    """
    acc = acc_dtype(z1.dtype)
    if i is not None:
        z = z1.to(acc)
        a, b = z[i], z[j]
    else:
        a, b = z1.to(acc), z2.to(acc)
    return (a - b).abs().mean(1).to(z1.dtype)


# ------------------------------------------------------------------------------------ contrastive losses
# All three materialize the full similarity matrix (O(N^2) memory): the oracles for fastrepr.ops.contrastive.

def _unit(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    """x / ||x|| per row at any scale: divided by the row's largest |entry| first, so the norm cannot overflow
    (1e20 in float32), and not clamped at 1e-12 as F.normalize is (which shrinks rows at 1e-20). Zero rows: 0."""
    if not normalize:
        return x
    m = x.abs().amax(1, keepdim=True)
    u = x / torch.where(m > 0, m, torch.ones_like(m))
    return u / u.norm(dim=1, keepdim=True).clamp_min(torch.finfo(u.dtype).tiny)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature=0.1, reduction: str = "mean",
            normalize: bool = True) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020): 2N anchors; anchor i's positive is its other view, its negatives
    the 2N-2 other embeddings. Computed in the input dtype (the plain-PyTorch way)."""
    n = z1.shape[0]
    z = _unit(torch.cat([z1, z2]), normalize)
    s = z @ z.t() / temperature
    s = s.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = (torch.arange(2 * n, device=z.device) + n) % (2 * n)
    return torch.nn.functional.cross_entropy(s, target, reduction=reduction)


def info_nce(q: torch.Tensor, k: torch.Tensor, temperature=0.1, symmetric: bool = True,
             normalize: bool = True) -> torch.Tensor:
    """CLIP-style InfoNCE: row i of q matches row i of k; negatives are the other rows of the other set.
    symmetric=True averages the q->k and k->q cross-entropies."""
    s = _unit(q, normalize) @ _unit(k, normalize).t() / temperature
    target = torch.arange(q.shape[0], device=q.device)
    loss = torch.nn.functional.cross_entropy(s, target)
    if symmetric:
        loss = (loss + torch.nn.functional.cross_entropy(s.t(), target)) / 2
    return loss


def sup_con(z: torch.Tensor, labels: torch.Tensor, temperature=0.1, normalize: bool = True) -> torch.Tensor:
    """Supervised contrastive loss (Khosla et al. 2020, L_out): for anchor a with positives P(a) (same label,
    not a), loss_a = -mean_{p in P(a)} log softmax_{k != a}(s_a)[p]; averaged over anchors with positives."""
    z = _unit(z, normalize)
    n = z.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=z.device)
    s = (z @ z.t() / temperature).masked_fill(eye, float("-inf"))
    log_prob = s - torch.logsumexp(s, dim=1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    npos = pos.sum(1)
    per_anchor = -(log_prob.masked_fill(~pos, 0).sum(1)) / npos.clamp_min(1)
    return per_anchor[npos > 0].mean()


# ---------------------------------------------------------------------------------------------------------
# top-k search and analogies: the oracles of fastrepr.ops.topk_search / fastrepr.ops.analogy_topk (whose
# implementations, the ``torch`` one included, live in those files). Dense float64 score rows, blocked over
# queries only so that an oracle call at benchmark sizes fits in memory.

def _ranked(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top k of each row, descending; equal scores keep the lower column first (stable sort). Rows with
    fewer than k finite scores end in (-inf, -1)."""
    values, order = torch.sort(scores, dim=1, descending=True, stable=True)
    values, order = values[:, :k].contiguous(), order[:, :k].contiguous()
    return values, torch.where(torch.isneginf(values), torch.full_like(order, -1), order)


def _row_blocks(rows: int, cols: int, budget: int = 1 << 24):
    """Row ranges whose [rows, cols] score block stays near `budget` elements (the reference never holds
    the whole queries x vocabulary matrix)."""
    step = max(1, budget // max(cols, 1))
    for start in range(0, rows, step):
        yield start, min(start + step, rows)


def topk_search(queries: torch.Tensor, vectors: torch.Tensor, k: int,
                metric: str = "ip") -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest rows of ``vectors`` [R, D] for each query [Q, D] -> (scores [Q, k], indices [Q, k]).

    metric "ip": scores are inner products, descending. metric "l2": scores are squared Euclidean distances,
    ascending. Equal scores: lower index first. Computed in float64.
    """
    q, v = queries.double(), vectors.double()
    out_s, out_i = [], []
    for lo, hi in _row_blocks(q.shape[0], v.shape[0]):
        if metric == "l2":
            s = -torch.cdist(q[lo:hi], v).square()
        else:
            s = q[lo:hi] @ v.T
        values, order = _ranked(s, k)
        out_s.append(-values if metric == "l2" else values)
        out_i.append(order)
    return torch.cat(out_s).float(), torch.cat(out_i)


def analogy_scores(cos_a: torch.Tensor, cos_b: torch.Tensor, cos_c: torch.Tensor, method: str,
                   scale: torch.Tensor | None = None) -> torch.Tensor:
    """Per-candidate analogy scores from the cosines of every candidate with a, b and c ([..., R] each).

    3CosAdd (Mikolov et al. 2013; gensim most_similar): cos(v, b^ + c^ - a^) = (cos_b + cos_c - cos_a) * scale
    with scale = 1 / ||b^ + c^ - a^||. 3CosMul (Levy & Goldberg 2014, eq. 4, with gensim's shift of cosines to
    [0, 1]): ((1 + cos_b)/2 * (1 + cos_c)/2) / ((1 + cos_a)/2 + 1e-6).
    """
    if method == "3cosadd":
        return (cos_b + cos_c - cos_a) * scale
    pa, pb, pc = (1 + cos_a) * 0.5, (1 + cos_b) * 0.5, (1 + cos_c) * 0.5
    return (pb * pc) / (pa + 1e-6)


def analogy_topk(unit: torch.Tensor, words: torch.Tensor, k: int,
                 method: str = "3cosadd") -> tuple[torch.Tensor, torch.Tensor]:
    """Answers to analogy questions "a is to b as c is to ?" over unit-norm rows ``unit`` [R, D].

    words: [Q, 3] int64 row ids (a, b, c). Returns (scores [Q, k] float32, indices [Q, k] int64), the best
    rows by ``analogy_scores``, never a, b or c of the same question; equal scores keep the lower row first.
    Computed in float64 from the three cosine rows of each question block.
    """
    u = unit.double()
    norm = (u[words[:, 1]] + u[words[:, 2]] - u[words[:, 0]]).norm(dim=1)
    scale = torch.where(norm > 0, 1.0 / norm, torch.zeros_like(norm))[:, None]
    out_s, out_i = [], []
    for lo, hi in _row_blocks(words.shape[0], u.shape[0]):
        w = words[lo:hi]
        cos = [u[w[:, t]] @ u.T for t in range(3)]
        s = analogy_scores(*cos, method, scale[lo:hi])
        s.scatter_(1, w, float("-inf"))
        values, order = _ranked(s, k)
        out_s.append(values)
        out_i.append(order)
    return torch.cat(out_s).float(), torch.cat(out_i)
def histogram_mutual_info(x: torch.Tensor, edges: torch.Tensor, labels: torch.Tensor | None = None,
                          num_labels: int = 0) -> torch.Tensor:
    """[D, F] float64 mutual information (nats) between np.digitize(x[:, d], edges[d]) and labels[:, f], or,
    with labels None, between the digitized columns d and f (F = D). labels: [N, F] int64 in [0, num_labels).

    Materializes the [N, D, B] comparisons and one contingency table per pair.
    """
    n, d = x.shape
    bins = (x.unsqueeze(-1) >= edges.unsqueeze(0)).sum(-1)  # [N, D] in [0, B]
    rows = edges.shape[1] + 1
    ys, k = (bins, rows) if labels is None else (labels, num_labels)
    out = torch.zeros((d, ys.shape[1]), dtype=torch.float64, device=x.device)
    for i in range(d):
        for j in range(ys.shape[1]):
            c = torch.bincount(bins[:, i] * k + ys[:, j], minlength=rows * k).view(rows, k).double()
            ab = c.sum(1, keepdim=True) * c.sum(0, keepdim=True)
            nz = c > 0
            out[i, j] = (c[nz] / n * torch.log(n * c[nz] / ab[nz])).sum().clamp(min=0.0)
    return out


# ---- word2vec losses (per example; the functional API reduces) --------------------------------------------

def negative_sampling(w_in: torch.Tensor, w_out: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                      negatives: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example negative-sampling loss [B] (Mikolov et al. 2013):
    h_b = masked mean of w_in[inputs[b, :]] (inputs [B, C]; skip-gram: C = 1),
    loss_b = -log sigmoid(h_b·w_out[targets[b]]) - sum_k log sigmoid(-h_b·w_out[negatives[b, k]]).
    Accumulates in float32 (float64 for float64 input). Materializes [B, C, D] and [B, 1 + K, D] gathers.
    Masked-out rows are never read. An example with a non-finite score (NaN/Inf in a row it reads, or an
    overflowing dot product) has loss NaN, not the 0 that log sigmoid(+inf) would give."""
    acc = acc_dtype(w_in.dtype)
    x = w_in.to(acc)[inputs]                                    # [B, C, D]
    if mask is None:
        h = x.mean(1)
    else:
        m = mask.bool().unsqueeze(-1)
        h = torch.where(m, x, 0).sum(1) / m.sum(1).clamp_min(1)  # no input used: h = 0, as in the kernels
    rows = torch.cat([targets.unsqueeze(1), negatives], 1)      # [B, 1 + K]
    s = torch.einsum("bjd,bd->bj", w_out.to(acc)[rows], h)
    sign = torch.ones_like(s)
    sign[:, 1:] = -1
    loss = -torch.nn.functional.logsigmoid(sign * s).sum(1)
    return torch.where(torch.isfinite(s).all(1), loss, float("nan"))


def hierarchical_softmax(h: torch.Tensor, w_nodes: torch.Tensor, targets: torch.Tensor, points: torch.Tensor,
                         codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Per-example hierarchical-softmax loss [B] over a Huffman tree (points/codes [V, L], lengths [V]):
    loss_b = -sum_{j < lengths[t]} log sigmoid((1 - 2 codes[t, j]) h_b·w_nodes[points[t, j]]), t = targets[b].
    Accumulates in float32 (float64 for float64 input). Materializes the [B, L, D] gather of path nodes.
    Positions past a path's end are never read; a non-finite score on the path makes the example's loss NaN."""
    acc = acc_dtype(h.dtype)
    p, c = points[targets], codes[targets].to(acc)              # [B, L]
    valid = torch.arange(points.shape[1], device=h.device) < lengths[targets].unsqueeze(1)
    s = torch.einsum("bjd,bd->bj", w_nodes.to(acc)[p], h.to(acc))
    loss = -torch.where(valid, torch.nn.functional.logsigmoid((1 - 2 * c) * s), 0).sum(1)
    return torch.where((torch.isfinite(s) | ~valid).all(1), loss, float("nan"))


def siglip_loss(x: torch.Tensor, y: torch.Tensor, logit_scale, logit_bias, normalize: bool = True) -> torch.Tensor:
    """SigLIP (Zhai et al. 2023): -1/N sum_i sum_j log σ(z_ij (t x̂_i·ŷ_j + b)), z = +1 on the diagonal, -1 elsewhere.

    logit_scale is t itself, already exponentiated (open_clip's SigLipLoss convention: the model passes
    logit_scale.exp()). x [N, D], y [M, D] (M >= N; columns beyond N are negatives only). Materializes the N×M
    logits (dense oracle).
    """
    acc = acc_dtype(x.dtype)
    xh, yh = _unit(x.to(acc), normalize), _unit(y.to(acc), normalize)
    t = torch.as_tensor(logit_scale).to(acc)
    b = torch.as_tensor(logit_bias).to(acc)
    z = -torch.ones(x.shape[0], y.shape[0], dtype=acc, device=x.device)
    z[torch.arange(x.shape[0]), torch.arange(x.shape[0])] = 1.0
    return -torch.nn.functional.logsigmoid(z * (t * xh @ yh.T + b)).sum() / x.shape[0]
