"""A refit whose clip fit moves the positions alone (`refit_looks=False`): the tuned sprites are drawn once per fit,
not once per L-BFGS evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentvideo.pipeline as pipeline_module
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import Pipeline
from latentvideo.refit import refit_clip
from latentvideo.slots import _drawn_once, _joint_fit

KW = {"objects": 2, "appearance": 4, "resolution": 32, "sprite": 12, "width": 4}
COLOUR = {"channels": 3, "background": 3, "tint": True, "edge": 1}


def tiny(seed: int, colour: bool = False) -> ObjectGenerator:
    torch.manual_seed(seed)
    return ObjectGenerator(**KW, **(COLOUR if colour else {}))


def clip(G, seed: int, n: int = 3) -> torch.Tensor:
    """A clip's latents [n, z_dim]: one look per slot (and one background), a position per keyframe."""
    z = G.sample_latents(n, torch.Generator().manual_seed(seed))
    keep = torch.ones(G.z_dim, dtype=torch.bool)
    keep[G.latent_layout.index.flatten()] = False
    z[1:, keep] = z[0, keep]
    return z


@pytest.mark.parametrize("colour", [False, True])
def test_sprites_drawn_once_render_as_g_does(colour):
    G = tiny(0, colour)
    z = torch.stack([clip(G, 1), clip(G, 2)])  # [2, 3, z_dim]
    draw = _drawn_once(G, z)
    u = G.split(z.flatten(0, 1))[1].view(2, 3, 2, 2)  # [m, n, K, 2]
    with torch.no_grad():
        torch.testing.assert_close(draw(u, torch.tensor([0, 1])), G(z.flatten(0, 1)), atol=1e-6, rtol=0)
        torch.testing.assert_close(draw(u[1:], torch.tensor([1])), G(z[1]), atol=1e-6, rtol=0)
    if colour:  # over a given canvas instead of G's backdrop
        canvas = torch.rand(2, 3, 3, 32, 32)
        layers = G.layers(z.flatten(0, 1))
        with torch.no_grad():
            want = G.compose(layers, canvas.flatten(0, 1))
            torch.testing.assert_close(_drawn_once(G, z, canvas)(u, torch.tensor([0, 1])), want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("colour", [False, True])
def test_a_positions_only_fit_holds_the_looks_and_finds_the_positions(colour):
    """Starts 2 px off on G's own clips: the positions-only fit leaves every other coordinate exactly at its
    start and brings every object within half a pixel of where it is; the whole fit moves the looks."""
    G = tiny(0, colour)
    layout = G.latent_layout
    truth = [clip(G, 1), clip(G, 2)]
    with torch.no_grad():
        images = torch.stack([G(z) for z in truth])  # [2, 3, C, 32, 32]
    starts = [z.clone() for z in truth]
    for z in starts:
        z[:, layout.index] += 2.0 / layout.fold_range
    fast = _joint_fit(G, starts, images, layout, steps=30, sigma=1.0, looks=False)
    both = _joint_fit(G, starts, images, layout, steps=30, sigma=1.0)
    rest = torch.ones(G.z_dim, dtype=torch.bool)
    rest[layout.index.flatten()] = False
    for f, b, s, t in zip(fast, both, starts, truth):
        assert torch.equal(f[:, rest], s[:, rest]) and not torch.equal(b[:, rest], s[:, rest])
        assert (layout.pixels(f) - layout.pixels(t)).abs().max() < 0.5


def test_the_pipeline_passes_refit_looks_to_every_refit_and_presets_turn_it_off_in_gray(monkeypatch):
    G = tiny(0)
    z = clip(G, 2)
    with torch.no_grad():
        keys = G(z)
    looks, refit = [], pipeline_module.refit_clips
    monkeypatch.setattr(pipeline_module, "refit_clips", lambda *a, **k: looks.append(k["looks"]) or refit(*a, **k))
    pipe = Pipeline.from_modules(G)
    opts = pipe.options(method="lbfgs", lbfgs_steps=2, clip_steps=2, pivot_steps=2, early_pivot_steps=2, refit=2)
    times = [np.array([0.0, 4.0, 9.0])]
    for value in (True, False):
        looks.clear()
        pipe.animate([z], times, 10, pipe.options(**{**opts.__dict__, "refit_looks": value}), keyframes=[keys])
        assert looks == [value, value]
    gray, colour = pipe.default_options(), Pipeline.from_modules(tiny(0, colour=True)).default_options()
    assert not gray.refit_looks and colour.refit_looks  # measured on the digits only: presets.py


def test_a_positions_only_refit_keeps_the_clips_looks():
    """refit_clip with looks=False (its template start and clip fit): the looks stay, the positions are found."""
    G = tiny(0)
    z = clip(G, 3)  # (clip 2 has two objects overlapping in a keyframe: both fits leave one 3.4 px off)
    with torch.no_grad():
        keys = G(z)
    start = z.clone()
    start[:, G.latent_layout.index] += 1.5 / G.latent_layout.fold_range
    out = refit_clip(G, start, keys, clip_steps=20, associate=False, centre_steps=0, looks=False)
    rest = torch.ones(G.z_dim, dtype=torch.bool)
    rest[G.latent_layout.index.flatten()] = False
    assert torch.equal(out[:, rest], start[:, rest])
    assert (G.latent_layout.pixels(out) - G.latent_layout.pixels(z)).abs().max() < 0.5
