import pytest
import torch

from latentvideo.correct import correct_clip, correct_latents, correct_pixels
from latentvideo.errors import LatentVideoError
from latentvideo.models import Critic, Generator

torch.set_num_threads(1)
Z = 8


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(z_dim=Z, resolution=32, channels=1, width=4).eval()


@pytest.fixture(scope="module")
def C():
    torch.manual_seed(1)
    return Critic(resolution=32, channels=1, width=4).eval()


@pytest.fixture(scope="module")
def z():
    return torch.randn(5, Z, generator=torch.Generator().manual_seed(2))


@pytest.fixture(scope="module")
def frames(G, z):
    with torch.no_grad():
        return G(z)


def score(C, x):
    with torch.no_grad():
        return C(x)


def dist(a, b):
    return (a - b).pow(2).flatten(1).mean(1)  # [T]


def test_pixel_correction_raises_every_score(C, frames):
    out = correct_pixels(C, frames, steps=5, step_size=0.01)
    assert out.shape == frames.shape and out.dtype == torch.float32
    assert (score(C, out) > score(C, frames)).all()


def test_latent_correction_raises_every_score(G, C, z, frames):
    out = correct_latents(G, C, z, steps=5, step_size=0.01)
    assert out.shape == z.shape
    assert (score(C, G(out)) > score(C, frames)).all()


def test_zero_steps_is_identity(G, C, z, frames):
    assert torch.equal(correct_pixels(C, frames, steps=0), frames)
    assert torch.equal(correct_latents(G, C, z, steps=0), z)
    zc, fc = correct_clip(G, C, z, None, steps=0, space="latent")
    assert torch.equal(zc, z) and torch.equal(fc, frames)


def test_input_is_not_modified(G, C, z, frames):
    z0, f0 = z.clone(), frames.clone()
    correct_latents(G, C, z, steps=3)
    correct_pixels(C, frames, steps=3)
    assert torch.equal(z, z0) and torch.equal(frames, f0)


def test_pixels_stay_in_unit_range(C, frames):
    out = correct_pixels(C, frames, steps=5, step_size=100.0)
    assert out.min() >= 0 and out.max() <= 1


def test_anchor_keeps_frames_closer(G, C, z, frames):
    free = correct_pixels(C, frames, steps=20, step_size=0.5)
    held = correct_pixels(C, frames, steps=20, step_size=0.5, anchor=500.0)
    assert (dist(held, frames) < dist(free, frames)).all()
    free_z = correct_latents(G, C, z, steps=20, step_size=0.5)
    held_z = correct_latents(G, C, z, steps=20, step_size=0.5, anchor=50.0)  # G's Jacobian makes it stiffer
    assert (dist(G(held_z).detach(), frames) < dist(G(free_z).detach(), frames)).all()


def test_frames_are_independent(C, frames):
    batch = correct_pixels(C, frames, steps=5, step_size=0.1)
    alone = correct_pixels(C, frames[2:3], steps=5, step_size=0.1)
    torch.testing.assert_close(alone[0], batch[2], atol=1e-5, rtol=0)


def test_models_stay_frozen(G, C, z, frames):
    correct_latents(G, C, z, steps=2, anchor=1.0)
    correct_pixels(C, frames, steps=2, anchor=1.0)
    correct_clip(G, C, z, None, steps=2, temporal=1.0, space="latent")
    assert all(p.grad is None for p in list(G.parameters()) + list(C.parameters()))


def test_temporal_term_limits_frame_changes(G, C, z):
    path = z[:1] + torch.linspace(0, 1, 6)[:, None] * (z[1:2] - z[:1])  # a smooth latent path [6, Z]
    with torch.no_grad():
        clip = G(path)

    def excess(x):  # frame-to-frame change beyond the uncorrected clip's
        return (dist(x[1:], x[:-1]) - dist(clip[1:], clip[:-1])).clamp_min(0).sum()

    kw = {"steps": 20, "step_size": 0.5}
    _, free = correct_clip(None, C, None, clip, **kw)
    z_kept, held = correct_clip(None, C, None, clip, **kw, temporal=200.0)
    assert z_kept is None and held.shape == clip.shape
    assert excess(held) < excess(free)
    zc, fc = correct_clip(G, C, path, None, **kw, temporal=200.0, space="latent")
    assert zc.shape == path.shape
    torch.testing.assert_close(fc, G(zc).detach())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"space": "fourier"}, "unknown correction space"),
        ({"steps": -1}, "steps"),
        ({"steps": 1.5}, "steps"),
        ({"step_size": -0.1}, "step size"),
        ({"anchor": -1.0}, "anchor"),
        ({"temporal": float("nan")}, "temporal"),
    ],
)
def test_bad_arguments(C, frames, kwargs, match):
    with pytest.raises(LatentVideoError, match=match):
        correct_clip(None, C, None, frames, **kwargs)


def test_missing_inputs(G, C, z, frames):
    with pytest.raises(LatentVideoError, match="latents"):
        correct_clip(G, C, None, frames, space="latent")
    with pytest.raises(LatentVideoError, match="frames"):
        correct_pixels(C, frames[0])
    with pytest.raises(LatentVideoError, match="z_dim"):
        correct_latents(G, C, z[0])
