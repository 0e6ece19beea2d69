"""P-NET over real plates (`ProjectorConfig.plates`, `train projector --plates`): the slot term's samples of G are
composed over the footage's shot plates, and their background codes are not scored."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import assert_cli_refuses, tiny_model_dir
from latentvideo.errors import LatentVideoError
from latentvideo.frames import frame_source
from latentvideo.models import load_model
from latentvideo.objects import ObjectGenerator, latent_layout
from latentvideo.slots import slot_matched_error
from latentvideo.training.projector import ProjectorConfig, train_projector

CPU = dict(device="cpu", progress=False)
TINY_P = dict(width=4, hidden=16, batch_size=4, log_every=1, checkpoint_every=100, steps=3)


@pytest.fixture(scope="module")
def colour_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("colour"), objects=2, channels=3)


def test_the_background_code_is_scored_only_when_shared(colour_dir):
    G = load_model(colour_dir / "generator", "cpu")
    layout = latent_layout(G)
    z = G.sample_latents(5)
    z_hat = z.clone()
    z_hat[:, -G.background :] += 1.0  # only the background code is wrong
    np.testing.assert_allclose(slot_matched_error(z_hat, z, layout, shared=False).numpy(), 0, atol=1e-7)
    # with it: its squared error over the K slots
    np.testing.assert_allclose(slot_matched_error(z_hat, z, layout).numpy(), G.background / G.objects, rtol=1e-6)
    z_hat[:, layout.positions[0][0]] += 0.1  # a slot error counts either way, equally
    a, b = slot_matched_error(z_hat, z, layout, shared=False), slot_matched_error(z_hat, z, layout)
    assert (a > 0).all()
    torch.testing.assert_close(b - a, torch.full_like(a, G.background / G.objects))


def test_g_s_samples_for_the_slot_term_are_composed_over_the_footage_s_plates(
    tmp_path, colour_dir, shapes32_file, monkeypatch
):
    seen = []
    forward = ObjectGenerator.forward

    def spy(self, z, with_backdrop=False, over=None):
        seen.append(over)
        return forward(self, z, with_backdrop, over)

    monkeypatch.setattr(ObjectGenerator, "forward", spy)
    cfg = ProjectorConfig(data=str(shapes32_file), plates=True, **TINY_P)
    train_projector(colour_dir / "generator", tmp_path / "run", cfg, **CPU)
    plates = torch.from_numpy(frame_source(str(shapes32_file)).plates()).float() / 255  # [3, 3, 32, 32]
    backdrops = [o for o in seen if o is not None]
    assert len(backdrops) == 3  # one batch of G's samples per step, each over real plates
    for batch in backdrops:
        assert batch.shape == (4, 3, 32, 32)
        assert all(any(torch.equal(b, p) for p in plates) for b in batch)


def test_plates_change_training_and_resume_exactly(tmp_path, colour_dir, shapes32_file):
    def weights(run):
        return load_model(run / "projector", "cpu").state_dict()

    cfg = ProjectorConfig(data=str(shapes32_file), plates=True, **dict(TINY_P, steps=4))
    train_projector(colour_dir / "generator", tmp_path / "a", cfg, stop_after=2, **CPU)
    train_projector(colour_dir / "generator", tmp_path / "a", None, resume=True, **CPU)
    train_projector(colour_dir / "generator", tmp_path / "b", cfg, **CPU)
    plain = ProjectorConfig(data=str(shapes32_file), plates=False, **dict(TINY_P, steps=4))
    train_projector(colour_dir / "generator", tmp_path / "c", plain, **CPU)
    a, b, c = weights(tmp_path / "a"), weights(tmp_path / "b"), weights(tmp_path / "c")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(b[k], c[k]) for k in b)


def test_plates_need_a_colour_objects_generator_with_a_background(tmp_path, shapes32_file, seq32):
    gray = tiny_model_dir(tmp_path / "gray", objects=2)
    with pytest.raises(LatentVideoError, match="background code"):
        train_projector(gray / "generator", tmp_path / "run", ProjectorConfig(data=str(seq32), plates=True, **TINY_P))
    assert not (tmp_path / "run").exists()
    with pytest.raises(LatentVideoError, match="true or false"):
        train_projector(gray / "generator", tmp_path / "run", ProjectorConfig(data=str(seq32), plates=1, **TINY_P))


def test_cli_plates_on_gray_footage_is_a_one_line_error(tmp_path, seq32, capsys):
    gray = tiny_model_dir(tmp_path / "gray", objects=2)
    args = ["train", "projector", "--gan", str(gray), "--out", str(tmp_path / "run"), "--data", str(seq32)]
    err = assert_cli_refuses([*args, "--plates", "--steps", "2", "--width", "4", "--hidden", "16"], capsys)
    assert "background code" in err
    assert not (tmp_path / "run").exists()
