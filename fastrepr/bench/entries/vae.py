"""β-VAE family losses against their plain-PyTorch forms (forward + backward, one training step's worth):

  beta_vae_loss        uint8 64x64 targets: fastrepr's fused reconstruction vs F.binary_cross_entropy_with_logits
                       on x.float() (the per-pixel float32 copy a plain caller makes), plus the closed-form KL
  total_correlation    β-TCVAE's log q(z) over all B×B pairs: the streaming kernel vs disentanglement_lib's dense
                       [B, B, D] formula (fastrepr.reference.total_correlation); peak memory is the point
"""
from __future__ import annotations

import torch

from fastrepr import reference
from fastrepr.functional_vae import beta_vae_loss, total_correlation

from ..harness import Bench, train_step


def _vae_setup(size, device, dtype):
    B, P, D = size
    leaves = [torch.randn(B, P, device=device, dtype=dtype), torch.randn(B, D, device=device, dtype=dtype),
              0.5 * torch.randn(B, D, device=device, dtype=dtype)]
    x = (torch.rand(B, P, device=device) > 0.8).to(torch.uint8)
    return {"leaves": [t.requires_grad_(True) for t in leaves], "x": x}


def _tc_setup(size, device, dtype):
    B, D = size
    mu = torch.randn(B, D, device=device, dtype=dtype)
    lv = 0.5 * torch.randn(B, D, device=device, dtype=dtype) - 1
    z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
    return {"leaves": [t.requires_grad_(True) for t in (z, mu, lv)]}


def _plain_vae(x):
    s, mu, lv = x["leaves"]
    recon = torch.nn.functional.binary_cross_entropy_with_logits(s, x["x"].float(), reduction="none").sum(1)
    return (recon + 4.0 * 0.5 * (mu * mu + lv.exp() - lv - 1).sum(1)).mean()


def entries() -> list[Bench]:
    vae_sizes = {"cpu": [(64, 4096, 10), (256, 4096, 10)], "cuda": [(256, 4096, 10), (2048, 4096, 10)]}
    tc_sizes = {"cpu": [(256, 10), (1024, 10), (4096, 10)], "cuda": [(1024, 10), (4096, 10), (4096, 64)]}
    return [
        Bench(op="beta_vae_loss", baseline_name="torch BCE-with-logits on x.float() + KL",
              size_names=("B", "P", "D"), sizes=vae_sizes, setup=_vae_setup,
              ours=train_step(lambda x: beta_vae_loss(x["leaves"][0], x["x"], *x["leaves"][1:], 4.0)),
              baseline=train_step(_plain_vae), work=lambda s: s[0] * s[1], work_label="B·P"),
        Bench(op="total_correlation", baseline_name="dense [B,B,D] (disentanglement_lib)",
              size_names=("B", "D"), sizes=tc_sizes, setup=_tc_setup,
              ours=train_step(lambda x: total_correlation(*x["leaves"]).mean()),
              baseline=train_step(lambda x: reference.total_correlation(*x["leaves"]).mean()),
              work=lambda s: s[0] * s[0] * s[1], work_label="B²·D"),
    ]
