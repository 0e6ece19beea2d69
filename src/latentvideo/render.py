"""Latents -> frames -> files.

`render(G, latents)` runs the generator in chunks; `to_uint8` turns its output into
uint8 frames; `write_clip(path, frames)` writes them as .gif, .mp4, .npy or a .png
contact sheet. Every file is written atomically (see `fileio.atomic_path`), and
`check_output_path` rejects a bad path before any rendering is done.
"""

from __future__ import annotations

import math
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from .errors import LatentVideoError
from .fileio import atomic_path, check_writable
from .models import module_device
from .objects import render_clips

OUTPUT_FORMATS = (".gif", ".mp4", ".png", ".npy")

# contact sheet layout, in pixels and RGB
BORDER, GAP = 2, 2  # ring around each frame (coloured for keyframes), space between cells
BACKGROUND, MARK, TEXT = (32, 32, 32), (255, 140, 0), (200, 200, 200)


# ---------------------------------------------------------------- rendering


def render(G, latents, batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """latents [T, z_dim] -> frames [T, C, H, W] float in [0, 1] on the CPU.

    G runs under `torch.no_grad` on at most `batch_size` latents at a time, so memory
    on G's device is bounded whatever T is."""
    z = torch.as_tensor(latents)
    if z.ndim != 2 or len(z) == 0:
        raise LatentVideoError(f"latents must be a non-empty [T, z_dim] array, got shape {tuple(z.shape)}")
    z_dim = getattr(G, "z_dim", None)
    if z_dim is not None and z.shape[1] != z_dim:
        raise LatentVideoError(f"latents have {z.shape[1]} dimensions but the generator takes {z_dim}")
    if batch_size < 1:
        raise LatentVideoError(f"batch_size must be at least 1, got {batch_size}")
    dev = module_device(G)
    out = None
    bar = tqdm(total=len(z), disable=not progress, desc="render", unit="frame")
    with torch.no_grad():
        for i in range(0, len(z), batch_size):
            chunk = z[i : i + batch_size].to(dev, torch.float32)  # [n, z_dim]
            x = render_clips(G, chunk[None])[0].float().cpu()  # [n, C, H, W]; one clip's sprites drawn once
            if out is None:
                out = torch.empty((len(z), *x.shape[1:]))  # [T, C, H, W]
            out[i : i + len(x)] = x
            bar.update(len(x))
    bar.close()
    return out


def to_uint8(frames) -> np.ndarray:
    """[T, C, H, W] float in [0, 1] (torch or numpy) -> uint8 [T, H, W] (C=1) or [T, H, W, 3] (C=3)."""
    x = frames.detach().cpu().numpy() if isinstance(frames, torch.Tensor) else np.asarray(frames)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise LatentVideoError(f"frames must be [T, C, H, W] with C = 1 or 3, got shape {x.shape}")
    x = np.nan_to_num(x.astype(np.float32), nan=0.0)
    x = (np.clip(x, 0, 1) * 255).round().astype(np.uint8)  # [T, C, H, W]
    return np.ascontiguousarray(x[:, 0] if x.shape[1] == 1 else x.transpose(0, 2, 3, 1))


# ---------------------------------------------------------------- frame helpers


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    ok_shape = frames.ndim == 3 or (frames.ndim == 4 and frames.shape[-1] == 3)
    if frames.dtype != np.uint8 or not ok_shape or len(frames) == 0:
        raise LatentVideoError(
            f"frames must be non-empty uint8 [T, H, W] or [T, H, W, 3], got {frames.dtype} {frames.shape}"
        )
    return frames


def _upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale of a clip [T, H, W] or [T, H, W, 3] by an integer factor."""
    if scale < 1 or int(scale) != scale:
        raise LatentVideoError(f"scale must be a positive integer, got {scale}")
    return frames if scale == 1 else frames.repeat(scale, 1).repeat(scale, 2)


def _rgb(frames: np.ndarray) -> np.ndarray:
    """[T, H, W] or [T, H, W, 3] -> [T, H, W, 3]."""
    return frames if frames.ndim == 4 else np.repeat(frames[..., None], 3, axis=-1)


def _check_fps(fps: float) -> None:
    if not fps > 0:
        raise LatentVideoError(f"fps must be positive, got {fps}")


# ---------------------------------------------------------------- writers


def check_output_path(path: str | os.PathLike) -> Path:
    """Reject an unknown extension, an existing directory or an unwritable folder before any work."""
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_FORMATS:
        raise LatentVideoError(
            f"unknown output format {path.suffix or '(none)'!r} for {path}", hint=f"use {', '.join(OUTPUT_FORMATS)}"
        )
    return check_writable(path)


def write_gif(path: str | os.PathLike, frames_u8: np.ndarray, fps: float = 10, scale: int = 1) -> None:
    """Looping GIF. Identical consecutive frames are merged by Pillow (their durations add up)."""
    frames = _upscale(_check_frames(frames_u8), scale)  # [T, H, W] or [T, H, W, 3]
    _check_fps(fps)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)


def write_mp4(path: str | os.PathLike, frames_u8: np.ndarray, fps: float = 10, scale: int = 4) -> None:
    """H.264 (libx264, yuv420p) through imageio-ffmpeg's ffmpeg; frames are upscaled
    (nearest) by `scale` and padded to even sizes, as yuv420p needs."""
    frames = _check_frames(frames_u8)
    _check_fps(fps)
    h, w = frames.shape[1] * scale, frames.shape[2] * scale
    pad = ((0, h % 2), (0, w % 2)) + ((0, 0),) * (frames.ndim - 3)  # to even H, W
    pix_fmt = "gray" if frames.ndim == 3 else "rgb24"
    encode = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-movflags", "+faststart"]
    chunks = (np.pad(_upscale(f[None], scale)[0], pad, mode="edge").tobytes() for f in frames)
    pipe_to_ffmpeg(path, pix_fmt, (w + w % 2, h + h % 2), fps, encode, chunks)


def pipe_to_ffmpeg(path, pix_fmt: str, size: tuple[int, int], fps: float, encode: list[str], chunks) -> None:
    """Raw frames (bytes chunks of `pix_fmt`, `size` = (W, H)) through imageio-ffmpeg's ffmpeg with the `encode`
    arguments into an mp4 at `path`, written atomically; ffmpeg's failure is a LatentVideoError with its log."""
    import imageio_ffmpeg

    with atomic_path(path) as tmp, tempfile.TemporaryFile() as log:
        cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-hide_banner", "-nostats", "-v", "error"]
        cmd += ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{size[0]}x{size[1]}", "-r", str(fps), "-i", "-"]
        cmd += ["-an", *encode, "-f", "mp4", str(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=log)
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # ffmpeg exited early; its return code and log say why
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if proc.wait() != 0:
            log.seek(0)
            msg = log.read().decode(errors="replace").strip()[-500:]
            raise LatentVideoError(f"ffmpeg failed writing {path} (exit code {proc.returncode}): {msg}")


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """uint8 [H, W], [H, W, 3] or [H, W, 4] -> PNG."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (3, 4))):
        raise LatentVideoError(f"image must be uint8 [H, W], [H, W, 3] or [H, W, 4], got {image.dtype} {image.shape}")
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def write_npy(path: str | os.PathLike, frames_u8: np.ndarray) -> None:
    """The uint8 frames as they are, [T, H, W] or [T, H, W, 3]."""
    frames = _check_frames(frames_u8)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, frames, allow_pickle=False)


def save_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int = 8) -> None:
    """[N, C, H, W] in [0, 1] -> one PNG grid with 2 px gaps (training samples)."""
    x = (images.detach().clamp(0, 1) * 255).round().byte().cpu().numpy()  # [N, C, H, W]
    n, c, h, w = x.shape
    ncol = min(nrow, n)
    rows = (n + ncol - 1) // ncol
    grid = np.full((rows * (h + 2) + 2, ncol * (w + 2) + 2, c), 64, np.uint8)
    for i in range(n):
        r, q = divmod(i, ncol)
        grid[2 + r * (h + 2) : 2 + r * (h + 2) + h, 2 + q * (w + 2) : 2 + q * (w + 2) + w] = x[i].transpose(1, 2, 0)
    write_png(path, grid[..., 0] if c == 1 else grid)


# ---------------------------------------------------------------- contact sheet


def contact_sheet(
    rows: list[np.ndarray], labels: list[str] | None = None, marked: Sequence[int] = (), scale: int = 2
) -> np.ndarray:
    """One row per clip, frames left to right, frame numbers on top, the `marked`
    (keyframe) columns framed in orange, optional row labels on the left.

    rows: uint8 clips [T, H, W] or [T, H, W, 3] of one frame size (T may differ).
    Returns a uint8 RGB image [H', W', 3]."""
    if not rows:
        raise LatentVideoError("contact sheet needs at least one clip")
    clips = [_rgb(_upscale(_check_frames(r), scale)) for r in rows]  # each [T, h, w, 3]
    h, w = clips[0].shape[1:3]
    if any(c.shape[1:3] != (h, w) for c in clips):
        raise LatentVideoError(f"clips differ in frame size: {[tuple(r.shape[1:3]) for r in rows]}")
    if labels is not None and len(labels) != len(clips):
        raise LatentVideoError(f"{len(labels)} labels for {len(clips)} rows")
    T = max(len(c) for c in clips)
    marked = sorted({int(m) for m in marked})
    if marked and not 0 <= marked[0] <= marked[-1] < T:
        raise LatentVideoError(f"keyframe index out of range 0..{T - 1}: {marked}")

    font = ImageFont.load_default()
    text_w = lambda s: math.ceil(font.getlength(s))  # noqa: E731
    text_h = font.getbbox("0123456789")[3]
    px, py = w + 2 * BORDER + GAP, h + 2 * BORDER + GAP  # cell pitch
    head = text_h + 2 * GAP
    left = max(map(text_w, labels)) + 3 * GAP if labels else 0
    sheet = np.full((head + GAP + len(clips) * py, left + GAP + T * px, 3), BACKGROUND, np.uint8)
    for r, clip in enumerate(clips):
        y = head + GAP + r * py
        for t, frame in enumerate(clip):
            x = left + GAP + t * px
            if t in marked:
                sheet[y : y + h + 2 * BORDER, x : x + w + 2 * BORDER] = MARK
            sheet[y + BORDER : y + BORDER + h, x + BORDER : x + BORDER + w] = frame

    image = Image.fromarray(sheet)
    draw = ImageDraw.Draw(image)
    every = math.ceil((text_w(str(T - 1)) + 2 * GAP) / px)  # number every n-th column when cells are narrow
    numbered = {t for t in range(0, T, every) if all(abs(t - m) >= every for m in marked)} | set(marked)
    for t in sorted(numbered):
        x = left + GAP + t * px + BORDER + (w - text_w(str(t))) // 2
        draw.text((x, GAP), str(t), fill=MARK if t in marked else TEXT, font=font)
    for r, label in enumerate(labels or []):
        draw.text((GAP, head + GAP + r * py + BORDER + (h - text_h) // 2), label, fill=TEXT, font=font)
    return np.asarray(image)


# ---------------------------------------------------------------- dispatch


def write_clip(
    path: str | os.PathLike,
    frames_u8: np.ndarray,
    fps: float = 10,
    keyframes: Sequence[int] = (),
    rows: list[np.ndarray] | None = None,
    labels: list[str] | None = None,
) -> Path:
    """Write a clip by extension: .gif, .mp4, .npy hold the clip; .png is a contact
    sheet of the clip (first row) and any extra `rows` (e.g. ground truth), with the
    `keyframes` columns marked and `labels` naming every row. `rows` and `labels`
    are ignored by the other formats."""
    path = check_output_path(path)
    ext = path.suffix.lower()
    if ext == ".gif":
        write_gif(path, frames_u8, fps)
    elif ext == ".mp4":
        write_mp4(path, frames_u8, fps)
    elif ext == ".npy":
        write_npy(path, frames_u8)
    else:
        write_png(path, contact_sheet([frames_u8, *(rows or [])], labels, keyframes))
    return path
