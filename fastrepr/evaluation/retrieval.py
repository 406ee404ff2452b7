"""Retrieval: recall@K and mean average precision between paired embeddings (image -> text, query -> key).

Scores are s[q, j] = <q, k_j> (metric="dot") or the cosine of the angle (metric="cosine"), computed in
float64 so that ties are ties of the inputs' values, not of rounding. Ranking rule (ties): exactly the
dense ``order = torch.argsort(-s[q], stable=True)`` over the keys that are not excluded: a key j ranks

    rank_j = #{l : s_l > s_j} + #{l < j : s_l == s_j}          (0-based, over non-excluded keys l)

so a positive tied with negatives at the K-th score counts as retrieved exactly when its key index is lower
than theirs. recall@K of a query is 1 when some positive has rank < K (the CLIP / open_clip "hit" recall),
averaged over the queries that have at least one positive; AP of a query is the mean over its positives p of
(positives with rank <= rank_p) / (rank_p + 1), and mAP its mean over the same queries.

Memory: queries are processed in chunks so that a chunk's [chunk, N] float64 scores stay near 16 MB (plus
the argsort's int64 order for set positives); never Q x N when Q·N is large. Any K works (no 2048 cap: a
[Q] positive's rank is counted, not searched for). Exclusions (e.g. the query itself when queries are keys)
remove keys from a query's ranking entirely; an excluded key is never a positive.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from .. import _checks

CHUNK_ELEMENTS = 1 << 21  # [chunk, N] float64 scores: 16 MB


class RetrievalScores(NamedTuple):
    recall: dict  # {K: recall@K}
    mean_average_precision: float
    queries: int  # queries with at least one positive (those averaged)


def _emb(x, name: str) -> torch.Tensor:
    x = torch.as_tensor(x) if not isinstance(x, torch.Tensor) else x
    _checks.floating(x, name)
    _checks.ndim(x, 2, name, "[rows, D]")
    _checks.nonempty(x, name, "[rows, D]")
    return _checks.finite(x.detach(), name)


def _sets(value, q: int, n: int, name: str) -> list[set] | torch.Tensor | None:
    """[Q] int index -> LongTensor; [Q, N] bool mask or a list of Q iterables -> list of Q sets."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        if len(value) != q:
            raise ValueError(f"{name} must hold one entry per query ({q}), got {len(value)}")
        out = []
        for row in value:
            row = {int(row)} if isinstance(row, int) else {int(v) for v in row}
            if any(not 0 <= v < n for v in row):
                raise ValueError(f"{name}: key indices must lie in [0, {n}), got {sorted(row)[:5]}")
            out.append(row)
        return out
    t = torch.as_tensor(value)
    if t.dtype == torch.bool:
        if tuple(t.shape) != (q, n):
            raise ValueError(f"{name} as a boolean mask must have shape [Q, N] = [{q}, {n}], got {tuple(t.shape)}")
        return [set(torch.nonzero(r).reshape(-1).tolist()) for r in t]
    _checks.integer(t, name)
    if tuple(t.shape) != (q,):
        raise ValueError(f"{name} as an index must have shape [Q] = [{q}], got {tuple(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= n):
        raise ValueError(f"{name}: key indices must lie in [0, {n})")
    return t.long()


def scores_matrix(queries: torch.Tensor, keys: torch.Tensor, metric: str) -> torch.Tensor:
    """s [Q, N] float64. Cosine divides the float64 dot products by the norms afterwards (a zero row scores 0)
    rather than normalizing first, so that inputs whose dot products are exact in float64 (integer-valued
    ones, duplicated keys) tie exactly however the queries are chunked."""
    q, k = queries.to(torch.float64), keys.to(torch.float64)
    s = q @ k.T
    if metric == "cosine":
        s = s / (q.norm(dim=1)[:, None] * k.norm(dim=1)[None, :]).clamp(min=1e-300)
    return s


def retrieval_scores(queries, keys, positives, ks=(1, 5, 10), exclude=None, metric: str = "cosine",
                     chunk_elements: int = CHUNK_ELEMENTS) -> RetrievalScores:
    """recall@K for every K in ks, and mAP, of queries [Q, D] against keys [N, D] (module docstring's rule).

    positives: [Q] integer tensor (the one positive key of each query), a [Q, N] boolean mask, or a list of Q
    iterables of key indices. exclude: None, [Q] integer tensor, or a list of Q iterables (keys removed from
    that query's ranking). ks: positive integers, any size (K >= N counts every key). Float tensors/arrays of
    any float dtype; scores in float64. Memory: O(chunk·N) with chunk·N ≈ chunk_elements; never Q x N.
    """
    if metric not in ("cosine", "dot"):
        raise ValueError(f"metric must be 'cosine' or 'dot', got {metric!r}")
    queries, keys = _emb(queries, "queries"), _emb(keys, "keys")
    if queries.shape[1] != keys.shape[1]:
        raise ValueError(f"queries and keys must have the same dimension, got {queries.shape[1]} and {keys.shape[1]}")
    keys = keys.to(queries.device)
    ks = tuple(ks) if isinstance(ks, (list, tuple)) else (ks,)
    if not ks:
        raise ValueError("ks must name at least one K")
    ks = tuple(_checks.int_arg(k, "ks", 1) for k in ks)
    nq, n = queries.shape[0], keys.shape[0]
    pos = _sets(positives, nq, n, "positives")
    if pos is None:
        raise ValueError("positives must be given")
    excl = _sets(exclude, nq, n, "exclude")
    if isinstance(excl, torch.Tensor):
        excl = [{int(v)} for v in excl]
    chunk = max(1, _checks.int_arg(chunk_elements, "chunk_elements", 1) // n)
    hits = {k: 0 for k in ks}
    ap_sum, counted = 0.0, 0
    for q0 in range(0, nq, chunk):
        q1 = min(nq, q0 + chunk)
        s = scores_matrix(queries[q0:q1], keys, "cosine" if metric == "cosine" else "dot")
        ranks_per_query = _ranks(s, pos, excl, q0, q1)
        for ranks in ranks_per_query:
            if ranks is None:
                continue
            counted += 1
            first = int(ranks[0])
            for k in ks:
                hits[k] += first < k
            ap_sum += float((torch.arange(1, ranks.numel() + 1, dtype=torch.float64) / (ranks + 1)).mean())
    if counted == 0:
        raise ValueError("positives: no query has a positive key that is not excluded")
    return RetrievalScores({k: hits[k] / counted for k in ks}, ap_sum / counted, counted)


def _keep_mask(excl, q0: int, q1: int, n: int, device) -> torch.Tensor:
    keep = torch.ones(q1 - q0, n, dtype=torch.bool, device=device)
    if excl is not None:
        rows = [r for r in range(q1 - q0) for _ in excl[q0 + r]]
        cols = [c for r in range(q1 - q0) for c in excl[q0 + r]]
        if rows:
            keep[torch.tensor(rows, device=device), torch.tensor(cols, device=device)] = False
    return keep


def _ranks(s: torch.Tensor, pos, excl, q0: int, q1: int) -> list:
    """For each query of the chunk: the sorted 0-based ranks [P] float64 of its positives, or None."""
    n = s.shape[1]
    ar = torch.arange(n, device=s.device)
    keep = _keep_mask(excl, q0, q1, n, s.device)
    if isinstance(pos, torch.Tensor):
        # one positive per query: rank = #{l kept: s_l > s_p} + #{l kept, l < p: s_l == s_p}; O(N), no sort
        p = pos[q0:q1].to(s.device)
        sp = s.gather(1, p[:, None])
        ahead = ((s > sp) | ((s == sp) & (ar[None, :] < p[:, None]))) & keep
        ranks = ahead.sum(1).to(torch.float64).cpu()
        valid = keep.gather(1, p[:, None]).reshape(-1).cpu()
        return [ranks[r:r + 1] if valid[r] else None for r in range(q1 - q0)]
    out = []
    for r in range(q1 - q0):
        p = sorted(j for j in pos[q0 + r] if keep[r, j])
        if not p:
            out.append(None)
            continue
        kept = torch.nonzero(keep[r]).reshape(-1)
        order = kept[torch.argsort(-s[r, kept], stable=True)]
        is_pos = torch.zeros(n, dtype=torch.bool, device=s.device)
        is_pos[torch.tensor(p, device=s.device)] = True
        out.append(torch.nonzero(is_pos[order]).reshape(-1).to(torch.float64).cpu())
    return out


def recall_at_k(queries, keys, positives, ks=(1, 5, 10), exclude=None, metric: str = "cosine") -> dict:
    """{K: recall@K} (``retrieval_scores``'s rule, shapes and memory)."""
    return retrieval_scores(queries, keys, positives, ks, exclude, metric).recall


def mean_average_precision(queries, keys, positives, exclude=None, metric: str = "cosine") -> float:
    """mAP over queries with a positive (``retrieval_scores``'s rule, shapes and memory)."""
    return retrieval_scores(queries, keys, positives, (1,), exclude, metric).mean_average_precision
