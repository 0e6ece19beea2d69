"""Command-line interface. It parses, calls the library and writes; no pipeline logic here.

The typer apps are in cli_app.py and the `dataset` and `train` commands in cli_train.py; the other commands
and the entry point, `main`, are here."""

from __future__ import annotations

import functools
import inspect
import math
import sys
import time
from pathlib import Path

import numpy as np
import typer

from ..errors import LatentVideoError
from ..options import schema
from . import cli_train  # noqa: F401 - registers the dataset and train commands
from .cli_app import _fail, app
from .generate_io import (
    check_clip_args,
    check_clip_output,
    generate_clip,
    generate_manifest,
    parse_floats,
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

_MODEL_HELP = (
    "A shipped model by name (moving-mnist-64, the default), or a model folder with generator/ and critic/ "
    "(a training run works)."
)


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
    model: Path | None = typer.Option(None, help=_MODEL_HELP),
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
      latentvideo generate a.png b.png c.png --times 0,9,19 --frames 20 --out clip.mp4 --critic-steps 5
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
    model: Path | None = typer.Option(None, help=_MODEL_HELP),
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
    model: Path | None = typer.Option(None, help=_MODEL_HELP),
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
def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Output folder."),
    sequences: int = typer.Option(4, help="Held-out test sequences to animate."),
    seed: int = typer.Option(0, help="Which test sequences (their synthesis seed)."),
    model: Path | None = typer.Option(None, help=_MODEL_HELP),
    device: str = typer.Option("auto"),
):
    """Run a model on held-out test sequences: GIF + MP4 per clip and a contact sheet.

    Keyframes are frames 0, 9 and 19 of each sequence; the sheet shows truth, generated and crossfade rows.
    A gray model animates Moving MNIST test digits, a colour model Moving Shapes test clips.

    Examples:
      latentvideo demo --sequences 4 --seed 0 --out demo
      latentvideo demo --model moving-shapes --out demo-shapes
    """
    from ..pipeline import load_pipeline
    from .demo import run_demo

    if not 1 <= sequences <= 64:
        _fail(f"--sequences must be between 1 and 64, got {sequences}")
    if out.exists() and not out.is_dir():
        _fail(f"--out must be a folder, got a file: {out}")
    t0 = time.perf_counter()
    pipe = load_pipeline(model, device)
    t_load = time.perf_counter() - t0
    clips, sheet, timings = run_demo(pipe, out, sequences, seed)
    for i, c in enumerate(clips):
        errs = ", ".join(f"{e:.4f}" for e in c.keyframe_errors)
        typer.echo(f"sequence {i}: {c.gif}  {c.mp4}")
        typer.echo(f"  keyframe reconstruction MSE/pixel: {errs}")
        typer.echo(f"  in-between MSE/pixel vs truth: {c.mse:.4f}  (pixel crossfade: {c.crossfade_mse:.4f})")
    typer.echo(f"contact sheet: {sheet}")
    stages = "  ".join(f"{k} {v:.2f}" for k, v in timings.items())
    typer.echo(f"seconds per clip: {stages}   (model load {t_load:.2f} s)")


@app.command()
def bench(
    out: Path = typer.Option(Path("bench-out"), "--out", help="Folder for results.json, report.md and plots."),
    data: str | None = typer.Option(
        None,
        help="moving-shapes (colour shapes over photographs; default model: the shipped moving-shapes), or a gray "
        "[T, N, H, W] .npy/.npz (optional labels) instead of synthesised Moving MNIST.",
    ),
    sequences: int = typer.Option(200, help="Held-out test sequences."),
    keyframes: str = typer.Option("0,9,19", help="Keyframe indices of the main task."),
    seed: int = typer.Option(0, help="Seed of the synthesised test sequences."),
    quick: bool = typer.Option(False, "--quick", help="20 sequences, fewer ablations: a few minutes on 2 CPU cores."),
    slow_subset: int = typer.Option(20, help="Sequences for the per-image scipy rows."),
    ablation_sequences: int | None = typer.Option(
        None, help="Score the ablation rows on the first N sequences only (default: all)."
    ),
    groups: str | None = typer.Option(
        None,
        help="Only these groups of pipeline rows, comma-separated: inversion, pca, degree, critic, path, motion, "
        "objects (a generator with position coordinates), original, or none (the default row and the baselines "
        "always run).",
    ),
    rows: str | None = typer.Option(
        None,
        help="Only these pipeline rows, by name, separated by ';' (baselines always run; the default row only "
        "when named: 'pipeline (default)').",
    ),
    dynamics: str = typer.Option(
        "bounce", help="Motion of the synthesised sequences: bounce (Moving MNIST) or held-out (arcs and gravity)."
    ),
    extra_keyframes: bool = typer.Option(
        True, "--extra-keyframes/--main-keyframes-only", help="Also score keyframes 0,19 and 0,4,9,14,19."
    ),
    model: Path | None = typer.Option(None, help=_MODEL_HELP),
    classifier: Path | None = typer.Option(
        None, help="Identity classifier model dir (digits, or shapes for moving-shapes; default: beside the model)."
    ),
    device: str = typer.Option("auto"),
):
    """Benchmark the pipeline, its ablations and the baselines on held-out test sequences.

    Writes results.json, report.md, per_frame.png and examples.png.

    Examples:
      latentvideo bench --quick --out bench-out
      latentvideo bench --sequences 200 --keyframes 0,9,19 --out bench-out
      latentvideo bench --sequences 200 --ablation-sequences 50 --out bench-out
      latentvideo bench --sequences 200 --groups motion,critic --out bench-out
      latentvideo bench --sequences 40 --groups none --model runs/mine --out bench-out
      latentvideo bench --rows 'motion prior off;critic off' --out bench-out
      latentvideo bench --sequences 200 --dynamics held-out --groups none --out bench-heldout
      latentvideo bench --data moving-shapes --sequences 200 --groups none --out bench-shapes
    """
    from ..data import DYNAMICS
    from ..evaluation.bench import ROW_GROUPS, BenchConfig, load_classifier, row_names, run_benchmark
    from ..pipeline import load_pipeline

    if out.exists() and not out.is_dir():
        _fail(f"--out must be a folder, got a file: {out}")
    keys = tuple(int(k) for k in parse_floats(keyframes, "--keyframes"))
    n = min(sequences, 20) if quick else sequences
    if n < 2:
        _fail(f"--sequences must be at least 2, got {sequences}")
    if slow_subset < 1:
        _fail(f"--slow-subset must be at least 1, got {slow_subset}")
    if ablation_sequences is not None and ablation_sequences < 2:
        _fail(f"--ablation-sequences must be at least 2, got {ablation_sequences}")
    group_list = None
    if groups is not None:
        names = tuple(g.strip() for g in groups.split(",") if g.strip())
        group_list = () if names == ("none",) else names  # none: the default row and the baselines only
        unknown = sorted(set(group_list) - set(ROW_GROUPS))
        if unknown or not names:
            _fail(f"--groups: unknown row group(s) {', '.join(unknown) or repr(groups)}", ", ".join(ROW_GROUPS))
    row_list = None
    if rows is not None:
        row_list = tuple(r.strip() for r in rows.split(";") if r.strip())
        unknown = sorted(set(row_list) - set(row_names()))
        if unknown or not row_list:
            _fail(f"--rows: unknown row name(s) {', '.join(map(repr, unknown)) or repr(rows)}", "; ".join(row_names()))
    cfg = BenchConfig(
        sequences=n,
        groups=group_list,
        rows=row_list,
        seed=seed,
        keyframes=keys,
        quick=quick,
        slow_subset=slow_subset,
        ablation_sequences=ablation_sequences,
        data=data or None,
        dynamics=dynamics,
    )
    if not extra_keyframes:
        cfg.extra_keyframes = ()
    if dynamics not in DYNAMICS:
        _fail(f"--dynamics: unknown {dynamics!r}", ", ".join(DYNAMICS))
    if data is not None and dynamics != "bounce":
        _fail("--dynamics chooses synthesised motion; --data sequences keep their own")
    if data == "moving-shapes" and model is None:
        from ..pipeline import shipped_models

        if "moving-shapes" not in shipped_models():
            _fail("no colour model is shipped for --data moving-shapes", hint="pass --model DIR")
        model = Path("moving-shapes")
    elif data is not None and data != "moving-shapes" and not Path(data).is_file():
        _fail(f"--data: no such file or data name {data!r}", hint="moving-shapes, or a .npy/.npz file")
    pipe = load_pipeline(model, device)
    clf = load_classifier(classifier, model, data if data == "moving-shapes" else None).to(pipe.device)
    results = run_benchmark(cfg, pipe, clf, out)
    from ..evaluation.bench import report_markdown

    typer.echo(report_markdown(results))
    typer.echo(f"wrote {out}/results.json, report.md, per_frame.png, examples.png")


@app.command()
def ppl(
    models: list[Path] | None = typer.Argument(
        None, help="Model folders or training runs (default: the shipped model)."
    ),
    samples: int = typer.Option(256, help="Sampled pairs (the full benchmark uses 256)."),
    eps: float = typer.Option(1e-4, help="Step along each path."),
    seed: int = typer.Option(0),
    classifier: Path | None = typer.Option(None, help="Digit classifier model dir (default: the shipped one)."),
    device: str = typer.Option("auto"),
):
    """Perceptual path length of generators, in the digit classifier's feature space (lower is smoother).

    Every model is measured with the same classifier, so the numbers compare.

    Examples:
      latentvideo ppl
      latentvideo ppl runs/mm64 runs/mm64-pl --samples 256
    """
    from ..evaluation.bench import load_classifier, measure_smoothness
    from ..models import resolve_device
    from ..pipeline import load_pipeline

    if samples < 2:
        _fail(f"--samples must be at least 2, got {samples}")
    if not (math.isfinite(eps) and eps > 0):
        _fail(f"--eps must be a positive number, got {eps}")
    clf = load_classifier(classifier, None).to(resolve_device(device))
    for model in models or [None]:
        result = measure_smoothness(load_pipeline(model, device), clf, samples, eps, seed)
        for space in ("z", "w"):  # w only with a mapping network
            if f"ppl_{space}" in result:
                value = result[f"ppl_{space}"]
                typer.echo(f"{model or 'shipped model'}  PPL ({space}, {samples} samples, eps {eps:g}): {value:.1f}")


@app.command()
def serve(
    port: int = typer.Option(7860, help="Port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; the default is reachable from this machine only."),
    model: Path | None = typer.Option(None, help=_MODEL_HELP),
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
        typer.echo(f"error: unexpected {type(e).__name__}: {e} (run with --debug for the traceback)", err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
