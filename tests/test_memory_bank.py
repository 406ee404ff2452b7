"""info_nce(queue=) (MoCo) and NTXentLoss(memory_bank_size=) (lightly's memory bank): the float64 oracle on
every implementation, no gradient into the queue, the FIFO update after the loss, bad input, and lightly's
NTXentLoss over a sequence of batches when lightly is importable."""
import pytest
import torch

import fastrepr
from fastrepr import reference
from fastrepr.ops import queue_lse as ops
from test_dcl import _grads, _lightly_module
from utils import assert_close, impl_params

IMPLS = pytest.mark.parametrize("backend", impl_params(ops.IMPLS), indirect=True)


@IMPLS
@pytest.mark.parametrize("n, k, d", [(2, 1, 3), (7, 19, 16), (33, 50, 70)])
def test_info_nce_queue_matches_float64(backend, n, k, d):
    dev = backend.device
    q, key, queue = torch.randn(n, d, device=dev), torch.randn(n, d, device=dev), torch.randn(k, d, device=dev)
    t = torch.tensor(0.1, device=dev)
    queue_leaf = queue.clone().requires_grad_(True)
    loss, grads = _grads(lambda a, b, c: fastrepr.info_nce(a, b, c, symmetric=False, queue=queue_leaf), (q, key, t))
    ref, ref_grads = _grads(lambda a, b, c: reference.info_nce_queue(a, b, queue.double(), c),
                            (q.double(), key.double(), t.double()))
    assert_close(loss, ref, torch.float32, what="loss")
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, torch.float32, grad=True, what="gradient")
    assert queue_leaf.grad is None  # the queue never receives a gradient


def test_info_nce_queue_gradcheck_float64():
    q, key = (torch.randn(4, 6, dtype=torch.float64, requires_grad=True) for _ in range(2))
    queue = torch.randn(9, 6, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a, b: fastrepr.info_nce(a, b, 0.3, symmetric=False, queue=queue), (q, key))


@pytest.mark.parametrize("kwargs, match", [
    (dict(queue=torch.randn(5, 4)), "symmetric=False"),
    (dict(symmetric=False, queue=torch.randn(5, 3)), "D=4"),
    (dict(symmetric=False, queue=torch.randn(0, 4)), "queue"),
    (dict(symmetric=False, queue=torch.full((5, 4), float("nan"))), "queue contains NaN"),
])
def test_info_nce_queue_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fastrepr.info_nce(torch.randn(3, 4), torch.randn(3, 4), **kwargs)
    with pytest.raises(TypeError, match="queue"):
        fastrepr.info_nce(torch.randn(3, 4), torch.randn(3, 4), symmetric=False, queue=torch.ones(5, 4, dtype=torch.long))


def _bank_oracle(batches, bank, temperature):
    """lightly's memory-bank NTXentLoss semantics, written out: negatives = the bank before the step, then out1
    normalized is enqueued FIFO (the rows past the end dropped, the pointer back to 0)."""
    bank, ptr, out = bank.clone(), 0, []
    for out0, out1 in batches:
        out.append(reference.info_nce_queue(out0.double(), out1.double(), bank.double(), temperature))
        b = torch.nn.functional.normalize(out1, dim=1)
        take = min(b.shape[0], bank.shape[0] - ptr)
        bank[ptr:ptr + take] = b[:take]
        ptr = 0 if ptr + b.shape[0] >= bank.shape[0] else ptr + take
    return out, bank


@pytest.mark.parametrize("size", [(10, 8), 10])
def test_memory_bank_sequence(size):
    torch.manual_seed(3)
    loss_fn = fastrepr.NTXentLoss(0.3, memory_bank_size=size)
    batches = [(torch.randn(4, 8, requires_grad=True), torch.randn(4, 8)) for _ in range(4)]  # wraps at step 3
    torch.manual_seed(5)
    ours = [loss_fn(a, b) for a, b in batches]
    if size == 10:  # lightly < 1.5: drawn at the first call as randn(D, K) normalized over D
        torch.manual_seed(5)
        bank0 = torch.nn.functional.normalize(torch.randn(8, 10), dim=0).t()
    else:
        torch.manual_seed(3)
        bank0 = torch.nn.functional.normalize(torch.randn(10, 8), dim=-1)
    expected, bank = _bank_oracle(batches, bank0, 0.3)
    for a, e in zip(ours, expected):
        assert_close(a, e, torch.float32, what="loss")
    assert_close(loss_fn.bank, bank, torch.float32, what="bank")
    assert loss_fn.bank_ptr == 4  # 4, 8, then 2 of 4 rows fill the bank (the rest dropped) -> 0, then 4
    ours[0].backward()  # the backward needs no bank (queue_lse saved its weighted mean), the ring moved on


def test_memory_bank_ring_written_in_place():
    """The enqueue writes the batch's rows at the pointer in the bank's own storage: no K x D copy per step."""
    loss_fn = fastrepr.NTXentLoss(0.5, memory_bank_size=(7, 3))
    storage = loss_fn.bank.data_ptr()
    for _ in range(3):
        out1 = torch.randn(3, 3)
        loss_fn(torch.randn(3, 3, requires_grad=True), out1).backward()
    assert loss_fn.bank.data_ptr() == storage and loss_fn.bank_ptr == 0  # 3, 6, then 1 of 3 rows -> 0
    assert_close(loss_fn.bank[6], torch.nn.functional.normalize(out1, dim=1)[0], torch.float32)


def test_memory_bank_not_updated_without_grad():
    loss_fn = fastrepr.NTXentLoss(0.5, memory_bank_size=(6, 3))
    before = loss_fn.bank.clone()
    loss_fn(torch.randn(2, 3), torch.randn(2, 3))
    assert torch.equal(loss_fn.bank, before) and loss_fn.bank_ptr == 0


@pytest.mark.parametrize("size", [-1, (4,), (4, 0), (4, 3, 2), 2.5, True])
def test_memory_bank_bad_size(size):
    with pytest.raises(ValueError, match="memory_bank_size"):
        fastrepr.NTXentLoss(memory_bank_size=size)


def test_memory_bank_matches_lightly():
    lightly = _lightly_module("loss/ntx_ent_loss.py")
    torch.manual_seed(0)
    theirs = lightly.NTXentLoss(0.2, memory_bank_size=(13, 16))
    torch.manual_seed(0)
    ours = fastrepr.NTXentLoss(0.2, memory_bank_size=(13, 16))
    for step in range(5):
        out0, out1 = torch.randn(6, 16), torch.randn(6, 16)
        a, ga = _grads(ours, (out0, out1))
        b, gb = _grads(theirs, (out0, out1))
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=f"step {step}")
        for g, r in zip(ga, gb):
            torch.testing.assert_close(g, r, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(ours.bank, theirs.memory_bank.bank, rtol=1e-6, atol=1e-6)


@IMPLS
def test_info_nce_queue_blocks(backend, monkeypatch):
    """A queue longer than one tile is streamed in tiles combined by an online log-sum-exp (torch: small tiles
    forced; native: past its 128-row block and 256-column tile): same value and gradients."""
    monkeypatch.setattr(ops, "ROW_CHUNK", 2)
    monkeypatch.setattr(ops, "COL_BLOCK", 4)
    dev = backend.device
    q, key, queue = torch.randn(130, 16, device=dev), torch.randn(130, 16, device=dev), torch.randn(300, 16, device=dev)
    loss, grads = _grads(lambda a, b: fastrepr.info_nce(a, b, 0.2, symmetric=False, queue=queue), (q, key))
    ref, ref_grads = _grads(lambda a, b: reference.info_nce_queue(a, b, queue.double(), 0.2), (q.double(), key.double()))
    assert_close(loss, ref, torch.float32, what="loss")
    for g, r in zip(grads, ref_grads):
        assert_close(g, r, torch.float32, grad=True, what="gradient")


@IMPLS
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_info_nce_queue_half_precision(backend, dtype):
    dev = backend.device
    q, key, queue = (torch.randn(n, 32, device=dev).to(dtype) for n in (6, 6, 21))
    loss = fastrepr.info_nce(q, key, 0.2, symmetric=False, queue=queue)
    ref = reference.info_nce_queue(q.double(), key.double(), queue.double(), 0.2)
    assert loss.dtype == torch.float32
    assert_close(loss, ref, dtype, what="loss")
