"""`latentvideo demo`: the shipped model on held-out test sequences, end to end.

Keyframes t = 0, 9, 19 of a few held-out test sequences go through the model's default
pipeline: Moving MNIST from TEST-split digits for a gray model, Moving Shapes from the test
split (unseen backgrounds and hues) for a colour one. Every clip is written as GIF and MP4,
and one contact sheet shows ground truth, the generated clip and a pixel crossfade.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import moving_mnist
from ..errors import LatentVideoError
from ..evaluation.baselines import crossfade
from ..render import contact_sheet, to_uint8, write_clip, write_png
from ..shapes import moving_shapes

KEYFRAMES = (0, 9, 19)


@dataclass
class DemoClip:
    gif: Path
    mp4: Path
    keyframe_errors: list[float]  # reconstruction MSE/pixel of each keyframe
    mse: float  # MSE/pixel against ground truth over the non-keyframe frames
    crossfade_mse: float


def run_demo(pipe, out_dir: str | Path = "demo", sequences: int = 4, seed: int = 0, num_frames: int = 20, **options):
    """Returns (clips, contact sheet path, per-stage seconds per clip)."""
    if tuple(pipe.frame_shape) not in ((1, 64, 64), (3, 64, 64)):
        raise LatentVideoError(
            f"the demo animates 64x64 Moving MNIST or Moving Shapes; the model makes {list(pipe.frame_shape)} frames",
            hint="use a 64x64 model, gray or colour",
        )
    keys = [k for k in KEYFRAMES if k < num_frames]
    if len(keys) < 2 or sequences < 1:
        raise LatentVideoError(f"the demo needs at least 1 sequence and {KEYFRAMES[1] + 1} frames")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if pipe.channels == 1:
        video = moving_mnist(sequences, num_frames, split="test", seed=seed).video  # [T, N, 64, 64]
    else:
        video = moving_shapes(sequences, num_frames, 64, "test", seed=seed).video  # [T, N, 64, 64, 3]
    x = torch.from_numpy(video).float() / 255
    x = x.movedim(-1, 2) if video.ndim == 5 else x[:, :, None]  # [T, N, C, H, W]
    t0 = time.perf_counter()
    keyframes = [x[keys, i] for i in range(sequences)]  # [K, C, H, W] each
    clips = pipe.generate_many(keyframes, [list(map(float, keys))] * sequences, num_frames, **options)
    total = time.perf_counter() - t0
    fades = crossfade(video, keys)  # [T, N, H, W(, 3)]
    others = [t for t in range(num_frames) if t not in keys]
    rows, labels, results = [], [], []
    for i, clip in enumerate(clips):
        frames = to_uint8(clip.frames)  # [T, H, W(, 3)]
        gif = write_clip(out_dir / f"sequence_{i}.gif", frames)
        mp4 = write_clip(out_dir / f"sequence_{i}.mp4", frames)
        truth = video[:, i].astype(np.float64) / 255
        mse = float(np.mean((frames[others] / 255 - truth[others]) ** 2))
        fade_mse = float(np.mean((fades[others, i] / 255 - truth[others]) ** 2))
        results.append(DemoClip(gif, mp4, clip.keyframe_errors.tolist(), mse, fade_mse))
        rows += [video[:, i], frames, fades[:, i]]
        labels += [f"#{i} truth", f"#{i} generated", f"#{i} crossfade"]
    sheet = out_dir / "contact_sheet.png"
    write_png(sheet, contact_sheet(rows, labels, keys))
    timings = {k: float(np.mean([c.timings[k] for c in clips])) for k in clips[0].timings}
    timings["total"] = total / sequences
    return results, sheet, timings
