"""Benchmark metrics for coloured objects over backgrounds (Moving Shapes, `latentvideo.shapes`).

Every object of a test clip has a known colour. Its *colour mask* in a frame weighs each pixel by how
close the pixel is to that colour (1 within MASK_RADIUS / 2 in RGB, falling linearly to 0 at
MASK_RADIUS), so the mask follows the object wherever a method draws it, whatever the background:

    motion     per object, the earth mover's distance (metrics.motion_error) between the colour mask
               in the generated frame and in the true frame, in px; averaged over the clip's objects
    identity   a small CNN (`ShapeClassifier`) names the shape in each colour mask (disc, square,
               triangle, star, ring, or none); a frame counts when every object's shape is named right,
               so a wrong colour (an empty mask) or a smeared shape both fail. Trained on colour masks of
               TRAIN-split clips only; its accuracy on the true test frames is the reference.

MSE and SSIM are taken on RGB (SSIM per channel, averaged, as scikit-image's `channel_axis` does).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import LatentVideoError
from ..models import ShapeClassifier, model_config, resolve_device
from ..shapes import SHAPES, MovingShapes, compose_shapes, moving_shapes
from . import metrics
from .baselines import neighbours
from .classifier import fit
from .scoring import summarise

MASK_RADIUS = 0.4  # RGB distance (channels in [0, 1]) where a pixel stops counting as the object's colour
NONE = len(SHAPES)  # class index of "no object of this colour"


def _rgb(frames) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(frames) if not torch.is_tensor(frames) else frames)
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def colour_masks(frames, colours, present=None) -> np.ndarray:
    """frames [..., n, H, W, 3] (uint8 or float in [0, 1]), colours uint8 [n, K, 3] -> float32 [..., n, K, H, W].

    With `present` (bool [n, K]), a pixel counts only for the nearest colour among the clip's present
    objects, so that two objects of similar colour (test hues share one 60-degree range) do not each
    claim the other; absent slots get empty masks."""
    x = _rgb(frames)  # [..., n, H, W, 3]
    c = torch.as_tensor(np.asarray(colours)).float() / 255  # [n, K, 3]
    if x.shape[-1] != 3 or c.shape[-1] != 3 or x.shape[-4] != c.shape[0]:
        raise LatentVideoError(
            f"frames {list(x.shape)} and colours {list(c.shape)} must be [..., n, H, W, 3], [n, K, 3]"
        )
    d = (x.unsqueeze(-4) - c[:, :, None, None, :]).norm(dim=-1)  # [..., n, K, H, W]
    m = ((MASK_RADIUS - d) / (MASK_RADIUS / 2)).clamp(0, 1)
    if present is not None:
        p = torch.as_tensor(np.asarray(present, bool))[:, :, None, None]  # [n, K, 1, 1]
        d = d.masked_fill(~p, float("inf"))
        m = m * (d <= d.min(-3, keepdim=True).values) * p
    return m.numpy()


def object_motion(gen, true, colours, present) -> np.ndarray:
    """Mean over each clip's objects of the colour-mask EMD in px: gen, true [T, n, H, W, 3] -> [T, n]."""
    emd = metrics.motion_error(colour_masks(gen, colours, present), colour_masks(true, colours, present))  # [T, n, K]
    w = np.asarray(present, np.float64)[None]  # [1, n, K]
    return (emd * w).sum(-1) / np.maximum(w.sum(-1), 1)


# ---------------------------------------------------------------- the shape classifier


def sample_masks(rng: np.random.Generator, clips: MovingShapes, n: int, jitter: bool = True):
    """n (mask, class) pairs from random frames of `clips`: a present object's colour mask gives its shape,
    a colour no object has (hue at least 60 degrees from all) gives NONE, one in four. With `jitter`, the
    frame is blurred a little and the query colour moved a little, as a generator's render would be.
    Returns float32 [n, 1, H, W], int64 [n]."""
    T, N = clips.video.shape[:2]
    t, i = rng.integers(0, T, n), rng.integers(0, N, n)
    frames = torch.from_numpy(clips.video[t, i]).float() / 255  # [n, H, W, 3]
    if jitter:
        frames = _blur(frames, rng.uniform(0, 1.2, n))
    none = rng.random(n) < 0.25
    K = clips.mask.shape[1]
    colours = np.concatenate([clips.colours[i], np.zeros((n, 1, 3), np.uint8)], 1)  # [n, K + 1, 3]: + a decoy
    present = np.concatenate([clips.mask[i], np.ones((n, 1), bool)], 1)  # [n, K + 1]
    pick = np.full(n, K)
    for j in range(n):
        objs = np.flatnonzero(clips.mask[i[j]])
        colours[j, K] = _far_colour(rng, clips.hues[i[j], objs])
        if not none[j]:
            pick[j] = rng.choice(objs)
    labels = np.where(pick < K, clips.shapes[i, np.minimum(pick, K - 1)], NONE)
    if jitter:
        colours = np.clip(colours.astype(np.int64) + rng.integers(-12, 13, colours.shape), 0, 255).astype(np.uint8)
    masks = colour_masks(frames, colours, present)  # [n, K + 1, H, W]
    return masks[np.arange(n), pick][:, None], labels.astype(np.int64)  # [n, 1, H, W]: sample j's chosen colour


def _blur(frames: torch.Tensor, sigma) -> torch.Tensor:
    """Gaussian blur of each frame [n, H, W, 3] with its own sigma [n] (px; below 0.3: unchanged)."""
    n = len(frames)
    r = torch.arange(-3, 4, dtype=torch.float32)
    s = torch.as_tensor(np.maximum(sigma, 1e-3), dtype=torch.float32)[:, None]  # [n, 1]
    k = torch.exp(-(r**2) / (2 * s**2))
    k = torch.where(s < 0.3, (r == 0).float(), k)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(3, 0)  # [n * 3, 7]
    x = frames.permute(0, 3, 1, 2).reshape(1, n * 3, *frames.shape[1:3])  # [1, n * 3, H, W]
    x = F.conv2d(F.pad(x, (3, 3, 0, 0), mode="replicate"), k.view(n * 3, 1, 1, 7), groups=n * 3)
    x = F.conv2d(F.pad(x, (0, 0, 3, 3), mode="replicate"), k.view(n * 3, 1, 7, 1), groups=n * 3)
    return x.view(n, 3, *frames.shape[1:3]).permute(0, 2, 3, 1)


def _far_colour(rng: np.random.Generator, hues) -> np.ndarray:
    from ..shapes import OBJECT_SAT, OBJECT_VAL, _hsv_to_rgb

    for _ in range(100):
        h = rng.uniform(0, 360)
        gap = np.abs((np.asarray(hues) - h + 180) % 360 - 180)
        if gap.size == 0 or gap.min() >= 60:
            break
    rgb = _hsv_to_rgb(np.array(h), np.array(rng.uniform(*OBJECT_SAT)), np.array(rng.uniform(*OBJECT_VAL)))
    return np.round(rgb * 255).astype(np.uint8)


def train_shape_classifier(
    out_dir: str | Path,
    steps: int = 3000,
    batch_size: int = 128,
    sequences: int = 600,
    seed: int = 0,
    device: str = "cpu",
    width: int = 16,
    lr: float = 1e-3,
    progress: bool = True,
) -> Path:
    """Train a ShapeClassifier (cross-entropy, Adam with cosine decay) on colour masks of `sequences`
    TRAIN-split Moving Shapes clips, and save it as a model folder in `out_dir` (stats.jsonl beside it)."""
    if steps < 1 or batch_size < 2 or sequences < 1:
        raise LatentVideoError("need steps >= 1, batch_size >= 2 and sequences >= 1")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    clips = moving_shapes(sequences, 20, 64, "train", seed=seed + 1)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = ShapeClassifier(64, width).to(dev)
    config = model_config(model, resolution=64, width=width)

    def batch():
        x, y = sample_masks(rng, clips, batch_size)
        return torch.from_numpy(x), torch.from_numpy(y)

    fit(model, batch, F.cross_entropy, steps, lr, out_dir, config, desc="train shape classifier", progress=progress)
    return out_dir


def predict_shapes(model, masks, batch_size: int = 512) -> np.ndarray:
    """Colour masks [M, 1, H, W] (or [M, H, W]) -> class int64 [M] (index into SHAPES, NONE = len(SHAPES))."""
    x = torch.as_tensor(np.asarray(masks), dtype=torch.float32)
    x = x[:, None] if x.ndim == 3 else x
    dev = next(model.parameters()).device
    with torch.no_grad():
        out = [model(x[i : i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


def evaluate_shape_classifier(model, sequences: int = 100, seed: int = 0) -> dict:
    """Accuracy on the true frames of TEST-split clips: per object (shape named in its colour mask),
    and per frame (every object right, the benchmark's identity)."""
    clips = moving_shapes(sequences, 20, 64, "test", seed=seed)
    ok = object_identity(model, clips.video, clips.colours, clips.shapes, clips.mask, per_object=True)  # [T, n, K]
    m = np.broadcast_to(clips.mask[None], ok.shape)
    return {
        "sequences": sequences,
        "accuracy_objects": float(ok[m].mean()),
        "accuracy_frames": float((ok | ~m).all(-1).mean()),
    }


def object_identity(model, frames, colours, shapes, present, per_object: bool = False) -> np.ndarray:
    """Whether every object's shape is named right in its colour mask: frames [T, n, H, W, 3] -> float [T, n]
    (`per_object`: bool [T, n, K], each object alone; empty slots count as right)."""
    masks = colour_masks(frames, colours, present)  # [T, n, K, H, W]
    pred = predict_shapes(model, masks.reshape(-1, *masks.shape[-2:])).reshape(masks.shape[:3])  # [T, n, K]
    ok = (pred == np.asarray(shapes)[None]) | ~np.asarray(present, bool)[None]
    return ok if per_object else ok.all(-1).astype(np.float64)


# ---------------------------------------------------------------- the oracle and the scorer


def shapes_oracle(truth: MovingShapes, keyframes) -> np.ndarray:
    """Each true object moves in a straight line between its true keyframe positions (rounded to whole px),
    over the true background: uint8 [T, N, H, W, 3]. An upper reference no image-only method can reach."""
    left, right, w = neighbours(keyframes, len(truth.positions))
    w = w[:, None, None, None]  # [T, 1, 1, 1]
    path = np.rint((1 - w) * truth.positions[left] + w * truth.positions[right]).astype(np.int64)  # [T, N, K, 2]
    return compose_shapes(truth.background, truth.alpha, truth.colours, truth.sizes, path)


class ShapesScorer:
    """Every metric of a colour clip set uint8 [T, N, H, W, 3] against Moving Shapes ground truth (the
    interface of `bench.Scorer`: `scorer(clips, n) -> (values, per-frame curves, per-sequence means)`)."""

    def __init__(self, truth: MovingShapes, classifier, keyframes, seed: int = 0):
        self.truth, self.classifier, self.seed = truth, classifier, seed
        T = truth.video.shape[0]
        self.others = np.array([t for t in range(T) if t not in set(keyframes)])

    def __call__(self, clips: np.ndarray, n: int | None = None) -> tuple[dict, dict, dict]:
        n = n or clips.shape[1]
        gen, true = clips[self.others, :n], self.truth.video[self.others, :n]  # [T', n, H, W, 3]
        g, t = (np.moveaxis(v, -1, -3) for v in (gen, true))  # [T', n, 3, H, W]
        mse = metrics.mse_per_pixel(g, t).mean(-1)  # [T', n]
        colours, present = self.truth.colours[:n], self.truth.mask[:n]
        per = {
            "mse_pixel": mse,
            "mse_frame": mse * np.prod(gen.shape[2:]),
            "psnr": -10 * np.log10(np.maximum(mse, 10 ** (-metrics.PSNR_MAX_DB / 10))),
            "ssim": metrics.ssim(g, t).mean(-1),
            "motion": object_motion(gen, true, colours, present),
            "identity": object_identity(self.classifier, gen, colours, self.truth.shapes[:n], present),
        }
        values, curves, clipwise = summarise(per, self.others, clips.shape[0], self.seed)
        flicker = metrics.flicker(np.moveaxis(clips[:, :n], -1, -3)).mean(-1)  # [n], channels averaged
        values["flicker"] = list(metrics.bootstrap_ci(flicker, seed=self.seed))
        return values, curves, clipwise
