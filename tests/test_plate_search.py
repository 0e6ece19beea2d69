"""plate_search and plate_fit: a colour clip's objects looked for (and fitted) against its background plate, not
G's drawn backdrop.

The colour model's background net paints objects of its own. Where it paints one over a keyframe's object, the
ink stage (measured against G's backdrop) sees no object there and leaves the slot where it was; against the
clip's plate (tune.background_plate) the object is ink again. Tiny seeded tint generators, 32 px."""

from __future__ import annotations

import numpy as np
import torch

import latentvideo.presets as presets
from latentvideo.evaluation.recovery import position_errors
from latentvideo.ink import centre_on_ink, slot_ink
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import Pipeline
from latentvideo.slots import _joint_fit, _plates, invert_clips


def painted_clip():
    """(G, layout, truth [3, z_dim], keyframes [3, 3, 32, 32]): two half-opaque objects moving over a noise
    background that no net draws, and G's backdrop set to keyframe 0 whole, so that it paints both of keyframe
    0's objects as the colour model's background net paints blobs."""
    torch.manual_seed(1)
    G = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4, channels=3, background=2)
    G = G.requires_grad_(False)
    torch.nn.init.zeros_(G.sprite_out.bias[-1:])
    lay = G.latent_layout
    truth = G.sample_latents(1, torch.Generator().manual_seed(2)).repeat(3, 1)  # one appearance for the clip
    px = torch.tensor([[[2.0, 3.0], [15.0, 14.0]], [[8.0, 2.0], [10.0, 17.0]], [[14.0, 1.0], [5.0, 19.0]]])
    truth[:, lay.index] = px / lay.fold_range  # [3, K, 2]: both objects cross the canvas
    G.plate = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        keys = G(truth)
    G.plate = keys[0]  # the "background net" draws keyframe 0, objects included
    return G, lay, truth, keys


def test_ink_against_the_plate_shows_the_objects_that_the_backdrop_paints():
    G, lay, truth, keys = painted_clip()
    alpha = G.layers(truth)[0, :, 3].amax(0)  # [32, 32]: keyframe 0's objects
    blind = slot_ink(G, truth, keys)[1][0, 0]  # [32, 32]
    seen = slot_ink(G, truth, keys, _plates(G, [truth], [keys]))[1][0, 0]
    assert blind[alpha > 0.3].sum() < 0.01 * seen[alpha > 0.3].sum()
    background = seen[alpha < 0.01]  # not 0: the plate is not exact where half-opaque boxes overlap
    assert seen[alpha > 0.3].mean() > 0.1 and seen[alpha > 0.3].mean() > 5 * background.mean()


def test_centre_steps_against_the_plate_move_a_slot_onto_the_object_the_backdrop_paints():
    """A slot 4 px off its object in keyframe 0: against G's backdrop it explains no ink there and stays;
    against the clip's plate the centre steps bring it within 2 px (the plate of half-opaque boxes is not exact)."""
    G, lay, truth, keys = painted_clip()
    off = truth.clone()
    off[0, lay.index[0]] += 4 / lay.fold_range
    blind = centre_on_ink(G, off, keys, lay, 3)
    moved = centre_on_ink(G, off, keys, lay, 3, _plates(G, [off], [keys]))
    assert position_errors(lay, blind[:1], truth[:1]).max() > 3.5
    assert position_errors(lay, moved[:1], truth[:1]).max() < 2.0


def test_plate_search_reaches_every_stage_of_the_clip_inversion_and_is_the_colour_default(monkeypatch):
    """invert_clips(plate_search=True) takes a plate for the template starts, the slot association and the ink
    stage; gray generators ignore the option (the same latents); the pipeline turns it on for colour generators
    with a background net and sprites (as the plate), and passes it to the first inversion and the refit passes."""
    import latentvideo.slots as slots

    G, lay, truth, keys = painted_clip()
    calls = []
    real = slots._plates
    monkeypatch.setattr(slots, "_plates", lambda *a: calls.append(len(a[1])) or real(*a))
    invert_clips(G, [keys], lambda x: truth, frame_steps=0, clip_steps=2)
    assert calls == []
    invert_clips(G, [keys], lambda x: truth, frame_steps=0, clip_steps=2, plate_search=True)
    assert calls == [1, 1, 1, 1]  # stage 1, stage 2, the association before the fit, stage 4
    torch.manual_seed(1)
    gray = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4).requires_grad_(False)
    with torch.no_grad():
        gray_keys = gray(truth)
    fits = [
        invert_clips(gray, [gray_keys], lambda x: truth, frame_steps=0, clip_steps=2, plate_search=p) for p in (0, 1)
    ]
    assert torch.equal(fits[0].latents[0], fits[1].latents[0])
    pipe = Pipeline.from_modules(G, layout=lay)
    assert (
        pipe.default_options().plate_search
        and not Pipeline.from_modules(gray, layout=lay).default_options().plate_search
    )
    calls.clear()
    opts = dict(plate_search=True, pivot_steps=2, refit=1, clip_steps=2, method="lbfgs", lbfgs_steps=0, critic="off")
    opts["cover"] = False  # its own plates: test_cover.py
    opts["tint_fit"] = "off"  # ... and the colour solve's: test_tints.py
    pipe(keys, times=[0, 3, 7], num_frames=8, **opts, attempts=1)
    assert len(calls) == 8  # the first inversion and one refit pass
    calls.clear()
    pipe(keys, times=[0, 3, 7], num_frames=8, **opts)  # the colour preset's attempts: each inverts and refits
    assert len(calls) == 8 * presets.COLOUR_ATTEMPTS


def test_the_clip_fit_over_the_plate_finds_objects_that_the_backdrop_would_explain():
    """plate_fit: the joint L-BFGS composes the slots over a plate. Slots that start 2.5 px off their objects (six
    directions) land on keyframe 0's objects over the clip's true background (median 0.03 px; 0.52 with the sprite
    net's upsample + conv in the other order, AVX2), and not over G's backdrop, which paints those objects (median
    2.4 px; 2.7). The other keyframes' objects no backdrop paints: both fits find them."""
    G, lay, truth, keys = painted_clip()
    plate = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(3))  # the keyframes' background
    errors = {None: [], "plate": []}
    for d in ([2.5, 2.5], [-2.5, 2.5], [2.5, -2.5], [-2.5, -2.5], [2.5, 0.0], [0.0, 2.5]):
        start = truth.clone()
        start[:, lay.index] += torch.tensor(d) / lay.fold_range
        for key, c in ((None, None), ("plate", plate.expand(1, 3, 3, 32, 32))):
            z = _joint_fit(G, [start], keys[None], lay, 30, 2.0, c)[0]
            errors[key].append(position_errors(lay, z, truth, 3)[0])  # [K] px at keyframe 0
    over_backdrop, over_plate = (float(np.median(errors[k])) for k in (None, "plate"))
    assert over_plate < 0.6 and over_backdrop > 1.5, (over_plate, over_backdrop)


def test_plate_fit_reaches_the_joint_fit_and_the_refit_passes_and_is_ignored_in_gray(monkeypatch):
    import latentvideo.slots as slots

    G, lay, truth, keys = painted_clip()
    canvases = []
    real = slots._joint_fit
    monkeypatch.setattr(slots, "_joint_fit", lambda *a: canvases.append(a[6]) or real(*a))
    fit = invert_clips(G, [keys], lambda x: truth, frame_steps=0, clip_steps=2, plate_fit=True)
    assert canvases[-1].shape == (1, 3, 3, 32, 32)
    assert not torch.allclose(canvases[-1][0, 0], G.plate)  # a plate from the keyframes, not G's backdrop
    with torch.no_grad():  # the reconstructions are over the plate too
        expect = G.compose(G.layers(fit.latents[0]), _plates(G, [fit.latents[0]], [keys]))
    assert torch.allclose(fit.reconstructions[0], expect)
    torch.manual_seed(1)
    gray = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4).requires_grad_(False)
    with torch.no_grad():
        gray_keys = gray(truth)
    invert_clips(gray, [gray_keys], lambda x: truth, frame_steps=0, clip_steps=2, plate_fit=True)
    assert canvases[-1] is None
    canvases.clear()
    opts = dict(
        plate_fit=True, pivot_steps=2, refit=1, clip_steps=2, method="lbfgs", lbfgs_steps=0, critic="off", cover=False
    )
    opts["attempts"] = 1  # each attempt inverts and refits: test_attempts.py
    Pipeline.from_modules(G, layout=lay)(keys, times=[0, 3, 7], num_frames=8, **opts)
    assert len(canvases) == 2 and all(c is not None for c in canvases)  # the first inversion and one refit pass
