"""Interpolation in latent space and the image grids that show it.

  interpolate(z_a, z_b, steps, kind)              points along the line or the great circle from z_a to z_b
  interpolation_grid(decode, z_a, z_b, steps, path)  a PNG: one row per pair, decoded along its path
  latent_traversal_grid(decode, z, dims, span, path) a PNG: one row per latent, traversed with the others fixed
                                                     (Higgins et al. 2017, beta-VAE, Fig. 1)
  image_grid(images, path)                        a PNG of given images [R, K, ...] (originals over reconstructions)
The decoder is any callable mapping codes [B, D] to images [B, C, H, W] (C = 1 or 3) or [B, H, W] with values in
[0, 1] (clipped; a NaN is an error). PNGs are written atomically (fastrepr._io.atomic_write) with matplotlib's
image writer (no figure, no display backend needed).
"""
from __future__ import annotations

import numpy as np
import torch

from .. import _checks, _io

PAD = 2  # white pixels between and around the cells of a grid


def interpolate(z_a: torch.Tensor, z_b: torch.Tensor, steps: int, kind: str = "linear") -> torch.Tensor:
    """Points from z_a to z_b: [steps, *shape] for z_a, z_b of one shape [..., D] (dtype and device kept).

    kind="linear": (1 - w) z_a + w z_b for w = 0, 1/(steps-1), ..., 1. kind="slerp" (Shoemake 1985; White 2016
    for generative models): sin((1-w)θ)/sin θ · z_a + sin(wθ)/sin θ · z_b per vector along the last dimension,
    θ the angle between them; where sin θ < 1e-6 (parallel or antiparallel vectors, where the great circle is
    undefined or not unique) it falls back to linear. steps >= 2. Memory O(steps · numel)."""
    z_a, z_b = _checks.floating(_checks.tensor(z_a, "z_a"), "z_a"), _checks.floating(_checks.tensor(z_b, "z_b"), "z_b")
    if z_a.shape != z_b.shape or z_a.dim() == 0:
        raise ValueError(f"z_a and z_b must have one shape [..., D], got {tuple(z_a.shape)} and {tuple(z_b.shape)}")
    _checks.nonempty(z_a, "z_a", "[..., D]")
    _checks.same_device(z_a=z_a, z_b=z_b)
    _checks.same_dtype(z_a=z_a, z_b=z_b)
    _checks.finite(z_a, "z_a")
    _checks.finite(z_b, "z_b")
    steps = _checks.int_arg(steps, "steps", 2, 1 << 16)
    if kind not in ("linear", "slerp"):
        raise ValueError(f"kind must be 'linear' or 'slerp', got {kind!r}")
    a, b = z_a.to(torch.float64), z_b.to(torch.float64)
    w = torch.linspace(0, 1, steps, dtype=torch.float64, device=z_a.device).reshape((steps,) + (1,) * a.dim())
    linear = (1 - w) * a + w * b
    if kind == "linear":
        return linear.to(z_a.dtype)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    cos = ((a * b).sum(-1, keepdim=True) / (na * nb).clamp_min(1e-300)).clamp(-1, 1)
    th = torch.arccos(cos)
    sin = torch.sin(th)
    ok = (sin > 1e-6) & (na > 0) & (nb > 0)
    safe = torch.where(ok, sin, torch.ones_like(sin))
    sph = (torch.sin((1 - w) * th) * a + torch.sin(w * th) * b) / safe
    return torch.where(ok, sph, linear).to(z_a.dtype)


def _decode(decode, codes: torch.Tensor) -> np.ndarray:
    """[B, H, W, C] float64 images in [0, 1] from the decoder's [B, C, H, W] or [B, H, W] output."""
    with torch.no_grad():
        out = decode(codes)
    out = torch.as_tensor(out).detach().to(torch.float64).cpu()
    if out.dim() == 3:
        out = out.unsqueeze(1)
    if out.dim() != 4 or out.shape[0] != codes.shape[0] or out.shape[1] not in (1, 3):
        raise ValueError(f"decode must return [B, C, H, W] (C = 1 or 3) or [B, H, W] images for B = {codes.shape[0]} "
                         f"codes, got shape {tuple(out.shape)}")
    if torch.isnan(out).any():
        raise ValueError("decode returned NaN pixels")
    out = out.clamp(0, 1).permute(0, 2, 3, 1)
    return (out.expand(-1, -1, -1, 3) if out.shape[-1] == 1 else out).numpy()


def _write_grid(cells: np.ndarray, path) -> tuple[int, int]:
    """Tile cells [R, K, H, W, 3] into one PNG (PAD white pixels around each) and write it atomically; returns the
    image's (height, width) = (R (H + PAD) + PAD, K (W + PAD) + PAD)."""
    from matplotlib import image as mpimg

    R, K, H, W, _ = cells.shape
    grid = np.ones((R * (H + PAD) + PAD, K * (W + PAD) + PAD, 3))
    for r in range(R):
        for k in range(K):
            y, x = PAD + r * (H + PAD), PAD + k * (W + PAD)
            grid[y:y + H, x:x + W] = cells[r, k]
    _io.check_writable(path)
    with _io.atomic_write(path, "wb") as f:
        mpimg.imsave(f, grid, format="png")
    return grid.shape[:2]


def interpolation_grid(decode, z_a: torch.Tensor, z_b: torch.Tensor, steps: int, path, kind: str = "linear"):
    """Decode ``interpolate(z_a, z_b, steps, kind)`` and write a PNG grid to ``path``: one row per pair (z_a, z_b
    [D] -> one row, [R, D] -> R rows), ``steps`` columns from z_a to z_b. One decoder call of R·steps codes.
    Returns the PNG's (height, width) in pixels. Memory: the decoded images plus the grid."""
    if not callable(decode):
        raise TypeError(f"decode must be callable, got {type(decode).__name__}")
    path_codes = interpolate(z_a, z_b, steps, kind)          # [steps, (R,) D]
    if path_codes.dim() == 2:
        path_codes = path_codes.unsqueeze(1)
    if path_codes.dim() != 3:
        raise ValueError(f"z_a must have shape [D] or [R, D], got {tuple(z_a.shape)}")
    S, R, D = path_codes.shape
    imgs = _decode(decode, path_codes.transpose(0, 1).reshape(R * S, D))
    return _write_grid(imgs.reshape((R, S) + imgs.shape[1:]), path)


def latent_traversal_grid(decode, z: torch.Tensor, dims, span=3.0, path=None, steps: int = 7):
    """Higgins et al. 2017's latent traversals: for each latent d in ``dims`` (one row each), ``steps`` codes equal
    to z [D] except z[d] = v for v evenly spaced in [-span, span] (span a number) or [lo, hi] (a pair), decoded
    and written as a PNG grid to ``path``. Returns the PNG's (height, width)."""
    if not callable(decode):
        raise TypeError(f"decode must be callable, got {type(decode).__name__}")
    z = _checks.floating(_checks.tensor(z, "z"), "z")
    _checks.ndim(z, 1, "z", "[D]")
    _checks.nonempty(z, "z", "[D]")
    _checks.finite(z, "z")
    if path is None:
        raise ValueError("path is required (where to write the PNG)")
    dims = [_checks.int_arg(d, "dims", 0, z.shape[0] - 1) for d in (dims if isinstance(dims, (list, tuple)) else [dims])]
    if not dims:
        raise ValueError("dims must name at least one latent")
    lo, hi = (-span, span) if not isinstance(span, (list, tuple)) else span
    lo, hi = _checks.float_arg(lo, "span"), _checks.float_arg(hi, "span")
    steps = _checks.int_arg(steps, "steps", 2, 1 << 16)
    values = torch.linspace(lo, hi, steps, dtype=z.dtype, device=z.device)
    codes = z.expand(len(dims), steps, -1).clone()
    for r, d in enumerate(dims):
        codes[r, :, d] = values
    imgs = _decode(decode, codes.reshape(len(dims) * steps, -1))
    return _write_grid(imgs.reshape((len(dims), steps) + imgs.shape[1:]), path)


def image_grid(images, path):
    """Write images [R, K, C, H, W] or [R, K, H, W] (values in [0, 1], C = 1 or 3) as a PNG grid of R rows and K
    columns (e.g. originals over their reconstructions). Returns the PNG's (height, width)."""
    images = torch.as_tensor(images)
    if images.dim() == 4:
        images = images.unsqueeze(2)
    if images.dim() != 5 or images.shape[0] == 0 or images.shape[1] == 0:
        raise ValueError(f"images must be [R, K, C, H, W] or [R, K, H, W], got {tuple(images.shape)}")
    R, K = images.shape[:2]
    cells = _decode(lambda flat: flat, images.reshape((R * K,) + tuple(images.shape[2:])))
    return _write_grid(cells.reshape((R, K) + cells.shape[1:]), path)
