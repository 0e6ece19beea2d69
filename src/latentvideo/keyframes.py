"""Keyframes in any form a user has (paths, PIL images, arrays) -> float [K, C, H, W] for a model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .errors import LatentVideoError


def prepare_keyframes(keyframes, channels: int, resolution: int, resize: bool = False) -> torch.Tensor:
    """Paths, PIL images or arrays ([K, H, W], [K, H, W, 3], [K, C, H, W], uint8 or float in [0, 1];
    or a list mixing paths, PIL images and single-frame arrays) -> float [K, C, H, W] for a model
    with `channels` and `resolution`. RGB becomes gray for a 1-channel model and gray RGB for a
    3-channel one; a size other than the model's is an error unless `resize`."""
    from PIL import Image

    from .data import _to_array, load_image, to_frames

    if isinstance(keyframes, (np.ndarray, torch.Tensor)):
        a = _as_uint8(keyframes, "keyframes")
        if a.ndim != 4 and a.ndim != 3:
            raise LatentVideoError(f"keyframes must be [K, H, W], [K, H, W, C] or [K, C, H, W], got {list(a.shape)}")
        images, names = [_as_image(x, f"keyframe {i}") for i, x in enumerate(a)], None
    elif isinstance(keyframes, (str, Path, Image.Image)):
        raise LatentVideoError("keyframes must be a list of images, not one image")
    else:
        images, names = [], []
        for i, k in enumerate(keyframes):
            if isinstance(k, (str, Path)):
                images.append(load_image(k))
                names.append(str(k))
            elif isinstance(k, Image.Image):  # any mode, read as load_image reads files
                images.append(_to_array(k))
                names.append(f"image {i}")
            elif isinstance(k, (np.ndarray, torch.Tensor)):  # one frame [H, W], [H, W, C] or [C, H, W]
                images.append(_as_image(_as_uint8(k, f"keyframe {i}"), f"keyframe {i}"))
                names.append(f"image {i}")
            else:
                raise LatentVideoError(f"keyframe {i} is a {type(k).__name__}: expected a path, PIL image or array")
    if not images:
        raise LatentVideoError("no keyframes given")
    frames = to_frames(images, channels, resolution, resize=resize, names=names)
    return torch.from_numpy(frames).float() / 255


def _as_uint8(x, what: str) -> np.ndarray:
    """uint8 (or integers in 0..255) as they are; floats in [0, 1] -> uint8."""
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise LatentVideoError(f"{what} must be uint8 or floats in [0, 1], got {a.dtype}")
    if not np.isfinite(a).all():
        raise LatentVideoError(f"{what} contain NaN or inf")
    if np.issubdtype(a.dtype, np.integer):  # integer pixel values, as uint8 but wider
        if a.size and (a.min() < 0 or a.max() > 255):
            raise LatentVideoError(f"{what} hold {a.dtype} values outside 0..255")
        return a.astype(np.uint8)
    return np.clip(np.round(a * 255), 0, 255).astype(np.uint8)


def _as_image(x: np.ndarray, what: str) -> np.ndarray:
    """One frame [H, W], [H, W, C] or [C, H, W] (C = 1 or 3) -> [H, W] or [H, W, 3]."""
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(1, 2, 0)  # [C, H, W] -> [H, W, C]
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)) or min(x.shape[:2]) < 2:
        raise LatentVideoError(f"{what} must be [H, W], [H, W, 3] or [C, H, W], got {list(x.shape)}")
    return np.ascontiguousarray(x)
