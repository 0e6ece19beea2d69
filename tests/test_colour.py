"""The whole pipeline in colour: RGB sequence files, an RGB objects generator with a background code,
`latentvideo generate` with RGB and gray keyframes, and `train gan` / `train projector` on an RGB video.

Every model is tiny and seeded (32 px, width 4); training runs take 3 steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, write_png
from latentvideo.cli import main
from latentvideo.data import read_sequences, read_video, write_sequences
from latentvideo.errors import LatentVideoError
from latentvideo.frames import ArrayFrames, frame_source
from latentvideo.models import Critic, load_model, model_config, save_model
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import load_pipeline, prepare_keyframes
from latentvideo.render import contact_sheet
from latentvideo.shapes import moving_shapes, write_moving_shapes

RGB_G = dict(objects=2, appearance=4, resolution=32, channels=3, sprite=12, width=4, background=3)
FAST = ["--lbfgs-steps", "3", "--clip-steps", "3", "--critic-steps", "2"]  # pipeline flags: a tiny run
FRAMES, TIMES = 8, "0,3,7"


def is_colour(frames: np.ndarray, axis: int) -> bool:
    """Whether the channels (along `axis`, 3 of them) differ anywhere: not gray written as RGB."""
    a = np.moveaxis(np.asarray(frames), axis, 0)
    return a.shape[0] == 3 and not (np.array_equal(a[0], a[1]) and np.array_equal(a[1], a[2]))


@pytest.fixture(scope="module")
def shapes32():
    """Moving Shapes on a 32 px canvas: 2 sequences of 10 frames, uint8 [10, 2, 32, 32, 3]."""
    return moving_shapes(2, 10, 32, split="train", seed=0)


@pytest.fixture(scope="module")
def rgb_model(tmp_path_factory):
    """A model folder: an untrained RGB objects generator (background code 3) + an RGB critic, seeded."""
    path = tmp_path_factory.mktemp("rgb_model")
    torch.manual_seed(0)
    G = ObjectGenerator(**RGB_G)
    C = Critic(32, 3, 4)
    save_model(G, path / "generator", model_config(G, **RGB_G))
    save_model(C, path / "critic", model_config(C, resolution=32, channels=3, width=4))
    return path


@pytest.fixture(scope="module")
def rgb_keyframes(tmp_path_factory, shapes32):
    """Frames 0, 3 and 7 of a Moving Shapes sequence as RGB PNGs."""
    folder = tmp_path_factory.mktemp("keys")
    return [write_png(folder / f"k{t}.png", shapes32.video[t, 0]) for t in (0, 3, 7)]


# ------------------------------------------------------------------ sequence files in RGB


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_read_sequences_takes_the_rgb_layout(tmp_path, suffix):
    video = np.random.default_rng(0).integers(0, 256, (5, 3, 8, 8, 3), dtype=np.uint8)
    labels = np.array([[1], [2], [3]])
    write_sequences(tmp_path / f"v{suffix}", video, labels if suffix == ".npz" else None)
    v, lab = read_sequences(tmp_path / f"v{suffix}", with_labels=True)
    np.testing.assert_array_equal(v, video)
    assert v.dtype == np.uint8 and v.shape == (5, 3, 8, 8, 3)
    if suffix == ".npz":
        np.testing.assert_array_equal(lab, labels)
    else:
        assert lab is None


def test_frame_source_turns_rgb_sequences_into_rgb_frames(tmp_path):
    video = np.random.default_rng(1).integers(0, 256, (4, 3, 32, 32, 3), dtype=np.uint8)  # [T, N, H, W, 3]
    np.save(tmp_path / "rgb.npy", video)
    src = frame_source(str(tmp_path / "rgb.npy"))
    assert isinstance(src, ArrayFrames) and src.shape == (3, 32, 32)
    assert src.frames.shape == (4 * 3, 3, 32, 32) and src.frames.dtype == np.uint8
    assert src.frames.flags.c_contiguous
    for t in range(4):  # the gray order: frame t of sequence n at t * N + n
        for n in range(3):
            np.testing.assert_array_equal(src.frames[t * 3 + n], video[t, n].transpose(2, 0, 1))
    out = src.sample(np.random.default_rng(0), 5)
    assert out.shape == (5, 3, 32, 32)


def test_gray_sequences_are_read_as_before(seq32):
    v = read_sequences(seq32)
    assert v.shape == (6, 4, 32, 32)
    src = frame_source(str(seq32))
    assert src.shape == (1, 32, 32) and src.frames.shape == (24, 1, 32, 32)
    np.testing.assert_array_equal(src.frames[:, 0], v.reshape(-1, 32, 32))


def test_moving_shapes_files_are_training_data(tmp_path, shapes32):
    write_moving_shapes(tmp_path / "s.npy", shapes32)
    write_moving_shapes(tmp_path / "s.npz", shapes32)
    for name in ("s.npy", "s.npz"):
        src = frame_source(str(tmp_path / name))
        assert src.shape == (3, 32, 32) and len(src.frames) == 20
        np.testing.assert_array_equal(src.frames[1], shapes32.video[0, 1].transpose(2, 0, 1))


@pytest.mark.parametrize(
    "array, words",
    [
        (np.zeros((2, 2, 8, 8, 3), np.float32), "float32 [2, 2, 8, 8, 3], expected uint8 [T, N, H, W, 3]"),
        (np.zeros((2, 2, 8, 8), np.float32), "float32 [2, 2, 8, 8], expected uint8 [T, N, H, W] (hint: the mnist"),
        (np.zeros((2, 2, 8, 8, 4), np.uint8), "uint8 [2, 2, 8, 8, 4], expected uint8 [T, N, H, W] (hint"),
        (np.zeros((2, 2, 8, 8, 1), np.uint8), "expected uint8 [T, N, H, W] (hint"),
        (np.zeros((2, 2, 1, 8, 8), np.uint8), "expected uint8 [T, N, H, W] (hint"),
        (np.zeros((2, 2, 8, 8, 3, 1), np.uint8), "expected uint8 [T, N, H, W] (hint"),
        (np.zeros((2, 8, 8), np.uint8), "expected uint8 [T, N, H, W] (hint"),
    ],
)
def test_bad_sequence_layouts_are_refused(tmp_path, array, words):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(LatentVideoError) as e:
        read_sequences(tmp_path / "bad.npy")
    assert words in str(e.value), str(e.value)
    with pytest.raises(LatentVideoError):
        frame_source(str(tmp_path / "bad.npy"))


def test_rgb_labels_are_checked_against_the_sequences(tmp_path):
    np.savez(tmp_path / "v.npz", video=np.zeros((2, 3, 8, 8, 3), np.uint8), labels=np.zeros((2, 1)))
    with pytest.raises(LatentVideoError, match="labels must be"):
        read_sequences(tmp_path / "v.npz")


def test_generate_from_an_rgb_sequence_file(tmp_path, rgb_model, shapes32):
    write_moving_shapes(tmp_path / "s.npy", shapes32)
    out = tmp_path / "from.png"
    args = ["generate", "--from", str(tmp_path / "s.npy"), "--sequence", "1", "--keyframes", "0,4,9"]
    assert main([*args, "--frames", "10", "--model", str(rgb_model), "--out", str(out), *FAST]) == 0
    sheet = np.asarray(Image.open(out))
    assert sheet.ndim == 3 and sheet.shape[-1] == 3  # two rows: generated and the RGB truth
    truth = contact_sheet([shapes32.video[:, 1]], None, [0, 4, 9])
    assert sheet.shape[0] > truth.shape[0]


# ------------------------------------------------------------------ generate in colour


def test_generate_writes_rgb_clips_in_every_format(tmp_path, rgb_model, rgb_keyframes, capsys):
    keys = [str(k) for k in rgb_keyframes]
    for ext in (".npy", ".gif", ".mp4", ".png"):
        out = tmp_path / f"clip{ext}"
        args = ["generate", *keys, "--model", str(rgb_model), "--frames", str(FRAMES), "--times", TIMES]
        assert main([*args, "--out", str(out), *FAST]) == 0, capsys.readouterr().err
        assert out.is_file()
    clip = np.load(tmp_path / "clip.npy")
    assert clip.dtype == np.uint8 and clip.shape == (FRAMES, 32, 32, 3)
    assert is_colour(clip, -1)
    gif = read_video(tmp_path / "clip.gif")  # Pillow merges identical consecutive frames
    assert gif.shape[1:] == (3, 32, 32) and 2 <= len(gif) <= FRAMES and is_colour(gif, 1)
    mp4 = read_video(tmp_path / "clip.mp4")  # upscaled 4x
    assert mp4.shape == (FRAMES, 3, 128, 128) and is_colour(mp4, 1)
    sheet = np.asarray(Image.open(tmp_path / "clip.png"))
    assert Image.open(tmp_path / "clip.png").mode == "RGB"
    np.testing.assert_array_equal(sheet, contact_sheet([clip], None, [0, 3, 7]))  # seeded: the same clip


def test_gray_keyframes_into_an_rgb_model_become_gray_rgb(tmp_path, rgb_model, shapes32):
    gray = [np.asarray(Image.fromarray(shapes32.video[t, 0]).convert("L")) for t in (0, 3, 7)]
    paths = [write_png(tmp_path / f"g{i}.png", g) for i, g in enumerate(gray)]
    assert all(np.asarray(Image.open(p)).ndim == 2 for p in paths)
    k = prepare_keyframes(paths, channels=3, resolution=32)
    assert k.shape == (3, 3, 32, 32) and k.dtype == torch.float32
    for i, g in enumerate(gray):  # the gray image repeated over R, G and B
        for c in range(3):
            torch.testing.assert_close(k[i, c], torch.tensor(g).float() / 255)
    k2 = prepare_keyframes(np.stack(gray), channels=3, resolution=32)  # an array [K, H, W] too
    torch.testing.assert_close(k2, k)

    out = tmp_path / "gray.npy"
    args = ["generate", *map(str, paths), "--model", str(rgb_model), "--frames", str(FRAMES), "--times", TIMES]
    assert main([*args, "--out", str(out), *FAST]) == 0
    clip = np.load(out)
    assert clip.shape == (FRAMES, 32, 32, 3)


def test_gray_keyframes_at_another_size_need_resize(tmp_path, rgb_model, capsys):
    paths = [write_png(tmp_path / f"g{i}.png", np.full((40, 40), 60 * i, np.uint8)) for i in range(3)]
    args = ["generate", *map(str, paths), "--model", str(rgb_model), "--frames", "4", *FAST]
    assert main([*args, "--out", str(tmp_path / "x.npy")]) == 2
    assert "--resize" in capsys.readouterr().err
    assert main([*args, "--resize", "--out", str(tmp_path / "y.npy")]) == 0
    assert np.load(tmp_path / "y.npy").shape == (4, 32, 32, 3)


# ------------------------------------------------------------------ training in colour


@pytest.fixture(scope="module")
def shapes_mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "train.mp4"
    args = ["dataset", "moving-shapes", "--split", "train", "--size", "32", "--sequences", "2", "--out", str(path)]
    assert main(args) == 0
    return path


def test_the_moving_shapes_mp4_reads_as_rgb_frames(shapes_mp4):
    src = frame_source(str(shapes_mp4))
    assert src.shape == (3, 32, 32) and len(src.frames) == 2 * 20
    np.testing.assert_array_equal(src.frames[0], moving_shapes(2, 20, 32).video[0, 0].transpose(2, 0, 1))


TRAIN = ["--arch", "objects", "--objects", "2", "--appearance", "4", "--sprite", "12", "--background", "3"]
TRAIN += ["--width", "4", "--batch-size", "4", "--n-critic", "1", "--steps", "3", "--checkpoint-every", "100"]


@pytest.fixture(scope="module")
def rgb_run(tmp_path_factory, shapes_mp4):
    """A 3-step objects GAN run on the RGB video, then 3 steps of P-NET on the same video."""
    run = tmp_path_factory.mktemp("runs") / "shapes"
    assert main(["train", "gan", "--out", str(run), "--data", str(shapes_mp4), *TRAIN]) == 0
    p_args = ["--data", str(shapes_mp4), "--steps", "3", "--batch-size", "4", "--width", "4", "--hidden", "16"]
    assert main(["train", "projector", "--gan", str(run), *p_args]) == 0
    return run


def test_train_gan_on_an_rgb_video_exports_an_rgb_objects_generator(rgb_run):
    cfg = json.loads((rgb_run / "generator" / "config.json").read_text())
    assert cfg["arch"] == "objects-generator" and cfg["channels"] == 3 and cfg["background"] == 3
    assert json.loads((rgb_run / "critic" / "config.json").read_text())["channels"] == 3
    G = load_model(rgb_run / "generator")
    assert isinstance(G, ObjectGenerator) and (G.channels, G.background, G.objects) == (3, 3, 2)
    assert G.z_dim == 2 * (4 + 2) + 3
    with torch.no_grad():
        assert G(G.sample_latents(2)).shape == (2, 3, 32, 32)
    samples = sorted((rgb_run / "samples").glob("*.png"))
    assert samples and Image.open(samples[-1]).mode == "RGB"
    stats = [json.loads(line) for line in (rgb_run / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 3 and all(np.isfinite(r["wdist"]) for r in stats)


def test_train_projector_on_the_rgb_run(rgb_run):
    cfg = json.loads((rgb_run / "projector" / "config.json").read_text())
    assert cfg["channels"] == 3 and cfg["resolution"] == 32 and cfg["z_dim"] == 2 * (4 + 2) + 3
    stats = (rgb_run / "projector_stats.jsonl").read_text().splitlines()
    assert json.loads(stats[-1])["step"] == 3


def test_the_trained_rgb_run_makes_a_clip(rgb_run, shapes_mp4):
    pipe = load_pipeline(rgb_run)
    assert pipe.channels == 3 and pipe.resolution == 32 and pipe.projector is not None
    frames = read_video(shapes_mp4)[[0, 4, 9]]  # [3, 3, 32, 32]
    keys = prepare_keyframes(frames, pipe.channels, pipe.resolution)
    clip = pipe(keys, [0, 4, 9], 10, lbfgs_steps=3, clip_steps=3, critic_steps=2)
    assert clip.frames.shape == (10, 3, 32, 32) and torch.isfinite(clip.frames).all()
    assert clip.reconstructions.shape == (3, 3, 32, 32)


def test_projector_on_gray_data_for_an_rgb_gan_is_a_one_line_error(rgb_run, tmp_path, capsys):
    code = main(["train", "projector", "--gan", str(rgb_run), "--out", str(tmp_path / "p"), "--steps", "1"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "frames of moving-mnist are [1, 32, 32] but G makes [3, 32, 32]" in err


def test_train_gan_on_an_rgb_sequence_file(tmp_path, shapes32):
    from latentvideo.training.gan import GANConfig, train_gan

    write_moving_shapes(tmp_path / "s.npz", shapes32)
    tiny = {k: v for k, v in TINY.items() if k != "z_dim"}
    cfg = GANConfig(data=str(tmp_path / "s.npz"), arch="objects", objects=2, appearance=4, sprite=12, background=3)
    run = train_gan(tmp_path / "run", GANConfig(**{**cfg.__dict__, **tiny, "steps": 2}), progress=False)
    G = load_model(run / "generator")
    assert isinstance(G, ObjectGenerator) and G.channels == 3 and G.background == 3
