"""Objects that bounce at their own walls: `ObjectGenerator.walls` measured on a sprite, the unwrap fitted in each
slot's own range (`unwrap_positions(walls=...)`, `to_generator`), and the pipeline's `walls` option."""

import numpy as np
import pytest
import torch

from latentvideo.errors import LatentVideoError
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import Pipeline
from latentvideo.unwrap import to_generator, unwrap_positions

TIMES = np.array([0.0, 14.0, 19.0])


def own_range_path(t, q0, v, walls):
    """Positions G renders [T] of an object moving at v (its own range's units) from q0, bouncing at its walls
    (lo, hi) past G's fold range; clamped where G cannot follow it."""
    q = 1 - np.abs(((q0 + v * np.asarray(t, np.float64)) % 2) - 1)
    return np.clip((1 + sum(walls)) * q - walls[0], 0, 1)


def square_sprites(G, rows, cols):
    """Make G draw, in every slot, an opaque white square over sprite rows and cols (ranges), alpha 0 elsewhere."""
    S = G.sprite

    def sprites(appearance):
        out = appearance.new_zeros(len(appearance), 4, S, S)
        out[:, :, rows.start : rows.stop, cols.start : cols.stop] = 1
        return out

    G.sprites = sprites
    return G


def small_rgb_generator(objects=1):
    torch.manual_seed(0)
    return ObjectGenerator(objects=objects, appearance=4, resolution=32, channels=3, sprite=12, width=4, background=3)


def test_walls_are_where_a_sprites_ink_meets_the_canvas_edge():
    G = square_sprites(small_rgb_generator(2), range(4, 8), range(2, 6))  # fold range 20 px
    z = G.sample_latents(1)[0]
    walls = G.walls(z)  # [2, 2, 2]
    # rows: the square's centre of mass sits at the box centre (5.5), 4 px of empty sprite on either side
    np.testing.assert_allclose(walls[:, 0], [[0.2, 0.2]] * 2, atol=1e-4)  # the centre of mass is 1e-3-regularised
    # cols 2..5: centre of mass 3.5, 2 px left of the box centre, so G places the box 2 px further right; the
    # square meets the left wall 2 + 2 px past the fold's start and the right one 6 - 2 px past its end
    np.testing.assert_allclose(walls[:, 1], [[0.2, 0.2]] * 2, atol=1e-4)  # the centre of mass is 1e-3-regularised
    # check by rendering: at u = -0.2 (folded inside G, so place the box by hand) the square touches the left edge
    G2 = square_sprites(small_rgb_generator(), range(4, 8), range(2, 6))
    layer = G2.place(G2.sprites(torch.zeros(1, 4)), torch.tensor([[0.5, 0.0]]))[0, 3]  # [32, 32] alpha at u = 0
    assert layer[:, :4].sum() == 0 and layer[:, 4].sum() > 0  # 4 px (0.2 fold units) short of the edge


def test_a_slot_drawing_nothing_has_no_walls():
    G = square_sprites(small_rgb_generator(), range(0, 0), range(0, 0))
    assert not G.walls(G.sample_latents(1)[0]).any()


def test_unwrap_bounces_at_each_slots_own_walls():
    walls = np.array([[[0.2, 0.2], [0.0, 0.0]]])  # [K, 2, 2]: rows reach 0.2 past both ends, cols none
    t = np.arange(20.0)
    row = own_range_path(t, 0.3, -0.04, (0.2, 0.2))  # bounces off the top wall at frame 7.5
    col = own_range_path(t, 0.1, 0.02, (0.0, 0.0))
    p = np.stack([row, col], -1)[:, None]  # [20, 1, 2]
    keys = TIMES.astype(int)
    assert (p[keys] > 0).all()  # no keyframe is where G cannot follow the object
    u = unwrap_positions(p[keys], TIMES, walls=walls)
    assert u.unwrapped.all()
    path = np.stack([np.interp(t, TIMES, u.positions[:, 0, a]) for a in range(2)], -1)[:, None]  # lerp
    np.testing.assert_allclose(to_generator(path, walls), p, atol=1e-9)
    np.testing.assert_allclose(to_generator(u.positions, walls), p[keys], atol=1e-12)  # keyframes kept
    # at G's own fold no line passes these keyframes: plain lerp, which never reaches the wall
    plain = unwrap_positions(p[keys], TIMES)
    assert not plain.unwrapped[0]
    lerp = np.interp(t, TIMES, plain.positions[:, 0, 0])
    assert np.abs(lerp - row).max() > 0.15
    # to_generator on tensors is the same map
    torch.testing.assert_close(to_generator(torch.from_numpy(path), walls), torch.from_numpy(p), atol=1e-9, rtol=0)


def test_zero_walls_change_nothing():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, (3, 2, 2))
    a, b = unwrap_positions(p, TIMES), unwrap_positions(p, TIMES, walls=np.zeros((2, 2, 2)))
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.unwrapped, b.unwrapped)


@pytest.mark.parametrize("walls", [np.zeros((2, 2)), -np.ones((1, 2, 2)), np.full((1, 2, 2), np.nan)])
def test_bad_walls_are_refused(walls):
    with pytest.raises(LatentVideoError, match="walls must be"):
        unwrap_positions(np.zeros((3, 1, 2)), TIMES, walls=walls)


def test_the_pipeline_bounces_at_the_sprites_walls_with_walls_sprite():
    G = square_sprites(small_rgb_generator(), range(4, 8), range(4, 8))  # walls 0.2 on every side
    pipe = Pipeline.from_modules(G)
    t = np.arange(20.0)
    truth = np.stack([own_range_path(t, 0.3, -0.04, (0.2, 0.2)), np.full(20, 0.5)], -1)  # [20, 2]
    z = G.sample_latents(1).repeat(20, 1)
    z[:, pipe.layout.index[0]] = torch.from_numpy(truth).float()
    opts = dict(method="lbfgs", critic="off", clip_steps=0, lbfgs_steps=0, pivot_steps=0, plate=False)
    keys = z[TIMES.astype(int)]
    run = {w: pipe.animate([keys], [TIMES], 20, pipe.options(**opts, walls=w)).latents for w in ("sprite", "fold")}
    rows = {w: run[w][:, pipe.layout.index[0, 0]].double() for w in run}
    torch.testing.assert_close(rows["sprite"], torch.from_numpy(truth[:, 0]), atol=1e-4, rtol=0)
    assert (1 - ((rows["fold"] % 2) - 1).abs() - torch.from_numpy(truth[:, 0])).abs().max() > 0.15
