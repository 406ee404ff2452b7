"""Log-sum-exp over a queue (memory bank) of negatives, streamed: the kernel behind info_nce(queue=) (MoCo, He
et al. 2020) and NTXentLoss(memory_bank_size=) (lightly's memory bank), in O(N·D) memory at any queue size K.

For q [N, D], a detached queue Q [K, D] and τ > 0 (q̂, Q̂ the L2-normalized rows; q, Q themselves with
normalize=False):

    s[i, j]  = q̂_i · Q̂_j / τ
    lse[i]   = log sum_j exp s[i, j]
    m[i]     = sum_j softmax_j(s[i, :]) Q̂_j          (the softmax-weighted mean of the queue rows, [N, D])

MoCo's loss is then logaddexp(l_pos, lse) - l_pos (fastrepr.ops.dcl.info_nce_queue): the positive joins the
queue's log-sum-exp by one log-add-exp, O(N).

Forward: each block of rows streams the queue in column tiles with an online max and sum (as in flash
attention), never storing the N x K scores; the same pass accumulates m with the running rescaling
(m_new = f m_old + sum_j e^{s_j - max} Q̂_j, f = e^{max_old - max_new}, divided by the sum at the end).

Backward: nothing flows to the queue, and no second pass over it is needed:

    d lse[i] / d q̂_i = sum_j softmax_j Q̂_j / τ = m[i] / τ                        (O(N·D) from the saved m)
    d lse[i] / d τ   = -sum_j softmax_j s[i, j] / τ = -(q̂_i · m[i]) / τ²
    d q_i            = (dq̂_i - q̂_i (q̂_i · dq̂_i)) / ||q_i||                      (normalize: the L2 backward)

Normalization as in fastrepr.ops.contrastive (overflow-safe; a zero row stays zero): q̂ formed in the op, the
queue rows' inverse norms rq [K] computed in row chunks of QUEUE_CHUNK (never a normalized K x D copy of the
queue), and s[i, j] = (q̂_i · Q_j) rq[j] / τ. Checks (fastrepr._checks' policy) in the op as contrastive_stats':
NaN/Inf naming q or queue, the temperature, and (normalize=False) scores that could overflow.

Implementations (IMPLS): native (csrc/queue_lse.cpp: OpenMP over 128-row blocks, tiles of 256 queue columns
through a single-threaded sgemm of the BLAS torch loaded, MKL, or built-in loops without one or in float64) and
torch (the same algorithm in [ROW_CHUNK, COL_BLOCK] tiles of BLAS matmuls: any device, float64 too). No Triton one:
on CUDA the torch implementation runs. Memory: the outputs (lse [N], m [N, D]) plus one tile per thread (native)
or one [ROW_CHUNK, COL_BLOCK] score tile (torch, 8 MB in fp32).
"""
from __future__ import annotations

import torch

from .. import _backend, _native
from . import _search_plan
from ._precision import acc_dtype
from .contrastive import _check_values, _normalize, _normalize_backward, _scaled_rows

OP = "queue_lse"
# The torch implementation's tile: [ROW_CHUNK, COL_BLOCK] fp32 scores (8 MB) per step; the queue is read from memory
# N / ROW_CHUNK times. 2-core AMD EPYC, fp32, D = 128, N = 4096, K = 65536.
ROW_CHUNK = 512
COL_BLOCK = 4096
QUEUE_CHUNK = 8192  # rows of the queue per step of its inverse norms (a [QUEUE_CHUNK, D] temporary)


def queue_inverse_norms(queue: torch.Tensor, normalize: bool) -> torch.Tensor:
    """rq [K] in the accumulation dtype: 1 / ||Q_j|| (1e12 for a zero row, as _normalize), or ones without
    normalize; in chunks of QUEUE_CHUNK rows."""
    acc = acc_dtype(queue.dtype)
    if not normalize:
        return torch.ones(queue.shape[0], dtype=acc, device=queue.device)
    out = torch.empty(queue.shape[0], dtype=acc, device=queue.device)
    for c0 in range(0, queue.shape[0], QUEUE_CHUNK):
        _, m, un = _scaled_rows(queue[c0:c0 + QUEUE_CHUNK])
        out[c0:c0 + QUEUE_CHUNK] = torch.where(un > 0, 1.0 / (m * un), torch.full_like(un, 1e12))
    return out


def queue_lse_torch(qh: torch.Tensor, queue: torch.Tensor, rq: torch.Tensor, temperature: torch.Tensor):
    """(lse [N], m [N, D]) in the accumulation dtype, from the unit rows qh (accumulation dtype), the queue in its
    own dtype and its inverse norms rq [K]: plain torch in [ROW_CHUNK, COL_BLOCK] tiles with an online max."""
    acc = qh.dtype
    inv_t = (1.0 / temperature).to(acc)
    N, K = qh.shape[0], queue.shape[0]
    lse, wmean = torch.empty(N, dtype=acc, device=qh.device), torch.empty_like(qh)
    for r0 in range(0, N, ROW_CHUNK):
        a = qh[r0:r0 + ROW_CHUNK]
        m = torch.full((a.shape[0], 1), float("-inf"), dtype=acc, device=qh.device)
        l = torch.zeros_like(m)
        w = torch.zeros_like(a)
        for c0 in range(0, K, COL_BLOCK):
            b, rb = queue[c0:c0 + COL_BLOCK].to(acc), rq[c0:c0 + COL_BLOCK]
            s = (a @ b.t()).mul_(rb * inv_t)
            m_new = torch.maximum(m, s.amax(1, keepdim=True))
            f = (m - m_new).exp_()
            p = s.sub_(m_new).exp_()
            l = l * f + p.sum(1, keepdim=True)
            w = w.mul_(f).addmm_(p.mul_(rb), b)
            m = m_new
        lse[r0:r0 + ROW_CHUNK] = (m + l.log()).squeeze(1)
        wmean[r0:r0 + ROW_CHUNK] = w / l
    return lse, wmean


def queue_lse_native(qh: torch.Tensor, queue: torch.Tensor, rq: torch.Tensor, temperature: torch.Tensor):
    """The C++ kernel (CPU tensors; arguments and results as queue_lse_torch). float32 and 16-bit queues run
    their products through BLAS sgemm (16-bit tiles converted to float32 first); float64 through loops."""
    C = _native.get()
    lse, wmean = torch.empty(qh.shape[0], dtype=qh.dtype), torch.empty_like(qh)
    blas = _search_plan.sgemm_handle() if qh.dtype == torch.float32 else 0
    C.queue_lse(_native.as_buffer(qh), _native.as_buffer(queue), _native.as_buffer(rq), 1.0 / float(temperature),
                lse.numpy(), wmean.numpy(), _native.dtype_name(queue.dtype), blas, torch.get_num_threads())
    return lse, wmean


IMPLS = _backend.declare(OP, _backend.Impls(native=queue_lse_native, torch=queue_lse_torch))


def _check_args(q: torch.Tensor, queue: torch.Tensor, temperature: torch.Tensor) -> None:
    """Shapes, dtypes and devices (ValueError / TypeError naming the argument)."""
    for name, x in (("q", q), ("queue", queue)):
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        if x.dim() != 2 or x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"{name} must have shape [rows > 0, D > 0], got {tuple(x.shape)}")
    if queue.shape[1] != q.shape[1]:
        raise ValueError(f"queue must have D={q.shape[1]} features like q, got {tuple(queue.shape)}")
    if queue.dtype != q.dtype:
        raise TypeError(f"queue must have q's dtype {q.dtype}, got {queue.dtype}")
    if queue.device != q.device:
        raise ValueError(f"queue must be on q's device {q.device}, got {queue.device}")
    if temperature.dim() != 0 or not temperature.is_floating_point():
        raise ValueError(f"temperature must be a 0-dim floating-point tensor, got {tuple(temperature.shape)} "
                         f"{temperature.dtype}")


@torch.library.custom_op("fastrepr::queue_lse", mutates_args=())
def queue_lse(q: torch.Tensor, queue: torch.Tensor, temperature: torch.Tensor,
              normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(lse [N], m [N, D]) of q [N, D] against the queue [K, D] (module doc), in float32 (float64 for float64
    input); temperature: 0-dim tensor. Differentiable in q and temperature, never in the queue (m is not
    differentiable). Memory O(N·D) plus a tile: never the N x K scores or a normalized copy of the queue."""
    _check_args(q, queue, temperature)
    temperature = _check_values(q, queue, temperature.to(acc_dtype(q.dtype)), normalize, False, "q|queue")
    acc = acc_dtype(q.dtype)
    qh = _normalize(q.to(acc))[0] if normalize else q.to(acc)
    rq = queue_inverse_norms(queue, normalize)
    return _backend.dispatch(OP, IMPLS, qh.contiguous(), queue.detach().contiguous(), rq, temperature)


@queue_lse.register_fake
def _(q, queue, temperature, normalize=True):
    acc = acc_dtype(q.dtype)
    return q.new_empty(q.shape[0], dtype=acc), q.new_empty(q.shape, dtype=acc)


def _setup_context(ctx, inputs, output):
    q, _queue, temperature, normalize = inputs
    ctx.normalize = normalize
    ctx.save_for_backward(q, temperature, output[1])
    ctx.mark_non_differentiable(output[1])


def _backward(ctx, g_lse, _g_wmean):
    """The module doc's O(N·D) gradients: dq̂ = g m / τ, dτ = -sum_i g_i (q̂_i · m_i) / τ²."""
    q, temperature, wmean = ctx.saved_tensors
    acc = wmean.dtype
    t = temperature.to(acc)
    if ctx.normalize:
        qh, rnorm = _normalize(q.to(acc))
    else:
        qh, rnorm = q.to(acc), None
    g = g_lse.to(acc)
    dq = dt = None
    if ctx.needs_input_grad[0]:
        dqh = wmean * (g / t)[:, None]
        dq = (_normalize_backward(dqh, qh, rnorm) if rnorm is not None else dqh).to(q.dtype)
    if ctx.needs_input_grad[2]:
        dt = (-(g * (qh * wmean).sum(1)).sum() / (t * t)).to(temperature.dtype)
    return dq, None, dt, None


queue_lse.register_autograd(_backward, setup_context=_setup_context)
