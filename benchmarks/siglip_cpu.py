"""The CPU bar of issue 13 for SigLIP, same run, same process: fastrepr.siglip_loss against the dense loss as
open_clip's SigLipLoss computes it (open_clip/loss.py, SigLipLoss._loss: logits = t x̂ ŷᵀ + b as an N x N matrix,
labels 2·eye - 1, loss = -logsigmoid(labels · logits).sum() / N, on F.normalize'd features), at N = 4096 pairs
(2N = 8192 embeddings), D = 128, fp32, learnable t = exp(log t) and b:

  time    one training step, forward + backward (leaf gradients reset each call), medians of alternating calls
          (fastrepr.bench.harness.time_pair): bar ours <= 1.25x dense
  memory  peak extra resident memory of one training step (each side in its own child process, warmed at a small
          size first, VmHWM reset before the call; fastrepr.bench.harness.peak_memory): bar ours <= 10% of dense

Each row names the CPU, the threads and the implementation that ran.

    flock /tmp/fastrepr-bench.lock .venv/bin/python benchmarks/siglip_cpu.py [--n 4096] [--d 128]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

import torch
import torch.nn.functional as F

from fastrepr import _backend
from fastrepr.bench.harness import device_name, peak_memory, table, time_pair
from fastrepr.functional import siglip_loss


def dense_siglip(x, y, t, b):
    """open_clip's SigLipLoss on normalized features: the N x N logits in memory."""
    x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
    logits = t * x @ y.T + b
    labels = 2 * torch.eye(x.shape[0], dtype=x.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / x.shape[0]


def ours_siglip(x, y, t, b):
    return siglip_loss(x, y, t, b)


def inputs(n: int, d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = x + torch.randn(n, d, generator=g)
    log_t = torch.tensor(10.0).log()
    return [v.requires_grad_() for v in (x, y, log_t, torch.tensor(-10.0))]


def step(loss_fn, leaves):
    """One training step: gradients reset, forward, backward (t = exp(log t) inside, as a model does)."""
    def call():
        for v in leaves:
            v.grad = None
        x, y, log_t, b = leaves
        loss = loss_fn(x, y, log_t.exp(), b)
        loss.backward()
        return loss.detach()
    return call


def memory_child(which: str, n: int, d: int) -> None:
    fn = ours_siglip if which == "ours" else dense_siglip
    step(fn, inputs(256, d))()  # warm the code paths (thread pools, first-touch pages) at a small size
    leaves = inputs(n, d)
    with _backend.recording() as ran:
        peak = peak_memory(step(fn, leaves), torch.device("cpu"))
    print(json.dumps({"peak": peak, "impl": ",".join(f"{k}={v}" for k, v in ran.items()) or "torch (dense)"}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=4096, help="pairs (2N embeddings)")
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--budget", type=float, default=10.0, help="seconds per side for the timing loop")
    p.add_argument("--memory-of", choices=["ours", "dense"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_of:
        return memory_child(args.memory_of, args.n, args.d)
    cpu = f"{device_name(torch.device('cpu'))}, {torch.get_num_threads()} threads"
    size = f"N={args.n} (2N={2 * args.n}) D={args.d}"
    ours_leaves, dense_leaves = inputs(args.n, args.d), inputs(args.n, args.d)
    with _backend.recording() as ran:
        ours_loss = step(ours_siglip, ours_leaves)()
    dense_loss = step(dense_siglip, dense_leaves)()
    grad_diff = max(float((a.grad - b.grad).abs().max() / b.grad.abs().max())
                    for a, b in zip(ours_leaves, dense_leaves))
    t_ours, t_dense = time_pair(step(ours_siglip, ours_leaves), step(dense_siglip, dense_leaves),
                                torch.device("cpu"), budget_s=args.budget, warmup=False)
    impl = ",".join(f"{k}={v}" for k, v in ran.items())
    peaks = {}
    for which in ("ours", "dense"):
        proc = subprocess.run([sys.executable, __file__, "--memory-of", which, "--n", str(args.n), "--d",
                               str(args.d)], capture_output=True, text=True, check=True)
        peaks[which] = json.loads(proc.stdout.strip().splitlines()[-1])["peak"] / 2**20
    ratio_t, ratio_m = t_ours / t_dense, peaks["ours"] / peaks["dense"]
    rows = [
        ["siglip fwd+bwd time", size, impl, f"{t_ours:.0f} ms", f"{t_dense:.0f} ms dense (open_clip's formula)",
         f"{ratio_t:.2f}x of dense", "bar <= 1.25x: " + ("met" if ratio_t <= 1.25 else "MISSED"), cpu],
        ["siglip fwd+bwd peak extra memory", size, impl, f"{peaks['ours']:.1f} MiB", f"{peaks['dense']:.1f} MiB dense",
         f"{100 * ratio_m:.1f}% of dense", "bar <= 10%: " + ("met" if ratio_m <= 0.10 else "MISSED"), cpu],
        ["siglip agreement", size, impl, f"loss {float(ours_loss):.6f}", f"loss {float(dense_loss):.6f}",
         f"rel {abs(float(ours_loss - dense_loss)) / abs(float(dense_loss)):.1e}", f"max grad rel {grad_diff:.1e}",
         cpu],
    ]
    print(table(["what", "size", "impl", "ours", "baseline", "ratio", "check", "cpu"], rows))


if __name__ == "__main__":
    main()
