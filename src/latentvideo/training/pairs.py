"""The pair critic: a second WGAN-GP critic, on two frames of one shot, for the objects generator.

A single frame cannot tell a shape that the background net painted from one that a slot placed: both are
pixels, and a run that trains long enough lets the background net paint objects (that no latent path can
move). Two frames of one shot can tell them apart: the background stays, the objects move. The pair critic
scores two frames a few apart, stacked on channels:

- real: frames t and t + g of the footage (g uniform in 1..gap);
- G's: one latent rendered twice, the second time with every slot moved g steps of a learned speed (px per
  frame) in a random direction; appearance and background are kept.

To pass it, whatever does not move must look like background. G still renders single frames and the main
critic still scores single frames (the exported critic/ is unchanged); only training sees pairs.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..errors import LatentVideoError
from ..objects import latent_layout

SPEED_INIT = 2.0  # px per frame: the learned speed's start
SPEED_LR = 1e-2  # Adam step of the log speed (G's lr would take ~3,000 steps to double it)


class PairMotion(nn.Module):
    """G's second frame of a pair: each slot moves gap * speed px in a uniformly random direction."""

    def __init__(self, speed: float = SPEED_INIT):
        super().__init__()
        self.log_speed = nn.Parameter(torch.tensor(math.log(speed)))

    def speed(self) -> float:  # px per frame
        return float(self.log_speed.detach().exp())

    def forward(self, G, z: torch.Tensor, gaps: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """z [B, z_dim], gaps [B] (frames apart) -> the moved latents [B, z_dim], differentiable in the speed."""
        layout = latent_layout(G)
        idx = layout.index.to(z.device)  # [K, 2] latent indices of (row, col)
        B, K = len(z), len(idx)
        theta = (torch.rand(B, K, generator=generator) * (2 * math.pi)).to(z.device)
        direction = torch.stack([torch.sin(theta), torch.cos(theta)], -1)  # [B, K, 2]
        step = gaps.to(z)[:, None, None] * direction * (self.log_speed.exp() / layout.fold_range)  # fold units
        return z + torch.zeros_like(z).scatter(1, idx.flatten().expand(B, -1), step.flatten(1))


def pair_gaps(n: int, gap: int, generator: torch.Generator) -> torch.Tensor:
    """Frames between the two of each pair: uniform in 1..gap, [n] float."""
    return torch.randint(1, gap + 1, (n,), generator=generator).float()


def check_pair_settings(weight, gap, arch: str) -> None:
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight)):
        raise LatentVideoError(f"pair_weight must be a finite number >= 0, got {weight!r}")
    if weight < 0:
        raise LatentVideoError(f"pair_weight must be a finite number >= 0, got {weight!r}")
    if not isinstance(gap, int) or isinstance(gap, bool) or gap < 1:
        raise LatentVideoError(f"pair_gap must be an integer >= 1, got {gap!r}")
    if weight and arch != "objects":
        raise LatentVideoError("the pair critic needs a generator with position coordinates", hint="arch='objects'")
