"""cover: objects that no slot draws, found in the clip fit's residual, and a slot moved onto them. Tiny seeded
object generators, 32 px."""

from __future__ import annotations

import math

import pytest
import torch

import latentvideo.slots as slots
from latentvideo.cover import cover_candidates, missed_regions
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import Pipeline
from latentvideo.slots import _cover, invert_clips
from latentvideo.tints import tint_index


def red_blue(seed: int = 0):
    """(G, truth [2, z_dim], keyframes [2, 3, 32, 32]): two tinted objects, one red and one blue, apart in both
    keyframes, over G's gray backdrop."""
    torch.manual_seed(seed)
    G = ObjectGenerator(
        objects=2, appearance=6, resolution=32, channels=3, sprite=12, width=4, background=2, tint=True, centre=4.0
    ).requires_grad_(False)
    lay = G.latent_layout
    z = G.sample_latents(1, torch.Generator().manual_seed(seed)).repeat(2, 1)
    tints = tint_index(G, lay)
    z[:, tints[0]] = torch.tensor([3.0, -3.0, -3.0])  # red
    z[:, tints[1]] = torch.tensor([-3.0, -3.0, 3.0])  # blue
    z[:, list(lay.positions[0])] = torch.tensor([[0.1, 0.1], [0.2, 0.9]])
    z[:, list(lay.positions[1])] = torch.tensor([[0.9, 0.8], [0.8, 0.1]])
    return G, z, G(z)


def alpha_centre(G, z, slot):  # [n, 2] (row, col) px of a slot's placed alpha's centre of mass
    a = G.layers(z)[:, slot, -1]  # [n, R, R]
    r = torch.arange(a.shape[-1], dtype=a.dtype)
    m = a.sum((1, 2))
    return torch.stack([(a.sum(2) * r).sum(1) / m, (a.sum(1) * r).sum(1) / m], 1)


def test_missed_regions_finds_the_largest_unexplained_region_its_centre_and_colour():
    images = torch.zeros(3, 3, 32, 32)
    images[0, 0, 4:12, 20:28] = 1.0  # a red 8x8 square, centre (7.5, 23.5)
    images[0, 2, 30:32, 0:2] = 1.0  # a speck: smaller, not the region
    images[1, 1, 10:14, 10:14] = 1.0  # 16 px: under min_area
    images[2] = 0.1  # everything a little off: under the threshold
    regions = missed_regions(torch.zeros_like(images), images)
    (centre, colour), small, faint = regions
    assert centre == pytest.approx((7.5, 23.5)) and torch.equal(colour, torch.tensor([1.0, 0.0, 0.0]))
    assert small is None and faint is None
    assert missed_regions(torch.zeros_like(images), images, min_area=16)[1] is not None


def test_candidates_place_the_moved_slot_on_the_region_and_take_its_colour():
    G, z, _ = red_blue()
    lay = G.latent_layout
    regions = [((9.0, 20.0), torch.tensor([0.1, 0.8, 0.2])), None]
    one = cover_candidates(z, regions, lay, 32, tint_index(G, lay))
    assert one.shape == (2, 2, G.z_dim)  # per slot: moved in the one keyframe that shows a region
    regions[1] = ((20.0, 6.0), torch.tensor([0.1, 0.8, 0.2]))
    cands = cover_candidates(z, regions, lay, 32, tint_index(G, lay))
    assert cands.shape == (6, 2, G.z_dim)  # per slot: in both keyframes, then in each alone
    for k, first in ((0, 0), (1, 3)):
        moved = cands[first]
        assert alpha_centre(G, moved, k).sub(torch.tensor([[9.0, 20.0], [20.0, 6.0]])).abs().max() < 0.75
        colour = 0.5 * (1 + torch.erf(moved[0, tint_index(G, lay)[k]] / math.sqrt(2)))
        assert colour == pytest.approx([0.1, 0.8, 0.2], abs=1e-4)
        other = 1 - k
        assert torch.equal(moved[:, list(lay.positions[other])], z[:, list(lay.positions[other])])
        alone = cands[first + 2]  # moved in keyframe 1 only: keyframe 0 and the colour are kept
        assert torch.equal(alone[0], z[0]) and torch.equal(alone[1, tint_index(G, lay)[k]], z[1, tint_index(G, lay)[k]])
    assert tint_index(ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4), lay) is None


def test_a_slot_stacked_on_another_object_is_moved_onto_the_object_no_slot_draws():
    """The fit left both slots on the red object: the blue one is drawn by none. Stage 3b moves a slot onto it,
    with its colour, and the refitted clip reconstructs both keyframes."""
    G, truth, keys = red_blue()
    lay = G.latent_layout
    stacked = truth.clone()
    stacked[:, list(lay.positions[1])] = truth[:, list(lay.positions[0])]
    none = lambda zs, xs: None  # noqa: E731
    err = lambda z: (G(z) - keys).pow(2).mean().item()  # noqa: E731
    (fixed,) = _cover(G, [stacked], [keys], lay, none, none, 30, 2.0)
    assert err(fixed) < 0.1 * err(stacked)
    assert alpha_centre(G, fixed, 1).sub(alpha_centre(G, truth, 1)).abs().max() < 1.0
    (kept,) = _cover(G, [truth], [keys], lay, none, none, 30, 2.0)
    assert torch.equal(kept, truth)  # nothing missed: unchanged


def test_a_move_that_does_not_lower_the_error_by_cover_gain_is_not_kept(monkeypatch):
    G, truth, keys = red_blue()
    lay = G.latent_layout
    stacked = truth.clone()
    stacked[:, list(lay.positions[1])] = truth[:, list(lay.positions[0])]
    none = lambda zs, xs: None  # noqa: E731
    monkeypatch.setattr(slots, "COVER_GAIN", 0.9999)  # the move above lowers it by 99.8 %
    (kept,) = _cover(G, [stacked], [keys], lay, none, none, 30, 2.0)
    assert torch.equal(kept, stacked)


def test_invert_clips_runs_the_cover_stage_only_when_asked(monkeypatch):
    G, truth, keys = red_blue()
    lay = G.latent_layout
    start = truth.clone()
    start[:, list(lay.positions[1])] = truth[:, list(lay.positions[0])]
    calls = []
    real = slots._cover
    monkeypatch.setattr(slots, "_cover", lambda *a: calls.append(a[1]) or real(*a))
    kw = dict(frame_steps=0, clip_steps=30, associate=False, centre_steps=0)
    plain = invert_clips(G, [keys], lambda x: start, **kw)
    assert not calls
    covered = invert_clips(G, [keys], lambda x: start, cover=True, **kw)
    assert len(calls) == 1 and len(calls[0]) == 1  # once, for the one clip
    assert covered.errors[0].mean() <= plain.errors[0].mean() + 1e-7


def test_the_pipeline_option_reaches_the_inversion_and_every_refit(monkeypatch):
    G, truth, keys = red_blue()
    calls = []
    real = slots._cover
    monkeypatch.setattr(slots, "_cover", lambda *a: calls.append(len(a[1])) or real(*a))
    pipe = Pipeline.from_modules(G)
    opts = dict(method="lbfgs", lbfgs_steps=2, clip_steps=3, centre_steps=0, pivot_steps=2, refit=1, critic="off")
    opts["attempts"] = 1  # each attempt inverts and refits: test_attempts.py
    clip = pipe(keys, [0, 9], 10, cover=False, **opts)
    assert not calls and clip.frames.shape == (10, 3, 32, 32)
    pipe(keys, [0, 9], 10, cover=True, refit_cover=True, **opts)
    assert calls == [1, 1]  # the inversion, then the refit through the tuned copy
    calls.clear()
    pipe(keys, [0, 9], 10, cover=True, refit_cover=False, **opts)
    assert calls == [1]  # the inversion only


def test_the_colour_preset_covers_and_the_gray_preset_does_not():
    G, _, _ = red_blue()
    gray = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4)
    assert Pipeline.from_modules(G).default_options().cover
    assert not Pipeline.from_modules(gray).default_options().cover
