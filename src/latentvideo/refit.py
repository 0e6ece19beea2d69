"""Refit passes (pipeline.pivot): each clip's inversion again, through its own pivotally tuned copy of G.

refit_clip(G, latents, keyframes, **clip_options)            one clip through its copy
refit_clips(generators, latents, keyframes, **clip_options)  every clip through its own copy (`times`: per clip
    its keyframe times), batched where
    the refit moves the positions alone (looks=False, the gray preset) and the copies are gray object
    generators that differ only in their weights: each clip's sprites are drawn once by its own copy into
    one table, and one `invert_clips` over `DrawnSprites` (a generator whose appearance coordinate is the
    row of a sprite in that table) refits every clip at once. Each clip's L-BFGS fit stays its own (batched
    L-BFGS keeps per-row line searches and curvature pairs), so the latents are those of one refit per clip,
    to float rounding; the per-call overheads of the many small place-and-compose evaluations are shared.
    Otherwise (looks moved, colour, a user's module) one clip at a time.
"""

from __future__ import annotations

import torch
from torch import nn

from .objects import LatentLayout, ObjectGenerator
from .slots import invert_clips


def refit_clip(G, latents: torch.Tensor, keyframes: torch.Tensor, **clip_options) -> torch.Tensor:
    """One clip's inversion again, through G (a pivotally tuned copy) and from `latents` [K, z_dim]: the clip
    fit and the ink stage of `invert_clips` (no per-keyframe L-BFGS), with `clip_options` (clip_steps,
    associate, centre_steps; times: [its keyframe times], the association's motion term; looks=False: the clip
    fit moves the positions alone, the tuned sprites drawn once).
    Returns the new latents [K, z_dim]."""
    start = latents.detach()
    return invert_clips(G, [keyframes], lambda images: start, frame_steps=0, **clip_options).latents[0].to(start)


def refit_clips(generators, latents, keyframes, **clip_options) -> list[torch.Tensor]:
    """`refit_clip` for many clips, each through its own copy: generators, latents [K_i, z_dim] and keyframes
    [K_i, C, H, W] per clip -> the new latents per clip. Batched over every clip where `can_batch` says so."""
    layout = clip_options.get("layout")
    if not can_batch(generators, layout, clip_options.get("looks", True)):
        times = clip_options.pop("times", None) or [None] * len(latents)  # per clip
        return [
            refit_clip(G, z, x, **clip_options, times=None if t is None else [t])
            for G, z, x, t in zip(generators, latents, keyframes, times)
        ]
    G0 = generators[0]
    dev = next(G0.parameters()).device
    zs = [z.to(dev) for z in latents]
    with torch.no_grad():  # every row's every slot drawn by its clip's copy: table row = (row, slot) in order
        looks = [G0.split(z)[0] for z in zs]  # per clip [K_i, K, A]
        table = torch.cat([G.sprites(a.flatten(0, 1)) for G, a in zip(generators, looks)])  # [N * K, c, S, S]
        codes = torch.cat(looks).flatten(0, 1)  # [N * K, A]: each table row's code
    bank = DrawnSprites(G0, table)
    rows = torch.arange(len(table), dtype=table.dtype, device=dev).view(-1, G0.objects)  # [N, K]: each slot's row
    start = bank.join(rows[..., None], torch.cat([G0.split(z)[1] for z in zs]))  # [N, 3K]
    options = {**clip_options, "layout": bank.latent_layout}
    fitted = invert_clips(bank, [x.to(dev) for x in keyframes], lambda images: start, frame_steps=0, **options).latents
    out = []
    for z, zb in zip(latents, fitted):
        a, u, _ = bank.split(zb.to(dev))  # [K_i, K, 1] table rows (slots may have been permuted), [K_i, K, 2]
        out.append(G0.join(codes[a[..., 0].round().long()], u).to(z))  # the rows' own codes, the fitted positions
    return out


def can_batch(generators, layout: LatentLayout | None, looks: bool) -> bool:
    """Whether `refit_clips` can refit these clips in one batch: the positions alone move (looks False), and
    every copy is a gray `ObjectGenerator` on black (no background, no tint) with the same architecture and
    latent layout (that of `layout`, where given)."""
    if looks or not generators or not all(type(G) is ObjectGenerator for G in generators):
        return False
    G0 = generators[0]
    arch = lambda G: (G.objects, G.appearance, G.resolution, G.sprite, G.latent_layout)  # noqa: E731
    gray = all(G.channels == 1 and not G.background and not G.tint for G in generators)
    return gray and all(arch(G) == arch(G0) for G in generators) and layout in (None, G0.latent_layout)


class DrawnSprites(ObjectGenerator):
    """An object generator whose sprites are drawn already (gray, on black): per slot one appearance coordinate,
    the row of its sprite in `table` [M, 1, S, S], and a position placed as `like` places it. Everything but the
    sprites (placing, composing, the latent layout's fold range) is `like`'s."""

    def __init__(self, like: ObjectGenerator, table: torch.Tensor):
        nn.Module.__init__(self)
        K = like.objects
        self.objects, self.appearance, self.background = K, 1, 0
        self.tint, self.edge, self.centre = False, 0, 0.0
        self.resolution, self.channels, self.sprite = like.resolution, like.channels, like.sprite
        self.z_dim = 3 * K
        self.latent_layout = LatentLayout(
            tuple((3 * k + 1, 3 * k + 2) for k in range(K)),
            like.latent_layout.fold_range,
            tuple((3 * k, 3 * k + 1) for k in range(K)),
        )
        self.table = nn.Parameter(table, requires_grad=False)  # a parameter: callers find the device from one
        self.plate = self.reach = None
        self.sampling = like.sampling

    def sprites(self, appearance: torch.Tensor) -> torch.Tensor:
        """appearance [M, 1] (table rows) -> sprites [M, 1, S, S]."""
        return self.table[appearance[:, 0].round().long()]
