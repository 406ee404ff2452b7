"""Procedural dSprites: the factor grid and index layout of the original file, disentanglement_lib's sampling
semantics (same RandomState -> same factors), rendering backends, determinism, the npz loader, and image
moments that say each factor does what its name says."""
import math

import numpy as np
import pytest
import torch

from fastrepr import _native
from fastrepr.data import DSprites, FactorObservations
from fastrepr.data import dsprites as dsp


@pytest.fixture(scope="module")
def ds():
    return DSprites()


def _split_state_space_sample(sizes, latent, num, rs):
    """disentanglement_lib's SplitDiscreteStateSpace.sample_latent_factors + sample_all_factors, written out."""
    latent_factors = np.zeros((num, len(latent)), dtype=np.int64)
    for pos, i in enumerate(latent):
        latent_factors[:, pos] = rs.randint(sizes[i], size=num)
    full = np.zeros((num, len(sizes)), dtype=np.int64)
    full[:, latent] = latent_factors
    for i in [i for i in range(len(sizes)) if i not in latent]:
        full[:, i] = rs.randint(sizes[i], size=num)
    bases = np.prod(sizes) / np.cumprod(sizes)
    return latent_factors, np.array(np.dot(full, bases), dtype=np.int64)


def test_grid_and_index_layout(ds):
    assert ds.full_factor_sizes == (1, 3, 6, 40, 32, 32)
    assert ds.factor_bases.tolist() == [737280, 245760, 40960, 1024, 32, 1]
    assert ds.num_factors == 5 and ds.factors_num_values == [3, 6, 40, 32, 32]
    values = dsp.factor_values()
    assert np.allclose(values["scale"], np.linspace(0.5, 1, 6))
    assert values["orientation"][0] == 0 and math.isclose(values["orientation"][-1], 2 * math.pi)
    idx = np.array([0, 1, 31, 32, 1023, 1024, 40959, 40960, 245759, 245760, 737279])
    full = ds.index_to_factors(idx)
    assert np.array_equal(full @ ds.factor_bases, idx)
    assert full[-1].tolist() == [0, 2, 5, 39, 31, 31] and full[3].tolist() == [0, 0, 0, 0, 1, 0]


def test_sampling_matches_disentanglement_lib_stream(ds):
    for seed in (0, 7):
        ours, theirs = np.random.RandomState(seed), np.random.RandomState(seed)
        for num in (16, 64, 1):
            f, obs_idx = _split_state_space_sample(list(ds.full_factor_sizes), [1, 2, 3, 4, 5], num, theirs)
            g = ds.sample_factors(num, ours)
            assert g.dtype == np.int64 and np.array_equal(f, g)
            assert np.array_equal(ds.observation_indices(g, ours), obs_idx)
        assert ours.randint(1 << 30) == theirs.randint(1 << 30)  # the streams stay in step


def test_sample_observations_layout_and_values(ds):
    rs = np.random.RandomState(3)
    factors, obs = ds.sample(5, rs)
    assert obs.shape == (5, 64, 64, 1) and obs.dtype == np.float32
    assert set(np.unique(obs).tolist()) <= {0.0, 1.0}
    idx = ds.observation_indices(factors, np.random.RandomState(0))
    assert np.array_equal(obs[..., 0], ds.render(idx).numpy().astype(np.float32))
    t = DSprites(as_tensor=True).sample_observations_from_factors(factors, rs)
    assert t.shape == (5, 1, 64, 64) and t.dtype == torch.float32
    assert np.array_equal(t[:, 0].numpy(), obs[..., 0])


def test_render_backends_agree_and_are_deterministic(ds):
    idx = np.random.RandomState(1).randint(0, 737280, size=300)
    full = torch.from_numpy(ds.index_to_factors(idx))
    patch = (full[:, 1] * 6 + full[:, 2]) * 40 + full[:, 3]
    torch_path = ds._render_torch(patch, full[:, 5], full[:, 4], torch.uint8, torch.device("cpu"))
    assert torch.equal(ds.render(idx), torch_path)
    assert torch.equal(ds.render(idx, torch.float32), torch_path.float())
    assert torch.equal(DSprites().render(idx), ds.render(idx))  # a fresh instance renders the same pixels
    if _native.available()[0]:
        assert torch.equal(ds.render(idx), torch_path)


def test_sprites_fit_their_patch(ds):
    p = ds._patches
    assert p.shape == (720, 32, 32)
    assert p[:, 0].sum() == 0 and p[:, -1].sum() == 0 and p[:, :, 0].sum() == 0 and p[:, :, -1].sum() == 0
    assert (p.flatten(1).sum(1) > 0).all()


def _moments(img: torch.Tensor):
    img = img.double()
    ys, xs = torch.meshgrid(torch.arange(64.0, dtype=torch.float64) + 0.5,
                            torch.arange(64.0, dtype=torch.float64) + 0.5, indexing="ij")
    m = img.sum()
    cx, cy = (img * xs).sum() / m, (img * ys).sum() / m
    cov = torch.tensor([[(img * (xs - cx) ** 2).sum(), (img * (xs - cx) * (ys - cy)).sum()],
                        [(img * (xs - cx) * (ys - cy)).sum(), (img * (ys - cy) ** 2).sum()]]) / m
    return float(m), float(cx), float(cy), cov


def _index(shape=0, scale=5, orientation=0, x=10, y=20):
    return int(np.dot([0, shape, scale, orientation, x, y], [737280, 245760, 40960, 1024, 32, 1]))


@pytest.mark.parametrize("shape", [0, 1, 2])
def test_area_grows_with_scale_squared(ds, shape):
    scales = dsp.factor_values()["scale"]
    # average over a few orientations to wash out pixelization
    areas = [np.mean([_moments(ds.render([_index(shape, s, o)])[0])[0] for o in (0, 7, 13, 22)]) for s in range(6)]
    slope = np.polyfit(np.log(scales), np.log(areas), 1)[0]
    assert abs(slope - 2.0) < 0.12, (shape, areas, slope)
    expected_full = {0: 400.0, 1: math.pi * 10 * 5}.get(shape)
    if expected_full:  # square 20x20 px, ellipse with semi-axes 10 and 5 px at scale 1
        assert abs(areas[-1] / expected_full - 1) < 0.04


def test_centroid_follows_position_exactly(ds):
    for shape in (0, 1, 2):
        base = _moments(ds.render([_index(shape, 3, 11, 0, 0)])[0])
        assert abs(base[1] - dsp.CENTRE_PX) < 0.6 and abs(base[2] - dsp.CENTRE_PX) < 0.6
        for x, y in ((1, 0), (0, 1), (31, 5), (17, 31)):
            m = _moments(ds.render([_index(shape, 3, 11, x, y)])[0])
            assert m[0] == base[0]  # a pure shift
            assert math.isclose(m[1] - base[1], x, abs_tol=1e-9) and math.isclose(m[2] - base[2], y, abs_tol=1e-9)


def test_orientation_turns_second_moments_except_at_symmetries(ds):
    thetas = dsp.factor_values()["orientation"]
    for shape in (1, 2):  # ellipse and heart: anisotropic, so the principal axis turns with the sprite
        errors = []
        for o in range(0, 40, 3):
            cov = _moments(ds.render([_index(shape, 5, o)])[0])[3]
            # principal axis angle in a y-up frame (image rows grow downwards, hence the sign)
            angle = 0.5 * math.atan2(-2 * float(cov[0, 1]), float(cov[0, 0] - cov[1, 1]))
            reference = thetas[o]  # both are wider than tall at orientation 0
            errors.append(abs((angle - reference + math.pi / 2) % math.pi - math.pi / 2))
        assert max(errors) < math.radians(6), (shape, errors)
    # the square's inertia is isotropic: its second moments do not change, its pixels do
    covs = [_moments(ds.render([_index(0, 5, o)])[0])[3] for o in (0, 5, 10)]
    assert all(torch.allclose(c, covs[0], rtol=0.03) and abs(float(c[0, 1])) < 0.5 for c in covs)
    assert not torch.equal(ds.render([_index(0, 5, 0)]), ds.render([_index(0, 5, 5)]))
    # 0 and 2 pi are both on the grid (endpoint included): the same image
    for shape in (0, 1, 2):
        assert torch.equal(ds.render([_index(shape, 2, 0)]), ds.render([_index(shape, 2, 39)]))
    # away from the symmetries, orientation changes the second moments (ellipse: 0 vs 6 * 2 pi / 39)
    a, b = _moments(ds.render([_index(1, 5, 6)])[0])[3], _moments(ds.render([_index(1, 5, 0)])[0])[3]
    assert not torch.allclose(a, b, rtol=0.05)


def _tiny_npz(path, sizes=(1, 3, 2, 2, 2, 2), **extra):
    """A file of the original's layout over a small grid: imgs in grid order with a pixel that encodes the
    index, latents_classes, and (as the original) a pickled metadata dict."""
    n = int(np.prod(sizes))
    imgs = np.zeros((n, 64, 64), np.uint8)
    for i in range(n):
        imgs[i, i // 64, i % 64] = 1
    classes = np.stack(np.unravel_index(np.arange(n), sizes), 1).astype(np.int64)
    meta = {"latents_sizes": np.array(sizes), "latents_names": dsp.FACTOR_NAMES}
    arrays = dict(imgs=imgs, latents_classes=classes, latents_values=np.zeros((n, 6)),
                  metadata=np.array(meta, dtype=object))
    arrays.update(extra)
    np.savez_compressed(path, **{k: v for k, v in arrays.items() if v is not None})
    return imgs, classes


def test_npz_loader_with_a_tiny_file_of_the_same_layout(tmp_path):
    sizes = [1, 3, 2, 2, 2, 2]
    path = tmp_path / "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
    imgs, classes = _tiny_npz(path, sizes)
    data = DSprites.from_npz(path)  # sizes from latents_classes; the pickled metadata is never read
    assert data.factors_num_values == [3, 2, 2, 2, 2] and data.factor_bases.tolist() == [48, 16, 8, 4, 2, 1]
    rs, theirs = np.random.RandomState(5), np.random.RandomState(5)
    factors, obs = data.sample(7, rs)
    expect_f, expect_idx = _split_state_space_sample(sizes, [1, 2, 3, 4, 5], 7, theirs)
    assert np.array_equal(factors, expect_f)
    assert np.array_equal(obs[:, :, :, 0].reshape(7, -1).argmax(1), expect_idx)
    _tiny_npz(tmp_path / "sizes.npz", sizes, latents_classes=None, latents_sizes=np.array(sizes))
    assert DSprites.from_npz(tmp_path / "sizes.npz").factors_num_values == [3, 2, 2, 2, 2]


NPZ_BAD = [
    (dict(imgs=None), "no 'imgs' array"),
    (dict(latents_classes=None, imgs=np.zeros((5, 64, 64), np.uint8)), r"expected \[737280, H, W\]"),
    (dict(imgs=np.zeros((48, 64), np.uint8)), r"imgs has shape \(48, 64\), expected \[n, H, W\]"),
    (dict(imgs=np.full((48, 8, 8), 300, np.int64)), "uint8 pixels"),
    (dict(latents_classes=np.zeros((48, 6), np.int64)), r"expected \[1, H, W\] for latents_sizes \[1, 1, 1"),
    (dict(latents_classes=np.stack(np.unravel_index(np.arange(48)[::-1], (1, 3, 2, 2, 2, 2)), 1)),
     "record 0: image 0 has latents_classes .* not stored in grid order"),
    (dict(latents_sizes=np.array([1, 3, -2])), "latents_sizes must be 1 to 32 positive integers"),
    (dict(latents_sizes=np.array([1.5, 3.0])), "latents_sizes must be"),
]


@pytest.mark.parametrize("change, message", NPZ_BAD)
def test_npz_loader_bad_files_name_the_file(tmp_path, change, message):
    from fastrepr import FormatError

    path = tmp_path / "bad.npz"
    _tiny_npz(path, **change)
    with pytest.raises(FormatError, match=message) as info:
        DSprites.from_npz(path)
    assert str(info.value).startswith(str(path))


class _Payload:
    """Unpickling this creates a marker file (code run from data)."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_npz_loader_never_unpickles(tmp_path):
    from fastrepr import FormatError, cli

    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.npz"
    _tiny_npz(path, metadata=np.array([_Payload(str(marker))], dtype=object))
    assert DSprites.from_npz(path).factors_num_values == [3, 2, 2, 2, 2]  # the metadata entry is ignored
    assert cli.main(["disentangle", "--npz", str(path), "--scale", "tiny", "--metrics", "mig"]) == 0
    assert not marker.exists()
    _tiny_npz(tmp_path / "evil2.npz", latents_classes=np.array([_Payload(str(marker))] * 48, dtype=object))
    with pytest.raises(FormatError, match="latents_classes: dtype object .*refusing to unpickle"):
        DSprites.from_npz(tmp_path / "evil2.npz")
    assert not marker.exists()
    with np.load(path, allow_pickle=True) as data:  # the payload is live: numpy's pickle path runs it
        data["metadata"]
    assert marker.exists()


def test_factor_observations_share_the_stream(ds):
    obs_ds = FactorObservations(ds)
    a, b = np.random.RandomState(2), np.random.RandomState(2)
    f1, o1 = obs_ds.sample(9, a)
    f2, _ = ds.sample(9, b)
    assert np.array_equal(f1, f2) and np.array_equal(o1, f1.astype(np.float32))
    assert a.randint(1000) == b.randint(1000)


def test_bad_input(ds):
    with pytest.raises(ValueError, match="shape"):
        ds.observation_indices(np.zeros((3, 4), np.int64), np.random.RandomState(0))
    with pytest.raises(ValueError, match="out of range"):
        ds.observation_indices(np.full((2, 5), 40), np.random.RandomState(0))
    with pytest.raises(ValueError, match="image indices"):
        ds.render([737280])
    with pytest.raises(TypeError, match="dtype"):
        ds.render([0], dtype=torch.float64)
    with pytest.raises(ValueError, match="latent_factor_indices"):
        DSprites([1, 1])
    with pytest.raises(TypeError, match="FactorObservations"):
        FactorObservations(object())


@pytest.mark.gpu
def test_gpu_rendering_matches_cpu():
    cpu, gpu = DSprites(), DSprites(device="cuda", as_tensor=True)
    idx = np.random.RandomState(0).randint(0, 737280, size=20000)
    assert torch.equal(gpu.render(idx).cpu(), cpu.render(idx))
    obs = gpu.observations_from_indices(idx[:10])
    assert obs.device.type == "cuda" and obs.shape == (10, 1, 64, 64)
