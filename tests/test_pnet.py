"""P-NET training (`train_projector`) and the `train projector` command, on a tiny generator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latentvideo.cli import main
from latentvideo.errors import LatentVideoError
from latentvideo.invert import invert
from latentvideo.models import Generator, Projector, load_model, model_config, save_model
from latentvideo.training.projector import ProjectorConfig, reconstruction_loss, train_projector

CPU = dict(device="cpu", progress=False)
TINY_P = dict(width=4, hidden=16, batch_size=4, log_every=1, checkpoint_every=100)


@pytest.fixture(scope="module")
def gan_dir(tmp_path_factory) -> Path:
    """A model folder with a tiny untrained generator/ (z_dim 8, 32x32, 1 channel)."""
    torch.manual_seed(0)
    G = Generator(z_dim=8, resolution=32, channels=1, width=4)
    path = tmp_path_factory.mktemp("gan")
    save_model(G, path / "generator", model_config(G, z_dim=8, resolution=32, channels=1, width=4))
    return path


def _config(seq32, **overrides) -> ProjectorConfig:
    return ProjectorConfig(**{"data": str(seq32), "steps": 3, **TINY_P, **overrides})


def _stats(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "projector_stats.jsonl").read_text().splitlines()]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_train_writes_a_loadable_projector(tmp_path, gan_dir, seq32):
    path = train_projector(gan_dir / "generator", tmp_path / "run", _config(seq32), **CPU)
    assert path == tmp_path / "run" / "projector"
    P = load_model(path)
    assert isinstance(P, Projector) and (P.z_dim, P.resolution, P.channels) == (8, 32, 1)
    assert [r["step"] for r in _stats(tmp_path / "run")] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) for r in _stats(tmp_path / "run"))
    x = torch.rand(2, 1, 32, 32)
    assert P(x).shape == (2, 8)
    # the exported P-NET plugs into inversion
    G = load_model(gan_dir / "generator")
    inv = invert(G, x, "pnet", P)
    assert inv.latents.shape == (2, 8) and torch.isfinite(inv.errors).all()


def test_resume_continues_the_run_exactly(tmp_path, gan_dir, seq32):
    cfg = _config(seq32, steps=4, supervised=0.5)
    run = train_projector(gan_dir / "generator", tmp_path / "a", cfg, stop_after=2, **CPU)
    assert [r["step"] for r in _stats(tmp_path / "a")] == [1, 2]
    # resume takes the saved config; only steps may come from the caller
    train_projector(gan_dir / "generator", tmp_path / "a", ProjectorConfig(steps=4), resume=True, **CPU)
    assert [r["step"] for r in _stats(tmp_path / "a")] == [1, 2, 3, 4]
    straight = train_projector(gan_dir / "generator", tmp_path / "b", cfg, **CPU)
    assert _same_weights(load_model(run), load_model(straight))  # 2 + 2 steps == 4 steps


def test_resume_drops_stats_logged_after_the_checkpoint(tmp_path, gan_dir, seq32):
    run = tmp_path / "run"
    train_projector(gan_dir / "generator", run, _config(seq32, steps=4), stop_after=2, **CPU)
    with open(run / "projector_stats.jsonl", "a") as f:  # as if a crash came after step 3 was logged
        f.write(json.dumps({"step": 3, "loss": 0.0, "seconds": 0.0}) + "\n" + '{"step": 4, "lo')
    train_projector(gan_dir / "generator", run, None, resume=True, **CPU)
    assert [r["step"] for r in _stats(run)] == [1, 2, 3, 4]


def test_fresh_run_in_an_old_folder_starts_fresh_stats(tmp_path, gan_dir, seq32):
    run = tmp_path / "run"
    train_projector(gan_dir / "generator", run, _config(seq32, steps=2), **CPU)
    train_projector(gan_dir / "generator", run, _config(seq32, steps=1), **CPU)
    assert [r["step"] for r in _stats(run)] == [1]


@pytest.mark.parametrize("loss", ["mse", "bce"])
def test_both_losses_and_the_supervised_term(tmp_path, gan_dir, seq32, loss):
    path = train_projector(gan_dir / "generator", tmp_path, _config(seq32, steps=2, loss=loss, supervised=1.0), **CPU)
    assert load_model(path).z_dim == 8
    assert json.loads((tmp_path / "projector_config.json").read_text())["loss"] == loss
    assert all(np.isfinite(r["loss"]) and r["loss"] > 0 for r in _stats(tmp_path))


def test_supervised_term_changes_training(tmp_path, gan_dir, seq32):
    plain = train_projector(gan_dir / "generator", tmp_path / "a", _config(seq32, steps=2, supervised=0.0), **CPU)
    sup = train_projector(gan_dir / "generator", tmp_path / "b", _config(seq32, steps=2, supervised=1.0), **CPU)
    assert not _same_weights(load_model(plain), load_model(sup))
    assert _stats(tmp_path / "a")[0]["loss"] < _stats(tmp_path / "b")[0]["loss"]  # the extra term adds to the loss


def test_reconstruction_losses():
    x = torch.full((2, 1, 2, 2), 0.5)
    y = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1).expand(2, 1, 2, 2)
    torch.testing.assert_close(reconstruction_loss(x, y, "mse"), torch.tensor([0.25, 0.25]))
    torch.testing.assert_close(reconstruction_loss(x, y, "bce"), torch.full((2,), float(np.log(2))))
    with pytest.raises(LatentVideoError, match="unknown loss"):
        reconstruction_loss(x, y, "l1")


@pytest.mark.parametrize(
    "overrides",
    [{"loss": "huber"}, {"steps": 0}, {"batch_size": 0}, {"supervised": -1.0}, {"lr": float("nan")}],
)
def test_bad_config_fails_before_any_work(tmp_path, gan_dir, seq32, overrides):
    with pytest.raises(LatentVideoError):
        train_projector(gan_dir / "generator", tmp_path / "run", _config(seq32, **overrides), **CPU)
    assert not (tmp_path / "run").exists()


def test_bad_inputs(tmp_path, gan_dir, seq32):
    with pytest.raises(LatentVideoError, match="no projector run"):
        train_projector(gan_dir / "generator", tmp_path / "none", None, resume=True, **CPU)
    with pytest.raises(LatentVideoError, match="not found"):
        train_projector(tmp_path / "missing", tmp_path / "run", _config(seq32), **CPU)
    with pytest.raises(LatentVideoError, match="not found"):
        train_projector(gan_dir / "generator", tmp_path / "run", _config(seq32, data=str(tmp_path / "x.npy")), **CPU)
    big = tmp_path / "big.npy"
    np.save(big, np.zeros((2, 2, 64, 64), np.uint8))
    with pytest.raises(LatentVideoError, match=r"\[1, 64, 64\] but G makes \[1, 32, 32\]"):
        train_projector(gan_dir / "generator", tmp_path / "run", _config(seq32, data=str(big)), **CPU)


def test_cli_train_projector(tmp_path, gan_dir, seq32, capsys):
    import shutil

    gan = tmp_path / "gan"
    shutil.copytree(gan_dir, gan)
    args = ["train", "projector", "--gan", str(gan), "--steps", "3", "--data", str(seq32), "--batch-size", "4"]
    assert main([*args, "--device", "cpu"]) == 0
    assert "projector:" in capsys.readouterr().out
    assert load_model(gan / "projector").z_dim == 8
    assert _stats(gan)[-1]["step"] == 3
    # --resume with more steps continues; --out puts the projector elsewhere
    assert main(["train", "projector", "--gan", str(gan), "--steps", "4", "--resume", "--device", "cpu"]) == 0
    assert _stats(gan)[-1]["step"] == 4
    out = tmp_path / "elsewhere"
    sized = ["--width", "8", "--hidden", "16"]
    assert main([*args, "--loss", "bce", "--supervised", "0.5", *sized, "--out", str(out), "--device", "cpu"]) == 0
    assert (out / "projector" / "model.safetensors").is_file()
    projector = load_model(out / "projector")
    assert projector.head[0].out_features == 16 and projector.encoder.body[0].out_channels == 8
    assert json.loads((out / "projector_config.json").read_text())["supervised"] == 0.5
    capsys.readouterr()
    assert main([*args, "--loss", "l1", "--device", "cpu"]) == 2
    assert capsys.readouterr().err.startswith("error: unknown loss")


def test_cli_train_projector_help_shows_an_example(capsys):
    assert main(["train", "projector", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Example" in out and "--gan" in out
