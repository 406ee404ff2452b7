"""Ring exchange (fastrepr.distributed.ring_pass, ring_stream) and siglip_loss(gather_distributed="ring" / True) on
gloo at 2 and 4 processes against the single-process float64 oracle on the concatenated batch: the mean of the
ranks' losses equals the oracle, each rank's x, y gradients equal W x the oracle's on its slice, and the mean of
the ranks' logit_scale / logit_bias gradients equals the oracle's (fastrepr.distributed's convention). The ring's
saved-for-backward memory does not grow with W (the all-gather's does)."""
import os

import pytest
import torch
import torch.distributed as dist

import fastrepr
from fastrepr import reference
from fastrepr.distributed import ring_pass
from utils import assert_close, fork_workers, free_port


def _saved_bytes(fn):
    """(fn(), bytes of the tensors autograd saves for backward while fn runs)."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, total[0]


def _worker(rank, world, port, data, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), FASTREPR_BACKEND="torch")
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        n = data["x"].shape[0] // world
        results = {}
        for mode in ("ring", True):
            x, y = (data[k][rank * n:(rank + 1) * n].clone().requires_grad_() for k in ("x", "y"))
            t, b = data["t"].clone().requires_grad_(), data["b"].clone().requires_grad_()
            loss, saved = _saved_bytes(lambda: fastrepr.siglip_loss(x, y, t, b, gather_distributed=mode))
            loss.backward()
            results[mode] = (loss.detach(), x.grad, y.grad, t.grad, b.grad, saved)
        block = data["x"][rank * n:(rank + 1) * n].clone().requires_grad_()
        got = ring_pass(block)
        (got * (rank + 1)).sum().backward()  # rank r weights what it received from r - 1 by r + 1
        results["ring_pass"] = (got.detach(), block.grad)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _run(world, n, d, tmp_path):
    torch.manual_seed(world)
    x = torch.randn(world * n, d, dtype=torch.float64)
    data = {"x": x, "y": x + 0.7 * torch.randn_like(x), "t": torch.tensor(4.0, dtype=torch.float64),
            "b": torch.tensor(-3.0, dtype=torch.float64)}
    fork_workers(_worker, (world, free_port(), data, str(tmp_path)), world)
    return data, [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]


N, D = 5, 7


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """W -> (data, per-rank results), each world size run once for both tests."""
    return {world: _run(world, N, D, tmp_path_factory.mktemp(f"w{world}")) for world in (2, 4)}


@pytest.mark.slow
@pytest.mark.parametrize("world", [2, 4])
def test_ring_siglip_matches_single_process(world, runs):
    n = N
    data, ranks = runs[world]
    leaves = [data[k].clone().requires_grad_() for k in ("x", "y", "t", "b")]
    ref = reference.siglip_loss(*leaves)
    ref.backward()
    gx, gy, gt, gb = (v.grad for v in leaves)
    for mode in ("ring", True):
        loss = torch.stack([r[mode][0] for r in ranks]).mean()
        assert_close(loss, ref, torch.float64, what=f"{mode}: mean of rank losses")
        for r, res in enumerate(ranks):
            rows = slice(r * n, (r + 1) * n)
            assert_close(res[mode][1], world * gx[rows], torch.float64, grad=True, what=f"{mode} rank {r} dx")
            assert_close(res[mode][2], world * gy[rows], torch.float64, grad=True, what=f"{mode} rank {r} dy")
        assert_close(torch.stack([r[mode][3] for r in ranks]).mean(), gt, torch.float64, grad=True, what="dscale")
        assert_close(torch.stack([r[mode][4] for r in ranks]).mean(), gb, torch.float64, grad=True, what="dbias")
    # ring_pass: rank r receives rank r-1's block; the gradient of the block rank r sent is (r + 2)
    for r, res in enumerate(ranks):
        got, grad = res["ring_pass"]
        assert torch.equal(got, data["x"][((r - 1) % world) * n:((r - 1) % world + 1) * n])
        assert torch.equal(grad, torch.full_like(grad, (r + 1) % world + 1))


@pytest.mark.slow
def test_ring_memory_does_not_grow_with_world(runs):
    """Bytes saved for backward per rank, same per-rank batch: the ring's are W-independent (x, y, scale, bias and
    the normalization's O(n·D)); the all-gather's grow with W (it saves the W·n gathered rows)."""
    saved = {world: {mode: max(r[mode][5] for r in ranks) for mode in ("ring", True)}
             for world, (_, ranks) in runs.items()}
    assert saved[2]["ring"] == saved[4]["ring"]
    assert saved[4][True] > saved[2][True]
