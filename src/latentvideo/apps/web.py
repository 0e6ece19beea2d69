"""`latentvideo serve`: a local web page for the pipeline (Gradio).

The page takes 2 to 8 keyframe images (or samples keyframes 0, 9, 19 of a random
held-out Moving MNIST test sequence), runs the pipeline and shows the clip, a contact
sheet, each keyframe beside its reconstruction with the reconstruction error, the
seconds per stage and GIF / MP4 / NPY / PNG downloads.

A model picker lists the shipped models and the one the server was started with (`Models`); a request
carries the chosen name, each model is loaded on first use and kept, and picking one sets the
controls to that model's defaults (`control_state`). Uploads are converted to the chosen model's
channels and size.

All the work is in plain functions (`check_uploads`, `load_keyframes`, `load_sample`,
`run_generation`) that know nothing of Gradio, so they are unit-tested without a
browser; `build_app(pipe)` only wires them to components, `launch` starts it in the background
and `serve` runs it until interrupted.

Requests: uploads are checked (count, type, size, decoding, times and settings) before a request
waits for the pipeline, so a bad upload is answered at once even while clips render. Only then does
it queue for a `PipelineGate` turn: `concurrency` clips render at once, at most `max_queue` wait in
line (first come, first served), and anyone past that is told the server is busy. A request's
folder is made when its turn comes and removed if it fails; the folders of finished clips are
removed after `KEEP_SECONDS`.

Gradio is imported lazily: without it everything but `build_app`/`launch`/`serve` works, and
`serve` fails with a `LatentVideoError` naming the extra to install.

The server binds to 127.0.0.1 by default and makes no outside calls: analytics and
the version check are off, there are no share links, no server-side rendering and no
MCP server, and the theme uses system fonts (nothing from a font CDN).
"""

from __future__ import annotations

import atexit
import hashlib
import html
import importlib.util
import os
import secrets
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import IMAGE_EXTS, load_image, moving_mnist, to_frames
from ..errors import LatentVideoError
from ..options import schema
from ..render import contact_sheet, to_uint8, write_clip, write_png
from ..shapes import moving_shapes

MIN_FILES, MAX_FILES = 2, 8
MAX_FILE_BYTES = 10 * 1024 * 1024  # per uploaded file
MAX_WEB_FRAMES = 240  # the CLI allows more; a page request should stay short
SAMPLE_KEYFRAMES = (0, 9, 19)
SAMPLE_FRAMES = 20
KEEP_SECONDS = 3600  # request folders older than this are removed
FPS = 10
CONCURRENCY = 1  # clips rendered at once (serve --concurrency)
MAX_QUEUE = 16  # requests waiting for a turn before visitors are told the server is busy (serve --max-queue)
MAX_CONCURRENCY, MAX_MAX_QUEUE = 32, 256  # each waiting request holds a server thread
CHECK_CONCURRENCY = 4  # uploads decoded at once (each request: at most 8 images of at most 16 Mpx)

# Environment that keeps Gradio (and huggingface_hub under it) from calling out.
OFFLINE_ENV = {
    "GRADIO_ANALYTICS_ENABLED": "False",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "GRADIO_SHARE": "False",
    "GRADIO_SSR_MODE": "False",
}
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]
MONO_FONTS = ["ui-monospace", "monospace"]


# ---------------------------------------------------------------- uploads


def upload_path(f) -> Path:
    """A Gradio file value (a path string, or an object with .path / .name, or a dict) -> Path."""
    if isinstance(f, (str, os.PathLike)):
        return Path(f)
    if isinstance(f, dict) and f.get("path"):
        return Path(f["path"])
    for attr in ("path", "name"):
        value = getattr(f, attr, None)
        if isinstance(value, str) and value:
            return Path(value)
    raise LatentVideoError(f"cannot read the uploaded file {f!r}")


def check_uploads(files, max_files: int = MAX_FILES, max_bytes: int = MAX_FILE_BYTES) -> list[Path]:
    """Count, extension and size of the uploaded keyframes; their content is checked when decoded."""
    paths = [upload_path(f) for f in (files or [])]
    if len(paths) < MIN_FILES:
        raise LatentVideoError(
            f"upload at least {MIN_FILES} keyframe images, got {len(paths)}", hint="or press 'Sample a test sequence'"
        )
    if len(paths) > max_files:
        raise LatentVideoError(f"upload at most {max_files} keyframe images, got {len(paths)}")
    for p in paths:
        if p.suffix.lower() not in IMAGE_EXTS:
            raise LatentVideoError(f"{p.name} is not an image", hint=f"upload {', '.join(IMAGE_EXTS)} files")
        if not p.is_file():
            raise LatentVideoError(f"{p.name} did not arrive; upload it again")
        size = p.stat().st_size
        if size > max_bytes:
            raise LatentVideoError(f"{p.name} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:g} MB per file")
    return paths


def load_keyframes(paths: Sequence[Path], channels: int, resolution: int, resize: bool = True) -> torch.Tensor:
    """Decode uploaded images -> float [K, C, H, W] in [0, 1]. Errors name the file, not its temp path."""
    images = []
    for p in paths:
        try:
            images.append(load_image(p))
        except LatentVideoError as e:
            raise LatentVideoError(
                e.message.replace(str(p), p.name), hint=f"upload still images ({', '.join(IMAGE_EXTS)})"
            ) from None
    try:
        frames = to_frames(images, channels, resolution, resize=resize, names=[p.name for p in paths])
    except LatentVideoError as e:
        raise LatentVideoError(e.message, hint="tick 'Rescale to the model's size'") from None
    return torch.from_numpy(frames).float() / 255


def file_digest(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def parse_times(text: str | None) -> list[float] | None:
    """'0, 9, 19' -> [0.0, 9.0, 19.0]; empty -> None (evenly spaced)."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        values = [float(v) for v in text.replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise LatentVideoError(f"keyframe times must be comma-separated numbers, got {text!r}") from None
    if not values or not np.isfinite(values).all():
        raise LatentVideoError(f"keyframe times must be finite numbers, got {text!r}")
    return values


# ---------------------------------------------------------------- request folders


class RequestDirs:
    """One fresh folder per request (named req-*) under a private root in the system temp dir
    (where Gradio may serve files from); request folders older than `keep_seconds` are pruned
    whenever a new one is made, a failed request's folder is removed at once (`discard`), and
    the root is removed when the process exits. Other entries of the root (Gradio's own temp
    folder) are left alone."""

    PREFIX = "req-"

    def __init__(self, keep_seconds: float = KEEP_SECONDS, root: str | Path | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="latentvideo-web-", dir=root))
        self.keep_seconds = keep_seconds
        atexit.register(shutil.rmtree, self.root, True)

    def new(self) -> Path:
        self.prune()
        return Path(tempfile.mkdtemp(prefix=self.PREFIX, dir=self.root))

    def prune(self) -> None:
        now = time.time()
        for d in self.root.glob(self.PREFIX + "*"):
            try:
                if now - d.stat().st_mtime > self.keep_seconds:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass

    def discard(self, path: str | Path | None) -> None:
        """Remove one request's folder (a failed request leaves nothing behind)."""
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)

    def folders(self) -> list[Path]:
        return sorted(self.root.glob(self.PREFIX + "*"))


# ---------------------------------------------------------------- taking turns


class ServerBusy(LatentVideoError):
    """Too many requests are already waiting for the pipeline: come back later."""


class PipelineGate:
    """Turns at the pipeline, first come, first served: at most `concurrency` requests hold a turn at
    once and at most `max_queue` wait for one; a request past that gets `ServerBusy` at once instead of
    an unbounded wait. Thread-safe (Gradio runs each request in a worker thread).

        with gate.turn():  # blocks until it is this request's turn, or raises ServerBusy
            render()
    """

    def __init__(self, concurrency: int = CONCURRENCY, max_queue: int = MAX_QUEUE):
        check_capacity(concurrency, max_queue)
        self.concurrency, self.max_queue = int(concurrency), int(max_queue)
        self._cond = threading.Condition()
        self._issued = 0  # tickets handed out; ticket t starts once t < _done + concurrency
        self._done = 0  # tickets finished (or given up)

    @property
    def running(self) -> int:
        with self._cond:
            return min(self._issued - self._done, self.concurrency)

    @property
    def waiting(self) -> int:
        with self._cond:
            return max(0, self._issued - self._done - self.concurrency)

    @contextmanager
    def turn(self) -> Iterator[float]:
        """Wait for a turn (yields the seconds waited); ServerBusy if `max_queue` requests already wait."""
        t0 = time.perf_counter()
        with self._cond:
            waiting = self._issued - self._done - self.concurrency
            if waiting >= self.max_queue:
                raise ServerBusy(
                    f"the server is busy ({self.concurrency} rendering, {max(waiting, 0)} waiting, "
                    "the most it queues); try again in a minute"
                )
            ticket = self._issued
            self._issued += 1
            try:
                while ticket >= self._done + self.concurrency:
                    self._cond.wait()
            except BaseException:
                self._done += 1  # gave up its place: count it as served
                self._cond.notify_all()
                raise
        try:
            yield time.perf_counter() - t0
        finally:
            with self._cond:
                self._done += 1
                self._cond.notify_all()


def check_capacity(concurrency, max_queue) -> None:
    """serve --concurrency / --max-queue, checked before the model loads."""
    if not 1 <= int(concurrency) <= MAX_CONCURRENCY:
        raise LatentVideoError(f"--concurrency must be between 1 and {MAX_CONCURRENCY}, got {concurrency}")
    if not 0 <= int(max_queue) <= MAX_MAX_QUEUE:
        raise LatentVideoError(f"--max-queue must be between 0 and {MAX_MAX_QUEUE}, got {max_queue}")


# ---------------------------------------------------------------- models


class Models:
    """The models the page offers, by name: every shipped model (`pipeline.shipped_models()`, in the picker's
    order) and, last, the one the server was started with when that is a folder of its own (named by its path
    as given). Each pipeline is loaded on first use, once (a second request for it waits for that load), and
    kept. A request names a model on this list or gets a one-line `LatentVideoError`: no request ever names a
    folder to load. `pipe`: the started model, already loaded."""

    CUSTOM = "custom model"  # the name of a started model given only as a loaded pipeline

    def __init__(self, start: str | Path | None = None, device: str = "auto", *, pipe=None):
        from .. import pipeline

        self.device = device
        shipped = pipeline.shipped_models() if pipeline.SHIPPED.is_dir() else []
        self._where: dict[str, Path | None] = {name: pipeline.SHIPPED / name for name in shipped}
        self.default = self._started(start, pipe)
        self._pipes = {} if pipe is None else {self.default: pipe}
        self._lock = threading.Lock()

    def _started(self, start, pipe) -> str:
        """The started model's name, added to the list unless it is a shipped one."""
        from .. import pipeline

        if start is None and pipe is None:
            name = pipeline.DEFAULT_MODEL  # load_pipeline(None); listed even if missing, to fail on load
            self._where.setdefault(name, pipeline.SHIPPED / name)
            return name
        if start is None:
            self._where[self.CUSTOM] = None
            return self.CUSTOM
        path = Path(start)
        for name, where in self._where.items():
            if str(start) == name and not path.exists():  # --model NAME
                return name
            if path.exists() and path.resolve() == where.resolve():  # the shipped folder by its path
                return name
        name = str(start) if str(start) not in self._where else str(path.resolve())
        self._where[name] = path
        return name

    @property
    def names(self) -> list[str]:
        return list(self._where)

    def get(self, name: str | None = None):
        """The pipeline of model `name` (default: the started model), loaded on first use."""
        name = name or self.default
        if not isinstance(name, str) or name not in self._where:
            raise LatentVideoError(f"unknown model {name!r}; this server offers {', '.join(self.names)}")
        pipe = self._pipes.get(name)
        if pipe is None:
            with self._lock:  # one load per model, however many requests ask at once
                pipe = self._pipes.get(name)
                if pipe is None:
                    from .. import pipeline

                    pipe = self._pipes[name] = pipeline.load_pipeline(self._where[name], self.device)
        return pipe

    def describe(self, name: str | None = None) -> str:
        """One line about a model: its name, frame size and colour."""
        pipe = self.get(name)
        colour = "colour" if pipe.channels == 3 else "grayscale"
        return f"{name or self.default}: {pipe.resolution}x{pipe.resolution} {colour}"


def as_models(pipe_or_models) -> Models:
    """A `Models` as it is, or a loaded pipeline as the started model."""
    return pipe_or_models if isinstance(pipe_or_models, Models) else Models(pipe=pipe_or_models)


# ---------------------------------------------------------------- sample


@dataclass
class Sample:
    paths: list[Path]  # keyframe PNGs, in time order
    times: list[float]  # their frame indices
    truth: np.ndarray  # uint8 [T, H, W] (gray) or [T, H, W, 3] (colour): the whole test sequence
    seed: int


def load_sample(out_dir: str | Path, seed: int | None = None, channels: int = 1) -> Sample:
    """Keyframes 0, 9, 19 of one held-out test sequence, written as PNGs into `out_dir`: Moving MNIST
    (test-split digits) for a gray model, Moving Shapes (test backgrounds and hues) for a colour one."""
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    if channels == 3:
        video = moving_shapes(1, SAMPLE_FRAMES, 64, "test", seed=seed).video[:, 0]  # [T, 64, 64, 3]
    else:
        video = moving_mnist(1, SAMPLE_FRAMES, split="test", seed=seed).video[:, 0]  # [T, 64, 64]
    out_dir = Path(out_dir)
    paths = []
    for t in SAMPLE_KEYFRAMES:
        p = out_dir / f"test-t{t:02d}.png"
        write_png(p, video[t])
        paths.append(p)
    return Sample(paths, [float(t) for t in SAMPLE_KEYFRAMES], video, seed)


# ---------------------------------------------------------------- generation


def control_values(values: Sequence, names: Sequence[str]) -> dict:
    """The page's control values (in `names` order, options.schema fields) -> Options overrides: 0 means
    off for a fraction (PCA) and unknown for a speed; empty controls keep the model's default."""
    out = {}
    for name, v in zip(names, values):
        k = schema()[name]
        if v is None or v == "":
            continue
        if k.kind in ("fraction", "speed"):
            out[name] = float(v) if float(v) > 0 else None
        elif k.kind == "int":
            out[name] = int(v)
        elif k.kind == "float":
            out[name] = float(v)
        elif k.kind == "bool":
            out[name] = bool(v)
        else:
            out[name] = str(v)
    return out


def control_state(pipe, name: str) -> dict:
    """What of option `name`'s control depends on the model: its value (the model's default, as the page shows
    it: 0 for off or unknown), the methods offered (P-NET ones need a projector) and whether the critic's
    controls are live (they need a critic)."""
    from ..invert import METHODS

    k = schema()[name]
    value = getattr(pipe.default_options(), name)
    state = {"value": (value or 0) if k.kind in ("float", "fraction", "speed") else value}
    if name == "method":
        state["choices"] = [m for m in METHODS if pipe.projector is not None or not m.startswith("pnet")]
    if name.startswith("critic"):
        state["interactive"] = pipe.critic is not None
    return state


def model_defaults(models: Models, name: str | None = None) -> dict:
    """Option name -> the value its control shows for model `name` (loaded if need be)."""
    pipe = models.get(name)
    return {n: control_state(pipe, n)["value"] for n in schema(include_api_only=False)}


def option_controls(gr, pipe) -> dict:
    """One control per pipeline option (options.schema, API-only fields aside), labelled with its help text
    and set to the model's default (`control_state`); elem_id is the option's flag name (e.g. motion-speed)."""
    controls = {}
    for name, k in schema(include_api_only=False).items():
        state, elem = control_state(pipe, name), name.replace("_", "-")
        label = f"{name.replace('_', ' ')}: {k.help}"
        if name == "method":
            controls[name] = gr.Dropdown(label=label, elem_id=elem, **state)
        elif k.kind == "choice":
            controls[name] = gr.Radio(list(k.choices), label=label, elem_id=elem, **state)
        elif k.kind == "int":
            high = k.high if k.high is not None else max(100, state["value"])
            controls[name] = gr.Slider(k.low, high, step=1, label=label, elem_id=elem, **state)
        elif k.kind == "bool":
            controls[name] = gr.Checkbox(label=label, elem_id=elem, **state)
        else:  # float, fraction (0: off), speed (0: unknown)
            zero = {"fraction": " (0: off)", "speed": " (0: unknown)"}.get(k.kind, "")
            controls[name] = gr.Number(minimum=0, label=label + zero, elem_id=elem, **state)
    return controls


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


# ---------------------------------------------------------------- the page


def _check_gradio() -> None:
    try:
        found = importlib.util.find_spec("gradio") is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise LatentVideoError(
            "the web page needs gradio, which is not installed", hint="pip install 'latentvideo[web]'"
        )


def _require_gradio():
    _check_gradio()
    os.environ.update(OFFLINE_ENV)  # before the import: gradio reads some of these once
    try:
        import gradio as gr
    except ImportError as e:
        raise LatentVideoError(f"cannot import gradio: {e}", hint="pip install 'latentvideo[web]'") from None
    return gr


def build_app(pipe, dirs: RequestDirs | None = None, gate: PipelineGate | None = None):
    """The Gradio Blocks page for `pipe` (a loaded pipeline, or `Models` to pick from; not launched). Use
    `launch` or `serve` to run it.

    The model picker lists `Models.names`; a request carries the chosen name (the started model by default)
    and uses that model's pipeline, loaded on first use; picking a model sets the controls to its defaults.
    Generate and Sample check their request first (at most CHECK_CONCURRENCY decode uploads at once),
    then wait for a `gate` turn, one line for every model (default: one clip at a time, MAX_QUEUE waiting);
    every outcome, the busy answer and an unknown model included, is a message in the status line, for
    the page and API callers alike."""
    gr = _require_gradio()
    models = as_models(pipe)
    dirs = dirs or RequestDirs()
    gate = gate or PipelineGate()
    checks = threading.BoundedSemaphore(CHECK_CONCURRENCY)
    names = list(schema(include_api_only=False))

    def outputs_of(result, status):
        return (
            status,
            str(result["video"]),
            str(result["truth_video"]) if result["truth_video"] else None,
            str(result["sheet"]),
            result["gallery"],
            result["report"],
            [str(p) for p in result["downloads"]],
        )

    def failed(e):
        if not isinstance(e, LatentVideoError):
            traceback.print_exc()
        return (error_markdown(e), None, None, None, None, "", None)

    def done_in(result, model) -> str:
        t = result["timings"]
        queued = f", {t['queue']:.1f} s of it waiting for a turn" if "queue" in t else ""
        return f"with {html.escape(model or models.default)} in {t['total']:.1f} s{queued}."

    def on_model(model):
        try:
            pipe = models.get(model)
            updates = [gr.update(**control_state(pipe, n)) for n in names]
            return [*updates, f"Model {html.escape(models.describe(model))}; the settings show its defaults."]
        except Exception as e:  # noqa: BLE001
            return [*(gr.update() for _ in names), failed(e)[0]]

    def on_upload(files, model):
        try:
            with checks:
                pipe = models.get(model)
                paths = check_uploads(files)
                load_keyframes(paths, pipe.channels, pipe.resolution, resize=True)  # decodes: is it an image?
            names = ", ".join(html.escape(p.name) for p in paths)
            return f"{len(paths)} keyframes ready: {names}. Press **Generate**."
        except Exception as e:  # noqa: BLE001 - every failure becomes a message on the page
            return failed(e)[0]

    def on_generate(files, times, frames, *knob_values):
        *knob_values, resize, sample, model = knob_values
        out = None
        try:
            s = control_values(knob_values, names)
            with checks:  # a bad request is answered here, without waiting for the pipeline
                pipe = models.get(model)  # the chosen model's pipeline (an unknown name fails here)
                request = check_request(pipe, files, times, frames, resize=resize, **s)
            same = sample and [file_digest(p) for p in request.paths] == sample["digests"]  # the sampled keyframes?
            truth = sample["truth"] if same else None
            with gate.turn() as request.queued:  # ServerBusy when the line is full
                out = dirs.new()  # only a valid request that got its turn makes a folder
                result = render(pipe, request, truth=truth, out_dir=out)
            return outputs_of(result, "Done " + done_in(result, model))
        except Exception as e:  # noqa: BLE001
            dirs.discard(out)  # a failed request leaves nothing behind
            return failed(e)

    def on_sample(*knob_values):
        *knob_values, resize, model = knob_values
        out = None
        try:
            s = control_values(knob_values, names)
            pipe = models.get(model)
            pipe.options(**s)  # bad settings are answered without waiting
            with gate.turn() as queued:
                out = dirs.new()
                sample = load_sample(out, channels=pipe.channels)
                times = ",".join(f"{t:g}" for t in sample.times)
                request = check_request(pipe, sample.paths, times, SAMPLE_FRAMES, resize=resize, **s)
                request.queued = queued
                result = render(pipe, request, truth=sample.truth, out_dir=out)
            state = {"digests": [file_digest(p) for p in sample.paths], "truth": sample.truth}
            status = f"Held-out test sequence (seed {sample.seed}), keyframes {times}: done " + done_in(result, model)
            filled = ([str(p) for p in sample.paths], times, SAMPLE_FRAMES, state)
            return filled + outputs_of(result, status)
        except Exception as e:  # noqa: BLE001
            dirs.discard(out)
            return (gr.update(), gr.update(), gr.update(), None) + failed(e)

    with gr.Blocks(title="latentvideo", analytics_enabled=False, delete_cache=(KEEP_SECONDS, KEEP_SECONDS)) as app:
        gr.Markdown(
            "# latentvideo\nA few still images in, a short video out, through a GAN's latent space. "
            f"Upload {MIN_FILES} to {MAX_FILES} keyframes in time order (at most {MAX_FILE_BYTES // 2**20} MB each), "
            "or sample them from a held-out test sequence."
        )
        sample_state = gr.State(None)
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                model = gr.Dropdown(  # custom values allowed, so an unknown name gets this page's own answer
                    models.names, value=models.default, label="Model", allow_custom_value=True, elem_id="model"
                )
                files = gr.File(
                    label=f"Keyframes ({MIN_FILES} to {MAX_FILES} images, in time order)",
                    file_count="multiple",
                    file_types=list(IMAGE_EXTS),
                    type="filepath",
                    elem_id="keyframes",
                )
                with gr.Row():
                    sample_btn = gr.Button("Sample a test sequence", elem_id="sample")
                    generate_btn = gr.Button("Generate", variant="primary", elem_id="generate")
                status = gr.Markdown("", elem_id="status")
                times = gr.Textbox(
                    label="Keyframe times (frame indices, e.g. 0,9,19; empty: evenly spaced)", elem_id="times"
                )
                frames = gr.Slider(2, MAX_WEB_FRAMES, value=SAMPLE_FRAMES, step=1, label="Frames", elem_id="frames")
                with gr.Accordion("Settings", open=True):
                    controls = option_controls(gr, models.get())
                    resize = gr.Checkbox(value=True, label="Rescale to the model's size")
            with gr.Column(scale=3, min_width=320):
                with gr.Row():
                    video = gr.Video(label="Generated", autoplay=True, loop=True, interactive=False, elem_id="clip")
                    truth_video = gr.Video(
                        label="Ground truth (sampled sequences)",
                        autoplay=True,
                        loop=True,
                        interactive=False,
                        elem_id="truth",
                    )
                sheet = gr.Image(label="Contact sheet", type="filepath", interactive=False, format="png")
                gallery = gr.Gallery(
                    label="Each keyframe, then its reconstruction and its error (MSE per pixel)",
                    columns=4,
                    height="auto",
                    format="png",
                    elem_id="gallery",
                )
                report = gr.Markdown("", elem_id="report")
                downloads = gr.File(label="Downloads", file_count="multiple", interactive=False, elem_id="downloads")

        knobs = [controls[n] for n in names]
        results = [status, video, truth_video, sheet, gallery, report, downloads]
        # Gradio's queue only hands requests to worker threads; the waiting line for the pipeline is `gate`,
        # entered after the checks, so no concurrency limit here (launch sizes the thread pool to fit).
        files.upload(
            on_upload,
            [files, model],
            status,
            api_name="check",
            concurrency_id="check",
            concurrency_limit=CHECK_CONCURRENCY,
        )
        model.change(on_model, model, [*knobs, status], api_name="defaults")
        generate_btn.click(
            on_generate,
            [files, times, frames, *knobs, resize, sample_state, model],
            results,
            api_name="generate",
            concurrency_id="requests",
            concurrency_limit=None,
        )
        sample_btn.click(
            on_sample,
            [*knobs, resize, model],
            [files, times, frames, sample_state, *results],
            api_name="sample",
            concurrency_id="requests",
            concurrency_limit=None,
        )
    return app


def launch(
    pipe,
    host: str = "127.0.0.1",
    port: int = 7860,
    *,
    dirs: RequestDirs | None = None,
    gate: PipelineGate | None = None,
    concurrency: int = CONCURRENCY,
    max_queue: int = MAX_QUEUE,
):
    """Build the page for `pipe` (a loaded pipeline, or `Models`) and serve it on host:port from background
    threads; returns the Gradio app (`app.close()` stops it). `gate` (default: PipelineGate(concurrency,
    max_queue)) decides turns, one line for all models."""
    gr = _require_gradio()
    dirs = dirs or RequestDirs()
    gate = gate or PipelineGate(concurrency, max_queue)
    app = build_app(pipe, dirs, gate)
    theme = gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)
    # every waiting request holds a worker thread; leave room beside them for checks and busy answers
    threads = max(40, gate.concurrency + gate.max_queue + CHECK_CONCURRENCY + 16)
    try:
        app.queue(default_concurrency_limit=1).launch(
            server_name=host,
            server_port=int(port),
            share=False,
            inbrowser=False,
            ssr_mode=False,
            mcp_server=False,
            pwa=False,
            max_file_size=MAX_FILE_BYTES,
            max_threads=threads,
            show_error=True,
            theme=theme,
            quiet=True,
            prevent_thread_lock=True,
        )
    except OSError as e:
        raise LatentVideoError(f"cannot serve on {host}:{port}: {e}", hint="pick another --port") from None
    return app


def serve(
    model: str | Path | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    device: str = "auto",
    pipe=None,
    concurrency: int = CONCURRENCY,
    max_queue: int = MAX_QUEUE,
) -> None:
    """Load the model and serve the page on http://host:port until interrupted: `concurrency` clips render
    at once, `max_queue` requests may wait for a turn, and later ones are told the server is busy. The page
    also offers every shipped model, each loaded when first picked."""
    if not 1 <= int(port) <= 65535:
        raise LatentVideoError(f"--port must be between 1 and 65535, got {port}")
    check_capacity(concurrency, max_queue)
    _check_gradio()  # before the model loads
    models = Models(model, device, pipe=pipe)
    models.get()  # the started model loads now: a bad --model fails before anything is served
    dirs = RequestDirs()
    # uploads and Gradio's copies of our outputs live under the same private root, removed on exit
    os.environ.setdefault("GRADIO_TEMP_DIR", str(dirs.root / "gradio"))
    app = launch(models, host, port, dirs=dirs, concurrency=concurrency, max_queue=max_queue)
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):  # both close the server and remove the temp files
            signal.signal(sig, _interrupt)
    shown = f"[{host}]" if ":" in host else host
    print(
        f"latentvideo: serving on http://{shown}:{port}  ({concurrency} clip(s) at a time, "
        f"up to {max_queue} waiting; Ctrl-C to stop)",
        flush=True,
    )
    app.block_thread()


def _interrupt(signum, frame):
    raise KeyboardInterrupt
