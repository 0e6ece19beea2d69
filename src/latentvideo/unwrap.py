"""Unwrap folded position coordinates so that a straight line through them bounces.

A generator with a `LatentLayout` renders position u at fold(u) (a triangle wave of period 2 onto
[0, 1]). Every keyframe position p therefore has mirror images 2m + p and 2m - p that render the same
frame. `unwrap_positions` picks, per slot, the mirror images through which a polynomial over time (a
line by default) fits within `tol`: the slowest such line, or the one nearest a known speed. A line in
the unwrapped coordinates renders as constant-speed motion that reflects off the walls, which is the
description's "a line in latent space is a video" for bouncing objects. Where no fit is within `tol`,
or two different fits are about as slow, the slot keeps its keyframe positions (plain lerp).

Works on the fold range's units: 1.0 is the whole free range (fold_range px).

An object need not bounce where G's fold does. G folds a sprite's centre at the ends of its fold range, but a
moving object bounces where its own edge meets the canvas edge: a small shape reaches nearer the wall than G's
sprite box lets its centre go. `walls` [K, 2, 2] says, per slot and axis, how far (fold units) the object's own
free range reaches below 0 and above 1 (`ObjectGenerator.walls` measures it on a slot's sprite). The line is then fitted
in the object's own range, where it bounces at the object's walls; `to_generator` maps it back to positions G
renders (clamped to its fold range: G cannot draw a centre past it), or a clip's copy of G that reaches each
slot's walls (reach.py) renders it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import LatentVideoError

MAX_COMBOS = 20_000  # partial branch choices kept per axis (lowest error first)
# The fastest motion an unfolding may have, per axis, in fold units per frame (crossing the free range takes
# at least ~10 frames; Moving MNIST moves 0.1 per frame, Moving Shapes 0.09). Faster unfoldings are mostly false
# bounces fitted through curved paths.
MAX_SPEED = 0.105
# The RMS residual (fold units) a fitted line may leave at the keyframes. Inversion places test digits within
# about 0.1 to 0.2 px of their true keyframe positions once each digit's fixed offset (ink centre against box
# corner) is removed, but G folds the ink centre at its walls where Moving MNIST bounces the box, so a reflected
# keyframe sits up to 2 px off the line. A looser tolerance admits false unfoldings (which the ambiguity rule
# turns into lerp), a tighter one refuses true bounces. `python scripts/unwrap_tolerance.py` (those offsets, 0.15
# px noise, 200 clips, keyframes 0, 9, 19; mean px over all frames, bounces / held-out arcs and gravity): tol 0.03
# and max speed 0.105 score 1.19 / 3.42, against 0.05 and 0.12 (the earlier constants) 1.50 / 3.69; tol 0.02 1.73
# / 3.26. Measured in the pipeline: BENCHMARK.md.
TOL = 0.03


@dataclass
class Unwrapped:
    positions: np.ndarray  # [n, K, 2] unwrapped positions in each slot's own range (see `to_generator`)
    unwrapped: np.ndarray  # [K] bool: the slot follows a fitted line (False: its keyframe positions, lerp)
    speeds: np.ndarray  # [K] the chosen line's speed in fold units per frame (nan where not unwrapped)


def unwrap_positions(
    positions,
    times,
    *,
    speed: float | None = None,
    max_speed: float = MAX_SPEED,
    tol: float = TOL,
    degree: int = 1,
    ambiguity: float = 1.0,
    walls=None,
    own: bool = False,
) -> Unwrapped:
    """positions [n, K, 2] (latent u, folded or not), times [n] -> Unwrapped.

    speed: every object's known speed (fold units per frame), else the slowest fit wins.
    max_speed: the fastest motion considered per axis; tol: RMS residual (fold units) a fit may have.
    ambiguity: with no known speed, a second different fit less than this factor faster means no unwrap.
    walls: [K, 2, 2] >= 0, each slot's own range past G's fold per axis (below 0, above 1); default none.
    speed, max_speed and tol stay in G's fold units (px / fold_range) whatever the walls.
    own: the positions are in each slot's own range already (a copy of G that reaches its walls, reach.py)."""
    p = _fold(np.asarray(positions, np.float64))
    t = np.asarray(times, np.float64)
    if p.ndim != 3 or p.shape[2] != 2 or len(t) != len(p) or len(t) < 2:
        raise LatentVideoError(f"positions must be [n >= 2, K, 2] with one time each, got {list(p.shape)}")
    if speed is not None and not (np.isfinite(speed) and speed > 0):
        raise LatentVideoError(f"speed must be a number > 0, got {speed!r}")
    n, K, _ = p.shape
    w = np.zeros((K, 2, 2)) if walls is None else np.asarray(walls, np.float64)
    if w.shape != (K, 2, 2) or not (np.isfinite(w).all() and (w >= 0).all()):
        raise LatentVideoError(f"walls must be [{K}, 2, 2] numbers >= 0, got {list(w.shape)}")
    p_own, span = _own_units(p, w)  # [n, K, 2] in the slot's own units, [K, 2] its range in G's fold units
    p = p if own else p_own
    out, ok, speeds = p.copy(), np.zeros(K, bool), np.full(K, np.nan)
    for k in range(K):
        rows = _axis_fits(t, p[:, k, 0], max_speed / span[k, 0], tol / span[k, 0], degree)
        cols = _axis_fits(t, p[:, k, 1], max_speed / span[k, 1], tol / span[k, 1], degree)
        if not rows or not cols:
            continue
        pairs = [(r, c) for r in rows for c in cols]
        v = np.array([np.hypot(r[1] * span[k, 0], c[1] * span[k, 1]) for r, c in pairs])  # 2D speed (G's units)
        err = np.array([r[0] * span[k, 0] + c[0] * span[k, 1] for r, c in pairs])
        if speed is not None:
            order = np.lexsort((err, np.abs(v - speed)))
        else:
            order = np.lexsort((err, v))
            alt = [i for i in order[1:] if not _same_path(pairs[order[0]], pairs[i], t, tol / span[k].max())]
            if alt and v[alt[0]] < ambiguity * max(v[order[0]], 1e-9):
                continue  # two different, equally plausible unfoldings: keep lerp
        best = pairs[order[0]]
        out[:, k, 0], out[:, k, 1] = best[0][2], best[1][2]
        ok[k], speeds[k] = True, v[order[0]]
    return Unwrapped(out, ok, speeds)


def line_misfit(positions, times, walls=None, *, cap: float, max_speed: float = MAX_SPEED) -> float:
    """One object's keyframe positions [n, 2] (G's fold units, folded or not), times [n] -> the least RMS residual
    (G's fold units, both axes together) of a straight line through mirror images of them, bouncing at the
    object's walls [2, 2] (as in `unwrap_positions`; default G's fold range), no faster than max_speed per axis;
    `cap` where no unfolding fits within it. Two keyframes give 0 (two points make a line) unless they are too far
    apart for max_speed."""
    p = _fold(np.asarray(positions, np.float64))
    t = np.asarray(times, np.float64)
    w = np.zeros((2, 2)) if walls is None else np.asarray(walls, np.float64)
    own, span = _own_units(p, w)  # [n, 2] in the object's own units, [2]
    total = 0.0
    for axis in range(2):
        fits = _axis_fits(t, own[:, axis], max_speed / span[axis], cap / span[axis], 1)
        if not fits:
            return cap
        total += (min(f[0] for f in fits) * span[axis]) ** 2
    return min(float(np.sqrt(total)), cap)


def to_generator(positions, walls):
    """Positions in each slot's own range (Unwrapped.positions, or any point of a path through them) [..., K, 2]
    -> positions G renders [..., K, 2] in [0, 1]: folded in the slot's own range, clamped to G's fold range.
    Works on numpy arrays and torch tensors."""
    w = np.asarray(walls, np.float64)
    if isinstance(positions, torch.Tensor):
        w = torch.as_tensor(w, dtype=positions.dtype, device=positions.device)
    else:
        positions = np.asarray(positions, np.float64)
    p = (1 + w.sum(-1)) * _fold(positions) - w[..., 0]
    return p.clamp(0, 1) if isinstance(p, torch.Tensor) else np.clip(p, 0, 1)


def _own_units(p, w):
    """Positions [..., 2] in G's fold units and walls [..., 2, 2] -> (positions in the object's own range,
    that range's span [..., 2] in G's fold units)."""
    span = 1 + w.sum(-1)
    return (p + w[..., 0]) / span, span


def _fold(u):
    """Triangle wave of period 2 onto [0, 1] (numpy arrays or torch tensors)."""
    return 1 - abs((u % 2) - 1)


def _axis_fits(t, p, max_speed, tol, degree):
    """Mirror-image choices for one axis whose polynomial fit is within tol:
    list of (rms residual, mean |velocity|, values [n]), keyframe 0 fixed at p[0]."""
    n = len(t)
    span = t[-1] - t[0]
    m_max = int(np.ceil(max_speed * span / 2)) + 1
    combos = np.array([[p[0]]])  # [C, i]
    for i in range(1, n):
        m = np.arange(-m_max, m_max + 1)
        cand = np.concatenate([2 * m + p[i], 2 * m - p[i]])
        cand = cand[np.abs(cand - p[0]) <= max_speed * (t[i] - t[0]) + 3 * tol]
        combos = np.concatenate(
            [np.repeat(combos, len(cand), 0), np.tile(cand, len(combos))[:, None]], 1
        )  # [C * c, i + 1]
        sse = _sse(t[: i + 1], combos, degree)
        keep = sse <= n * tol**2
        combos, sse = combos[keep], sse[keep]
        if len(combos) > MAX_COMBOS:
            combos = combos[np.argsort(sse)[:MAX_COMBOS]]
        if not len(combos):
            return []
    V = _vander(t, degree)
    coef = np.linalg.lstsq(V, combos.T, rcond=None)[0]  # [d + 1, C]
    rms = np.sqrt(_sse(t, combos, degree) / n)
    vel = np.abs(np.diff(V @ coef, axis=0) / np.diff(t)[:, None]).mean(0)  # [C]
    return [(rms[j], vel[j], combos[j]) for j in range(len(combos))]


def _vander(t, degree):
    s = (t - t.mean()) / max(np.abs(t - t.mean()).max(), 1e-12)
    return s[:, None] ** np.arange(degree + 1)


def _sse(t, combos, degree):
    """Sum of squared residuals of each row's least-squares polynomial over t ([C, i] -> [C])."""
    if len(t) <= degree + 1:
        return np.zeros(len(combos))
    V = _vander(t, degree)
    coef = np.linalg.lstsq(V, combos.T, rcond=None)[0]
    return ((V @ coef - combos.T) ** 2).sum(0)


def _same_path(a, b, t, tol) -> bool:
    """Whether two (row fit, col fit) pairs render the same positions at every frame of the span."""
    q = np.arange(t[0], t[-1] + 1)
    for fa, fb in zip(a, b):
        ya = np.interp(q, t, fa[2]) if len(t) > 1 else fa[2]
        yb = np.interp(q, t, fb[2])
        if np.abs(_fold(ya) - _fold(yb)).max() > 2 * tol:
            return False
    return True
