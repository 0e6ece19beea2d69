"""Baselines for keyframe interpolation: each turns the keyframes of true clips into
full clips of the same layout, uint8 [T, N, H, W] (gray) or [T, N, H, W, 3] (RGB).

The video baselines read only the frames at `keyframes` of `video` (the rest of the
clip is there for its shape); `piecewise_linear_oracle` also reads the true digit
positions at the keyframes, an upper reference no image-only method can reach.
Outside the keyframe range every baseline holds the end keyframe.
"""

from __future__ import annotations

import subprocess

import numpy as np

from ..data import compose
from ..errors import LatentVideoError


def check_keyframes(keyframes, num_frames: int) -> np.ndarray:
    """Sorted unique keyframe indices, int64 [K], all within [0, num_frames)."""
    k = np.unique(np.asarray(keyframes, np.int64).ravel())
    if k.size == 0:
        raise LatentVideoError("need at least one keyframe")
    if k[0] < 0 or k[-1] >= num_frames:
        raise LatentVideoError(f"keyframes {k.tolist()} outside the clip's {num_frames} frames")
    return k


def _check_video(video) -> np.ndarray:
    video = np.asarray(video)
    if video.dtype != np.uint8 or not (video.ndim == 4 or video.ndim == 5 and video.shape[-1] == 3):
        raise LatentVideoError(
            f"video must be uint8 [T, N, H, W] or [T, N, H, W, 3], got {video.dtype} {list(video.shape)}"
        )
    return video


def neighbours(keyframes, num_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every frame t: the keyframe before (left [T]), after (right [T]) and the blend
    weight w [T] of `right` (0 at `left`, 1 at `right`). Outside the keyframe range
    w = 0 and left is the nearest end keyframe."""
    k = check_keyframes(keyframes, num_frames)
    t = np.clip(np.arange(num_frames), k[0], k[-1])  # hold outside the keyframe range
    j = np.searchsorted(k, t, side="right") - 1  # index of the keyframe at or before t
    left, right = k[j], k[np.minimum(j + 1, len(k) - 1)]
    w = np.where(right > left, (t - left) / np.maximum(right - left, 1), 0.0)
    return left, right, w


def all_black(video, keyframes) -> np.ndarray:
    """Black frames between the keyframes; the keyframes themselves are copied."""
    video = _check_video(video)
    k = check_keyframes(keyframes, len(video))
    out = np.zeros_like(video)
    out[k] = video[k]
    return out


def hold_nearest(video, keyframes) -> np.ndarray:
    """Each frame copies the keyframe nearest in time; ties go to the earlier one."""
    video = _check_video(video)
    left, right, w = neighbours(keyframes, len(video))
    return video[np.where(w > 0.5, right, left)]


def crossfade(video, keyframes) -> np.ndarray:
    """Linear pixel blend between the neighbouring keyframes, rounded to uint8."""
    video = _check_video(video)
    left, right, w = neighbours(keyframes, len(video))
    w = w.reshape(-1, *[1] * (video.ndim - 1))  # [T, 1, 1, 1(, 1)]
    blend = (1 - w) * video[left] + w * video[right]  # [T, N, H, W(, 3)]
    return np.clip(np.rint(blend), 0, 255).astype(np.uint8)


def ffmpeg_minterpolate(video, keyframes, mb_size: int = 8) -> np.ndarray:
    """ffmpeg's motion-compensated interpolation (minterpolate, mci + aobmc, bidirectional
    motion estimation, scene-change detection off) between the keyframes.

    One ffmpeg process per sequence: the keyframes go in as raw gray (or RGB) frames whose
    timestamps are set to their frame indices (so uneven gaps such as 0, 9, 19 work),
    and minterpolate resamples at 1 frame per index; output frame i is time k0 + i.
    """
    import imageio_ffmpeg

    video = _check_video(video)
    T, N, H, W = video.shape[:4]
    C, pix_fmt = (3, "rgb24") if video.ndim == 5 else (1, "gray")
    k = check_keyframes(keyframes, T)
    if H % mb_size or W % mb_size:
        raise LatentVideoError(f"minterpolate needs frame sizes that are multiples of mb_size={mb_size}, got {H}x{W}")
    left, _, _ = neighbours(k, T)
    out = video[left].copy()  # holds outside the range; the span is overwritten below
    if len(k) == 1:
        return out
    span = k[-1] - k[0] + 1
    times = np.concatenate([k - k[0], [span, span + 1]])  # last keyframe repeated twice so the filter flushes it
    expr = "+".join(f"eq(N\\,{i})*{t}" for i, t in enumerate(times))
    graph = f"setpts=({expr})/TB,minterpolate=fps=1:mi_mode=mci:mc_mode=aobmc:me_mode=bidir:mb_size={mb_size}:scd=none"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin"]
    cmd += ["-f", "rawvideo", "-pix_fmt", pix_fmt, "-s", f"{W}x{H}", "-r", "1", "-i", "pipe:0"]
    cmd += ["-vf", graph, "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", pix_fmt, "pipe:1"]
    for i in range(N):
        frames = video[np.concatenate([k, k[-1:], k[-1:]]), i]  # [K + 2, H, W]
        proc = subprocess.run(cmd, input=np.ascontiguousarray(frames).tobytes(), capture_output=True)
        got = np.frombuffer(proc.stdout, np.uint8)
        if proc.returncode != 0 or got.size < span * H * W * C:
            raise LatentVideoError(
                f"ffmpeg minterpolate failed (exit {proc.returncode}): {proc.stderr.decode()[-500:]}"
            )
        out[k[0] : k[-1] + 1, i] = got[: span * H * W * C].reshape(span, *video.shape[2:])
    return out


def piecewise_linear_oracle(digits, positions, keyframes, size: int = 64) -> np.ndarray:
    """Each true digit moves in a straight line between its true keyframe positions
    (rounded to whole pixels), pasted like `data.compose` (overlaps combine with max).

    digits uint8 [N, D, 28, 28], positions int [T, N, D, 2] top-left (row, col)."""
    positions = np.asarray(positions)
    if positions.ndim != 4 or positions.shape[1:3] != np.shape(digits)[:2]:
        raise LatentVideoError(f"positions {list(positions.shape)} do not match digits {list(np.shape(digits))}")
    left, right, w = neighbours(keyframes, len(positions))
    w = w[:, None, None, None]  # [T, 1, 1, 1]
    path = np.rint((1 - w) * positions[left] + w * positions[right]).astype(np.int64)  # [T, N, D, 2]
    return compose(np.asarray(digits, np.uint8), path, size)


def bounce_sprites(video, keyframes, speed: float | None = None) -> np.ndarray:
    """Image-space motion prior (motion.fit_bounce): the keyframes' digits cut out as sprites and
    moved along straight paths that bounce off the walls; sequences it cannot explain (digits
    touching in every keyframe) get the crossfade. Keyframes are copied."""
    from ..motion import bounce_frames

    video = _check_video(video)
    if video.ndim != 4:
        raise LatentVideoError("bounce sprites cut gray digits out of a black background; got RGB clips")
    k = check_keyframes(keyframes, len(video))
    out = crossfade(video, k)
    for i in range(video.shape[1]):
        frames = bounce_frames(video[k, i] / 255.0, k, len(video), speed=speed)  # [T, H, W] or None
        if frames is not None:
            out[:, i] = np.clip(np.rint(frames * 255), 0, 255).astype(np.uint8)
    out[k] = video[k]
    return out


BASELINES = {  # name -> f(video uint8 [T, N, H, W], keyframes) -> uint8 [T, N, H, W]
    "all-black": all_black,
    "hold-nearest": hold_nearest,
    "crossfade": crossfade,
    "minterpolate": ffmpeg_minterpolate,
    "bounce-sprites": bounce_sprites,
}
