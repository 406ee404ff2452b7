"""Negative-sampling (skip-gram, CBOW) and hierarchical-softmax losses on every implementation each op declares
(its IMPLS) against the float64 oracle: losses, dense and sparse gradients, gradcheck, opcheck, torch.compile,
fused steps, modules, bad input; the dispatch table and the record of what ran."""
import numpy as np
import pytest
import torch

import fastrepr
from fastrepr import _backend, bench, reference
from fastrepr.ops import hierarchical_softmax as hs_ops
from fastrepr.ops import negative_sampling as ns_ops
from fastrepr.text.huffman import build_huffman
from utils import Backend, assert_close, impl_device, impl_params, use_impl
from utils import use_impl as use_backend

# (V, D, B, K, C): odd sizes, K = 0, one example, D past one power of two
NS_SHAPES = [(13, 7, 5, 3, 4), (50, 32, 16, 5, 6), (9, 5, 1, 0, 1), (40, 33, 9, 2, 3)]
HS_SHAPES = [(13, 7, 5), (50, 32, 16), (2, 3, 1), (40, 33, 9)]  # V, D, B


def _ns_inputs(V, D, B, K, C, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    w_in = (torch.randn(V, D, generator=g) * 0.5).to(dtype).to(device)
    w_out = (torch.randn(V + 2, D, generator=g) * 0.5).to(dtype).to(device)
    inputs = torch.randint(0, V, (B, C), generator=g).to(device)
    targets = torch.randint(0, V + 2, (B,), generator=g).to(device)
    negatives = torch.randint(0, V + 2, (B, K), generator=g).to(device)
    mask = torch.rand(B, C, generator=g) < 0.6
    mask[:, 0] = True
    return w_in, w_out, inputs, targets, negatives, mask.to(device)


def _hs_inputs(V, D, B, dtype, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.randint(1, 1000, (V,), generator=g).numpy()
    tree = build_huffman(counts)
    h = (torch.randn(B, D, generator=g) * 0.5).to(dtype).to(device)
    w_nodes = (torch.randn(max(V - 1, 1), D, generator=g) * 0.5).to(dtype).to(device)
    targets = torch.randint(0, V, (B,), generator=g).to(device)
    return h, w_nodes, targets, tree


def _cpu64(*ts):
    return [t.detach().cpu().double() if t.is_floating_point() else t.cpu() for t in ts]


def _impl_fixture(impls):
    """A fixture over the implementations ``impls`` declares: the forced one, with where its tensors live."""
    @pytest.fixture(params=impl_params(impls))
    def fixture(request, monkeypatch):
        name = use_impl(request.param, monkeypatch)
        return Backend(name, impl_device(name))
    return fixture


ns = _impl_fixture(ns_ops.IMPLS)
hs = _impl_fixture(hs_ops.IMPLS)
ns_step = _impl_fixture(ns_ops.STEP_IMPLS)
hs_step = _impl_fixture(hs_ops.STEP_IMPLS)


# ------------------------------------------------------------------------------------------- forward

@pytest.mark.parametrize("shape", NS_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sgns_matches_reference(ns, shape, dtype):
    V, D, B, K, _ = shape
    w_in, w_out, inputs, targets, negatives, _ = _ns_inputs(V, D, B, K, 1, dtype, ns.device)
    centers = inputs[:, 0]
    loss = fastrepr.sgns_loss(w_in, w_out, centers, targets, negatives, reduction="none")
    assert loss.shape == (B,) and loss.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    ref = reference.negative_sampling(*_cpu64(w_in, w_out, inputs, targets, negatives))
    assert_close(loss, ref, dtype)
    mean = fastrepr.sgns_loss(w_in, w_out, centers, targets, negatives)
    total = fastrepr.sgns_loss(w_in, w_out, centers, targets, negatives, reduction="sum")
    assert_close(mean, ref.mean(), dtype)
    assert_close(total, ref.sum(), dtype)


@pytest.mark.parametrize("shape", NS_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cbow_matches_reference(ns, shape, dtype):
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(*shape, dtype, ns.device)
    loss = fastrepr.cbow_ns_loss(w_in, w_out, inputs, targets, negatives, mask, reduction="none")
    ref = reference.negative_sampling(*_cpu64(w_in, w_out, inputs, targets, negatives, mask))
    assert_close(loss, ref, dtype)
    # no mask = every context used = the plain mean
    loss = fastrepr.cbow_ns_loss(w_in, w_out, inputs, targets, negatives, reduction="none")
    ref = reference.negative_sampling(*_cpu64(w_in, w_out, inputs, targets, negatives))
    assert_close(loss, ref, dtype)


def test_cbow_with_one_context_is_sgns(ns):
    w_in, w_out, inputs, targets, negatives, _ = _ns_inputs(20, 8, 6, 4, 1, torch.float64, ns.device)
    torch.testing.assert_close(fastrepr.cbow_ns_loss(w_in, w_out, inputs, targets, negatives),
                               fastrepr.sgns_loss(w_in, w_out, inputs[:, 0], targets, negatives))


@pytest.mark.parametrize("shape", HS_SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hierarchical_softmax_matches_reference(hs, shape, dtype):
    h, w_nodes, targets, tree = _hs_inputs(*shape, dtype, hs.device)
    loss = fastrepr.hierarchical_softmax_loss(h, w_nodes, targets, tree, reduction="none")
    p, c, n = tree.tensors("cpu")
    ref = reference.hierarchical_softmax(*_cpu64(h, w_nodes, targets), p, c, n)
    assert_close(loss, ref, dtype)
    # the tuple form of the tree gives the same
    loss2 = fastrepr.hierarchical_softmax_loss(h, w_nodes, targets, tuple(t.to(hs.device) for t in (p, c, n)),
                                               reduction="none")
    torch.testing.assert_close(loss2, loss)


def test_hierarchical_softmax_is_a_normalized_distribution():
    """sum over all words of P(w | h) = 1 for any h: the tree defines a proper softmax replacement."""
    V, D = 23, 6
    h, w_nodes, _, tree = _hs_inputs(V, D, 3, torch.float64, "cpu")
    for b in range(3):
        logp = -fastrepr.hierarchical_softmax_loss(h[b].expand(V, D), w_nodes, torch.arange(V), tree, reduction="none")
        assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-12)


# ------------------------------------------------------------------------------------------- gradients

def _ns_grads(fn, w_in, w_out, weight, sparse):
    a, b = w_in.clone().requires_grad_(), w_out.clone().requires_grad_()
    (fn(a, b, sparse) * weight).sum().backward()
    ga, gb = a.grad, b.grad
    if sparse:
        assert ga.is_sparse and gb.is_sparse
        ga, gb = ga.to_dense(), gb.to_dense()
    return ga.cpu().double(), gb.cpu().double()


@pytest.mark.parametrize("mode", ["sg", "cbow"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", [(13, 7, 5, 3, 4), (30, 17, 12, 5, 3)])
def test_negative_sampling_gradients_match_reference(ns, mode, sparse, shape):
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(*shape, torch.float32, ns.device)
    B = inputs.shape[0]
    weight = torch.rand(B, device=ns.device)
    if mode == "sg":
        fn = lambda a, b, s: fastrepr.sgns_loss(a, b, inputs[:, 0], targets, negatives, reduction="none", sparse=s)  # noqa: E731
        ref_args = (inputs[:, :1], targets, negatives, None)
    else:
        fn = lambda a, b, s: fastrepr.cbow_ns_loss(a, b, inputs, targets, negatives, mask, reduction="none", sparse=s)  # noqa: E731
        ref_args = (inputs, targets, negatives, mask)
    ga, gb = _ns_grads(fn, w_in, w_out, weight, sparse)
    a, b = (t.detach().cpu().double().requires_grad_() for t in (w_in, w_out))
    ref_args = [None if t is None else t.cpu() for t in ref_args]
    (reference.negative_sampling(a, b, *ref_args) * weight.cpu().double()).sum().backward()
    assert_close(ga, a.grad, torch.float32, grad=True, what="d w_in")
    assert_close(gb, b.grad, torch.float32, grad=True, what="d w_out")


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("shape", [(13, 7, 5), (40, 33, 9)])
def test_hierarchical_softmax_gradients_match_reference(hs, sparse, shape):
    h, w_nodes, targets, tree = _hs_inputs(*shape, torch.float32, hs.device)
    weight = torch.rand(h.shape[0], device=hs.device)
    hh, ww = h.clone().requires_grad_(), w_nodes.clone().requires_grad_()
    (fastrepr.hierarchical_softmax_loss(hh, ww, targets, tree, reduction="none", sparse=sparse) * weight).sum().backward()
    assert ww.grad.is_sparse == sparse and not hh.grad.is_sparse
    gw = ww.grad.to_dense() if sparse else ww.grad
    rh, rw = (t.detach().cpu().double().requires_grad_() for t in (h, w_nodes))
    (reference.hierarchical_softmax(rh, rw, targets.cpu(), *tree.tensors("cpu")) * weight.cpu().double()).sum().backward()
    assert_close(hh.grad, rh.grad, grad=True, what="d h")
    assert_close(gw, rw.grad, grad=True, what="d w_nodes")


@pytest.mark.parametrize("name", ["torch", "native"])
def test_gradcheck_float64(name, monkeypatch):

    use_backend(name, monkeypatch)
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(9, 4, 5, 3, 3, torch.float64, "cpu")
    w_in.requires_grad_()
    w_out.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: fastrepr.sgns_loss(a, b, inputs[:, 0], targets, negatives, reduction="none"), (w_in, w_out))
    assert torch.autograd.gradcheck(
        lambda a, b: fastrepr.cbow_ns_loss(a, b, inputs, targets, negatives, mask, reduction="none"), (w_in, w_out))
    h, w_nodes, t, tree = _hs_inputs(11, 4, 6, torch.float64, "cpu")
    h.requires_grad_()
    w_nodes.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda a, b: fastrepr.hierarchical_softmax_loss(a, b, t, tree, reduction="none"), (h, w_nodes))


def test_sparse_gradient_works_with_sparse_optimizers():
    V, D = 1000, 16
    w_in, w_out, inputs, targets, negatives, _ = _ns_inputs(V, D, 64, 5, 1, torch.float32, "cpu")
    a, b = torch.nn.Parameter(w_in.clone()), torch.nn.Parameter(w_out.clone())
    opt = torch.optim.SparseAdam([a, b], lr=0.01)
    fastrepr.sgns_loss(a, b, inputs[:, 0], targets, negatives, sparse=True).backward()
    opt.step()
    touched = torch.zeros(V, dtype=torch.bool)
    touched[inputs[:, 0]] = True
    assert torch.equal((a.detach() != w_in).any(1), touched)  # only the touched rows moved


def test_native_dense_backward_independent_of_threads(monkeypatch):

    use_backend("native", monkeypatch)
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(30, 20, 500, 5, 4, torch.float32, "cpu")
    g = torch.rand(500)
    threads = torch.get_num_threads()

    def grads():
        return ns_ops.negative_sampling_backward(g, w_in, w_out, inputs, targets, negatives, mask, False)

    try:
        torch.set_num_threads(1)
        one = grads()
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(x, y) for x, y in zip(one, grads()))


def test_opcheck_negative_sampling(ns):
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(13, 7, 5, 3, 4, torch.float32, ns.device)
    torch.library.opcheck(ns_ops.negative_sampling, (w_in.requires_grad_(), w_out, inputs, targets, negatives, mask, False))


def test_opcheck_hierarchical_softmax(hs):
    h, w_nodes, t, tree = _hs_inputs(13, 7, 5, torch.float32, hs.device)
    torch.library.opcheck(hs_ops.hierarchical_softmax, (h.requires_grad_(), w_nodes, t, *tree.tensors(hs.device), False))


def test_torch_compile_fullgraph_negative_sampling(ns):
    torch._dynamo.reset()

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(w_in, w_out, centers, contexts, negatives):
        return fastrepr.sgns_loss(w_in, w_out, centers, contexts, negatives)

    w_in, w_out, inputs, targets, negatives, _ = _ns_inputs(13, 7, 5, 3, 1, torch.float32, ns.device)
    w_in.requires_grad_()
    out = f(w_in, w_out, inputs[:, 0], targets, negatives)
    out.backward()
    assert_close(out, reference.negative_sampling(*_cpu64(w_in, w_out, inputs, targets, negatives)).mean())
    assert torch.isfinite(w_in.grad).all()


def test_torch_compile_fullgraph_hierarchical_softmax(hs):
    torch._dynamo.reset()

    @torch.compile(fullgraph=True, backend="aot_eager")
    def f(h, w_nodes, targets, points, codes, lengths):
        return fastrepr.hierarchical_softmax_loss(h, w_nodes, targets, (points, codes, lengths))

    h, w_nodes, t, tree = _hs_inputs(13, 7, 5, torch.float32, hs.device)
    w_nodes.requires_grad_()
    out = f(h, w_nodes, t, *tree.tensors(hs.device))
    out.backward()
    assert_close(out, reference.hierarchical_softmax(*_cpu64(h, w_nodes, t), *tree.tensors("cpu")).mean())
    assert torch.isfinite(w_nodes.grad).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_error_within_twice_torch(ns, dtype):
    """16-bit tables: our loss error against float64 is at most 2x that of the plain-PyTorch expression in the
    same precision (which also computes its products in that precision)."""
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(40, 32, 64, 5, 4, dtype, ns.device)
    ref = reference.negative_sampling(*_cpu64(w_in, w_out, inputs, targets, negatives, mask))
    ours = fastrepr.cbow_ns_loss(w_in, w_out, inputs, targets, negatives, mask, reduction="none")
    m = mask.to(dtype).unsqueeze(-1)
    h = (w_in[inputs] * m).sum(1) / m.sum(1)
    s = torch.bmm(w_out[torch.cat([targets[:, None], negatives], 1)], h.unsqueeze(2)).squeeze(2)
    s = torch.cat([s[:, :1], -s[:, 1:]], 1)
    plain = -torch.nn.functional.logsigmoid(s).sum(1)
    err_ours = (ours.double().cpu() - ref).abs().max().item()
    err_torch = (plain.double().cpu() - ref).abs().max().item()
    assert err_ours <= 2 * err_torch + 1e-6, (err_ours, err_torch)


# ------------------------------------------------------------------------------------------- fused steps

def test_negative_sampling_step_is_one_sgd_step(ns_step):
    """With no row shared between examples, the fused step equals w - lr * grad of the summed loss."""
    V, D, B, K, C = 120, 9, 6, 3, 2
    g = torch.Generator().manual_seed(3)
    perm = torch.randperm(V, generator=g)
    inputs = perm[: B * C].view(B, C).to(ns_step.device)
    rows = perm[B * C: B * C + B * (K + 1)].view(B, K + 1).to(ns_step.device)
    targets, negatives = rows[:, 0].contiguous(), rows[:, 1:].contiguous()
    w_in = torch.randn(V, D, generator=g).to(ns_step.device)
    w_out = torch.randn(V, D, generator=g).to(ns_step.device)
    mask = torch.ones(B, C, dtype=torch.bool, device=ns_step.device)
    mask[0, 1] = False
    cpu = [t.cpu() for t in (inputs, targets, negatives, mask)]
    for mean_grad in (True, False):
        a, b = (t.cpu().double().requires_grad_() for t in (w_in, w_out))   # the float64 oracle's step
        loss_ref = reference.negative_sampling(a, b, *cpu)
        loss_ref.sum().backward()
        # word2vec's CBOW update (mean_grad=False) gives each context row n_b times its share of the gradient
        n_b = cpu[3].sum(1, keepdim=True).double().expand(-1, C).reshape(-1, 1)
        n_rows = torch.ones(V, 1, dtype=torch.float64).index_copy_(0, cpu[0].reshape(-1), n_b)
        gin = a.grad if mean_grad else a.grad * n_rows
        wi, wo = w_in.clone(), w_out.clone()
        loss = ns_ops.negative_sampling_step_(wi, wo, inputs, targets, negatives, mask, 0.1, mean_grad=mean_grad)
        assert_close(loss, loss_ref, what="loss before the step")
        assert_close(wo, b.detach() - 0.1 * b.grad, grad=True, what="w_out after the step")
        assert_close(wi, a.detach() - 0.1 * gin, grad=True, what="w_in after the step")


def test_hierarchical_softmax_step_is_one_sgd_step(hs_step):
    """Targets with disjoint paths cannot exist (all share the root), so compare against the minibatch step,
    which a single example makes exact."""
    h, w_nodes, targets, tree = _hs_inputs(30, 8, 1, torch.float32, hs_step.device)
    hh, ww = (t.cpu().double().requires_grad_() for t in (h, w_nodes))     # the float64 oracle's step
    ref = reference.hierarchical_softmax(hh, ww, targets.cpu(), *tree.tensors("cpu"))
    ref.sum().backward()
    w = w_nodes.clone()
    loss, delta_h = hs_ops.hierarchical_softmax_step_(h, w, targets, *tree.tensors(hs_step.device), lr=0.2)
    assert_close(loss, ref, what="loss before the step")
    assert_close(w, ww.detach() - 0.2 * ww.grad, grad=True, what="w_nodes after the step")
    assert_close(delta_h, -0.2 * hh.grad, grad=True, what="delta_h")


# ------------------------------------------------------------------------------------------- dispatch

W2V_OPS = {"negative_sampling": ns_ops.IMPLS, "negative_sampling_backward": ns_ops.BACKWARD_IMPLS,
           "negative_sampling_step": ns_ops.STEP_IMPLS, "hierarchical_softmax": hs_ops.IMPLS,
           "hierarchical_softmax_backward": hs_ops.BACKWARD_IMPLS, "hierarchical_softmax_step": hs_ops.STEP_IMPLS}


def test_table_lists_the_declared_implementations():
    """``fastrepr info --ops`` reads _backend.table(): every word2vec op with the three implementations its file
    declares, each bound to the function of the ladder's name (<op>_triton / _native / _torch)."""
    rows = {(op, name): ok for op, name, ok, _ in _backend.table()}
    for op, impls in W2V_OPS.items():
        assert _backend.OPS[op] is impls
        assert impls.names == ("triton", "native", "torch")
        for name in impls.names:
            assert (op, name) in rows
            assert getattr(impls, name).__name__ == f"{op}_{name}"
    assert rows[("negative_sampling", "torch")] is True


def test_custom_ops_carry_the_op_names():
    assert torch.ops.fastrepr.negative_sampling.default is ns_ops.negative_sampling._opoverload
    assert torch.ops.fastrepr.negative_sampling_backward.default is ns_ops.negative_sampling_backward._opoverload
    assert torch.ops.fastrepr.hierarchical_softmax.default is hs_ops.hierarchical_softmax._opoverload
    assert torch.ops.fastrepr.hierarchical_softmax_backward.default is hs_ops.hierarchical_softmax_backward._opoverload


@pytest.mark.parametrize("impl", impl_params(ns_ops.IMPLS))
def test_recording_names_the_implementation_that_ran(impl, monkeypatch):
    use_impl(impl, monkeypatch)
    device = impl_device(impl)
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(13, 7, 5, 3, 4, torch.float32, device)
    h, w_nodes, t, tree = _hs_inputs(13, 7, 5, torch.float32, device)
    with _backend.recording() as ran:
        fastrepr.cbow_ns_loss(w_in.requires_grad_(), w_out, inputs, targets, negatives, mask).backward()
        fastrepr.hierarchical_softmax_loss(h.requires_grad_(), w_nodes, t, tree).backward()
        ns_ops.negative_sampling_step_(w_in.detach().clone(), w_out.clone(), inputs, targets, negatives, mask, 0.1)
        hs_ops.hierarchical_softmax_step_(h.detach(), w_nodes.clone(), t, *tree.tensors(device), lr=0.1)
    assert ran == dict.fromkeys(W2V_OPS, impl)


def test_torch_entries_never_run_the_oracle(monkeypatch):
    """The torch implementations are the op files' closed forms; fastrepr.reference is only compared against."""
    use_impl("torch", monkeypatch)
    for name in ("negative_sampling", "hierarchical_softmax"):
        monkeypatch.setattr(reference, name, lambda *a, **k: pytest.fail("an op ran its oracle"))
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(13, 7, 5, 3, 4, torch.float32, "cpu")
    h, w_nodes, t, tree = _hs_inputs(13, 7, 5, torch.float32, "cpu")
    fastrepr.cbow_ns_loss(w_in.requires_grad_(), w_out, inputs, targets, negatives, mask).backward()
    fastrepr.hierarchical_softmax_loss(h.requires_grad_(), w_nodes, t, tree).backward()
    ns_ops.negative_sampling_step_(w_in.detach().clone(), w_out.clone(), inputs, targets, negatives, mask, 0.1)
    hs_ops.hierarchical_softmax_step_(h.detach(), w_nodes.clone(), t, *tree.tensors("cpu"), lr=0.1)


def test_automatic_choice_and_rejected_step(monkeypatch):
    """Unforced, CPU tensors take the native implementation; the native step takes float32/float64 contiguous
    tables only, so a bfloat16 step runs the torch entry, and forcing native on it is an error saying why."""
    monkeypatch.delenv(_backend.ENV, raising=False)
    if not _backend.available("native")[0]:
        use_impl("native", monkeypatch)  # fails where the build should exist, skips where it may not
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(13, 7, 5, 3, 4, torch.float32, "cpu")
    with _backend.recording() as ran:
        fastrepr.cbow_ns_loss(w_in, w_out, inputs, targets, negatives, mask)
        ns_ops.negative_sampling_step_(w_in.clone(), w_out.clone(), inputs, targets, negatives, mask, 0.1)
    assert ran == {"negative_sampling": "native", "negative_sampling_step": "native"}
    half = [w.bfloat16() for w in (w_in, w_out)]
    with _backend.recording() as ran:
        loss = ns_ops.negative_sampling_step_(*half, inputs, targets, negatives, mask, 0.1)
    assert ran == {"negative_sampling_step": "torch"} and torch.isfinite(loss).all()
    monkeypatch.setenv(_backend.ENV, "native")
    with pytest.raises(RuntimeError, match="native step takes contiguous float32/float64 tables, got torch.bfloat16"):
        ns_ops.negative_sampling_step_(*half, inputs, targets, negatives, mask, 0.1)


# ------------------------------------------------------------------------------------------- modules

def test_negative_sampling_module_learns_a_toy_task():
    """Words i and i + 1 (mod V) co-occur: after training, each word's true context outscores the others."""
    torch.manual_seed(0)
    V = 40
    counts = np.ones(V)
    for mode in ("sg", "cbow"):
        loss_fn = fastrepr.NegativeSamplingLoss(V, 16, negative=5, counts=counts, sparse=True)
        opt = torch.optim.SGD(loss_fn.parameters(), lr=10.0)
        first = None
        for _ in range(200):
            c = torch.randint(0, V, (256,))
            inputs = c if mode == "sg" else torch.stack([c, c], 1)
            loss = loss_fn(inputs, (c + 1) % V)
            first = loss.item() if first is None else first
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert loss.item() < 0.5 * first
        scores = loss_fn.w_in.detach() @ loss_fn.w_out.detach().T
        assert (scores.argmax(1) == (torch.arange(V) + 1) % V).float().mean() > 0.9


def test_hierarchical_softmax_module_learns_a_toy_task():
    torch.manual_seed(0)
    V, D = 30, 16
    counts = np.random.default_rng(0).integers(1, 100, V)
    loss_fn = fastrepr.HierarchicalSoftmaxLoss(counts, D)
    emb = torch.nn.Embedding(V, D)
    opt = torch.optim.SGD(list(loss_fn.parameters()) + list(emb.parameters()), lr=0.5)
    for _ in range(300):
        c = torch.randint(0, V, (256,))
        loss = loss_fn(emb(c), (c + 1) % V)
        opt.zero_grad()
        loss.backward()
        opt.step()
    logp = -torch.stack([fastrepr.hierarchical_softmax_loss(emb.weight, loss_fn.w_nodes, torch.full((V,), w),
                                                            loss_fn.tree, reduction="none") for w in range(V)], 1)
    assert (logp.argmax(1) == (torch.arange(V) + 1) % V).float().mean() > 0.9


# ------------------------------------------------------------------------------------------- bad input

W = torch.randn(10, 4)
I1 = torch.zeros(3, dtype=torch.long)
N2 = torch.zeros(3, 2, dtype=torch.long)


@pytest.mark.parametrize("call, exc, match", [
    (lambda: fastrepr.sgns_loss(W, torch.randn(10, 5), I1, I1, N2), ValueError, "same width"),
    (lambda: fastrepr.sgns_loss(W.long(), W.long(), I1, I1, N2), TypeError, "w_in must be float"),
    (lambda: fastrepr.sgns_loss(W, W.double(), I1, I1, N2), TypeError, "one dtype"),
    (lambda: fastrepr.sgns_loss(W, W, I1.float(), I1, N2), TypeError, "centers must be an integer"),
    (lambda: fastrepr.sgns_loss(W, W, I1, I1[:2], N2), ValueError, "contexts must have 3 rows"),
    (lambda: fastrepr.sgns_loss(W, W, I1, I1, I1), ValueError, r"negatives must have shape \[B, K\]"),
    (lambda: fastrepr.sgns_loss(W, W, I1 + 10, I1, N2), ValueError, r"inputs has indices in \[10, 10\], outside \[0, 10\)"),
    (lambda: fastrepr.sgns_loss(W, W, I1, I1 - 1, N2), ValueError, "targets has indices"),
    (lambda: fastrepr.sgns_loss(W, W, I1, I1, N2 + 12), ValueError, "negatives has indices"),
    (lambda: fastrepr.sgns_loss(W, W, I1[:0], I1[:0], N2[:0]), ValueError, "empty"),
    (lambda: fastrepr.sgns_loss(torch.randn(0, 4), W, I1, I1, N2), ValueError, "w_in is empty"),
    (lambda: fastrepr.sgns_loss(W, W, I1, I1, N2, reduction="avg"), ValueError, "reduction"),
    (lambda: fastrepr.sgns_loss(W, W, I1, I1, N2, sparse=1), TypeError, "sparse must be a bool"),
    (lambda: fastrepr.sgns_loss(W, W.to("meta"), I1, I1, N2), ValueError, "one device"),
    (lambda: fastrepr.cbow_ns_loss(W, W, I1, I1, N2), ValueError, r"contexts must have shape \[B, C\]"),
    (lambda: fastrepr.cbow_ns_loss(W, W, N2, I1, N2, torch.ones(3, 3, dtype=torch.bool)), ValueError, "mask must have the shape"),
    (lambda: fastrepr.cbow_ns_loss(W, W, N2, I1, N2, torch.tensor([[1, 0], [0, 0], [1, 1]]).bool()), ValueError, "no context word"),
    (lambda: fastrepr.hierarchical_softmax_loss(W[:3], W, I1, "tree"), TypeError, "HuffmanTree or a tuple"),
    (lambda: fastrepr.hierarchical_softmax_loss(W[:3], W[:1], I1, build_huffman([5, 4, 3, 2])), ValueError, "3 inner nodes"),
    (lambda: fastrepr.hierarchical_softmax_loss(W[:3], W, I1 + 4, build_huffman([5, 4, 3, 2])), ValueError, "targets has indices"),
    (lambda: fastrepr.hierarchical_softmax_loss(W[:3], W, I1, (N2 + 11, N2, I1 + 1)), ValueError, "tree points"),
    (lambda: fastrepr.hierarchical_softmax_loss(W[:3], W, I1, (N2, N2, I1 + 3)), ValueError, "tree lengths"),
    (lambda: fastrepr.hierarchical_softmax_loss(W[:3], torch.randn(10, 5), I1, build_huffman([5, 4])), ValueError, "same width"),
    (lambda: fastrepr.NegativeSamplingLoss(0, 4), ValueError, "num_embeddings"),
    (lambda: fastrepr.NegativeSamplingLoss(5, 4, counts=[1, 2]), ValueError, "5 entries"),
    (lambda: fastrepr.HierarchicalSoftmaxLoss([1, 2], 0), ValueError, "embedding_dim"),
])
def test_bad_input(ns, call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_native_entry_points_validate_buffers(monkeypatch):

    use_backend("native", monkeypatch)
    from fastrepr import _native

    C = _native.get()
    w = np.zeros((5, 3), np.float32)
    idx = np.zeros((2, 1), np.int64)
    with pytest.raises(ValueError, match="outside its table"):
        C.negative_sampling_forward(w, w, idx + 7, np.zeros((0, 0), np.uint8), np.zeros(2, np.int64),
                                    np.zeros((2, 1), np.int64), np.zeros(2, np.float32), "float32")
    with pytest.raises(ValueError, match="loss must have shape"):
        C.negative_sampling_forward(w, w, idx, np.zeros((0, 0), np.uint8), np.zeros(2, np.int64),
                                    np.zeros((2, 1), np.int64), np.zeros(3, np.float32), "float32")
    with pytest.raises(ValueError, match="wrong shape"):
        C.negative_sampling_backward(w, w, idx, np.zeros((0, 0), np.uint8), np.zeros(2, np.int64),
                                     np.zeros((2, 1), np.int64), np.zeros(2, np.float32), np.zeros((5, 3), np.float32),
                                     np.zeros((4, 3), np.float32), False, "float32")
    with pytest.raises(ValueError, match="outside its range"):
        C.hierarchical_softmax_forward(w[:2], w, np.array([9, 0]), np.zeros((3, 2), np.int64),
                                       np.zeros((3, 2), np.uint8), np.ones(3, np.int64), np.zeros(2, np.float32), "float32")


# ------------------------------------------------------------------------------------------- memory

def test_native_forward_memory_is_output_plus_constant(monkeypatch):
    """The fused forward needs the [B] output and O(threads·D) scratch; the plain-PyTorch expression gathers
    [B, 1 + K, D] (which shows that the measurement sees allocations)."""

    use_backend("native", monkeypatch)
    V, D, B, K = 50_000, 100, 65_536, 5
    w_in, w_out = torch.randn(V, D), torch.randn(V, D)
    c, o, n = torch.randint(0, V, (B,)), torch.randint(0, V, (B,)), torch.randint(0, V, (B, K))
    fastrepr.sgns_loss(w_in, w_out, c, o, n)
    ours = bench.peak_memory(lambda: fastrepr.sgns_loss(w_in, w_out, c, o, n, reduction="none"), torch.device("cpu"))
    base = bench.peak_memory(lambda: reference.negative_sampling(w_in, w_out, c[:, None], o, n), torch.device("cpu"))
    assert ours <= B * 4 + 1024 * 1024, ours
    assert base >= B * (K + 1) * D * 4, base


# ------------------------------------------------------------------------------------------- GPU

@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_triton_cuda_large(monkeypatch, dtype):
    """Realistic sizes on the GPU: losses and dense/sparse gradients against the float64 reference, and the
    fused step on fp32 tables."""

    use_backend("triton", monkeypatch)
    V, D, B, K, C = 100_000, 128, 8192, 5, 10
    w_in, w_out, inputs, targets, negatives, mask = _ns_inputs(V, D, B, K, C, dtype, "cuda")
    ref = reference.negative_sampling(*_cpu64(w_in, w_out, inputs, targets, negatives, mask))
    ours = fastrepr.cbow_ns_loss(w_in, w_out, inputs, targets, negatives, mask, reduction="none")
    tol = 1e-4 if dtype == torch.float32 else 5e-2
    torch.testing.assert_close(ours.double().cpu(), ref, atol=tol, rtol=tol)
    for sparse in (False, True):
        a, b = w_in.clone().requires_grad_(), w_out.clone().requires_grad_()
        fastrepr.sgns_loss(a, b, inputs[:, 0], targets, negatives, sparse=sparse).backward()
        ra, rb = (t.detach().cpu().double().requires_grad_() for t in (w_in, w_out))
        reference.negative_sampling(ra, rb, inputs[:, :1].cpu(), targets.cpu(), negatives.cpu()).mean().backward()
        ga = a.grad.to_dense() if sparse else a.grad
        torch.testing.assert_close(ga.double().cpu(), ra.grad, atol=tol * 1e-2, rtol=tol)
    h, w_nodes, t, tree = _hs_inputs(50_000, D, B, dtype, "cuda")
    ref = reference.hierarchical_softmax(*_cpu64(h, w_nodes, t), *tree.tensors("cpu"))
    torch.testing.assert_close(fastrepr.hierarchical_softmax_loss(h, w_nodes, t, tree, reduction="none").double().cpu(),
                               ref, atol=tol * 10, rtol=tol)
    if dtype == torch.float32:
        wi, wo = w_in.clone(), w_out.clone()
        loss = ns_ops.negative_sampling_step_(wi, wo, inputs[:, :1].contiguous(), targets, negatives, None, 0.01)
        assert torch.isfinite(loss).all() and not torch.equal(wo, w_out)
