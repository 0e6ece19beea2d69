"""`latentvideo export`: model folders from a run's checkpoint, raw or EMA weights."""

import torch

from latentvideo.cli import main
from latentvideo.models import load_model
from latentvideo.training.gan import train_gan


def test_export_raw_and_ema_weights(tmp_path, tiny_config, capsys):
    run = train_gan(tmp_path / "run", tiny_config(steps=3, checkpoint_every=3), device="cpu", progress=False)
    assert main(["export", str(run), "--out", str(tmp_path / "raw")]) == 0
    assert main(["export", str(run), "--out", str(tmp_path / "ema"), "--weights", "ema"]) == 0
    raw, ema = load_model(tmp_path / "raw" / "generator"), load_model(tmp_path / "ema" / "generator")
    exported_by_run = load_model(run / "generator")  # the run itself exports the EMA
    z = torch.randn(4, raw.z_dim)
    assert torch.equal(ema(z), exported_by_run(z))
    assert not torch.equal(raw(z), ema(z))
    critic = load_model(tmp_path / "raw" / "critic")
    assert torch.equal(critic(raw(z)), load_model(run / "critic")(raw(z)))


def test_export_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
