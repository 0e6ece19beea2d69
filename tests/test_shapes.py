"""Moving Shapes (shapes.py) and `latentvideo dataset moving-shapes`: determinism, layouts, ground truth
against the pixels, bounces, the train/test split, the optional scikit-image, and the written files."""

from __future__ import annotations

import ast
import colorsys
import re
import sys
from pathlib import Path

import numpy as np
import pytest

import latentvideo.shapes as shapes_mod
from latentvideo.cli import main
from latentvideo.data import moving_mnist_speed
from latentvideo.frames import frame_source
from latentvideo.shapes import (
    BACKGROUNDS,
    SHAPES,
    TEST_HUES,
    TEST_PHOTOS,
    TRAIN_PHOTOS,
    in_test_hues,
    moving_shapes,
    object_sizes,
    parse_objects,
)

try:
    import skimage.data  # noqa: F401

    HAVE_SKIMAGE = True
except ImportError:
    HAVE_SKIMAGE = False

FIELDS = ("video", "positions", "mask", "shapes", "colours", "sizes", "hues", "alpha", "background",
          "background_ids", "background_hues")  # fmt: skip


@pytest.fixture(scope="module")
def train():
    return moving_shapes(24, 30, 64, "train", seed=5)


@pytest.fixture(scope="module")
def test_set():
    return moving_shapes(24, 6, 64, "test", seed=5)


def test_same_seed_same_bytes_other_seed_differs(train):
    again = moving_shapes(24, 30, 64, "train", seed=5)
    for name in FIELDS:
        a, b = getattr(train, name), getattr(again, name)
        assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), name
    other = moving_shapes(24, 30, 64, "train", seed=6)
    assert not np.array_equal(other.video, train.video)


def test_shapes_and_dtypes(train):
    T, N, K = 30, 24, 3
    assert train.video.shape == (T, N, 64, 64, 3) and train.video.dtype == np.uint8
    assert train.positions.shape == (T, N, K, 2) and train.positions.dtype == np.int64
    assert train.mask.shape == (N, K) and train.mask.dtype == bool
    assert train.shapes.shape == train.sizes.shape == train.hues.shape == (N, K)
    assert train.colours.shape == (N, K, 3) and train.colours.dtype == np.uint8
    assert train.alpha.shape == (N, K, 20, 20) and train.alpha.dtype == np.uint8
    assert train.background.shape == (N, 64, 64, 3) and train.background_ids.shape == (N,)
    assert train.background_hues.shape == (N, 2) and train.centres.shape == (T, N, K, 2)
    counts = train.mask.sum(1)
    assert counts.min() >= 1 and counts.max() <= 3 and len(set(counts.tolist())) > 1
    assert (train.mask == (np.arange(K) < counts[:, None])).all()  # slots fill in order
    m = train.mask
    assert ((train.shapes >= 0) & (train.shapes < len(SHAPES)))[m].all() and (train.shapes[~m] == -1).all()
    assert np.isin(train.sizes[m], object_sizes(64)).all() and (train.sizes[~m] == 0).all()
    assert (train.colours[~m] == 0).all() and (train.positions[:, ~m] == 0).all() and np.isnan(train.hues[~m]).all()
    two = moving_shapes(3, 4, 48, "train", seed=1, objects=(2, 2))
    assert two.video.shape == (4, 3, 48, 48, 3) and two.mask.shape == (3, 2) and two.mask.all()
    assert moving_shapes(2, 3, 64, "test", objects=(1, 1)).positions.shape == (3, 2, 1, 2)


def test_ground_truth_matches_pixels(train):
    v, bg = train.video.astype(np.int64), train.background.astype(np.int64)
    T, N, K = train.positions.shape[:3]
    differs = total = 0
    for n in range(N):
        covered = np.zeros((T, 64, 64), bool)  # any object's box, for the pure-background check
        for k in reversed(range(K)):  # top slot first: `above` holds what lies over slot k
            if not train.mask[n, k]:
                continue
            s = train.sizes[n, k]
            a = train.alpha[n, k, :s, :s]
            assert (a == 255).any() and (train.alpha[n, k, s:] == 0).all() and (train.alpha[n, k, :, s:] == 0).all()
            for t in range(T):
                r, c = train.positions[t, n, k]
                full = np.zeros((64, 64), bool)
                full[r : r + s, c : c + s] = a == 255
                visible = full & ~covered[t]  # opaque and under no later object's box
                px = v[t, n][visible]
                assert (px == train.colours[n, k]).all(), (n, k, t)
                differs += int((px != bg[n][visible]).any(1).sum())
                total += int(visible.sum())
            for t in range(T):
                r, c = train.positions[t, n, k]
                covered[t, r : r + s, c : c + s] = True
        free = ~covered  # [T, H, W] outside every box: the background as it is
        assert (v[:, n][free] == np.broadcast_to(bg[n], v[:, n].shape)[free]).all()
    assert total > 0 and differs / total > 0.97, differs / total


def test_objects_bounce_within_the_free_range(train):
    speed = moving_mnist_speed(64)  # 3.6 px per frame
    p, m = train.positions, train.mask
    bounces = 0
    for n, k in zip(*np.nonzero(m)):
        free = 64 - train.sizes[n, k]
        path = p[:, n, k]  # [T, 2]
        assert path.min() >= 0 and path.max() <= free
        d = np.diff(path, axis=0)
        assert (np.abs(d) <= np.ceil(speed) + 1).all()
        assert np.hypot(*d.T).max() > speed - 1.5  # it moves at Moving MNIST speed
        for axis in range(2):
            flip = d[:-1, axis] * d[1:, axis] < 0  # direction reverses between steps t and t+1
            at = path[1:-1, axis][flip]
            assert ((at <= speed + 1) | (at >= free - speed - 1)).all(), (n, k, axis, at)  # only at walls
            bounces += int(flip.sum())
    assert bounces > 5


def test_split_is_disjoint_in_backgrounds_and_hues(train, test_set):
    assert not set(TRAIN_PHOTOS) & set(TEST_PHOTOS)
    photo = {
        s: set(np.array(BACKGROUNDS)[x.background_ids]) - {"gradient"} for s, x in (("tr", train), ("te", test_set))
    }
    assert photo["tr"] <= set(TRAIN_PHOTOS) and photo["te"] <= set(TEST_PHOTOS)
    if HAVE_SKIMAGE:
        assert photo["tr"] and photo["te"]
    for x, is_test in ((train, False), (test_set, True)):
        assert (in_test_hues(x.hues[x.mask]) == is_test).all()
        grad = x.background_ids == BACKGROUNDS.index("gradient")
        assert np.isnan(x.background_hues[~grad]).all() and (in_test_hues(x.background_hues[grad]) == is_test).all()
        # the stored colours carry the hue (within rounding)
        h = np.array([colorsys.rgb_to_hsv(*(c / 255))[0] * 360 for c in x.colours[x.mask]])
        lo, hi = TEST_HUES
        inside = (h > lo - 1) & (h < hi + 1)
        assert inside.all() if is_test else not ((h > lo + 1) & (h < hi - 1)).any()


def test_gradients_only_without_scikit_image(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "skimage", None)  # import skimage -> ImportError
    ms = moving_shapes(6, 2, 64, "train", seed=0)
    assert (ms.background_ids == BACKGROUNDS.index("gradient")).all()
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "scikit-image" in err[0]


def test_scikit_image_is_not_imported_with_the_module():
    tree = ast.parse(Path(shapes_mod.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [x for x in names if x.startswith("skimage")]


def test_parse_objects():
    assert parse_objects("1-3") == (1, 3) and parse_objects("2") == (2, 2) and parse_objects(" 1-1 ") == (1, 1)


# ---------------------------------------------------------------- the command


def _run(args, capsys):
    code = main(["dataset", "moving-shapes", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_npy_and_npz(tmp_path, capsys):
    code, out, err = _run(
        ["--split", "test", "--sequences", 3, "--frames", 4, "--seed", 2, "--out", tmp_path / "a.npy"], capsys
    )
    assert code == 0, err
    ref = moving_shapes(3, 4, 64, "test", seed=2)
    assert np.array_equal(np.load(tmp_path / "a.npy"), ref.video) and "[4, 3, 64, 64, 3]" in out
    code, out, err = _run(["--split", "test", "--sequences", 3, "--frames", 4, "--seed", 2, "--objects", "1-3",
                           "--out", tmp_path / "a.npz"], capsys)  # fmt: skip
    assert code == 0, err
    with np.load(tmp_path / "a.npz", allow_pickle=False) as z:
        for name in FIELDS:
            assert np.array_equal(z[name], getattr(ref, name), equal_nan=name.endswith("hues")), name
        assert tuple(z["shape_names"]) == SHAPES and tuple(z["background_names"]) == BACKGROUNDS


def test_cli_mp4_reads_back_for_training(tmp_path, capsys):
    path = tmp_path / "clips.mp4"
    code, out, err = _run(["--sequences", 3, "--frames", 5, "--seed", 1, "--out", path], capsys)
    assert code == 0, err
    assert "15 RGB frames 64x64" in out
    ref = moving_shapes(3, 5, 64, "train", seed=1).video  # [T, N, H, W, 3]
    ref = ref.transpose(1, 0, 4, 2, 3).reshape(15, 3, 64, 64)  # sequences one after another, [F, C, H, W]
    src = frame_source(str(path), size=64, resize=None)  # what `train gan --data clips.mp4` reads
    assert src.shape == (3, 64, 64) and src.frames.shape == ref.shape and src.frames.dtype == np.uint8
    mse = np.mean((src.frames.astype(np.float64) - ref) ** 2)
    psnr = np.inf if mse == 0 else 10 * np.log10(255**2 / mse)
    assert psnr > 30, psnr  # lossless libx264rgb: in fact the same bytes


@pytest.mark.parametrize(
    "args, match",
    [
        (["--out", "x.avi"], r"unknown output extension '\.avi'"),
        (["--out", "x"], r"unknown output extension"),
        (["--split", "val", "--out", "x.npy"], r"unknown split 'val'"),
        (["--sequences", "0", "--out", "x.npy"], r"--sequences .* at least 1"),
        (["--frames", "0", "--out", "x.npy"], r"at least 1"),
        (["--objects", "0-2", "--out", "x.npy"], r"within 1\.\.3"),
        (["--objects", "1-4", "--out", "x.npy"], r"within 1\.\.3"),
        (["--objects", "3-1", "--out", "x.npy"], r"within 1\.\.3"),
        (["--objects", "two", "--out", "x.npy"], r"objects must be N or MIN-MAX"),
        (["--size", "16", "--out", "x.npy"], r"canvas size must be at least 32"),
    ],
)
def test_cli_refuses_bad_flags(tmp_path, capsys, args, match):
    args = [str(tmp_path / a) if a.startswith("x") else a for a in args]
    code, _, err = _run(args, capsys)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]
    assert not list(tmp_path.iterdir())  # nothing written
