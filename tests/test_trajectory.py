import numpy as np
import pytest
import torch

from latentvideo.errors import LatentVideoError
from latentvideo.trajectory import (
    Trajectory,
    check_times,
    evenly_spaced_times,
    fit_trajectory,
    lerp_path,
    slerp_path,
)

torch.set_num_threads(1)
D = 16


def line(times, a, b):  # latents on the line a + b t -> [T, D] float64
    return a[None] + np.asarray(times, np.float64)[:, None] * b[None]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_evenly_spaced_times():
    assert evenly_spaced_times(3, 20).tolist() == [0, 10, 19]
    assert evenly_spaced_times(2, 5).tolist() == [0, 4]
    assert evenly_spaced_times(4, 20).tolist() == [0, 6, 13, 19]
    assert evenly_spaced_times(5, 5).tolist() == [0, 1, 2, 3, 4]
    for k, n in ((1, 20), (21, 20)):
        with pytest.raises(LatentVideoError):
            evenly_spaced_times(k, n)


def test_check_times_accepts_and_converts():
    t = check_times([0, 4, 9], 3, num_frames=10)
    assert t.dtype == np.float64 and t.tolist() == [0.0, 4.0, 9.0]
    assert check_times(np.array([0.5, 1.5]), 2).tolist() == [0.5, 1.5]


@pytest.mark.parametrize(
    "times, k, num_frames, match",
    [
        ([0, 5], 3, None, "2 keyframe times for 3"),
        ([0, 5, 5], 3, None, "distinct"),
        ([0, 9, 5], 3, None, "increasing"),
        ([0, float("nan"), 5], 3, None, "finite"),
        ([0, float("inf")], 2, None, "finite"),
        ([3], 1, None, "at least 2"),
        ([0, 20], 2, 20, r"\[0, 19\]"),
        ([-1, 5], 2, 20, r"\[0, 19\]"),
        ([[0, 1]], 2, None, "flat"),
        (["a", "b"], 2, None, "numbers"),
    ],
)
def test_check_times_errors(times, k, num_frames, match):
    with pytest.raises(LatentVideoError, match=match):
        check_times(times, k, num_frames)


def test_noisy_line_is_recovered(rng):
    a, b = rng.normal(size=D), rng.normal(size=D) / 10
    t = np.arange(40.0)
    sigma = 0.2
    noisy = line(t, a, b) + sigma * rng.normal(size=(40, D))
    traj = fit_trajectory(torch.tensor(noisy, dtype=torch.float32), t)
    assert isinstance(traj, Trajectory) and traj.degree == 1 and traj.components == D
    q = np.linspace(-5, 45, 101)  # interpolation and a little extrapolation
    err = traj(q).double().numpy() - line(q, a, b)
    assert np.sqrt((err**2).mean()) < 0.25 * sigma
    assert traj.residuals.shape == (40,)
    assert np.sqrt((traj.residuals**2).mean() / D) == pytest.approx(sigma, rel=0.2)


def test_output_type_and_device(rng):
    z = torch.tensor(rng.normal(size=(3, D)), dtype=torch.float64)
    for out in (
        fit_trajectory(z, [0, 5, 9])([0, 1, 2.5]),
        lerp_path(z, [0, 5, 9], [1, 2]),
        slerp_path(z, [0, 5, 9], [1]),
    ):
        assert out.dtype == torch.float32 and out.device == z.device and out.shape[1] == D
    assert fit_trajectory(z, [0, 5, 9])(torch.arange(7)).shape == (7, D)


def test_full_pca_equals_no_pca(rng):
    z = torch.tensor(rng.normal(size=(5, D)), dtype=torch.float32)
    t, q = [0, 3, 10, 12, 19], np.linspace(-3, 22, 30)
    for degree in (1, 2):
        plain = fit_trajectory(z, t, degree=degree)(q)
        torch.testing.assert_close(fit_trajectory(z, t, degree=degree, pca=1.0)(q), plain, atol=1e-5, rtol=1e-5)
        ref = torch.tensor(rng.normal(size=(100, D)), dtype=torch.float32)  # spans the whole space
        with_ref = fit_trajectory(z, t, degree=degree, pca=1.0, reference=ref)
        assert with_ref.components == D
        torch.testing.assert_close(with_ref(q), plain, atol=1e-5, rtol=1e-5)
    assert fit_trajectory(z, t, pca=1.0).components == 4  # K keyframes span K - 1 directions


def test_truncated_pca_on_reference_removes_off_plane_noise(rng):
    basis = np.linalg.qr(rng.normal(size=(D, 2)))[0].T  # [2, D] orthonormal: where the latents live
    centre = rng.normal(size=D)
    ref = centre + rng.normal(size=(500, 2)) * [3.0, 1.0] @ basis + 1e-3 * rng.normal(size=(500, D))
    a, b = centre + np.array([1.0, -0.5]) @ basis, np.array([0.1, 0.05]) @ basis  # a line in the plane
    t = np.array([0.0, 6, 13, 19])
    keys = line(t, a, b) + 0.3 * rng.normal(size=(4, D))  # noise mostly off the plane
    q = np.arange(20.0)
    ref_t = torch.tensor(ref, dtype=torch.float32)
    pca = fit_trajectory(torch.tensor(keys), t, pca=0.99, reference=ref_t)
    assert pca.components == 2 and 0.99 <= pca.explained <= 1
    err_pca = np.abs(pca(q).double().numpy() - line(q, a, b)).mean()
    err_plain = np.abs(fit_trajectory(torch.tensor(keys), t)(q).double().numpy() - line(q, a, b)).mean()
    assert err_pca < 0.5 * err_plain


def test_degree_checks(rng):
    z = torch.tensor(rng.normal(size=(3, D)))
    with pytest.raises(LatentVideoError, match="degree-3 fit needs more than 3 keyframes"):
        fit_trajectory(z, [0, 1, 2], degree=3)
    with pytest.raises(LatentVideoError, match="degree"):
        fit_trajectory(z, [0, 1, 2], degree=-1)
    exact = fit_trajectory(z, [0, 4, 9], degree=2)  # K = degree + 1: interpolates
    torch.testing.assert_close(exact([0, 4, 9]), z.float(), atol=1e-5, rtol=0)
    assert exact.residuals.max() < 1e-9


@pytest.mark.parametrize("pca", [0.0, 1.5, -0.1])
def test_bad_pca_fraction(rng, pca):
    with pytest.raises(LatentVideoError, match="pca"):
        fit_trajectory(torch.tensor(rng.normal(size=(3, D))), [0, 1, 2], pca=pca)


def test_bad_inputs(rng):
    z = torch.tensor(rng.normal(size=(3, D)))
    with pytest.raises(LatentVideoError, match="reference"):
        fit_trajectory(z, [0, 1, 2], pca=0.9, reference=torch.zeros(10, D + 1))
    with pytest.raises(LatentVideoError, match="shape"):
        fit_trajectory(z[0], [0])
    with pytest.raises(LatentVideoError, match="NaN"):
        fit_trajectory(torch.full((2, D), float("nan")), [0, 1])
    with pytest.raises(LatentVideoError, match="3 keyframes"):
        lerp_path(z, [0, 1], [0.5])
    with pytest.raises(LatentVideoError, match="query"):
        fit_trajectory(z, [0, 1, 2])([float("nan")])


def test_collinear_latents_are_interpolated_exactly(rng):
    a, b = rng.normal(size=D), rng.normal(size=D)
    t, q = [0, 7, 19], np.linspace(0, 19, 39)
    traj = fit_trajectory(torch.tensor(line(t, a, b)), t)
    np.testing.assert_allclose(traj(q).double().numpy(), line(q, a, b), atol=1e-5)
    assert traj.residuals.max() < 1e-9


def test_lerp_hits_keyframes_exactly(rng):
    z = torch.tensor(rng.normal(size=(4, D)), dtype=torch.float32)
    t = [0, 5, 6, 19]
    assert torch.equal(lerp_path(z, t, t), z)
    torch.testing.assert_close(lerp_path(z, t, [2.5])[0], (z[0] + z[1]) / 2)
    # the end segments extend outside the keyframe range
    torch.testing.assert_close(lerp_path(z, t, [-5])[0], z[0] - (z[1] - z[0]))


def test_slerp_keeps_norms(rng):
    z = rng.normal(size=(4, D))
    z = torch.tensor(5 * z / np.linalg.norm(z, axis=1, keepdims=True))  # equal norms
    t, q = [0, 5, 12, 19], np.linspace(0, 19, 77)
    norms = slerp_path(z, t, q).double().norm(dim=1)
    torch.testing.assert_close(norms, torch.full_like(norms, 5.0), atol=1e-4, rtol=0)
    torch.testing.assert_close(slerp_path(z, t, t), z.float(), atol=1e-5, rtol=0)
    # unequal norms: the path's norm stays between the keyframes'
    w = torch.tensor(rng.normal(size=(2, D)))
    n = slerp_path(w, [0, 1], np.linspace(0, 1, 21)).double().norm(dim=1)
    lo, hi = w.norm(dim=1).min(), w.norm(dim=1).max()
    assert (n >= lo - 1e-4).all() and (n <= hi + 1e-4).all()


def test_slerp_parallel_keyframes_fall_back_to_lerp():
    z = torch.stack([torch.ones(D), 3 * torch.ones(D)])
    torch.testing.assert_close(slerp_path(z, [0, 2], [1])[0], 2 * torch.ones(D))
