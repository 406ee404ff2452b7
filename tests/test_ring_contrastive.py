"""gather_distributed="ring" for nt_xent, info_nce (symmetric and not) and sup_con, on gloo at 2 and 4 processes.

Against the float64 oracle on the rank-major concatenated batch (fastrepr.reference), as tests/test_distributed.py
does for the all-gather mode: the mean of the ranks' losses equals the single-process loss, each rank's embedding
gradients equal W x the oracle's on its slice, and the mean of the ranks' temperature gradients equals the
oracle's (fastrepr.distributed's convention). sup_con, whose rank losses are means over different anchor counts,
against the dense sum of the rank losses (each rank's gradient is that sum's). The ring equals the all-gather
mode; its saved-for-backward bytes do not grow with W; bad input raises the same ValueError on every rank.
"""
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist

import fastrepr
from fastrepr import reference
from utils import assert_close, fork_workers, free_port

N, D, TEMP = 5, 7, 0.3  # N rows per rank (odd), D features (odd)
LOSSES = ("nt_xent", "info_nce", "info_nce_asym", "sup_con")


def _saved_bytes(fn):
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total[0]


def _loss(name, a, b, labels, t, mode):
    if name == "nt_xent":
        return fastrepr.nt_xent(a, b, t, gather_distributed=mode)
    if name == "info_nce":
        return fastrepr.info_nce(a, b, t, gather_distributed=mode)
    if name == "info_nce_asym":
        return fastrepr.info_nce(a, b, t, symmetric=False, gather_distributed=mode)
    return fastrepr.sup_con(a, labels, t, gather_distributed=mode)


def _error(fn) -> str:
    try:
        fn()
    except ValueError as e:
        return str(e)
    return "no error"


def _bad_inputs(rank, part):
    """Each case is collective: every rank must raise (the same message), none may hang in an exchange."""
    a, b = part["z1"], part["z2"]
    short = a[:-1] if rank == 1 else a  # rank 1 has one row fewer
    narrow = b[:, :-1] if rank == 1 else b
    nan = b.clone()
    if rank == 1:
        nan[2, 0] = float("nan")
    return {
        "rows": _error(lambda: fastrepr.nt_xent(short, short.clone(), 0.2, gather_distributed="ring")),
        "features": _error(lambda: fastrepr.info_nce(narrow, narrow.clone(), 0.2, gather_distributed="ring")),
        "nan": _error(lambda: fastrepr.nt_xent(a, nan, 0.2, gather_distributed="ring")),
        "labels": _error(lambda: fastrepr.sup_con(short, part["labels"][:short.shape[0]], 0.2,
                                                  gather_distributed="ring")),
        "dtype": _error(lambda: fastrepr.sup_con(a.float() if rank == 1 else a, part["labels"], 0.2,
                                                 gather_distributed="ring")),
        "overflow": _error(lambda: fastrepr.nt_xent(a * (1e153 if rank == 1 else 1.0), b, 0.2, normalize=False,
                                                    gather_distributed="ring")),
    }


def _worker(rank, world, port, data, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), FASTREPR_BACKEND="torch")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        part = {k: v[rank * N:(rank + 1) * N].clone() for k, v in data.items() if k != "t"}
        results = {}
        for mode in ("ring", True):
            for name in LOSSES:
                a, b = part["z1"].clone().requires_grad_(), part["z2"].clone().requires_grad_()
                t = data["t"].clone().requires_grad_()
                loss, saved = _saved_bytes(lambda: _loss(name, a, b, part["labels"], t, mode))
                loss.backward()
                results[mode, name] = (loss.detach(), a.grad, b.grad, t.grad, saved)
        module = fastrepr.NTXentLoss(temperature=TEMP, gather_distributed="ring")
        results["module"] = module(part["z1"], part["z2"]).detach()
        results["bad"] = _bad_inputs(rank, part)
        # fp32 on the Triton kernels (interpreter): the ring reuses them per block
        os.environ["FASTREPR_BACKEND"] = "triton"
        a, b = part["z1"].float().requires_grad_(), part["z2"].float().requires_grad_()
        fastrepr.nt_xent(a, b, TEMP, gather_distributed="ring").backward()
        results["triton"] = (a.grad, b.grad)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _run(world, tmp_path):
    torch.manual_seed(10 + world)
    z1 = torch.randn(world * N, D, dtype=torch.float64)
    data = {"z1": z1, "z2": z1 + 0.8 * torch.randn_like(z1), "labels": torch.randint(0, 3, (world * N,)),
            "t": torch.tensor(TEMP, dtype=torch.float64)}
    data["labels"][0] = 7  # a label no other sample has: that anchor has no positive anywhere
    fork_workers(_worker, (world, free_port(), data, str(tmp_path)), world)
    return data, [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    return {world: _run(world, tmp_path_factory.mktemp(f"w{world}")) for world in (2, 4)}


def _sup_con_rank_losses(z, labels, t, world):
    """[W]: rank r's SupCon, the mean over its anchors with a positive of the dense per-anchor loss against the
    whole batch (reference.sup_con's formula, reduced per rank)."""
    zn = torch.nn.functional.normalize(z, dim=1)
    eye = torch.eye(len(z), dtype=torch.bool)
    s = (zn @ zn.t() / t).masked_fill(eye, float("-inf"))
    log_prob = s - torch.logsumexp(s, 1, keepdim=True)
    pos = (labels[:, None] == labels[None, :]) & ~eye
    per = -(log_prob.masked_fill(~pos, 0).sum(1)) / pos.sum(1).clamp_min(1)
    has = pos.sum(1) > 0
    return torch.stack([per[r * N:(r + 1) * N][has[r * N:(r + 1) * N]].mean() for r in range(world)])


def _oracle(name, data, world):
    """(value, dz1, dz2, dt) of the quantity whose gradient each rank's leaves get, divided as the convention
    says: the single-process loss for nt_xent / info_nce; for sup_con the per-rank losses and their sum's grads."""
    a, b, t = (data[k].clone().requires_grad_() for k in ("z1", "z2", "t"))
    if name == "sup_con":
        value = _sup_con_rank_losses(a, data["labels"], t, world)
        value.sum().backward()
        return value.detach(), a.grad, torch.zeros_like(b), t.grad
    if name == "nt_xent":
        value = reference.nt_xent(a, b, t)
    else:
        value = reference.info_nce(a, b, t, symmetric=name == "info_nce")
    value.backward()
    return value.detach(), a.grad, b.grad, t.grad


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 4])
@pytest.mark.parametrize("name", LOSSES)
def test_ring_matches_single_process(world, name, runs):
    data, ranks = runs[world]
    value, gz1, gz2, gt = _oracle(name, data, world)
    for mode in ("ring", True):
        got = [r[mode, name] for r in ranks]
        what = f"{name} {mode} W={world}"
        if name == "sup_con":  # each rank's own loss; its gradients: those of the sum of the rank losses
            assert_close(torch.stack([g[0] for g in got]), value, torch.float64, what=f"{what} rank losses")
            scale, t_grad = 1.0, torch.stack([g[3] for g in got]).sum()
        else:
            assert_close(torch.stack([g[0] for g in got]).mean(), value, torch.float64, what=f"{what} loss")
            scale, t_grad = float(world), torch.stack([g[3] for g in got]).mean()
        for r, g in enumerate(got):
            rows = slice(r * N, (r + 1) * N)
            assert_close(g[1], scale * gz1[rows], torch.float64, grad=True, what=f"{what} rank {r} dz1")
            if name != "sup_con":
                assert_close(g[2], scale * gz2[rows], torch.float64, grad=True, what=f"{what} rank {r} dz2")
        assert_close(t_grad, gt, torch.float64, grad=True, what=f"{what} dtemperature")
    for r in ranks:  # ring == all-gather, rank by rank
        for ring, gathered in zip(r["ring", name][:4], r[True, name][:4]):
            if ring is not None:
                assert_close(ring, gathered, torch.float64, grad=True, what=f"{name} ring vs all-gather")


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 4])
def test_ring_module_and_triton(world, runs):
    """NTXentLoss(gather_distributed="ring") is the functional loss; the Triton kernels (fp32, interpreter) give
    the float64 oracle's gradients to fp32 tolerance."""
    data, ranks = runs[world]
    a, b = (data[k].clone().requires_grad_() for k in ("z1", "z2"))
    reference.nt_xent(a, b, TEMP).backward()
    for r, res in enumerate(ranks):
        assert_close(res["module"], res["ring", "nt_xent"][0], torch.float64, what="module")
        rows = slice(r * N, (r + 1) * N)
        assert_close(res["triton"][0], world * a.grad[rows], torch.float32, grad=True, what=f"triton rank {r} dz1")
        assert_close(res["triton"][1], world * b.grad[rows], torch.float32, grad=True, what=f"triton rank {r} dz2")


@pytest.mark.slow
def test_ring_saved_memory_does_not_grow_with_world(runs):
    """Bytes autograd saves per rank at the same per-rank batch: the ring's are W-independent (the local rows and
    O(n) statistics), the all-gather's grow with W (the W·n gathered rows)."""
    for name in LOSSES:
        saved = {w: {m: max(r[m, name][4] for r in ranks) for m in ("ring", True)} for w, (_, ranks) in runs.items()}
        assert saved[2]["ring"] == saved[4]["ring"], (name, saved)
        assert saved[4][True] > saved[2][True], (name, saved)


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 4])
def test_ring_bad_input_raises_on_every_rank(world, runs):
    _, ranks = runs[world]
    expect = {"rows": ("z1", "same shape", "rank 1: (4, 7)"), "features": ("q", "same shape", "(5, 6)"),
              "nan": ("z2 on rank 1 contains NaN or Inf (row 2)",), "labels": ("z", "same shape"),
              "dtype": ("z", "dtype", "torch.float32"), "overflow": ("z1 and z2", "normalize=False")}
    for case, parts in expect.items():
        message = ranks[0]["bad"][case]
        assert all(r["bad"][case] == message for r in ranks), (case, [r["bad"][case] for r in ranks])
        for p in parts:
            assert p in message, (case, p, message)


@pytest.mark.parametrize("call, arg", [
    (lambda q, k: fastrepr.info_nce(q, k, 0.1, symmetric=False, queue=k.clone(), gather_distributed="ring"), "queue"),
    (lambda q, k: fastrepr.nt_xent(q, k, 0.1, gather_distributed="rings"), "gather_distributed"),
    (lambda q, k: fastrepr.info_nce(q, k, 0.1, gather_distributed="all"), "gather_distributed"),
    (lambda q, k: fastrepr.sup_con(q, torch.arange(len(q)), 0.1, gather_distributed=2), "gather_distributed"),
    (lambda q, k: fastrepr.nt_xent(q, k, 0.1, gather_distributed="ring", tau_plus=0.1), "gather_distributed"),
    (lambda q, k: fastrepr.NTXentLoss(memory_bank_size=8, gather_distributed="ring"), "memory_bank_size"),
    (lambda q, k: fastrepr.InfoNCELoss(gather_distributed="ring!"), "gather_distributed"),
    (lambda q, k: fastrepr.SupConLoss(gather_distributed=None), "gather_distributed"),
])
def test_ring_unsupported_options_name_the_argument(call, arg):
    q, k = torch.randn(4, 3), torch.randn(4, 3)
    with pytest.raises(ValueError, match=arg):
        call(q, k)


def test_ring_without_process_group_is_the_local_loss():
    """Outside torch.distributed (W = 1) "ring" is the local loss, like gather_distributed=True."""
    z1, z2, labels = torch.randn(6, 4), torch.randn(6, 4), torch.randint(0, 2, (6,))
    assert torch.equal(fastrepr.nt_xent(z1, z2, 0.2, gather_distributed="ring"), fastrepr.nt_xent(z1, z2, 0.2))
    assert torch.equal(fastrepr.info_nce(z1, z2, 0.2, gather_distributed="ring"), fastrepr.info_nce(z1, z2, 0.2))
    assert torch.equal(fastrepr.sup_con(z1, labels, 0.2, gather_distributed="ring"), fastrepr.sup_con(z1, labels, 0.2))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="peak RSS reset needs Linux /proc")
def test_ring_peak_memory_does_not_grow_with_world():
    """Measured per-rank peak resident memory of one forward + backward (tests/ring_memory.py) at the same
    per-rank batch, W = 2 and 4: the ring's grows by at most the one extra block-and-gradient exchange in flight
    (plus 1 MiB of slack), the all-gather's by at least one gathered block per added rank."""
    n, d = 128, 2048
    block = 2 * n * d * 4  # one rank's [z1; z2], fp32
    # measured from a fresh interpreter: ranks forked from this long-lived pytest process reuse its freed heap
    # pages for a varying share of their allocations, which moved the W=2 peak by ~10 MiB from run to run
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from ring_memory import measure; "
            f"print(json.dumps([max(r['peak'] for r in measure('nt_xent', m, w, {n}, {d})) "
            "for m in ('ring', True) for w in (2, 4)]))")
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    values = json.loads(out.stdout.strip().splitlines()[-1])
    peak = dict(zip([(m, w) for m in ("ring", True) for w in (2, 4)], values))
    assert peak["ring", 4] <= peak["ring", 2] + 2 * block + 2 ** 20, peak
    assert peak[True, 4] >= peak[True, 2] + 2 * block, peak
