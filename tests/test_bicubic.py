"""bicubic: a clip's tuned copy of G places its sprites by bicubic sampling when it draws the clip. At whole px
both samplings copy the sprite exactly; at a half px bilinear averages two px, bicubic keeps more of the
sprite's detail. Tiny seeded generators."""

from __future__ import annotations

import torch

import latentvideo.pipeline as pipeline_module
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import Pipeline
from latentvideo.refit import DrawnSprites


def generator() -> ObjectGenerator:
    torch.manual_seed(0)
    return ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4).requires_grad_(False)


def symmetric_sprite() -> torch.Tensor:
    """[1, 1, 12, 12]: random ink mirrored about the box centre, so its centre of mass is the box centre."""
    s = torch.rand(1, 1, 12, 12, generator=torch.Generator().manual_seed(1))
    return (s + s.flip(-1) + s.flip(-2) + s.flip(-1, -2)) / 4


def placed(G, sprite, px: float, sampling: str) -> torch.Tensor:
    G.sampling = sampling
    u = torch.tensor([[px, px]]) / G.latent_layout.fold_range
    return G.place(sprite, u)[0, 0]  # [32, 32]


def test_at_whole_px_both_samplings_copy_the_sprite_exactly():
    G, s = generator(), symmetric_sprite()
    for px in (0.0, 7.0, 20.0):
        bilinear, bicubic = placed(G, s, px, "bilinear"), placed(G, s, px, "bicubic")
        torch.testing.assert_close(bicubic, bilinear, atol=2e-4, rtol=0)
        p = int(px)
        torch.testing.assert_close(bicubic[p : p + 12, p : p + 12], s[0, 0], atol=2e-4, rtol=0)


def test_at_a_half_px_bicubic_keeps_more_detail_than_bilinear_and_stays_in_range():
    G, s = generator(), symmetric_sprite()
    bilinear, bicubic = placed(G, s, 7.5, "bilinear"), placed(G, s, 7.5, "bicubic")
    assert bicubic.pow(2).sum() > 1.02 * bilinear.pow(2).sum()  # bilinear at a half px is a [1/2, 1/2] blur
    assert bicubic.min() >= 0 and bicubic.max() <= 1
    torch.testing.assert_close(bicubic.sum(), bilinear.sum(), atol=0.05 * bilinear.sum().item(), rtol=0)


def test_drawn_sprites_place_as_their_generator_does():
    G = generator()
    G.sampling = "bicubic"
    assert DrawnSprites(G, torch.rand(2, 1, 12, 12)).sampling == "bicubic"


def test_the_pipeline_draws_with_bicubic_copies_and_leaves_its_own_g_bilinear(monkeypatch):
    G = generator()
    torch.manual_seed(2)
    z = G.sample_latents(1).repeat(3, 1)
    z[:, G.latent_layout.index] += torch.tensor([0.0, 0.13, 0.27])[:, None, None]  # fractional px: 2.6 px a step
    keys = G(z)
    pipe = Pipeline.from_modules(G, layout=G.latent_layout)
    seen = []
    real = pipeline_module.Pipeline.render_and_correct

    def spy(self, zs, opts, timer=None, G=None):
        seen.append(G.sampling)
        return real(self, zs, opts, timer, G)

    monkeypatch.setattr(pipeline_module.Pipeline, "render_and_correct", spy)
    opts = dict(clip_steps=2, method="lbfgs", lbfgs_steps=0, pivot_steps=2, refit=0, attempts=1)
    sharp = pipe(keys, [0, 9, 19], 20, bicubic=True, **opts)
    soft = pipe(keys, [0, 9, 19], 20, bicubic=False, **opts)  # the gray preset draws bicubic
    assert seen == ["bicubic", "bilinear"] and G.sampling == "bilinear"
    torch.testing.assert_close(sharp.latents, soft.latents)  # the same path, drawn another way
    assert not torch.allclose(sharp.frames, soft.frames)
    assert (sharp.frames - soft.frames).abs().mean() < 0.01  # alike, not equal


def test_the_gray_preset_draws_with_bicubic_copies_and_the_colour_preset_does_not():
    gray = Pipeline.from_modules(generator(), layout=generator().latent_layout).default_options()
    torch.manual_seed(0)
    G = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4, channels=3, background=2)
    colour = Pipeline.from_modules(G, layout=G.latent_layout).default_options()
    assert gray.bicubic and gray.pivot_steps and not colour.bicubic and colour.pivot_steps
