"""NT-Xent with a memory bank (lightly's NTXentLoss(memory_bank_size=(K, D)) semantics) against its dense
baseline, on CPU: one training step (forward + backward + bank update) at 2N = 8192 rows (N = 4096 anchors
out0 and positives out1), D = 128, K = 65536 bank negatives (issue 13's bar: time <= 1.25x, peak extra memory
<= 10% of the baseline's).

  ours      fastrepr.NTXentLoss(memory_bank_size=(K, D)): the bank streamed by the contrastive kernels
  baseline  lightly's forward written out in plain torch: bank clone, logits [N, K + 1] = [out0·out1,
            out0 @ bankᵀ] / τ, cross-entropy, backward, in-place enqueue (what lightly's code runs)

    flock /tmp/fastrepr-bench.lock .venv/bin/python benchmarks/memory_bank_cpu.py [--n 4096 --k 65536]
"""
from __future__ import annotations

import argparse

import torch

import fastrepr
from fastrepr.bench.harness import device_name, peak_memory, time_pair


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4096, help="anchors per view (2N rows in all)")
    parser.add_argument("--d", type=int, default=128)
    parser.add_argument("--k", type=int, default=65536, help="bank size")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of timing per side")
    args = parser.parse_args()
    torch.manual_seed(0)
    ours_fn = fastrepr.NTXentLoss(0.5, memory_bank_size=(args.k, args.d))
    base_fn = DenseBank(ours_fn.bank, 0.5)
    out0, out1 = (torch.randn(args.n, args.d, requires_grad=True) for _ in range(2))

    def step(fn):
        def call():
            out0.grad = out1.grad = None
            loss = fn(out0, out1)
            loss.backward()
            return loss
        return call

    a, b = float(step(ours_fn)()), float(step(base_fn)())
    cpu = torch.device("cpu")
    t_ours, t_base = time_pair(step(ours_fn), step(base_fn), cpu, budget_s=args.budget)
    m_ours, m_base = peak_memory(step(ours_fn), cpu), peak_memory(step(base_fn), cpu)
    print(f"device: {device_name(cpu)}, torch threads {torch.get_num_threads()}; N={args.n} anchors (2N={2 * args.n}), "
          f"D={args.d}, K={args.k}; first-step losses ours {a:.6f} baseline {b:.6f}")
    print(f"fwd+bwd+enqueue median: ours {t_ours:.1f} ms, baseline {t_base:.1f} ms, ratio {t_ours / t_base:.3f}")
    print(f"peak extra memory: ours {m_ours / 2**20:.1f} MiB, baseline {m_base / 2**20:.1f} MiB, "
          f"ratio {m_ours / max(m_base, 1):.3f}")


if __name__ == "__main__":
    main()
