"""The pair critic (training/pairs.py): G's moved second frame, real pairs from one shot, training with it."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import TINY_OBJECTS_CLI, assert_cli_refuses, listing
from latentvideo.checkpoint import load_checkpoint
from latentvideo.cli import main
from latentvideo.data import write_sequences
from latentvideo.errors import LatentVideoError
from latentvideo.frames import ArrayFrames, MovingMNISTFrames, frame_source
from latentvideo.models import load_model
from latentvideo.objects import ObjectGenerator
from latentvideo.training.gan import train_gan
from latentvideo.training.pairs import move_slots, pair_gaps

CPU = dict(device="cpu", progress=False)
OBJECTS = dict(arch="objects", objects=1, appearance=4, sprite=12)


def test_moved_slots_travel_gap_times_speed_and_nothing_else_changes():
    torch.manual_seed(0)
    G = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4, background=3)
    z = G.sample_latents(5, torch.Generator().manual_seed(0))
    gaps = torch.tensor([1.0, 2.0, 3.0, 1.0, 2.0])
    z2 = move_slots(G, z, gaps, 1.5, torch.Generator().manual_seed(1))
    idx = G.latent_layout.index  # [K, 2]
    moved = torch.zeros(G.z_dim, dtype=torch.bool)
    moved[idx.flatten()] = True
    assert torch.equal(z2[:, ~moved], z[:, ~moved])  # appearance and background kept
    step_px = (z2 - z)[:, idx] * G.latent_layout.fold_range  # [B, K, 2]
    torch.testing.assert_close(step_px.norm(dim=-1), gaps[:, None].expand(5, 2) * 1.5)
    # in a random direction: the two slots of a latent move apart
    assert not torch.allclose(step_px[:, 0], step_px[:, 1])


def test_pair_gaps_are_uniform_in_one_to_gap():
    g = pair_gaps(2000, 3, torch.Generator().manual_seed(0))
    assert set(g.tolist()) == {1.0, 2.0, 3.0}
    assert abs(float((g == 2).float().mean()) - 1 / 3) < 0.05


def test_pairs_of_a_sequence_file_are_one_sequence_a_few_frames_apart(tmp_path):
    T, N = 6, 4
    v = (10 * np.arange(T)[:, None] + np.arange(N)[None]).astype(np.uint8)  # frame t of sequence n holds 10 t + n
    write_sequences(tmp_path / "s.npy", np.broadcast_to(v[:, :, None, None], (T, N, 8, 8)).copy())
    source = frame_source(str(tmp_path / "s.npy"))
    pairs = source.sample_pairs(np.random.default_rng(0), 500, 3)  # [500, 2, 1, 8, 8]
    assert pairs.shape == (500, 2, 1, 8, 8) and pairs.dtype == np.uint8
    a, b = pairs[:, 0, 0, 0, 0].astype(int), pairs[:, 1, 0, 0, 0].astype(int)
    assert np.array_equal(a % 10, b % 10)  # the same sequence
    assert set((b // 10 - a // 10).tolist()) == {1, 2, 3}  # 1..gap frames later
    with pytest.raises(LatentVideoError, match="too few"):
        source.sample_pairs(np.random.default_rng(0), 2, 6)


def test_pairs_of_a_video_are_consecutive_frames():
    frames = np.arange(10, dtype=np.uint8)[:, None, None, None].repeat(4, 2).repeat(4, 3)  # [10, 1, 4, 4]
    pairs = ArrayFrames(frames).sample_pairs(np.random.default_rng(1), 300, 2)
    d = pairs[:, 1, 0, 0, 0].astype(int) - pairs[:, 0, 0, 0, 0].astype(int)
    assert set(d.tolist()) == {1, 2}
    assert pairs[:, 1, 0, 0, 0].max() == 9  # the last frame is reachable


def test_pairs_of_a_video_never_span_a_cut():
    """Three shots of 6 frames: a square moving 1 px per frame over a backdrop of the shot's own level."""
    frames = np.zeros((18, 1, 32, 32), np.uint8)
    for t in range(18):
        frames[t, 0] = 60 * (t // 6)
        frames[t, 0, 10:16, 2 + t % 6 : 8 + t % 6] = 255
    source = ArrayFrames(frames)
    np.testing.assert_array_equal(np.flatnonzero(source.cuts()), [5, 11])
    pairs = source.sample_pairs(np.random.default_rng(0), 400, 3)
    assert np.array_equal(pairs[:, 0, 0, 0, 0], pairs[:, 1, 0, 0, 0])  # the same shot's backdrop
    shift = pairs[:, 1, 0, 12].argmax(-1).astype(int) - pairs[:, 0, 0, 12].argmax(-1)
    assert set(shift.tolist()) == {1, 2, 3}
    with pytest.raises(LatentVideoError, match="in one shot"):
        source.sample_pairs(np.random.default_rng(0), 2, 6)
    assert not ArrayFrames(np.zeros((5, 1, 8, 8), np.uint8)).cuts().any()  # a still video has no cuts


def test_moving_mnist_pairs_move_the_same_digit():
    source = MovingMNISTFrames("train", num_digits=1, size=64)
    pairs = source.sample_pairs(np.random.default_rng(0), 64, 3).astype(float)  # [64, 2, 1, 64, 64]
    assert pairs.shape == (64, 2, 1, 64, 64)
    np.testing.assert_array_equal(pairs[:, 0].sum((1, 2, 3)), pairs[:, 1].sum((1, 2, 3)))  # the same digit
    r, c = np.mgrid[:64, :64]

    def centre(x):  # [64, 64, 64] -> [64, 2] ink centre of mass
        m = x.sum((1, 2))
        return np.stack([(x * r).sum((1, 2)) / m, (x * c).sum((1, 2)) / m], 1)

    shift = np.linalg.norm(centre(pairs[:, 1, 0]) - centre(pairs[:, 0, 0]), axis=1)
    assert np.all(shift <= 3 * 3.6 + 1.5) and np.median(shift) > 2  # 1..3 frames at 3.6 px (walls reflect)


def test_training_with_the_pair_critic_resumes_bit_exactly(tiny_config, tmp_path):
    cfg = tiny_config(**OBJECTS, steps=4, checkpoint_every=2, pair_weight=1.0, pair_gap=2)
    a = train_gan(tmp_path / "a", cfg, **CPU)
    b = train_gan(tmp_path / "b", cfg, stop_after=2, **CPU)
    train_gan(b, resume=True, **CPU)
    for name in ("generator", "critic"):
        for (k, pa), pb in zip(load_model(a / name).state_dict().items(), load_model(b / name).state_dict().values()):
            assert torch.equal(pa, pb), (name, k)
    rows_a = [json.loads(s) for s in (a / "stats.jsonl").read_text().splitlines()]
    rows_b = [json.loads(s) for s in (b / "stats.jsonl").read_text().splitlines()]
    assert [r["wdist_pair"] for r in rows_a] == [r["wdist_pair"] for r in rows_b]
    assert all(math.isfinite(r["wdist_pair"]) for r in rows_a)
    assert load_model(a / "critic").channels == 1  # the exported critic still scores single frames


def test_the_pair_critic_is_in_the_checkpoint(tiny_config, tmp_path):
    run = train_gan(tmp_path / "r", tiny_config(**OBJECTS, steps=1, pair_weight=0.5), **CPU)
    from safetensors import safe_open

    with safe_open(str(run / "checkpoint.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert any(k.startswith("C_pair.") for k in keys)
    # a run without it keeps the old checkpoint layout
    plain = train_gan(tmp_path / "p", tiny_config(**OBJECTS, steps=1), **CPU)
    G = load_model(plain / "generator")
    C = load_model(plain / "critic")
    load_checkpoint(plain / "checkpoint.safetensors", {"G": G, "C": C, "G_ema": G}, {})


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(pair_weight=1.0), ["position coordinates"]),  # a dcgan has no positions to move
        (dict(**OBJECTS, pair_weight=-1.0), ["pair_weight"]),
        (dict(**OBJECTS, pair_weight=float("nan")), ["pair_weight"]),
        (dict(**OBJECTS, pair_weight=1.0, pair_gap=0), ["pair_gap"]),
        (dict(**OBJECTS, pair_weight=1.0, pair_speed=0.0), ["pair_speed"]),
    ],
)
def test_bad_pair_settings_are_refused_before_any_work(tiny_config, tmp_path, overrides, words):
    with pytest.raises(LatentVideoError) as e:
        train_gan(tmp_path / "run", tiny_config(**overrides), **CPU)
    assert all(w in str(e.value) for w in words)
    assert not (tmp_path / "run").exists()


def test_cli_pair_flags(tmp_path, seq32, capsys):
    obj = TINY_OBJECTS_CLI
    run = tmp_path / "run"
    assert main(["train", "gan", "--out", str(run), "--data", str(seq32), *obj, "--pair-weight", "1"]) == 0
    assert json.loads((run / "config.json").read_text())["pair_weight"] == 1.0
    capsys.readouterr()
    before = listing(tmp_path)
    bad_args = [
        ["--out", str(tmp_path / "x"), "--pair-weight", "-1"],
        ["--out", str(tmp_path / "y"), "--pair-speed", "nan"],
    ]
    for bad in [*bad_args, ["--resume", str(run), "--pair-gap", "2"]]:
        assert_cli_refuses(["train", "gan", "--data", str(seq32), *obj, *bad], capsys)
    assert listing(tmp_path) == before
