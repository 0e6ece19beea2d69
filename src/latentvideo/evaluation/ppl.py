"""Perceptual path length (Karras et al. 2019, StyleGAN): how smoothly a generator's images change along
paths in its latent space: the squared feature distance between the images at t and t + eps on random
paths, over eps^2. Full-path sampling: slerp between two N(0, I) samples in z, or lerp between their
mappings in w; the mean is taken over the samples between the 1st and 99th percentiles, as in the paper.
A generator with position coordinates draws its ends from its own prior (`G.sample_latents`: positions
uniform over the fold range), lerps the positions and slerps the rest, as StyleGAN samples z from the prior
G was trained on: positions drawn N(0, I) would sweep each object through the fold range and back.
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
from ..objects import latent_layout

SPACES = ("z", "w")
MOVING = ("all", "positions", "appearance")  # which coordinates a path moves (the last two: position layouts only)


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


def prior_path(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    """Rows a, b [N, D], t [N] -> [N, D]: slerp, except for the `positions` columns (uniform prior), which go
    linearly from a to b."""
    if positions is None:
        return slerp(a, b, t)
    gauss = torch.ones(a.shape[1], dtype=torch.bool, device=a.device)
    gauss[positions] = False
    out = torch.lerp(a, b, t[:, None])
    if gauss.any():
        out[:, gauss] = slerp(a[:, gauss], b[:, gauss], t)
    return out


def path_length_distances(
    G,
    feature_fn: Callable[[torch.Tensor], torch.Tensor],
    num_samples: int = 256,
    eps: float = 1e-4,
    space: str = "z",
    seed: int = 0,
    batch_size: int = 64,
    moving: str = "all",
) -> np.ndarray:
    """The per-sample PPL terms d(G(p(t)), G(p(t + eps))) / eps^2, float64 [num_samples], where d is the
    squared L2 distance of `feature_fn` features ([N, C, H, W] images -> [N, ...]) and p a random full path:
    slerp between z0, z1 ~ N(0, I) (space 'z'; with position coordinates from G's prior, `prior_path`) or lerp
    between mapping(z0), mapping(z1) (space 'w'), t ~ U(0, 1). `moving` 'positions' or 'appearance' (generators
    with position coordinates): the path moves those coordinates only, the others held at z0's. Seeded: the same
    arguments give the same samples on any device."""
    _check_space(G, space)
    if not (isinstance(num_samples, int) and num_samples >= 1) or not (isinstance(batch_size, int) and batch_size >= 1):
        raise LatentVideoError(f"num_samples and batch_size must be integers >= 1, got {num_samples}, {batch_size}")
    if not (eps > 0 and math.isfinite(eps)):
        raise LatentVideoError(f"eps must be a small positive number, got {eps}")
    z_dim = getattr(G, "z_dim", None)
    if not isinstance(z_dim, int):
        raise LatentVideoError("cannot tell the generator's latent size (G.z_dim)")
    dev, gen = module_device(G), torch.Generator().manual_seed(seed)
    layout = latent_layout(G) if space == "z" and hasattr(G, "sample_latents") else None
    if layout is None:  # all drawn first: batch_size changes nothing
        ends = torch.randn(2, num_samples, z_dim, generator=gen)  # [2, N, z_dim]
    else:
        ends = torch.stack([G.sample_latents(num_samples, gen) for _ in range(2)])
    times = torch.rand(num_samples, generator=gen)
    if moving not in MOVING or (moving != "all" and layout is None):
        raise LatentVideoError(f"cannot move only {moving!r} on this generator's paths", hint="moving='all'")
    pos = None if layout is None else layout.index.flatten()
    if moving != "all":  # the other coordinates held at the path's start
        held = torch.zeros(z_dim, dtype=torch.bool)
        held[pos] = True
        held = ~held if moving == "positions" else held
        ends[1][:, held] = ends[0][:, held]
    pos = None if pos is None else pos.to(dev)
    out = []
    with torch.no_grad():
        for i in range(0, num_samples, batch_size):
            n = min(batch_size, num_samples - i)
            a, b = ends[:, i : i + n].to(dev)
            t = times[i : i + n].to(dev)
            if space == "z":
                x = G(torch.cat([prior_path(a, b, t, pos), prior_path(a, b, t + eps, pos)]))
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
    moving: str = "all",
) -> float:
    """PPL: the mean of `path_length_distances` over the samples between their 1st and 99th percentiles
    (StyleGAN's filtering of outliers). Lower is smoother. Values depend on the feature space, so compare
    generators under the same `feature_fn`, eps and sample count only."""
    d = path_length_distances(G, feature_fn, num_samples, eps, space, seed, batch_size, moving)
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    return float(d[(d >= lo) & (d <= hi)].mean())
