"""A motion prior for Moving-MNIST-like clips: objects on a black canvas that move in straight
lines at constant speed and bounce off the walls (the generator of Srivastava et al. 2015).

A straight line between keyframes (in latent or in pixel space) cannot know that a digit hit a
wall between them; this prior can. From the keyframe images alone:

  1. find the objects in a keyframe where they stand apart (connected ink components) and cut
     each out as a sprite, its box centred on the ink's centre of mass (as MNIST centres digits)
  2. locate every sprite in every keyframe (boxes where no sprite ink is missing, then the best
     joint paste)
  3. per sprite and axis, fit u(t) = u0 + v t folded into the free range [0, canvas - sprite]
     (a triangle wave) through the keyframe positions; among the fits within tolerance take the
     slowest, or the one closest to a known speed
  4. paste the sprites at the fitted positions of every frame (max, as data.compose does)

`fit_bounce` returns None when the keyframes do not look like sprites on black; callers then
fall back to their own path (the pipeline uses its latent line).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .data import compose
from .errors import LatentVideoError

SPRITE = 28  # MNIST digit box
INK = 0.2  # a pixel brighter than this is ink
MIN_AREA = 12  # ink pixels an object needs (smaller components are noise)
MAX_OBJECTS = 3
GROW = (2, 0)  # component joining distances tried: 2 px joins broken strokes, 0 splits digits that nearly touch
CANDIDATES = 8  # boxes tried per sprite in the joint placement
TOLERANCE = 1.5  # px: rms misfit of keyframe positions a bounce path may have
MAX_ERROR = 2e-3  # MSE per pixel of the pasted sprites that a keyframe may show (0 for Moving MNIST)


@dataclass
class BounceFit:
    sprites: np.ndarray  # [D, s, s] float in [0, 1]
    start: np.ndarray  # [D, 2] unfolded top-left (row, col) at t = 0, px
    velocity: np.ndarray  # [D, 2] px per frame
    free: int  # canvas - sprite size: positions fold into [0, free]
    size: int  # canvas size
    misfit: float  # rms px between the fitted paths and the located keyframe positions
    error: float  # worst MSE per pixel of the sprites pasted where they were located in a keyframe

    def positions(self, times) -> np.ndarray:  # [T, D, 2] float px
        t = np.asarray(times, np.float64)[:, None, None]
        return fold(self.start[None] + self.velocity[None] * t, self.free)

    def frames(self, times) -> np.ndarray:  # [T, H, W] float in [0, 1]
        pos = np.clip(np.rint(self.positions(times)), 0, self.free).astype(np.int64)  # [T, D, 2]
        return compose(self.sprites[None], pos[:, None], self.size)[:, 0]


def fold(u, free: float) -> np.ndarray:
    """Unfolded coordinate -> position bouncing between 0 and `free` (a triangle wave of period 2 free)."""
    u = np.asarray(u, np.float64)
    if free <= 0:
        return np.zeros_like(u)
    m = np.mod(u, 2 * free)
    return np.where(m > free, 2 * free - m, m)


# ------------------------------------------------------------------ 1-2. objects in the keyframes


def find_objects(image: np.ndarray, sprite: int = SPRITE, grow: int = 2) -> list[np.ndarray] | None:
    """Ink components of one frame [H, W] -> sprites [s, s] (each boxed around its centre of mass), or
    None when a component does not fit in a sprite box (digits touching, or not sprites on black at all).
    Ink `grow` px apart counts as one component (joins the broken strokes of a digit)."""
    from scipy import ndimage

    H, W = image.shape
    ink = image > INK
    grown = ndimage.binary_dilation(ink, iterations=grow) if grow else ink
    labels, n = ndimage.label(grown, structure=np.ones((3, 3)))
    objects = []
    for j in range(1, n + 1):
        region = labels == j
        if (ink & region).sum() < MIN_AREA:
            continue
        rows, cols = np.nonzero(ink & region)
        if np.ptp(rows) >= sprite or np.ptp(cols) >= sprite:
            return None
        piece = np.where(region, image, 0.0)
        com = ndimage.center_of_mass(piece)
        r = int(np.clip(round(com[0]) - sprite // 2, 0, H - sprite))
        c = int(np.clip(round(com[1]) - sprite // 2, 0, W - sprite))
        cut = piece[r : r + sprite, c : c + sprite]
        if cut.sum() < 0.95 * piece.sum():  # the box misses ink: not a sprite-sized object
            return None
        objects.append(cut.copy())
    return objects


def locate(sprites: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, float]:
    """Best joint placement of sprites [D, s, s] in a frame [H, W]: top-left positions int [D, 2]
    and the MSE per pixel of the pasted sprites against the frame.

    Candidates per sprite are the boxes where the frame is least darker than the sprite (with
    max-composition the true box has none of that, even under another digit); the joint choice
    among them is the paste closest to the frame."""
    from numpy.lib.stride_tricks import sliding_window_view

    H, s = image.shape[0], sprites.shape[-1]
    windows = sliding_window_view(image, (s, s))  # [F+1, F+1, s, s] views, no copy
    candidates = []
    for sp in sprites:
        missing = (np.maximum(sp - windows, 0) ** 2).sum((-2, -1))  # [F+1, F+1]
        candidates.append(_minima(missing, CANDIDATES))
    best, best_err = None, np.inf
    for combo in itertools.product(*candidates):
        pos = np.array(combo)[None, None]  # [1, 1, D, 2]
        err = float(((compose(sprites[None], pos, H)[0, 0] - image) ** 2).mean())
        if err < best_err:
            best, best_err = np.array(combo), err
    return best, best_err


def _minima(score: np.ndarray, k: int, radius: int = 2) -> list[tuple[int, int]]:
    """Positions of the k lowest values of a 2-D score, at least `radius` + 1 apart."""
    order = np.argsort(score, axis=None)
    picked: list[tuple[int, int]] = []
    for flat in order:
        r, c = divmod(int(flat), score.shape[1])
        if all(abs(r - pr) > radius or abs(c - pc) > radius for pr, pc in picked):
            picked.append((r, c))
            if len(picked) == k:
                break
    return picked


# ------------------------------------------------------------------ 3. paths that bounce


def fit_axis(times: np.ndarray, pos: np.ndarray, free: float, max_speed: float) -> list[tuple[float, float, float]]:
    """Bounce paths through positions [K] at times [K] along one axis: [(u0, v, rms misfit)].

    Each candidate unfolds the last keyframe's position to one of its mirror images reachable at
    |v| <= max_speed, unfolds the others to the images nearest that line, and refits the line by
    least squares."""
    t = times - times[0]
    span = t[-1]
    out: dict[float, tuple[float, float, float]] = {}
    reach = int(np.ceil((max_speed * span + free) / (2 * free))) + 1 if free > 0 else 0
    images = np.stack([s * pos + 2 * k * free for s in (1, -1) for k in range(-reach - 1, reach + 2)])  # [M, K]
    for m in range(-reach, reach + 1):
        for sign in (1.0, -1.0):
            v = (sign * pos[-1] + 2 * m * free - pos[0]) / span
            if abs(v) > max_speed:
                continue
            guess = pos[0] + v * t  # [K] unfolded
            u = images[np.abs(images - guess).argmin(0), np.arange(len(t))]  # [K] nearest mirror images
            v, u0 = np.polyfit(t, u, 1)
            rms = float(np.sqrt(np.mean((fold(u0 + v * t, free) - pos) ** 2)))
            out.setdefault(round(v, 3), (float(u0 - v * times[0]), float(v), rms))
    return list(out.values())


def choose_velocity(rows, cols, speed: float | None) -> tuple[tuple, tuple]:
    """One (u0, v, rms) per axis: among the pairs that fit within TOLERANCE on both axes (else the
    best-fitting ones), the slowest, or the one closest to `speed` px/frame when it is known."""
    rows = [r for r in rows if r[2] <= TOLERANCE] or [min(rows, key=lambda x: x[2])]
    cols = [c for c in cols if c[2] <= TOLERANCE] or [min(cols, key=lambda x: x[2])]

    def cost(pair):
        v = np.hypot(pair[0][1], pair[1][1])
        return (abs(v - speed) if speed is not None else v, pair[0][2] + pair[1][2])

    return min(itertools.product(rows, cols), key=cost)


# ------------------------------------------------------------------ the whole fit


def fit_bounce(
    keyframes: np.ndarray, times, sprite: int = SPRITE, speed: float | None = None, max_speed: float | None = None
) -> BounceFit | None:
    """Keyframes float [K, H, W] in [0, 1] at frame times [K] -> the bounce paths of their objects,
    or None when they do not look like up to MAX_OBJECTS sprites on black that the paths explain.

    speed: px per frame of every object, when known (Moving MNIST: 0.1 of the free range)."""
    keys = np.asarray(keyframes, np.float64)
    times = np.asarray(times, np.float64)
    if keys.ndim != 3 or keys.shape[1] != keys.shape[2]:
        raise LatentVideoError(f"the bounce prior needs square gray keyframes [K, H, W], got {list(keys.shape)}")
    K, H, _ = keys.shape
    if K < 2 or len(times) != K or H < sprite:
        return None
    free = H - sprite
    max_speed = free / 2 if max_speed is None else max_speed
    best = None
    for source, grow in itertools.product(range(K), GROW):  # sprites from a keyframe where objects stand apart
        objects = find_objects(keys[source], sprite, grow)
        if not objects or len(objects) > MAX_OBJECTS:
            continue
        sprites = np.stack(objects)  # [D, s, s]
        located = [locate(sprites, k) for k in keys]
        pos = np.stack([p for p, _ in located]).astype(np.float64)  # [K, D, 2]
        explained = max(e for _, e in located)  # the sprites must explain every keyframe
        start, velocity, misfit = [], [], []
        for d in range(len(sprites)):
            r, c = (fit_axis(times, pos[:, d, a], free, max_speed) for a in (0, 1))
            (r0, rv, rr), (c0, cv, cr) = choose_velocity(r, c, speed)
            start.append((r0, c0))
            velocity.append((rv, cv))
            misfit.append(rr**2 + cr**2)
        rms = float(np.sqrt(np.mean(misfit) / 2))
        fit = BounceFit(sprites, np.array(start), np.array(velocity), free, H, rms, explained)
        if best is None or (fit.error, fit.misfit) < (best.error, best.misfit):
            best = fit
    if best is None or best.error > MAX_ERROR or best.misfit > TOLERANCE:
        return None
    return best


def bounce_frames(keyframes, times, num_frames: int, **kwargs) -> np.ndarray | None:
    """Keyframes [K, H, W] at `times` -> a clip float [num_frames, H, W] of the fitted bounce paths, or None."""
    fit = fit_bounce(keyframes, times, **kwargs)
    return None if fit is None else fit.frames(np.arange(num_frames))
