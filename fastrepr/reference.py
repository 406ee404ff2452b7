"""Plain-PyTorch oracles of every fastrepr op.

These are the test oracles, never what runs for a user (each op's ``torch`` implementation lives in its op
file): written for clarity, not speed or memory. Each takes
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


# ---------------------------------------------------------------------------------------------------------
# issue 13: DCL / DCLW and queue (memory-bank) negatives, dense: the oracles of fastrepr.ops.dcl and of
# fastrepr.info_nce(queue=...) / fastrepr.NTXentLoss(memory_bank_size=...) and of the op queue_lse behind them.

def dcl_loss(z1: torch.Tensor, z2: torch.Tensor, temperature=0.1, sigma: float | None = None,
             reduction: str = "mean", normalize: bool = True) -> torch.Tensor:
    """Yeh et al. 2022, Eq. 6: anchor i of view u, other view v: L = -w_i s^{uv}_ii + logsumexp over the 2N - 2
    columns j != i of [s^{uu}_ij, s^{uv}_ij] (the positive is not in the denominator); w = 1 (DCL) or, with
    sigma, w = 2 - N softmax_i(ẑ^u_i·ẑ^v_i / sigma), detached (DCLW). [2N] losses, z1's anchors first."""
    n = z1.shape[0]
    a, b = _unit(z1, normalize), _unit(z2, normalize)
    eye = torch.eye(n, dtype=torch.bool, device=a.device)
    pos = (a * b).sum(1) / temperature
    if sigma is not None:
        pos = pos * (2 - n * torch.softmax((a * b).sum(1).detach() / sigma, 0))
    losses = []
    for u, v in ((a, b), (b, a)):
        s_uu = (u @ u.t() / temperature).masked_fill(eye, float("-inf"))
        s_uv = (u @ v.t() / temperature).masked_fill(eye, float("-inf"))
        losses.append(torch.logsumexp(torch.cat([s_uu, s_uv], 1), 1) - pos)
    loss = torch.cat(losses)
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def info_nce_queue(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature=0.1,
                   normalize: bool = True) -> torch.Tensor:
    """MoCo (He et al. 2020, Algorithm 1): logits [q̂_i·k̂_i, q̂_i·Q̂ᵀ] / τ, cross-entropy with label 0, mean; the
    queue Q [K, D] is detached."""
    qn, kn, Q = _unit(q, normalize), _unit(k, normalize), _unit(queue.detach(), normalize)
    logits = torch.cat([(qn * kn).sum(1, keepdim=True), qn @ Q.t()], 1) / temperature
    return torch.nn.functional.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.long, device=q.device))


def queue_lse(q: torch.Tensor, queue: torch.Tensor, temperature=0.1,
              normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The op fastrepr.ops.queue_lse, dense: S = q̂ Q̂ᵀ / τ [N, K], (logsumexp of S's rows [N], softmax(S) Q̂ [N, D]);
    the queue Q [K, D] is detached (the second output carries no gradient)."""
    qn, Q = _unit(q, normalize), _unit(queue.detach(), normalize)
    s = qn @ Q.t() / temperature
    return torch.logsumexp(s, 1), (torch.softmax(s, 1) @ Q).detach()


def _hcl_loss(neg: torch.Tensor, pos: torch.Tensor, temperature, tau_plus: float, beta: float) -> torch.Tensor:
    """HCL's per-anchor loss from neg [A, M] = exp(negative scores) and pos [A] = exp(positive score)."""
    m = neg.shape[1]
    if beta > 0:
        imp = (beta * neg.log()).exp()
        r = (imp * neg).sum(-1) / imp.mean(-1)
    else:
        r = neg.sum(-1)
    ng = torch.clamp((-tau_plus * m * pos + r) / (1 - tau_plus), min=m * torch.exp(-1 / torch.as_tensor(temperature)))
    return -torch.log(pos / (pos + ng))


def debiased_nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature=0.5, tau_plus: float = 0.0, beta: float = 0.0,
                     reduction: str = "mean", normalize: bool = True) -> torch.Tensor:
    """Chuang et al. 2020 (τ⁺) and Robinson et al. 2021 (β) as the HCL repository's code (image/main.py), dense:
    neg = exp(S) over each anchor's M = 2N - 2 negatives, pos = exp(s⁺); imp = neg^β;
    R = (imp · neg).sum / imp.mean (β > 0) or neg.sum; Ng = max((R - τ⁺ M pos) / (1 - τ⁺), M e^{-1/τ});
    L = -log(pos / (pos + Ng)). Exponentials formed directly (float64 keeps them finite at test sizes)."""
    n = z1.shape[0]
    z = _unit(torch.cat([z1, z2]), normalize)
    s = z @ z.t() / temperature
    target = (torch.arange(2 * n, device=z.device) + n) % (2 * n)
    mask = torch.ones(2 * n, 2 * n, dtype=torch.bool, device=z.device)
    mask[torch.arange(2 * n), torch.arange(2 * n)] = False
    mask[torch.arange(2 * n), target] = False
    neg = torch.exp(s[mask].view(2 * n, -1))
    pos = torch.exp(s[torch.arange(2 * n), target])
    loss = _hcl_loss(neg, pos, temperature, tau_plus, beta)
    return loss.mean() if reduction == "mean" else loss.sum() if reduction == "sum" else loss


def debiased_info_nce(q: torch.Tensor, k: torch.Tensor, temperature=0.5, tau_plus: float = 0.0, beta: float = 0.0,
                      symmetric: bool = True, normalize: bool = True) -> torch.Tensor:
    """debiased_nt_xent's equations for CLIP InfoNCE: row i of S = q̂ k̂ᵀ/τ has positive S[i, i] and the
    M = N - 1 other entries as negatives; Sᵀ likewise for the k -> q direction (averaged when symmetric)."""
    n = q.shape[0]
    s = _unit(q, normalize) @ _unit(k, normalize).t() / temperature
    eye = torch.eye(n, dtype=torch.bool, device=q.device)
    m = n - 1

    def one(sm):
        neg, pos = torch.exp(sm[~eye].view(n, m)), torch.exp(sm.diagonal())
        return _hcl_loss(neg, pos, temperature, tau_plus, beta).mean()

    return (one(s) + one(s.t())) / 2 if symmetric else one(s)
# ------------------------------------------------------------------------------------ β-VAE family objectives
# Dense oracles, as disentanglement_lib writes them (methods/unsupervised/vae.py, methods/shared/losses.py):
# the per-pixel loss tensor and the [B, B, D] log densities are materialized. Run them in float64.

def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """[B] sum over pixels of sigmoid cross-entropy with logits (x converted to the logits' dtype)."""
    s, t = logits.reshape(logits.shape[0], -1), x.reshape(x.shape[0], -1).to(logits.dtype)
    return torch.nn.functional.binary_cross_entropy_with_logits(s, t, reduction="none").sum(1)


def gaussian_log_density(samples, mean, log_var):
    """disentanglement_lib's gaussian_log_density: -1/2 ((s - m)² exp(-lv) + lv + log 2π), elementwise."""
    import math

    tmp = samples - mean
    return -0.5 * (tmp * tmp * torch.exp(-log_var) + log_var + math.log(2 * math.pi))


def total_correlation(z, mu, logvar, estimator: str = "mws", dataset_size=None) -> torch.Tensor:
    """[B] log q(z_i) - sum_d log q(z_id) with the dense [B, B, D] tensor (Chen et al. 2018). MWS without
    dataset_size is disentanglement_lib's total_correlation (per example; it takes the mean); MSS uses the
    paper's stratified weights (fastrepr.ops.total_correlation)."""
    import math

    B, D = z.shape
    l = gaussian_log_density(z[:, None, :], mu[None, :, :], logvar[None, :, :])  # [B, B, D]
    if estimator == "mss":
        M, N = B - 1, dataset_size
        w = torch.full((B, B), 1.0 / M, dtype=z.dtype, device=z.device)
        idx = torch.arange(B, device=z.device)
        w[idx, (idx + 1) % B] = (N - M) / (N * M)
        w[idx, idx] = 1.0 / N
        logw = w.log()
    else:
        logw = torch.zeros((B, B), dtype=z.dtype, device=z.device)
    log_qz_product = torch.logsumexp(l + logw[..., None], 1).sum(1)
    log_qz = torch.logsumexp(l.sum(2) + logw, 1)
    tc = log_qz - log_qz_product
    if estimator == "mws" and dataset_size is not None:
        tc = tc + (D - 1) * math.log(dataset_size * B)
    return tc


def beta_vae_loss(logits, x, mu, logvar, beta=1.0, *, objective="beta", capacity=0.0, gamma=1000.0, lambda_od=10.0,
                  lambda_d=None, dataset_size=None, estimator="mws", z=None) -> torch.Tensor:
    """disentanglement_lib's loss = mean reconstruction + regularizer, scalar: BetaVAE beta·KL, AnnealedVAE
    gamma·|KL - C|, DIPVAE KL + the covariance penalty (with beta·KL here), BetaTCVAE KL + (beta - 1)·TC."""
    recon = bernoulli_nll(logits, x).mean()
    kl = (0.5 * (mu * mu + torch.exp(logvar) - logvar - 1).sum(1)).mean()
    if objective == "beta":
        return recon + beta * kl
    if objective == "annealed":
        return recon + gamma * (kl - capacity).abs()
    if objective in ("dip-i", "dip-ii"):
        lambda_d = lambda_od * (10.0 if objective == "dip-i" else 1.0) if lambda_d is None else lambda_d
        e_mmt = (mu[:, :, None] * mu[:, None, :]).mean(0)
        e_m = mu.mean(0)
        cov = e_mmt - e_m[:, None] * e_m[None, :]
        if objective == "dip-ii":
            cov = cov + torch.diag_embed(torch.exp(logvar)).mean(0)
        diag = torch.diagonal(cov)
        off = cov - torch.diag(diag)
        return recon + beta * kl + lambda_od * (off ** 2).sum() + lambda_d * ((diag - 1) ** 2).sum()
    tc = total_correlation(z, mu, logvar, estimator, dataset_size).mean()
    return recon + kl + (beta - 1) * tc
# ------------------------------------------------------------------------ clusterability and retrieval
# Dense oracles for fastrepr.evaluation.clustering / retrieval: the N x N distances and the Q x N scores.

def silhouette_samples(z: torch.Tensor, labels: torch.Tensor, metric: str = "euclidean") -> torch.Tensor:
    """Rousseeuw's s_i [N] float64 from the dense N x N float64 distance matrix (direct differences for
    euclidean, 1 - cosine for cosine); labels [N] int64; singleton clusters score 0 (scikit-learn's rule)."""
    x = z.to(torch.float64)
    if metric == "cosine":
        xn = x / x.norm(dim=1, keepdim=True).clamp(min=1e-300)
        d = (1 - xn @ xn.T).clamp(0, 2)
        d.fill_diagonal_(0)
    else:
        d = (x[:, None, :] - x[None, :, :]).pow(2).sum(-1).sqrt()
    classes = torch.unique(labels)
    s = torch.zeros(x.shape[0], dtype=torch.float64)
    for i in range(x.shape[0]):
        same = labels == labels[i]
        if same.sum() == 1:
            continue
        a = d[i, same].sum() / (same.sum() - 1)
        b = min(d[i, labels == c].mean() for c in classes if c != labels[i])
        s[i] = (b - a) / max(a, b) if max(a, b) > 0 else 0.0
    return s


def retrieval_ranks(queries: torch.Tensor, keys: torch.Tensor, positive_mask: torch.Tensor,
                    exclude_mask: torch.Tensor | None = None, metric: str = "cosine") -> list:
    """Per query, the 0-based positions of its positives in the dense ``torch.argsort(-s, stable=True)`` of the
    float64 scores over non-excluded keys (None when it has none). Materializes Q x N."""
    q, k = queries.to(torch.float64), keys.to(torch.float64)
    s = q @ k.T
    if metric == "cosine":
        s = s / (q.norm(dim=1)[:, None] * k.norm(dim=1)[None, :]).clamp(min=1e-300)
    out = []
    for r in range(s.shape[0]):
        keep = torch.ones(s.shape[1], dtype=torch.bool) if exclude_mask is None else ~exclude_mask[r]
        kept = torch.nonzero(keep).reshape(-1)
        order = kept[torch.argsort(-s[r, kept], stable=True)]
        where = torch.nonzero(positive_mask[r][order]).reshape(-1)
        out.append(where if where.numel() else None)
    return out
# ------------------------------------------------------------------------------------------- geometry (issue 14)

def uniformity(z: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Wang & Isola 2020's uniformity, their reference expression in float64: rows normalized, then
    log mean over the N(N-1)/2 unordered pairs of exp(-t ||ẑ_i - ẑ_j||²) via torch.pdist (materializes them)."""
    zh = torch.nn.functional.normalize(z.to(torch.float64), dim=1)
    return torch.pdist(zh).pow(2).mul(-t).exp().mean().log()


def alignment(x: torch.Tensor, y: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """Wang & Isola 2020's alignment in float64: mean_i ||x̂_i - ŷ_i||^alpha."""
    f = torch.nn.functional.normalize
    return (f(x.to(torch.float64), dim=1) - f(y.to(torch.float64), dim=1)).norm(dim=1).pow(alpha).mean()


def effective_rank(z, eps: float = 0.0) -> float:
    """Roy & Vetterli 2007 / RankMe (Garrido et al. 2023, eps=1e-7) with numpy: exp(-sum p log p),
    p = σ / ||σ||_1 + eps over numpy's min(N, D) singular values."""
    import numpy as np

    s = np.linalg.svd(np.asarray(z, dtype=np.float64), compute_uv=False)
    p = s / s.sum() + eps
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def cka_gram(x, y, kernel: str = "linear", debiased: bool = False, threshold: float = 1.0) -> float:
    """CKA from N×N Gram matrices in numpy float64, as Kornblith et al. 2019's reference code (gram_linear /
    gram_rbf with the median-distance bandwidth, center_gram with unbiased=debiased, then the Frobenius cosine)."""
    import numpy as np

    def gram(a):
        a = np.asarray(a, dtype=np.float64)
        g = a @ a.T
        if kernel == "rbf":
            sq = np.diag(g)
            d2 = -2 * g + sq[:, None] + sq[None, :]
            g = np.exp(-d2 / (2 * threshold ** 2 * np.median(d2)))
        return g

    def center(g):
        g = g.copy()
        n = g.shape[0]
        if debiased:
            np.fill_diagonal(g, 0)
            means = g.sum(0) / (n - 2)
            means -= means.sum() / (2 * (n - 1))
        else:
            means = g.mean(0)
            means -= means.mean() / 2
        g -= means[:, None]
        g -= means[None, :]
        if debiased:
            np.fill_diagonal(g, 0)
        return g

    gx, gy = center(gram(x)), center(gram(y))
    return float((gx.ravel() @ gy.ravel()) / (np.linalg.norm(gx) * np.linalg.norm(gy)))


def hoyer_sparsity(z) -> float:
    """Hoyer 2004 in numpy float64, mean over the nonzero rows: (sqrt d - ||z||_1/||z||_2) / (sqrt d - 1)."""
    import numpy as np

    z = np.asarray(z, dtype=np.float64)
    z = z[np.abs(z).sum(1) > 0]
    d = z.shape[1]
    return float(((np.sqrt(d) - np.abs(z).sum(1) / np.linalg.norm(z, axis=1)) / (np.sqrt(d) - 1)).mean())


def slerp(z_a: torch.Tensor, z_b: torch.Tensor, w: float) -> torch.Tensor:
    """Spherical interpolation (Shoemake 1985) of two vectors in float64: sin((1-w)θ)/sin θ a + sin(wθ)/sin θ b,
    θ the angle between them."""
    a, b = z_a.to(torch.float64), z_b.to(torch.float64)
    cos = (a @ b / (a.norm() * b.norm())).clamp(-1, 1)
    th = torch.arccos(cos)
    return (torch.sin((1 - w) * th) * a + torch.sin(w * th) * b) / torch.sin(th)
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
