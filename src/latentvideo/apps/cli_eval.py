"""The commands that run a model on held-out test sequences and score it: `demo` (clips and a contact
sheet), `bench` (the pipeline, its ablations and the baselines), `compare` (two bench rows, paired clip by
clip) and `ppl` (perceptual path length)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import typer

from .cli_app import MODEL_HELP, _fail, app
from .generate_io import parse_floats


@app.command()
def demo(
    out: Path = typer.Option(Path("demo"), "--out", help="Output folder."),
    sequences: int = typer.Option(4, help="Held-out test sequences to animate."),
    seed: int = typer.Option(0, help="Which test sequences (their synthesis seed)."),
    model: Path | None = typer.Option(None, help=MODEL_HELP),
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
    model: Path | None = typer.Option(None, help=MODEL_HELP),
    classifier: Path | None = typer.Option(
        None, help="Identity classifier model dir (digits, or shapes for moving-shapes; default: beside the model)."
    ),
    device: str = typer.Option("auto"),
):
    """Benchmark the pipeline, its ablations and the baselines on held-out test sequences.

    Writes results.json (every row's metrics with intervals, per frame, and per sequence), report.md,
    per_frame.png and examples.png.

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
def compare(
    a: Path = typer.Argument(..., help="Bench folder (or its results.json) of row A."),
    b: Path | None = typer.Argument(None, help="Bench folder of row B (default: the same run as A)."),
    row: str = typer.Option("pipeline (default)", "--row", help="Row A's name."),
    row_b: str | None = typer.Option(None, "--row-b", help="Row B's name (default: --row)."),
    keyframes: str | None = typer.Option(None, help="Keyframe set, e.g. 0,19 (default: the run's main set)."),
    boot: int = typer.Option(2000, help="Bootstrap draws over clips."),
):
    """Compare two benchmark rows clip by clip: B - A per metric, with a paired 95 % interval.

    Both rows must be scored on the same test sequences: two bench runs with the same --data, --seed,
    --dynamics and --sequences (e.g. two models, or the default against a --rows variant), or two rows of
    one run. Pairing removes what both rows share (which clips are hard), so the interval of the difference
    is far narrower than the two rows' own intervals. Then the rows' seconds per clip, and, for two runs, their
    ratio at equal machine speed (each run times a fixed workload when it starts and ends: a CPU's speed drifts).

    Examples:
      latentvideo compare bench-old bench-new
      latentvideo compare bench-out --row-b 'refit off'
      latentvideo compare bench-a bench-b --row 'pipeline (default)' --keyframes 0,19
    """
    from ..evaluation.compare import check_same_sequences, compare_markdown, compare_rows, find_row, load_results
    from ..evaluation.machine import normalised_speed

    if boot < 100:
        _fail(f"--boot must be at least 100, got {boot}")
    keys = parse_floats(keyframes, "--keyframes")
    keyframes = None if keys is None else ",".join(str(int(k)) for k in keys)
    ra = load_results(a)
    rb = ra if b is None else load_results(b)
    if b is not None:
        check_same_sequences(ra, rb)
    name_b = row if row_b is None else row_b
    if b is None and name_b == row:
        _fail("compare needs two rows: pass a second bench folder or --row-b")
    row_a, row_b_rec = find_row(ra, row, keyframes), find_row(rb, name_b, keyframes)
    diffs = compare_rows(row_a, row_b_rec, n_boot=boot)
    typer.echo(compare_markdown(diffs, f"{row} ({a})", f"{name_b} ({b or a})"))
    speed = normalised_speed(ra, row_a, rb, row_b_rec)
    if speed:
        typer.echo("\n" + speed)


PPL_LINES = (
    ("ppl_z", "z"),
    ("ppl_w", "w"),
    ("ppl_z_positions", "z, positions alone"),
    ("ppl_z_appearance", "z, all but positions"),
)


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

    Every model is measured with the same classifier, so the numbers compare. A generator with position
    coordinates draws its paths from its own prior and also reports paths that move its positions alone (its
    objects translate) and all but its positions.

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
        for key, what in PPL_LINES:  # w only with a mapping network, the parts only with position coordinates
            if key in result:
                typer.echo(
                    f"{model or 'shipped model'}  PPL ({what}, {samples} samples, eps {eps:g}): {result[key]:.1f}"
                )
