"""Objects that reach their own walls: a clip's copy of G that places each sprite's centre past G's fold range.

G folds a sprite's centre at the ends of its fold range, but an object smaller than G's sprite box goes nearer the
wall before it bounces: a 12 px shape in the colour G's 24 px box, up to 6 px nearer. The unwrap can fit its line in
each object's own range (`walls`, unwrap.py), but G still cannot draw the object there: the inversion fitted a
keyframe whose object touches the wall at the end of G's range, up to 6 px off, the line runs through that point,
and the path is clamped back to G's range wherever it passes the walls.

`reach_walls(G, latents, keyframes)` gives a clip a shallow copy of its G (the same weights) whose `reach` is its
sprites' walls (`ObjectGenerator.walls`), so that fold(u) in [0, 1] spans each slot's own range, bouncing where the
sprite's ink meets the canvas edge. The keyframes' positions are converted to those units and fitted again there
(the positions alone, L-BFGS through the copy's sprites drawn once: `slots.fit_positions`), so that an object at
the wall is drawn at the wall. The unwrap then works in the copy's units (`unwrap_positions(own=True)`), and the
path renders through the copy as it is. `scripts/shape_walls.py` simulates what this is worth.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from .errors import LatentVideoError
from .objects import fold, latent_layout
from .slots import fit_positions

STEPS = 20  # L-BFGS iterations of the keyframe positions in the reached units


def reach_walls(G, latents: torch.Tensor, keyframes: torch.Tensor, steps: int = STEPS):
    """A clip's G (a generator with `walls`, usually its pivotally tuned copy), its keyframe latents [n, z_dim]
    and images [n, C, H, W] -> (a shallow copy of G reaching each slot's walls, the latents in its units [n, z_dim]
    with the positions fitted again there). G is not modified."""
    layout = latent_layout(G)
    if layout is None or not hasattr(G, "walls"):
        raise LatentVideoError("reaching the walls needs a generator with position coordinates and `walls`")
    if getattr(G, "reach", None) is not None:  # its walls would be measured against G's own fold range
        raise LatentVideoError("this generator reaches its walls already")
    walls = G.walls(latents[0])  # [K, 2, 2] fold units past G's range
    reached = copy.copy(G)  # shares G's weights; `reach` is the copy's own attribute
    reached.reach = torch.as_tensor(walls, dtype=latents.dtype, device=latents.device)
    z = latents.detach().clone()
    z[:, layout.index] = to_reach(z[:, layout.index], walls)
    if steps and walls.any():
        z = fit_positions(reached, z, keyframes.to(z), steps)
    return reached, z


def to_reach(u: torch.Tensor, walls: np.ndarray) -> torch.Tensor:
    """Positions u [..., K, 2] in G's fold units -> the same rendered positions in each slot's own range (a copy
    reaching `walls` [K, 2, 2] draws them where G draws u)."""
    w = torch.as_tensor(walls, dtype=u.dtype, device=u.device)
    return (fold(u) + w[..., 0]) / (1 + w.sum(-1))
