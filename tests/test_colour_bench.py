"""The colour benchmark (`bench --data moving-shapes`): its metrics on known clips, the shape classifier,
the oracle, and a run end to end on a tiny untrained colour objects model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import tiny_model_dir
from latentvideo.cli import main
from latentvideo.evaluation import baselines, colour
from latentvideo.evaluation.bench import BenchConfig, load_benchmark_data, run_benchmark
from latentvideo.models import ShapeClassifier
from latentvideo.pipeline import Pipeline
from latentvideo.shapes import SHAPES, moving_shapes


@pytest.fixture(scope="module")
def clips():
    return moving_shapes(6, 20, 64, "test", seed=3)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """Trained briefly (250 steps): enough to tell shapes from "no object of this colour" on clean masks."""
    out = colour.train_shape_classifier(
        tmp_path_factory.mktemp("clf") / "c", steps=250, batch_size=64, sequences=40, progress=False
    )
    from latentvideo.models import load_model

    return load_model(out, expect="shape-classifier")


def test_colour_masks_find_each_object_where_it_is(clips):
    masks = colour.colour_masks(clips.video, clips.colours, clips.mask)  # [T, N, K, H, W]
    assert masks.shape == (20, 6, 3, 64, 64) and masks.min() >= 0 and masks.max() <= 1
    t, n = 5, int(np.flatnonzero(clips.mask[:, 0])[0])
    r, c = clips.positions[t, n, 0]
    s = clips.sizes[n, 0]
    inside = masks[t, n, 0, r : r + s, c : c + s].sum()
    assert inside > 0.8 * masks[t, n, 0].sum() > 0  # the mask's mass lies in the object's box


def test_object_motion_is_zero_on_truth_and_grows_with_a_shift(clips):
    assert colour.object_motion(clips.video, clips.video, clips.colours, clips.mask) == pytest.approx(0, abs=1e-9)
    room = 64 - clips.sizes[None, :, :, None]  # [1, N, K, 1]
    shifted = np.clip(clips.positions + 6, 0, room)
    moved = colour.compose_shapes(clips.background, clips.alpha, clips.colours, clips.sizes, shifted)
    err = colour.object_motion(moved, clips.video, clips.colours, clips.mask)  # [T, N]
    step = np.linalg.norm(shifted - clips.positions, axis=-1)  # [T, N, K] px each object moved
    expected = (step * clips.mask).sum(-1) / clips.mask.sum(-1)
    assert np.median(err) == pytest.approx(np.median(expected), rel=0.3) and np.median(expected) > 5


def test_oracle_is_truth_at_keyframes_and_close_between(clips):
    o = colour.shapes_oracle(clips, (0, 9, 19))
    assert (o[[0, 9, 19]] == clips.video[[0, 9, 19]]).all()
    fade = baselines.crossfade(clips.video, (0, 9, 19))
    err_o = colour.object_motion(o, clips.video, clips.colours, clips.mask).mean()
    err_f = colour.object_motion(fade, clips.video, clips.colours, clips.mask).mean()
    assert err_o < err_f


def test_shape_classifier_names_true_objects_and_refuses_absent_colours(clips, classifier):
    ok = colour.object_identity(classifier, clips.video, clips.colours, clips.shapes, clips.mask, per_object=True)
    assert ok[:, clips.mask].mean() > 0.4  # twice chance after 250 steps; the shipped one: BENCHMARK.md
    black = np.zeros_like(clips.video)
    none = colour.predict_shapes(
        classifier, colour.colour_masks(black, clips.colours, clips.mask).reshape(-1, 1, 64, 64)
    )
    assert (none == colour.NONE).mean() > 0.9  # an empty mask is no shape
    assert colour.object_identity(classifier, black, clips.colours, clips.shapes, clips.mask).max() == 0


def test_sample_masks_labels(clips):
    x, y = colour.sample_masks(np.random.default_rng(0), clips, 64)
    assert x.shape == (64, 1, 64, 64) and x.dtype == np.float32
    assert set(y.tolist()) <= set(range(len(SHAPES) + 1)) and (y == colour.NONE).any() and (y < colour.NONE).any()
    assert x[y < colour.NONE].sum((1, 2, 3)).min() > 5  # a present object's colour finds its object


def test_scorer_on_truth_and_black(clips, classifier):
    scorer = colour.ShapesScorer(clips, classifier, (0, 9, 19))
    truth, _, _ = scorer(clips.video)
    half = clips.video.copy()
    half[:, 1:] = 0  # the first sequence true, the others black
    black, curves, clipwise = scorer(half)
    assert truth["mse_pixel"][0] == 0 and truth["motion"][0] == pytest.approx(0, abs=1e-9)
    assert truth["ssim"][0] == pytest.approx(1) and black["mse_pixel"][0] > 0.05
    assert clipwise["motion"][0] == pytest.approx(0, abs=1e-9) and min(clipwise["motion"][1:]) == pytest.approx(
        64 * np.sqrt(2), rel=1e-4
    )
    assert clipwise["identity"][0] > 0 and max(clipwise["identity"][1:]) == 0
    assert np.isnan(curves["motion"][0]) and not np.isnan(curves["motion"][1])


def test_bench_runs_on_moving_shapes(tmp_path, classifier):
    model = tiny_model_dir(tmp_path / "model", resolution=64, projector=True, objects=3, channels=3)
    pipe = Pipeline.from_dir(model, "cpu")
    assert pipe.channels == 3
    cfg = BenchConfig(sequences=3, groups=(), extra_keyframes=(), data="moving-shapes", quick=True)
    opts = pipe.options(lbfgs_steps=2, clip_steps=2, pivot_steps=0)
    res = run_benchmark(cfg, pipe, classifier, tmp_path / "out", progress=False, options=opts)
    rows = {r["name"]: r for r in res["keyframe_sets"]["0,9,19"]}
    assert {"pixel crossfade", "piecewise-linear oracle", "ground truth", "pipeline (default)"} <= set(rows)
    assert "bounce sprites (image space)" not in rows  # gray sprites on black only
    assert rows["ground truth"]["values"]["motion"][0] == pytest.approx(0, abs=1e-9)
    assert rows["pipeline (default)"]["values"]["mse_pixel"][0] > 0
    assert res["data"]["channels"] == 3 and "smoothness" not in res
    report = (tmp_path / "out" / "report.md").read_text()
    assert (
        "Moving Shapes" in report
        and "colour masks" in report
        and "--data moving-shapes" in rows["pipeline (default)"]["command"]
    )
    assert (tmp_path / "out" / "examples.png").stat().st_size > 0
    data = load_benchmark_data(cfg)
    assert data.frames.shape == (20, 3, 3, 64, 64) and data.speed is None


def test_bench_cli_refuses_gray_model_and_unknown_data(tmp_path, capsys):
    model = tiny_model_dir(tmp_path / "model", resolution=64)
    for extra in (["--data", "moving-shapes", "--model", str(model)], ["--data", "no-such-set"]):
        assert main(["bench", "--out", str(tmp_path / "o"), "--sequences", "2", *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and "\n" not in err
    assert not (tmp_path / "o" / "results.json").exists()


def test_shape_classifier_config_round_trip(tmp_path):
    from latentvideo.models import load_model, model_config, save_model

    torch.manual_seed(0)
    m = ShapeClassifier(64, 4, 8)
    save_model(m, tmp_path / "c", model_config(m, resolution=64, width=4, hidden=8))
    x = torch.rand(2, 1, 64, 64)
    assert torch.equal(load_model(tmp_path / "c")(x), m.eval()(x))
