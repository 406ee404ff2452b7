"""fastrepr.models.VAE: the study's shapes, TF-style layers, input layouts, the mean encoder."""
import numpy as np
import pytest
import torch

from fastrepr.models import VAE


def test_conv_architecture_matches_disentanglement_lib_shapes():
    torch.manual_seed(0)
    m = VAE(10, "conv")
    x = torch.rand(3, 1, 64, 64)
    h = x
    sizes = []
    for layer in m.encoder:
        h = layer(h)
        if h.dim() == 4 and isinstance(layer, torch.nn.ReLU):
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(32, 32, 32), (32, 16, 16), (64, 8, 8), (64, 4, 4)]
    logits, mu, logvar, z = m(x)
    assert logits.shape == (3, 1, 64, 64) and mu.shape == logvar.shape == z.shape == (3, 10)
    # conv_encoder's kernels: 4, 4, 2, 2 (disentanglement_lib's architectures.py)
    convs = [mod for mod in m.encoder.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert [c.kernel_size[0] for c in convs] == [4, 4, 2, 2]
    n_params = sum(p.numel() for p in m.parameters())
    assert 400_000 < n_params < 700_000


def test_mlp_variant_and_input_layouts_agree():
    torch.manual_seed(0)
    m = VAE(6, "mlp", hidden=(32, 16)).eval()
    x = (torch.rand(4, 64, 64) < 0.3)
    a = m.encode(x)[0]
    b = m.encode(x.to(torch.uint8).unsqueeze(1))[0]
    c = m.encode(x.float().numpy()[..., None])[0]       # disentanglement_lib's numpy [N, 64, 64, 1]
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a, c)
    assert m.decode(a).shape == (4, 1, 64, 64)


def test_sample_false_gives_the_mean_and_sampling_adds_noise():
    torch.manual_seed(0)
    m = VAE(5, "mlp", hidden=16)
    x = torch.rand(8, 1, 64, 64)
    _, mu, logvar, z = m(x, sample=False)
    torch.testing.assert_close(z, mu)
    _, mu2, _, z2 = m(x)
    assert (z2 - mu2).abs().max() > 1e-3


def test_representation_is_batched_deterministic_and_keeps_training_mode():
    torch.manual_seed(0)
    m = VAE(4, "mlp", hidden=16).train()
    obs = np.random.RandomState(0).rand(10, 64, 64, 1).astype(np.float32)
    r1 = m.representation(obs, batch_size=3)
    r2 = m.representation(obs)
    assert r1.shape == (10, 4) and r1.dtype == torch.float32
    torch.testing.assert_close(r1, r2)
    assert m.training


@pytest.mark.parametrize("kwargs, err", [(dict(arch="resnet"), ValueError), (dict(latent_dim=0), ValueError),
                                         (dict(latent_dim=2.5), TypeError),
                                         (dict(encoder_kernels=(4, 4, 2)), ValueError)])
def test_bad_construction(kwargs, err):
    with pytest.raises(err):
        VAE(**kwargs)


def test_bad_image_shape_names_the_layouts():
    with pytest.raises(ValueError, match="64, 64"):
        VAE(3, "mlp", hidden=8).encode(torch.zeros(2, 32, 32))
