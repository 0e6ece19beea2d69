"""Command-line interface. It parses, calls the library and writes; no pipeline logic here.

The typer apps are in cli_app.py, the `dataset` and `train` commands in cli_train.py and `demo`, `bench` and
`ppl` in cli_eval.py; the other commands and the entry point, `main`, are here."""

from __future__ import annotations

import functools
import inspect
import sys
from pathlib import Path

import numpy as np
import typer

from ..errors import LatentVideoError, reason
from ..options import schema
from . import cli_eval, cli_train  # noqa: F401 - register the demo/bench/ppl, dataset and train commands
from .cli_app import MODEL_HELP, _fail, app
from .generate_io import (
    check_clip_args,
    check_clip_output,
    generate_clip,
    generate_manifest,
    print_generated,
    read_keyframe_source,
    write_generated,
)

# ------------------------------------------------------------------ export


@app.command("export")
def export_cmd(
    run: Path = typer.Argument(..., help="A GAN training run directory."),
    out: Path = typer.Option(..., "--out", help="Model folder to write generator/ and critic/ into."),
    weights: str = typer.Option("raw", help="raw (the latest G) or ema (its moving average)."),
):
    """Export a run's checkpoint as model folders (generator/, critic/), e.g. to ship or compare.

    Example:  latentvideo export runs/mm64 --out models/mm64 --weights raw
    """
    from ..training.gan import export_checkpoint

    path = export_checkpoint(run, out, weights)
    typer.echo(f"wrote {path}/generator, {path}/critic ({weights} weights)")


# ------------------------------------------------------------------ generate / invert


def _parse_fraction(text: str, flag: str) -> float | None:
    if text.lower() in ("off", "none"):
        return None
    try:
        return float(text)
    except ValueError:
        _fail(f"{flag} must be a number in (0, 1] or 'off', got {text!r}")


def with_pipeline_options(command):
    """Give a command one flag per pipeline option (options.schema, API-only fields aside), with the
    schema's help text; the command receives the flags that were given as `options` (a dict of Options
    fields). So the flags, the web page's controls and the library's validation share one definition."""
    params = [p for p in inspect.signature(command).parameters.values() if p.name != "options"]
    extra = []
    for name, k in schema(include_api_only=False).items():
        flag = "--" + name.replace("_", "-")
        help_text = k.help
        if k.kind == "bool":
            decl, ann = typer.Option(None, f"{flag}/--no-{flag[2:]}", help=help_text), bool | None
        else:
            ann = {"int": int | None, "float": float | None, "speed": float | None}.get(k.kind, str | None)
            decl = typer.Option(None, flag, help=help_text + (" ('off' disables)" if k.kind == "fraction" else ""))
        extra.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=decl, annotation=ann))

    @functools.wraps(command)
    def wrapper(**kwargs):
        given = {n: kwargs.pop(n, None) for n in schema(include_api_only=False)}
        given = {n: v for n, v in given.items() if v is not None}
        for n, v in given.items():
            if schema()[n].kind == "fraction":
                given[n] = _parse_fraction(v, "--" + n.replace("_", "-"))
        return command(**kwargs, options=given)

    wrapper.__signature__ = inspect.Signature(params + extra)
    return wrapper


def flag_error(e: LatentVideoError) -> str:
    """An error as the command line reports it: an option's name becomes its flag."""
    text = str(e)
    name = getattr(e, "name", None)
    return text.replace(name, "--" + name.replace("_", "-"), 1) if name else text


@app.command()
@with_pipeline_options
def generate(
    keyframes: list[Path] | None = typer.Argument(None, help="Keyframe images, in time order."),
    out: Path | None = typer.Option(None, "--out", help="clip.gif, clip.mp4, clip.png (contact sheet) or clip.npy."),
    times: str | None = typer.Option(None, help="Keyframe times as frame indices, e.g. 0,9,19 (default: even)."),
    frames: int = typer.Option(20, help="Frames in the clip."),
    model: Path | None = typer.Option(None, help=MODEL_HELP),
    fps: int = typer.Option(10, help="Frames per second of GIF/MP4."),
    resize: bool = typer.Option(False, help="Rescale keyframes to the model's size."),
    from_file: Path | None = typer.Option(None, "--from", help="Take keyframes from a [T, N, H, W] .npy/.npz."),
    sequence: int = typer.Option(0, help="With --from: which sequence."),
    keyframe_index: str = typer.Option("0,9,19", "--keyframes", help="With --from: which frames are keyframes."),
    manifest: Path | None = typer.Option(None, help="CSV with columns keyframes (paths joined by ';'), times, out."),
    out_dir: Path | None = typer.Option(None, help="With --manifest: folder for relative outputs."),
    batch_rows: int = typer.Option(
        16, help="With --manifest: rows projected and rendered together (outputs never depend on torchrun's size)."
    ),
    on_error: str = typer.Option(
        "stop",
        "--on-error",
        help="With --manifest: 'stop' at the first bad row before anything is rendered, or 'skip' bad rows (each "
        "reported), render the rest and exit 2 with a summary. Finished clips are journalled, so a rerun renders "
        "only what is missing or changed.",
    ),
    device: str = typer.Option("auto"),
    options: dict | None = None,
):
    """Make a clip from keyframe images. The pipeline flags (--method ... --unwrap) default to the model's
    own defaults (the shipped model's are measured: BENCHMARK.md).

    Examples:
      latentvideo generate a.png b.png c.png --out clip.gif
      latentvideo generate a.png b.png c.png --times 0,9,19 --frames 20 --out clip.mp4 --critic pixel
      latentvideo generate --from mm_test.npy --sequence 3 --keyframes 0,9,19 --out clip.png
      latentvideo generate a.png b.png c.png --path line --pca 0.99 --out clip.gif
      latentvideo generate --from mm_test.npy --keyframes 0,19 --motion-speed 3.6 --out c.gif
      latentvideo generate --manifest jobs.csv --out-dir clips/ --on-error skip
      torchrun --standalone --nproc_per_node=2 -m latentvideo.cli generate --manifest jobs.csv --out-dir clips/
    """
    from ..pipeline import load_pipeline

    check_clip_args(frames, fps)
    if manifest is not None:
        given = bool(keyframes) or out is not None or from_file is not None or times is not None
        return generate_manifest(manifest, out_dir, model, device, frames, options or {}, fps=fps, resize=resize,
                                 batch_rows=batch_rows, on_error=on_error, single_clip_args=given)  # fmt: skip
    check_clip_output(out, out_dir)
    source = read_keyframe_source(keyframes, from_file, sequence, keyframe_index, times)
    clip = generate_clip(load_pipeline(model, device), source, frames, resize, options or {})
    write_generated(out, clip, frames, fps, source.truth)
    print_generated(out, frames, clip, source.names)


@app.command("invert")
def invert_cmd(
    images: list[Path] = typer.Argument(..., help="Images to project into latent space."),
    out: Path = typer.Option(..., "--out", help="Output .npz with latents, errors and reconstructions."),
    model: Path | None = typer.Option(None, help=MODEL_HELP),
    method: str | None = typer.Option(None, help="pnet, lbfgs, pnet+lbfgs (default) or scipy."),
    steps: int = typer.Option(50, help="L-BFGS iterations."),
    prior_weight: float = typer.Option(0.0, help="Weight of the latent prior mean(z^2)."),
    resize: bool = typer.Option(False, help="Rescale images to the model's size."),
    device: str = typer.Option("auto"),
):
    """Project images into the generator's latent space (batched).

    Example:  latentvideo invert a.png b.png --out latents.npz
    """
    from ..fileio import atomic_path
    from ..invert import invert
    from ..pipeline import load_pipeline, prepare_keyframes

    if out.suffix != ".npz":
        _fail(f"unknown output extension {out.suffix!r}", "use .npz")
    from ..fileio import check_writable

    check_writable(out)
    pipe = load_pipeline(model, device)
    method = method or pipe.default_options().method
    x = prepare_keyframes([str(p) for p in images], pipe.channels, pipe.resolution, resize=resize)
    inv = invert(
        pipe.generator,
        x.to(pipe.device),
        method,
        pipe.projector,
        steps=steps,
        prior_weight=prior_weight,
        z_dim=pipe.z_dim,
    )
    recon = (inv.reconstructions.clamp(0, 1) * 255).round().byte().cpu().numpy()
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                latents=inv.latents.cpu().numpy(),
                errors=inv.errors.cpu().numpy(),
                reconstructions=recon,
                names=np.array([str(p) for p in images]),
            )
    for p, e in zip(images, inv.errors.tolist()):
        typer.echo(f"  {p}: reconstruction MSE/pixel {e:.5f}")
    typer.echo(f"wrote {out}  latents {list(inv.latents.shape)}  ({inv.seconds:.2f} s)")


@app.command("render")
def render_cmd(
    latents: Path = typer.Argument(..., help="A .npz holding `latents` [T, z_dim] (as `invert` writes) or a .npy."),
    out: Path = typer.Option(..., "--out", help="clip.gif, clip.mp4, clip.png (contact sheet) or clip.npy."),
    model: Path | None = typer.Option(None, help=MODEL_HELP),
    fps: int = typer.Option(10, help="Frames per second of GIF/MP4."),
    device: str = typer.Option("auto"),
):
    """Render latents, one frame per row, with the generator into a clip.

    Example:  latentvideo render latents.npz --out clip.gif
    """
    from ..data import read_latents
    from ..pipeline import MAX_FRAMES, load_pipeline
    from ..render import check_output_path, render, to_uint8, write_clip

    check_output_path(out)
    z = read_latents(latents)
    if len(z) > MAX_FRAMES:
        _fail(f"{latents} holds {len(z)} latents, the cap is {MAX_FRAMES} frames")
    pipe = load_pipeline(model, device)
    write_clip(out, to_uint8(render(pipe.generator, z)), fps=fps)
    typer.echo(f"wrote {out}  ({len(z)} frames)")


@app.command()
def serve(
    port: int = typer.Option(7860, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; the default is reachable from this machine only."),
    model: Path | None = typer.Option(None, help=MODEL_HELP),
    device: str = typer.Option("auto"),
    concurrency: int = typer.Option(
        1,
        help="Clips rendered at once. One render already uses every CPU core, so on a small machine (2 cores) "
        "more than 1 only helps when cores are spare (a GPU model, nothing else running); otherwise each "
        "clip just takes longer.",
    ),
    max_queue: int = typer.Option(
        16,
        "--max-queue",
        help="Requests that may wait for a turn; past that a visitor is told the server is busy and to try "
        "again (uploads are checked first, so a bad one is answered at once).",
    ),
):
    """Serve a local web page: upload keyframes (or sample a test sequence), watch the clip. The page's
    model picker offers --model and every shipped model.

    Needs the web extra:  pip install 'latentvideo\\[web]'.  Makes no outside calls.

    Example:  latentvideo serve --port 7860   (then open http://127.0.0.1:7860)
    """
    from .web import serve as serve_web

    serve_web(model, host, port, device, concurrency=concurrency, max_queue=max_queue)


# ------------------------------------------------------------------ entry point


def main(argv: list[str] | None = None) -> int:
    """Console entry point: project errors -> one line + exit 2; anything else -> exit 1."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False)
    except LatentVideoError as e:
        typer.echo(f"error: {flag_error(e)}", err=True)
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
        typer.echo(f"error: unexpected {reason(e)} (run with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
