"""The `latentvideo dataset ...` and `latentvideo train ...` commands. Like the rest of the command line
(cli.py) they parse, call the library and write; the apps they register on are in cli_app.py."""

from __future__ import annotations

import math
import os
from pathlib import Path

import typer

from .cli_app import _fail, dataset_app, train_app

# ------------------------------------------------------------------ dataset


@dataset_app.command("moving-mnist")
def dataset_moving_mnist(
    out: Path = typer.Option(..., "--out", help="Output file, .npy ([T, N, 64, 64] uint8) or .npz (video + labels)."),
    split: str = typer.Option("test", help="Which digits: train or test."),
    sequences: int = typer.Option(1000, help="Number of sequences N."),
    frames: int = typer.Option(20, help="Frames per sequence T."),
    digits: int = typer.Option(2, help="Digits per sequence (1 to 3)."),
    size: int = typer.Option(64, help="Canvas size."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same file."),
):
    """Synthesise Moving MNIST (Srivastava et al. 2015) from one split's digits.

    Example:  latentvideo dataset moving-mnist --split test --sequences 200 --seed 0 --out mm_test.npy
    """
    from ..data import moving_mnist, write_sequences

    if out.suffix not in (".npy", ".npz"):
        _fail(f"unknown output extension {out.suffix!r}", "use .npy or .npz")
    mm = moving_mnist(sequences, frames, digits, size, split=split, seed=seed)
    write_sequences(out, mm.video, mm.labels if out.suffix == ".npz" else None)
    typer.echo(f"wrote {out}  uint8 {list(mm.video.shape)}  ({split} digits, seed {seed})")


@dataset_app.command("moving-shapes")
def dataset_moving_shapes(
    out: Path = typer.Option(
        ...,
        "--out",
        help="Output file: .mp4 (every sequence one after another, lossless H.264 RGB), "
        ".npy ([T, N, H, W, 3] uint8) or .npz (video + ground truth).",
    ),
    split: str = typer.Option("train", help="train or test: disjoint background photographs and hues."),
    sequences: int = typer.Option(500, help="Number of sequences N."),
    frames: int = typer.Option(20, help="Frames per sequence T."),
    objects: str = typer.Option("1-3", help="Objects per sequence: N, or MIN-MAX, within 1-3."),
    size: int = typer.Option(64, help="Canvas size (at least 32)."),
    fps: float = typer.Option(10, help="Frame rate of an .mp4."),
    seed: int = typer.Option(0, help="Random seed; the same seed gives the same file."),
):
    """Synthesise Moving Shapes: coloured shapes bouncing like Moving MNIST digits over photographs
    (bundled with scikit-image) or colour gradients; made offline. See latentvideo.shapes for the split.

    Examples:
      latentvideo dataset moving-shapes --split train --sequences 500 --out train.mp4
      latentvideo dataset moving-shapes --split test --sequences 100 --objects 2 --out test.npz
      latentvideo train gan --out runs/shapes --data train.mp4
    """
    from ..fileio import check_writable
    from ..shapes import OUTPUT_EXTS, moving_shapes, parse_objects, write_moving_shapes

    if out.suffix.lower() not in OUTPUT_EXTS:
        _fail(f"unknown output extension {out.suffix or '(none)'!r}", "use .mp4, .npy or .npz")
    if split not in ("train", "test"):
        _fail(f"unknown split {split!r}", "use 'train' or 'test'")
    if sequences < 1 or frames < 1:
        _fail(f"--sequences and --frames must be at least 1, got {sequences} and {frames}")
    if not fps > 0:
        _fail(f"--fps must be positive, got {fps}")
    span = parse_objects(objects)
    check_writable(out)
    ms = moving_shapes(sequences, frames, size, split=split, seed=seed, objects=span)
    write_moving_shapes(out, ms, fps=fps)
    T, N, H, W, _ = ms.video.shape
    what = f"{N * T} RGB frames {W}x{H} ({N} sequences of {T})" if out.suffix.lower() == ".mp4" else (
        f"uint8 {list(ms.video.shape)}"
    )  # fmt: skip
    typer.echo(f"wrote {out}  {what}  ({split} split, seed {seed})")


# ------------------------------------------------------------------ train


@train_app.command("gan")
def train_gan_cmd(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, "--out", help="New run directory (e.g. runs/mm64)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this directory."),
    data: str = typer.Option("moving-mnist", help="moving-mnist, a folder of images, a video or a .npy/.npz file."),
    steps: int | None = typer.Option(None, help="Total generator steps of the run (default: 20000)."),
    batch_size: int = typer.Option(64, help="Frames per critic step (split across torchrun ranks)."),
    n_critic: int = typer.Option(2, help="Critic steps per generator step."),
    width: int = typer.Option(32, help="Network width (channels of the outer blocks)."),
    z_dim: int = typer.Option(256, help="Latent size."),
    lr: float = typer.Option(2e-4, help="Adam learning rate of G and C."),
    ema: float = typer.Option(0.999, help="EMA decay of G (0 disables)."),
    digits: int = typer.Option(2, help="Digits per Moving MNIST frame."),
    resize: int | None = typer.Option(None, help="Rescale your own images to this size (32, 64 or 128)."),
    checkpoint_every: int = typer.Option(500, help="Checkpoint, sample grid and model export every N steps."),
    pl_weight: float | None = typer.Option(None, help="StyleGAN2 path-length regularisation weight (default 0: off)."),
    pl_every: int | None = typer.Option(None, help="A path-length step after every N-th generator step (default 4)."),
    mapping_layers: int | None = typer.Option(None, help="Mapping network z -> w of this many layers (default 0)."),
    arch: str = typer.Option("dcgan", help="dcgan, or objects: slots of appearance + position (a line is motion)."),
    objects: int = typer.Option(2, help="objects: slots per frame (1 to 8)."),
    appearance: int = typer.Option(32, help="objects: appearance code size per slot."),
    sprite: int = typer.Option(28, help="objects: sprite size in px (a multiple of 4, below the resolution)."),
    background: int = typer.Option(0, help="objects: background code size (0: black background)."),
    init: str | None = typer.Option(
        None, help="Start G and C from this model (shipped name, run or model folder): fine-tune on your frames."
    ),
    pair_weight: float | None = typer.Option(
        None,
        help="objects: weight of a second critic on two frames of one shot, so that what does not move is "
        "background (default 0: off).",
    ),
    pair_gap: int | None = typer.Option(None, help="objects: the pair critic's frames are 1..N apart (default 3)."),
    pair_speed: float | None = typer.Option(
        None, help="objects: your objects' typical speed in px per frame, for the pair critic (default 3.6)."
    ),
    plate_weight: float | None = typer.Option(
        None,
        help="objects in colour: train the background net against your shots' medians (a critic of its own, at "
        "this weight) and the slots over those plates, so that objects come from the slots (default 0: off).",
    ),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda, cuda:N."),
    stop_after: int | None = typer.Option(None, help="Stop (with a checkpoint) after this total step; resume later."),
    minutes: float | None = typer.Option(
        None, help="Stop (with a checkpoint) after this many minutes of training; resume later."
    ),
):
    """Train the frame GAN with WGAN-GP, checkpointing atomically; resumable.

    Examples:
      latentvideo train gan --out runs/mm64 --steps 20000
      latentvideo train gan --resume runs/mm64
      latentvideo train gan --resume runs/mm64 --minutes 60
      latentvideo train gan --out runs/mine --data frames/ --resize 64
      latentvideo train gan --out runs/smooth --pl-weight 2 --mapping-layers 4
      latentvideo train gan --out runs/objects --arch objects --objects 2 --batch-size 32
      latentvideo train gan --out runs/ft --data my.mp4 --init moving-shapes --batch-size 32
      latentvideo train gan --out runs/pairs --data my.mp4 --arch objects --objects 3 --pair-weight 1
      latentvideo train gan --out runs/plates --data my.mp4 --init moving-shapes --plate-weight 1
      torchrun --nproc_per_node=2 -m latentvideo.cli train gan --out runs/ddp
    """
    from ..training.gan import GANConfig, init_settings, train_gan

    if (out is None) == (resume is None):
        _fail("give exactly one of --out (new run) or --resume (existing run)")
    if minutes is not None and not (math.isfinite(minutes) and minutes > 0):
        _fail(f"--minutes must be a positive number, got {minutes}")
    smoothing = {"pl_weight": pl_weight, "pl_every": pl_every, "mapping_layers": mapping_layers}
    smoothing.update(pair_weight=pair_weight, pair_gap=pair_gap, pair_speed=pair_speed, plate_weight=plate_weight)
    smoothing = {k: v for k, v in smoothing.items() if v is not None}
    if pl_weight is not None and not (math.isfinite(pl_weight) and pl_weight >= 0):
        _fail(f"--pl-weight must be a finite number >= 0, got {pl_weight}")
    if resume is not None:
        if smoothing or init is not None:
            _fail(
                "--init, --pl-weight, --pl-every, --mapping-layers, --pair-* and --plate-weight set up a new run",
                "use --out",
            )
        cfg = None
        if steps is not None:
            import json

            cfg_file = resume / "config.json"
            if not cfg_file.is_file():
                _fail(f"not a training run (no config.json): {resume}")
            cfg = GANConfig(**{**json.loads(cfg_file.read_text()), "steps": steps})
        run = train_gan(resume, cfg, resume=True, device=device, stop_after=stop_after, minutes=minutes)
    else:
        arch_opts = dict(arch=arch, objects=objects, appearance=appearance, sprite=sprite, background=background)
        arch_opts.update(width=width, z_dim=z_dim, **smoothing)
        if init is not None:  # the model's architecture, where the command line does not set it
            for key, value in init_settings(init).items():
                if getattr(ctx.get_parameter_source(key), "name", "DEFAULT") == "DEFAULT":
                    arch_opts[key] = value
        cfg = GANConfig(
            data=data,
            steps=steps or GANConfig.steps,
            batch_size=batch_size,
            n_critic=n_critic,
            lr_g=lr,
            lr_c=lr,
            ema=ema,
            num_digits=digits,
            resize=resize,
            checkpoint_every=checkpoint_every,
            seed=seed,
            init=init,
            **arch_opts,
        )
        run = train_gan(out, cfg, device=device, stop_after=stop_after, minutes=minutes)
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"run: {run}  (generator/, critic/, samples/, stats.jsonl)")


@train_app.command("projector")
def train_projector_cmd(
    gan: Path = typer.Option(..., "--gan", help="A GAN run or model folder holding generator/."),
    out: Path | None = typer.Option(None, "--out", help="Where projector/ goes (default: the --gan folder)."),
    steps: int = typer.Option(3000, help="Training steps."),
    loss: str = typer.Option("mse", help="Reconstruction loss: mse or bce."),
    supervised: float = typer.Option(
        0.0, help="Weight of a supervised |P(G(z)) - z|^2 term on G samples (0: reconstruction only)."
    ),
    batch_size: int = typer.Option(64),
    width: int = typer.Option(32, help="Channels of the encoder's first conv layer (doubling per layer)."),
    hidden: int = typer.Option(256, help="Units of the hidden layer before z."),
    data: str = typer.Option("moving-mnist", help="Frames to learn to project (train split by default)."),
    resize: int | None = typer.Option(None, help="Rescale your own images to this size (32, 64 or 128)."),
    plates: bool = typer.Option(
        False,
        "--plates",
        help="Colour objects G with a background code: learn the slots from G's samples over the footage's real "
        "shot plates instead of G's backdrop.",
    ),
    resume: bool = typer.Option(False, "--resume", help="Continue the projector run in --out."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
):
    """Train P-NET, the projection network, against a frozen generator.

    Example:  latentvideo train projector --gan runs/mm64 --steps 3000
    """
    from ..training.projector import ProjectorConfig, train_projector

    out = out or gan
    cfg = ProjectorConfig(
        data=data,
        steps=steps,
        loss=loss,
        supervised=supervised,
        batch_size=batch_size,
        width=width,
        hidden=hidden,
        seed=seed,
        resize=resize,
        plates=plates,
    )
    path = train_projector(gan / "generator" if (gan / "generator").is_dir() else gan, out, cfg, resume, device)
    typer.echo(f"projector: {path}")


@train_app.command("classifier")
def train_classifier_cmd(
    out: Path = typer.Option(..., "--out", help="Model directory to write (e.g. runs/classifier)."),
    data: str = typer.Option("moving-mnist", help="moving-mnist (digits) or moving-shapes (colour shapes)."),
    steps: int = typer.Option(None, help="Training steps (digits 8000: about 22 min on one CPU thread; shapes 3000)."),
    batch_size: int = typer.Option(None, help="Batch size (digits 64, shapes 128)."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto"),
):
    """Train the classifier the benchmark uses for identity (and, for digits, the Fréchet distance).

    Digits: frames made from TRAIN-split digits (1 or 2 digits, 64x64, multi-label 0-9). Shapes: the colour
    mask of each object of TRAIN-split Moving Shapes clips, named as one of five shapes or none.

    Examples:
      latentvideo train classifier --out runs/classifier --steps 8000
      latentvideo train classifier --out runs/shape-classifier --data moving-shapes
    """
    from ..models import load_model, resolve_device

    dev = str(resolve_device(device))
    if data == "moving-shapes":
        from ..evaluation.colour import evaluate_shape_classifier, train_shape_classifier

        path = train_shape_classifier(out, steps=steps or 3000, batch_size=batch_size or 128, seed=seed, device=dev)
        acc = evaluate_shape_classifier(load_model(path))
        typer.echo(f"shape classifier: {path}  test accuracy {acc['accuracy_objects']:.3f} per object")
        return
    if data != "moving-mnist":
        _fail(f"unknown --data {data!r} for the classifier", hint="moving-mnist or moving-shapes")
    from ..evaluation.classifier import evaluate_classifier, train_classifier

    path = train_classifier(out, steps=steps or 8000, batch_size=batch_size or 64, seed=seed, device=dev)
    scores = evaluate_classifier(load_model(path))
    typer.echo(
        f"classifier: {path}  test accuracy 2 digits {scores['accuracy_2digit']:.3f}, "
        f"1 digit {scores['accuracy_1digit']:.3f}"
    )
