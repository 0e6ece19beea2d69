"""How the unwrap's tolerance and speed limit (unwrap.TOL, unwrap.MAX_SPEED) trade bounces against curved paths.

Simulates what the pipeline gives `unwrap_positions` on Moving MNIST test clips, with no model: each digit's true
ink centre at the keyframes (its box's top-left plus a fixed offset of 0 to 1 px, as test digits' ink centres sit
in their boxes), plus Gaussian noise, folded as G folds positions (walls at 0 and 36 px for the ink centre, where
Moving MNIST bounces the box). Scores the mean px distance between the ink centres along the unwrapped path
(lerp through the unwrapped keyframe positions, folded) and the true ones over all 20 frames, on the bounce set
and the held-out dynamics set (arcs and gravity).

    python scripts/unwrap_tolerance.py                       # the table behind unwrap.TOL and unwrap.MAX_SPEED
    python scripts/unwrap_tolerance.py --keyframes 0,4,9,14,19 --noise 0.3
"""

from __future__ import annotations

import argparse

import numpy as np

from latentvideo.data import moving_mnist
from latentvideo.unwrap import MAX_SPEED, TOL, unwrap_positions

FREE = 36.0  # px: the fold range of `moving-mnist-objects` (64 - 28)


def fold(u: np.ndarray) -> np.ndarray:
    return 1 - np.abs((u % 2) - 1)


def path_error(paths: np.ndarray, keys: list[int], noise: float, tol: float, max_speed: float, seed: int = 1):
    """paths [T, N, D, 2] true box top-lefts (px) -> mean px error of the unwrapped lerp path over clips."""
    rng = np.random.default_rng(seed)
    T, N, D, _ = paths.shape
    t = np.arange(T)
    errors = []
    for i in range(N):
        true = paths[:, i] + rng.uniform(0, 1, (1, D, 2))  # [T, D, 2] ink centres, less the sprite's half size
        seen = fold((true[keys] + rng.normal(0, noise, (len(keys), D, 2))) / FREE)  # [K, D, 2] as inverted
        u = unwrap_positions(seen, keys, tol=tol, max_speed=max_speed).positions  # [K, D, 2]
        path = np.stack([[np.interp(t, keys, u[:, d, a]) for a in range(2)] for d in range(D)], 0)  # [D, 2, T]
        errors.append(np.linalg.norm(fold(path.transpose(2, 0, 1)) * FREE - true, axis=-1).mean())
    return float(np.mean(errors))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=200)
    ap.add_argument("--keyframes", default="0,9,19")
    ap.add_argument("--noise", type=float, default=0.15, help="px of Gaussian noise on each keyframe position")
    ap.add_argument("--tols", default="0.05,0.03,0.02", help="fold units (1.0 = the 36 px fold range)")
    ap.add_argument("--max-speeds", default="0.12,0.105", help="fold units per frame")
    args = ap.parse_args()
    keys = [int(k) for k in args.keyframes.split(",")]
    sets = {d: moving_mnist(args.sequences, dynamics=d, seed=0).positions.astype(float) for d in ("bounce", "held-out")}
    print(
        f"keyframes {keys}, noise {args.noise} px, {args.sequences} clips (defaults: tol {TOL}, max speed {MAX_SPEED})"
    )
    print("| tol | max speed | bounce px | held-out px |\n|---|---|---|---|")
    for tol in (float(v) for v in args.tols.split(",")):
        for ms in (float(v) for v in args.max_speeds.split(",")):
            b, h = (path_error(sets[d], keys, args.noise, tol, ms) for d in ("bounce", "held-out"))
            print(f"| {tol} | {ms} | {b:.3f} | {h:.3f} |", flush=True)


if __name__ == "__main__":
    main()
