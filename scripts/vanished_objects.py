"""Where the colour model's errors come from: per object of N Moving Shapes test clips (seed 0, keyframes
0, 9, 19, the benchmark's), its colour-mask EMD in the in-between frames, and whether its mask is empty in every
one of them (the object vanished: it scores the canvas diagonal, 90.5 px). Prints the mean motion with and
without the vanished objects, and their share of the error; the median clip's motion and the mean by the number of
objects in a clip (the mean is a heavy tail of three-object clips); then the share of objects the benchmark's shape
classifier names right in the generated keyframes (the keyframe latents as the clip's tuned copy renders them),
in the in-between frames and in the true frames: identity lost at the keyframes is lost in the reconstruction,
not on the path. Options as in `Pipeline.__call__`.

usage: python scripts/vanished_objects.py N [model=DIR] [option=value ...]   e.g. plate_search=true restarts=3
"""

import sys

import numpy as np
import torch

from latentvideo.evaluation import metrics
from latentvideo.evaluation.bench import load_classifier
from latentvideo.evaluation.colour import colour_masks, object_identity
from latentvideo.pipeline import Pipeline
from latentvideo.render import to_uint8
from latentvideo.shapes import moving_shapes

KEYS = [0, 9, 19]


def main(n: int, options: dict, model: str = "moving-shapes") -> None:
    pipe = Pipeline.from_dir(model)
    ms = moving_shapes(n, 20, 64, "test", seed=0)
    others = [t for t in range(20) if t not in KEYS]
    sets = [torch.from_numpy(ms.video[KEYS, c]).permute(0, 3, 1, 2).float() / 255 for c in range(n)]
    clips = pipe.generate_many(sets, [KEYS] * n, 20, **options)
    gen = np.stack([to_uint8(c.frames) for c in clips], 1)  # [T, n, H, W, 3]
    colours, present = ms.colours[:n], ms.mask[:n]
    masks = colour_masks(gen[others], colours, present)  # [T', n, K, H, W]
    emd = metrics.motion_error(masks, colour_masks(ms.video[others, :n], colours, present)).mean(0)  # [n, K]
    gone = (masks.sum((-1, -2)) < 1).all(0) & present  # [n, K]
    per_clip = (emd * present).sum(1) / present.sum(1)  # the benchmark's motion: per clip, over its objects
    print(f"{n} clips, {int(present.sum())} objects, {int(gone.sum())} vanished in every in-between frame")
    print(f"motion px: {per_clip.mean():.2f} per clip (the benchmark's); per object {emd[present].mean():.2f},")
    print(f"  {emd[present & ~gone].mean():.2f} over the objects that did not vanish")
    counts = present.sum(1)
    by = ", ".join(
        f"{k} objects {per_clip[counts == k].mean():.2f} ({(counts == k).sum()} clips)" for k in np.unique(counts)
    )
    print(f"motion px per clip: median {np.median(per_clip):.2f}; mean by objects per clip: {by}")
    print(f"share of the summed motion error from vanished objects: {emd[gone].sum() / emd[present].sum():.2f}")
    classifier = load_classifier(None, None, "moving-shapes")
    named = lambda frames: object_identity(classifier, frames, colours, ms.shapes[:n], present, per_object=True)  # noqa: E731
    right = {"generated keyframes": named(gen[KEYS]), "generated in-between": named(gen[others])}
    right["true in-between"] = named(ms.video[others, :n])
    print("objects named right: " + ", ".join(f"{k} {v[:, present].mean():.3f}" for k, v in right.items()))


if __name__ == "__main__":
    opts = {}
    for arg in sys.argv[2:]:
        key, value = arg.split("=", 1)
        opts[key] = {"true": True, "false": False}.get(value.lower(), int(value) if value.isdigit() else value)
    main(int(sys.argv[1]), opts, opts.pop("model", "moving-shapes"))
