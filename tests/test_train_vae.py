"""train_vae / fastrepr train-vae: trains, checkpoints (state dict only), reloads with weights_only, scores."""
import json
import pickle

import numpy as np
import pytest
import torch

from fastrepr import cli
from fastrepr.data import DSprites
from fastrepr.evaluation import disentanglement, suite
from fastrepr.vae_training import load_vae, mean_representation, train_vae

SMALL = dict(arch="mlp", hidden=(32, 32), batch_size=16)


def test_train_checkpoint_reload_and_score(tmp_path):
    result = train_vae("beta", 4.0, 6, seed=1, lr=1e-3, out=tmp_path, **SMALL)
    assert result.steps == 6 and len(result.losses) >= 1 and np.isfinite(result.losses).all()
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    model = load_vae(tmp_path)
    x = torch.rand(5, 1, 64, 64)
    torch.testing.assert_close(model.encode(x)[0], result.model.encode(x)[0])
    scores = disentanglement.evaluate(DSprites(), mean_representation(model), ["mig", "dci"],
                                      config=suite.config("tiny"), deterministic=True)
    assert 0 <= scores["mig"]["discrete_mig"] <= 1 and 0 <= scores["dci"]["disentanglement"] <= 1
    for name in ("traversal.png", "reconstruction.png"):
        import matplotlib.image

        img = matplotlib.image.imread(tmp_path / name)
        assert img.ndim == 3 and img.shape[0] > 60
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["objective"] == "beta" and config["steps_run"] == 6


def test_same_seed_same_model_other_seed_other_model():
    a = train_vae("beta", 1.0, 3, seed=0, **SMALL).model
    b = train_vae("beta", 1.0, 3, seed=0, **SMALL).model
    c = train_vae("beta", 1.0, 3, seed=1, **SMALL).model
    pa, pb, pc = (torch.cat([p.flatten() for p in m.parameters()]) for m in (a, b, c))
    torch.testing.assert_close(pa, pb)
    assert not torch.allclose(pa, pc)


@pytest.mark.parametrize("objective", ["tcvae", "annealed", "dip", "dip-ii"])
def test_every_objective_trains(objective):
    r = train_vae(objective, 2.0, 3, seed=0, **SMALL)
    assert r.steps == 3 and np.isfinite(r.losses).all()


def test_training_lowers_the_loss():
    r = train_vae("beta", 1.0, 60, seed=0, lr=1e-3, log_every=20, **SMALL)
    assert r.losses[-1] < r.losses[0] * 0.8


def test_time_limit_stops_early():
    r = train_vae("beta", 1.0, 10**6, seed=0, time_limit=0.5, **SMALL)
    assert 1 <= r.steps < 10**6


def test_load_refuses_a_pickled_object(tmp_path):
    train_vae("beta", 1.0, 1, seed=0, out=tmp_path, **SMALL)

    class Evil:
        def __reduce__(self):
            return (print, ("unpickled!",))

    with open(tmp_path / "model.pt", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(ValueError, match="model.pt"):
        load_vae(tmp_path)


@pytest.mark.parametrize("kwargs, err", [(dict(objective="vae"), ValueError), (dict(beta=-1.0), ValueError),
                                         (dict(steps=0), ValueError), (dict(lr=0.0), ValueError),
                                         (dict(batch_size=1, objective="tcvae"), ValueError),
                                         (dict(steps=2.5), TypeError)])
def test_bad_arguments(kwargs, err):
    with pytest.raises(err):
        train_vae(**{**dict(objective="beta", beta=1.0, steps=1), **kwargs}, arch="mlp", hidden=8)


def test_cli_trains_reloads_and_scores(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["train-vae", "--objective", "beta", "--beta", "4", "--steps", "4", "--seed", "2", "--out",
                     str(out), "--arch", "mlp", "--hidden", "32", "--batch-size", "16", "--no-progress"]) == 0
    scores = json.loads((out / "scores.json").read_text())
    assert set(scores) == set(disentanglement.METRICS)
    assert "scores of the reloaded model" in capsys.readouterr().out


@pytest.mark.parametrize("args, flag", [(["--objective", "factorvae"], "--objective"), (["--beta", "-2"], "--beta"),
                                        (["--steps", "0"], "--steps"), (["--steps", "x"], "--steps"),
                                        (["--lr", "0"], "--lr"), (["--device", "tpu"], "--device")])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys, args, flag):
    assert cli.main(["train-vae", "--out", str(tmp_path / "o"), "--steps", "1"] + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and flag in err[0]


def test_cli_unwritable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["train-vae", "--out", str(blocker / "sub"), "--steps", "1", "--arch", "mlp"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--out" in err[0]
