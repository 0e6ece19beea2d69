"""A clip's copy of G that reaches each object's own walls (reach.py): it draws what G draws, in each slot's own
units; it places a sprite past G's fold range; the keyframe positions are fitted again there; and the pipeline's
`walls="reach"` path follows an object to its wall where `walls="sprite"` stops at G's fold range."""

import copy

import numpy as np
import pytest
import torch

from latentvideo.errors import LatentVideoError
from latentvideo.objects import fold
from latentvideo.pipeline import Pipeline
from latentvideo.reach import reach_walls, to_reach
from latentvideo.tune import pivotal_tune_clips
from latentvideo.unwrap import unwrap_positions
from test_walls import own_range_path, small_rgb_generator, square_sprites

WALL = 0.15  # a 6 px square in the small G's 12 px box: 3 px (0.15 of its 20 px fold range) past either end
SPAN = 1 + 2 * WALL


def square_generator(objects=1):
    return square_sprites(small_rgb_generator(objects), range(3, 9), range(3, 9))


def test_a_reached_copy_draws_what_g_draws_in_its_own_units():
    G = square_generator(2)
    z = G.sample_latents(3, torch.Generator().manual_seed(1))
    reached, z_own = reach_walls(G, z, G(z), steps=0)
    assert G.reach is None and reached.sprite_fc is G.sprite_fc  # a copy sharing G's weights
    np.testing.assert_allclose(reached.reach.numpy(), WALL, atol=1e-4)
    torch.testing.assert_close(reached(z_own), G(z), atol=1e-5, rtol=0)
    with pytest.raises(LatentVideoError, match="reaches its walls already"):
        reach_walls(reached, z_own, G(z))


def test_a_reached_copy_places_a_sprite_past_gs_fold_range():
    G = square_generator()
    z = G.sample_latents(1)
    z[0, G.latent_layout.index[0]] = torch.tensor([0.0, 0.5])
    reached, _ = reach_walls(G, z, G(z), steps=0)
    at_g = G.layers(z)[0, 0, 3]  # [32, 32] alpha: G's nearest to the top wall, 3 px short of it
    at_wall = reached.layers(z)[0, 0, 3]  # the reached copy's u = 0: the square's top row on the canvas's
    assert at_g[:3].sum() == 0 and at_g[3].sum() > 5.9
    assert at_wall[0].sum() > 5.9 and at_wall[6:].sum() == 0
    two = square_generator(2)
    two.reach = torch.zeros(2, 2, 2)
    with pytest.raises(LatentVideoError, match="whole slot sets"):
        two.place(torch.zeros(3, 4, 12, 12), torch.zeros(3, 2))  # 3 positions for 2 slots


def test_reach_fits_a_keyframe_at_the_wall_where_g_could_not_draw_it():
    G = square_generator()
    truth = torch.tensor([[0.02, 0.5], [0.3, 0.4]])  # own units: 0.5 px from the top wall, then further in
    z = G.sample_latents(1).repeat(2, 1)
    reached, _ = reach_walls(G, z, G(z), steps=0)
    z_true = z.clone()
    z_true[:, G.latent_layout.index[0]] = truth
    images = reached(z_true)  # the keyframes: the square at the wall, then in the open
    start = z.clone()
    start[:, G.latent_layout.index[0]] = (truth * SPAN - WALL).clamp(0, 1)  # what G's inversion could reach
    _, fitted = reach_walls(G, start, images)
    px = (fold(fitted[:, G.latent_layout.index[0]]) - truth).abs() * SPAN * 20  # [2, 2] px
    assert px.max() < 0.5
    assert start[0, G.latent_layout.index[0][0]] == 0  # (the start: G's fold range's end, 2.5 px short of it)


def test_unwrap_in_own_units_is_the_unwrap_with_walls():
    rng = np.random.default_rng(0)
    walls = rng.uniform(0, 0.3, (2, 2, 2))
    p = rng.uniform(0, 1, (3, 2, 2))
    a = unwrap_positions(p, [0.0, 9.0, 19.0], walls=walls)
    b = unwrap_positions(to_reach(torch.from_numpy(p), walls).numpy(), [0.0, 9.0, 19.0], walls=walls, own=True)
    np.testing.assert_allclose(a.positions, b.positions, atol=1e-12)
    np.testing.assert_array_equal(a.unwrapped, b.unwrapped)


def test_the_pipeline_follows_an_object_to_its_wall_with_walls_reach():
    G = square_generator()
    pipe = Pipeline.from_modules(G)
    t, times = np.arange(20.0), np.array([0.0, 8.0, 19.0])
    own = 1 - np.abs(((0.3 - 0.04 * t) % 2) - 1)  # own units: the wall at frame 7.5
    truth = np.stack([own, np.full(20, 0.5)], -1)  # [20, 2]
    z = G.sample_latents(1).repeat(20, 1)
    reached, _ = reach_walls(G, z[:1], G(z[:1]), steps=0)
    z_own = z.clone()
    z_own[:, pipe.layout.index[0]] = torch.from_numpy(truth).float()
    frames = reached(z_own)  # [20, 3, 32, 32] the truth, drawn up to the wall
    keys = z[times.astype(int)].clone()  # what G's inversion gives: the keyframes clamped to G's fold range
    keys[:, pipe.layout.index[0]] = torch.from_numpy(own_range_path(times, 0.3, -0.04, (WALL, WALL))).float()[:, None]
    keys[:, pipe.layout.index[0, 1]] = 0.5
    opts = dict(method="lbfgs", critic="off", clip_steps=0, lbfgs_steps=0, pivot_steps=0, plate=False)
    x = frames[times.astype(int)]
    run = {
        w: pipe.animate([keys], [times], 20, pipe.options(**opts, walls=w), keyframes=[x]) for w in ("reach", "sprite")
    }
    rows = fold(run["reach"].latents[:, pipe.layout.index[0, 0]].double())
    torch.testing.assert_close(rows, torch.from_numpy(own), atol=0.01, rtol=0)  # 0.3 px
    err = {w: (a.frames - frames).abs().amax((1, 2, 3)) for w, a in run.items()}  # [20] per frame
    assert err["reach"].max() < 0.1 < err["sprite"][6:10].min()
    np.testing.assert_allclose(own_range_path(t, 0.3, -0.04, (WALL, WALL))[6:10], 0)  # (G's range ends 3 px short)


def test_copies_reaching_different_walls_are_tuned_each_with_its_own():
    G = small_rgb_generator(2)
    z = G.sample_latents(3, torch.Generator().manual_seed(2))
    copies = []
    for w in (0.0, 0.2):
        c = copy.copy(G)
        c.reach = torch.full((2, 2, 2), w)
        copies.append(c)
    x = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    together = pivotal_tune_clips(copies, [z, z], [x, x], steps=3)
    for c, t in zip(copies, together):
        alone = pivotal_tune_clips([c], [z], [x], steps=3)[0]
        torch.testing.assert_close(t(z), alone(z), atol=1e-5, rtol=0)
    assert (together[0](z) - together[1](z)).abs().max() > 1e-3
