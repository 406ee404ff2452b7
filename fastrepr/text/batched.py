"""Device-side word2vec training: (center, context) batches generated on the device, fed to the fused kernels.

Update rule: ``update="batched"`` (``Word2Vec.update_rule`` says so after training), neither the CPU's exact
rule (gensim's pair-by-pair loop) nor its window rule. Per epoch, subsampling draws one keep mask for the whole
corpus on the device. Then each step takes the next ``batch_words`` kept positions as centers, draws their
reduced windows, and forms every (center, context) pair inside the window and the sentence as
[centers, 2·window] index and validity tensors: no Python loop over words. Skip-gram trains the valid pairs
(input = context row of syn0, output = the center, as word2vec.c), each with its own K negatives; CBOW the
centers with at least one context (masked mean). Negatives come from the unigram^α alias table
(``fastrepr.text.sampling.AliasTable.sample``), drawn on the device. The learning rate decays linearly with the
corpus position of the step, as in the CPU trainer.

Differences from the exact rule: a sampled negative equal to its target is kept (word2vec.c skips it; at
V in the thousands this changes about 1/V of the negatives); every score gets the exact sigmoid's gradient
(beyond +-6 on the wrong side that is word2vec.c's clamp, not gensim's skip); and all updates of a step are computed from the rows as they were at the
start of the step (the fused kernels' atomics on Triton, one minibatch step on other backends) instead of
strictly sequential SGD. A frequent word receives many stale updates at once: with plain SGD at word2vec's
learning rate this diverges when ``batch_words`` is large against the vocabulary (on a 30-word toy corpus,
1000 centers per step already do); the trainer then raises FloatingPointError. The CUDA default (16384
centers) is untuned and its quality against the CPU's exact rule on a real corpus has not been measured on a
GPU (no GPU was lent to the sessions that wrote this): benchmarks/RESULTS.md reports the same rule run on the
CPU (torch backend), and the gpu-marked test compares the GPU trainer's quality with the CPU trainer's. Here it
is tested under Triton's interpreter and with the torch backend.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from .._progress import Progress
from ..ops.hierarchical_softmax import hierarchical_softmax_step_
from ..ops.negative_sampling import negative_sampling_step_


def _pairs(ktok, ksent, start, end, window, shrink, gen):
    """Centers [n] and contexts [n, 2·window] with validity [n, 2·window] for kept positions [start, end)."""
    device = ktok.device
    pos = torch.arange(start, end, device=device)
    offs = torch.cat([torch.arange(-window, 0, device=device), torch.arange(1, window + 1, device=device)])
    q = pos.unsqueeze(1) + offs.unsqueeze(0)
    M = ktok.shape[0]
    qc = q.clamp(0, M - 1)
    valid = (q >= 0) & (q < M) & (ksent[qc] == ksent[pos].unsqueeze(1))
    if shrink:
        r = torch.randint(0, window, (pos.shape[0], 1), device=device, generator=gen)
        valid &= offs.abs().unsqueeze(0) <= window - r
    return ktok[pos], ktok[qc], valid


def train_batched(model, tokens: np.ndarray, offsets: np.ndarray, epochs: int, progress: bool) -> float:
    """Train ``model`` (a fastrepr.Word2Vec whose tables live on model.device) in place; returns the mean loss
    per prediction over the run. Shapes stay fixed within a step (invalid pairs are masked, not removed), so a
    step runs without host synchronization; the host syncs once per epoch and for the progress bar."""

    device = model.device
    if not model.cbow_mean and not model.sg:
        raise ValueError("the batched (GPU) trainer implements CBOW with cbow_mean=1 only")
    gen = torch.Generator(device=device).manual_seed(model.seed)
    tok = torch.as_tensor(tokens, dtype=torch.int64, device=device)
    lengths = torch.as_tensor(np.diff(offsets), device=device)
    sent = torch.repeat_interleave(torch.arange(lengths.shape[0], device=device), lengths)
    keep_p = torch.as_tensor(model.keep, dtype=torch.float32, device=device)
    tree = model.tree.tensors(device) if model.hs else None
    N, W, K, D = tok.shape[0], model.window, model.negative, model.vector_size
    batch = model.batch_words or (16384 if device.type == "cuda" else 2000)
    total = float(epochs * N)
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    terms = torch.zeros((), dtype=torch.float64, device=device)
    bar = Progress(int(total), progress, unit="word", desc="word2vec", unit_scale=True)
    shown = time.perf_counter()
    try:
        for epoch in range(epochs):
            kept = torch.rand(N, device=device, generator=gen) < keep_p[tok]
            raw_pos = kept.nonzero().squeeze(1)                 # corpus position of each kept token
            ktok, ksent = tok[raw_pos], sent[raw_pos]
            M = ktok.shape[0]
            step_start = raw_pos[0::batch].tolist()             # one transfer per epoch, for the schedule
            for step, start in enumerate(range(0, M, batch)):
                done = epoch * N + step_start[step]
                lr = max(model.min_alpha, model.alpha - (model.alpha - model.min_alpha) * done / total)
                centers, ctx, valid = _pairs(ktok, ksent, start, min(M, start + batch), W, model.shrink_windows, gen)
                if model.sg:                                    # one example per (center, offset); the context
                    inputs, mask = ctx.reshape(-1, 1), valid.reshape(-1, 1)   # row predicts the center
                    targets = centers.repeat_interleave(2 * W)
                    weight = mask[:, 0]
                else:
                    inputs, targets, mask = ctx, centers, valid
                    weight = valid.any(1)
                if K:
                    negatives = model.noise.sample((targets.shape[0], K), device, gen)
                    # an example whose inputs are all masked has h = 0 and changes nothing
                    loss = negative_sampling_step_(model.syn0, model.syn1neg, inputs, targets, negatives, mask, lr,
                                                   mean_grad=False)
                    loss_sum += (loss * weight).sum()
                    terms += weight.sum() * (1 + K)
                if model.hs:
                    m = mask.to(model.syn0.dtype).unsqueeze(-1)
                    h = (model.syn0[inputs] * m).sum(1) / m.sum(1).clamp_min(1)
                    loss, delta_h = hierarchical_softmax_step_(h, model.syn1, targets, *tree, lr=lr, weight=weight)
                    # word2vec: the error of h goes to every context row undivided
                    model.syn0.index_add_(0, inputs.reshape(-1), (delta_h.unsqueeze(1) * m).reshape(-1, D))
                    loss_sum += (loss * weight).sum()
                    terms += (tree[2][targets] * weight).sum()
                if bar.enabled and time.perf_counter() - shown > 0.5:
                    shown = time.perf_counter()
                    bar.to(done, float(loss_sum), float(terms))
            if bar.enabled:
                bar.to((epoch + 1) * N, float(loss_sum), float(terms))
    finally:
        bar.close()
    return float(loss_sum) / max(float(terms), 1.0)
