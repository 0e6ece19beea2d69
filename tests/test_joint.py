"""Methods measured and not adopted, kept as functions: the joint curve fit through G (experimental/joint.py)
and temporal critic correction (correct.correct_clip); every benchmark row's options validate. Tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from latentvideo.correct import correct_clip
from latentvideo.errors import LatentVideoError
from latentvideo.evaluation import bench
from latentvideo.experimental.joint import (
    curve_keyframe_errors,
    fit_curve_through_generator,
    fit_curves_through_generator,
)
from latentvideo.invert import invert
from latentvideo.models import Critic, DigitClassifier, Generator
from latentvideo.pipeline import Options, Pipeline
from latentvideo.trajectory import fit_trajectory

Z, TIMES = 8, np.array([0.0, 9.0, 19.0])


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(z_dim=Z, resolution=32, channels=1, width=4).eval().requires_grad_(False)


def _clip(G, seed: int, times=TIMES, noise: float = 0.005):
    """Keyframes rendered by G along a curved latent path, plus pixel noise, and their independent inversions."""
    g = torch.Generator().manual_seed(seed)
    a, b, c = 2 * torch.randn(3, Z, generator=g)
    u = torch.as_tensor(times, dtype=torch.float32)[:, None] / 19
    with torch.no_grad():
        keys = (G(a + u * b + u**2 * c) + noise * torch.randn(len(times), 1, 32, 32, generator=g)).clamp(0, 1)
    return keys, invert(G, keys, "lbfgs", steps=30).latents


# ---------------------------------------------------------------- the joint fit


@pytest.mark.parametrize("basis", [None, 0.99, "explicit"])
def test_joint_fit_beats_the_least_squares_line_on_the_keyframes(G, basis):
    keys, z = _clip(G, 2)  # measured after / before: 0.56 (full space), 0.84 (PCA 0.99), 0.42 (explicit)
    if basis == "explicit":
        basis = np.linalg.qr(np.random.default_rng(0).normal(size=(Z, 4)))[0].T  # 4 orthonormal rows
        start = fit_curve_through_generator(G, keys, TIMES, z, steps=0, pca_basis=basis)
    else:
        start = fit_trajectory(z, TIMES, 1, pca=basis)
    fit = fit_curve_through_generator(G, keys, TIMES, z, degree=1, steps=40, pca_basis=basis)
    before, after = curve_keyframe_errors(G, keys, start).mean(), curve_keyframe_errors(G, keys, fit).mean()
    assert after < 0.9 * before
    assert fit.coeffs.shape == start.coeffs.shape and fit.degree == 1
    np.testing.assert_allclose(fit.residuals, np.linalg.norm(fit.evaluate(TIMES) - z.double().numpy(), axis=1))


def test_batched_fit_is_the_fit_of_each_clip_alone(G):
    """Clips of different sizes (3 and 4 keyframes, degrees 1 and 2) are padded into one L-BFGS batch."""
    t4 = np.array([0.0, 6.0, 12.0, 19.0])
    (k1, z1), (k2, z2) = _clip(G, 2), _clip(G, 3, times=t4)
    trajs = [fit_trajectory(z1, TIMES, 1, pca=0.99), fit_trajectory(z2, t4, 2)]
    both = fit_curves_through_generator(G, [k1, k2], [z1, z2], trajs, steps=15)
    for i, (k, z) in enumerate(((k1, z1), (k2, z2))):
        alone = fit_curves_through_generator(G, [k], [z], [trajs[i]], steps=15)[0]
        # the same problem; only float32 noise of G on other batch sizes tells them apart
        np.testing.assert_allclose(both[i].coeffs, alone.coeffs, atol=2e-3)
        e_both, e_alone = curve_keyframe_errors(G, k, both[i]), curve_keyframe_errors(G, k, alone)
        torch.testing.assert_close(e_both, e_alone, rtol=1e-2, atol=1e-7)
    assert fit_curves_through_generator(G, [k1], [z1], trajs[:1], steps=0)[0] is trajs[0]


def test_critic_and_prior_terms_act_on_the_in_between_frames(G):
    keys, z = _clip(G, 4)
    torch.manual_seed(1)
    C = nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 1), nn.Flatten(0))  # a linear "critic": score [N]
    C.requires_grad_(False)
    between = np.setdiff1d(np.arange(20.0), TIMES)
    plain = fit_curve_through_generator(G, keys, TIMES, z, steps=20, num_frames=20)
    critic = fit_curve_through_generator(G, keys, TIMES, z, steps=20, critic=C, critic_weight=1.0, num_frames=20)
    with torch.no_grad():
        assert C(G(critic(between))).mean() > C(G(plain(between))).mean() + 0.1
    shell = lambda tr: ((tr(between).pow(2).mean(1) - 1) ** 2).mean()  # noqa: E731
    prior = fit_curve_through_generator(G, keys, TIMES, z, steps=20, prior_weight=10.0, samples=6)
    assert shell(prior) < 0.5 * shell(plain)
    with pytest.raises(LatentVideoError, match="needs a critic"):
        fit_curve_through_generator(G, keys, TIMES, z, critic_weight=1.0)
    with pytest.raises(LatentVideoError, match="weight"):
        fit_curve_through_generator(G, keys, TIMES, z, prior_weight=float("nan"))
    with pytest.raises(LatentVideoError, match="orthonormal"):
        fit_curve_through_generator(G, keys, TIMES, z, pca_basis=np.ones((2, Z)))


# ---------------------------------------------------------------- pipeline options


@pytest.fixture(scope="module")
def pipe(G):
    torch.manual_seed(1)
    return Pipeline.from_modules(G, Critic(32, 1, 4))


def _snap_critic(templates: torch.Tensor) -> nn.Module:
    """C(x) = max_j -sum((x - T_j)^2): correction snaps every frame to its nearest template,
    so a plain correction turns a gradual change into a jump."""

    class Snap(nn.Module):
        def forward(self, x):
            d = (x[:, None] - templates[None]).pow(2).flatten(2).sum(2)  # [N, J]
            return -d.min(1).values

    return Snap()


def test_temporal_critic_limits_frame_change(G):
    """correct_clip's temporal term: the plain correction makes a jump between frames, the temporal one much less;
    and it acts per clip."""
    with torch.no_grad():
        ends = G(torch.randn(2, Z, generator=torch.Generator().manual_seed(7)))
    pipe = Pipeline.from_modules(G)
    off = pipe(ends, [0, 19], 20, method="lbfgs", lbfgs_steps=30, pca=None, critic="off").frames
    C = _snap_critic(ends)
    change = lambda x: (x[1:] - x[:-1]).pow(2).flatten(1).mean(1)  # noqa: E731
    plain = correct_clip(None, C, None, off, 30, 0.05, space="pixel")[1]
    temporal = correct_clip(None, C, None, off, 30, 0.05, temporal=300.0, space="pixel")[1]
    excess_plain = (change(plain) - change(off)).clamp_min(0).max()
    excess_temporal = (change(temporal) - change(off)).clamp_min(0).max()
    assert excess_plain > 2 * change(off).max()  # the plain correction makes a jump
    assert excess_temporal < 0.5 * excess_plain


# ---------------------------------------------------------------- benchmark


def test_benchmark_rows_validate_and_smoothness_in_w():
    for _, _, over in bench.pipeline_variants(False, 3, speed=3.6, objects=True):
        Options(**{k: v for k, v in over.items() if not k.startswith("_")}).validated()
    assert len(bench.pipeline_variants(True, 3)) < len(bench.pipeline_variants(False, 3))  # --quick stays quick
    torch.manual_seed(0)
    pipe = Pipeline.from_modules(Generator(z_dim=Z, resolution=32, width=4, mapping_layers=1))
    clf = DigitClassifier(32, 1, 4, 8).eval()
    sm = bench.measure_smoothness(pipe, clf, bench.PPL_SAMPLES_QUICK)
    assert sm["samples"] == bench.PPL_SAMPLES_QUICK and sm["ppl_z"] > 0 and sm["ppl_w"] > 0
