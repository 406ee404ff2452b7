"""interpolate (linear, slerp with its parallel fallback) against the float64 formula, and the PNG grids: they open
with matplotlib and have the expected pixel size; bad decoders and arguments raise."""
import pytest
import torch

from fastrepr import reference
from fastrepr.evaluation import interpolation as interp
from utils import assert_close


def test_linear_and_slerp_match_formulas():
    a, b = torch.randn(7), torch.randn(7)
    lin = interp.interpolate(a, b, 5)
    assert lin.shape == (5, 7)
    assert_close(lin[0], a)
    assert_close(lin[-1], b)
    assert_close(lin[2], (a + b) / 2)
    sl = interp.interpolate(a, b, 5, "slerp")
    for k, w in enumerate(torch.linspace(0, 1, 5).tolist()):
        assert_close(sl[k], reference.slerp(a, b, w), torch.float32)


def test_slerp_batched_and_parallel_fallback():
    a = torch.randn(3, 4)
    b = torch.randn(3, 4)
    b[1] = 2.5 * a[1]       # parallel: falls back to linear
    b[2] = -a[2]            # antiparallel: great circle not unique, linear too
    sl = interp.interpolate(a, b, 4, "slerp")
    lin = interp.interpolate(a, b, 4, "linear")
    assert torch.isfinite(sl).all()
    assert_close(sl[:, 1:], lin[:, 1:])
    assert_close(sl[1, 0], reference.slerp(a[0], b[0], 1 / 3), torch.float32)
    # slerp between unit vectors stays on the sphere
    u = torch.nn.functional.normalize(torch.randn(2, 6), dim=1)
    assert_close(interp.interpolate(u[0], u[1], 9, "slerp").norm(dim=1), torch.ones(9), torch.float32)


def _decoder_chw(z):   # [B, D] -> [B, 3, 8, 6] in [0, 1]
    return torch.sigmoid(z[:, :3, None, None].expand(-1, -1, 8, 6))


def _decoder_hw(z):    # [B, D] -> [B, 5, 5]
    return torch.sigmoid(z.sum(1))[:, None, None].expand(-1, 5, 5)


def test_interpolation_grid_png(tmp_path):
    from matplotlib import image as mpimg

    path = tmp_path / "interp.png"
    shape = interp.interpolation_grid(_decoder_chw, torch.randn(2, 4), torch.randn(2, 4), 6, path, kind="slerp")
    img = mpimg.imread(path)
    p = interp.PAD
    assert img.shape[:2] == shape == (2 * (8 + p) + p, 6 * (6 + p) + p)
    shape = interp.interpolation_grid(_decoder_hw, torch.randn(4), torch.randn(4), 3, path)
    assert mpimg.imread(path).shape[:2] == shape == (5 + 2 * p, 3 * (5 + p) + p)


def test_latent_traversal_grid_png(tmp_path):
    from matplotlib import image as mpimg

    path = tmp_path / "trav.png"
    seen = []

    def dec(z):
        seen.append(z.clone())
        return _decoder_hw(z)
    shape = interp.latent_traversal_grid(dec, torch.zeros(5), dims=[0, 3, 4], span=2.0, path=path, steps=4)
    p = interp.PAD
    assert mpimg.imread(path).shape[:2] == shape == (3 * (5 + p) + p, 4 * (5 + p) + p)
    codes = seen[0].reshape(3, 4, 5)
    assert_close(codes[1, :, 3], torch.linspace(-2, 2, 4))
    assert (codes[1, :, [0, 1, 2, 4]] == 0).all()


@pytest.mark.parametrize("call, err, word", [
    (lambda p: interp.interpolate(torch.randn(3), torch.randn(4), 3), ValueError, "one shape"),
    (lambda p: interp.interpolate(torch.randn(3), torch.randn(3), 1), ValueError, "steps"),
    (lambda p: interp.interpolate(torch.randn(3), torch.randn(3), 3, "cubic"), ValueError, "kind"),
    (lambda p: interp.interpolate(torch.tensor([float("nan")]), torch.randn(1), 3), ValueError, "z_a"),
    (lambda p: interp.interpolation_grid(None, torch.randn(3), torch.randn(3), 3, p), TypeError, "decode"),
    (lambda p: interp.interpolation_grid(lambda z: z, torch.randn(3), torch.randn(3), 3, p), ValueError, "decode"),
    (lambda p: interp.interpolation_grid(lambda z: torch.full((z.shape[0], 4, 4), float("nan")), torch.randn(3),
                                         torch.randn(3), 3, p), ValueError, "NaN"),
    (lambda p: interp.latent_traversal_grid(_decoder_hw, torch.randn(3), [5], 1.0, p), ValueError, "dims"),
    (lambda p: interp.latent_traversal_grid(_decoder_hw, torch.randn(3), [0], 1.0, p.parent / "no" / "x.png"),
     ValueError, "does not exist"),
])
def test_bad_input(tmp_path, call, err, word):
    with pytest.raises(err, match=word):
        call(tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()
