"""Where Moving Shapes' objects bounce against where G folds its sprites: what the unwrap's `walls` buy, with no model.

The colour G folds a sprite's centre of mass at 12 and 52 px (its 24 px box over a 40 px fold range); an object
of 12, 16 or 20 px bounces where its own edge meets the canvas edge, with its centre at 6 to 10 px from it. Each
object's true centre at the keyframes, plus Gaussian noise, is given to `unwrap_positions` as the pipeline would;
the score is the mean px distance between the centres along the unwrapped lerp path and the true ones over all
20 frames. Three cases:

    fold          today's unwrap without walls: keyframes and frames clamped to the centres G can render
    walls         the unwrap in each object's own range (`walls` from its size, as `ObjectGenerator.walls` measures
                  them on its sprite); keyframes and frames still clamped to G's range (the pipeline's `walls`)
    walls, free   the same where G also places its sprites past its fold range (the pipeline's `walls="reach"`:
                  each clip's copy of G reaches its objects' walls, reach.py)

    python scripts/shape_walls.py
    python scripts/shape_walls.py --keyframes 0,19 --noise 0.5
"""

from __future__ import annotations

import argparse

import numpy as np

from latentvideo.shapes import moving_shapes
from latentvideo.unwrap import to_generator, unwrap_positions

SPRITE, FOLD = 24.0, 40.0  # the shipped moving-shapes generator's sprite box and fold range, px


def path_errors(ms, keys: list[int], noise: float, seed: int = 1) -> dict[str, list[float]]:
    rng = np.random.default_rng(seed)
    centres = ms.centres  # [T, N, K, 2] px (continuous coordinates)
    T = centres.shape[0]
    t = np.arange(T, dtype=np.float64)
    lo_g = SPRITE / 2  # G's nearest centre to the top / left edge
    out = {"fold": [], "walls": [], "walls, free": []}
    for i, k in zip(*np.nonzero(ms.mask)):
        s = float(ms.sizes[i, k])
        true = centres[:, i, k]  # [T, 2]
        seen = true[keys] + rng.normal(0, noise, (len(keys), 2))
        margin = (SPRITE - s) / 2 / FOLD  # fold units past each end of G's range
        for case in out:
            free = case == "walls, free"
            w = np.zeros((1, 2, 2)) if case == "fold" else np.full((1, 2, 2), margin)
            p = (seen - lo_g) / FOLD  # G's fold units
            p = p if free else np.clip(p, 0, 1)
            if free:  # the keyframes and the path in the object's own range, as a copy reaching its walls draws them
                span = 1 + 2 * margin
                q = (np.clip(p, -margin, 1 + margin) + margin) / span
                u = unwrap_positions(q[:, None], keys, walls=w, own=True)
                path = np.stack([np.interp(t, keys, u.positions[:, 0, a]) for a in range(2)], -1)
                px = span * (1 - np.abs((path % 2) - 1)) - margin
            else:
                u = unwrap_positions(p[:, None], keys, walls=w)
                path = np.stack([np.interp(t, keys, u.positions[:, 0, a]) for a in range(2)], -1)[:, None]
                px = to_generator(path, w)[:, 0]
            out[case].append(float(np.linalg.norm(px * FOLD + lo_g - true, axis=-1).mean()))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=200)
    ap.add_argument("--keyframes", default="0,9,19")
    ap.add_argument("--noise", type=float, default=0.3, help="px of Gaussian noise on each keyframe centre")
    args = ap.parse_args()
    keys = [int(k) for k in args.keyframes.split(",")]
    ms = moving_shapes(args.sequences, 20, 64, "test", seed=0)
    c = ms.centres[keys][:, ms.mask]  # [K, objects, 2]
    beyond = ((c < SPRITE / 2) | (c > 64 - SPRITE / 2)).any(-1).mean()
    print(f"{args.sequences} test clips, keyframes {keys}, noise {args.noise} px")
    print(f"{beyond:.1%} of the objects' keyframe centres lie where G cannot place a sprite's centre\n")
    print("| case | mean px | median px |\n|---|---|---|")
    for case, e in path_errors(ms, keys, args.noise).items():
        print(f"| {case} | {np.mean(e):.2f} | {np.median(e):.2f} |")


if __name__ == "__main__":
    main()
