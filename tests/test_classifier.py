import json

import numpy as np
import pytest
import torch

from latentvideo.data import load_digits
from latentvideo.evaluation import classifier
from latentvideo.models import DigitClassifier, load_model, model_config, save_model

torch.set_num_threads(1)


def test_sampler_targets_match_digits():
    images, labels = load_digits("train")
    rng = np.random.default_rng(0)
    frames, targets = classifier.sample_labelled(rng, images, labels, 16, 1, size=32)
    assert frames.shape == (16, 1, 32, 32) and frames.dtype == np.uint8
    assert targets.shape == (16, 10) and targets.sum(1).tolist() == [1] * 16
    frames, targets = classifier.train_batch(rng, images, labels, 32, size=64)
    assert frames.shape == (32, 1, 64, 64) and targets.shape == (32, 10)
    empty = frames.reshape(32, -1).max(1) == 0
    assert np.array_equal(empty, targets.sum(1) == 0) and empty.sum() == 2  # 1/16 of 32 are blank
    assert set(targets.sum(1).tolist()) <= {0, 1, 2}


def test_tiny_training_runs_and_saves(tmp_path):
    out = classifier.train_classifier(
        tmp_path / "clf", steps=3, batch_size=8, width=4, hidden=8, size=32, progress=False
    )
    rows = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 3 and np.isfinite(rows[-1]["loss"])
    model = load_model(out, expect="digit-classifier")
    frames = np.random.default_rng(0).random((5, 1, 32, 32), dtype=np.float32)
    pred = classifier.predict_digits(model, frames)
    assert pred.shape == (5, 10) and pred.dtype == bool
    assert classifier.features(model, frames).shape == (5, 8)
    res = classifier.evaluate_classifier(model, sequences=2)
    assert 0 <= res["accuracy_2digit"] <= 1 and res["frames_1digit"] == 40


def test_save_load_round_trip_and_inputs(tmp_path):
    torch.manual_seed(0)
    model = DigitClassifier(32, 1, 4, 8).eval()
    save_model(model, tmp_path / "m", model_config(model, resolution=32, channels=1, width=4, hidden=8))
    back = load_model(tmp_path / "m")
    u8 = np.random.default_rng(1).integers(0, 256, (7, 1, 32, 32), dtype=np.uint8)
    f = u8.astype(np.float32) / 255
    assert np.allclose(classifier.features(model, f), classifier.features(back, f))
    assert np.allclose(classifier.features(back, u8, batch_size=3), classifier.features(back, torch.from_numpy(f)))
    assert np.array_equal(classifier.predict_digits(back, f, threshold=0.0), np.ones((7, 10), bool))
    assert np.array_equal(classifier.predict_digits(back, f, threshold=1.0), np.zeros((7, 10), bool))
    with pytest.raises(Exception, match="frames must be"):
        classifier.features(back, f[:, 0, 0])
