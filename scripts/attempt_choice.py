"""How well each rule for choosing between a colour clip's two attempts picks the better one.

The colour default makes every clip twice (the second from jittered looks) and keeps the attempt whose tuned copy
reconstructs its keyframes best. With the joint tuning both attempts reconstruct them closely, so that error may
no longer tell which attempt found the objects. This script makes both attempts of every clip (as the default
does: the same inversion, tuning and path), scores each on the benchmark's metrics, and reports what each rule
would keep: the keyframe error (today's), the straightness of each slot's keyframe positions (`line_misfit`: a
slot that jumped to another object between keyframes leaves no straight bouncing line), both, and the best
attempt by identity (an upper bound no rule can pass).

    python scripts/attempt_choice.py --sequences 50 --out runs/attempts50.npz
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from latentvideo.evaluation.bench import load_classifier
from latentvideo.evaluation.colour import ShapesScorer
from latentvideo.pipeline import load_pipeline
from latentvideo.render import to_uint8
from latentvideo.shapes import moving_shapes
from latentvideo.unwrap import line_misfit

KEYS = (0, 9, 19)
CAP = 0.2  # fold units: a slot's misfit where no straight bouncing line fits its keyframe positions


def misfits(pipe, clip) -> np.ndarray:
    """Per slot [K]: the RMS residual (fold units) of the straightest bouncing line through its keyframe positions,
    weighted by how much the slot draws (its alpha or ink mass in G, relative to the clip's heaviest slot)."""
    z = clip.keyframe_latents  # [n, z_dim]
    u = pipe.layout.positions_of(z).numpy()  # [n, K, 2]
    with torch.no_grad():
        mass = pipe.generator.layers(z)[:, :, -1].sum((-1, -2)).mean(0).numpy()  # [K]
    w = mass / max(mass.max(), 1e-9)
    return np.array([line_misfit(u[:, k], clip.times, cap=CAP) for k in range(u.shape[1])]) * w


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=50)
    ap.add_argument("--out", default="runs/attempts.npz")
    args = ap.parse_args()
    torch.set_num_threads(2)
    pipe = load_pipeline("moving-shapes")
    truth = moving_shapes(args.sequences, 20, 64, "test", seed=0)
    x = torch.from_numpy(truth.video).float().movedim(-1, 2) / 255  # [T, N, 3, H, W]
    opts = pipe.options()
    keys = [list(map(float, KEYS))] * args.sequences
    sets, times = pipe.check_inputs([x[list(KEYS), i] for i in range(args.sequences)], keys, 20, opts)
    fits = pipe.fit_motion(sets, times, opts)
    attempts = [pipe._attempt(sets, times, 20, opts, fits, pipe.project_sets(sets, opts, a)) for a in range(2)]
    scorer = ShapesScorer(truth, load_classifier(None, None, "moving-shapes"), KEYS)
    out = {}
    for a, clips in enumerate(attempts):
        frames = np.stack([to_uint8(c.frames) for c in clips], 1)  # [T, N, H, W, 3]
        per = scorer(frames)[2]
        for k in ("identity", "motion", "mse_pixel"):
            out[f"{k}_{a}"] = np.asarray(per[k])
        out[f"keyframe_mse_{a}"] = np.array([float(c.keyframe_errors.mean()) for c in clips])
        out[f"misfit_{a}"] = np.stack([misfits(pipe, c) for c in clips])  # [N, K]
    np.savez(args.out, **out)
    report(out)


def report(d: dict) -> None:
    first = np.zeros(len(d["identity_0"]), bool)  # True: keep the second attempt
    rules = {
        "first attempt": first,
        "keyframe error (default)": d["keyframe_mse_1"] < d["keyframe_mse_0"],
        "slot misfit": d["misfit_1"].sum(1) < d["misfit_0"].sum(1),
    }
    for lam in (0.01, 0.03, 0.1):
        score = [d[f"keyframe_mse_{a}"] + lam * d[f"misfit_{a}"].sum(1) ** 2 for a in (0, 1)]
        rules[f"keyframe error + {lam} misfit^2"] = score[1] < score[0]
    rules["best identity (upper bound)"] = d["identity_1"] > d["identity_0"]
    print("| rule | identity | motion px | MSE/px | second kept |\n|---|---|---|---|---|")
    for name, second in rules.items():
        pick = {k: np.where(second, d[f"{k}_1"], d[f"{k}_0"]) for k in ("identity", "motion", "mse_pixel")}
        print(
            f"| {name} | {pick['identity'].mean():.3f} | {pick['motion'].mean():.2f} | {pick['mse_pixel'].mean():.4f}"
            f" | {second.mean():.2f} |"
        )


if __name__ == "__main__":
    main()
