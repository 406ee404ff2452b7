"""NT-Xent with a memory bank (lightly's NTXentLoss(memory_bank_size=(K, D)) semantics) against its dense
baseline, on CPU: one training step (forward + backward + bank update) at 2N = 8192 rows (N = 4096 anchors
out0 and positives out1), D = 128, K = 65536 bank negatives (issue 13's bar: time <= 1.25x, peak extra memory
<= 10% of the baseline's).

  ours      fastrepr.NTXentLoss(memory_bank_size=(K, D)): the op fastrepr::queue_lse streams the bank in tiles
            (per-row log-sum-exp and softmax-weighted bank mean; O(N·D) backward), the bank a ring buffer
            written in place; once per implementation of queue_lse (native, torch)
  baseline  lightly's forward written out in plain torch: bank clone, logits [N, K + 1] = [out0·out1,
            out0 @ bankᵀ] / τ, cross-entropy, backward, in-place enqueue (what lightly's code runs)

Times: median of alternating calls in this process. Peak extra memory: the resident high-water mark of one step
(after a warm-up step) above the resident size before it, each side in a fresh interpreter of its own (so
neither side's freed pages or allocator caches hide the other's peak).

    flock /tmp/fastrepr-bench.lock .venv/bin/python benchmarks/memory_bank_cpu.py [--n 4096 --k 65536]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import torch

import fastrepr
from fastrepr import _backend
from fastrepr.bench.harness import device_name, peak_memory, time_pair

IMPLS = ("native", "torch")


class DenseBank:
    """lightly 1.6's NTXentLoss memory-bank branch and MemoryBankModule update, inlined."""

    def __init__(self, bank: torch.Tensor, temperature: float):
        self.bank, self.ptr, self.t = bank.clone(), 0, temperature

    def __call__(self, out0, out1):
        out0, out1 = torch.nn.functional.normalize(out0, dim=1), torch.nn.functional.normalize(out1, dim=1)
        negatives = self.bank.clone().detach()
        logits = torch.cat([(out0 * out1).sum(1, keepdim=True), out0 @ negatives.t()], 1) / self.t
        loss = torch.nn.functional.cross_entropy(logits, torch.zeros(out0.shape[0], dtype=torch.long))
        b = out1.detach()
        take = min(b.shape[0], self.bank.shape[0] - self.ptr)
        self.bank[self.ptr:self.ptr + take] = b[:take]
        self.ptr = 0 if self.ptr + b.shape[0] >= self.bank.shape[0] else self.ptr + take
        return loss


def _setup(args):
    torch.manual_seed(0)
    ours_fn = fastrepr.NTXentLoss(0.5, memory_bank_size=(args.k, args.d))
    base_fn = DenseBank(ours_fn.bank, 0.5)
    out0, out1 = (torch.randn(args.n, args.d, requires_grad=True) for _ in range(2))

    def step(fn):
        def call():
            out0.grad = out1.grad = None
            loss = fn(out0, out1)
            loss.backward()
            return loss.detach()
        return call

    return ours_fn, base_fn, step


def _memory_child(args) -> None:
    """One side's peak extra bytes of one step after a warm-up step, printed as JSON (in its own process)."""
    ours_fn, base_fn, step = _setup(args)
    fn = step(base_fn if args.memory == "baseline" else ours_fn)
    fn()
    print(json.dumps({"peak": peak_memory(fn, torch.device("cpu"))}))


def _memory(args, side: str, impl: str | None) -> int:
    env = dict(os.environ, **({_backend.ENV: impl} if impl else {}))
    cmd = [sys.executable, __file__, "--memory", side, "--n", str(args.n), "--d", str(args.d), "--k", str(args.k)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])["peak"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="anchors per view (2N rows in all)")
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k", type=int, default=65536, help="bank size")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of timing per side")
    parser.add_argument("--impls", default=",".join(IMPLS), help="queue_lse implementations to run, comma-separated")
    parser.add_argument("--memory", choices=("ours", "baseline"), help=argparse.SUPPRESS)  # the child's mode
    args = parser.parse_args()
    if args.memory:
        return _memory_child(args)
    cpu = torch.device("cpu")
    print(f"device: {device_name(cpu)}, torch threads {torch.get_num_threads()}; N={args.n} anchors "
          f"(2N={2 * args.n}), D={args.d}, K={args.k}")
    m_base = _memory(args, "baseline", None)
    for impl in args.impls.split(","):
        os.environ[_backend.ENV] = impl  # queue_lse's implementation (the dense baseline dispatches nothing)
        with _backend.recording() as ran:
            ours_fn, base_fn, step = _setup(args)
            a, b = float(step(ours_fn)()), float(step(base_fn)())
            t_ours, t_base = time_pair(step(ours_fn), step(base_fn), cpu, budget_s=args.budget, warmup=False)
        m_ours = _memory(args, "ours", impl)
        print(f"[queue_lse={ran.get('queue_lse')}] first-step losses ours {a:.6f} baseline {b:.6f}")
        print(f"  fwd+bwd+enqueue median: ours {t_ours:.1f} ms, baseline {t_base:.1f} ms, ratio "
              f"{t_ours / t_base:.3f}")
        print(f"  peak extra memory: ours {m_ours / 2**20:.1f} MiB, baseline {m_base / 2**20:.1f} MiB, "
              f"ratio {m_ours / max(m_base, 1):.3f}")


if __name__ == "__main__":
    main()
