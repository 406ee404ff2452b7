"""SigLIP (fastrepr.siglip_loss) against its dense definition, the computation open_clip's SigLipLoss runs
(``fastrepr.reference.siglip_loss``: the N x N logits, logsigmoid, sum / N), timed as forward + backward (one
training step: `siglip`) and forward alone (`siglip_forward`). Sizes are (N, D) pairs: 2N embeddings in all, N images and N texts."""
from __future__ import annotations

import torch

from fastrepr import reference
from fastrepr.functional import siglip_loss

from ..harness import Bench, train_step


def _pairs_setup(size, device, dtype):
    n, d = size
    x, y = (torch.randn(n, d, device=device, dtype=dtype, requires_grad=True) for _ in range(2))
    t = torch.tensor(10.0, device=device, requires_grad=True)
    b = torch.tensor(-10.0, device=device, requires_grad=True)
    return {"x": x, "y": y, "t": t, "b": b, "leaves": (x, y, t, b)}


def entries() -> list[Bench]:
    # CPU 4096 pairs = the 2N = 8192 embeddings at D = 128
    sizes = {"cpu": [(1024, 128), (4096, 128)], "cuda": [(1024, 128), (4096, 128), (16384, 128), (65536, 128)]}
    common = dict(size_names=("N", "D"), sizes=sizes, setup=_pairs_setup,
                  dtypes={"cpu": torch.float32, "cuda": torch.bfloat16}, work=lambda s: s[0] ** 2 * s[1],
                  work_label="N²·D", demo={})
    name = "torch reference (N x N logits + logsigmoid, as open_clip's SigLipLoss)"
    ours = lambda x: siglip_loss(x["x"], x["y"], x["t"], x["b"])  # noqa: E731
    base = lambda x: reference.siglip_loss(x["x"], x["y"], x["t"], x["b"])  # noqa: E731
    return [Bench(op="siglip", baseline_name=name, ours=train_step(ours), baseline=train_step(base), **common),
            Bench(op="siglip_forward", baseline_name=name, ours=ours, baseline=base, **common)]
