"""Procedural dSprites (Matthey, Higgins, Hassabis & Lerchner 2017), rendered on demand.

The original data set is 737 280 binary 64x64 images, every combination of
    color 1 (white) | shape 3 (square, ellipse, heart) | scale 6: linspace(0.5, 1, 6) |
    orientation 40: linspace(0, 2*pi, 40), endpoint included | posX 32, posY 32: linspace(0, 1, 32),
stored in that order: image index = dot(factors, [737280, 245760, 40960, 1024, 32, 1]). disentanglement_lib's
``dsprites_full`` evaluates the five non-constant factors [3, 6, 40, 32, 32] and fills in the constant color.

Rendering, here: a shape is drawn in its own frame (u right, w up; the square is |u|, |w| <= 1, the ellipse
u^2 + (2w)^2 <= 1, the heart (u^2 + w^2 - 1)^3 <= u^2 w^3 moved so that its centroid is the origin), rotated
counter-clockwise by the orientation and scaled by 10 px * scale, with a pixel on iff its centre falls inside
(binary point sampling). Its centre sits at pixel coordinates (16 + 31 posX, 16 + 31 posY) (x right, y down),
so one position step is exactly one pixel: every image is one of the 3 * 6 * 40 = 720 pre-rendered 32x32
patches copied at offset (posY step, posX step) into a zero canvas. That makes a batch cheap to render on
CPU (native copy kernel) and GPU (one scatter), and positions exact. Shapes are centred (rotation keeps the
centroid); sizes differ from the original files, which this does not try to reproduce pixel for pixel.

Sampling follows disentanglement_lib's GroundTruthData / SplitDiscreteStateSpace: ``sample_factors`` draws
one ``random_state.randint(size, size=num)`` per latent factor, column by column, and
``sample_observations_from_factors`` draws the non-latent factors the same way (``randint(1, size=n)`` for
the color, which consumes nothing), so the same RandomState gives the same factors as disentanglement_lib.
``DSprites.from_npz`` reads the original ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` instead.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .. import _native

FACTOR_NAMES = ("color", "shape", "scale", "orientation", "posX", "posY")
FACTOR_SIZES = (1, 3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
IMAGE_SIZE = 64
PATCH_SIZE = 32          # every sprite fits in a 32x32 patch around its centre (largest radius 14.2 px)
UNIT_PX = 10.0           # half-size of a shape at scale 1, in pixels
CENTRE_PX = 16.0         # the centre of a sprite at posX = posY = 0 (and inside its patch)
RENDER_CHUNK = 4096      # images per rendering call when rendering many


def factor_values() -> dict[str, np.ndarray]:
    """The value of every factor level, as the original npz's latents_values."""
    return {"color": np.ones(1), "shape": np.arange(1.0, 4.0), "scale": np.linspace(0.5, 1.0, 6),
            "orientation": np.linspace(0.0, 2 * math.pi, 40), "posX": np.linspace(0.0, 1.0, 32),
            "posY": np.linspace(0.0, 1.0, 32)}


def _bases(sizes) -> np.ndarray:
    sizes = np.asarray(sizes, np.int64)
    return (np.prod(sizes) // np.cumprod(sizes)).astype(np.int64)


def _inside(shape: str, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if shape == "square":
        return (u.abs() <= 1) & (w.abs() <= 1)
    if shape == "ellipse":
        return u * u + 4 * w * w <= 1
    return (u * u + w * w - 1) ** 3 - u * u * w ** 3 <= 0


def _heart_centroid() -> float:
    """w of the heart's area centroid (u is 0 by symmetry), on a fine grid."""
    g = torch.linspace(-1.5, 1.5, 1501, dtype=torch.float64)  # 0.002-unit cells: centroid to ~0.01 px
    u, w = torch.meshgrid(g, g, indexing="xy")
    inside = _inside("heart", u, w)
    return float(w[inside].mean())


def render_patches() -> torch.Tensor:
    """[3 * 6 * 40, 32, 32] uint8 sprites at posX = posY = 0, indexed (shape * 6 + scale) * 40 + orientation."""
    values = factor_values()
    centre = torch.arange(PATCH_SIZE, dtype=torch.float64) + 0.5 - CENTRE_PX
    yy, xx = torch.meshgrid(centre, centre, indexing="ij")     # pixel centres relative to the sprite centre
    up = -yy                                                   # image rows grow downwards
    heart_dw = _heart_centroid()
    patches = []
    for shape in SHAPES:
        for scale in values["scale"]:
            for theta in values["orientation"]:
                c, s = math.cos(theta), math.sin(theta)
                # rotate the pixel back by -theta into the shape's frame, then undo the scale
                u = (c * xx + s * up) / (UNIT_PX * scale)
                w = (-s * xx + c * up) / (UNIT_PX * scale)
                if shape == "heart":
                    w = w + heart_dw
                patches.append(_inside(shape, u, w).to(torch.uint8))
    return torch.stack(patches)


class DSprites:
    """dSprites as a disentanglement_lib GroundTruthData: procedural, or from the original npz.

    Args:
        latent_factor_indices: which of the six factors are ground-truth factors (default: the five
            non-constant ones, [1, 2, 3, 4, 5], as disentanglement_lib's ``dsprites_full``).
        device: where ``render`` and tensor observations live (default CPU).
        as_tensor: observations as torch float32 [n, 1, 64, 64] on ``device`` (default: numpy float32
            [n, 64, 64, 1], disentanglement_lib's layout).
    Memory: the 720 patches (737 KB); images only for the batch asked for (``all_images`` renders all).
    """

    def __init__(self, latent_factor_indices=None, *, device=None, as_tensor: bool = False,
                 _images: torch.Tensor | None = None, _sizes=FACTOR_SIZES):
        self.full_factor_sizes = tuple(int(s) for s in _sizes)
        if latent_factor_indices is None:
            latent_factor_indices = [i for i, s in enumerate(self.full_factor_sizes) if s > 1]
        latent, n = [int(i) for i in latent_factor_indices], len(self.full_factor_sizes)
        if not latent or len(set(latent)) != len(latent) or not all(0 <= i < n for i in latent):
            raise ValueError(f"latent_factor_indices must be distinct indices in [0, {n}), got {latent_factor_indices!r}")
        self.latent_factor_indices = latent
        self.observation_factor_indices = [i for i in range(len(self.full_factor_sizes)) if i not in latent]
        self.factor_bases = _bases(self.full_factor_sizes)
        # whether sample_observations_from_factors draws random numbers (randint(1) for a one-valued factor
        # draws none): lets the evaluation turn all factors into image indices at once
        self.observation_draws = any(self.full_factor_sizes[i] > 1 for i in self.observation_factor_indices)
        self.sample_factors_by_randint = True  # sample_factors: one randint(size, size=num) per latent factor
        self.device = torch.device(device or "cpu")
        self.as_tensor = as_tensor
        self._images = _images
        self._patches = None if _images is not None else render_patches()
        self._patches_on: dict[torch.device, torch.Tensor] = {}

    # ------------------------------------------------------------------ GroundTruthData interface

    @property
    def num_factors(self) -> int:
        return len(self.latent_factor_indices)

    @property
    def factors_num_values(self) -> list[int]:
        return [self.full_factor_sizes[i] for i in self.latent_factor_indices]

    @property
    def observation_shape(self) -> list[int]:
        return [1, IMAGE_SIZE, IMAGE_SIZE] if self.as_tensor else [IMAGE_SIZE, IMAGE_SIZE, 1]

    def sample_factors(self, num: int, random_state: np.random.RandomState) -> np.ndarray:
        """[num, num_factors] int64 latent factors: one randint(size, size=num) per factor, in order."""
        factors = np.zeros((num, self.num_factors), dtype=np.int64)
        for pos, i in enumerate(self.latent_factor_indices):
            factors[:, pos] = random_state.randint(self.full_factor_sizes[i], size=num)
        return factors

    def sample_observations_from_factors(self, factors, random_state: np.random.RandomState):
        return self.observations_from_indices(self.observation_indices(factors, random_state))

    def sample(self, num: int, random_state: np.random.RandomState):
        factors = self.sample_factors(num, random_state)
        return factors, self.sample_observations_from_factors(factors, random_state)

    def sample_observations(self, num: int, random_state: np.random.RandomState):
        return self.sample(num, random_state)[1]

    # ------------------------------------------------------------------ indices and rendering

    def observation_indices(self, factors, random_state: np.random.RandomState) -> np.ndarray:
        """[n] int64 image indices for latent factors [n, num_factors]; draws the non-latent factors with
        random_state exactly as disentanglement_lib's SplitDiscreteStateSpace.sample_all_factors."""
        factors = np.asarray(factors)
        if factors.ndim != 2 or factors.shape[1] != self.num_factors:
            raise ValueError(f"factors must have shape [n, {self.num_factors}], got {factors.shape}")
        sizes = np.asarray(self.factors_num_values)
        if factors.size and ((factors < 0).any() or (factors >= sizes).any()):
            raise ValueError(f"factors out of range: column j must lie in [0, {sizes.tolist()}[j])")
        n = factors.shape[0]
        full = np.zeros((n, len(self.full_factor_sizes)), dtype=np.int64)
        full[:, self.latent_factor_indices] = factors
        for i in self.observation_factor_indices:
            full[:, i] = random_state.randint(self.full_factor_sizes[i], size=n)
        return full @ self.factor_bases

    def _image_indices(self, indices) -> np.ndarray:
        """indices as [n] int64, or TypeError for non-integers (1.7 would silently become image 1) and ValueError
        outside [0, number of images)."""
        arr = np.asarray(indices.cpu() if isinstance(indices, torch.Tensor) else indices)
        if arr.size and not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == bool):
            raise TypeError(f"image indices must be integers, got {arr.dtype}")
        arr = arr.astype(np.int64).reshape(-1)  # a copy: callers may modify it
        total = int(np.prod(self.full_factor_sizes))
        if arr.size and (int(arr.min()) < 0 or int(arr.max()) >= total):
            raise ValueError(f"image indices must lie in [0, {total}), got [{int(arr.min())}, {int(arr.max())}]")
        return arr

    def index_to_factors(self, indices) -> np.ndarray:
        """[n, 6] int64 factors of image indices (all six, color first)."""
        rest = self._image_indices(indices)
        out = np.empty((rest.shape[0], len(self.full_factor_sizes)), np.int64)
        for i, base in enumerate(self.factor_bases):
            out[:, i], rest = np.divmod(rest, base)
        return out

    def observations_from_indices(self, indices):
        """Observations in this data set's format (see the class docstring) for image indices."""
        images = self.render(indices, dtype=torch.float32, device=self.device if self.as_tensor else "cpu")
        if self.as_tensor:
            return images.unsqueeze(1)
        return images.numpy()[..., None]

    def render(self, indices, dtype: torch.dtype = torch.uint8, device=None) -> torch.Tensor:
        """[n, 64, 64] images (0/1 in ``dtype``: uint8 or float32) for image indices, on ``device``.

        Native copy kernel for CPU output when the extension is built; one scatter otherwise (GPU). Memory:
        the output, plus [n, 1024] int64 indices on the scatter path.
        """
        device = torch.device(device or self.device)
        if dtype not in (torch.uint8, torch.float32):
            raise TypeError(f"dtype must be torch.uint8 or torch.float32, got {dtype}")
        idx = torch.from_numpy(self._image_indices(indices))
        if self._images is not None:
            return self._images[idx.to(self._images.device)].to(device=device, dtype=dtype)
        n = idx.numel()
        full = torch.from_numpy(self.index_to_factors(idx.numpy()))
        patch = (full[:, 1] * FACTOR_SIZES[2] + full[:, 2]) * FACTOR_SIZES[3] + full[:, 3]
        row0, col0 = full[:, 5].contiguous(), full[:, 4].contiguous()
        if device.type == "cpu" and _native.available()[0]:
            out = torch.empty((n, IMAGE_SIZE, IMAGE_SIZE), dtype=dtype)
            threads = torch.get_num_threads() if n >= 1024 else 1  # small batches: not worth a thread team
            _native.get().dsprites_render(self._patches.numpy(), patch.numpy(), row0.numpy(), col0.numpy(),
                                          out.numpy(), str(dtype).replace("torch.", ""), threads)
            return out
        return self._render_torch(patch, row0, col0, dtype, device)

    def _render_torch(self, patch, row0, col0, dtype, device) -> torch.Tensor:
        if device not in self._patches_on:
            self._patches_on[device] = self._patches.to(device)
        patches = self._patches_on[device]
        patch, row0, col0 = patch.to(device), row0.to(device), col0.to(device)
        n = patch.numel()
        ar = torch.arange(PATCH_SIZE, device=device)
        flat = ((row0[:, None, None] + ar[None, :, None]) * IMAGE_SIZE + col0[:, None, None] + ar[None, None, :])
        out = torch.zeros((n, IMAGE_SIZE * IMAGE_SIZE), dtype=dtype, device=device)
        out.scatter_(1, flat.reshape(n, -1), patches[patch].reshape(n, -1).to(dtype))
        return out.view(n, IMAGE_SIZE, IMAGE_SIZE)

    def all_images(self, dtype: torch.dtype = torch.uint8, device=None) -> torch.Tensor:
        """Every image, [prod(sizes), 64, 64] (2.9 GB as uint8 for the full grid), rendered in chunks."""
        total = int(np.prod(self.full_factor_sizes))
        out = torch.empty((total, IMAGE_SIZE, IMAGE_SIZE), dtype=dtype, device=device or self.device)
        for lo in range(0, total, RENDER_CHUNK):
            out[lo:lo + RENDER_CHUNK] = self.render(np.arange(lo, min(lo + RENDER_CHUNK, total)), dtype, out.device)
        return out

    # ------------------------------------------------------------------ the original file

    @classmethod
    def from_npz(cls, path, latent_factor_indices=None, *, device=None, as_tensor: bool = False) -> "DSprites":
        """dSprites from ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (``imgs`` [n, 64, 64] in grid order;
        files of the same layout over another grid work too). The images are held in memory as uint8 (2.9 GB
        for the original file).

        Nothing is unpickled: the file's ``metadata`` entry (a pickled dict) is never read. The factor sizes
        come from plain arrays: ``latents_sizes`` when the file has one, else ``latents_classes`` [n, k]
        (sizes = column maxima + 1, and every row must be the grid index of its image), else the original
        grid when ``imgs`` has its 737280 images. Raises FormatError (a ValueError) naming the file for an
        object (pickled) array, a damaged archive, or arrays that do not fit together.
        """
        from .._io import FormatError, load_npz

        arrays = load_npz(path, ("imgs", "latents_sizes", "latents_classes"))
        if "imgs" not in arrays:
            raise FormatError(path, "no 'imgs' array (expected the dSprites npz layout)")
        imgs = arrays["imgs"]
        if imgs.ndim != 3:
            raise FormatError(path, f"imgs has shape {imgs.shape}, expected [n, H, W]")
        sizes = FACTOR_SIZES
        if "latents_sizes" in arrays:
            raw = arrays["latents_sizes"]
            if raw.ndim != 1 or not 1 <= raw.size <= 32 or raw.dtype.kind not in "iu" or (raw < 1).any():
                raise FormatError(path, f"latents_sizes must be 1 to 32 positive integers, got {raw!r}")
            sizes = tuple(int(v) for v in raw)
        elif "latents_classes" in arrays:
            classes = arrays["latents_classes"]
            if classes.ndim != 2 or classes.shape[0] != imgs.shape[0] or not 1 <= classes.shape[1] <= 32 \
                    or classes.dtype.kind not in "iu" or (classes < 0).any():
                raise FormatError(path, f"latents_classes must be non-negative integers [{imgs.shape[0]}, k], got "
                                  f"{classes.dtype} {classes.shape}")
            sizes = tuple(int(v) + 1 for v in classes.max(axis=0))
            if math.prod(sizes) == imgs.shape[0]:
                grid = classes.astype(np.int64) @ _bases(sizes)
                if not np.array_equal(grid, np.arange(imgs.shape[0])):
                    bad = int(np.flatnonzero(grid != np.arange(imgs.shape[0]))[0])
                    raise FormatError(path, f"image {bad} has latents_classes {classes[bad].tolist()}: the images "
                                      "are not stored in grid order", record=bad)
        if imgs.shape[0] != math.prod(sizes):
            raise FormatError(path, f"imgs has shape {imgs.shape}, expected [{math.prod(sizes)}, H, W] for "
                              f"latents_sizes {list(sizes)}")
        if imgs.dtype not in (np.uint8, np.bool_) and (imgs.dtype.kind not in "iu" or imgs.size and (
                imgs.min() < 0 or imgs.max() > 255)):
            raise FormatError(path, f"imgs must hold uint8 pixels (or integers in [0, 255]), got {imgs.dtype}")
        images = torch.from_numpy(np.ascontiguousarray(imgs, dtype=np.uint8))
        return cls(latent_factor_indices, device=device, as_tensor=as_tensor, _images=images, _sizes=sizes)
