"""The pair critic: a second WGAN-GP critic, on two frames of one shot, for the objects generator.

A single frame cannot tell a shape that the background net painted from one that a slot placed: both are
pixels, and a run that trains long enough lets the background net paint objects (that no latent path can
move). Two frames of one shot can tell them apart: the background stays, the objects move. The pair critic
scores two frames a few apart, stacked on channels:

- real: frames t and t + g of the footage (g uniform in 1..gap);
- G's: one latent rendered twice, the second time with every slot moved g times the footage's speed (px per
  frame, a setting) in a random direction; appearance and background are kept.

Real pairs never span a cut between shots (`frames.ArrayFrames` finds the cuts): 10 % of pairs 1 to 3 frames apart
spanned one in the Moving Shapes video, and the critic learned that more change is more real.

To pass it, whatever does not move must look like background. G still renders single frames and the main
critic still scores single frames (the exported critic/ is unchanged); only training sees pairs.
"""

from __future__ import annotations

import math

import torch

from ..errors import LatentVideoError
from ..objects import latent_layout


def move_slots(G, z: torch.Tensor, gaps: torch.Tensor, speed: float, generator: torch.Generator) -> torch.Tensor:
    """G's second frame of a pair: z [B, z_dim] with every slot moved gaps [B] * speed px in a uniformly random
    direction; appearance and background kept. The speed is the footage's (a setting): a speed learned against
    the pair critic ran away (2 -> 9 px per frame in 300 steps of a Moving Shapes run whose real pairs still
    spanned cuts, 3.6 px per frame in the footage): moving every slot faster was G's cheapest way to make its
    pairs change as much as the real ones."""
    layout = latent_layout(G)
    idx = layout.index.to(z.device)  # [K, 2] latent indices of (row, col)
    B, K = len(z), len(idx)
    theta = (torch.rand(B, K, generator=generator) * (2 * math.pi)).to(z.device)
    direction = torch.stack([torch.sin(theta), torch.cos(theta)], -1)  # [B, K, 2]
    step = gaps.to(z)[:, None, None] * direction * (speed / layout.fold_range)  # in fold units
    return z + torch.zeros_like(z).scatter(1, idx.flatten().expand(B, -1), step.flatten(1))


def pair_gaps(n: int, gap: int, generator: torch.Generator) -> torch.Tensor:
    """Frames between the two of each pair: uniform in 1..gap, [n] float."""
    return torch.randint(1, gap + 1, (n,), generator=generator).float()


def check_pair_settings(weight, gap, speed, arch: str) -> None:
    if not (isinstance(speed, (int, float)) and not isinstance(speed, bool) and math.isfinite(speed) and speed > 0):
        raise LatentVideoError(f"pair_speed must be a number of px per frame > 0, got {speed!r}")
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight)):
        raise LatentVideoError(f"pair_weight must be a finite number >= 0, got {weight!r}")
    if weight < 0:
        raise LatentVideoError(f"pair_weight must be a finite number >= 0, got {weight!r}")
    if not isinstance(gap, int) or isinstance(gap, bool) or gap < 1:
        raise LatentVideoError(f"pair_gap must be an integer >= 1, got {gap!r}")
    if weight and arch != "objects":
        raise LatentVideoError("the pair critic needs a generator with position coordinates", hint="arch='objects'")
