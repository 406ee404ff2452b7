"""Contrastive losses against their plain-PyTorch definitions (``fastrepr.reference``), each timed three ways:

  <op>           forward + backward: one training step's worth (the leaf grads reset, so each call
                 allocates them as a real step would)
  <op>_forward   the forward alone, with autograd recording (what a training step's forward costs)
  <op>_backward  the backward alone, over one forward's graph kept for every call (retain_graph)
"""
from __future__ import annotations

from typing import Callable

import torch

from fastrepr import reference
from fastrepr.functional import info_nce, nt_xent, sup_con

from ..harness import Bench, train_step

Loss = Callable[[dict], torch.Tensor]


def _backward(loss_fn: Loss, key: str) -> Loss:
    def call(x: dict) -> torch.Tensor:
        if key not in x:  # the first call (the runner's warm-up) builds the graph every later call reuses
            x[key] = loss_fn(x)
        for t in x["leaves"]:
            t.grad = None
        x[key].backward(retain_graph=True)
        return x["leaves"][0].grad
    return call


def _views_setup(size, device, dtype):
    two_n, d = size
    z1, z2 = (torch.randn(two_n // 2, d, device=device, dtype=dtype, requires_grad=True) for _ in range(2))
    return {"z1": z1, "z2": z2, "leaves": (z1, z2)}


def _labelled_setup(size, device, dtype):
    n, d = size
    z = torch.randn(n, d, device=device, dtype=dtype, requires_grad=True)
    return {"z": z, "leaves": (z,), "labels": torch.randint(0, max(2, n // 8), (n,), device=device)}


_compiled: dict = {}


def _compiled_reference(name: str):
    """torch.compile of a reference loss, built once per process."""
    if name not in _compiled:
        _compiled[name] = torch.compile(getattr(reference, name))
    return _compiled[name]


def _phases(op: str, baseline_name: str, ours: Loss, base: Loss, **common) -> list[Bench]:
    """The three entries of one loss: forward + backward (named ``op``), forward, backward."""
    return [Bench(op=op, baseline_name=baseline_name, ours=train_step(ours), baseline=train_step(base), **common),
            Bench(op=f"{op}_forward", baseline_name=baseline_name, ours=ours, baseline=base,
                  **{**common, "demo": {}}),
            Bench(op=f"{op}_backward", baseline_name=baseline_name, ours=_backward(ours, "graph_ours"),
                  baseline=_backward(base, "graph_base"), **{**common, "demo": {}})]


def entries() -> list[Bench]:
    # 2N = 262144 and 1048576 exceed the reference's memory on an 80 GB card (its row reads "out of memory")
    sizes = {"cpu": [(1024, 128), (4096, 128), (8192, 128)],
             "cuda": [(1024, 128), (4096, 128), (16384, 128), (65536, 128), (262144, 128), (1048576, 128)]}
    small = {"cpu": sizes["cpu"], "cuda": sizes["cuda"][:4]}
    common = dict(size_names=("2N", "D"), sizes=sizes, setup=_views_setup,
                  dtypes={"cpu": torch.float32, "cuda": torch.bfloat16}, work=lambda s: s[0] ** 2 * s[1],
                  work_label="(2N)²·D", demo={"cpu": sizes["cpu"][1], "cuda": sizes["cuda"][3]})
    out = _phases("nt_xent", "torch reference (2N x 2N logits + cross_entropy)",
                  lambda x: nt_xent(x["z1"], x["z2"], 0.1), lambda x: reference.nt_xent(x["z1"], x["z2"], 0.1),
                  **common)
    out.append(Bench(op="nt_xent_vs_compiled", baseline_name="torch.compile(reference)",
                     ours=train_step(lambda x: nt_xent(x["z1"], x["z2"], 0.1)),
                     baseline=train_step(lambda x: _compiled_reference("nt_xent")(x["z1"], x["z2"], 0.1)),
                     **{**common, "demo": {},
                        "sizes": {"cpu": sizes["cpu"][:2], "cuda": [sizes["cuda"][1], sizes["cuda"][3]]}}))
    out += _phases("info_nce", "torch reference (N x N logits, both directions)",
                   lambda x: info_nce(x["z1"], x["z2"], 0.07), lambda x: reference.info_nce(x["z1"], x["z2"], 0.07),
                   **{**common, "sizes": small, "demo": {}})
    out += _phases("sup_con", "torch reference (N x N logits, label masks)",
                   lambda x: sup_con(x["z"], x["labels"], 0.1), lambda x: reference.sup_con(x["z"], x["labels"], 0.1),
                   **{**common, "sizes": small, "size_names": ("N", "D"), "work_label": "N²·D",
                      "setup": _labelled_setup})
    return out


# ---- issue 13: NT-Xent with a memory bank (lightly's NTXentLoss(memory_bank_size=(K, D))), a self-contained
# block: fastrepr.NTXentLoss streams the bank through the op queue_lse (a ring buffer written in place) against
# lightly's memory-bank forward written out in plain torch (bank clone, [N, K + 1] logits, cross-entropy,
# in-place enqueue). One training step (forward + backward + enqueue); benchmarks/memory_bank_cpu.py measures
# the CPU bar (2N = 8192, D = 128, K = 65536) with each side's peak memory in its own process.

def _dense_bank_loss(state: dict, out0: torch.Tensor, out1: torch.Tensor, temperature: float) -> torch.Tensor:
    """lightly 1.6's NTXentLoss memory-bank branch and MemoryBankModule update, inlined; state["bank"], ["ptr"]."""
    out0, out1 = torch.nn.functional.normalize(out0, dim=1), torch.nn.functional.normalize(out1, dim=1)
    bank = state["bank"]
    negatives = bank.clone().detach()
    logits = torch.cat([(out0 * out1).sum(1, keepdim=True), out0 @ negatives.t()], 1) / temperature
    loss = torch.nn.functional.cross_entropy(logits, torch.zeros(out0.shape[0], dtype=torch.long,
                                                                 device=out0.device))
    b, ptr = out1.detach(), state["ptr"]
    take = min(b.shape[0], bank.shape[0] - ptr)
    bank[ptr:ptr + take] = b[:take]
    state["ptr"] = 0 if ptr + b.shape[0] >= bank.shape[0] else ptr + take
    return loss


def _bank_setup(size, device, dtype):
    from fastrepr import NTXentLoss

    two_n, d, k = size
    out0, out1 = (torch.randn(two_n // 2, d, device=device, dtype=dtype, requires_grad=True) for _ in range(2))
    ours = NTXentLoss(0.5, memory_bank_size=(k, d)).to(device)
    return {"out0": out0, "out1": out1, "leaves": (out0, out1), "loss": ours,
            "dense": {"bank": ours.bank.clone().to(dtype), "ptr": 0}}


def _memory_bank_entries() -> list[Bench]:
    sizes = {"cpu": [(1024, 128, 8192), (8192, 128, 65536)], "cuda": [(8192, 128, 65536), (65536, 128, 65536)]}
    return [Bench(op="nt_xent_memory_bank", baseline_name="lightly memory bank in torch ([N, K + 1] logits)",
                  size_names=("2N", "D", "K"), sizes=sizes, setup=_bank_setup,
                  ours=train_step(lambda x: x["loss"](x["out0"], x["out1"])),
                  baseline=train_step(lambda x: _dense_bank_loss(x["dense"], x["out0"], x["out1"], 0.5)),
                  work=lambda s: s[0] // 2 * s[2] * s[1], work_label="N·K·D")]


_entries_before_memory_bank = entries


def entries() -> list[Bench]:  # noqa: F811 (this block's entry appended to those above)
    return _entries_before_memory_bank() + _memory_bank_entries()
