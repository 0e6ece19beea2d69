"""The web page's work, without Gradio: check a request, render it, describe the result.

`check_request` checks everything a user can get wrong (frame count, uploads, times, settings) before
a request waits for the pipeline; `render` runs the pipeline on a checked request and writes the clip,
its contact sheet and downloads into a folder; `run_generation` is the two in a row (what the tests and
scripts call). `report_markdown` and `error_markdown` are the page's result and error texts.
"""

from __future__ import annotations

import html
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import to_frames
from ..errors import LatentVideoError
from ..render import contact_sheet, to_uint8, write_clip, write_png
from .web_models import SAMPLE_FRAMES
from .web_requests import ServerBusy, check_uploads, load_keyframes, parse_times

MAX_WEB_FRAMES = 240  # the CLI allows more; a page request should stay short
FPS = 10


def _truth_frames(truth: np.ndarray, channels: int, resolution: int) -> np.ndarray:
    """uint8 [T, H, W] (or [T, H, W, 3]) ground truth -> the model's frame layout for display."""
    frames = to_frames(list(truth), channels, resolution, resize=True)  # [T, C, H, W] uint8
    return to_uint8(torch.from_numpy(frames).float() / 255)


@dataclass
class CheckedRequest:
    """A request that passed every check that does not need the pipeline's turn."""

    paths: list[Path]  # the uploaded keyframes, in time order
    times: list[float] | None  # None: evenly spaced
    frames: int
    keyframes: torch.Tensor  # float [K, C, H, W] in [0, 1], the model's size
    opts: dict  # Options overrides
    t_start: float  # time.perf_counter() when the check began
    queued: float = 0.0  # seconds it then waited for its turn (reported when it matters)


def check_request(
    pipe, files, times: str | Sequence[float] | None = None, frames: int = SAMPLE_FRAMES, *, resize=True, **opts
) -> CheckedRequest:
    """Everything a user can get wrong, checked before the request waits for the pipeline: the frame
    count, the uploads (count, type, size, then decoded), the times and the settings. Fast (no
    rendering); raises `LatentVideoError`."""
    t_start = time.perf_counter()
    try:
        frames = int(frames)
    except (TypeError, ValueError):
        raise LatentVideoError(f"number of frames must be a whole number, got {frames!r}") from None
    if not 2 <= frames <= MAX_WEB_FRAMES:
        raise LatentVideoError(f"number of frames must be between 2 and {MAX_WEB_FRAMES}, got {frames}")
    paths = check_uploads(files)
    time_list = parse_times(times) if isinstance(times, (str, type(None))) else [float(t) for t in times]
    options = pipe.options(**opts)  # bad settings fail before any decoding
    keyframes = load_keyframes(paths, pipe.channels, pipe.resolution, resize=resize)
    pipe.check_inputs([keyframes], [time_list], frames, options)  # times vs keyframes, degree vs count
    return CheckedRequest(paths, time_list, frames, keyframes, dict(opts), t_start)


def run_generation(
    pipe,
    files,
    times: str | Sequence[float] | None = None,
    frames: int = SAMPLE_FRAMES,
    *,
    resize: bool = True,
    truth: np.ndarray | None = None,
    out_dir: str | Path | None = None,
    fps: float = FPS,
    **opts,
) -> dict:
    """Uploaded keyframe files -> the clip, written into `out_dir` (a fresh temp dir by default); `opts` are
    Options fields (the model's defaults otherwise). `check_request` then `render`.

    Returns a dict: frames (uint8 clip), clip (the pipeline's Clip), video / gif / npy /
    sheet (paths), truth_video (path or None), downloads (paths), gallery ([(image,
    caption)] keyframe and reconstruction pairs), errors ([K] MSE per pixel), names,
    timings (seconds per stage) and report (markdown). Every user mistake raises
    `LatentVideoError`."""
    request = check_request(pipe, files, times, frames, resize=resize, **opts)
    return render(pipe, request, truth=truth, out_dir=out_dir, fps=fps)


def render(
    pipe, request: CheckedRequest, *, truth: np.ndarray | None = None, out_dir: str | Path | None = None, fps=FPS
) -> dict:
    """Run the pipeline on a checked request and write the clip and its pictures into `out_dir`
    (see `run_generation`)."""
    frames, paths, keyframes = request.frames, request.paths, request.keyframes
    clip = pipe(keyframes, request.times, frames, **request.opts)

    t0 = time.perf_counter()
    out = Path(out_dir) if out_dir is not None else Path(tempfile.mkdtemp(prefix="latentvideo-web-"))
    out.mkdir(parents=True, exist_ok=True)
    clip_u8 = to_uint8(clip.frames)
    marked = [c for c in (int(round(t)) for t in clip.times) if 0 <= c < frames]
    gif = write_clip(out / "clip.gif", clip_u8, fps=fps)
    mp4 = write_clip(out / "clip.mp4", clip_u8, fps=fps)
    npy = write_clip(out / "clip.npy", clip_u8)
    rows, labels, truth_video = [clip_u8], None, None
    if truth is not None:
        truth_u8 = _truth_frames(np.asarray(truth), pipe.channels, pipe.resolution)
        truth_video = write_clip(out / "truth.mp4", truth_u8, fps=fps)
        rows, labels = [clip_u8, truth_u8], ["generated", "truth"]
    sheet = out / "contact_sheet.png"
    write_png(sheet, contact_sheet(rows, labels, marked))
    t_write = time.perf_counter() - t0

    names = [p.name for p in paths]
    errors = [float(e) for e in clip.keyframe_errors.tolist()]
    keys_u8 = to_uint8(keyframes)
    recon_u8 = to_uint8(clip.reconstructions)
    gallery = []
    for i, err in enumerate(errors):
        gallery.append((keys_u8[i], f"keyframe {i}"))
        gallery.append((recon_u8[i], f"MSE {err:.4f}"))
    timings = {**{k: float(v) for k, v in clip.timings.items()}, "write": t_write}
    if request.queued >= 0.05:
        timings["queue"] = request.queued
    timings["total"] = time.perf_counter() - request.t_start
    return {
        "frames": clip_u8,
        "clip": clip,
        "video": mp4,
        "gif": gif,
        "npy": npy,
        "sheet": sheet,
        "truth_video": truth_video,
        "downloads": [gif, mp4, npy, sheet],
        "gallery": gallery,
        "errors": errors,
        "names": names,
        "timings": timings,
        "report": report_markdown(names, clip.times, errors, timings, frames),
    }


def report_markdown(names, times, errors, timings: dict, frames: int) -> str:
    lines = [f"**{frames} frames from {len(names)} keyframes.** Reconstruction error (MSE per pixel):", ""]
    for i, (name, t, err) in enumerate(zip(names, times, errors)):
        lines.append(f"- keyframe {i}: MSE {err:.4f} &nbsp; (t = {t:g}, {html.escape(name)})")
    lines += ["", "Seconds per stage: " + " · ".join(f"{k} {v:.2f}" for k, v in timings.items())]
    return "\n".join(lines)


def error_markdown(e: BaseException) -> str:
    if isinstance(e, ServerBusy):
        text = f"**Busy:** {e.message}"
    elif isinstance(e, LatentVideoError):
        text = f"**Error:** {e.message}" + (f"  \nHint: {e.hint}" if e.hint else "")
    else:
        text = f"**Unexpected error:** {type(e).__name__}: {e}"
    return html.escape(text, quote=False)
