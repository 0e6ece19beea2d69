"""Training's frame sources: endless single frames (and, for the pair critic, two frames of one shot).

    frame_source(spec)   `moving-mnist`, a folder of images, a video file or a sequence file -> a source
    MovingMNISTFrames    fresh Moving MNIST sequences of one split, one frame (or pair) of each
    ArrayFrames          frames in memory, sampled with replacement; pairs never span a cut between shots

Every source has `shape` ([C, H, W]), `sample(rng, n)` -> uint8 [n, C, H, W] and `sample_pairs(rng, n, gap)` ->
uint8 [n, 2, C, H, W]; footage in memory also `sample_plates(rng, n)` -> uint8 [n, C, H, W] (shots' medians, for
the plate critic); all state lives in the caller's numpy Generator (resumable).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .data import (
    VIDEO_EXTS,
    _is_rgb_sequences,
    bounce_paths,
    compose,
    load_digits,
    read_folder,
    read_sequences,
    read_video,
)
from .errors import LatentVideoError

CUT_PIXEL = 24  # a pixel changed between two frames: some channel moved by more than this (of 255)
CUT_FACTOR = 3.0  # a cut: over this times the video's median share of changed pixels (Moving Shapes: within a
# shot at most 19 %, median 6.7 %; across its 999 cuts 30 % or more but for 4)
CUT_FLOOR = 0.05  # ... and over 5 % of the pixels (a still video has a median of 0)
MIN_SHOT = 8  # frames a shot needs for its median to be a plate (objects cover a pixel in under half of them)


class MovingMNISTFrames:
    """Endless source of single Moving MNIST frames from one split.

    Each call synthesises fresh short sequences and takes one random frame of each,
    so frames follow the real position distribution of bouncing digits without
    holding any big array. State lives in the caller's numpy Generator (resumable).
    """

    def __init__(self, split: str = "train", num_digits: int = 2, size: int = 64, num_frames: int = 20):
        self.digits, self.labels = load_digits(split)
        self.num_digits, self.size, self.num_frames = num_digits, size, num_frames
        self.shape = (1, size, size)

    def _fresh(self, rng: np.random.Generator, n: int):
        """n fresh sequences: their digits [n, D] (indices) and paths [T, n, D, 2]."""
        pick = rng.integers(0, len(self.digits), (n, self.num_digits))
        paths = np.stack([bounce_paths(rng, n, self.num_frames, self.size - 28) for _ in range(self.num_digits)], 2)
        return pick, paths

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:  # uint8 [n, 1, H, W]
        pick, paths = self._fresh(rng, n)
        t = rng.integers(0, self.num_frames, n)
        frame = paths[t, np.arange(n)][None]  # only the chosen frame: [1, n, D, 2]
        return compose(self.digits[pick], frame, self.size)[0][:, None]

    def sample_pairs(self, rng: np.random.Generator, n: int, gap: int) -> np.ndarray:  # uint8 [n, 2, 1, H, W]
        """Frames t and t + g of fresh sequences, g uniform in 1..gap (the pair critic, training/pairs.py)."""
        if gap >= self.num_frames:
            raise LatentVideoError(f"pair gap {gap} needs sequences of more than {gap} frames")
        pick, paths = self._fresh(rng, n)
        g = rng.integers(1, gap + 1, n)
        t = (rng.random(n) * (self.num_frames - g)).astype(np.int64)
        frames = np.stack([paths[t, np.arange(n)], paths[t + g, np.arange(n)]])  # [2, n, D, 2]
        return compose(self.digits[pick], frames, self.size).transpose(1, 0, 2, 3)[:, :, None]


class ArrayFrames:
    """Frames already in memory (a folder, a video, a sequence file): sampled with replacement.
    `stride`: how far apart in the array two consecutive frames of one shot are (1 for a video or a folder,
    N for a sequence file's [T * N] frames)."""

    def __init__(self, frames: np.ndarray, stride: int = 1):
        if frames.ndim != 4 or frames.dtype != np.uint8:
            raise LatentVideoError("frames must be uint8 [N, C, H, W]")
        self.frames, self.stride = frames, stride
        self.shape = frames.shape[1:]
        self._starts: dict[int, np.ndarray] = {}  # gap -> first frames of the pairs inside one shot
        self._plates: np.ndarray | None = None

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return self.frames[rng.integers(0, len(self.frames), n)]

    def sample_pairs(self, rng: np.random.Generator, n: int, gap: int) -> np.ndarray:  # uint8 [n, 2, C, H, W]
        """Frames i and i + g * stride of one shot, g uniform in 1..gap (the pair critic, training/pairs.py)."""
        g = rng.integers(1, gap + 1, n)
        i = np.empty(n, np.int64)
        for k in range(1, gap + 1):
            starts, m = self.pair_starts(k), g == k
            i[m] = starts[(rng.random(int(m.sum())) * len(starts)).astype(np.int64)]
        return np.stack([self.frames[i], self.frames[i + g * self.stride]], 1)

    def pair_starts(self, gap: int) -> np.ndarray:
        """The frames i whose frame i + gap * stride is in the same shot: no cut between them."""
        if gap not in self._starts:
            shot = self.shots()
            d = gap * self.stride
            starts = np.flatnonzero(shot[d:] == shot[: len(shot) - d]) if d < len(shot) else np.zeros(0, np.int64)
            if not len(starts):
                raise LatentVideoError(
                    f"{len(self.frames)} frames are too few for pairs {gap} frames apart in one shot"
                )
            self._starts[gap] = starts
        return self._starts[gap]

    def plates(self) -> np.ndarray:  # uint8 [S, C, H, W]
        """Every shot's background without its objects, the per-pixel median of its frames (the plate critic,
        training/plates.py)."""
        if self._plates is None:
            self._plates = shot_plates(self.frames, self.shots())
        return self._plates

    def sample_plates(self, rng: np.random.Generator, n: int) -> np.ndarray:  # uint8 [n, C, H, W]
        plates = self.plates()
        return plates[rng.integers(0, len(plates), n)]

    def shots(self) -> np.ndarray:  # [N] the shot number of every frame
        """Frames between two cuts are one shot; in a sequence file (frame t of sequence s at t * stride + s) every
        sequence is one."""
        if self.stride != 1:
            return np.arange(len(self.frames)) % self.stride
        return np.concatenate([[0], np.cumsum(self.cuts())])

    def cuts(self) -> np.ndarray:  # bool [N - 1]: a cut between frame i and frame i + 1
        """Cuts in a video or a folder: frame pairs where over CUT_FACTOR times the median share of pixels changes
        (objects moving change a few pixels, a new shot most). A sequence file's frames need none: frame i +
        stride is always the same sequence's next frame."""
        n = len(self.frames)
        if self.stride != 1 or n < 2:
            return np.zeros(max(n - 1, 0), bool)
        changed = np.empty(n - 1, np.float32)
        for a in range(0, n - 1, 1000):  # in blocks: a long video holds GBs of int16 differences otherwise
            b = min(a + 1000, n - 1)
            diff = np.abs(self.frames[a + 1 : b + 1].astype(np.int16) - self.frames[a:b]).max(1)  # [n, H, W]
            changed[a:b] = (diff > CUT_PIXEL).mean((1, 2))
        return changed > max(CUT_FACTOR * float(np.median(changed)), CUT_FLOOR)


def frame_source(spec: str, num_digits: int = 2, size: int = 64, resize: int | None = None):
    """Build a training frame source from a name or path.

    `moving-mnist` (train split digits), a folder of images, a video file, or a
    sequence file (.npy/.npz in the gray [T, N, H, W] or the RGB [T, N, H, W, 3] layout; its
    frames become [T * N, C, H, W], frame t of sequence n at index t * N + n).
    """
    if spec == "moving-mnist":
        return MovingMNISTFrames("train", num_digits, size)
    p = Path(spec)
    if not p.exists():
        if spec == "moving-shapes":  # trained from its footage, as a user's own video is
            raise LatentVideoError(
                "moving-shapes is trained from its footage",
                hint="write it first: latentvideo dataset moving-shapes --split train --out train.mp4, then --data "
                "train.mp4",
            )
        if "/" not in spec and "." not in spec:
            raise LatentVideoError(f"unknown dataset {spec!r}", hint="use 'moving-mnist' or a path")
        raise LatentVideoError(f"data path not found: {p}")
    if p.is_dir():
        return ArrayFrames(read_folder(p, resize))
    if p.suffix.lower() in (".npy", ".npz"):
        v = read_sequences(p)
        if _is_rgb_sequences(v):  # [T, N, H, W, 3] -> [T * N, 3, H, W]
            return ArrayFrames(np.ascontiguousarray(v.reshape(-1, *v.shape[2:]).transpose(0, 3, 1, 2)), v.shape[1])
        return ArrayFrames(v.reshape(-1, 1, *v.shape[2:]), v.shape[1])
    if p.suffix.lower() in VIDEO_EXTS:
        return ArrayFrames(read_video(p, resize))
    raise LatentVideoError(f"unknown data file type {p.suffix!r}: {p}", hint="a folder, .npy/.npz or a video")


def shot_plates(frames: np.ndarray, shots: np.ndarray, min_frames: int = MIN_SHOT) -> np.ndarray:
    """Frames uint8 [N, C, H, W] and each frame's shot number [N] -> the plates uint8 [S, C, H, W]: the per-pixel
    median of every shot of at least `min_frames` frames, in shot order."""
    order = np.argsort(shots, kind="stable")
    _, starts, counts = np.unique(shots[order], return_index=True, return_counts=True)
    plates = [np.median(frames[order[s : s + c]], 0) for s, c in zip(starts, counts) if c >= min_frames]
    if not plates:
        raise LatentVideoError(
            f"no shot of at least {min_frames} frames for the plate critic",
            hint="the plate critic needs footage (a video, a sequence file), not single images",
        )
    return np.round(np.stack(plates)).astype(np.uint8)
