"""Models whose representations the disentanglement metrics judge (issue 15).

``VAE``: a Gaussian encoder q(z|x) = N(mu(x), diag exp(logvar(x))) and a Bernoulli-logits decoder for 64x64
single-channel images (dSprites), as disentanglement_lib (Locatello et al. 2019) builds them:

  arch="conv" (the study's, ``conv_encoder`` / ``deconv_decoder`` of disentanglement_lib's architectures.py):
      encoder  conv 32 4x4 s2 -> conv 32 4x4 s2 -> conv 64 2x2 s2 -> conv 64 2x2 s2 (ReLU, TF "same" padding)
               -> dense 256 ReLU -> dense D (mu), dense D (logvar)
      decoder  dense 256 ReLU -> dense 1024 ReLU -> [64, 4, 4] -> deconv 64, 32, 32 (4x4 s2, ReLU) -> deconv 1
               (4x4 s2), logits [B, 1, 64, 64]
    The paper's Table 1 lists 4x4 kernels for all four encoder convolutions; the code that produced the study's
    numbers uses 2x2 for the third and fourth, and so does this (``encoder_kernels`` changes it).
  arch="mlp" (``fc_encoder`` / ``fc_decoder``, the β-VAE paper's dSprites model, for quick CPU runs):
      encoder  dense h1 ReLU -> dense h2 ReLU -> mu, logvar; decoder dense h, h, h tanh -> 4096 logits.
    disentanglement_lib's widths are 1200; ``hidden`` sets smaller ones.

Inputs are [B, 1, 64, 64] or [B, 64, 64] or [B, 64, 64, 1] (disentanglement_lib's numpy layout), any float or
uint8/bool dtype with values in [0, 1]. Weights are initialized as TensorFlow's layers do (Glorot uniform,
zero biases), not PyTorch's defaults.
"""
from __future__ import annotations

import torch
from torch import nn

from . import _checks

IMAGE = 64
ARCHS = ("conv", "mlp")


def _glorot(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)


def _same_conv(c_in: int, c_out: int, k: int) -> nn.Module:
    """TF's conv2d(padding="same", strides=2) on an even input: total padding k - 2, split low/high as TF does
    (the extra pixel at the end)."""
    total = max(k - 2, 0)
    conv = nn.Conv2d(c_in, c_out, k, stride=2)
    if total == 0:
        return conv
    return nn.Sequential(nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2)), conv)


class VAE(nn.Module):
    """A β-VAE-family model: ``encode(x) -> (mu, logvar)`` [B, D], ``decode(z) -> logits`` [B, 1, 64, 64],
    ``forward(x, sample=True) -> (logits, mu, logvar, z)`` with z = mu + exp(logvar / 2) · eps (the
    reparameterization; sample=False gives z = mu). ``representation`` is the mean encoder as a batched
    numpy-or-torch function for ``fastrepr.evaluation.disentanglement.evaluate``.

    Args: latent_dim (10 in the study), arch "conv" or "mlp", hidden (mlp widths: (encoder, decoder), default
    disentanglement_lib's (1200, 1200)), encoder_kernels (conv: the four kernel sizes, default (4, 4, 2, 2)).
    Memory: conv 0.5 M parameters at D = 10; mlp with width h about 4096·h·2 + 3h² parameters.
    """

    def __init__(self, latent_dim: int = 10, arch: str = "conv", hidden=(1200, 1200), encoder_kernels=(4, 4, 2, 2)):
        super().__init__()
        self.latent_dim = _checks.int_arg(latent_dim, "latent_dim", 1, 4096)
        if arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {arch!r}")
        self.arch = arch
        d = self.latent_dim
        if arch == "conv":
            ks = tuple(_checks.int_arg(k, "encoder_kernels", 2, 8) for k in encoder_kernels)
            if len(ks) != 4:
                raise ValueError(f"encoder_kernels must be four kernel sizes, got {encoder_kernels!r}")
            chans = (1, 32, 32, 64, 64)
            layers = []
            for i, k in enumerate(ks):
                layers += [_same_conv(chans[i], chans[i + 1], k), nn.ReLU()]
            self.encoder = nn.Sequential(*layers, nn.Flatten(), nn.Linear(64 * 4 * 4, 256), nn.ReLU())
            self.head = nn.Linear(256, 2 * d)
            self.decoder = nn.Sequential(
                nn.Linear(d, 256), nn.ReLU(), nn.Linear(256, 1024), nn.ReLU(), nn.Unflatten(1, (64, 4, 4)),
                nn.ConvTranspose2d(64, 64, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(),
                nn.ConvTranspose2d(32, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, 1, 4, 2, 1))
        else:
            h_enc, h_dec = (hidden, hidden) if isinstance(hidden, int) else tuple(hidden)
            h_enc, h_dec = _checks.int_arg(h_enc, "hidden", 1, 1 << 16), _checks.int_arg(h_dec, "hidden", 1, 1 << 16)
            self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(IMAGE * IMAGE, h_enc), nn.ReLU(),
                                         nn.Linear(h_enc, h_enc), nn.ReLU())
            self.head = nn.Linear(h_enc, 2 * d)
            self.decoder = nn.Sequential(nn.Linear(d, h_dec), nn.Tanh(), nn.Linear(h_dec, h_dec), nn.Tanh(),
                                         nn.Linear(h_dec, h_dec), nn.Tanh(), nn.Linear(h_dec, IMAGE * IMAGE),
                                         nn.Unflatten(1, (1, IMAGE, IMAGE)))
        _glorot(self)

    @staticmethod
    def images(x) -> torch.Tensor:
        """Observations as float [B, 1, 64, 64]: accepts [B, 64, 64], [B, 1, 64, 64] and [B, 64, 64, 1],
        torch or numpy, float (kept) or uint8/bool (to float32)."""
        if not isinstance(x, torch.Tensor):
            import numpy as np

            x = torch.from_numpy(np.ascontiguousarray(x))
        if x.dim() == 4 and x.shape[-1] == 1 and x.shape[1] != 1:
            x = x.permute(0, 3, 1, 2)
        elif x.dim() == 3:
            x = x.unsqueeze(1)
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, IMAGE, IMAGE):
            raise ValueError(f"x must be [B, 1, 64, 64], [B, 64, 64] or [B, 64, 64, 1] images, got {tuple(x.shape)}")
        if not x.dtype.is_floating_point:
            x = x.to(torch.float32)
        return x

    def encode(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        p = next(self.parameters())
        h = self.encoder(self.images(x).to(device=p.device, dtype=p.dtype))
        mu, logvar = self.head(h).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Logits [B, 1, 64, 64]; sigmoid of them are the pixel means."""
        return self.decoder(z)

    def forward(self, x, sample: bool = True):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if sample else mu
        return self.decode(z), mu, logvar, z

    def representation(self, observations, batch_size: int = 1024):
        """The mean encoder mu(x) (disentanglement_lib's ``mean`` representation): [N, D] float32 codes on CPU
        for observations in any layout ``images`` accepts, in batches, without gradients. Deterministic: pass
        ``deterministic=True`` to ``disentanglement.evaluate``."""
        was_training = self.training
        self.eval()
        try:
            x = self.images(observations)
            with torch.no_grad():
                out = [self.encode(x[i:i + batch_size])[0].float().cpu() for i in range(0, x.shape[0], batch_size)]
        finally:
            self.train(was_training)
        return torch.cat(out) if out else torch.zeros((0, self.latent_dim))
