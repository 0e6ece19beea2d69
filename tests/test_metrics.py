import math

import numpy as np
import pytest

from latentvideo.errors import LatentVideoError
from latentvideo.evaluation import metrics


def dot(r, c, size=64):
    x = np.zeros((size, size))
    x[r, c] = 1.0
    return x


def test_identical_frames_are_perfect():
    rng = np.random.default_rng(0)
    x = rng.random((3, 2, 64, 64))  # [T, N, H, W]
    assert metrics.mse_per_pixel(x, x).shape == (3, 2)
    assert np.all(metrics.mse_per_pixel(x, x) == 0) and np.all(metrics.mse_per_frame(x, x) == 0)
    assert np.allclose(metrics.ssim(x, x), 1.0)
    assert np.all(metrics.psnr(x, x) == metrics.PSNR_MAX_DB)
    assert np.allclose(metrics.motion_error(x, x), 0.0, atol=1e-9)
    assert np.allclose(metrics.ink_ratio(x, x), 1.0)


def test_mse_psnr_by_hand_and_uint8_scaling():
    gen, true = np.full((2, 64, 64), 0.5), np.zeros((2, 64, 64))
    assert np.allclose(metrics.mse_per_pixel(gen, true), 0.25)
    assert np.allclose(metrics.mse_per_frame(gen, true), 0.25 * 4096)
    assert np.allclose(metrics.psnr(gen, true), -10 * np.log10(0.25))
    as_u8 = np.full((2, 64, 64), 255, np.uint8)
    assert np.allclose(metrics.mse_per_pixel(as_u8, true), 1.0)
    with pytest.raises(LatentVideoError):
        metrics.mse_per_pixel(gen, true[:1])


def test_ssim_drops_for_different_frames():
    rng = np.random.default_rng(1)
    a, b = rng.random((64, 64)), rng.random((64, 64))
    assert float(metrics.ssim(a, b)) < 0.2


@pytest.mark.parametrize("k", [4, 8, 20, 3, 13])
def test_emd_of_shifted_pixel_is_the_shift(k):
    true, gen = dot(30, 10), dot(30, 10 + k)
    err = float(metrics.motion_error(gen, true))
    assert abs(err - k) <= 4.0  # pooling cells are 4 px wide at 64/16
    if k % 4 == 0:
        assert err == pytest.approx(k)  # whole cells: exact


def test_emd_diagonal_shift_and_mass_split():
    assert float(metrics.motion_error(dot(8, 8), dot(40, 40))) == pytest.approx(32 * math.sqrt(2))
    half = (dot(8, 8) + dot(8, 40)) / 2  # half the mass stays, half moves 32 px
    assert float(metrics.motion_error(half, dot(8, 8))) == pytest.approx(16)


def test_emd_empty_or_faint_generated_frame_gets_the_diagonal():
    true = dot(20, 20)
    diag = 64 * math.sqrt(2)
    assert float(metrics.motion_error(np.zeros((64, 64)), true)) == pytest.approx(diag)
    assert float(metrics.motion_error(true * 0.005, true)) == pytest.approx(diag)  # < 1 % of the ink
    assert float(metrics.motion_error(true * 0.02, true)) == pytest.approx(0)  # enough ink: shape counts
    assert float(metrics.motion_error(np.zeros((64, 64)), np.zeros((64, 64)))) == 0


def test_emd_many_frames_keep_their_layout():
    rng = np.random.default_rng(2)
    true = (rng.random((5, 4, 64, 64)) > 0.97).astype(float)
    gen = np.roll(true, 8, axis=-1)
    err = metrics.motion_error(gen, true)
    assert err.shape == (5, 4) and np.all(err > 0) and np.all(err <= 8 + 1e-9)


def test_ink_and_flicker():
    x = np.zeros((4, 2, 8, 8))
    x[:, :, 2:4, 2:4] = 1.0
    assert np.allclose(metrics.ink_ratio(x * 0.5, x), 0.5)
    assert np.all(np.isnan(metrics.ink_ratio(x, np.zeros_like(x))))
    assert np.allclose(metrics.flicker(x), 0)  # a still clip
    blink = x.copy()
    blink[1::2] = 0
    assert np.allclose(metrics.flicker(blink), 4 / 64)  # 4 pixels change by 1 every frame
    assert metrics.flicker(blink).shape == (2,)


def test_identity_sets_with_repeated_digits():
    labels = np.array([[3, 3], [1, 7]])
    sets = metrics.label_sets(labels)
    assert sets.sum(1).tolist() == [1, 2] and sets[0, 3] and sets[1, 1] and sets[1, 7]
    pred = np.zeros((2, 2, 10), bool)  # [T, N, 10]
    pred[:, 0, 3] = True  # right at both frames
    pred[0, 1, [1, 7]] = True  # right at frame 0
    pred[1, 1, [1, 7, 2]] = True  # an extra digit: wrong
    assert metrics.identity_match(pred, labels).tolist() == [[True, True], [True, False]]
    assert metrics.identity(pred, labels) == 0.75
    with pytest.raises(LatentVideoError):
        metrics.label_sets(np.array([[10, 1]]))


def test_frechet_self_zero_and_grows_with_shift():
    rng = np.random.default_rng(3)
    a = rng.normal(size=(500, 8))
    assert metrics.frechet_distance(a, a) == pytest.approx(0, abs=1e-6)
    d1, d2 = metrics.frechet_distance(a, a + 0.5), metrics.frechet_distance(a, a + 1.0)
    assert d1 == pytest.approx(8 * 0.25, rel=1e-4) and d2 == pytest.approx(8 * 1.0, rel=1e-4)
    b = rng.normal(size=(500, 8))
    assert 0 < metrics.frechet_split_half(np.concatenate([a, b])) < 0.5 < metrics.frechet_distance(a, b * 2)


def test_frechet_with_fewer_samples_than_features_is_finite():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(10, 32)), rng.normal(size=(12, 32))
    assert np.isfinite(metrics.frechet_distance(a, b))


def test_bootstrap_interval_contains_the_mean():
    v = np.random.default_rng(5).normal(1.0, 1.0, 200)
    mean, low, high = metrics.bootstrap_ci(v, n_boot=500, seed=0)
    assert low < mean < high and mean == pytest.approx(v.mean())
    assert high - low < 0.5
    assert metrics.bootstrap_ci(v, n_boot=500, seed=0) == (mean, low, high)
    assert metrics.bootstrap_ci(np.full(5, 2.0)) == (2.0, 2.0, 2.0)
