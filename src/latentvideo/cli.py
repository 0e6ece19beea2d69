"""Command-line interface. It parses, calls the library and writes; no pipeline logic here."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from .errors import LatentVideoError

app = typer.Typer(
    help="latentvideo: a few still images in, a short video out, through a GAN's latent space.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(help="Train the networks: the frame GAN, P-NET and the digit classifier.", no_args_is_help=True)
dataset_app = typer.Typer(help="Write datasets in the standard [T, N, H, W] uint8 layout.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(dataset_app, name="dataset")

_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on unexpected errors.")):
    _state["debug"] = debug


def _fail(message: str, hint: str | None = None):
    raise LatentVideoError(message, hint)


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
    from .data import moving_mnist, write_sequences

    if out.suffix not in (".npy", ".npz"):
        _fail(f"unknown output extension {out.suffix!r}", "use .npy or .npz")
    mm = moving_mnist(sequences, frames, digits, size, split=split, seed=seed)
    write_sequences(out, mm.video, mm.labels if out.suffix == ".npz" else None)
    typer.echo(f"wrote {out}  uint8 {list(mm.video.shape)}  ({split} digits, seed {seed})")


# ------------------------------------------------------------------ train


@train_app.command("gan")
def train_gan_cmd(
    out: Path | None = typer.Option(None, "--out", help="New run directory (e.g. runs/mm64)."),
    resume: Path | None = typer.Option(None, "--resume", help="Continue the run in this directory."),
    data: str = typer.Option("moving-mnist", help="moving-mnist, a folder of images, a video or a .npy/.npz file."),
    steps: int | None = typer.Option(None, help="Total generator steps of the run [default: 20000]."),
    batch_size: int = typer.Option(64, help="Frames per critic step (split across torchrun ranks)."),
    n_critic: int = typer.Option(2, help="Critic steps per generator step."),
    width: int = typer.Option(32, help="Network width (channels of the outer blocks)."),
    z_dim: int = typer.Option(256, help="Latent size."),
    lr: float = typer.Option(2e-4, help="Adam learning rate of G and C."),
    ema: float = typer.Option(0.999, help="EMA decay of G (0 disables)."),
    digits: int = typer.Option(2, help="Digits per Moving MNIST frame."),
    resize: int | None = typer.Option(None, help="Rescale your own images to this size (32, 64 or 128)."),
    checkpoint_every: int = typer.Option(500, help="Checkpoint, sample grid and model export every N steps."),
    seed: int = typer.Option(0),
    device: str = typer.Option("auto", help="auto (CUDA if present), cpu, cuda, cuda:N."),
    stop_after: int | None = typer.Option(None, help="Stop (with a checkpoint) after this total step; resume later."),
):
    """Train the frame GAN with WGAN-GP, checkpointing atomically; resumable.

    Examples:
      latentvideo train gan --out runs/mm64 --steps 20000
      latentvideo train gan --resume runs/mm64
      latentvideo train gan --out runs/mine --data frames/ --resize 64
      torchrun --nproc_per_node=2 -m latentvideo.cli train gan --out runs/ddp
    """
    from .train import GANConfig, train_gan

    if (out is None) == (resume is None):
        _fail("give exactly one of --out (new run) or --resume (existing run)")
    if resume is not None:
        cfg = None
        if steps is not None:
            import json

            cfg_file = resume / "config.json"
            if not cfg_file.is_file():
                _fail(f"not a training run (no config.json): {resume}")
            cfg = GANConfig(**{**json.loads(cfg_file.read_text()), "steps": steps})
        run = train_gan(resume, cfg, resume=True, device=device, stop_after=stop_after)
    else:
        cfg = GANConfig(
            data=data,
            steps=steps or GANConfig.steps,
            batch_size=batch_size,
            n_critic=n_critic,
            width=width,
            z_dim=z_dim,
            lr_g=lr,
            lr_c=lr,
            ema=ema,
            num_digits=digits,
            resize=resize,
            checkpoint_every=checkpoint_every,
            seed=seed,
        )
        run = train_gan(out, cfg, device=device, stop_after=stop_after)
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"run: {run}  (generator/, critic/, samples/, stats.jsonl)")


# ------------------------------------------------------------------ entry point


def main(argv: list[str] | None = None) -> int:
    """Console entry point: project errors -> one line + exit 2; anything else -> exit 1."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False)
    except LatentVideoError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 0
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except Exception as e:
        # usage errors from typer's (vendored) click: print them the click way, exit 2
        if hasattr(e, "show") and hasattr(e, "exit_code"):
            e.show()
            return 2
        if type(e).__name__ == "Abort":
            return 130
        if debug:
            raise
        typer.echo(f"error: unexpected {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
