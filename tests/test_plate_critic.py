"""The plate critic (training/plates.py): shots' medians as real plates, G's backdrop alone against them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import TINY_OBJECTS_CLI, assert_cli_refuses, listing
from latentvideo.cli import main
from latentvideo.errors import LatentVideoError
from latentvideo.frames import ArrayFrames, frame_source, shot_plates
from latentvideo.models import load_model
from latentvideo.objects import ObjectGenerator
from latentvideo.training.gan import train_gan

CPU = dict(device="cpu", progress=False)
COLOUR = dict(arch="objects", objects=1, appearance=4, sprite=12, background=3)


def moving_square(shots: int, length: int) -> np.ndarray:
    """Shots of `length` frames: a white square moving 2 px per frame over a backdrop of the shot's own level."""
    frames = np.zeros((shots * length, 3, 32, 32), np.uint8)
    for t in range(shots * length):
        frames[t] = 40 + 60 * (t // length)
        frames[t, :, 10:16, 2 * (t % length) : 2 * (t % length) + 6] = 255
    return frames


def test_a_shot_median_drops_the_moving_object():
    frames = moving_square(2, 12)
    shots = np.repeat([0, 1], 12)
    plates = shot_plates(frames, shots)
    assert plates.shape == (2, 3, 32, 32) and plates.dtype == np.uint8
    np.testing.assert_array_equal(plates[0], np.full((3, 32, 32), 40))
    np.testing.assert_array_equal(plates[1], np.full((3, 32, 32), 100))
    # a shot shorter than MIN_SHOT gives no plate; none at all is an error
    assert len(shot_plates(frames[:16], np.repeat([0, 1], [12, 4]))) == 1
    with pytest.raises(LatentVideoError, match="no shot"):
        shot_plates(frames[:5], np.zeros(5, int))


def test_a_video_s_plates_are_its_shots_and_a_sequence_file_s_its_sequences(shapes32_file):
    video = ArrayFrames(moving_square(3, 10))  # cuts between the shots
    plates = video.plates()
    assert [int(p[0, 0, 0]) for p in plates] == [40, 100, 160]
    assert video.sample_plates(np.random.default_rng(0), 7).shape == (7, 3, 32, 32)
    source = frame_source(str(shapes32_file))  # [T * N] frames, frame t of sequence n at t * N + n
    v = np.load(shapes32_file)  # [T, N, H, W, 3]
    want = np.round(np.median(v, 0)).astype(np.uint8).transpose(0, 3, 1, 2)  # [N, 3, H, W]
    np.testing.assert_array_equal(source.plates(), want)


def test_forward_over_plates_keeps_the_background_net_out_of_the_image():
    torch.manual_seed(0)
    G = ObjectGenerator(objects=2, appearance=5, resolution=32, channels=3, sprite=12, width=4, background=3)
    z = G.sample_latents(3, torch.Generator().manual_seed(0))
    x, back = G(z, with_backdrop=True)
    assert torch.equal(x, G(z))
    assert torch.equal(back, G.draw_backdrop(G.split(z)[2]))
    plates = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    over, back2 = G(z, with_backdrop=True, over=plates)
    assert torch.equal(over, G.compose(G.layers(z), plates)) and torch.equal(back2, back)
    assert torch.equal(G(z, over=plates), over)
    # the image over plates carries no gradient to the background net, only to the slots
    over.sum().backward()
    assert all(p.grad is None for n, p in G.named_parameters() if n.startswith("bg_"))
    assert G.sprite_fc.weight.grad.abs().sum() > 0


def test_training_with_the_plate_critic_resumes_bit_exactly(tiny_config, shapes32_file, tmp_path):
    cfg = tiny_config(**COLOUR, data=str(shapes32_file), steps=4, checkpoint_every=2, plate_weight=1.0)
    a = train_gan(tmp_path / "a", cfg, **CPU)
    b = train_gan(tmp_path / "b", cfg, stop_after=2, **CPU)
    train_gan(b, resume=True, **CPU)
    for name in ("generator", "critic"):
        for (k, pa), pb in zip(load_model(a / name).state_dict().items(), load_model(b / name).state_dict().values()):
            assert torch.equal(pa, pb), (name, k)
    rows = [json.loads(s) for s in (a / "stats.jsonl").read_text().splitlines()]
    assert [r["wdist_plate"] for r in rows] == [
        json.loads(s)["wdist_plate"] for s in (b / "stats.jsonl").read_text().splitlines()
    ]
    assert all(math.isfinite(r["wdist_plate"]) for r in rows)
    from safetensors import safe_open

    with safe_open(str(a / "checkpoint.safetensors"), "pt") as f:
        assert any(k.startswith("C_plate.") for k in f.keys())
    # the plate critic moves the background net: the same run without it ends elsewhere
    plain = train_gan(tmp_path / "p", tiny_config(**COLOUR, data=str(shapes32_file), steps=4), **CPU)
    bg = [k for k in load_model(a / "generator").state_dict() if k.startswith("bg_")]
    sa, sp = load_model(a / "generator").state_dict(), load_model(plain / "generator").state_dict()
    assert any(not torch.equal(sa[k], sp[k]) for k in bg)


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(plate_weight=1.0), ["background code"]),  # a dcgan
        (dict(**{**COLOUR, "background": 0}, plate_weight=1.0), ["background code"]),
        (dict(**COLOUR, plate_weight=-1.0), ["plate_weight"]),
        (dict(**COLOUR, plate_weight=float("inf")), ["plate_weight"]),
        (dict(**COLOUR, plate_weight=1.0), ["colour footage"]),  # gray Moving MNIST frames
    ],
)
def test_bad_plate_settings_are_refused_before_any_work(tiny_config, tmp_path, overrides, words):
    with pytest.raises(LatentVideoError) as e:
        train_gan(tmp_path / "run", tiny_config(**overrides), **CPU)
    assert all(w in str(e.value) for w in words)
    assert not (tmp_path / "run").exists()


def test_cli_plate_flag(tmp_path, shapes32_file, capsys):
    obj = [*TINY_OBJECTS_CLI, "--background", "3"]
    run = tmp_path / "run"
    assert main(["train", "gan", "--out", str(run), "--data", str(shapes32_file), *obj, "--plate-weight", "1"]) == 0
    assert json.loads((run / "config.json").read_text())["plate_weight"] == 1.0
    capsys.readouterr()
    before = listing(tmp_path)
    for bad in (["--out", str(tmp_path / "x"), "--plate-weight", "-1"], ["--resume", str(run), "--plate-weight", "2"]):
        assert_cli_refuses(["train", "gan", "--data", str(shapes32_file), *obj, *bad], capsys)
    assert listing(tmp_path) == before


def test_the_plate_and_pair_critics_train_together(tiny_config, shapes32_file, tmp_path):
    cfg = tiny_config(**COLOUR, data=str(shapes32_file), steps=2, plate_weight=0.5, pair_weight=1.0, pair_gap=2)
    run = train_gan(tmp_path / "both", cfg, **CPU)
    rows = [json.loads(s) for s in (run / "stats.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(math.isfinite(r["wdist_plate"]) and math.isfinite(r["wdist_pair"]) for r in rows)
