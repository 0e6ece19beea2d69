"""`latentvideo bench` end to end on a tiny untrained 64x64 model and the shipped digit classifier."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from conftest import tiny_model_dir
from latentvideo.cli import main
from latentvideo.evaluation import bench
from latentvideo.evaluation.bench import BenchConfig, load_classifier, run_benchmark
from latentvideo.pipeline import Pipeline


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    model = tiny_model_dir(root / "model", resolution=64, projector=True)
    pipe = Pipeline.from_dir(model, "cpu")
    clf = load_classifier(None, model)  # falls back to the shipped classifier
    cfg = BenchConfig(sequences=4, slow_subset=1, ablation_sequences=2, reference_frames=8)
    opts = pipe.options(lbfgs_steps=3, critic_steps=2, motion_steps=3)
    return run_benchmark(cfg, pipe, clf, root / "out", progress=False, options=opts), root / "out"


def test_writes_every_output(results):
    res, out = results
    for name in ("results.json", "report.md", "per_frame.png", "examples.png"):
        assert (out / name).stat().st_size > 0
    assert json.loads((out / "results.json").read_text())["config"]["ablation_sequences"] == 2
    assert list(res["keyframe_sets"]) == ["0,9,19", "0,19", "0,4,9,14,19"]
    ref = res["speed"]["reference_ms"]  # the machine's speed at the start and the end of the run (machine.py)
    assert 0 < ref["start"] < 1e4 and 0 < ref["end"] < 1e4 and res["environment"]["cpu"]
    assert "reference workload" in (out / "report.md").read_text()


def test_rows_use_the_sequences_they_say(results):
    res, out = results
    rows = {r["name"]: r for r in res["keyframe_sets"]["0,9,19"]}
    assert rows["pipeline (default)"]["sequences"] == 4
    assert rows["pixel crossfade"]["sequences"] == 4
    assert rows["line (the original path)"]["sequences"] == 2 and rows["slerp"]["sequences"] == 2
    assert rows["original settings"]["sequences"] == 1
    for row in rows.values():  # each row's per-sequence means: one per scored sequence, averaging to its value
        assert len(row["per_sequence"]["motion"]) == row["sequences"]
        assert np.mean(row["per_sequence"]["mse_pixel"]) == pytest.approx(row["values"]["mse_pixel"][0], rel=1e-3)
    for ks in ("0,19", "0,4,9,14,19"):  # the beyond-the-original rows run with every keyframe set
        names = {r["name"]: r["sequences"] for r in res["keyframe_sets"][ks]}
        assert names["pipeline (default)"] == 4 and names["bounce prior, P-NET only"] == 2
        assert names["motion prior off"] == names["bounce prior, known speed"] == 2
        assert names["bounce sprites (image space)"] == names["bounce sprites, known speed"] == 4
        assert "PCA 0.9 (keyframes)" not in names
    report = (out / "report.md").read_text()
    assert "| line (the original path) (2 seq) |" in report and "| pipeline (default) |" in report
    assert "--ablation-sequences 2" in rows["slerp"]["command"]
    # keyframes 0, 4, 9, 14, 19 of every set, inverted once; lbfgs-from-zero and pnet for the subset only
    inv = {r["method"]: r["images"] for r in res["inversion"]}
    assert inv["pnet+lbfgs"] == 5 * 4 and inv["lbfgs"] == 5 * 2 and inv["pnet"] == 5 * 2


def test_default_is_also_scored_on_the_ablation_subset(results):
    """Subset rows need a like-for-like reference: the default's own clips scored on the same sequences."""
    res, out = results
    for rows in res["keyframe_sets"].values():
        named = {r["name"]: r for r in rows}
        subset = named["pipeline (default), ablation subset"]
        assert subset["sequences"] == 2 and subset["group"] == "pipeline-subset"
        assert subset["values"]["motion"] != named["pipeline (default)"]["values"]["motion"]
    rows = {r["name"]: r["values"] for r in res["keyframe_sets"]["0,9,19"]}
    for key in ("mse_pixel", "motion", "identity"):  # pnet+lbfgs is the default's inversion, on the subset
        assert rows["motion prior off"][key][0] == pytest.approx(
            rows["inversion pnet+lbfgs"][key][0], rel=1e-3, abs=1e-6
        )
    assert "| pipeline (default), ablation subset (2 seq) |" in (out / "report.md").read_text()


def test_baselines_score_as_expected(results):
    res, _ = results
    rows = {r["name"]: r["values"] for r in res["keyframe_sets"]["0,9,19"]}
    truth, black = rows["ground truth"], rows["all black"]
    assert truth["mse_pixel"][0] == 0 and truth["motion"][0] == pytest.approx(0, abs=1e-6)
    assert truth["ink"][0] == pytest.approx(1)
    assert black["ink"][0] == 0 and black["motion"][0] == pytest.approx(64 * math.sqrt(2))
    for row in rows.values():
        lo, mean, hi = row["mse_pixel"][1], row["mse_pixel"][0], row["mse_pixel"][2]
        assert lo <= mean <= hi and all(np.isfinite(row["ssim"]))


def test_rows_on_a_subset_score_only_the_subset():
    """An ablation row scores its first n clips; the unscored tail (filled with truth) must not count."""
    from latentvideo.evaluation import metrics

    cfg = BenchConfig(sequences=4)
    data = bench.load_benchmark_data(cfg)
    video = data.video
    scorer = bench.Scorer(video, data.labels, load_classifier(None, None), (0, 9, 19))
    clips = video.copy()
    clips[:, :2] = 0  # black on the first two sequences, truth after
    values, curves, clipwise = scorer(clips, 2)
    others = [t for t in range(20) if t not in (0, 9, 19)]
    expected = metrics.mse_per_pixel(clips[others, :2], video[others, :2]).mean()
    assert values["mse_pixel"][0] == pytest.approx(expected) and expected > 0
    each = metrics.mse_per_pixel(clips[others, :2], video[others, :2]).mean(0)  # [2]: one mean per sequence
    assert clipwise["mse_pixel"] == pytest.approx(each, rel=1e-4) and len(clipwise["motion"]) == 2
    assert values["ink"][0] == 0 and np.isnan(curves["mse_pixel"][0])


def test_groups_run_only_their_rows(tmp_path):
    model = tiny_model_dir(tmp_path / "model", resolution=64, projector=True)
    pipe = Pipeline.from_dir(model, "cpu")
    cfg = BenchConfig(sequences=2, groups=("motion",), extra_keyframes=((0, 19),))
    opts = pipe.options(lbfgs_steps=2, critic_steps=1, motion_steps=2)
    res = run_benchmark(cfg, pipe, load_classifier(None, model), tmp_path / "out", progress=False, options=opts)
    for rows in res["keyframe_sets"].values():
        pipeline_rows = {r["name"] for r in rows if r["group"] not in ("baseline",)}
        assert pipeline_rows == {
            "pipeline (default)",
            "motion prior off",
            "bounce prior, P-NET only",
            "bounce prior, 25 steps per frame",
            "bounce prior, 100 steps per frame",
            "bounce prior, known speed",
        }
        assert "--groups motion" in rows[-1]["command"]
    assert [r["method"] for r in res["inversion"]] == ["pnet+lbfgs"]  # no ablation inversions to pay for
    assert "inversion_scipy" not in res["speed"]  # nor the per-image scipy reference
    assert "Batched inversion" in (tmp_path / "out" / "report.md").read_text()
    # no groups (--groups none): the default row and the baselines only
    cfg = BenchConfig(sequences=2, groups=(), extra_keyframes=())
    res = run_benchmark(cfg, pipe, load_classifier(None, model), tmp_path / "none", progress=False, options=opts)
    rows = res["keyframe_sets"]["0,9,19"]
    assert [r["name"] for r in rows if r["group"] != "baseline"] == ["pipeline (default)"]
    assert rows[-1]["command"].endswith("--groups none --main-keyframes-only")
    # --rows: only the named rows, in every keyframe set; the default row too only when named
    named = ("motion prior off", "bounce prior, P-NET only")
    cfg = BenchConfig(sequences=2, groups=("motion", "path"), rows=named)
    cfg.extra_keyframes = ((0, 19),)
    res = run_benchmark(cfg, pipe, load_classifier(None, model), tmp_path / "rows", progress=False, options=opts)
    for rows in res["keyframe_sets"].values():
        assert [r["name"] for r in rows if r["group"] != "baseline"] == list(named)
        assert rows[-1]["command"].endswith("--groups motion,path --rows 'motion prior off;bounce prior, P-NET only'")
    assert {"motion prior off", "line, no unwrap", "pipeline (default)", "degree 3"} <= set(bench.row_names())
    # both presets' cover and attempts rows: cover on in colour (a row turns it off), off in gray (a row turns it
    # on); a second attempt for every colour clip (a row: only the badly drawn), for the badly drawn gray ones
    assert {
        "cover off (no slot moved onto objects no slot draws)",
        "a slot moved onto objects no slot draws (cover)",
        "one attempt per clip",
        "two attempts per clip (the second from jittered looks), the better kept",
        "a second attempt only where the keyframe error is above 0.002",
    } <= set(bench.row_names())
    assert not bench.runs_group(
        BenchConfig(rows=("motion prior off",)), "inversion"
    )  # no ablation inversions to pay for
    assert bench.runs_group(BenchConfig(rows=("inversion pnet",)), "inversion")


def test_cli_quick_and_bad_flags(tmp_path, capsys):
    model = tiny_model_dir(tmp_path / "model", resolution=64, projector=True)
    base = ["bench", "--model", str(model), "--out", str(tmp_path / "o")]
    for flag, value in (
        ("--ablation-sequences", "1"),
        ("--slow-subset", "0"),
        ("--sequences", "1"),
        ("--groups", "motion,warp"),
        ("--groups", "none,motion"),  # none means no row groups, so it stands alone
        ("--groups", ","),
        ("--rows", "motion prior off;warp speed"),
        ("--rows", ";"),
    ):
        assert main([*base, flag, value]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and flag in err and "\n" not in err
    assert not (tmp_path / "o").exists()
    assert main([*base, "--quick", "--sequences", "3"]) == 0
    assert "| pipeline (default) |" in capsys.readouterr().out and (tmp_path / "o" / "report.md").exists()


def test_command_names_every_protocol_flag():
    cfg = BenchConfig(sequences=200, ablation_sequences=50)
    assert (
        bench.row_command(cfg, "x")
        == "latentvideo bench --sequences 200 --seed 0 --keyframes 0,9,19 --ablation-sequences 50"
    )


def test_objects_rows_and_held_out_dynamics(tmp_path):
    """A generator with position coordinates gets the objects rows (clip fit, unwrap ablations), keyframe
    latents from the clip-level inversion of each keyframe set, and runs on the held-out dynamics set."""
    model = tiny_model_dir(tmp_path / "model", resolution=64, projector=True, objects=2)
    pipe = Pipeline.from_dir(model, "cpu")
    assert pipe.layout is not None
    cfg = BenchConfig(sequences=2, groups=("objects",), extra_keyframes=((0, 19),), dynamics="held-out")
    opts = pipe.options(lbfgs_steps=2, clip_steps=3, critic_steps=1)
    res = run_benchmark(cfg, pipe, load_classifier(None, model), tmp_path / "out", progress=False, options=opts)
    first, second = res["keyframe_sets"].values()
    names = [r["name"] for r in first if r["group"] != "baseline"]
    assert (
        names[0] == "pipeline (default)"
        and "line, no unwrap" in names
        and "per-keyframe inversion (no clip fit)" in names
    )
    assert "unwrap with the known speed" not in names  # held-out dynamics have no known speed
    assert [r["name"] for r in second if r["group"] == "objects"] == ["line, no unwrap", "lerp, no unwrap"]
    oracle = next(r for r in first if r["name"] == "piecewise-linear oracle")
    assert 0 < oracle["values"]["motion"][0] < 20
    assert "--dynamics held-out" in first[0]["command"]
    # the rows differ where their options differ: unwrap off changes the in-between frames of bouncing clips
    by_name = {r["name"]: r for r in first}
    assert all(np.isfinite(by_name[n]["values"]["mse_pixel"][0]) for n in names)
    rec = res["recovery"]  # inversion on G's own samples: every stage, positions in px
    assert {"start", "frames", "clip"} <= set(rec) and rec["clips"] == 64  # 16 with --quick
    assert 0 <= rec["clip"]["median_px"] < 64 and 0 <= rec["start"]["no_overlap_share"] <= 1
    assert rec["clip_matched"]["median_px"] >= rec["clip"]["median_px"]  # one matching per clip, not per keyframe
    assert (
        np.isfinite(rec["held_out_psnr_db"])
        and "Inversion on G's own samples" in (tmp_path / "out" / "report.md").read_text()
    )
    # the default row's rendered keyframes against the true ones: a PSNR of real images, below the cap
    assert (
        0 < rec["rendered_keyframe_psnr_db"] < 100
        and "in the rendered clip" in (tmp_path / "out" / "report.md").read_text()
    )


def test_rendered_keyframe_psnr_averages_every_channel_of_an_image():
    from latentvideo.evaluation.bench import _median_psnr

    true = np.zeros((2, 3, 4, 4, 3), np.uint8)
    gen = true.copy()
    gen[..., 0] = 51  # an error of 0.2 in one channel of three: MSE 0.04 / 3, PSNR 10 log10(75)
    gen[0, 0] = 0  # one image exact (capped at 100 dB): the median is unmoved
    assert _median_psnr(gen, true) == pytest.approx(10 * np.log10(75))
    assert _median_psnr(gen[..., 0], true[..., 0]) == pytest.approx(10 * np.log10(25))  # gray [K, n, H, W]


# ------------------------------------------------------------------ latentvideo compare


def test_compare_pairs_rows_clip_by_clip(results):
    from latentvideo.evaluation.compare import compare_rows, find_row

    res, _ = results
    fade, truth = find_row(res, "pixel crossfade"), find_row(res, "ground truth")
    diffs = {d.metric: d for d in compare_rows(fade, truth)}
    motion = diffs["motion"]  # truth moves nothing wrongly: B - A is minus the crossfade's error, clip by clip
    assert motion.a == pytest.approx(np.mean(fade["per_sequence"]["motion"]))
    assert motion.diff == pytest.approx(-motion.a) and motion.clips == 4
    assert motion.high < 0 and motion.better == "B" and diffs["mse_pixel"].better == "B"
    assert diffs["ssim"].better == "B" and diffs["ink"].better == ""  # ink has no better direction
    same = compare_rows(fade, fade)
    assert all(d.diff == d.low == d.high == 0 and d.better == "" for d in same)
    # a row on the ablation subset pairs with the first clips of a full row only
    full, sub = find_row(res, "pipeline (default)"), find_row(res, "pipeline (default), ablation subset")
    d = {d.metric: d for d in compare_rows(full, find_row(res, "motion prior off"))}["mse_pixel"]
    assert d.clips == 2 and d.a == pytest.approx(np.mean(sub["per_sequence"]["mse_pixel"]))


def test_compare_interval_is_paired():
    """Rows whose clips vary widely but whose difference is steady: their own intervals overlap, the paired
    difference's does not hold 0 (an unpaired test would call them level)."""
    from latentvideo.evaluation.compare import compare_rows
    from latentvideo.evaluation.metrics import bootstrap_ci

    hard = np.random.default_rng(0).uniform(1, 9, 40)  # how hard each clip is, shared by both rows
    a = {"per_sequence": {"motion": hard.tolist(), "identity": (hard / 10).tolist()}}
    b = {"per_sequence": {"motion": (hard - 0.3).tolist(), "identity": (hard / 10 - 0.01).tolist()}}
    assert bootstrap_ci(hard)[1] < bootstrap_ci(hard - 0.3)[2]  # the rows' own intervals overlap
    motion, ident = compare_rows(a, b)
    assert motion.diff == pytest.approx(-0.3) and motion.better == "B"  # lower motion error is better
    assert ident.diff == pytest.approx(-0.01) and ident.better == "A"  # higher identity is better


def test_compare_divides_seconds_by_each_runs_machine_speed():
    """Two runs' seconds per clip: their ratio as measured and, where both timed the reference workload, at equal
    machine speed (a run on a machine twice as slow that took 1.2x the time ran faster code)."""
    from latentvideo.evaluation.machine import normalised_speed

    a = {"speed": {"reference_ms": {"start": 4.0, "end": 6.0}}}  # 5 ms
    b = {"speed": {"reference_ms": {"start": 10.0, "end": 10.0}}}  # 10 ms: this machine is twice as slow
    line = normalised_speed(a, {"seconds_per_clip": 10.0}, b, {"seconds_per_clip": 12.0})
    assert "B/A 1.20" in line and "5.0 ms in A's run, 10.0 ms in B's, so B/A 0.60 at equal machine speed" in line
    same = normalised_speed(a, {"seconds_per_clip": 10.0}, a, {"seconds_per_clip": 12.0})  # one run: one machine
    assert "B/A 1.20" in same and "equal machine speed" not in same
    old = normalised_speed({}, {"seconds_per_clip": 10.0}, b, {"seconds_per_clip": 12.0})  # a run from before
    assert "equal machine speed" not in old
    assert normalised_speed(a, {"seconds_per_clip": None}, b, {"seconds_per_clip": 12.0}) is None  # a baseline


def test_compare_cli(results, tmp_path, capsys):
    res, out = results
    assert main(["compare", str(out), "--row", "pixel crossfade", "--row-b", "ground truth"]) == 0
    text = capsys.readouterr().out
    assert "paired over 4 clips" in text and "| motion px |" in text and "| B |" in text
    assert "s/clip" not in text  # baselines have no time
    assert main(["compare", str(out / "results.json"), str(out), "--row", "hold nearest keyframe"]) == 0
    assert "| neither |" in capsys.readouterr().out  # a row against itself in a copy of its run
    slower = json.loads((out / "results.json").read_text())  # the same run, as if made on a machine twice as slow
    slower["speed"]["reference_ms"] = {k: 2 * v for k, v in slower["speed"]["reference_ms"].items()}
    (tmp_path / "slower.json").write_text(json.dumps(slower))
    assert main(["compare", str(out), str(tmp_path / "slower.json"), "--row", "pipeline (default)"]) == 0
    assert "B/A 1.00; the machine's reference" in (text := capsys.readouterr().out) and "B/A 0.50 at equal" in text
    other = json.loads((out / "results.json").read_text())
    other["config"]["seed"] = 1
    (tmp_path / "other.json").write_text(json.dumps(other))
    (tmp_path / "broken.json").write_text("{")
    for args, needle in (
        ([str(tmp_path / "missing")], "cannot read"),
        ([str(tmp_path / "broken.json")], "not JSON"),
        ([str(out), str(tmp_path / "other.json")], "seed 0 against 1"),
        ([str(out)], "two rows"),
        ([str(out), "--row-b", "no such row"], "no row 'no such row'"),
        ([str(out), "--row-b", "ground truth", "--keyframes", "0,5"], "no keyframe set 0,5"),
        ([str(out), "--row-b", "ground truth", "--boot", "10"], "--boot"),
    ):
        assert main(["compare", *args]) == 2, args
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and needle in err and "\n" not in err, err


def test_cached_clip_inversion_serves_a_prefix_from_the_cache_and_inverts_any_other_subset_alone(tmp_path):
    """The rows share each attempt's clip inversion (the first n clips); the clips a retry makes again
    (`retry_above`) are not a prefix, so they are inverted alone, as the pipeline would, and not cached."""
    model = tiny_model_dir(tmp_path / "model", resolution=64, projector=True, objects=2)
    pipe = Pipeline.from_dir(model, "cpu")
    opts = pipe.options(clip_steps=2)
    keys = [torch.rand(3, 1, 64, 64, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    cache = {}
    head = bench._cached_clips(cache, pipe, (0, 9, 19), keys, keys[:2], opts, 1)
    assert len(cache) == 1 and head.latents.shape[0] == 6
    whole = next(iter(cache.values()))
    torch.testing.assert_close(head.latents, whole.latents[:6])
    alone = bench._cached_clips(cache, pipe, (0, 9, 19), keys, [keys[2]], opts, 1)
    assert len(cache) == 1  # not cached
    torch.testing.assert_close(alone.latents, pipe.project_clips([keys[2]], opts, 1).latents)
