"""fastrepr.cached_backward / GradCache: the parameter gradients of the full-batch backward, at the memory of
one chunk (Gao et al. 2021)."""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

import fastrepr
from fastrepr.bench import peak_memory
from utils import assert_close

F64 = torch.float64


def _mlp(d_in=7, hidden=13, d_out=5, dropout=0.0, seed=0, dtype=F64):
    torch.manual_seed(seed)
    layers = [nn.Linear(d_in, hidden), nn.Tanh()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers += [nn.Linear(hidden, d_out)]
    return nn.Sequential(*layers).to(dtype)


def _grads(*modules):
    return [p.grad.clone() for m in modules for p in m.parameters()]


def _zero(*modules):
    for m in modules:
        for p in m.parameters():
            p.grad = None


def _full_backward(encoders, inputs, loss_fn, chunk_size=None):
    """The plain backward: every input encoded with grad in one call, or (chunk_size) as consecutive chunks
    with grad concatenated, which draws dropout masks in the order cached_backward does."""
    def enc(e, x):
        if chunk_size is None:
            return e(x)
        return torch.cat([e(x[s:s + chunk_size]) for s in range(0, x.shape[0], chunk_size)])
    loss = loss_fn(*(enc(e, x) for e, x in zip(encoders, inputs)))
    loss.backward()
    return loss.detach()


LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 0, 3, 3, 1, 2])  # 11 rows: chunks of 4 leave a chunk of 3


def _plain_loss(a, b):  # any differentiable callable, not a fastrepr op
    return (a.tanh() * b).sum() / a.shape[0] + a.pow(2).mean().sqrt()


CASES = {
    # name: (two towers?, loss over the embeddings)
    "nt_xent": (False, lambda a, b: fastrepr.nt_xent(a, b, 0.2)),
    "info_nce": (True, lambda q, k: fastrepr.info_nce(q, k, 0.1)),
    "sup_con": (None, lambda z: fastrepr.sup_con(z, LABELS, 0.3)),
    "callable": (True, _plain_loss),
}


def _setup(case, dropout=0.0):
    towers, loss_fn = CASES[case]
    torch.manual_seed(1)
    if towers is None:  # one input
        encs = [_mlp(dropout=dropout, seed=2)]
        inputs = [torch.randn(11, 7, dtype=F64)]
    elif towers:  # query and key encoders
        encs = [_mlp(dropout=dropout, seed=2), _mlp(dropout=dropout, seed=3)]
        inputs = [torch.randn(11, 7, dtype=F64), torch.randn(11, 7, dtype=F64)]
    else:  # two views through one shared encoder
        enc = _mlp(dropout=dropout, seed=2)
        encs = [enc, enc]
        inputs = [torch.randn(11, 7, dtype=F64), torch.randn(11, 7, dtype=F64)]
    return encs, inputs, loss_fn


def _call(encs, inputs, loss_fn, chunk):
    if len(inputs) == 1:
        return fastrepr.cached_backward(encs[0], inputs[0], loss_fn, chunk)
    shared = encs[0] is encs[1]
    return fastrepr.cached_backward(encs[0] if shared else encs, inputs, loss_fn, chunk)


def _unique(encs):
    return list({id(e): e for e in encs}.values())


@pytest.mark.parametrize("chunk", [1, 4, 11, 64])
@pytest.mark.parametrize("case", sorted(CASES))
def test_same_gradients_as_the_full_batch(case, chunk):
    encs, inputs, loss_fn = _setup(case)
    mods = _unique(encs)
    expected_loss = _full_backward(encs, inputs, loss_fn)
    expected = _grads(*mods)
    _zero(*mods)
    loss = _call(encs, inputs, loss_fn, chunk)
    assert_close(loss, expected_loss, what=f"{case} loss")
    for g, e in zip(_grads(*mods), expected):
        assert_close(g, e, grad=True, what=f"{case} grad")


@pytest.mark.parametrize("case", sorted(CASES))
def test_dropout_masks_are_replayed(case):
    encs, inputs, loss_fn = _setup(case, dropout=0.5)
    mods = _unique(encs)
    torch.manual_seed(7)
    expected_loss = _full_backward(encs, inputs, loss_fn, chunk_size=4)
    expected = _grads(*mods)
    after_full = torch.get_rng_state()
    _zero(*mods)
    torch.manual_seed(7)
    loss = _call(encs, inputs, loss_fn, 4)
    assert torch.equal(torch.get_rng_state(), after_full)  # the generator ends where one pass leaves it
    assert_close(loss, expected_loss, what=f"{case} loss")
    for g, e in zip(_grads(*mods), expected):
        assert_close(g, e, grad=True, what=f"{case} grad")
    # the replay matters: another seed draws other masks and other gradients
    _zero(*mods)
    torch.manual_seed(8)
    _call(encs, inputs, loss_fn, 4)
    assert any(not torch.allclose(g, e) for g, e in zip(_grads(*mods), expected))


def test_learnable_loss_parameters_and_gradcache_object():
    encs, inputs, _ = _setup("info_nce")
    crit = fastrepr.InfoNCELoss(0.1, learnable=True).to(F64)
    _full_backward(encs, inputs, crit)
    expected = _grads(*encs, crit)
    _zero(*encs, crit)
    gc = fastrepr.GradCache(encs, crit, chunk_size=3)
    gc(*inputs)
    for g, e in zip(_grads(*encs, crit), expected):
        assert_close(g, e, grad=True, what="InfoNCELoss(learnable) grad")


def test_mapping_inputs_and_no_sync():
    class KwEncoder(nn.Module):  # a Hugging Face-style encoder(**batch) with a DDP-style no_sync
        def __init__(self):
            super().__init__()
            self.net = _mlp()
            self.synced = []

        def forward(self, x, scale):
            return self.net(x) * scale

        @contextlib.contextmanager
        def no_sync(self):
            self.synced.append(False)
            yield

    enc = KwEncoder()
    torch.manual_seed(4)
    batch = {"x": torch.randn(10, 7, dtype=F64), "scale": torch.rand(10, 1, dtype=F64) + 0.5}
    loss_fn = lambda z: fastrepr.sup_con(z, LABELS[:10], 0.3)  # noqa: E731
    loss_fn(enc(**batch)).backward()
    expected = _grads(enc)
    _zero(enc)
    fastrepr.cached_backward(enc, batch, loss_fn, 4)
    for g, e in zip(_grads(enc), expected):
        assert_close(g, e, grad=True, what="mapping input grad")
    assert enc.synced == [False, False]  # 3 chunks: the last backward is the one that all-reduces


def test_bad_input():
    enc = _mlp()
    x = torch.randn(6, 7, dtype=F64)
    loss = lambda a, b: fastrepr.nt_xent(a, b)  # noqa: E731
    for bad in (0, -3):
        with pytest.raises(ValueError, match="chunk_size"):
            fastrepr.cached_backward(enc, (x, x), loss, bad)
    with pytest.raises(TypeError, match="chunk_size"):
        fastrepr.cached_backward(enc, (x, x), loss, 2.5)
    with pytest.raises(ValueError, match="same batch size"):
        fastrepr.cached_backward(enc, (x, x[:5]), loss, 2)
    with pytest.raises(ValueError, match="same batch size"):
        fastrepr.cached_backward(lambda a, b: enc(a), {"a": x, "b": x[:4]}, lambda z: z.sum(), 2)
    with pytest.raises(ValueError, match="2 encoders for 3 inputs"):
        fastrepr.cached_backward([enc, enc], (x, x, x), loss, 2)
    with pytest.raises(ValueError, match="empty"):
        fastrepr.cached_backward(enc, (x[:0], x[:0]), loss, 2)
    with pytest.raises(TypeError, match="inputs"):
        fastrepr.cached_backward(enc, [x, "text"], loss, 2)
    with pytest.raises(TypeError, match="must return a tensor"):
        fastrepr.cached_backward(lambda t: (t,), x, lambda z: z.sum(), 2)
    with pytest.raises(ValueError, match="batch dimension first"):
        fastrepr.cached_backward(lambda t: enc(t).T, x, lambda z: z.sum(), 2)
    with pytest.raises(ValueError, match="scalar"):
        fastrepr.cached_backward(enc, x, lambda z: z, 2)
    with pytest.raises(ValueError, match="chunk_size"):
        fastrepr.GradCache(enc, loss, 0)


def test_peak_memory_is_that_of_a_chunk():
    """Activations dominate (2048 rows widened to 1024 features through 4 saved tanh layers; few FLOPs, so the
    test is fast): the cached step keeps the activations of one chunk only. Both sides also hold what the
    loss itself needs (~11 MB RSS for the native nt_xent's forward + backward at 2N=2048, measured)."""
    torch.manual_seed(0)
    enc = nn.Sequential(nn.Linear(32, 1024), nn.Tanh(), nn.Tanh(), nn.Tanh(), nn.Tanh(), nn.Linear(1024, 16))
    x1, x2 = torch.randn(2048, 32), torch.randn(2048, 32)
    loss = lambda a, b: fastrepr.nt_xent(a, b, 0.1)  # noqa: E731

    def full():
        _zero(enc)
        loss(enc(x1), enc(x2)).backward()

    def cached():
        _zero(enc)
        fastrepr.cached_backward(enc, (x1, x2), loss, 64)

    full(), cached()  # warm up thread pools and grad buffers
    peak_full = peak_memory(full, torch.device("cpu"))
    peak_cached = peak_memory(cached, torch.device("cpu"))
    # saved activations of the full step: 2 views x 2048 rows x (1 linear + 4 tanh outputs) x 1024 x 4 B = 80 MB
    # (at 1024 rows, 40 MB, the loss's own ~11-20 MB of RSS noise put the ratio near 0.5 on a loaded machine);
    # of one chunk of 64 rows: 1.3 MB (the parameters' grads, 0.2 MB, in both)
    assert peak_cached < 0.5 * peak_full, (peak_cached / 2**20, peak_full / 2**20)
