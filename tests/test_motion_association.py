"""Slot association by looks and motion (ink.associate_slots with keyframe times, unwrap.line_misfit): objects
that look alike are told apart by their keyframe positions lying on straight lines that bounce off the walls."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentvideo.errors import LatentVideoError
from latentvideo.ink import MOTION_CAP, associate_slots
from latentvideo.slots import invert_clips
from latentvideo.unwrap import line_misfit
from test_ink import centres, slot_latents, tiny_objects

TIMES = np.array([0.0, 5.0, 10.0])
A_AT, B_AT = [(5, 3), (10, 7), (15, 11)], [(25, 20), (22, 15), (19, 10)]  # two equal bars, each on a line


def bar(at) -> tuple[float, float]:  # the bar's centre, px
    return (at[0] + 0.5, at[1] + 4.0)


def keyframes() -> torch.Tensor:
    x = torch.zeros(3, 1, 32, 32)
    for i, (a, b) in enumerate(zip(A_AT, B_AT)):
        for r, c in (a, b):
            x[i, 0, r : r + 2, c : c + 9] = 0.9
    return x


def test_line_misfit_is_zero_on_a_bouncing_line_and_capped_off_it():
    line = [[0.1, 0.7], [0.3, 0.9], [0.52, 0.88]]  # the column bounces off 1 between keyframes 1 and 2
    assert line_misfit(line, [0, 10, 21], cap=0.1) == pytest.approx(0.0, abs=1e-9)
    assert line_misfit([[0.2, 0.5], [0.5, 0.5], [0.2, 0.5]], [0, 2, 4], cap=0.1) == 0.1  # there and back, no bounce
    bent = line_misfit([[0.2, 0.5], [0.32, 0.5], [0.4, 0.5]], [0, 10, 20], cap=0.1)
    assert 0.005 < bent < 0.1  # a slight bend costs in proportion: RMS of the residuals (-0.02, 0.04, -0.02) / 3
    assert bent == pytest.approx(np.sqrt((0.02**2 * 2 + 0.04**2) / 27), rel=1e-6)
    assert line_misfit([[0.2, 0.5], [0.9, 0.1]], [0, 10], cap=0.1) == 0.0  # two points make a line
    # walls: a bounce where the object's own edge meets the canvas (past G's fold range) is on its line
    walled = [[0.75, 0.5], [0.95, 0.5], [1.0, 0.5]]  # G clamps the last at its fold end: the object went on to 1.05
    assert line_misfit(walled, [0, 10, 20], cap=0.1) > 0.01
    assert line_misfit(walled, [0, 10, 20], [[0.0, 0.05], [0.0, 0.0]], cap=0.1) < line_misfit(
        walled, [0, 10, 20], cap=0.1
    )


def test_look_alike_objects_are_told_apart_by_their_motion():
    G = tiny_objects()
    x = keyframes()
    px = [[bar(a), bar(b)] for a, b in zip(A_AT, B_AT)]
    px[1] = px[1][::-1]  # keyframe 1: slot 0 sits on B, slot 1 on A; the bars look the same
    z = slot_latents(G, px)
    kept, perms = associate_slots(G, z, x, G.latent_layout, [3])
    np.testing.assert_array_equal(perms[0], [[0, 1]] * 3)  # by looks alone: nothing to choose, the fit's kept
    assert torch.equal(kept, z)
    out, perms = associate_slots(G, z, x, G.latent_layout, [3], times=[TIMES])
    np.testing.assert_array_equal(perms[0], [[0, 1], [1, 0], [0, 1]])
    got = centres(G, out)
    np.testing.assert_allclose(got[:, 0], [bar(a) for a in A_AT], atol=1e-4)  # slot 0 follows A's line
    np.testing.assert_allclose(got[:, 1], [bar(b) for b in B_AT], atol=1e-4)


def test_motion_keeps_a_right_assignment_and_ignores_two_keyframe_clips():
    G = tiny_objects()
    x = keyframes()
    right = slot_latents(G, [[bar(a), bar(b)] for a, b in zip(A_AT, B_AT)])
    crossed = slot_latents(G, [[bar(A_AT[0]), bar(B_AT[0])], [bar(B_AT[1]), bar(A_AT[1])]])
    z = torch.cat([right, crossed])  # clip 2: two keyframes, nothing to tell the bars apart
    out, perms = associate_slots(G, z, torch.cat([x, x[:2]]), G.latent_layout, [3, 2], times=[TIMES, TIMES[:2]])
    np.testing.assert_array_equal(perms[0], [[0, 1]] * 3)
    np.testing.assert_array_equal(perms[1], [[0, 1]] * 2)
    assert torch.equal(out, z)


def test_where_motion_cannot_choose_the_looks_decide():
    """An L and a bar moving far too fast for any line: every path costs the cap, and the shapes decide as before."""
    from test_ink import BAR_AT, L_AT, bar_centre, draw, l_centre

    G = tiny_objects()
    x = torch.stack([draw(a, b) for a, b in zip(L_AT, BAR_AT)])
    z = slot_latents(G, [[l_centre(a), bar_centre(b)] for a, b in zip(L_AT, BAR_AT)])
    times = [np.array([0.0, 1.0, 2.0])]  # both shapes far too fast for a line: every path costs the cap
    out, perms = associate_slots(G, z, x, G.latent_layout, [3], times=times)
    np.testing.assert_array_equal(perms[0], [[0, 1]] * 3)
    assert torch.equal(out, z)
    u = z[:, G.latent_layout.index].double().numpy()  # every path, the fit's and the crossed ones, costs the cap
    assert line_misfit(u[:, 0], times[0], cap=MOTION_CAP) == line_misfit(
        u[[0, 1, 2], [0, 1, 0]], times[0], cap=MOTION_CAP
    )


def test_clip_inversion_refuses_times_that_do_not_match_the_keyframes():
    G = tiny_objects()
    with pytest.raises(LatentVideoError, match="one time per keyframe"):
        invert_clips(G, [keyframes()], frame_steps=0, clip_steps=0, times=[TIMES[:2]])


@pytest.mark.parametrize("colour", [False, True])
def test_the_pipeline_gives_the_refits_association_each_clips_times(monkeypatch, colour):
    """Gray refits are batched over clips, colour ones run clip by clip: either way each clip's association gets
    its own keyframe times with motion_association, and none without (the first inversion never gets them)."""
    import latentvideo.slots as slots
    from latentvideo.pipeline import Pipeline
    from test_refit_looks import tiny

    seen = []

    def spy(*args, times=None, **kw):
        seen.append(times)
        return associate_slots(*args, times=times, **kw)

    monkeypatch.setattr(slots, "associate_slots", spy)
    G = tiny(0, colour)
    pipe = Pipeline.from_modules(G)
    x = keyframes().expand(-1, G.channels, -1, -1)
    other = [0.0, 4.0, 9.0]
    opts = dict(method="lbfgs", lbfgs_steps=2, clip_steps=3, pivot_steps=1, early_pivot_steps=1, refit=1, attempts=1)
    opts.update(critic="off", cover=False, tint_fit="off", plate=False, plate_search=False, walls="sprite")
    for motion in (True, False):
        seen.clear()
        pipe.generate_many([x, x.flip(0)], [TIMES, other], 11, motion_association=motion, **opts)
        first, refits = seen[:2], seen[2:]  # the first inversion's two calls, then the refit's
        assert first == [None, None] and len(refits) == (2 if not colour else 4)
        for t in refits:
            if not motion:
                assert t is None
            elif colour:  # one clip per call: the candidates' call and the final one
                assert len(t) == 1 and list(t[0]) in (list(TIMES), other)
            else:
                assert [list(a) for a in t] == [list(TIMES), other]


def test_the_colour_preset_associates_by_motion_and_the_gray_one_by_looks():
    """Measured (presets.py, BENCHMARK.md): 50 colour clips, identity +0.075; 200 digit clips, every metric level."""
    from latentvideo.pipeline import Pipeline
    from test_refit_looks import tiny

    assert Pipeline.from_modules(tiny(0, colour=True)).default_options().motion_association
    assert not Pipeline.from_modules(tiny(0)).default_options().motion_association
