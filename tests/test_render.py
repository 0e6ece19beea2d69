import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentvideo import render as R
from latentvideo.errors import LatentVideoError
from latentvideo.models import Generator

torch.set_num_threads(1)


def clip(T=6, H=16, W=16, rgb=False, seed=0):
    """Distinct, blocky uint8 frames: [T, H, W] or [T, H, W, 3]."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (T, H // 4, W // 4) + ((3,) if rgb else ()), dtype=np.uint8)
    return small.repeat(4, 1).repeat(4, 2)


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ---------------------------------------------------------------- render / to_uint8


def test_render_matches_G_and_chunking_does_not_change_results():
    torch.manual_seed(0)
    G = Generator(z_dim=8, resolution=32, channels=1, width=4)
    z = torch.randn(10, 8)
    with torch.no_grad():
        direct = G(z)
    a, b = R.render(G, z, batch_size=3), R.render(G, z, batch_size=256)
    assert a.shape == (10, 1, 32, 32) and a.device.type == "cpu" and not a.requires_grad
    torch.testing.assert_close(b, direct)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # same up to float reassociation


def test_render_parameterless_module_and_bad_latents():
    G = torch.nn.Sequential(torch.nn.Unflatten(1, (3, 2, 2)), torch.nn.Sigmoid())  # no parameters -> cpu
    z = np.zeros((5, 12), np.float32)
    out = R.render(G, z, batch_size=2)
    assert out.shape == (5, 3, 2, 2) and torch.all(out == 0.5)
    with pytest.raises(LatentVideoError):
        R.render(G, np.zeros(12))
    with pytest.raises(LatentVideoError):
        R.render(Generator(z_dim=8, resolution=32, width=4), torch.zeros(2, 9))


@pytest.mark.parametrize("C", [1, 3])
def test_to_uint8_round_trip_and_shapes(C):
    u8 = np.random.default_rng(C).integers(0, 256, (4, C, 5, 7), dtype=np.uint8)
    x = torch.from_numpy(u8).float() / 255
    out = R.to_uint8(x)
    assert out.dtype == np.uint8
    assert out.shape == ((4, 5, 7) if C == 1 else (4, 5, 7, 3))
    want = u8[:, 0] if C == 1 else u8.transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(R.to_uint8(x.numpy()), want)  # numpy input too
    # nearest level, not truncation; out of range and NaN are clipped
    assert R.to_uint8(torch.tensor([0.4, 0.6, 254.6]).view(3, 1, 1, 1) / 255).ravel().tolist() == [0, 1, 255]
    assert R.to_uint8(torch.tensor([-1.0, 2.0, float("nan")]).view(3, 1, 1, 1)).ravel().tolist() == [0, 255, 0]
    with pytest.raises(LatentVideoError):
        R.to_uint8(torch.zeros(4, 2, 5, 5))


# ---------------------------------------------------------------- writers


@pytest.mark.parametrize("rgb", [False, True])
def test_gif_read_back(tmp_path, rgb):
    frames = clip(T=5, rgb=rgb)
    path = R.write_clip(tmp_path / "a.gif", frames, fps=20)
    with Image.open(path) as im:
        assert im.n_frames == 5 and im.size == (16, 16)
        assert im.info["duration"] == 50 and im.info["loop"] == 0
        first = np.asarray(im.convert("RGB")).astype(int)
    want = R._rgb(frames)[0].astype(int)
    assert np.abs(first - want).mean() < 8  # palette quantisation for RGB; exact for grey
    R.write_gif(tmp_path / "b.gif", frames, scale=3)
    with Image.open(tmp_path / "b.gif") as im:
        assert im.size == (48, 48)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("rgb,H,W,scale", [(False, 16, 16, 4), (True, 15, 9, 1)])
def test_mp4_read_back(tmp_path, rgb, H, W, scale):
    import imageio_ffmpeg

    frames = clip(T=7, H=16, W=16, rgb=rgb)[:, :H, :W]
    R.write_mp4(tmp_path / "a.mp4", frames, fps=10, scale=scale)
    reader = imageio_ffmpeg.read_frames(str(tmp_path / "a.mp4"))
    meta = next(reader)
    got = [np.frombuffer(b, np.uint8) for b in reader]
    w, h = meta["size"]
    assert (w, h) == (W * scale + W * scale % 2, H * scale + H * scale % 2)  # padded to even
    assert len(got) == 7
    first = got[0].reshape(h, w, 3)[: H * scale, : W * scale].astype(int)
    want = R._rgb(R._upscale(frames, scale))[0].astype(int)
    assert np.abs(first - want).mean() < 12  # lossy, but the same picture
    assert leftovers(tmp_path) == []


def test_npy_round_trip(tmp_path):
    for frames in (clip(), clip(rgb=True)):
        R.write_clip(tmp_path / "a.npy", frames)
        got = np.load(tmp_path / "a.npy")
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, frames)


def test_png_contact_sheet(tmp_path):
    T, H, W, s = 6, 16, 12, 2
    gen, truth = clip(T, H, W), clip(T - 2, H, W, rgb=True, seed=1)
    path = R.write_clip(tmp_path / "sheet.png", gen, keyframes=[0, 3], rows=[truth], labels=["generated", "truth"])
    with Image.open(path) as im:
        sheet = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(sheet, R.contact_sheet([gen, truth], ["generated", "truth"], [0, 3], scale=s))

    px, py = W * s + 2 * R.BORDER + R.GAP, H * s + 2 * R.BORDER + R.GAP
    bare = R.contact_sheet([gen], marked=[0, 3], scale=s)
    assert bare.dtype == np.uint8 and bare.shape[1] == R.GAP + T * px  # no labels: no left margin
    two = R.contact_sheet([gen, truth], marked=[0, 3], scale=s)
    assert two.shape[1] == bare.shape[1] and two.shape[0] == bare.shape[0] + py  # one row more
    assert sheet.shape[0] == two.shape[0] and sheet.shape[1] > two.shape[1]  # labels widen it

    top = two.shape[0] - 2 * py  # header height + GAP
    for r, rows in enumerate([gen, truth]):
        for t in range(len(rows)):
            y, x = top + r * py, R.GAP + t * px  # cell corner (border ring)
            border = tuple(two[y, x])
            assert border == (R.MARK if t in (0, 3) else R.BACKGROUND)
            cell = two[y + R.BORDER : y + R.BORDER + H * s, x + R.BORDER : x + R.BORDER + W * s]
            np.testing.assert_array_equal(cell, R._rgb(R._upscale(rows, s))[t])
    # frame numbers on top: orange over keyframe columns, grey over the others
    head = two[:top].astype(int)  # [top, W, 3]
    orange = (head[..., 0] - head[..., 2] > 60).any(0)  # [W]
    grey = (head.min(-1) > 100).any(0)  # [W]
    for t in range(T):
        cols = slice(R.GAP + t * px, R.GAP + (t + 1) * px)
        assert orange[cols].any() == (t in (0, 3)) and grey[cols].any() == (t not in (0, 3))
    with pytest.raises(LatentVideoError):
        R.contact_sheet([gen], marked=[T])
    with pytest.raises(LatentVideoError):
        R.contact_sheet([gen], labels=["a", "b"])
    with pytest.raises(LatentVideoError):
        R.contact_sheet([gen, clip(T, 8, 8)])


# ---------------------------------------------------------------- bad paths and failures


def test_bad_output_paths_raise_before_writing(tmp_path):
    frames = clip()
    for bad in (tmp_path / "a.avi", tmp_path / "noext"):
        with pytest.raises(LatentVideoError, match="format"):
            R.check_output_path(bad)
        with pytest.raises(LatentVideoError):
            R.write_clip(bad, frames)
        assert not bad.exists()
    (tmp_path / "d.gif").mkdir()
    with pytest.raises(LatentVideoError, match="directory"):
        R.write_clip(tmp_path / "d.gif", frames)
    (tmp_path / "file").write_text("x")
    with pytest.raises(LatentVideoError):
        R.check_output_path(tmp_path / "file" / "a.gif")  # parent is a file
    assert R.check_output_path(tmp_path / "new" / "a.MP4") == tmp_path / "new" / "a.MP4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.gif", "file", "new"]


def test_unwritable_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as a user who can write to a 0o500 folder (root)")
        with pytest.raises(LatentVideoError, match="not writable"):
            R.write_clip(ro / "a.gif", clip())
        assert list(ro.iterdir()) == []
    finally:
        ro.chmod(0o700)


def test_unwritable_folder_reported_as_error(tmp_path, monkeypatch):
    """The same path as above, also exercised when running as root."""
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path) else real_access(p, mode))
    with pytest.raises(LatentVideoError, match="not writable"):
        R.write_clip(tmp_path / "a.npy", clip())
    assert list(tmp_path.iterdir()) == []


def _image_save_then_fail(image, target, *args, **kwargs):
    Path(target).write_bytes(b"partial")
    raise OSError("disk full")


def _np_save_then_fail(f, *args, **kwargs):
    f.write(b"partial")
    raise OSError("disk full")


@pytest.mark.parametrize("ext", [".gif", ".png", ".npy", ".mp4"])
def test_failure_mid_write_keeps_previous_file(tmp_path, monkeypatch, ext):
    path = tmp_path / f"out{ext}"
    R.write_clip(path, clip(T=3))
    before = path.read_bytes()
    if ext in (".gif", ".png"):
        monkeypatch.setattr(Image.Image, "save", _image_save_then_fail)
    elif ext == ".npy":
        monkeypatch.setattr(np, "save", _np_save_then_fail)
    else:  # ffmpeg has started and written some frames when the third frame fails
        real, calls = R._upscale, []

        def upscale(frames, scale):
            calls.append(1)
            if len(calls) == 3:
                raise OSError("disk full")
            return real(frames, scale)

        monkeypatch.setattr(R, "_upscale", upscale)
    with pytest.raises(OSError, match="disk full"):
        R.write_clip(path, clip(T=6, seed=5))
    assert path.read_bytes() == before
    assert leftovers(tmp_path) == []


def test_ffmpeg_failure_is_reported_and_leaves_nothing(tmp_path, monkeypatch):
    import imageio_ffmpeg

    monkeypatch.setattr(imageio_ffmpeg, "get_ffmpeg_exe", lambda: "false")
    with pytest.raises(LatentVideoError, match="ffmpeg failed"):
        R.write_mp4(tmp_path / "a.mp4", clip())
    assert list(tmp_path.iterdir()) == []


def test_bad_frames_and_fps(tmp_path):
    with pytest.raises(LatentVideoError):
        R.write_gif(tmp_path / "a.gif", clip().astype(np.float32))
    with pytest.raises(LatentVideoError):
        R.write_npy(tmp_path / "a.npy", np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(LatentVideoError):
        R.write_mp4(tmp_path / "a.mp4", clip(), fps=0)
    assert list(tmp_path.iterdir()) == []
