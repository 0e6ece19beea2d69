"""How smoothly a generator's images change along paths in its latent space.

    perceptual_path_length  PPL (Karras et al. 2019, StyleGAN): the squared feature distance between the
                            images at t and t + eps on random paths, over eps^2. Full-path sampling: slerp
                            between two N(0, I) samples in z, or lerp between their mappings in w; the mean
                            is taken over the samples between the 1st and 99th percentiles, as in the paper.
                            LPIPS backbones cannot be downloaded here, so the distance is taken in a given
                            feature space: the project's digit classifier (`DigitClassifier.features`).
    path_length_penalty     StyleGAN2's path-length regulariser: (|J^T y| - a)^2 with y ~ N(0, I) / sqrt(HW)
                            and `a` a running mean of |J^T y|; used by training (GANConfig.pl_weight).
    arc_length_times        time warping: moves the output frames along a path so that, between every two
                            keyframes, consecutive frames are equally far apart in a feature space
                            (the keyframes keep their times).

All three take G: [N, z_dim] -> [N, C, H, W]; the w-space variants need a generator with a mapping network
(`models.Generator(mapping_layers > 0)`, which has `mapping(z)` and `synthesis(w)`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from .errors import LatentVideoError
from .models import has_mapping

SPACES = ("z", "w")
PL_DECAY = 0.01  # StyleGAN2's decay of the running mean of path lengths


def _device(G) -> torch.device:
    p = next(iter(G.parameters()), None) if hasattr(G, "parameters") else None
    return p.device if p is not None else torch.device("cpu")


def _check_space(G, space: str) -> None:
    if space not in SPACES:
        raise LatentVideoError(f"unknown latent space {space!r}", hint="use 'z' or 'w'")
    if space == "w" and not has_mapping(G):
        raise LatentVideoError("w-space needs a generator with a mapping network", hint="use space='z'")


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Rows a, b [N, D], t [N] -> [N, D]: the direction rotates on the great circle from a to b (as in
    StyleGAN's PPL), the norm goes linearly from |a| to |b| (so N(0, I) samples stay on their shell)."""
    t = t[:, None]
    na, nb = a.norm(dim=1, keepdim=True), b.norm(dim=1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    d = (ua * ub).sum(1, keepdim=True).clamp(-1, 1)
    p = t * torch.acos(d)
    c = ub - d * ua
    c = c / c.norm(dim=1, keepdim=True).clamp_min(1e-12)
    u = ua * torch.cos(p) + c * torch.sin(p)
    return u / u.norm(dim=1, keepdim=True).clamp_min(1e-12) * ((1 - t) * na + t * nb)


def path_length_distances(
    G,
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    num_samples: int = 256,
    eps: float = 1e-4,
    space: str = "z",
    seed: int = 0,
    batch_size: int = 64,
) -> np.ndarray:
    """The per-sample PPL terms d(G(p(t)), G(p(t + eps))) / eps^2, float64 [num_samples], where d is the
    squared L2 distance of `feature_fn` features ([N, C, H, W] images -> [N, ...]) and p a random full path:
    slerp between z0, z1 ~ N(0, I) (space 'z') or lerp between mapping(z0), mapping(z1) (space 'w'),
    t ~ U(0, 1). Seeded: the same arguments give the same samples on any device."""
    _check_space(G, space)
    if not (isinstance(num_samples, int) and num_samples >= 1) or not (isinstance(batch_size, int) and batch_size >= 1):
        raise LatentVideoError(f"num_samples and batch_size must be integers >= 1, got {num_samples}, {batch_size}")
    if not (eps > 0 and math.isfinite(eps)):
        raise LatentVideoError(f"eps must be a small positive number, got {eps}")
    z_dim = getattr(G, "z_dim", None)
    if not isinstance(z_dim, int):
        raise LatentVideoError("cannot tell the generator's latent size (G.z_dim)")
    dev, gen = _device(G), torch.Generator().manual_seed(seed)
    ends = torch.randn(2, num_samples, z_dim, generator=gen)  # all drawn first: batch_size changes nothing
    times = torch.rand(num_samples, generator=gen)
    out = []
    with torch.no_grad():
        for i in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - i)
            a, b = ends[:, i : i + n].to(dev)
            t = times[i : i + n].to(dev)
            if space == "z":
                x = G(torch.cat([slerp(a, b, t), slerp(a, b, t + eps)]))
            else:
                w = G.mapping(torch.cat([a, b]))
                a, b = w[:n], w[n:]
                x = G.synthesis(torch.cat([torch.lerp(a, b, t[:, None]), torch.lerp(a, b, (t + eps)[:, None])]))
            f = feature_fn(x.float()).flatten(1).double()
            out.append(((f[:n] - f[n:]).pow(2).sum(1) / eps**2).cpu())
    return torch.cat(out).numpy()


def perceptual_path_length(
    G,
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    num_samples: int = 256,
    eps: float = 1e-4,
    space: str = "z",
    seed: int = 0,
    batch_size: int = 64,
) -> float:
    """PPL: the mean of `path_length_distances` over the samples between their 1st and 99th percentiles
    (StyleGAN's filtering of outliers). Lower is smoother. Values depend on the feature space, so compare
    generators under the same `feature_fn`, eps and sample count only."""
    d = path_length_distances(G, feature_fn, num_samples, eps, space, seed, batch_size)
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())


def path_length_penalty(
    G,
    z: torch.Tensor,
    pl_mean: torch.Tensor | float = 0.0,
    decay: float = PL_DECAY,
    generator: torch.Generator | None = None,
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """StyleGAN2 path-length regularisation on a batch z [N, z_dim] -> (penalty, new running mean).

    With w = mapping(z) (w = z without a mapping network), x = synthesis(w) and y ~ N(0, I) / sqrt(H W)
    drawn from `generator` (a CPU torch.Generator, for reproducible training), the lengths are
    |d(x . y)/dw| per sample; the running mean moves towards their batch mean by `decay` (the batch mean
    is first passed through `reduce`, e.g. an average over DDP ranks), and the penalty is
    mean((length - new mean)^2). The penalty has a graph into G's parameters (and the mapping network's);
    the new mean is detached."""
    if z.ndim != 2:
        raise LatentVideoError(f"z must be [N, z_dim], got {tuple(z.shape)}")
    with torch.enable_grad():
        if has_mapping(G):
            w = G.mapping(z)
            x = G.synthesis(w)
        else:
            w = z.detach().requires_grad_(True)
            x = G(w)
        noise = torch.randn(x.shape, generator=generator).to(x.device) / math.sqrt(x.shape[-2] * x.shape[-1])
        (grad,) = torch.autograd.grad((x * noise).sum(), w, create_graph=True)
        lengths = grad.pow(2).sum(1).sqrt()  # [N]
        batch_mean = lengths.mean().detach()
        if reduce is not None:
            batch_mean = reduce(batch_mean)
        pl_mean = torch.as_tensor(pl_mean, dtype=batch_mean.dtype, device=batch_mean.device)
        new_mean = (pl_mean + decay * (batch_mean - pl_mean)).detach()
        penalty = (lengths - new_mean).pow(2).mean()
    return penalty, new_mean


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
