"""The input and output of `latentvideo generate` (apps/cli.py): its argument checks, where the keyframes
come from (image files, or frames of a [T, N, H, W] sequence file with `--from`), the manifest hand-off,
writing the clip and the report it prints. Every user mistake raises a `LatentVideoError` whose message
names the flag; the command itself only parses and calls these in order."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer

from ..errors import LatentVideoError


def _fail(message: str, hint: str | None = None):
    raise LatentVideoError(message, hint)


def parse_floats(text: str | None, what: str) -> list[float] | None:
    """'0,9,19' -> [0.0, 9.0, 19.0]; None or '' -> None. `what` names the flag in errors."""
    if text is None or text == "":
        return None
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        _fail(f"{what} must be comma-separated numbers, got {text!r}")
    if not all(np.isfinite(values)):
        _fail(f"{what} must be finite numbers, got {text!r}")
    return values


def check_clip_args(frames: int, fps: int) -> None:
    """--frames and --fps, checked before anything else (for one clip and a manifest alike)."""
    from ..pipeline import MAX_FRAMES

    if not 2 <= frames <= MAX_FRAMES:
        _fail(f"--frames must be between 2 and {MAX_FRAMES}, got {frames}")
    if fps < 1:
        _fail(f"--fps must be at least 1, got {fps}")


def generate_manifest(
    manifest: Path,
    out_dir: Path | None,
    model,
    device: str,
    frames: int,
    options: dict,
    *,
    fps: int,
    resize: bool,
    batch_rows: int,
    on_error: str,
    single_clip_args: bool,
) -> None:
    """`generate --manifest`: check the manifest flags, then render every row (apps/batch.py).
    `single_clip_args`: keyframes, --out, --from or --times were given too (an error)."""
    from ..pipeline import load_pipeline
    from .batch import run_manifest

    if single_clip_args:
        _fail("with --manifest, keyframes, times and outputs come from the CSV", "drop --out, --from, --times")
    if batch_rows < 1:
        _fail(f"--batch-rows must be at least 1, got {batch_rows}")
    if on_error not in ("stop", "skip"):
        _fail(f"--on-error must be stop or skip, got {on_error!r}")
    run_manifest(
        load_pipeline(model, device),
        manifest,
        out_dir,
        frames,
        options,
        fps=fps,
        resize=resize,
        batch_rows=batch_rows,
        on_error=on_error,
        echo=typer.echo,
    )


def check_clip_output(out: Path | None, out_dir: Path | None) -> None:
    """One clip: --out is given, writable and of a known format; --out-dir is a manifest flag."""
    from ..render import check_output_path

    if out_dir is not None:
        _fail("--out-dir goes with --manifest", "use --out for one clip")
    if out is None:
        _fail("missing --out", "e.g. --out clip.gif")
    check_output_path(out)


@dataclass
class KeyframeSource:
    """The keyframes of one clip, before the model sees them."""

    images: list  # image paths, or uint8 frames [K, H, W(, 3)] of a sequence file
    names: list[str]  # how the report names each keyframe
    times: list[float] | None  # keyframe times (None: evenly spaced)
    truth: np.ndarray | None = None  # the whole sequence (--from), shown under the clip in a contact sheet


def read_keyframe_source(
    keyframes: list[Path] | None, from_file: Path | None, sequence: int, keyframe_index: str, times: str | None
) -> KeyframeSource:
    """The keyframe images given on the command line, or (--from) frames of one sequence of a file."""
    times_list = parse_floats(times, "--times")
    if from_file is not None:
        if keyframes:
            _fail("give keyframe images or --from, not both")
        return keyframes_from_file(from_file, sequence, keyframe_index, times_list)
    if not keyframes:
        _fail("no keyframes given", "latentvideo generate a.png b.png c.png --out clip.gif")
    return KeyframeSource([str(k) for k in keyframes], [str(k) for k in keyframes], times_list)


def keyframes_from_file(
    from_file: Path, sequence: int, keyframe_index: str, times_list: list[float] | None
) -> KeyframeSource:
    """--from FILE --sequence N --keyframes 0,9,19: those frames of sequence N; their indices are the times
    unless --times says otherwise."""
    from ..data import read_sequences

    video = read_sequences(from_file)
    if not 0 <= sequence < video.shape[1]:
        _fail(f"--sequence {sequence} out of range: {from_file} holds {video.shape[1]} sequences")
    idx_f = parse_floats(keyframe_index, "--keyframes") or []
    if any(v != int(v) for v in idx_f):
        _fail(f"--keyframes must be whole frame indices, got {keyframe_index!r}")
    idx = [int(v) for v in idx_f]
    if any(not 0 <= i < video.shape[0] for i in idx):
        _fail(f"--keyframes {keyframe_index} out of range: sequences have {video.shape[0]} frames")
    times_list = times_list or [float(i) for i in idx]
    return KeyframeSource(video[idx, sequence], [f"t={i}" for i in idx], times_list, video[:, sequence])


def generate_clip(pipe, source: KeyframeSource, frames: int, resize: bool, options: dict):
    """The keyframes in the model's layout, then the pipeline: a `Clip`."""
    from ..pipeline import prepare_keyframes

    k = prepare_keyframes(source.images, pipe.channels, pipe.resolution, resize=resize)
    if len(k) < 2:
        _fail(f"need at least 2 keyframes, got {len(k)}")
    return pipe(k, source.times, frames, **options)


def write_generated(out: Path, clip, frames: int, fps: int, truth: np.ndarray | None = None) -> None:
    """Write the clip (its format from the extension); a contact sheet of a --from clip gets the
    ground-truth row under it when the lengths match."""
    from ..render import to_uint8, write_clip

    rows, labels = None, None
    if truth is not None and out.suffix == ".png" and len(truth) == frames:
        rows, labels = [truth], ["generated", "truth"]
    key_cols = [int(round(t)) for t in clip.times]
    write_clip(out, to_uint8(clip.frames), fps=fps, keyframes=key_cols, rows=rows, labels=labels)


def print_generated(out: Path, frames: int, clip, names) -> None:
    """What was written, then each keyframe's reconstruction error and the seconds per stage."""
    typer.echo(f"wrote {out}  ({frames} frames, keyframes at {', '.join(f'{t:g}' for t in clip.times)})")
    print_clip_report(clip, names)


def print_clip_report(clip, names) -> None:
    for name, err in zip(names, clip.keyframe_errors.tolist()):
        typer.echo(f"  keyframe {name}: reconstruction MSE/pixel {err:.5f}")
    typer.echo("  seconds: " + "  ".join(f"{k} {v:.2f}" for k, v in clip.timings.items()))
