"""gather_distributed: 2 processes on the gloo backend (CPU). Each rank's gradient w.r.t. its own
embeddings must equal world_size x the gradient of the single-process loss over the concatenated batch,
and the mean of the ranks' losses must equal that loss."""
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import fastrepr
from utils import free_port

WORLD = 2


def _worker(rank, port, data, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), FASTREPR_BACKEND="torch")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        n = data["z1"].shape[0] // WORLD
        part = {k: v[rank * n:(rank + 1) * n].clone() for k, v in data.items()}
        results = {}
        for name in ("nt_xent", "module", "info_nce", "sup_con"):
            a = part["z1"].clone().requires_grad_()
            b = part["z2"].clone().requires_grad_()
            if name == "nt_xent":
                loss = fastrepr.nt_xent(a, b, 0.2, gather_distributed=True)
            elif name == "module":
                loss = fastrepr.NTXentLoss(temperature=0.2, gather_distributed=True)(a, b)
            elif name == "info_nce":
                loss = fastrepr.info_nce(a, b, 0.1, gather_distributed=True)
            else:
                loss = fastrepr.sup_con(a, part["labels"], 0.3, gather_distributed=True) + 0 * b.sum()
            loss.backward()
            results[name] = (loss.detach(), a.grad, b.grad)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
        dist.barrier()  # neither rank tears gloo down while the other still talks to it
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_global_negatives_match_single_process(tmp_path):
    torch.manual_seed(0)
    n = 6
    data = {"z1": torch.randn(WORLD * n, 8, dtype=torch.float64), "z2": torch.randn(WORLD * n, 8, dtype=torch.float64),
            "labels": torch.randint(0, 4, (WORLD * n,))}
    mp.spawn(_worker, args=(free_port(), data, str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]

    def sup_con_rank_sum(a, b):
        """Sum over ranks of each rank's loss: the mean, over that rank's anchors with a positive, of the
        per-anchor SupCon loss against the whole batch. A rank's gradient is d(this)/d(its slice)."""
        z = torch.nn.functional.normalize(a, dim=1)
        eye = torch.eye(len(z), dtype=torch.bool)
        s = (z @ z.t() / 0.3).masked_fill(eye, float("-inf"))
        log_prob = s - torch.logsumexp(s, 1, keepdim=True)
        pos = (data["labels"][:, None] == data["labels"][None, :]) & ~eye
        per = -(log_prob.masked_fill(~pos, 0).sum(1)) / pos.sum(1).clamp_min(1)
        has = pos.sum(1) > 0
        losses = [per[r * n:(r + 1) * n][has[r * n:(r + 1) * n]].mean() for r in range(WORLD)]
        for r, value in enumerate(losses):
            torch.testing.assert_close(ranks[r]["sup_con"][0], value.detach(), msg=f"sup_con rank {r} loss")
        return sum(losses) + 0 * b.sum()

    single = {
        "nt_xent": lambda a, b: fastrepr.nt_xent(a, b, 0.2),
        "module": lambda a, b: fastrepr.nt_xent(a, b, 0.2),
        "info_nce": lambda a, b: fastrepr.info_nce(a, b, 0.1),
    }
    for name, fn in single.items():
        a = data["z1"].clone().requires_grad_()
        b = data["z2"].clone().requires_grad_()
        loss = fn(a, b)
        loss.backward()
        torch.testing.assert_close(sum(r[name][0] for r in ranks) / WORLD, loss.detach())
        for r in range(WORLD):
            sl = slice(r * n, (r + 1) * n)
            torch.testing.assert_close(ranks[r][name][1], WORLD * a.grad[sl], msg=f"{name} rank {r} dz1")
            torch.testing.assert_close(ranks[r][name][2], WORLD * b.grad[sl], msg=f"{name} rank {r} dz2")
    a = data["z1"].clone().requires_grad_()
    b = data["z2"].clone()
    sup_con_rank_sum(a, b).backward()
    for r in range(WORLD):
        torch.testing.assert_close(ranks[r]["sup_con"][1], a.grad[r * n:(r + 1) * n], msg=f"sup_con rank {r} dz")


def _bank_worker(rank, port, data, bank0, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), FASTREPR_BACKEND="torch")
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        n = data["z1"].shape[0] // WORLD
        loss_fn = fastrepr.NTXentLoss(temperature=0.2, memory_bank_size=tuple(bank0.shape), gather_distributed=True)
        loss_fn.bank.copy_(bank0)
        a = data["z1"][rank * n:(rank + 1) * n].clone().requires_grad_()
        loss = loss_fn(a, data["z2"][rank * n:(rank + 1) * n])
        loss.backward()
        torch.save({"loss": loss.detach(), "grad": a.grad, "bank": loss_fn.bank.clone(), "ptr": loss_fn.bank_ptr},
                   os.path.join(out_dir, f"bank{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_memory_bank_gathers_every_rank_before_enqueueing(tmp_path):
    """The bank is updated with every rank's normalized out1 (rank order), the same on every rank, and each
    rank's loss is its own anchors against the shared bank (lightly's bank semantics, plus the gather)."""
    from fastrepr import reference

    torch.manual_seed(1)
    n, k, d = 3, 10, 5
    data = {"z1": torch.randn(WORLD * n, d), "z2": torch.randn(WORLD * n, d)}
    bank0 = torch.nn.functional.normalize(torch.randn(k, d), dim=1)
    mp.spawn(_bank_worker, args=(free_port(), data, bank0, str(tmp_path)), nprocs=WORLD, join=True)
    ranks = [torch.load(tmp_path / f"bank{r}.pt") for r in range(WORLD)]
    expected_bank = bank0.clone()
    expected_bank[:WORLD * n] = torch.nn.functional.normalize(data["z2"], dim=1)
    for r, got in enumerate(ranks):
        sl = slice(r * n, (r + 1) * n)
        a = data["z1"][sl].double().requires_grad_()
        ref = reference.info_nce_queue(a, data["z2"][sl].double(), bank0.double(), 0.2)
        ref.backward()
        torch.testing.assert_close(got["loss"].double(), ref.detach(), rtol=1e-5, atol=1e-6, msg=f"rank {r} loss")
        torch.testing.assert_close(got["grad"].double(), a.grad, rtol=1e-4, atol=1e-6, msg=f"rank {r} gradient")
        torch.testing.assert_close(got["bank"], expected_bank, msg=f"rank {r} bank after the step")
        assert got["ptr"] == WORLD * n
