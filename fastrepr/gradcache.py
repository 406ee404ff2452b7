"""Gradient caching: contrastive batches bigger than activation memory (GradCache; Gao et al. 2021,
"Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup").

A contrastive loss couples every row of the batch, so the batch cannot simply be split into micro-batches
with accumulated gradients: the loss of one chunk needs the embeddings of all the others. But the loss only
sees the encoder through the embeddings e = f_θ(x). By the chain rule

    dL/dθ = Σ_rows (dL/de_r) · (de_r/dθ),

and dL/de depends on the embeddings only. So, for a batch split into chunks c:

  1. e_c = f_θ(x_c) under ``torch.no_grad()`` for every chunk (no activations kept: memory of one chunk);
  2. L(e) on the concatenated, detached embeddings; ``L.backward()`` gives g = dL/de (and the gradients of
     any learnable parameters of the loss itself, such as a temperature), memory O(N·D) for fused losses;
  3. per chunk, recompute e_c = f_θ(x_c) with grad and run ``torch.autograd.backward(e_c, g_c)``, which adds
     g_cᵀ · de_c/dθ to the parameters' ``.grad``.

The sum over chunks in 3 is exactly the full-batch dL/dθ, as long as step 3 recomputes the same e_c as step 1:
the random state (dropout) is saved before each chunk's first pass and replayed for its second, on the CPU and
on every CUDA device the chunk's tensors live on (as GradCache's RandContext and torch.utils.checkpoint do).
Cost: one extra forward per chunk (about 1.33x the compute of a full-batch step); peak activation memory
that of one chunk instead of the batch.
"""
from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Callable

import torch
from torch.utils.checkpoint import get_device_states, set_device_states

from . import _checks

Encoder = Callable[..., torch.Tensor]
Batch = Any  # a tensor, or a mapping of name -> tensor passed to the encoder as keyword arguments


def _rows(batch: Batch, name: str) -> int:
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0:
            raise ValueError(f"{name} must have a batch dimension, got a 0-dim tensor")
        return batch.shape[0]
    if isinstance(batch, Mapping) and batch:
        sizes = {}
        for key, value in batch.items():
            if not isinstance(value, torch.Tensor) or value.dim() == 0:
                raise TypeError(f"{name}[{key!r}] must be a tensor with a batch dimension, got {type(value).__name__}")
            sizes[key] = value.shape[0]
        if len(set(sizes.values())) != 1:
            raise ValueError(f"the tensors of {name} must have the same batch size, got {sizes}")
        return next(iter(sizes.values()))
    raise TypeError(f"{name} must be a tensor or a non-empty mapping of name -> tensor, got {type(batch).__name__}")


def _chunk(batch: Batch, start: int, stop: int) -> Batch:
    if isinstance(batch, torch.Tensor):
        return batch[start:stop]
    return {key: value[start:stop] for key, value in batch.items()}


def _tensors(batch: Batch) -> list[torch.Tensor]:
    return [batch] if isinstance(batch, torch.Tensor) else list(batch.values())


def _encode(encoder: Encoder, batch: Batch) -> torch.Tensor:
    return encoder(batch) if isinstance(batch, torch.Tensor) else encoder(**batch)


class _RandomState:
    """The CPU and CUDA random states at one point, replayed later inside ``torch.random.fork_rng`` (so the
    replay leaves the caller's generators where the first pass left them)."""

    def __init__(self, tensors: list[torch.Tensor]):
        self.cpu = torch.get_rng_state()
        self.devices, self.states = get_device_states(*tensors)

    @contextlib.contextmanager
    def replay(self):
        with torch.random.fork_rng(devices=self.devices, enabled=True):
            torch.set_rng_state(self.cpu)
            set_device_states(self.devices, self.states)
            yield


def _check_embedding(e, name: str, rows: int) -> torch.Tensor:
    if not isinstance(e, torch.Tensor):
        raise TypeError(f"the encoder of {name} must return a tensor, got {type(e).__name__}")
    if e.dim() == 0 or e.shape[0] != rows:
        raise ValueError(f"the encoder of {name} returned shape {tuple(e.shape)} for a chunk of {rows} rows; "
                         f"its output must keep the batch dimension first")
    if not e.is_floating_point():
        raise TypeError(f"the encoder of {name} must return floating embeddings, got {e.dtype}")
    return e


def _sync_flags(encoders: list[Encoder], chunks: int, active: list[bool]) -> list[list[bool]]:
    """For DDP encoders: True on the last backward that touches each encoder (gradients all-reduce there),
    False elsewhere (those backwards run under the encoder's ``no_sync()``); ``active``: inputs whose
    embeddings got a gradient (the others are not re-encoded)."""
    flags = [[False] * chunks for _ in encoders]
    seen: set[int] = set()
    for i in reversed(range(len(encoders))):
        if active[i] and id(encoders[i]) not in seen:
            seen.add(id(encoders[i]))
            flags[i][-1] = True
    return flags


def cached_backward(encoders: Encoder | Sequence[Encoder], inputs: Batch | Sequence[Batch],
                    loss_fn: Callable[..., torch.Tensor], chunk_size: int) -> torch.Tensor:
    """One contrastive training step's backward at the memory of a ``chunk_size`` batch (GradCache).

    encoders: one encoder (an ``nn.Module`` or any callable) shared by every input (SimCLR's two views), or a
        sequence of encoders, one per input (two towers: CLIP's image and text, MoCo's query and key). An
        encoder maps a chunk of its input to embeddings [rows, ...] (batch dimension first, floating).
    inputs: one batch, or a sequence of batches, one per encoder. A batch is a tensor [N, ...] or a mapping
        of name -> tensor [N, ...] passed as keyword arguments (``encoder(**chunk)``, as Hugging Face models
        take ``input_ids`` and ``attention_mask``). Every batch has the same N.
    loss_fn: ``loss_fn(e_1, ..., e_k) -> scalar``, called once on the full [N, ...] embeddings of every input,
        in order: any fastrepr loss (``fastrepr.nt_xent``, ``info_nce``, a ``SupConLoss`` with labels bound
        by a lambda) or any differentiable callable. Its own learnable parameters (a temperature) get their
        gradients as in a full-batch ``loss.backward()``.
    chunk_size: rows per encoder call (int > 0); the last chunk may be shorter.

    Effect: adds to each parameter's ``.grad`` exactly what ``loss_fn(*(enc(x) for x in inputs)).backward()``
    would add (to rounding; the same dropout masks as running the chunks one after the other with grad), and
    returns the loss value, detached. With ``torch.nn.parallel.DistributedDataParallel`` encoders, every
    backward but the last through each encoder runs under its ``no_sync()``, so gradients all-reduce once.

    Memory: the activations of one chunk of one encoder, plus the embeddings and their gradients (2·N·D) and
    what ``loss_fn`` needs on them (O(N·D) for fastrepr's fused losses). Compute: one extra forward pass.
    The caller's random generators end where one pass over the chunks leaves them.

    Raises TypeError for inputs or encoder outputs of the wrong type, ValueError for chunk_size <= 0,
    batches of different sizes or empty ones, a number of encoders that is not 1 or the number of inputs,
    an encoder output that is not [rows, ...], and a loss that is not a scalar.
    """
    single_input = isinstance(inputs, (torch.Tensor, Mapping))
    batches = [inputs] if single_input else list(inputs)
    if not batches:
        raise ValueError("inputs must hold at least one batch")
    names = ["inputs"] if single_input else [f"inputs[{i}]" for i in range(len(batches))]
    if not isinstance(encoders, (list, tuple, torch.nn.ModuleList)):
        if not callable(encoders):
            raise TypeError(f"encoders must be callable or a sequence of callables, got {type(encoders).__name__}")
        towers = [encoders] * len(batches)
    else:
        towers = list(encoders)
        if len(towers) != len(batches):
            raise ValueError(f"got {len(towers)} encoders for {len(batches)} inputs; pass one encoder (shared) or "
                             f"one per input")
        for i, enc in enumerate(towers):
            if not callable(enc):
                raise TypeError(f"encoders[{i}] must be callable, got {type(enc).__name__}")
    chunk_size = _checks.int_arg(chunk_size, "chunk_size", 1)
    sizes = [_rows(b, name) for b, name in zip(batches, names)]
    if len(set(sizes)) != 1:
        raise ValueError(f"every input must have the same batch size, got {dict(zip(names, sizes))}")
    n = sizes[0]
    if n == 0:
        raise ValueError("inputs are empty (batch size 0)")
    bounds = [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]

    # 1. embeddings without activations, remembering each chunk's random state
    states: list[list[_RandomState]] = []
    embeddings: list[torch.Tensor] = []
    for enc, batch, name in zip(towers, batches, names):
        parts, tower_states = [], []
        for start, stop in bounds:
            chunk = _chunk(batch, start, stop)
            tower_states.append(_RandomState(_tensors(chunk)))
            with torch.no_grad():
                parts.append(_check_embedding(_encode(enc, chunk), name, stop - start))
        states.append(tower_states)
        embeddings.append(torch.cat(parts).requires_grad_(True))
        del parts

    # 2. the loss on the full batch of embeddings: dL/de (and the loss's own parameters' gradients)
    loss = loss_fn(*embeddings)
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(f"loss_fn must return a scalar tensor, got "
                         f"{tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__}")
    if loss.requires_grad:
        loss.backward()

    # 3. re-encode each chunk with grad (same random state) and push the cached gradient through it
    sync = _sync_flags(towers, len(bounds), [e.grad is not None for e in embeddings])
    for i, (enc, batch, name) in enumerate(zip(towers, batches, names)):
        grad = embeddings[i].grad
        if grad is None:  # the loss does not depend on this input
            continue
        for j, (start, stop) in enumerate(bounds):
            no_sync = getattr(enc, "no_sync", None)
            quiet = no_sync() if callable(no_sync) and not sync[i][j] else contextlib.nullcontext()
            with states[i][j].replay(), quiet:
                e = _check_embedding(_encode(enc, _chunk(batch, start, stop)), name, stop - start)
                if e.requires_grad:
                    torch.autograd.backward(e, grad[start:stop])
    return loss.detach()


class GradCache:
    """Gradient caching as an object: ``GradCache(encoders, loss_fn, chunk_size)(*inputs)`` runs
    :func:`cached_backward` (see there for the arguments, the memory and the errors) and returns the loss.

    Typical step: ``loss = gc(images, texts); optimizer.step(); optimizer.zero_grad()``.
    """

    def __init__(self, encoders: Encoder | Sequence[Encoder], loss_fn: Callable[..., torch.Tensor],
                 chunk_size: int):
        self.encoders = encoders
        self.loss_fn = loss_fn
        self.chunk_size = _checks.int_arg(chunk_size, "chunk_size", 1)

    def __call__(self, *inputs: Batch) -> torch.Tensor:
        return cached_backward(self.encoders, inputs[0] if len(inputs) == 1 else inputs, self.loss_fn,
                               self.chunk_size)

    def __repr__(self) -> str:
        return f"GradCache(chunk_size={self.chunk_size})"
