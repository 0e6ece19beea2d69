"""Moving Shapes: a colour Moving MNIST made offline, with full ground truth.

Each sequence shows 1 to 3 filled shapes (disc, square, triangle, star, ring) of a few
sizes (12, 16 or 20 px on a 64 canvas, scaled with the canvas) in saturated colours,
anti-aliased (drawn at 4x with Pillow and box-filtered down). They move with the
Moving MNIST dynamics (`data.bounce_paths`): constant speed in a random direction,
bouncing off the walls, over the free range canvas - object size. Every object moves
3.6 px per frame on a 64 canvas (the speed of Moving MNIST's digits, `data.moving_mnist_speed`),
scaled with the canvas. Objects are composited alpha-over, slot 0 at the bottom, onto a
static background per sequence.

Backgrounds: random crops (a quarter to half the photograph's short side, randomly
mirrored, resized to the canvas) of the colour photographs bundled in scikit-image's wheel
(no download), or a smooth two-colour linear gradient (a third of the sequences; all of
them without scikit-image, which stays optional: it is imported only here, on use).

Train/test split, fixed, so test sequences show backgrounds and colours no network
trained on:
    photographs   train: astronaut, coffee, rocket, immunohistochemistry, retina (its centre)
                  test:  chelsea, motorcycle (stereo_motorcycle, left view), hubble_deep_field
    hues          test:  [150, 210) degrees (greens to cyans), train: the other 300 degrees;
                  used for the objects' colours and for both colours of gradient backgrounds.
The same seed gives the same bytes; train and test draw from different seeds.

Layouts: video uint8 [T, N, H, W, 3]; ground truth per slot [N, K] (K = most objects),
positions [T, N, K, 2] top-left (row, col) of each object's size x size box.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import SPLITS, bounce_paths, moving_mnist_speed
from .errors import LatentVideoError

SHAPES = ("disc", "square", "triangle", "star", "ring")
SIZES = (12, 16, 20)  # object box sides in px on a 64 canvas; scaled with the canvas
MIN_SIZE = 32  # smallest canvas
MAX_OBJECTS = 3
TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "retina")
TEST_PHOTOS = ("chelsea", "motorcycle", "hubble_deep_field")
BACKGROUNDS = TRAIN_PHOTOS + TEST_PHOTOS + ("gradient",)  # names of `background_ids`
TEST_HUES = (150.0, 210.0)  # degrees [lo, hi): test hues; train uses the rest of the circle
PHOTO_FRACTION = 2 / 3  # of the sequences get a photograph (when scikit-image is there)
OBJECT_SAT, OBJECT_VAL = (0.75, 1.0), (0.8, 1.0)  # saturated, bright objects
GRADIENT_SAT, GRADIENT_VAL = (0.2, 0.6), (0.25, 0.65)  # calmer, darker gradients
OUTPUT_EXTS = (".mp4", ".npy", ".npz")
SUPERSAMPLE = 4


@dataclass
class MovingShapes:
    video: np.ndarray  # uint8 [T, N, H, W, 3]
    positions: np.ndarray  # int64 [T, N, K, 2] top-left (row, col) of each object's box; 0 in empty slots
    mask: np.ndarray  # bool [N, K] which slots hold an object
    shapes: np.ndarray  # int64 [N, K] index into SHAPES; -1 in empty slots
    colours: np.ndarray  # uint8 [N, K, 3] RGB; 0 in empty slots
    sizes: np.ndarray  # int64 [N, K] box side in px; 0 in empty slots
    hues: np.ndarray  # float32 [N, K] colour hue in degrees; NaN in empty slots
    alpha: np.ndarray  # uint8 [N, K, S, S] each object's coverage (255 = opaque), box at the top left
    background: np.ndarray  # uint8 [N, H, W, 3] the background without objects
    background_ids: np.ndarray  # int64 [N] index into BACKGROUNDS
    background_hues: np.ndarray  # float32 [N, 2] a gradient's two hues; NaN for photographs

    @property
    def centres(self) -> np.ndarray:
        """float64 [T, N, K, 2] (row, col) centres of the objects' boxes (pixel centres at .5)."""
        return self.positions + self.sizes[None, :, :, None] / 2

    def ground_truth(self) -> dict[str, np.ndarray]:
        """Every array but the video, plus the name tables, as written to .npz."""
        names = ("positions", "mask", "shapes", "colours", "sizes", "hues", "alpha", "background")
        gt = {k: getattr(self, k) for k in names}
        gt.update(background_ids=self.background_ids, background_hues=self.background_hues)
        gt.update(shape_names=np.array(SHAPES), background_names=np.array(BACKGROUNDS))
        return gt


def parse_objects(text: str) -> tuple[int, int]:
    """'2' -> (2, 2), '1-3' -> (1, 3); both within 1..3."""
    parts = str(text).strip().split("-")
    try:
        lo, hi = (int(parts[0]), int(parts[-1])) if len(parts) <= 2 else (None, None)
    except ValueError:
        lo = hi = None
    if lo is None:
        raise LatentVideoError(f"objects must be N or MIN-MAX, got {text!r}", hint="e.g. 1-3 or 2")
    return check_objects((lo, hi))


def check_objects(objects) -> tuple[int, int]:
    lo, hi = (int(v) for v in objects)
    if not 1 <= lo <= hi <= MAX_OBJECTS:
        raise LatentVideoError(f"objects per sequence must be within 1..{MAX_OBJECTS} with min <= max, got {lo}-{hi}")
    return lo, hi


def object_sizes(size: int) -> tuple[int, ...]:
    """The object box sides in px on a size x size canvas."""
    return tuple(max(4, round(s * size / 64)) for s in SIZES)


def moving_shapes(
    num_sequences: int,
    num_frames: int = 20,
    size: int = 64,
    split: str = "train",
    seed: int = 0,
    objects: tuple[int, int] = (1, 3),
) -> MovingShapes:
    """Synthesise Moving Shapes sequences of `split`, seeded and deterministic (see the module docstring)."""
    if split not in SPLITS:
        raise LatentVideoError(f"unknown split {split!r}", hint="use 'train' or 'test'")
    lo, hi = check_objects(objects)
    if num_sequences < 1 or num_frames < 1:
        raise LatentVideoError("need at least one sequence and one frame")
    if size < MIN_SIZE:
        raise LatentVideoError(f"canvas size must be at least {MIN_SIZE}, got {size}")
    rng = np.random.default_rng([seed, SPLITS.index(split)])
    N, T, K = num_sequences, num_frames, hi
    px = np.array(object_sizes(size))

    # objects: count, shape, size, colour
    count = rng.integers(lo, hi + 1, N)
    mask = np.arange(K)[None] < count[:, None]
    shapes = rng.integers(0, len(SHAPES), (N, K))
    size_idx = rng.integers(0, len(px), (N, K))
    hues = _hues(rng, split, (N, K))
    rgb = _hsv_to_rgb(hues, rng.uniform(*OBJECT_SAT, (N, K)), rng.uniform(*OBJECT_VAL, (N, K)))
    colours = np.round(rgb * 255).astype(np.uint8)

    # paths: Moving MNIST bounces over each object's free range, at the digits' px speed
    speed = moving_mnist_speed(64) * size / 64
    positions = np.zeros((T, N, K, 2), np.int64)
    for k in range(K):
        for j, s in enumerate(px):
            idx = np.flatnonzero(size_idx[:, k] == j)
            if len(idx):
                positions[:, idx, k] = bounce_paths(rng, len(idx), T, size - s, step=speed / (size - s))

    # backgrounds: every parameter drawn for every sequence, whichever kind it gets
    photos = _load_photos(TRAIN_PHOTOS if split == "train" else TEST_PHOTOS)
    is_photo = rng.random(N) < (PHOTO_FRACTION if photos else 0.0)
    photo_pick = rng.integers(0, max(len(photos), 1), N)
    crop = rng.random((N, 4))  # side, row, col, mirror
    grad_hues = _hues(rng, split, (N, 2))
    grad_rgb = _hsv_to_rgb(grad_hues, rng.uniform(*GRADIENT_SAT, (N, 2)), rng.uniform(*GRADIENT_VAL, (N, 2)))
    grad_angle = rng.uniform(0, 2 * np.pi, N)

    names = list(photos)
    background = np.empty((N, size, size, 3), np.uint8)
    background_ids = np.empty(N, np.int64)
    background_hues = np.full((N, 2), np.nan, np.float32)
    for n in range(N):
        if is_photo[n]:
            name = names[photo_pick[n]]
            background[n] = _crop(photos[name], size, crop[n])
            background_ids[n] = BACKGROUNDS.index(name)
        else:
            background[n] = _gradient(size, grad_rgb[n], grad_angle[n])
            background_ids[n] = BACKGROUNDS.index("gradient")
            background_hues[n] = grad_hues[n]

    # compose, slot 0 at the bottom
    S = int(px.max())
    alpha = np.zeros((N, K, S, S), np.uint8)
    for n in range(N):
        for k in range(int(count[n])):
            s = int(px[size_idx[n, k]])
            alpha[n, k, :s, :s] = _sprite(SHAPES[shapes[n, k]], s)
    sizes = np.where(mask, px[size_idx], 0).astype(np.int64)
    video = compose_shapes(background, alpha, colours, sizes, positions)

    empty = ~mask
    positions[:, empty] = 0
    shapes[empty] = -1
    colours[empty] = 0
    hues = np.where(mask, hues, np.nan).astype(np.float32)
    return MovingShapes(
        video, positions, mask, shapes.astype(np.int64), colours, sizes, hues, alpha,
        background, background_ids, background_hues,
    )  # fmt: skip


def compose_shapes(background, alpha, colours, sizes, positions) -> np.ndarray:
    """Objects alpha-over a static background, slot 0 at the bottom: uint8 [T, N, H, W, 3].

    background uint8 [N, H, W, 3]; alpha uint8 [N, K, S, S] (box at the top left); colours uint8 [N, K, 3];
    sizes int [N, K] (0: empty slot); positions int [T, N, K, 2] top-left (row, col) of each box."""
    positions = np.asarray(positions, np.int64)
    T, N, K = positions.shape[:3]
    video = np.empty((T, *np.shape(background)), np.uint8)
    tt = np.arange(T)[:, None, None]
    for n in range(N):
        canvas = np.repeat(background[n][None].astype(np.float32), T, 0)  # [T, H, W, 3]
        for k in range(K):
            s = int(sizes[n, k])
            if s == 0:
                continue
            a = (alpha[n, k, :s, :s].astype(np.float32) / 255)[..., None]  # [s, s, 1]; exactly 1 where opaque
            rows = positions[:, n, k, 0][:, None] + np.arange(s)  # [T, s]
            cols = positions[:, n, k, 1][:, None] + np.arange(s)
            at = (tt, rows[:, :, None], cols[:, None, :])
            canvas[at] = canvas[at] * (1 - a) + colours[n, k].astype(np.float32) * a
        video[:, n] = np.clip(np.round(canvas), 0, 255).astype(np.uint8)
    return video


# ---------------------------------------------------------------- colours and backgrounds


def in_test_hues(hues) -> np.ndarray:
    """Which hues (degrees) belong to the test split's range."""
    h = np.mod(hues, 360)
    return (h >= TEST_HUES[0]) & (h < TEST_HUES[1])


def _hues(rng: np.random.Generator, split: str, shape) -> np.ndarray:
    lo, hi = TEST_HUES
    u = rng.random(shape)
    h = lo + u * (hi - lo) if split == "test" else hi + u * (360 - (hi - lo))
    h = np.mod(h, 360)
    bad = in_test_hues(h) != (split == "test")  # float rounding at the range's ends
    return np.where(bad, np.mod(hi + 1e-3, 360) if split == "train" else lo, h)


def _hsv_to_rgb(h, s, v) -> np.ndarray:
    """Hue in degrees, saturation and value in [0, 1] (arrays) -> RGB floats [..., 3] in [0, 1]."""
    h6 = np.mod(h, 360) / 60
    i = np.floor(h6).astype(np.int64) % 6
    f = h6 - np.floor(h6)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)]
    return np.stack([np.choose(i, [row[c] for row in table]) for c in range(3)], -1)


def _gradient(size: int, rgb2: np.ndarray, angle: float) -> np.ndarray:
    """A smooth linear gradient from rgb2[0] to rgb2[1] (floats in [0, 1]) across the canvas."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    p = x * np.cos(angle) + y * np.sin(angle)
    t = (p - p.min()) / max(p.max() - p.min(), 1e-9)
    t = t * t * (3 - 2 * t)  # smoothstep
    out = rgb2[0] * (1 - t[..., None]) + rgb2[1] * t[..., None]
    return np.round(out * 255).astype(np.uint8)


def _crop(photo: np.ndarray, size: int, u: np.ndarray) -> np.ndarray:
    """A square crop (side a quarter to half the short side, at least the canvas) resized to the canvas."""
    from PIL import Image

    H, W = photo.shape[:2]
    side = int(min(max(size, (0.25 + 0.25 * u[0]) * min(H, W)), min(H, W)))
    r, c = int(u[1] * (H - side)), int(u[2] * (W - side))
    im = Image.fromarray(photo[r : r + side, c : c + side]).resize((size, size), Image.BILINEAR)
    a = np.asarray(im)
    return np.ascontiguousarray(a[:, ::-1] if u[3] < 0.5 else a)


def _load_photos(names) -> dict[str, np.ndarray]:
    """{name: uint8 [H, W, 3]} of the bundled photographs that load; {} without scikit-image."""
    try:
        import skimage.data  # noqa: F401
    except ImportError:
        print("notice: scikit-image is not installed: moving-shapes backgrounds are gradients only", file=sys.stderr)
        return {}
    return {n: a for n in names if (a := _photo(n)) is not None}


@functools.cache
def _photo(name: str) -> np.ndarray | None:
    import skimage.data as d

    try:
        a = d.stereo_motorcycle()[0] if name == "motorcycle" else getattr(d, name)()
    except Exception:  # a data file that this scikit-image would have to download
        return None
    if name == "retina":  # the fundus is a disc on black: keep its centre
        H, W = a.shape[:2]
        a = a[int(0.2 * H) : int(0.8 * H), int(0.2 * W) : int(0.8 * W)]
    a = np.ascontiguousarray(a[..., :3]).astype(np.uint8)
    a.flags.writeable = False
    return a


@functools.cache
def _sprite(shape: str, s: int) -> np.ndarray:
    """Anti-aliased coverage uint8 [s, s] (255 inside) of a filled shape filling an s x s box."""
    from PIL import Image, ImageDraw

    n = s * SUPERSAMPLE
    im = Image.new("L", (n, n), 0)
    draw = ImageDraw.Draw(im)
    c, r = n / 2, n / 2
    if shape == "disc":
        draw.ellipse((0, 0, n - 1, n - 1), fill=255)
    elif shape == "square":
        m = round(n * 0.08)
        draw.rectangle((m, m, n - 1 - m, n - 1 - m), fill=255)
    elif shape == "triangle":
        draw.polygon([(c, 0), (n - 1, n - 1), (0, n - 1)], fill=255)
    elif shape == "star":
        k = np.arange(10)
        rad = np.where(k % 2 == 0, r, r * 0.45)
        ang = -np.pi / 2 + k * np.pi / 5
        draw.polygon(list(zip(c + rad * np.cos(ang), c + 0.1 * r + rad * np.sin(ang))), fill=255)
    elif shape == "ring":
        draw.ellipse((0, 0, n - 1, n - 1), fill=255)
        w = n * 0.22
        draw.ellipse((w, w, n - 1 - w, n - 1 - w), fill=0)
    else:
        raise LatentVideoError(f"unknown shape {shape!r}", hint=", ".join(SHAPES))
    a = np.asarray(im, np.float64).reshape(s, SUPERSAMPLE, s, SUPERSAMPLE).mean((1, 3))
    out = np.round(a).astype(np.uint8)
    out.flags.writeable = False
    return out


# ---------------------------------------------------------------- writing


def write_moving_shapes(path: str | Path, ms: MovingShapes, fps: float = 10) -> None:
    """.npy: the video [T, N, H, W, 3]; .npz: the video and the ground truth (`MovingShapes.ground_truth`);
    .mp4: all sequences one after another (sequence 0's T frames, then sequence 1's, ...), lossless
    H.264 in RGB (libx264rgb, -qp 0) through imageio-ffmpeg's ffmpeg. Written atomically."""
    from .fileio import atomic_path

    p = Path(path)
    if p.suffix.lower() not in OUTPUT_EXTS:
        raise LatentVideoError(f"unknown output extension {p.suffix or '(none)'!r}", hint="use .mp4, .npy or .npz")
    if p.suffix.lower() == ".mp4":
        T, N = ms.video.shape[:2]
        write_lossless_mp4(p, ms.video.transpose(1, 0, 2, 3, 4).reshape(N * T, *ms.video.shape[2:]), fps)
        return
    with atomic_path(p) as tmp, open(tmp, "wb") as f:
        if p.suffix.lower() == ".npy":
            np.save(f, ms.video, allow_pickle=False)
        else:
            np.savez_compressed(f, video=ms.video, **ms.ground_truth())


def write_lossless_mp4(path: str | Path, frames: np.ndarray, fps: float = 10) -> None:
    """uint8 [F, H, W, 3] -> mp4, lossless H.264 RGB (libx264rgb -qp 0, High 4:4:4): decodes to the same bytes.
    Not every player shows 4:4:4 H.264; ffmpeg and imageio (hence the training readers) do."""
    from .render import pipe_to_ffmpeg

    frames = np.ascontiguousarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise LatentVideoError(f"frames must be non-empty uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}")
    if not fps > 0:
        raise LatentVideoError(f"fps must be positive, got {fps}")
    h, w = frames.shape[1:3]
    encode = ["-c:v", "libx264rgb", "-qp", "0", "-pix_fmt", "rgb24", "-threads", "1", "-movflags", "+faststart"]
    pipe_to_ffmpeg(path, "rgb24", (w, h), fps, encode, [frames.tobytes()])
