"""Property tests (hypothesis): trajectory math on any valid input, and image loading on hostile bytes."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from latentvideo.data import load_image
from latentvideo.errors import LatentVideoError
from latentvideo.pipeline import MAX_FRAMES
from latentvideo.trajectory import check_times, fit_trajectory, lerp_path, slerp_path

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- strategies


@st.composite
def keyframes(draw, max_k: int = 6, max_dim: int = 12):
    """(latents float64 [K, D] of moderate size, sorted distinct times [K], K)."""
    k = draw(st.integers(2, max_k))
    dim = draw(st.integers(1, max_dim))
    values = st.floats(-50, 50, allow_nan=False, allow_infinity=False)
    latents = np.array(draw(st.lists(values, min_size=k * dim, max_size=k * dim))).reshape(k, dim)
    times = draw(st.lists(st.floats(0, MAX_FRAMES - 1, allow_nan=False), min_size=k, max_size=k, unique=True))
    return latents, np.sort(np.array(times)), k


pcas = st.one_of(st.none(), st.floats(1e-6, 1.0, exclude_min=False))


# ---------------------------------------------------------------- trajectory


@SETTINGS
@given(data=keyframes(), pca=pcas, degree=st.integers(1, 5), frames=st.integers(2, 400))
def test_trajectory_is_finite_with_the_right_shape(data, pca, degree, frames):
    latents, times, k = data
    assume(degree < k)
    traj = fit_trajectory(torch.from_numpy(latents), times, degree=degree, pca=pca)
    query = np.linspace(times[0], times[-1], frames)  # every output frame between the first and last keyframe
    z = traj(query)
    assert z.shape == (frames, latents.shape[1]) and z.dtype == torch.float32
    assert torch.isfinite(z).all()
    assert traj.residuals.shape == (k,) and np.isfinite(traj.residuals).all()
    assert 0 < traj.explained <= 1 + 1e-12


@SETTINGS
@given(
    k=st.integers(2, 6),
    dim=st.integers(1, 16),
    frames=st.integers(20, MAX_FRAMES),
    pca=pcas,
    degree=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_trajectory_over_a_whole_clip_is_finite(k, dim, frames, pca, degree, seed):
    """Integer keyframe times anywhere in the clip (as the CLI gives them), extrapolated to every frame."""
    assume(degree < k)
    rng = np.random.default_rng(seed)
    times = np.sort(rng.choice(frames, k, replace=False)).astype(np.float64)
    latents = torch.from_numpy(rng.standard_normal((k, dim)) * 3)
    z = fit_trajectory(latents, times, degree=degree, pca=pca)(np.arange(frames))
    assert z.shape == (frames, dim) and torch.isfinite(z).all()


@SETTINGS
@given(
    k=st.integers(2, 6),
    dim=st.integers(1, 12),
    pca=pcas,
    seed=st.integers(0, 2**32 - 1),
    times=st.lists(st.integers(0, 100_000), min_size=6, max_size=6, unique=True),
    scale=st.sampled_from([1.0, 1e-2, 0.37]),
)
def test_collinear_latents_are_interpolated_exactly(k, dim, pca, seed, times, scale):
    """Keyframes on a line z(t) = a + t b: a degree-1 fit, with or without PCA, is that line."""
    t = np.sort(np.array(times[:k], np.float64)) * scale
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(dim) * 5, rng.standard_normal(dim) * rng.choice([0.0, 1e-3, 1.0])
    latents = a + t[:, None] * b
    traj = fit_trajectory(torch.from_numpy(latents), t, degree=1, pca=pca)
    span = t[-1] - t[0]
    query = np.linspace(t[0] - span / 2, t[-1] + span / 2, 33)  # inside and outside the keyframes
    expected = a + query[:, None] * b
    tol = 1e-9 * (1 + np.abs(a).max() + np.abs(b).max() * np.abs(query).max())
    np.testing.assert_allclose(traj.evaluate(query), expected, rtol=0, atol=tol)
    np.testing.assert_allclose(traj.evaluate(t), latents, rtol=0, atol=tol)
    assert traj.residuals.max() <= tol * np.sqrt(dim)


@SETTINGS
@given(data=keyframes(), frames=st.integers(2, 200))
def test_lerp_and_slerp_pass_through_every_keyframe(data, frames):
    latents, times, _ = data
    query = np.concatenate([times, np.linspace(times[0], times[-1], frames)])
    for path in (lerp_path, slerp_path):
        z = path(torch.from_numpy(latents), times, query)
        assert z.shape == (len(query), latents.shape[1]) and torch.isfinite(z).all()
        np.testing.assert_allclose(z[: len(times)].double().numpy(), latents, rtol=1e-5, atol=1e-4)


@SETTINGS
@given(st.lists(st.one_of(st.floats(), st.integers(-(10**6), 10**6), st.text(max_size=3)), max_size=7))
def test_check_times_accepts_only_valid_times(times):
    """Any list: either sorted, distinct, finite float64 times come back, or a LatentVideoError."""
    try:
        t = check_times(times, len(times))
    except LatentVideoError:
        return
    assert t.dtype == np.float64 and len(t) == len(times) >= 2
    assert np.isfinite(t).all() and (np.diff(t) > 0).all()


# ---------------------------------------------------------------- image loading


def _image_bytes(fmt: str, mode: str) -> bytes:
    rng = np.random.default_rng(0)
    size = (12, 10)
    if mode == "P":
        im = Image.fromarray(rng.integers(0, 256, size[::-1], dtype=np.uint8)).convert("P")
    else:
        bands = len(mode)
        a = rng.integers(0, 256, (*size[::-1], bands), dtype=np.uint8)
        im = Image.fromarray(a[..., 0] if bands == 1 else a, mode)
    buf = io.BytesIO()
    im.save(buf, format=fmt)
    return buf.getvalue()


# small valid files of each format Pillow may meet, as seeds for mutation
SEEDS = [
    _image_bytes(fmt, mode)
    for fmt, mode in itertools.chain(
        itertools.product(["PNG"], ["L", "RGB", "RGBA", "LA", "P"]),
        [("GIF", "P"), ("JPEG", "L"), ("JPEG", "RGB"), ("BMP", "RGB"), ("TIFF", "RGB"), ("WEBP", "RGB")],
    )
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def _check_load(path) -> None:
    try:
        a = load_image(path)
    except LatentVideoError as e:
        assert str(e).strip() and "\n" not in str(e)  # one line for the CLI
        return
    assert a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3))
    assert min(a.shape[:2]) >= 2


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns on some truncated files
@SETTINGS
@given(
    data=st.binary(max_size=2048), signature=st.sampled_from([b"", PNG_SIGNATURE, b"GIF89a", b"\xff\xd8\xff", b"BM"])
)
def test_random_bytes_never_crash_load_image(scratch, data, signature):
    path = scratch / "random.png"
    path.write_bytes(signature + data)
    _check_load(path)


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns on some truncated files
@SETTINGS
@given(
    seed=st.sampled_from(range(len(SEEDS))),
    edits=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 10_000)),
)
def test_corrupted_images_never_crash_load_image(scratch, seed, edits, cut):
    """Valid small files with a few bytes changed (headers included) and maybe cut short."""
    data = bytearray(SEEDS[seed])
    for pos, value in edits:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = scratch / "mutated.img"
    path.write_bytes(bytes(data))
    _check_load(path)
