"""The web page's request plumbing, none of it tied to Gradio: checking what a visitor sent, a folder
per request and turns at the pipeline.

`check_uploads` checks the count, type and size of the uploaded keyframes, `load_keyframes` decodes them
(errors name the file, not its temp path) and `parse_times` reads the keyframe times. `RequestDirs` makes
one folder per request, removes a failed request's folder and prunes old ones. `PipelineGate` hands out
turns, first come, first served: `concurrency` requests at once, at most `max_queue` waiting, and
`ServerBusy` for anyone past that; `check_capacity` checks those two numbers (serve --concurrency /
--max-queue).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from ..data import IMAGE_EXTS, load_image, to_frames
from ..errors import LatentVideoError

MIN_FILES, MAX_FILES = 2, 8
MAX_FILE_BYTES = 10 * 1024 * 1024  # per uploaded file
KEEP_SECONDS = 3600  # request folders older than this are removed
CONCURRENCY = 1  # clips rendered at once (serve --concurrency)
MAX_QUEUE = 16  # requests waiting for a turn before visitors are told the server is busy (serve --max-queue)
MAX_CONCURRENCY, MAX_MAX_QUEUE = 32, 256  # each waiting request holds a server thread


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
