"""plate_tuning: a colour clip's last pivotal tuning renders its keyframes over the clip's background plate, tunes
the sprite net alone, and holds the slots' joint coverage to the keyframes' matte (where they differ from the
plate). Tiny seeded generators, 32 px."""

from __future__ import annotations

import pytest
import torch

import latentvideo.pipeline as pipeline_module
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import Pipeline
from latentvideo.tune import MATTE, MATTE_DISTANCE, background_plate, held_backdrop, pivotal_tune_clips, plate_matte


def colour_clip(seed: int = 1):
    """(G, truth [3, z_dim], keyframes [3, 3, 32, 32], plate [3, 32, 32]): two objects of G's moving over a noise
    background that G's background net does not draw."""
    torch.manual_seed(seed)
    G = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4, channels=3, background=2)
    G = G.requires_grad_(False)
    lay = G.latent_layout
    truth = G.sample_latents(1, torch.Generator().manual_seed(seed + 1)).repeat(3, 1)
    px = torch.tensor([[[2.0, 3.0], [15.0, 14.0]], [[8.0, 2.0], [10.0, 17.0]], [[14.0, 1.0], [5.0, 19.0]]])
    truth[:, lay.index] = px / lay.fold_range
    plate = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(seed + 2))
    G.plate = plate
    keys = G(truth)
    G.plate = None
    return G, truth, keys, plate


def test_the_matte_is_zero_on_the_plate_and_one_far_from_it():
    plate = torch.full((3, 4, 4), 0.5)
    keys = plate.repeat(2, 1, 1, 1)
    keys[0, :, 0, 0] = 0.5 + MATTE_DISTANCE  # one channel MATTE_DISTANCE away: all object
    keys[1, 0, 1, 1] = 0.5 + MATTE_DISTANCE / 2
    m = plate_matte(keys, plate)
    assert m.shape == (2, 1, 4, 4)
    assert m[0, 0, 0, 0] == 1 and m[1, 0, 1, 1] == pytest.approx(0.5) and m.sum() == pytest.approx(1.5)


def test_tuning_over_the_plate_tunes_the_sprites_alone_and_keeps_the_plate():
    G, truth, keys, plate = colour_clip()
    before = {n: p.clone() for n, p in G.named_parameters()}
    (tuned,) = pivotal_tune_clips([G], [truth], [keys + 0.05], steps=5, lr=1e-2, plates=[plate])
    assert torch.equal(tuned.plate, plate) and G.plate is None
    for n, p in tuned.named_parameters():
        assert torch.equal(p, before[n]) != n.startswith("sprite"), n  # sprites moved, nothing else
    assert all(torch.equal(p, before[n]) for n, p in G.named_parameters())  # G itself untouched
    torch.testing.assert_close(tuned(truth), tuned.compose(tuned.layers(truth), plate.expand(3, -1, -1, -1)))


def test_clips_tuned_together_over_their_plates_equal_clips_tuned_alone():
    """The vmapped loop (several clips, each its own plate) gives each clip the copy that tuning it alone gives,
    though their background nets differ (unused over a plate, so they do not split the batch)."""
    G, truth, keys, plate = colour_clip()
    other = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4, channels=3, background=2)
    G2 = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4, channels=3, background=2)
    G2.load_state_dict({**G.state_dict(), **{k: v for k, v in other.state_dict().items() if k.startswith("bg")}})
    G2.requires_grad_(False)
    zs, xs, ps = [truth, truth.flip(0)], [keys, keys.flip(0) * 0.9], [plate, plate * 0.8]
    alone = [
        pivotal_tune_clips([g], [z], [x], steps=6, lr=1e-2, plates=[p])[0] for g, z, x, p in zip((G, G2), zs, xs, ps)
    ]
    calls = []
    import latentvideo.tune as tune

    real = tune._tune_together
    tune._tune_together = lambda *a: calls.append(len(a[0])) or real(*a)
    try:
        together = pivotal_tune_clips([G, G2], zs, xs, steps=6, lr=1e-2, plates=ps)
    finally:
        tune._tune_together = real
    assert calls == [2]
    for a, b, z in zip(alone, together, zs):  # to float rounding, which Adam's normalised steps amplify
        torch.testing.assert_close(b(z), a(z), atol=1e-3, rtol=0)
    assert (together[0](zs[0]) - together[1](zs[0])).abs().max() > 0.1  # each clip its own sprites and plate


def test_the_matte_term_clears_sprite_coverage_where_the_keyframes_show_the_plate():
    """Sprites pushed to opaque boxes: tuning over the plate with the matte term leaves less coverage off the
    objects than the same tuning without it."""
    G, truth, keys, plate = colour_clip()
    with torch.no_grad():
        G.sprite_out.bias[-1] += 6.0  # alpha near 1 over each whole box
    off = plate_matte(keys, plate) < 0.05  # [3, 1, 32, 32]: the keyframes show the plate here

    def coverage_off(tuned):
        with torch.no_grad():
            cover = 1 - (1 - tuned.layers(truth)[:, :, 3:]).prod(1)
        return cover[off].mean().item()

    plain, matted = (
        pivotal_tune_clips([G], [truth], [keys], steps=40, lr=1e-2, plates=[plate], matte=w)[0] for w in (0.0, 1.0)
    )
    assert coverage_off(matted) < 0.7 * coverage_off(plain)


def test_plate_tuning_is_the_last_tuning_of_the_pipeline(monkeypatch):
    G, truth, keys, plate = colour_clip()
    pipe = Pipeline.from_modules(G, layout=G.latent_layout)
    seen = []
    real = pipeline_module.pivotal_tune_clips
    monkeypatch.setattr(
        pipeline_module, "pivotal_tune_clips", lambda *a, **kw: seen.append(kw["plates"] is not None) or real(*a, **kw)
    )
    opts = dict(clip_steps=2, method="lbfgs", lbfgs_steps=0, pivot_steps=2, refit=1, plate=True, attempts=1)
    opts["joint_tuning"] = False  # the colour preset's last tuning is a joint one (test_joint_tuning.py)
    clip = pipe(keys, [0, 9, 19], 20, plate_tuning=True, **opts)
    assert seen == [False, True]
    seen.clear()
    pipe(keys, [0, 9, 19], 20, **opts)
    assert seen == [False, False]
    assert clip.frames.shape == (20, 3, 32, 32)
    # the plate of the render is the one tuned over: taken from the keyframes where no slot covers them
    assert background_plate(G, truth, keys).shape == plate.shape


def test_a_last_tuning_that_holds_the_background_net_tunes_the_sprites_over_the_copys_own_backdrop(monkeypatch):
    """last_bg_tuning=False: the last tuning gets each copy's own backdrop (its background code drawn once by
    the net) as its plate and no matte term; the tunings before it are unchanged."""
    G, truth, keys, plate = colour_clip()
    pipe = Pipeline.from_modules(G, layout=G.latent_layout)
    seen = []
    real = pipeline_module.pivotal_tune_clips

    def spy(gens, zs, xs, steps, plates=None, matte=None, **kw):
        held = None if plates is None else [held_backdrop(g, z) for g, z in zip(gens, zs)]
        seen.append((matte, held is not None and all(torch.equal(p, h) for p, h in zip(plates, held))))
        return real(gens, zs, xs, steps, plates=plates, matte=matte, **kw)

    monkeypatch.setattr(pipeline_module, "pivotal_tune_clips", spy)
    opts = dict(clip_steps=2, method="lbfgs", lbfgs_steps=0, pivot_steps=2, refit=1, plate=True, attempts=1)
    opts["joint_tuning"] = False
    pipe(keys, [0, 9, 19], 20, last_bg_tuning=False, **opts)
    assert seen == [(MATTE, False), (0.0, True)]
    seen.clear()
    pipe(keys, [0, 9, 19], 20, **opts)
    assert seen == [(MATTE, False), (MATTE, False)]


def test_tuning_over_the_held_backdrop_keeps_the_background_net_and_renders_as_g_over_it():
    G, truth, keys, _ = colour_clip()
    back = held_backdrop(G, truth)  # [3, 32, 32]
    with torch.no_grad():  # every keyframe shares the clip's background code
        torch.testing.assert_close(back[None].expand(3, -1, -1, -1), G.draw_backdrop(G.split(truth)[2]))
    (tuned,) = pivotal_tune_clips([G], [truth], [keys + 0.05], steps=5, lr=1e-2, plates=[back], matte=0.0)
    for n, p in tuned.named_parameters():
        assert torch.equal(p, dict(G.named_parameters())[n]) != n.startswith("sprite"), n
    tuned.plate = None  # without the plate it draws the backdrop it was tuned over
    with torch.no_grad():
        torch.testing.assert_close(tuned(truth), tuned.compose(tuned.layers(truth), back.expand(3, -1, -1, -1)))
