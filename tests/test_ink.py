"""Slot association across a clip's keyframes by the keyframes' own ink (ink.associate_slots)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentvideo.ink import associate_slots, object_patches, patch_distance
from latentvideo.objects import ObjectGenerator, fold


def tiny_objects(seed=5) -> ObjectGenerator:
    torch.manual_seed(seed)
    return ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4)


def draw(l_at, bar_at) -> torch.Tensor:
    """A 32 x 32 keyframe [1, 32, 32] with an L whose top-left is l_at and a bar whose top-left is bar_at."""
    x = torch.zeros(1, 32, 32)
    r, c = l_at
    x[0, r : r + 7, c : c + 2] = 1.0
    x[0, r + 5 : r + 7, c + 2 : c + 6] = 0.7
    r, c = bar_at
    x[0, r : r + 2, c : c + 9] = 0.9
    return x


def slot_latents(G, px) -> torch.Tensor:
    """One latent per keyframe, both slots with fixed appearance codes, at pixel centres px [n, K, 2]."""
    lay = G.latent_layout
    a = torch.randn(1, 2, 4, generator=torch.Generator().manual_seed(0)).repeat(len(px), 1, 1)
    return G.join(a, (torch.as_tensor(px, dtype=torch.float32) - (G.sprite - 1) / 2) / lay.fold_range)


def centres(G, z) -> np.ndarray:  # [n, K, 2] px
    return (fold(z[:, G.latent_layout.index]) * G.latent_layout.fold_range + (G.sprite - 1) / 2).numpy()


L_AT, BAR_AT = [(4, 4), (10, 9), (17, 15)], [(22, 18), (15, 12), (6, 6)]  # the shapes cross between keyframes


def l_centre(at):
    return (at[0] + 3.9, at[1] + 1.5)


def bar_centre(at):
    return (at[0] + 0.5, at[1] + 4.0)


def test_associate_slots_undoes_a_keyframe_whose_slots_hold_each_others_objects():
    G = tiny_objects()
    x = torch.stack([draw(a, b) for a, b in zip(L_AT, BAR_AT)])  # [3, 1, 32, 32]
    px = [[l_centre(a), bar_centre(b)] for a, b in zip(L_AT, BAR_AT)]
    px[2] = px[2][::-1]  # keyframe 2: slot 0 sits on the bar, slot 1 on the L
    z = slot_latents(G, px)
    out, perms = associate_slots(G, z, x, G.latent_layout, [3])
    np.testing.assert_array_equal(perms[0], [[0, 1], [0, 1], [1, 0]])
    got = centres(G, out)
    np.testing.assert_allclose(got[:, 0], [l_centre(a) for a in L_AT], atol=1e-4)  # slot 0 follows the L
    np.testing.assert_allclose(got[:, 1], [bar_centre(b) for b in BAR_AT], atol=1e-4)
    other = torch.ones(z.shape[1], dtype=torch.bool)
    other[G.latent_layout.index.flatten()] = False
    assert torch.equal(out[:, other], z[:, other])  # appearance untouched


def test_associate_slots_keeps_a_right_assignment_and_handles_several_clips():
    G = tiny_objects()
    x = torch.stack([draw(a, b) for a, b in zip(L_AT, BAR_AT)])
    right = slot_latents(G, [[l_centre(a), bar_centre(b)] for a, b in zip(L_AT, BAR_AT)])
    swapped = right.clone()
    swapped[1] = slot_latents(G, [[bar_centre(BAR_AT[1]), l_centre(L_AT[1])]])[0]
    z = torch.cat([right, swapped[:2]])  # clip 1: three right keyframes; clip 2: keyframe 1 swapped
    out, perms = associate_slots(G, z, torch.cat([x, x[:2]]), G.latent_layout, [3, 2])
    np.testing.assert_array_equal(perms[0], [[0, 1]] * 3)
    np.testing.assert_array_equal(perms[1], [[0, 1], [1, 0]])
    assert torch.equal(out[:3], right)
    np.testing.assert_allclose(centres(G, out[3:]), centres(G, right[:2]), atol=1e-4)


def test_look_alike_objects_keep_the_fits_assignment():
    """Two copies of the same bar: no assignment is clearly better, so nothing is permuted."""
    G = tiny_objects()
    x = torch.zeros(2, 1, 32, 32)
    x[0, 0, 4:6, 3:12] = x[0, 0, 24:26, 20:29] = 0.9
    x[1, 0, 10:12, 6:15] = x[1, 0, 18:20, 16:25] = 0.9
    z = slot_latents(G, [[(4.5, 7), (24.5, 24)], [(18.5, 20), (10.5, 10)]])  # keyframe 1 "crossed"
    out, perms = associate_slots(G, z, x, G.latent_layout, [2])
    np.testing.assert_array_equal(perms[0], [[0, 1], [0, 1]])
    assert torch.equal(out, z)


def test_patch_distance_is_zero_for_the_same_ink_shifted_and_large_for_other_ink():
    G = tiny_objects()
    x = torch.stack([draw((4, 4), (22, 18)), draw((6, 5), (20, 16))])  # both shapes moved by (2, 1) and (-2, -2)
    z = slot_latents(G, [[l_centre((4, 4)), bar_centre((22, 18))], [l_centre((6, 5)), bar_centre((20, 16))]])
    p = object_patches(G, z, x)  # [2, 2, 1, P, P]
    assert p.shape == (2, 2, 1, G.sprite + 6, G.sprite + 6)
    d = patch_distance(p[0][:, None], p[1][None])  # [K, K]
    assert d[0, 0] < 0.02 and d[1, 1] < 0.02, d
    assert d[0, 1] > 0.3 and d[1, 0] > 0.3, d


def test_position_errors_per_clip_count_a_swapped_keyframe():
    from latentvideo.evaluation.recovery import position_errors

    G = tiny_objects()
    truth = slot_latents(G, [[(8, 8), (20, 24)], [(12, 10), (18, 20)], [(16, 12), (16, 16)]])
    found = truth.clone()
    found[1] = slot_latents(G, [[(18, 20), (12, 10)]])[0]  # keyframe 1 with its slots swapped
    np.testing.assert_allclose(position_errors(G.latent_layout, found, truth), 0, atol=1e-4)
    per_clip = position_errors(G.latent_layout, found, truth, clip_len=3)
    np.testing.assert_allclose(per_clip[[0, 2]], 0, atol=1e-4)
    np.testing.assert_allclose(per_clip[1], np.hypot(6, 10), atol=1e-4)


def test_clip_inversion_keeps_each_slot_on_one_shape_where_the_fit_alone_swaps_them():
    """An L and a bar that trade sides between keyframes, and tiny generators that draw both slots as blobs (their
    codes cannot tell the shapes apart): the clip inversion without a projector finds every shape's ink centre
    within 0.5 px with one slot per shape for the whole clip. Without the association the fit swaps them."""
    from latentvideo.slots import invert_clips

    l_at, bar_at = [(4, 4), (4, 22), (17, 15)], [(22, 18), (20, 2), (6, 6)]
    x = torch.stack([draw(a, b) for a, b in zip(l_at, bar_at)])
    off = (40, 40)  # off the canvas: one shape alone
    truth = np.stack([[ink_centre(draw(a, off)[0]), ink_centre(draw(off, b)[0])] for a, b in zip(l_at, bar_at)])

    def error(G, **kw):  # px, the worst keyframe, one slot matching for the clip
        c = centres(G, invert_clips(G, [x], None, frame_steps=30, clip_steps=30, **kw).latents[0])
        return min(np.linalg.norm(c - truth, axis=-1).max(), np.linalg.norm(c[:, ::-1] - truth, axis=-1).max())

    for seed in range(4):
        assert error(tiny_objects(seed)) < 0.5, seed
    assert error(tiny_objects(1), associate=False) > 10


def ink_centre(img: torch.Tensor) -> np.ndarray:  # [H, W] -> (row, col)
    r, c = torch.meshgrid(torch.arange(img.shape[0]), torch.arange(img.shape[1]), indexing="ij")
    return np.array([(img * r).sum() / img.sum(), (img * c).sum() / img.sum()])


def test_joint_assignment_lets_two_clear_keyframe_pairs_outvote_a_noisy_one():
    """Patch distances of a clip whose keyframe 1 holds the objects in swapped slots. Keyframes 0 and 1 overlap
    (their distances are noise, leaning the wrong way); keyframe 2 clearly matches keyframe 0 as it is and
    keyframe 1 swapped. Keyframe by keyframe, the noise decides keyframe 1 and keyframe 2 follows it wrongly;
    jointly, the two clear pairs win."""
    from latentvideo.ink import _best_joint, _best_sequential, _total

    d = np.zeros((3, 2, 3, 2))
    pairs = {
        (0, 1): [[0.40, 0.55], [0.50, 0.50]],
        (0, 2): [[0.05, 0.50], [0.50, 0.05]],
        (1, 2): [[0.58, 0.04], [0.06, 0.50]],
    }
    for (i, j), m in pairs.items():
        d[i, :, j], d[j, :, i] = m, np.transpose(m)
    joint = _best_joint(d)
    np.testing.assert_array_equal(joint, [[0, 1], [1, 0], [0, 1]])
    assert _total(d, joint[None])[0] == pytest.approx(0.55 + 0.50 + 0.05 + 0.05 + 0.06 + 0.04)
    np.testing.assert_array_equal(_best_sequential(d), [[0, 1], [0, 1], [1, 0]])
    assert _total(d, _best_sequential(d)[None])[0] > 1.9


# ------------------------------------------------------------------ colour: objects over a backdrop


def tiny_rgb(seed=5) -> ObjectGenerator:
    torch.manual_seed(seed)
    return ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4, channels=3, background=3)


def paint(G, z, l_at, bar_at) -> torch.Tensor:
    """G's backdrop for z [1, z_dim] with a red L and a blue bar painted over it, and noise all over (a backdrop never
    fits a photograph exactly) -> [3, 32, 32]."""
    with torch.no_grad():
        x = G.backdrop(G.split(z)[2])[0].clone()
    off = (40, 40)
    for at, colour in ((draw(l_at, off)[0] > 0, (0.95, 0.1, 0.1)), (draw(off, bar_at)[0] > 0, (0.1, 0.2, 0.95))):
        x[:, at] = torch.tensor(colour)[:, None]
    return (x + 0.03 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))).clamp(0, 1)


def test_colour_slots_are_associated_by_their_objects_colours_and_shapes():
    G = tiny_rgb()
    px = [[l_centre(a), bar_centre(b)] for a, b in zip(L_AT, BAR_AT)]
    px[2] = px[2][::-1]  # keyframe 2: slot 0 sits on the bar, slot 1 on the L
    z = slot_latents(G, px)
    z = torch.cat([z, torch.randn(1, 3).repeat(3, 1)], 1)  # one background code for the clip
    x = torch.stack([paint(G, z[:1], a, b) for a, b in zip(L_AT, BAR_AT)])  # [3, 3, 32, 32]
    out, perms = associate_slots(G, z, x, G.latent_layout, [3])
    np.testing.assert_array_equal(perms[0], [[0, 1], [0, 1], [1, 0]])
    np.testing.assert_allclose(centres(G, out)[:, 0], [l_centre(a) for a in L_AT], atol=1e-4)
    right = z.clone()
    right[2] = out[2]
    assert torch.equal(associate_slots(G, right, x, G.latent_layout, [3])[0], right)  # and keeps a right clip


def test_colour_centre_steps_move_each_slot_to_its_objects_centre_over_a_backdrop():
    from latentvideo.ink import centre_on_ink

    G = tiny_rgb()
    truth = torch.tensor([l_centre(L_AT[0]), bar_centre(BAR_AT[0])])  # [2, 2] px
    z = slot_latents(G, (truth + torch.tensor([[2.0, -2.0], [-2.0, 1.5]]))[None])
    z = torch.cat([z, torch.randn(1, 3)], 1)
    x = paint(G, z, L_AT[0], BAR_AT[0])[None]
    out = centre_on_ink(G, z, x, G.latent_layout, steps=5)
    got = torch.as_tensor(centres(G, out)[0])
    assert (got - truth).abs().max() < 0.5, (got, truth)
    assert (torch.as_tensor(centres(G, z)[0]) - truth).abs().max() > 1.9  # the start was off
