"""The digit classifier behind the identity metric and the Fréchet features.

A `models.DigitClassifier` trained multi-label (which of the digits 0-9 are in the
frame) on Moving MNIST frames synthesised on the fly from TRAIN-split digits: a mix
of 1-digit, 2-digit and a few empty frames. Two equal digits (3 and 3) make the
one-class set {3}, in the targets here and in `metrics.label_sets` alike.

    python -c "import torch; torch.set_num_threads(1); from latentvideo.classifier import train_classifier; \
               train_classifier('runs/classifier')"
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..data import bounce_paths, compose, load_digits, moving_mnist
from ..errors import LatentVideoError
from ..models import DigitClassifier, model_config, resolve_device, save_model
from .metrics import identity, label_sets


def sample_labelled(rng: np.random.Generator, images, labels, n: int, num_digits: int, size: int = 64, num_frames=20):
    """n random frames of fresh bouncing-digit sequences, with their digit sets.

    Returns (frames uint8 [n, 1, size, size], targets bool [n, 10]); num_digits 0 gives empty frames."""
    if num_digits == 0:
        return np.zeros((n, 1, size, size), np.uint8), np.zeros((n, 10), bool)
    pick = rng.integers(0, len(images), (n, num_digits))  # [n, D]
    paths = np.stack([bounce_paths(rng, n, num_frames, size - 28) for _ in range(num_digits)], 2)  # [T, n, D, 2]
    t = rng.integers(0, num_frames, n)
    frame = paths[t, np.arange(n)][None]  # the chosen frame only: [1, n, D, 2]
    return compose(images[pick], frame, size)[0][:, None], label_sets(labels[pick])


def train_batch(rng: np.random.Generator, images, labels, batch_size: int, size: int = 64, blank_share: float = 1 / 16):
    """A shuffled batch: `blank_share` empty frames, the rest half 1-digit, half 2-digit."""
    n0 = int(round(batch_size * blank_share))
    n1 = (batch_size - n0) // 2
    parts = [sample_labelled(rng, images, labels, m, d, size) for d, m in ((0, n0), (1, n1), (2, batch_size - n0 - n1))]
    order = rng.permutation(batch_size)
    frames = np.concatenate([p[0] for p in parts])[order]  # [B, 1, H, W]
    targets = np.concatenate([p[1] for p in parts])[order]  # [B, 10]
    return frames, targets


def fit(
    model,
    batch,
    loss_fn,
    steps: int,
    lr: float,
    out_dir: Path,
    config: dict,
    *,
    desc: str,
    progress: bool,
    save_every: int | None = None,
) -> None:
    """The classifiers' training loop: Adam with cosine decay of `lr` to 0 by the last step, on `batch()`'s
    (inputs, targets) until `steps`; the mean loss of every 50 steps goes to `out_dir/stats.jsonl`, and the
    model is saved in `out_dir` every `save_every` steps (if given) and at the end."""
    dev = next(model.parameters()).device
    opt = torch.optim.Adam(model.parameters(), lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    stats = out_dir / "stats.jsonl"
    stats.unlink(missing_ok=True)
    t0, running = time.perf_counter(), []
    for step in tqdm(range(1, steps + 1), disable=not progress, desc=desc, unit="step"):
        x, y = batch()
        loss = loss_fn(model(x.to(dev)), y.to(dev))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % 50 == 0 or step == steps:
            row = {"step": step, "loss": float(np.mean(running)), "seconds": time.perf_counter() - t0}
            with open(stats, "a") as f:
                f.write(json.dumps(row) + "\n")
            running = []
        if step == steps or (save_every and step % save_every == 0):
            save_model(model, out_dir, config)


def train_classifier(
    out_dir: str | Path,
    steps: int = 8000,
    batch_size: int = 64,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    width: int = 32,
    hidden: int = 256,
    lr: float = 1e-3,
    size: int = 64,
    save_every: int = 500,
) -> Path:
    """Train a DigitClassifier (BCE-with-logits, Adam with cosine decay) and save it as a model dir in `out_dir`.

    `stats.jsonl` beside the model logs the loss; the model is re-saved every `save_every` steps."""
    if steps < 1 or batch_size < 2:
        raise LatentVideoError("need steps >= 1 and batch_size >= 2")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    images, labels = load_digits("train")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = DigitClassifier(size, 1, width, hidden).to(dev)
    config = model_config(model, resolution=size, channels=1, width=width, hidden=hidden)

    def batch():
        frames, targets = train_batch(rng, images, labels, batch_size, size)
        return torch.from_numpy(frames).float() / 255, torch.from_numpy(targets).float()  # [B, 1, H, W], [B, 10]

    loss = F.binary_cross_entropy_with_logits
    fit(
        model,
        batch,
        loss,
        steps,
        lr,
        out_dir,
        config,
        desc="train classifier",
        progress=progress,
        save_every=save_every,
    )
    return out_dir


def _batched(model, frames, fn, batch_size: int) -> np.ndarray:
    x = torch.as_tensor(np.asarray(frames) if not torch.is_tensor(frames) else frames)
    if x.ndim == 3:
        x = x[:, None]  # [N, H, W] -> [N, 1, H, W]
    if x.ndim != 4:
        raise LatentVideoError(f"frames must be [N, 1, H, W], got {list(x.shape)}")
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    dev = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            out.append(fn(x[i : i + batch_size].to(dev).float() / scale).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def predict_digits(model, frames, threshold: float = 0.5, batch_size: int = 256) -> np.ndarray:
    """Multi-hot digit sets: frames [N, 1, H, W] (float in [0, 1] or uint8) -> bool [N, 10]."""
    probs = _batched(model, frames, lambda x: torch.sigmoid(model(x)), batch_size)
    return probs.reshape(-1, 10) > threshold


def features(model, frames, batch_size: int = 256) -> np.ndarray:
    """Penultimate features for the Fréchet distance: frames [N, 1, H, W] -> float32 [N, F]."""
    return _batched(model, frames, model.features, batch_size)


def evaluate_classifier(model, split: str = "test", sequences: int = 200, seed: int = 0) -> dict:
    """Exact-set accuracy on all frames of `sequences` Moving MNIST clips (20 frames)
    made from `split` digits, with 2 digits and with 1 digit."""
    out = {"split": split, "sequences": sequences, "seed": seed}
    for d in (2, 1):
        mm = moving_mnist(sequences, 20, d, size=model.resolution, split=split, seed=seed)
        T, N, H, W = mm.video.shape
        pred = predict_digits(model, mm.video.reshape(T * N, 1, H, W)).reshape(T, N, 10)
        out[f"accuracy_{d}digit"] = identity(pred, mm.labels)
        out[f"frames_{d}digit"] = T * N
    return out
