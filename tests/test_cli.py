"""End-to-end CLI: `generate` (every output format, --from, --manifest, torchrun), `invert`, `demo`."""

from __future__ import annotations

import csv
import os
import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from conftest import listing, tiny_model_dir
from latentvideo.cli import main
from latentvideo.render import contact_sheet

Z = 8
FAST = ["--lbfgs-steps", "3", "--critic-steps", "1", "--device", "cpu"]


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """Tiny 32x32 model folder: generator/, critic/ and projector/."""
    return tiny_model_dir(tmp_path_factory.mktemp("m32"), 32, projector=True)


@pytest.fixture(scope="module")
def keys(model) -> list[Path]:
    """Three 32x32 gray keyframe PNGs rendered by the model's own generator."""
    from latentvideo.models import load_model

    G = load_model(model / "generator")
    z = torch.randn(3, Z, generator=torch.Generator().manual_seed(1))
    frames = (G(z)[:, 0] * 255).round().byte().numpy()
    paths = []
    for i, f in enumerate(frames):
        paths.append(model.parent / f"key{i}.png")
        Image.fromarray(f).save(paths[-1])
    return paths


@pytest.fixture(scope="module")
def seq20(tmp_path_factory, train_digits) -> Path:
    """uint8 [20, 2, 32, 32] Moving MNIST sequences."""
    from latentvideo.data import moving_mnist, write_sequences

    path = tmp_path_factory.mktemp("seq") / "seq20.npy"
    write_sequences(path, moving_mnist(2, 20, 1, 32, seed=1, digit_source=train_digits).video)
    return path


def _run(args, capsys) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _clean_error(code: int, err: str, match: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert re.search(match, lines[0]), lines[0]


def _gif_frames(path: Path) -> int:
    with Image.open(path) as im:
        return im.n_frames


def _mp4(path: Path) -> tuple[dict, list[bytes]]:
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    return meta, list(reader)


def _changes(clip: np.ndarray) -> int:
    """Frames of a GIF of `clip`: Pillow merges identical consecutive frames."""
    return 1 + sum(not np.array_equal(a, b) for a, b in zip(clip[:-1], clip[1:]))


def _files(root: Path) -> set[str]:
    """Files under `root` (output folders are made before any work, so empty ones may stay), the batch
    runner's journals aside."""
    from latentvideo.apps.batch import JOURNAL_PREFIX

    found = {p for p in listing(root) if (root / p).is_file()} if root.exists() else set()
    return {p for p in found if not Path(p).name.startswith(JOURNAL_PREFIX)}


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


# ---------------------------------------------------------------- generate: one clip


def test_generate_writes_every_format(tmp_path, model, keys, capsys):
    common = [*keys, "--model", model, "--times", "0,5,11", "--frames", "12", "--pca", "0.9", "--degree", "2"]
    common += ["--critic-steps", "2", "--critic-step-size", "0.01", "--method", "lbfgs", "--lbfgs-steps", "5"]
    common += ["--device", "cpu"]
    outputs = {}
    for ext in (".npy", ".gif", ".mp4", ".png"):
        outputs[ext] = tmp_path / f"clip{ext}"
        code, out, err = _run(["generate", *common, "--out", outputs[ext]], capsys)
        assert code == 0, err
        assert f"wrote {outputs[ext]}  (12 frames, keyframes at 0, 5, 11)" in out
        for k in keys:  # per-keyframe reconstruction error and per-stage seconds
            assert re.search(rf"keyframe {re.escape(str(k))}: reconstruction MSE/pixel \d+\.\d+", out), out
        assert re.search(r"seconds: project \d+\.\d+  path \d+\.\d+  render \d+\.\d+  correct \d+\.\d+", out), out
    clip = np.load(outputs[".npy"])
    assert clip.dtype == np.uint8 and clip.shape == (12, 32, 32)
    assert _gif_frames(outputs[".gif"]) == _changes(clip)
    with Image.open(outputs[".gif"]) as im:
        assert im.size == (32, 32)
        np.testing.assert_array_equal(np.asarray(im.convert("L")), clip[0])  # the same clip, every run
    meta, frames = _mp4(outputs[".mp4"])
    assert len(frames) == 12 and tuple(meta["size"]) == (128, 128)  # upscaled 4x
    assert outputs[".png"].stat().st_size > 0
    with Image.open(outputs[".png"]) as im:
        sheet = np.asarray(im)
    np.testing.assert_array_equal(sheet, contact_sheet([clip], None, [0, 5, 11]))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.gif", "clip.mp4", "clip.npy", "clip.png"]


@pytest.mark.parametrize("path", ["lerp", "slerp", "line"])
def test_generate_paths(tmp_path, model, keys, capsys, path):
    out = tmp_path / "clip.npy"
    code, _, err = _run(
        ["generate", *keys, "--model", model, "--path", path, "--pca", "off", *FAST, "--out", out], capsys
    )
    assert code == 0, err
    assert np.load(out).shape == (20, 32, 32)


def test_every_pipeline_option_is_a_flag_that_reaches_the_pipeline(tmp_path, model, keys, capsys):
    """The flags come from options.schema: each non-API-only field has one; path and critic flags change the clip."""
    from latentvideo.options import schema

    code, text, _ = _run(["generate", "--help"], capsys)
    assert code == 0
    for name in schema(include_api_only=False):
        assert "--" + name.replace("_", "-") in text, name
    for name in ("render_batch", "seed"):  # API-only
        assert "--" + name.replace("_", "-") not in text
    base = ["generate", *keys, "--model", model, *FAST]
    variants = {"lerp": [], "line": ["--path", "line", "--pca", "off"], "latent": ["--critic", "latent"]}
    clips = {}
    for name, extra in variants.items():
        out = tmp_path / f"{name}.npy"
        code, _, err = _run([*base, *extra, "--out", out], capsys)
        assert code == 0, err
        clips[name] = np.load(out)
    assert not np.array_equal(clips["line"], clips["lerp"]) and not np.array_equal(clips["latent"], clips["lerp"])


def test_generate_methods_and_defaults(tmp_path, model, keys, capsys):
    clips = {}
    for method in ("pnet", "pnet+lbfgs", "lbfgs"):
        out = tmp_path / f"{method}.npy"
        assert _run(["generate", *keys, "--model", model, "--method", method, *FAST, "--out", out], capsys)[0] == 0
        clips[method] = np.load(out)
    # the model has a projector, so the default is pnet+lbfgs
    out = tmp_path / "default.npy"
    assert _run(["generate", *keys, "--model", model, *FAST, "--out", out], capsys)[0] == 0
    np.testing.assert_array_equal(np.load(out), clips["pnet+lbfgs"])
    # three keyframes and no --times: evenly spread over --frames
    code, text, _ = _run(["generate", *keys, "--model", model, *FAST, "--frames", "9", "--out", out], capsys)
    assert code == 0 and "keyframes at 0, 4, 8" in text


@pytest.mark.parametrize(
    "args, match",
    [
        (["--frames", "0"], "--frames must be between 2 and"),
        (["--frames", "1"], "--frames must be between 2 and"),
        (["--frames", "100000"], "--frames must be between 2 and"),
        (["--pca", "1.5"], "--pca must be in"),
        (["--pca", "nan"], "--pca must be in"),
        (["--pca", "most"], "--pca must be a number"),
        (["--degree", "3", "--path", "line"], "needs more than 3 keyframes"),
        (["--degree", "0"], "degree"),
        (["--method", "adam"], "unknown --method 'adam'"),
        (["--path", "spline"], "unknown --path"),
        (["--critic", "on"], "unknown --critic"),
        (["--critic-steps", "-1"], "critic-steps"),
        (["--critic-step-size", "-1"], "critic-step-size"),
        (["--lbfgs-steps", "-1"], "lbfgs-steps"),
        (["--times", "0,5"], "2 keyframe times for 3 keyframes"),
        (["--times", "0,x,9"], "--times must be comma-separated numbers"),
        (["--times", "0,5,25"], r"must lie in \[0, 19\]"),
        (["--out-dir", "clips"], "--out-dir goes with --manifest"),
        (["--fps", "0"], "--fps must be at least 1"),
    ],
)
def test_generate_bad_options_fail_cleanly(tmp_path, model, keys, capsys, args, match):
    out = tmp_path / "clip.npy"
    code, _, err = _run(["generate", *keys, "--model", model, "--device", "cpu", "--out", out, *args], capsys)
    _clean_error(code, err, match)
    assert listing(tmp_path) == set()  # nothing written


def test_generate_bad_inputs_fail_cleanly(tmp_path, model, keys, capsys):
    cases = [
        (["generate", *keys, "--model", model, "--out", tmp_path / "clip.avi"], "unknown output format"),
        (["generate", *keys, "--model", model], "missing --out"),
        (["generate", "--model", model, "--out", tmp_path / "c.npy"], "no keyframes given"),
        (["generate", keys[0], "--model", model, "--out", tmp_path / "c.npy"], "at least 2 keyframes"),
        (["generate", *keys, tmp_path / "nope.png", "--model", model, "--out", tmp_path / "c.npy"], "not found"),
        (["generate", *keys, "--model", tmp_path / "nomodel", "--out", tmp_path / "c.npy"], "not found"),
    ]
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(big)
    cases.append((["generate", keys[0], big, "--model", model, "--out", tmp_path / "c.npy"], "--resize"))
    for args, match in cases:
        code, _, err = _run([*args, "--device", "cpu"], capsys)
        _clean_error(code, err, match)
    assert listing(tmp_path) == {"big.png"}
    # --resize takes the 64x64 keyframe
    code, _, err = _run(
        ["generate", keys[0], big, "--model", model, *FAST, "--resize", "--out", tmp_path / "c.npy"], capsys
    )
    assert code == 0, err


def test_generate_from_a_sequence_file(tmp_path, model, seq20, capsys):
    base = ["generate", "--from", seq20, "--sequence", "1", "--keyframes", "0,9,19", "--model", model, *FAST]
    png, npy = tmp_path / "clip.png", tmp_path / "clip.npy"
    code, out, err = _run([*base, "--out", png], capsys)
    assert code == 0, err
    assert "keyframes at 0, 9, 19" in out and "keyframe t=9: reconstruction MSE/pixel" in out
    assert _run([*base, "--out", npy], capsys)[0] == 0
    # the contact sheet is the generated clip over the ground-truth row, keyframe columns marked
    truth = np.load(seq20)[:, 1]
    expected = contact_sheet([np.load(npy), truth], ["generated", "truth"], [0, 9, 19])
    with Image.open(png) as im:
        np.testing.assert_array_equal(np.asarray(im), expected)
    for args, match in [
        (["--sequence", "2"], "--sequence 2 out of range"),
        (["--keyframes", "0,9,20"], "out of range"),
        (["--keyframes", "0,4.5"], "whole frame indices"),
        (["--keyframes", "0,9,19", "--frames", "10"], r"must lie in \[0, 9\]"),
    ]:
        code, _, err = _run([*base[:3], *base[7:], *args, "--out", tmp_path / "bad.npy"], capsys)
        _clean_error(code, err, match)
    code, _, err = _run([*base, seq20, "--out", tmp_path / "bad.npy"], capsys)
    _clean_error(code, err, "not both")
    assert not (tmp_path / "bad.npy").exists()


# ---------------------------------------------------------------- invert


def test_invert_writes_latents_errors_and_reconstructions(tmp_path, model, keys, capsys):
    out = tmp_path / "z.npz"
    code, text, err = _run(
        ["invert", keys[0], keys[1], "--model", model, "--steps", "5", "--device", "cpu", "--out", out], capsys
    )
    assert code == 0, err
    assert f"wrote {out}  latents [2, 8]" in text
    assert text.count("reconstruction MSE/pixel") == 2
    with np.load(out, allow_pickle=False) as z:
        assert z["latents"].shape == (2, Z) and z["latents"].dtype == np.float32
        assert z["errors"].shape == (2,) and (z["errors"] >= 0).all()
        assert z["reconstructions"].shape == (2, 1, 32, 32) and z["reconstructions"].dtype == np.uint8
        assert list(z["names"]) == [str(keys[0]), str(keys[1])]
        errors = z["errors"]
    # more steps from the same start do no worse; every method runs
    for method in ("pnet", "lbfgs", "scipy"):
        other = tmp_path / f"{method}.npz"
        args = ["invert", *keys[:2], "--model", model, "--method", method, "--steps", "10", "--device", "cpu"]
        assert _run([*args, "--out", other], capsys)[0] == 0
    with np.load(tmp_path / "pnet.npz") as p:
        assert (errors <= p["errors"] + 1e-6).all()  # L-BFGS from P-NET's guess improves on it
    code, _, err = _run(["invert", keys[0], "--model", model, "--out", tmp_path / "z.npy"], capsys)
    _clean_error(code, err, "unknown output extension")
    code, _, err = _run(["invert", keys[0], "--model", model, "--method", "x", "--out", tmp_path / "x.npz"], capsys)
    _clean_error(code, err, "unknown inversion method")
    assert not (tmp_path / "x.npz").exists()


# ---------------------------------------------------------------- demo


def test_demo(tmp_path, capsys):
    model = tiny_model_dir(tmp_path / "m64", 64, projector=False)
    out = tmp_path / "demo"
    code, text, err = _run(["demo", "--model", model, "--sequences", "2", "--out", out, "--device", "cpu"], capsys)
    assert code == 0, err
    names = {"contact_sheet.png", "sequence_0.gif", "sequence_0.mp4", "sequence_1.gif", "sequence_1.mp4"}
    assert {p.name for p in out.iterdir()} == names
    assert text.count("keyframe reconstruction MSE/pixel") == 2 and "contact sheet:" in text
    assert re.search(r"seconds per clip: project \d+\.\d+", text)
    assert len(_mp4(out / "sequence_1.mp4")[1]) == 20
    code, _, err = _run(["demo", "--model", model, "--sequences", "0", "--out", out], capsys)
    _clean_error(code, err, "--sequences must be between 1 and 64")
    code, _, err = _run(
        ["demo", "--model", tiny_model_dir(tmp_path / "m32", 32, False), "--out", tmp_path / "d2"], capsys
    )
    _clean_error(code, err, "64x64")


# ---------------------------------------------------------------- manifest and torchrun


def _manifest(tmp_path: Path, keys: list[Path]) -> Path:
    """Three rows: keyframe paths relative to the manifest or absolute, with and without times."""
    folder = tmp_path / "jobs"
    folder.mkdir()
    for k in keys:
        (folder / k.name).write_bytes(k.read_bytes())
    rows = [
        {"keyframes": ";".join(k.name for k in keys), "times": "0,9,19", "out": "a.npy"},
        {"keyframes": f"{keys[2]};{keys[0]}", "times": "", "out": "b.npy"},
        {"keyframes": f"{keys[1].name}; {keys[2].name}; {keys[0].name}", "times": "0;5;19", "out": "sub/c.npy"},
    ]
    path = folder / "jobs.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, ["keyframes", "times", "out"])
        w.writeheader()
        w.writerows(rows)
    return path


MANIFEST_OUTPUTS = ("a.npy", "b.npy", "sub/c.npy")


def test_manifest_renders_every_row(tmp_path, model, keys, capsys):
    jobs = _manifest(tmp_path, keys)
    out = tmp_path / "clips"
    args = ["generate", "--manifest", jobs, "--model", model, "--out-dir", out, *FAST, "--frames", "20"]
    code, text, err = _run([*args, "--path", "lerp"], capsys)
    assert code == 0, err
    for i, name in enumerate(MANIFEST_OUTPUTS):
        clip = np.load(out / name)
        assert clip.shape == (20, 32, 32) and clip.dtype == np.uint8
        assert f"row {i + 1}: wrote {out / name}" in text
    # a row gives what `generate` gives for it alone, options included (here --path lerp)
    single = tmp_path / "single.npy"
    code, _, err = _run(
        ["generate", *keys, "--times", "0,9,19", "--model", model, *FAST, "--path", "lerp", "--out", single], capsys
    )
    assert code == 0, err
    np.testing.assert_allclose(np.load(out / "a.npy"), np.load(single), atol=1)
    line = tmp_path / "line"
    assert (
        _run(["generate", "--manifest", jobs, "--model", model, "--out-dir", line, *FAST, "--path", "line"], capsys)[0]
        == 0
    )
    assert not np.array_equal(np.load(line / "a.npy"), np.load(out / "a.npy"))  # --path reached the rows
    # without --out-dir, outputs go beside the manifest; other formats work too
    rows = jobs.read_text().replace("a.npy", "a.gif").replace("b.npy", "b.mp4").replace("sub/c.npy", "c.png")
    jobs.write_text(rows)
    assert _run(["generate", "--manifest", jobs, "--model", model, *FAST], capsys)[0] == 0
    assert _gif_frames(jobs.parent / "a.gif") >= 2 and len(_mp4(jobs.parent / "b.mp4")[1]) == 20
    assert (jobs.parent / "c.png").stat().st_size > 0


def test_manifest_errors(tmp_path, model, keys, capsys):
    jobs = _manifest(tmp_path, keys)
    out = tmp_path / "clips"
    base = ["generate", "--manifest", jobs, "--model", model, "--out-dir", out, "--device", "cpu"]
    for args, match in [
        (["--frames", "0"], "--frames must be between 2 and"),
        (["--pca", "2"], "--pca must be in"),
        (["--method", "adam"], "unknown --method 'adam'"),
        (["--out", tmp_path / "x.npy"], "come from the CSV"),
        ([keys[0]], "come from the CSV"),
        (["--batch-rows", "0"], "--batch-rows must be at least 1"),
    ]:
        code, _, err = _run([*base, *args], capsys)
        _clean_error(code, err, match)
    bad = tmp_path / "bad.csv"
    for text, match in [
        ("a,b\n1,2\n", "needs a header"),
        (f"keyframes,out\n{keys[0]},x.npy\n", "need at least 2 keyframes"),
        (f"keyframes,out\n{keys[0]};{keys[1]},\n", "no output path"),
        (f"keyframes,out\n{keys[0]};{keys[1]},x.avi\n", "unknown output format"),
        (f"keyframes,out\n{keys[0]};{keys[1]},x.npy\n{keys[1]};{keys[0]},x.npy\n", "same output twice"),
        (f"keyframes,times,out\n{keys[0]};{keys[1]},0;x,x.npy\n", r"row 1 of .*bad.csv: times must be"),
        (f"keyframes,times,out\n{keys[0]};{keys[1]},0;50,x.npy\n", r"must lie in \[0, 19\]"),
    ]:
        bad.write_text(text)
        code, _, err = _run(["generate", "--manifest", bad, "--model", model, *FAST, "--out-dir", out], capsys)
        _clean_error(code, err, match)
    code, _, err = _run(["generate", "--manifest", tmp_path / "none.csv", "--model", model], capsys)
    _clean_error(code, err, "manifest not found")
    assert _files(out) == set()  # no clip written


def test_manifest_under_torchrun_matches_one_process(tmp_path, model, keys, torchrun, capsys):
    """Two CPU processes split the rows (RANK / WORLD_SIZE from torchrun) and write the same bytes."""
    jobs = _manifest(tmp_path, keys)
    args = ["generate", "--manifest", str(jobs), "--model", str(model), *FAST, "--batch-rows", "2"]
    one = tmp_path / "one"
    assert _run([*args, "--out-dir", one], capsys)[0] == 0
    two = tmp_path / "two"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "latentvideo.cli", *args, "--out-dir", str(two)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # batches of 2 rows: rank 0 takes rows 1-2, rank 1 takes row 3
    assert "[rank 0] row 1:" in proc.stdout and "[rank 0] row 2:" in proc.stdout
    assert "[rank 1] row 3:" in proc.stdout
    for name in MANIFEST_OUTPUTS:
        assert (two / name).read_bytes() == (one / name).read_bytes(), name


def test_manifest_rank_environment_without_torchrun(tmp_path, model, keys, capsys, monkeypatch):
    """Only RANK / WORLD_SIZE are read: ranks run as plain processes split the rows, one batch each."""
    jobs = _manifest(tmp_path, keys)
    args = ["generate", "--manifest", jobs, "--model", model, *FAST, "--batch-rows", "1", "--out-dir", tmp_path / "o"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    code, text, err = _run(args, capsys)
    assert code == 0, err
    assert "[rank 1] row 2:" in text and "row 1:" not in text and "row 3:" not in text
    assert _files(tmp_path / "o") == {"b.npy"}
    monkeypatch.setenv("RANK", "0")
    assert _run(args, capsys)[0] == 0
    assert _files(tmp_path / "o") == {"a.npy", "b.npy", "sub/c.npy"}
    monkeypatch.setenv("RANK", "5")
    _clean_error(*_run(args, capsys)[::2], "RANK=5")


# ---------------------------------------------------------------- help


@pytest.mark.parametrize("command", [["generate"], ["invert"], ["demo"], ["compare"]])
def test_help_shows_an_example(command, capsys):
    code, out, _ = _run([*command, "--help"], capsys)
    assert code == 0 and "Example" in out and f"latentvideo {command[0]}" in out


def test_ppl_measures_each_model_with_the_same_classifier(tmp_path, capsys):
    a = tiny_model_dir(tmp_path / "a", resolution=64)
    b = tiny_model_dir(tmp_path / "b", resolution=64, seed=1)
    code, text, err = _run(["ppl", a, b, a, "--samples", "8", "--device", "cpu"], capsys)
    assert code == 0, err
    values = [float(line.rsplit(": ", 1)[1]) for line in text.strip().splitlines()]
    assert len(values) == 3 and all(v > 0 for v in values)
    assert values[0] == values[2] and values[0] != values[1]  # seeded; a different generator differs
    for args, match in ((["--samples", "1"], "--samples must be at least 2"), (["--eps", "0"], "--eps must be")):
        _clean_error(*_run(["ppl", a, *args], capsys)[::2], match)
    _clean_error(*_run(["ppl", tmp_path / "missing"], capsys)[::2], "not found")


def test_ppl_of_an_objects_model_also_reports_its_positions_and_the_rest_apart(tmp_path, capsys):
    m = tiny_model_dir(tmp_path / "m", resolution=64, objects=2)
    code, text, err = _run(["ppl", m, "--samples", "8", "--device", "cpu"], capsys)
    assert code == 0, err
    lines = text.strip().splitlines()
    assert [line.split("PPL (")[1].split(",")[0:2] for line in lines] == [
        ["z", " 8 samples"],
        ["z", " positions alone"],
        ["z", " all but positions"],
    ]
    assert all(float(line.rsplit(": ", 1)[1]) > 0 for line in lines)
