"""Paths through latent space from keyframe latents placed at given times.

`fit_trajectory` is the pipeline's regression: optional PCA, then a least-squares polynomial
over time (a line by default) per component, evaluated anywhere (inside the keyframe range it
interpolates, outside it extrapolates). `lerp_path` and `slerp_path` are the baselines that
pass exactly through every keyframe.

Fitting runs in float64 numpy; evaluation returns float32 on the latents' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .errors import LatentVideoError


def evenly_spaced_times(k: int, num_frames: int) -> np.ndarray:
    """Frame indices of k keyframes spread over a clip of num_frames: round(linspace(0, num_frames - 1, k)).

    The first and last frames are always keyframes; e.g. (3, 20) -> [0, 10, 19] (9.5 rounds to even)."""
    if not 2 <= k <= num_frames:
        raise LatentVideoError(f"need 2 <= keyframes <= frames, got {k} keyframes for {num_frames} frames")
    return np.round(np.linspace(0, num_frames - 1, k)).astype(np.int64)


def check_times(times, k: int, num_frames: int | None = None) -> np.ndarray:
    """Validate keyframe times (one per keyframe, finite, strictly increasing) -> float64 [k]."""
    try:
        t = np.asarray(times, dtype=np.float64)
    except (TypeError, ValueError):
        raise LatentVideoError(f"keyframe times must be numbers, got {times!r}") from None
    if t.ndim != 1:
        raise LatentVideoError(f"keyframe times must be a flat list, got shape {t.shape}")
    if k < 2:
        raise LatentVideoError(f"need at least 2 keyframes, got {k}")
    if len(t) != k:
        raise LatentVideoError(f"got {len(t)} keyframe times for {k} keyframes", hint="give one time per keyframe")
    if not np.isfinite(t).all():
        raise LatentVideoError(f"keyframe times must be finite, got {t.tolist()}")
    if len(np.unique(t)) != k:
        raise LatentVideoError(f"keyframe times must be distinct, got {t.tolist()}")
    if (np.diff(t) < 0).any():
        raise LatentVideoError(f"keyframe times must be increasing, got {t.tolist()}", hint="sort the keyframes")
    if num_frames is not None and (t[0] < 0 or t[-1] > num_frames - 1):
        raise LatentVideoError(f"keyframe times must lie in [0, {num_frames - 1}] for {num_frames} frames")
    return t


@dataclass
class Trajectory:
    """z(t) = mean + poly(u) @ basis with u = (t - t_center) / t_scale."""

    mean: np.ndarray  # [z_dim] origin of the component space
    basis: np.ndarray | None  # [r, z_dim] orthonormal principal directions; None = latent space itself
    coeffs: np.ndarray  # [degree + 1, r] polynomial coefficients, lowest power first
    t_center: float
    t_scale: float
    times: np.ndarray  # [K] keyframe times
    residuals: np.ndarray  # [K] L2 distance of each keyframe latent from the fitted curve
    explained: float  # fraction of the basis data's variance kept by the components (1.0 without PCA)
    device: torch.device

    @property
    def degree(self) -> int:
        return self.coeffs.shape[0] - 1

    @property
    def components(self) -> int:
        return self.coeffs.shape[1]

    def __call__(self, times) -> torch.Tensor:  # [T, z_dim] float32
        return torch.from_numpy(self.evaluate(times)).float().to(self.device)

    def evaluate(self, times) -> np.ndarray:  # [T, z_dim] float64
        y = _vandermonde(_query(times), self.t_center, self.t_scale, self.degree) @ self.coeffs  # [T, r]
        return self.mean + (y if self.basis is None else y @ self.basis)


def fit_trajectory(latents: torch.Tensor, times, degree: int = 1, pca: float | None = None, reference=None):
    """Least-squares polynomial of `degree` over time through keyframe latents [K, z_dim].

    pca: keep the fewest principal components that explain this fraction of variance (0, 1];
    the basis comes from the keyframes or from `reference` latents [M, z_dim] (e.g. many
    training frames). Keyframes are centred on the basis mean, projected, fitted, mapped back.
    """
    Z = _as_latents(latents)  # [K, D]
    K, D = Z.shape
    t = check_times(times, K)
    if not isinstance(degree, (int, np.integer)) or degree < 0:
        raise LatentVideoError(f"degree must be an integer >= 0, got {degree!r}")
    if degree >= K:
        raise LatentVideoError(
            f"a degree-{degree} fit needs more than {degree} keyframes, got {K}", hint="lower the degree"
        )

    mean, basis, explained = np.zeros(D), None, 1.0
    if pca is not None:
        if not 0 < pca <= 1:
            raise LatentVideoError(f"pca must be a variance fraction in (0, 1], got {pca}")
        ref = Z if reference is None else _as_latents(reference)
        if ref.shape[1] != D:
            raise LatentVideoError(f"reference latents have size {ref.shape[1]}, keyframes {D}")
        mean, basis, explained = _pca(ref, pca)
    Y = Z - mean if basis is None else (Z - mean) @ basis.T  # [K, r]

    # normalised time keeps the Vandermonde matrix well conditioned for any time units
    t_center, t_scale = float(t.mean()), float(np.abs(t - t.mean()).max())
    V = _vandermonde(t, t_center, t_scale, degree)  # [K, degree + 1]
    coeffs = np.linalg.lstsq(V, Y, rcond=None)[0]  # [degree + 1, r]

    traj = Trajectory(mean, basis, coeffs, t_center, t_scale, t, np.zeros(K), explained, _device(latents))
    traj.residuals = np.linalg.norm(traj.evaluate(t) - Z, axis=1)
    return traj


def lerp_path(latents: torch.Tensor, times, query_times) -> torch.Tensor:
    """Piecewise-linear path through the keyframes -> [T, z_dim]; the end segments extend outside."""
    Z = _as_latents(latents)
    t = check_times(times, len(Z))
    seg, w = _segments(t, _query(query_times))  # [T], [T]
    z = (1 - w)[:, None] * Z[seg] + w[:, None] * Z[seg + 1]  # [T, D]
    return torch.from_numpy(z).float().to(_device(latents))


def slerp_path(latents: torch.Tensor, times, query_times) -> torch.Tensor:
    """Piecewise spherical path: directions rotate on the great circle between consecutive
    keyframes, norms change linearly (so equal-norm keyframes give a constant norm) -> [T, z_dim]."""
    Z = _as_latents(latents)
    t = check_times(times, len(Z))
    seg, w = _segments(t, _query(query_times))
    a, b = Z[seg], Z[seg + 1]  # [T, D]
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)  # [T]
    ua, ub = a / np.maximum(na, 1e-12)[:, None], b / np.maximum(nb, 1e-12)[:, None]
    omega = np.arccos(np.clip((ua * ub).sum(1), -1, 1))  # [T] angle between the keyframes
    so = np.sin(omega)
    flat = so < 1e-6  # (anti)parallel or zero keyframes: no unique great circle, fall back to lerp
    so = np.where(flat, 1.0, so)
    u = (np.sin((1 - w) * omega) / so)[:, None] * ua + (np.sin(w * omega) / so)[:, None] * ub
    norm = np.maximum((1 - w) * na + w * nb, 0)
    z = np.where(flat[:, None], (1 - w)[:, None] * a + w[:, None] * b, norm[:, None] * u)
    return torch.from_numpy(z).float().to(_device(latents))


# ---------------------------------------------------------------- helpers


def _pca(X: np.ndarray, fraction: float):
    """Mean [D], the fewest principal directions [r, D] keeping `fraction` of the variance, kept fraction."""
    mean = X.mean(0)
    _, s, Vt = np.linalg.svd(X - mean, full_matrices=False)
    var = s**2
    total = var.sum()
    if total <= 0:  # all latents equal: one arbitrary direction, the trajectory is constant
        return mean, Vt[:1], 1.0
    cum = np.cumsum(var) / total
    r = int(np.searchsorted(cum, fraction - 1e-9) + 1)  # tolerance so that fraction 1.0 stops at the rank
    r = min(r, len(var))
    return mean, Vt[:r], float(cum[r - 1])


def _vandermonde(t: np.ndarray, center: float, scale: float, degree: int) -> np.ndarray:
    u = (t - center) / scale
    return u[:, None] ** np.arange(degree + 1)  # [T, degree + 1]


def _segments(t: np.ndarray, q: np.ndarray):
    """Segment index [T] (0..K-2) and position w [T] of each query time; w is outside [0, 1] beyond the ends."""
    seg = np.clip(np.searchsorted(t, q, side="right") - 1, 0, len(t) - 2)
    w = (q - t[seg]) / (t[seg + 1] - t[seg])
    return seg, w


def _query(times) -> np.ndarray:
    q = np.asarray(times.detach().cpu() if torch.is_tensor(times) else times, dtype=np.float64)
    if q.ndim != 1 or not np.isfinite(q).all():
        raise LatentVideoError("query times must be a flat list of finite numbers")
    return q


def _as_latents(latents) -> np.ndarray:
    Z = latents.detach().cpu().double().numpy() if torch.is_tensor(latents) else np.asarray(latents, np.float64)
    if Z.ndim != 2 or Z.shape[0] == 0:
        raise LatentVideoError(f"latents must have shape [K, z_dim], got {Z.shape}")
    if not np.isfinite(Z).all():
        raise LatentVideoError("latents hold NaN or infinite values")
    return Z


def _device(latents) -> torch.device:
    return latents.device if torch.is_tensor(latents) else torch.device("cpu")
