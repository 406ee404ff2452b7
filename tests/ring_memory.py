"""Per-rank peak memory of gather_distributed="ring" against the all-gather (True), at W = 2 and 4 gloo ranks with
the same per-rank batch: a measurement script (not collected by pytest; tests/test_ring_contrastive.py asserts
the saved-for-backward bytes instead, which are deterministic).

    flock /tmp/fastrepr-bench.lock env PYTHONPATH=$PWD python tests/ring_memory.py [--n 512 --d 2048]

Each (loss, mode, W) runs in freshly forked processes; each rank warms up on a tiny batch, then measures one
forward + backward: peak resident memory above the resident memory before it (Linux: /proc/self/clear_refs
resets VmHWM). glibc's mmap threshold is pinned at 64 KiB in each rank (mallopt), so every tensor buffer is its
own mapping, returned at free, and RSS follows the live tensors instead of the allocator's cached heap. Prints
one row per case: the largest rank's peak extra MiB, the rank-0 time, and the bytes autograd saved for backward.
tests/test_ring_contrastive.py calls measure() at a small size and asserts the ring's peak does not grow with W.

Measured (2-core Xeon shared with other jobs, torch 2.13 CPU, fp32, torch implementation; peak extra MiB per rank):
  --n 512 --d 2048 (per-rank [z1; z2] 8 MiB)      W=2    W=4
    nt_xent  ring / all-gather                   106 / 130   114 / 225
    info_nce ring / all-gather                    58 / 86     62 / 148
    sup_con  ring / all-gather                    50 / 66     54 / 111
  --n 256 --d 4096 --losses nt_xent --worlds 2,4,8:  ring 104, 112, 112; all-gather 137, 226, 417
The ring's step from W=2 to W>=3 is one exchange of a block with its gradient (both in flight: W=2's last hop
sends the gradient alone); from there on it is flat, while the all-gather adds ~6 blocks per rank.
"""
import argparse
import os
import ctypes
import gc
import tempfile
import time

import torch
import torch.distributed as dist

import fastrepr
from utils import fork_workers, free_port

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def _status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(field)


def _loss(name, a, b, labels, mode):
    if name == "nt_xent":
        return fastrepr.nt_xent(a, b, 0.2, gather_distributed=mode)
    if name == "info_nce":
        return fastrepr.info_nce(a, b, 0.2, gather_distributed=mode)
    return fastrepr.sup_con(a, labels, 0.2, gather_distributed=mode)


def _worker(rank, world, port, name, mode, n, d, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 65536)  # fixed: no dynamic raise after frees
    except OSError:  # not glibc: RSS then also holds the allocator's cached heap (peaks read lower)
        pass
    # the parent's heap is shared copy-on-write: a garbage collection inside the measured call would touch (and
    # so copy) every inherited object, and the peak would measure the parent's size (seen after the full suite)
    gc.collect()
    gc.freeze()
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        g = torch.Generator().manual_seed(rank)
        for rows in (8, n):  # warm-up (imports, op registration, gloo buffers), then the measured call
            a = torch.randn(rows, d, generator=g).requires_grad_()
            b = torch.randn(rows, d, generator=g).requires_grad_()
            labels = torch.randint(0, 10, (rows,), generator=g)
            saved = [0]

            def pack(t):
                saved[0] += t.numel() * t.element_size()
                return t

            dist.barrier()
            before = _status("VmRSS")
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            start = time.perf_counter()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = _loss(name, a, b, labels, mode)
            loss.backward()
            seconds = time.perf_counter() - start
            peak = _status("VmHWM") - before
            del loss, a, b
        torch.save({"peak": peak, "seconds": seconds, "saved": saved[0]}, os.path.join(out, f"{rank}.pt"))
        dist.barrier()
    finally:
        dist.destroy_process_group()


def measure(name: str, mode, world: int, n: int, d: int) -> list[dict]:
    """Per-rank {"peak": bytes, "seconds", "saved": bytes} of one forward + backward of loss `name`."""
    with tempfile.TemporaryDirectory() as out:
        fork_workers(_worker, (world, free_port(), name, mode, n, d, out), world)
        return [torch.load(os.path.join(out, f"{r}.pt"), weights_only=True) for r in range(world)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=512, help="rows per rank (per view for nt_xent / info_nce)")
    parser.add_argument("--d", type=int, default=2048, help="features")
    parser.add_argument("--losses", default="nt_xent,info_nce,sup_con")
    parser.add_argument("--worlds", default="2,4")
    args = parser.parse_args()
    block = args.n * args.d * 4 / 2 ** 20
    print(f"per rank: n={args.n} rows per view, D={args.d}, fp32 (one view's block {block:.1f} MiB); "
          f"torch {torch.__version__}; FASTREPR_BACKEND={os.environ.get('FASTREPR_BACKEND', '')!r}")
    print("loss | mode | W | peak extra MiB (max over ranks) | rank-0 fwd+bwd s | saved for backward MiB")
    for name in args.losses.split(","):
        for mode in ("ring", True):
            for world in map(int, args.worlds.split(",")):
                res = measure(name, mode, world, args.n, args.d)
                print(f"{name} | {mode!s:>4} | {world} | {max(r['peak'] for r in res) / 2 ** 20:8.1f} | "
                      f"{res[0]['seconds']:6.2f} | {max(r['saved'] for r in res) / 2 ** 20:7.1f}", flush=True)


if __name__ == "__main__":
    main()
