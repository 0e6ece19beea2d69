"""A colour bench row's identity and motion by what its clips hold: the number of objects, and how close the two
nearest object colours are (the benchmark's colour masks give a pixel to the nearest object colour).

    python scripts/shapes_breakdown.py runs/b50-shapes-reach
    python scripts/shapes_breakdown.py runs/b50-shapes-reach --row "piecewise-linear oracle"
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from latentvideo.shapes import moving_shapes


def nearest_pair(colours: np.ndarray) -> float:
    """colours uint8 [k, 3] -> the RGB distance (channels in [0, 1]) of the two nearest, inf for one object."""
    c = colours.astype(np.float64) / 255
    d = [np.linalg.norm(c[a] - c[b]) for a in range(len(c)) for b in range(a + 1, len(c))]
    return min(d) if d else np.inf


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", help="a `latentvideo bench --data moving-shapes` folder (or its results.json)")
    ap.add_argument("--row", default="pipeline (default)")
    ap.add_argument("--keyframes", default=None, help="keyframe set, e.g. 0,19 (default: the run's first)")
    args = ap.parse_args()
    path = Path(args.run)
    results = json.loads((path / "results.json" if path.is_dir() else path).read_text())
    sets = results["keyframe_sets"]
    rows = sets[args.keyframes or next(iter(sets))]
    row = next((r for r in rows if r["name"] == args.row), None)
    if row is None:
        ap.error(f"no row {args.row!r}; rows: {', '.join(r['name'] for r in rows)}")
    cfg = results["config"]
    identity, motion = (np.asarray(row["per_sequence"][k]) for k in ("identity", "motion"))
    ms = moving_shapes(len(identity), 20, 64, "test", seed=cfg.get("seed", 0))
    count = ms.mask.sum(1)
    near = np.array([nearest_pair(ms.colours[i][ms.mask[i]]) for i in range(len(identity))])
    print(f"{args.row}, {len(identity)} clips\n\n| clips holding | clips | identity | motion px |\n|---|---|---|---|")
    groups = [(f"{k} object{'s' * (k > 1)}", count == k) for k in (1, 2, 3)]
    groups += [(f"nearest colours {lo}-{hi}", (near >= lo) & (near < hi)) for lo, hi in ((0, 0.15), (0.15, 0.3))]
    groups += [("nearest colours >= 0.3", np.isfinite(near) & (near >= 0.3))]
    for name, s in groups:
        if s.any():
            print(f"| {name} | {s.sum()} | {identity[s].mean():.2f} | {motion[s].mean():.1f} |")


if __name__ == "__main__":
    main()
