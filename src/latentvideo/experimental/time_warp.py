"""Time warping (measured, not adopted: BENCHMARK.md): move the output frames along a path so that, between
every two keyframes, consecutive frames are equally far apart in a feature space (the keyframes keep
their times).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..errors import LatentVideoError


def arc_length_times(
    curve: Callable[[np.ndarray], torch.Tensor],
    key_times,
    query_times,
    render_fn: Callable[[torch.Tensor], torch.Tensor],
    feature_fn: Callable[[torch.Tensor], torch.Tensor] | None = None,
    density: int = 8,
) -> np.ndarray:
    """Keyframe-aware time warping of a path. curve(times [M]) -> latents [M, D]; key_times [K] increasing.

    Between every two consecutive keyframes the path is sampled densely (`density` points per output
    frame), rendered (`render_fn`: latents -> images) and measured (`feature_fn`: images -> features,
    pixels if None); each query time inside the segment is moved to where the path has covered the
    same fraction of the segment's arc length as the time has of its duration. Keyframe times and
    times outside [first, last keyframe] are unchanged. Returns float64 [T] warped times (monotone)."""
    t = np.asarray(key_times, np.float64)
    q = np.asarray(query_times, np.float64).copy()
    if t.ndim != 1 or len(t) < 2 or (np.diff(t) <= 0).any() or q.ndim != 1:
        raise LatentVideoError("time warping needs increasing keyframe times and flat query times")
    if not isinstance(density, int) or density < 1:
        raise LatentVideoError(f"density must be an integer >= 1, got {density!r}")
    feature_fn = feature_fn or (lambda x: x)
    for a, b in zip(t[:-1], t[1:]):
        inside = (q > a) & (q < b)
        if not inside.any():
            continue
        s = np.linspace(a, b, density * (int(inside.sum()) + 1) + 1)  # dense times over the segment
        with torch.no_grad():
            f = feature_fn(render_fn(curve(s)).float()).flatten(1).double().cpu().numpy()
        cum = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(f, axis=0), axis=1))])
        if not np.isfinite(cum).all() or cum[-1] <= 1e-12:  # a constant segment: nothing to warp
            continue
        cum = np.maximum.accumulate(cum / cum[-1])
        q[inside] = np.interp((q[inside] - a) / (b - a), cum, s)
    return q
