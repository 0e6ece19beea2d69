import numpy as np
import pytest

from latentvideo.data import compose, moving_mnist
from latentvideo.errors import LatentVideoError
from latentvideo.evaluation import baselines

KEYS = [0, 9, 19]


@pytest.fixture(scope="module")
def mm():
    return moving_mnist(2, 20, 2, split="test", seed=0)


def test_neighbours_hold_outside_and_blend_inside():
    left, right, w = baselines.neighbours([2, 6], 8)
    assert left.tolist() == [2, 2, 2, 2, 2, 2, 6, 6] and right.tolist()[2:] == [6, 6, 6, 6, 6, 6]
    assert w.tolist() == [0, 0, 0, 0.25, 0.5, 0.75, 0, 0]


def test_bad_keyframes_raise(mm):
    for bad in ([], [-1, 3], [0, 20]):
        with pytest.raises(LatentVideoError):
            baselines.crossfade(mm.video, bad)
    with pytest.raises(LatentVideoError):
        baselines.hold_nearest(mm.video.astype(np.float32), KEYS)


def test_all_black_keeps_only_keyframes(mm):
    out = baselines.all_black(mm.video, KEYS)
    assert np.array_equal(out[KEYS], mm.video[KEYS])
    assert out[[t for t in range(20) if t not in KEYS]].max() == 0


def test_hold_nearest_ties_go_earlier(mm):
    v = mm.video
    out = baselines.hold_nearest(v, KEYS)
    for t, src in [(0, 0), (4, 0), (5, 9), (13, 9), (14, 9), (15, 19), (19, 19)]:  # 14 is 5 from 9 and 19
        assert np.array_equal(out[t], v[src]), t
    out = baselines.hold_nearest(v, [3, 13])
    assert np.array_equal(out[0], v[3]) and np.array_equal(out[8], v[3]) and np.array_equal(out[19], v[13])


def test_crossfade_keyframes_and_midpoint(mm):
    v = mm.video
    out = baselines.crossfade(v, [2, 10, 19])
    assert out.dtype == np.uint8 and out.shape == v.shape
    assert np.array_equal(out[[2, 10, 19]], v[[2, 10, 19]])
    mid = np.rint((v[2].astype(float) + v[10]) / 2)
    assert np.array_equal(out[6], mid)  # halfway between 2 and 10
    assert np.array_equal(out[0], v[2]) and np.array_equal(out[1], v[2])  # hold before the first keyframe
    quarter = np.rint(0.75 * v[2].astype(float) + 0.25 * v[10])
    assert np.array_equal(out[4], quarter)


def test_oracle_matches_truth_at_keyframes(mm):
    out = baselines.piecewise_linear_oracle(mm.digits, mm.positions, KEYS)
    assert out.shape == mm.video.shape and out.dtype == np.uint8
    assert np.array_equal(out[KEYS], mm.video[KEYS])
    every = baselines.piecewise_linear_oracle(mm.digits, mm.positions, range(20))
    assert np.array_equal(every, mm.video)


def test_oracle_is_exact_for_straight_motion(mm):
    t = np.arange(20)[:, None, None, None]  # [T, 1, 1, 1]
    start = np.array([[[2, 30], [30, 1]]])  # [N=1, D=2, 2]
    vel = np.array([[[1, -1], [0, 1]]])
    pos = start[None] + vel[None] * t  # [T, 1, 2, 2], stays on the 64x64 canvas
    truth = compose(mm.digits[:1], pos, 64)
    assert np.array_equal(baselines.piecewise_linear_oracle(mm.digits[:1], pos, KEYS), truth)
    held = baselines.piecewise_linear_oracle(mm.digits[:1], pos, [5, 9])
    assert np.array_equal(held[:5], np.repeat(truth[5:6], 5, 0)) and np.array_equal(held[12], truth[9])


def test_minterpolate_aligns_frames(mm):
    v = mm.video
    out = baselines.ffmpeg_minterpolate(v, KEYS, mb_size=8)
    assert out.shape == v.shape and out.dtype == np.uint8
    diff = np.abs(out[KEYS].astype(int) - v[KEYS]).max()
    assert diff <= 2  # keyframes come back (gray passes through unchanged in practice)
    assert not np.array_equal(out[4], v[0]) and not np.array_equal(out[4], v[9])  # something in between
    uneven = baselines.ffmpeg_minterpolate(v[:, :1], [3, 7, 15], mb_size=4)
    assert np.abs(uneven[[3, 7, 15]].astype(int) - v[[3, 7, 15], :1]).max() <= 2
    assert np.array_equal(uneven[:3], np.repeat(uneven[3:4], 3, 0)) and np.array_equal(uneven[19], uneven[15])


def test_minterpolate_refuses_bad_sizes(mm):
    with pytest.raises(LatentVideoError):
        baselines.ffmpeg_minterpolate(mm.video[:, :, :60, :60], KEYS, mb_size=8)
