"""Objects that no slot draws: find them in the clip fit's residual and move a slot onto them.

The clip fit (slots.invert_clips) is a local search. Where two objects overlap or share a hue in a keyframe,
one slot can take both and another slot settle on nothing (or on the background), and where a small object lies
far from every slot's start, position gradients never reach it. That object then has no slot: the path cannot
move it, and the clip either loses it or shows it faint, wherever the backdrop kept it.

`slots.invert_clips(cover=True)` looks for such objects in what the fitted slots leave unexplained. Per
keyframe, the largest connected region where no slot's alpha covers the pixel and the rendering (over the clip's
plate where there is one) differs from the keyframe by more than `threshold` in RGB distance, of at least
`min_area` px, is a missed object. Candidates move one slot onto the missed objects' centres:
  - in every keyframe, where every keyframe shows one (the slot becomes that object: its colour coordinates, with
    `tint`, are reset to the regions' median colour over the sprite's shade);
  - or in one keyframe only (the slot tracks that object elsewhere and lost it in this keyframe).
The candidate that reconstructs the keyframes best is fitted again (the joint L-BFGS fit, blurred then sharp),
and kept only if the fitted clip's keyframe error is at least COVER_GAIN lower than before: a move that barely
helps is more often a second slot on an object already drawn than a missed one. All in latent space: a slot's
position and colour are latent coordinates, and the objects still move only along the latent path.
"""

from __future__ import annotations

import numpy as np
import torch

from .objects import LatentLayout
from .tints import phi_inverse

COVER_THRESHOLD = 0.3  # RGB distance (channels in [0, 1]) above which a pixel is left unexplained
COVER_MIN_AREA = 24  # px: a smaller unexplained region is an edge or noise, not an object
COVER_GAIN = 0.05  # a refitted move is kept where it lowers the keyframes' error by this fraction at least


def missed_regions(
    recons: torch.Tensor, images: torch.Tensor, free=None, threshold=COVER_THRESHOLD, min_area=COVER_MIN_AREA
):
    """Renderings and keyframes [n, C, H, W] -> per keyframe None or (centre (row, col) px, median colour [C]) of
    its largest unexplained region: distance above `threshold`, where no slot draws (`free` [n, H, W] above 1/2,
    the product of 1 - each slot's alpha; everywhere if not given), at least `min_area` px. A region that a slot
    draws wrongly is the fit's to mend; one that no slot draws, no fit reaches."""
    from scipy import ndimage

    far = (recons - images).norm(dim=1) > threshold  # [n, H, W]
    far = (far if free is None else far & (free > 0.5)).cpu().numpy()
    out = []
    for i, mask in enumerate(far):
        labels, count = ndimage.label(mask)
        if not count:
            out.append(None)
            continue
        areas = np.bincount(labels.ravel())[1:]
        best = int(areas.argmax()) + 1
        if areas[best - 1] < min_area:
            out.append(None)
            continue
        rows, cols = np.nonzero(labels == best)
        colour = images[i][:, torch.as_tensor(rows), torch.as_tensor(cols)].median(1).values  # [C]
        out.append(((float(rows.mean()), float(cols.mean())), colour))
    return out


def cover_candidates(
    z: torch.Tensor, regions, layout: LatentLayout, size: int, colour_index=None, shades=None
) -> torch.Tensor:
    """A clip's keyframe latents [n, z_dim] and its `missed_regions` -> candidates [M, n, z_dim], each moving one
    slot onto the missed objects: in every keyframe, when every keyframe shows one (the slot becomes that object);
    then in each keyframe that shows one, alone (the slot tracks that object in the other keyframes). A slot's
    centre of mass renders at fold(u) * fold_range + (S - 1) / 2 px (objects.ObjectGenerator.place), with S = size
    - fold_range; `colour_index` [K, 3] (latent indices of each slot's tint) resets the slot's colour when it moves
    in every keyframe, to the regions' median colour over the slot's shade (`shades` [K], 1 if not given). A slot
    is never moved in some keyframes and recoloured: it would show its new colour where it was left."""
    found = [i for i, r in enumerate(regions) if r is not None]
    half = (size - layout.fold_range - 1) / 2
    moves = ([found] if len(found) == len(regions) > 1 else []) + [[i] for i in found]
    cands = []
    for k, pair in enumerate(layout.positions):
        for frames in moves:
            c = z.clone()
            for i in frames:
                centre = torch.tensor(regions[i][0], dtype=z.dtype)
                c[i, list(pair)] = ((centre - half) / layout.fold_range).clamp(0, 1).to(z)
            if colour_index is not None and len(frames) == len(regions) > 1:
                colour = torch.stack([regions[i][1] for i in found]).median(0).values
                colour = colour / (1.0 if shades is None else float(shades[k]))
                c[:, colour_index[k]] = phi_inverse(colour).to(z)
            cands.append(c)
    return torch.stack(cands) if cands else z.new_zeros(0, *z.shape)
