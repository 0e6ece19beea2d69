"""Refit passes batched over clips (refit.refit_clips): every clip through its own tuned copy of G, in one
clip-level inversion over the sprites each copy drew (`DrawnSprites`), equal to one refit per clip."""

from __future__ import annotations

import torch

from latentvideo.objects import ObjectGenerator
from latentvideo.refit import DrawnSprites, can_batch, refit_clip, refit_clips
from test_refit_looks import clip

KW = {"objects": 2, "appearance": 4, "resolution": 32, "sprite": 12, "width": 4}
FIT = dict(clip_steps=12, associate=True, centre_steps=2, looks=False)


def tiny(seed: int, **extra) -> ObjectGenerator:
    torch.manual_seed(seed)
    return ObjectGenerator(**KW, **extra).eval().requires_grad_(False)


def test_drawn_sprites_render_as_the_copy_that_drew_them():
    G = tiny(0)
    z = clip(G, 1)
    a, u, _ = G.split(z)
    table = G.sprites(a.flatten(0, 1))  # [n * K, 1, S, S]
    bank = DrawnSprites(G, table)
    rows = torch.arange(len(table), dtype=torch.float32).view(len(z), -1, 1)  # [n, K, 1]
    torch.testing.assert_close(bank(bank.join(rows, u)), G(z), atol=1e-6, rtol=0)
    assert bank.latent_layout.fold_range == G.latent_layout.fold_range and bank.z_dim == 3 * KW["objects"]


def test_refit_clips_batched_equals_one_refit_per_clip():
    """Three clips, each with its own copy (other weights; one clip of 2 keyframes), positions started 2 px off:
    the batched refit gives every clip the latents its own refit gives, looks untouched."""
    copies = [tiny(s) for s in (1, 2, 3)]
    truth = [clip(G, 10 + i, n) for i, (G, n) in enumerate(zip(copies, (3, 2, 3)))]
    keys = [G(z) for G, z in zip(copies, truth)]
    starts = []
    for G, z in zip(copies, truth):
        s = z.clone()
        s[:, G.latent_layout.index] += 2.0 / G.latent_layout.fold_range
        starts.append(s)
    assert can_batch(copies, copies[0].latent_layout, looks=False)
    one = [refit_clip(G, s, x, **FIT) for G, s, x in zip(copies, starts, keys)]
    many = refit_clips(copies, starts, keys, **FIT)
    for a, b, s in zip(one, many, starts):
        torch.testing.assert_close(b, a, atol=1e-4, rtol=0)
        rest = torch.ones(s.shape[1], dtype=torch.bool)
        rest[copies[0].latent_layout.index.flatten()] = False
        assert torch.equal(b[:, rest], s[:, rest])
    assert any(not torch.equal(b, s) for b, s in zip(many, starts))  # the positions moved


def test_refits_that_move_looks_or_draw_colour_run_one_clip_at_a_time():
    gray, colour = (
        [tiny(0), tiny(1)],
        [tiny(0, channels=3, background=3, tint=True), tiny(1, channels=3, background=3, tint=True)],
    )
    assert can_batch(gray, None, looks=False)
    assert not can_batch(gray, None, looks=True)
    assert not can_batch(colour, None, looks=False)
    assert not can_batch([gray[0], ObjectGenerator(**{**KW, "sprite": 16})], None, looks=False)
    other = ObjectGenerator(**{**KW, "objects": 3}).latent_layout
    assert not can_batch(gray, other, looks=False)
    z = [clip(G, 5) for G in colour]
    keys = [G(zc) for G, zc in zip(colour, z)]
    out = refit_clips(colour, z, keys, clip_steps=3, associate=False, centre_steps=0, looks=True)
    for a, G, zc, x in zip(out, colour, z, keys):
        torch.testing.assert_close(a, refit_clip(G, zc, x, clip_steps=3, associate=False, centre_steps=0, looks=True))
