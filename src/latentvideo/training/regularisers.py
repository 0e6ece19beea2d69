"""Regularisers of GAN training.

path_length_penalty   StyleGAN2's path-length regulariser: (|J^T y| - a)^2 with y ~ N(0, I) / sqrt(HW)
                      and `a` a running mean of |J^T y|; used by training (GANConfig.pl_weight).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..errors import LatentVideoError
from ..models import has_mapping

PL_DECAY = 0.01  # StyleGAN2's decay of the running mean of path lengths


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
