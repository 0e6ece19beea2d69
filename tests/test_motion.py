"""The bounce motion prior (motion.py): the fold, the per-axis fit, sprite finding and placement,
the whole fit on real Moving MNIST test sequences against the oracle, the baseline, and the
pipeline option with a tiny 64x64 generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentvideo.data import compose, moving_mnist, moving_mnist_speed
from latentvideo.errors import LatentVideoError
from latentvideo.evaluation import baselines, metrics
from latentvideo.models import Critic, Generator
from latentvideo.motion import BounceFit, fit_axis, fit_bounce, fold, locate
from latentvideo.pipeline import Pipeline

KEYS = (0, 9, 19)


@pytest.fixture(scope="module")
def mm(test_digits):
    return moving_mnist(24, 20, 2, 64, split="test", seed=5, digit_source=test_digits)


def test_fold_bounces_between_the_walls():
    u = np.array([0.0, 10.0, 36.0, 40.0, 72.0, 80.0, -4.0, -40.0])
    np.testing.assert_allclose(fold(u, 36), [0, 10, 36, 32, 0, 8, 4, 32])
    assert (fold(np.linspace(-500, 500, 1001), 36) >= 0).all() and (fold(np.linspace(-500, 500, 1001), 36) <= 36).all()
    np.testing.assert_array_equal(fold(u, 0), np.zeros_like(u))


def test_fit_axis_recovers_a_path_that_bounced_between_keyframes():
    times = np.array(KEYS, float)
    u0, v = 30.0, 3.4  # hits the wall at 36 in frame 2 and again at 0 in frame 23
    truth = fold(u0 + v * np.arange(20), 36)
    pos = np.round(truth[list(KEYS)])
    fits = [f for f in fit_axis(times, pos, 36, 18) if f[2] <= 1.0]
    assert fits, "no candidate fits the keyframes"
    slowest = min(fits, key=lambda f: abs(f[1]))
    assert slowest[1] == pytest.approx(v, abs=0.1)
    np.testing.assert_allclose(fold(slowest[0] + slowest[1] * np.arange(20), 36), truth, atol=1.0)
    # the straight line between the keyframes is far off in between: it never reaches the wall
    straight = np.interp(np.arange(20), times, pos)
    assert np.abs(straight - truth).max() > 4


def test_locate_places_overlapping_sprites(mm):
    sprites = mm.digits[0].astype(np.float64) / 255  # [2, 28, 28]
    pos = np.array([[10, 12], [20, 25]])  # the boxes overlap
    frame = compose(sprites[None], pos[None, None], 64)[0, 0]
    found, err = locate(sprites, frame)
    np.testing.assert_array_equal(found, pos)
    assert err == pytest.approx(0, abs=1e-12)


def test_fit_bounce_beats_the_oracle_on_test_sequences(mm):
    """Where the prior applies it must beat straight lines between the true keyframe positions."""
    video = mm.video / 255.0
    others = [t for t in range(20) if t not in KEYS]
    oracle = baselines.piecewise_linear_oracle(mm.digits, mm.positions, KEYS) / 255.0
    used, ours, theirs = 0, [], []
    for i in range(video.shape[1]):
        fit = fit_bounce(video[list(KEYS), i], KEYS)
        if fit is None:
            continue
        used += 1
        assert isinstance(fit, BounceFit) and fit.error <= 2e-3 and len(fit.sprites) <= 3
        frames = fit.frames(np.arange(20))
        assert frames.shape == (20, 64, 64) and frames.min() >= 0 and frames.max() <= 1
        ours.append(metrics.motion_error(frames[others], video[others, i]).mean())
        theirs.append(metrics.motion_error(oracle[others, i], video[others, i]).mean())
    assert used >= 0.6 * video.shape[1]
    assert np.mean(ours) < 0.7 * np.mean(theirs)


def test_known_speed_resolves_two_keyframes(mm):
    """With keyframes 0 and 19 every bounce count fits; the known speed picks the right one."""
    video = mm.video / 255.0
    others = list(range(1, 19))
    err = {None: [], moving_mnist_speed(64): []}
    for i in range(video.shape[1]):
        fits = {s: fit_bounce(video[[0, 19], i], (0, 19), speed=s) for s in err}
        if all(f is not None for f in fits.values()):
            for s, f in fits.items():
                err[s].append(metrics.motion_error(f.frames(np.arange(20))[others], video[others, i]).mean())
    assert len(err[None]) >= 10
    assert np.mean(err[moving_mnist_speed(64)]) < 0.8 * np.mean(err[None])


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((3, 64, 64)),  # nothing on the canvas
        np.random.default_rng(0).random((3, 64, 64)),  # noise: one canvas-wide component
        np.pad(np.ones((3, 40, 40)), ((0, 0), (12, 12), (12, 12))),  # an object bigger than a sprite
        np.zeros((3, 20, 20)),  # a canvas smaller than a sprite
    ],
)
def test_fit_bounce_declines_what_it_cannot_explain(frames):
    assert fit_bounce(frames, KEYS) is None


def test_fit_bounce_rejects_bad_shapes():
    with pytest.raises(LatentVideoError, match="square gray keyframes"):
        fit_bounce(np.zeros((3, 64, 60)), KEYS)


def test_bounce_sprites_baseline(mm):
    out = baselines.bounce_sprites(mm.video, KEYS)
    assert out.shape == mm.video.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[list(KEYS)], mm.video[list(KEYS)])
    noise = np.random.default_rng(1).integers(0, 256, (20, 2, 64, 64), dtype=np.uint8)
    np.testing.assert_array_equal(baselines.bounce_sprites(noise, KEYS), baselines.crossfade(noise, KEYS))


# ---------------------------------------------------------------- the pipeline option


@pytest.fixture(scope="module")
def pipe():
    torch.manual_seed(0)
    return Pipeline.from_modules(Generator(z_dim=8, resolution=64, width=4), Critic(64, 1, 4))


def test_pipeline_bounce_prior_projects_every_frame(pipe, mm):
    i = next(i for i in range(mm.video.shape[1]) if fit_bounce(mm.video[list(KEYS), i] / 255.0, KEYS) is not None)
    keys = torch.from_numpy(mm.video[list(KEYS), i]).float()[:, None] / 255
    noise = torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(0))
    base = dict(method="lbfgs", lbfgs_steps=3, critic="off")
    line, noisy_line = pipe.generate_many([keys, noise], [KEYS, KEYS], 20, motion_prior="off", **base)
    bounce, fallback = pipe.generate_many(
        [keys, noise], [KEYS, KEYS], 20, motion_prior="bounce", motion_steps=2, **base
    )
    assert isinstance(bounce.motion, BounceFit) and line.motion is None and fallback.motion is None
    # keyframe latents are the same projection; in between the latents are projections of the fit's frames
    torch.testing.assert_close(bounce.keyframe_latents, line.keyframe_latents)
    torch.testing.assert_close(bounce.latents[list(KEYS)], line.latents[list(KEYS)])
    assert not torch.allclose(bounce.latents, line.latents)
    targets = torch.from_numpy(bounce.motion.frames(np.arange(20))).float()[:, None]
    inv = pipe.project(targets[[1, 2]], pipe.options(**{**base, "lbfgs_steps": 2}))
    torch.testing.assert_close(bounce.latents[[1, 2]], inv.latents, atol=1e-4, rtol=0)
    # a clip the prior cannot explain keeps the latent path
    torch.testing.assert_close(fallback.frames, noisy_line.frames)


@pytest.mark.parametrize(
    "bad, match",
    [
        (dict(motion_prior="wave"), "unknown motion_prior"),
        (dict(motion_speed=-1.0), "motion_speed"),
        (dict(motion_speed=float("nan")), "motion_speed"),
        (dict(motion_steps=-1), "motion_steps"),
    ],
)
def test_motion_options_are_validated(pipe, bad, match):
    with pytest.raises(LatentVideoError, match=match):
        pipe.options(method="lbfgs", **bad)


def test_animate_needs_keyframe_images_for_the_prior(pipe):
    opts = pipe.options(method="lbfgs", critic="off", motion_prior="bounce")
    with pytest.raises(LatentVideoError, match="keyframe images"):
        pipe.animate([torch.zeros(3, 8)], [np.array(KEYS, float)], 20, opts)
