"""A refit whose clip fit moves the positions alone (`refit_looks=False`): the tuned sprites are drawn once per fit,
not once per L-BFGS evaluation; and one that holds the background code (`refit_background=False`): the backdrop is
drawn once per fit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import latentvideo.pipeline as pipeline_module
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import Pipeline
from latentvideo.refit import refit_clip
from latentvideo.slots import _drawn_once, _joint_fit, invert_clips

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
    seen = lambda k: (k["looks"], k["background"])  # noqa: E731
    monkeypatch.setattr(pipeline_module, "refit_clips", lambda *a, **k: looks.append(seen(k)) or refit(*a, **k))
    pipe = Pipeline.from_modules(G)
    opts = pipe.options(method="lbfgs", lbfgs_steps=2, clip_steps=2, pivot_steps=2, early_pivot_steps=2, refit=2)
    times = [np.array([0.0, 4.0, 9.0])]
    for value in ((True, False), (False, True)):
        looks.clear()
        knobs = {**opts.__dict__, "refit_looks": value[0], "refit_background": value[1]}
        pipe.animate([z], times, 10, pipe.options(**knobs), keyframes=[keys])
        assert looks == [value, value]
    gray, colour = pipe.default_options(), Pipeline.from_modules(tiny(0, colour=True)).default_options()
    assert not gray.refit_looks and colour.refit_looks  # measured on the digits only: presets.py
    assert gray.refit_background and not colour.refit_background  # gray has no background code


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


def test_a_clip_fit_that_holds_the_background_draws_the_backdrop_once_and_moves_the_rest(monkeypatch):
    """invert_clips(background=False) on a colour G's own clip, its positions started 2 px off: the background code
    stays exactly at its start (the whole fit moves it), the looks move, every object comes back within 0.1 px (in
    either slot), and the background net runs once per fit instead of once per L-BFGS evaluation."""
    G = tiny(0, colour=True)
    layout, B = G.latent_layout, G.background
    truth = clip(G, 1)
    with torch.no_grad():
        keys = G(truth)
    start = truth.clone()
    start[:, layout.index] += 2.0 / layout.fold_range
    calls, draw = [], G.draw_backdrop
    monkeypatch.setattr(G, "draw_backdrop", lambda b: calls.append(len(b)) or draw(b))
    opts = dict(frame_steps=0, clip_steps=30, coarse_sigma=1.0, associate=False, centre_steps=0)
    held = invert_clips(G, [keys], lambda images: start, background=False, **opts).latents[0]
    held_calls, calls[:] = len(calls), []
    moved = invert_clips(G, [keys], lambda images: start, **opts).latents[0]
    assert torch.equal(held[:, -B:], start[:, -B:]) and not torch.equal(moved[:, -B:], start[:, -B:])
    assert not torch.equal(held[:, :-B][:, ~_positions(G)], start[:, :-B][:, ~_positions(G)])
    found, want = layout.pixels(held), layout.pixels(truth)  # [3, K, 2]; the templates may swap a keyframe's slots
    off = torch.minimum((found - want).abs().amax((1, 2)), (found.flip(1) - want).abs().amax((1, 2)))
    assert off.max() < 0.1
    # the held fit drew its backdrop once, the whole fit at each of its evaluations (at least one per step); the
    # stages around the fit (templates, starts, the final reconstruction) draw it alike in both
    assert len(calls) - held_calls >= opts["clip_steps"] - 1


def _positions(G) -> torch.Tensor:
    """[z_dim - B] mask of the position coordinates among the slots' coordinates."""
    mask = torch.zeros(G.z_dim - G.background, dtype=torch.bool)
    mask[G.latent_layout.index.flatten()] = True
    return mask
