"""A guard on the shipped models: three seeded held-out clips through each one's default pipeline.

If a change moves these numbers, it changed what users get: re-measure with `latentvideo bench` and update
both the pins here and BENCHMARK.md. The pins were measured when the shipped model last changed
(`python tests/test_shipped.py` prints the current values; the dcgan pins are of 2026-11-30, the others of 2026-12-02).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentvideo.data import moving_mnist
from latentvideo.evaluation import colour, metrics
from latentvideo.evaluation.bench import load_classifier
from latentvideo.evaluation.classifier import predict_digits
from latentvideo.pipeline import load_pipeline
from latentvideo.render import to_uint8
from latentvideo.shapes import moving_shapes

KEYS, SEED, CLIPS = (0, 9, 19), 7, 3
# measured on the shipped model (see the module docstring); tolerances absorb float rounding across machines
PIN = {
    "keyframe_mse": 0.00172,  # mean reconstruction MSE/px of the 9 keyframes
    "motion_px": 3.005,  # mean EMD of the in-between frames, px
    "identity": 0.216,  # share of in-between frames whose digit set the classifier reads right
    # clip 0, frame 5, row 22, columns 10..29 (uint8), across a digit
    "pixels": [0, 0, 2, 161, 254, 249, 246, 251, 217, 220, 237, 255, 255, 254, 255, 252, 254, 254, 207, 13],
}


def measure(model: str | None = None) -> dict:
    torch.manual_seed(0)
    pipe = load_pipeline(model, device="cpu")
    mm = moving_mnist(CLIPS, 20, 2, 64, split="test", seed=SEED)
    keys = [torch.from_numpy(mm.video[list(KEYS), i][:, None]).float() / 255 for i in range(CLIPS)]
    clips = pipe.generate_many(keys, [list(map(float, KEYS))] * CLIPS, 20)
    frames = np.stack([(c.frames[:, 0].clamp(0, 1) * 255).round().byte().numpy() for c in clips], 1)  # [T, N, H, W]
    others = [t for t in range(20) if t not in KEYS]
    gen, true = frames[others], mm.video[others]
    clf = load_classifier(None, None)
    pred = predict_digits(clf, gen.reshape(-1, 1, 64, 64)).reshape(*gen.shape[:2], 10)
    return {
        "keyframe_mse": float(torch.cat([c.keyframe_errors for c in clips]).mean()),
        "motion_px": float(np.nanmean(metrics.motion_error(gen, true))),
        "identity": float((pred == metrics.label_sets(mm.labels)[None]).all(-1).mean()),
        "pixels": frames[5, 0, 22, 10:30].tolist(),
    }


@pytest.fixture(scope="module")
def shipped():
    return measure()


def test_keyframes_reconstruct_as_measured(shipped):
    assert shipped["keyframe_mse"] == pytest.approx(PIN["keyframe_mse"], rel=0.1, abs=2e-4)


def test_a_pixel_slice_is_as_measured(shipped):
    assert np.abs(np.array(shipped["pixels"], float) - PIN["pixels"]).max() <= 8


def test_motion_and_identity_are_as_measured(shipped):
    assert shipped["motion_px"] == pytest.approx(PIN["motion_px"], abs=0.5)
    assert shipped["identity"] == pytest.approx(PIN["identity"], abs=0.1)


# the object-structured digits model (moving-mnist-objects), its defaults (clip fit, pivotal tuning, one refit pass)
OBJECTS_PIN = {  # measured with 2 threads, as the colour model's
    "keyframe_mse": 0.03169,  # the clip inversion's, before pivotal tuning
    "motion_px": 3.102,
    "pixels": [0, 0, 122, 234, 255, 255, 255, 255, 255, 254, 232, 191, 164, 127, 42, 246, 255, 212, 0, 0],
}


def test_objects_digits_model_is_as_measured():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = measure("moving-mnist-objects")
    finally:
        torch.set_num_threads(threads)
    assert got["keyframe_mse"] == pytest.approx(OBJECTS_PIN["keyframe_mse"], rel=0.1, abs=2e-4)
    assert got["motion_px"] == pytest.approx(OBJECTS_PIN["motion_px"], abs=0.5)
    assert np.abs(np.array(got["pixels"], float) - OBJECTS_PIN["pixels"]).max() <= 8


# the colour model (moving-shapes) on three Moving Shapes test clips (unseen backgrounds and hues), its defaults
COLOUR_PIN = {  # measured with 2 threads (measure_colour sets them: the colour path's float sums depend on it)
    "keyframe_mse": 0.01393,  # mean reconstruction MSE/px of the 9 keyframes (RGB)
    "motion_px": 35.62,  # mean colour-mask EMD of the in-between frames' objects, px (objects often vanish: 90.5)
    # clip 0, frame 5, row 32, columns 10..29, red channel (uint8): the photograph's texture (background plate)
    "pixels": [142, 145, 141, 139, 144, 157, 167, 162, 125, 168, 171, 144, 174, 176, 173, 173, 166, 170, 172, 167],
}


def measure_colour() -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        return _measure_colour()
    finally:
        torch.set_num_threads(threads)


def _measure_colour() -> dict:
    torch.manual_seed(0)
    pipe = load_pipeline("moving-shapes", device="cpu")
    ms = moving_shapes(CLIPS, 20, 64, "test", seed=SEED)
    x = torch.from_numpy(ms.video).float().movedim(-1, 2) / 255  # [T, N, 3, H, W]
    clips = pipe.generate_many([x[list(KEYS), i] for i in range(CLIPS)], [list(map(float, KEYS))] * CLIPS, 20)
    frames = np.stack([to_uint8(c.frames) for c in clips], 1)  # [T, N, H, W, 3]
    others = [t for t in range(20) if t not in KEYS]
    motion = colour.object_motion(frames[others], ms.video[others], ms.colours, ms.mask)
    return {
        "keyframe_mse": float(torch.cat([c.keyframe_errors for c in clips]).mean()),
        "motion_px": float(motion.mean()),
        "pixels": frames[5, 0, 32, 10:30, 0].tolist(),
    }


@pytest.fixture(scope="module")
def shipped_colour():
    return measure_colour()


def test_colour_model_is_as_measured(shipped_colour):
    assert shipped_colour["keyframe_mse"] == pytest.approx(COLOUR_PIN["keyframe_mse"], rel=0.1, abs=2e-4)
    # an object whose colour mask empties scores the canvas diagonal, so allow one such flip among the 51 frames
    assert shipped_colour["motion_px"] == pytest.approx(COLOUR_PIN["motion_px"], abs=3.0)
    assert np.abs(np.array(shipped_colour["pixels"], float) - COLOUR_PIN["pixels"]).max() <= 8


if __name__ == "__main__":
    print(measure())
    print(measure("moving-mnist-objects"))
    print(measure_colour())
