"""P-NET: a projection network that maps an image to the latent z that G renders it from.

Trained with G frozen. The loss is the similarity of G(P(x)) to x on real train
frames (MSE or BCE), optionally plus a supervised term on G's own samples, whose
latents are known: |P(G(z)) - z|^2. P-NET only has to land near the right z;
L-BFGS then refines it (`invert(method="pnet+lbfgs")`).

    latentvideo train projector --gan runs/mm64 --steps 3000
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint, truncate_stats
from ..errors import LatentVideoError
from ..fileio import write_json
from ..frames import frame_source
from ..models import GENERATORS, Projector, load_model, model_config, resolve_device, save_model
from ..objects import latent_layout
from ..slots import slot_matched_error
from .gan import sample_latents


@dataclass
class ProjectorConfig:
    data: str = "moving-mnist"  # frames to project: train-split Moving MNIST by default
    num_digits: int = 2
    resize: int | None = None
    width: int = 32
    hidden: int = 256
    batch_size: int = 64
    steps: int = 3000
    lr: float = 1e-3
    loss: str = "mse"  # mse | bce
    # weight of |P(G(z)) - z|^2 on G samples (0 disables). On the step-6,500 model (120 test frames) it
    # hurts: this term (~1 per dim) swamps the reconstruction (~0.02). P-NET trained on reconstruction alone
    # (8,000 steps) starts L-BFGS at MSE/px 0.015 instead of 0.030; after 50 L-BFGS steps 0.0052 against
    # 0.0073, and the classifier reads the digits right on 59 % of frames against 47 % (docs/benchmark-history.md).
    supervised: float = 0.0
    prior: float = 1e-3  # keeps predictions near the N(0, I) shell G was trained on
    # generators with object slots (objects.LatentLayout): weight of the slot-matched error on G's own
    # samples, whose latents are known (slots.slot_matched_error; slot order does not matter)
    slots: float = 1.0
    # colour footage and an objects G with a background code: G's samples for the slot term are composed over
    # the footage's real shot plates (frames.ArrayFrames.plates), like the keyframes P-NET reads, instead of
    # over G's own backdrop; their background codes are then not scored (those images never showed them)
    plates: bool = False
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50


def reconstruction_loss(recon, target, kind: str):  # per-image loss [N]
    if kind == "mse":
        return (recon - target).pow(2).flatten(1).mean(1)
    if kind == "bce":
        return F.binary_cross_entropy(recon.clamp(1e-6, 1 - 1e-6), target, reduction="none").flatten(1).mean(1)
    raise LatentVideoError(f"unknown loss {kind!r}", hint="mse or bce")


def _check_config(config: ProjectorConfig) -> None:
    reconstruction_loss(torch.zeros(1, 1), torch.zeros(1, 1), config.loss)  # unknown loss name
    for name in ("steps", "batch_size", "width", "hidden", "checkpoint_every", "log_every"):
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise LatentVideoError(f"projector {name} must be a positive integer, got {value!r}")
    if not (np.isfinite(config.lr) and config.lr > 0):
        raise LatentVideoError(f"projector learning rate must be positive, got {config.lr}")
    if not isinstance(config.plates, bool):
        raise LatentVideoError(f"projector plates must be true or false, got {config.plates!r}")
    for name in ("supervised", "prior", "slots"):
        value = getattr(config, name)
        if not (np.isfinite(value) and value >= 0):
            raise LatentVideoError(f"projector {name} weight must be >= 0, got {value}")


def _check_plates(G, layout, source) -> None:
    if layout is None or G.channels != 3 or not getattr(G, "background", 0):
        raise LatentVideoError(
            "P-NET over real plates needs a colour objects generator with a background code",
            hint="train it with --arch objects --background 32, or leave out --plates",
        )
    if not hasattr(source, "sample_plates"):
        raise LatentVideoError(
            "P-NET over real plates needs footage with shots", hint="--data a video or a sequence file"
        )
    source.plates()  # find the shots now: footage without any fails before the first step


def train_projector(
    generator_dir: str | Path,
    out_dir: str | Path,
    config: ProjectorConfig | None = None,
    resume: bool = False,
    device: str = "auto",
    stop_after: int | None = None,
    progress: bool = True,
) -> Path:
    """Train P-NET against the frozen generator in `generator_dir`; writes a model dir
    `out_dir/projector/` plus a resumable checkpoint and stats in `out_dir`."""
    out_dir, dev = Path(out_dir), resolve_device(device)
    state_file = out_dir / "projector_checkpoint.safetensors"
    stats_file = out_dir / "projector_stats.jsonl"
    if resume:
        cfg_file = out_dir / "projector_config.json"
        if not cfg_file.is_file():
            raise LatentVideoError(f"no projector run to resume in {out_dir}")
        saved = ProjectorConfig(**json.loads(cfg_file.read_text()))
        config = dataclasses.replace(saved, steps=config.steps) if config is not None else saved
        if config.steps != saved.steps:
            _check_config(config)
            write_json(cfg_file, dataclasses.asdict(config))  # the run's total is now config.steps
    config = config or ProjectorConfig()
    _check_config(config)  # before any work
    G = load_model(generator_dir, dev, expect=GENERATORS)
    layout = latent_layout(G)
    source = frame_source(config.data, config.num_digits, G.resolution, config.resize)
    if tuple(source.shape) != (G.channels, G.resolution, G.resolution):
        want = [G.channels, G.resolution, G.resolution]
        raise LatentVideoError(f"frames of {config.data} are {list(source.shape)} but G makes {want}")
    if config.plates:
        _check_plates(G, layout, source)
    torch.manual_seed(config.seed)
    P = Projector(G.z_dim, G.resolution, G.channels, config.width, config.hidden).to(dev)
    opt = torch.optim.Adam(P.parameters(), config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    gen = torch.Generator().manual_seed(config.seed)
    data_rng = np.random.default_rng(config.seed)
    step = 0
    if resume:
        rng, meta = load_checkpoint(state_file, {"P": P}, {"p": opt})
        step = meta["step"]
        sched.last_epoch = step
        gen.set_state(rng["torch"])
        data_rng.bit_generator.state = meta["data_rng"]
        truncate_stats(stats_file, step)  # rows logged after the checkpoint are redone
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "projector_config.json", dataclasses.asdict(config))
        stats_file.unlink(missing_ok=True)  # a fresh run starts fresh stats

    def export():
        meta = {"step": step, "data_rng": data_rng.bit_generator.state}
        save_checkpoint(state_file, {"P": P}, {"p": opt}, {"torch": gen.get_state()}, meta)
        cfg = model_config(P, z_dim=G.z_dim, resolution=G.resolution, channels=G.channels)
        save_model(P, out_dir / "projector", {**cfg, "width": config.width, "hidden": config.hidden})

    end = min(config.steps, stop_after) if stop_after is not None else config.steps
    bar = tqdm(total=end, initial=step, disable=not progress, desc="train projector", unit="step")
    t0 = time.perf_counter()
    while step < end:
        x = torch.from_numpy(source.sample(data_rng, config.batch_size)).to(dev).float() / 255  # [B, C, H, W]
        z = P(x)
        loss = reconstruction_loss(G(z), x, config.loss).mean() + config.prior * z.pow(2).mean()
        if config.supervised and layout is None:
            z_true = torch.randn(config.batch_size, G.z_dim, generator=gen).to(dev)
            with torch.no_grad():
                x_fake = G(z_true)
            loss = loss + config.supervised * (P(x_fake) - z_true).pow(2).mean()
        if config.slots and layout is not None:
            z_true = sample_latents(G, config.batch_size, gen).to(dev)
            with torch.no_grad():
                if config.plates:  # [B, C, H, W]
                    over = torch.from_numpy(source.sample_plates(data_rng, config.batch_size)).to(dev).float() / 255
                    x_fake = G(z_true, over=over)
                else:
                    x_fake = G(z_true)
            error = slot_matched_error(P(x_fake), z_true, layout, shared=not config.plates)
            loss = loss + config.slots * error.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        step += 1
        bar.update(1)
        if step % config.log_every == 0 or step == end:
            row = {"step": step, "loss": loss.item(), "seconds": time.perf_counter() - t0}
            bar.set_postfix(loss=f"{row['loss']:.4f}")
            with open(stats_file, "a") as f:
                f.write(json.dumps(row) + "\n")
        if step % config.checkpoint_every == 0 or step == end:
            export()
    bar.close()
    return out_dir / "projector"
