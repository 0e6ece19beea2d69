"""Perceptual path length (Karras et al. 2019, StyleGAN): how smoothly a generator's images change along
paths in its latent space: the squared feature distance between the images at t and t + eps on random
paths, over eps^2. Full-path sampling: slerp between two N(0, I) samples in z, or lerp between their
mappings in w; the mean is taken over the samples between the 1st and 99th percentiles, as in the paper.
LPIPS backbones cannot be downloaded here, so the distance is taken in a given feature space: the
project's digit classifier (`DigitClassifier.features`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch

from ..errors import LatentVideoError
from ..models import has_mapping, module_device

SPACES = ("z", "w")


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
    dev, gen = module_device(G), torch.Generator().manual_seed(seed)
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
