"""Benchmark metrics on frames in [0, 1].

Frame metrics take generated and true frames of the same shape, float in [0, 1],
laid out [T, N, H, W] or [N, H, W] (any leading dims; uint8 is scaled by 1/255),
and return one value per frame (an array of the leading shape); the benchmark
averages over the non-keyframe frames of each sequence and bootstraps over
sequences with `bootstrap_ci`.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import LatentVideoError

PSNR_MAX_DB = 100.0  # PSNR of identical frames (MSE floored at 1e-10) instead of inf


def _float(x) -> np.ndarray:
    x = np.asarray(x)
    return x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)


def _pair(gen, true) -> tuple[np.ndarray, np.ndarray]:
    gen, true = _float(gen), _float(true)
    if gen.shape != true.shape or gen.ndim < 2:
        raise LatentVideoError(
            f"generated {list(gen.shape)} and true {list(true.shape)} frames must match, [..., H, W]"
        )
    return gen, true


# ---------------------------------------------------------------- pixels


def mse_per_pixel(gen, true) -> np.ndarray:
    """Mean squared error over the pixels of each frame: [...]."""
    gen, true = _pair(gen, true)
    return ((gen - true) ** 2).mean((-2, -1))


def mse_per_frame(gen, true) -> np.ndarray:
    """Squared error summed over the H x W pixels of each frame: [...].

    Averaged over frames this is the per-frame MSE that video-prediction papers report
    for Moving MNIST (about 4096 x the per-pixel MSE at 64x64)."""
    gen, true = _pair(gen, true)
    return ((gen - true) ** 2).sum((-2, -1))


def psnr(gen, true) -> np.ndarray:
    """Peak signal-to-noise ratio in dB per frame (peak 1), capped at PSNR_MAX_DB: [...]."""
    mse = np.maximum(mse_per_pixel(gen, true), 10 ** (-PSNR_MAX_DB / 10))
    return -10 * np.log10(mse)


def ssim(gen, true) -> np.ndarray:
    """Structural similarity per frame: scikit-image `structural_similarity` with
    data_range=1 and its defaults (7x7 uniform window): [...]."""
    from skimage.metrics import structural_similarity

    gen, true = _pair(gen, true)
    lead = gen.shape[:-2]
    g, t = gen.reshape(-1, *gen.shape[-2:]), true.reshape(-1, *true.shape[-2:])  # [F, H, W]
    out = [structural_similarity(a, b, data_range=1.0) for a, b in zip(g, t)]
    return np.asarray(out, np.float64).reshape(lead)


# ---------------------------------------------------------------- motion and ink


def _pool(x: np.ndarray, pool: int) -> np.ndarray:  # [..., H, W] -> [..., pool * pool]
    H, W = x.shape[-2:]
    if H % pool or W % pool:
        raise LatentVideoError(f"frame size {H}x{W} is not a multiple of the {pool}x{pool} pooling grid")
    return x.reshape(*x.shape[:-2], pool, H // pool, pool, W // pool).mean((-3, -1)).reshape(*x.shape[:-2], -1)


def cell_costs(size: tuple[int, int], pool: int = 16) -> np.ndarray:
    """Euclidean distance in frame pixels between the centres of the pool x pool cells: [P*P, P*P]."""
    H, W = size
    r, c = np.meshgrid((np.arange(pool) + 0.5) * H / pool, (np.arange(pool) + 0.5) * W / pool, indexing="ij")
    centres = np.stack([r.ravel(), c.ravel()], 1)  # [P*P, 2]
    return np.sqrt(((centres[:, None] - centres[None]) ** 2).sum(-1))


def motion_error(gen, true, pool: int = 16, min_mass: float = 0.01) -> np.ndarray:
    """Exact earth mover's distance (POT `ot.emd2`) per frame, in pixels: [...].

    Both frames are average-pooled to a pool x pool grid and normalised to unit mass;
    the ground cost is the distance between cell centres in pixels of the full frame,
    so a shape moved by k pixels costs about k (to the cell size, 4 px at 64/16).
    A generated frame holding less than `min_mass` of the true frame's ink gets the
    canvas diagonal (a vanished digit moved "everywhere"); two empty frames get 0.
    """
    import ot

    gen, true = _pair(gen, true)
    H, W = gen.shape[-2:]
    lead = gen.shape[:-2]
    cost = cell_costs((H, W), pool)  # computed once: [P*P, P*P]
    a = np.clip(_pool(gen, pool), 0, None).reshape(-1, pool * pool)  # [F, P*P]
    b = np.clip(_pool(true, pool), 0, None).reshape(-1, pool * pool)
    ma, mb = a.sum(1), b.sum(1)  # [F]
    out = np.full(len(a), math.hypot(H, W))
    out[(ma == 0) & (mb == 0)] = 0.0
    for i in np.flatnonzero((ma >= min_mass * mb) & (mb > 0) & (ma > 0)):
        sa, sb = a[i] > 0, b[i] > 0  # solve on the support only: same optimum, much faster
        out[i] = ot.emd2(a[i, sa] / ma[i], b[i, sb] / mb[i], cost[np.ix_(sa, sb)], numItermax=1_000_000)
    return out.reshape(lead)


def ink_ratio(gen, true) -> np.ndarray:
    """Total intensity of the generated frame over that of the true frame: [...]
    (1 = as much ink as the truth; nan where the true frame is empty)."""
    gen, true = _pair(gen, true)
    g, t = gen.sum((-2, -1)), true.sum((-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(t > 0, g / np.where(t > 0, t, 1), np.nan)


def flicker(video) -> np.ndarray:
    """Mean absolute frame-to-frame change of each clip: [T, N, H, W] -> [N] (or [T, H, W] -> scalar).
    Compare a generated clip's value with the true clip's."""
    video = _float(video)
    if video.ndim < 3 or len(video) < 2:
        raise LatentVideoError(f"flicker needs a clip [T, ..., H, W] with T >= 2, got {list(video.shape)}")
    return np.abs(np.diff(video, axis=0)).mean(axis=(0, -2, -1))


# ---------------------------------------------------------------- identity


def label_sets(labels) -> np.ndarray:
    """Digit labels int [N, D] -> multi-hot bool [N, 10]. Repeated digits (3 and 3) give one class."""
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.size and (labels.min() < 0 or labels.max() > 9):
        raise LatentVideoError(f"labels must be digit classes 0-9 of shape [N, D], got {list(labels.shape)}")
    out = np.zeros((len(labels), 10), bool)
    out[np.arange(len(labels))[:, None], labels] = True
    return out


def identity_match(pred, labels) -> np.ndarray:
    """Whether each frame's predicted digit set equals its sequence's true set.

    pred: multi-hot bool [..., N, 10] (e.g. [T, N, 10]), labels: int [N, D] -> bool [..., N]."""
    pred = np.asarray(pred, bool)
    true = label_sets(labels)  # [N, 10]
    if pred.shape[-2:] != true.shape:
        raise LatentVideoError(f"predictions {list(pred.shape)} do not match labels for {len(true)} sequences")
    return (pred == true).all(-1)


def identity(pred, labels) -> float:
    """Share of frames whose predicted digit set equals the true set."""
    return float(identity_match(pred, labels).mean())


# ---------------------------------------------------------------- Fréchet distance


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """Mean [F] and covariance [F, F] of features [N, F]."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise LatentVideoError(f"features must be [N, F] with N >= 2, got {list(x.shape)}")
    return x.mean(0), np.cov(x, rowvar=False)


def frechet_from_stats(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)), as in FID (Heusel et al. 2017)."""
    from scipy import linalg

    covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():  # singular product: nudge the diagonals
        offset = np.eye(len(sigma1)) * eps
        covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    covmean = np.real(covmean)  # imaginary parts are numerical noise
    diff = mu1 - mu2
    return float(max(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean), 0.0))


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between two feature sets [N, F] and [M, F]."""
    return frechet_from_stats(*feature_stats(features_a), *feature_stats(features_b))


def frechet_split_half(features, seed: int = 0) -> float:
    """Real-vs-real reference: Fréchet distance between two random halves of one set,
    the floor that finite samples give (compare with sets of the same half size)."""
    x = np.asarray(features)
    idx = np.random.default_rng(seed).permutation(len(x))
    return frechet_distance(x[idx[: len(x) // 2]], x[idx[len(x) // 2 :]])


# ---------------------------------------------------------------- intervals


def bootstrap_ci(values, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-sequence `values` [N] and its 95 % percentile
    bootstrap interval, resampling sequences with replacement."""
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise LatentVideoError("bootstrap_ci needs at least one value")
    idx = np.random.default_rng(seed).integers(0, v.size, (n_boot, v.size))  # [B, N]
    means = v[idx].mean(1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(v.mean()), float(low), float(high)
