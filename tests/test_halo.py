"""halo: a colour clip's last tuning holds the slots' joint coverage to zero where the keyframes show the clip's
background plate, so that no slot keeps an opaque patch of background colour (invisible over the keyframes'
backdrop, a moving hole in the other objects in between). Tiny seeded generators, 32 px."""

from __future__ import annotations

import pytest
import torch

import latentvideo.pipeline as pipeline_module
import latentvideo.tune as tune
from latentvideo.options import OptionError, Options
from latentvideo.pipeline import Pipeline
from latentvideo.tune import MATTE_DISTANCE, background_plate, joint_tune_clips, pivotal_tune_clips, plate_free
from test_plate_tuning import colour_clip


def coverage(G, z) -> torch.Tensor:
    with torch.no_grad():
        return 1 - (1 - G.layers(z)[:, :, 3:]).prod(1)  # [K, 1, H, W]


def test_the_background_weight_is_one_on_the_plate_and_zero_from_the_matte_distance_on():
    plate = torch.full((3, 4, 4), 0.5)
    keys = plate.repeat(2, 1, 1, 1)
    keys[0, :, 0, 0] = 0.5 + MATTE_DISTANCE  # all object
    keys[1, 0, 1, 1] = 0.5 + MATTE_DISTANCE / 2  # half way: (1 - 0.5)^2
    f = plate_free(keys, plate)
    assert f.shape == (2, 1, 4, 4)
    assert f[0, 0, 0, 0] == 0 and f[1, 0, 1, 1] == pytest.approx(0.25)
    assert f.sum() == pytest.approx(2 * 16 - 1 - 0.75)


@pytest.mark.parametrize("joint", [False, True])
def test_the_halo_term_clears_coverage_where_the_mask_marks_background(joint):
    """Sprites pushed to opaque boxes, tuned over the clip's plate with no matte term (as the pipeline's last tuning
    is, over the copy's backdrop), the left half of every keyframe marked as background: with the term, less
    coverage is left there than without it (with the joint tuning's per-pixel sprite detail, there more than in
    the right half)."""
    G, truth, keys, plate = colour_clip()
    with torch.no_grad():
        G.sprite_out.bias[-1] += 6.0  # alpha near 1 over each whole box
    free = torch.zeros(3, 1, 32, 32)
    free[..., :16] = 1.0
    run = joint_tune_clips if joint else pivotal_tune_clips
    over = dict(plates=[plate], matte=0.0)
    out = [run([G], [truth], [keys], steps=40, lr=1e-2, free=[free], halo=h, **over) for h in (0.0, 0.1)]
    tuned = [o[0][0] for o in out] if joint else [o[0] for o in out]
    zs = [o[1][0] for o in out] if joint else [truth, truth]
    boxes = coverage(G, truth) > 0.5  # inside the opaque boxes
    off, on = (free > 0.5) & boxes, (free < 0.5) & boxes
    assert off.sum() > 50 and on.sum() > 50
    plain, halo = (coverage(g, z) for g, z in zip(tuned, zs))
    cut_off, cut_on = halo[off].mean() / plain[off].mean(), halo[on].mean() / plain[on].mean()
    assert cut_off < 0.75, (cut_off, cut_on)
    if joint:  # each slot's sprite detail (per pixel) lets it act where the mask says; a tiny net alone cannot
        assert cut_on > cut_off + 0.1, (cut_off, cut_on)
    # no weight, no term: the same copy as a tuning that is given no mask
    (bare,) = pivotal_tune_clips([G], [truth], [keys], steps=5, lr=1e-2)
    (zero,) = pivotal_tune_clips([G], [truth], [keys], steps=5, lr=1e-2, free=[free], halo=0.0)
    assert all(torch.equal(a, b) for a, b in zip(bare.parameters(), zero.parameters()))


def test_coverage_over_g_own_backdrop_renders_as_g():
    """Without a plate the halo term composes the slots over G's own backdrop itself: the same image as G's."""
    G, truth, keys, _ = colour_clip()
    for shared in (True, False):
        image, cover = tune._Renderer(G, shared)(truth, None, True)
        torch.testing.assert_close(image, G(truth))
        torch.testing.assert_close(cover, coverage(G, truth))


def test_clips_tuned_together_with_the_halo_term_equal_clips_tuned_alone():
    G, truth, keys, plate = colour_clip()
    zs, xs = [truth, truth.flip(0)], [keys, keys.flip(0) * 0.9]
    fs = [plate_free(x, plate) for x in xs]
    alone = [pivotal_tune_clips([G], [z], [x], steps=6, lr=1e-2, free=[f], halo=0.5)[0] for z, x, f in zip(zs, xs, fs)]
    calls = []
    real = tune._tune_together
    tune._tune_together = lambda *a: calls.append(a[-1] is not None) or real(*a)
    try:
        together = pivotal_tune_clips([G, G], zs, xs, steps=6, lr=1e-2, free=fs, halo=0.5)
    finally:
        tune._tune_together = real
    assert calls == [True]
    for a, b, z in zip(alone, together, zs):  # to float rounding, which Adam's normalised steps amplify
        torch.testing.assert_close(b(z), a(z), atol=1e-3, rtol=0)


def test_the_pipeline_gives_the_mask_to_its_last_tuning_only(monkeypatch):
    G, truth, keys, plate = colour_clip()
    pipe = Pipeline.from_modules(G, layout=G.latent_layout)
    seen = []
    for name in ("pivotal_tune_clips", "joint_tune_clips"):
        real = getattr(pipeline_module, name)

        def spy(gens, zs, xs, steps, _r=real, **kw):
            f = kw.get("free")
            want = None if f is None else [plate_free(x, background_plate(g, z, x)) for g, z, x in zip(gens, zs, xs)]
            seen.append((kw.get("halo"), f is not None and all(torch.equal(a, b) for a, b in zip(f, want))))
            return _r(gens, zs, xs, steps, **kw)

        monkeypatch.setattr(pipeline_module, name, spy)
    opts = dict(clip_steps=2, method="lbfgs", lbfgs_steps=0, pivot_steps=2, refit=1, plate=True, attempts=1)
    clip = pipe(keys, [0, 9, 19], 20, halo=0.3, **opts)
    assert seen == [(0.3, False), (0.3, True)] and clip.frames.shape == (20, 3, 32, 32)
    seen.clear()
    pipe(keys, [0, 9, 19], 20, halo=0.0, **opts)  # off: no mask
    assert seen == [(0.0, False), (0.0, False)]
    seen.clear()
    pipe(keys, [0, 9, 19], 20, halo=0.3, **{**opts, "plate": False})  # no plate, nothing to hold the slots off
    assert seen == [(0.3, False), (0.3, False)]


def test_a_negative_weight_is_refused():
    with pytest.raises(OptionError, match="halo"):
        Options(halo=-0.1).validated()
    with pytest.raises(tune.LatentVideoError, match="2 background masks for 1 clips"):
        G, truth, keys, plate = colour_clip()
        pivotal_tune_clips([G], [truth], [keys], steps=1, free=[plate_free(keys, plate)] * 2, halo=1.0)


def test_the_colour_preset_keeps_slots_off_the_plate_and_gray_has_no_plate():
    from latentvideo.presets import HALO
    from test_refit_looks import tiny

    assert Pipeline.from_modules(tiny(0, colour=True)).default_options().halo == HALO > 0
    assert Pipeline.from_modules(tiny(0)).default_options().halo == 0.0
