"""The local web page: its plain functions, then the real page in a headless Chromium.

The browser test needs Debian's /usr/bin/chromium, gradio and playwright (the Python
package only: never `playwright install`, nothing is downloaded). CI installs all three
(.ci/run, the dev extra); elsewhere a missing piece fails the test with a message,
unless LATENTVIDEO_SKIP_WEB=1. LATENTVIDEO_WEB_MODEL=DIR runs it on another model
(e.g. the shipped one, for the README screenshot).
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentvideo.apps import web, web_generate, web_models, web_requests
from latentvideo.errors import LatentVideoError

pytestmark = pytest.mark.web

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def _save_tiny_model(root: Path, channels: int = 1, critic: bool = True, projector: bool = True) -> Path:
    """A model folder with untrained tiny seeded networks (64x64, `channels` channels)."""
    from latentvideo.models import Critic, Generator, Projector, model_config, save_model

    torch.manual_seed(0)
    g = dict(z_dim=8, resolution=64, channels=channels, width=4)
    c, p = dict(resolution=64, channels=channels, width=4), dict(g, hidden=16)
    save_model(Generator(**g), root / "generator", model_config(Generator(**g), **g))
    if critic:
        save_model(Critic(**c), root / "critic", model_config(Critic(**c), **c))
    if projector:
        save_model(Projector(**p), root / "projector", model_config(Projector(**p), **p))
    return root


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A model folder like the shipped one, with untrained tiny networks (64x64 grayscale)."""
    return _save_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def shipped_folder(tmp_path_factory) -> Path:
    """Stands in for the package's pretrained/ folder: a grayscale model like the shipped one, a colour model
    with neither P-NET nor critic (so other defaults), and a folder that is not a model."""
    root = tmp_path_factory.mktemp("pretrained")
    _save_tiny_model(root / "gray-64")
    _save_tiny_model(root / "colour-64", channels=3, critic=False, projector=False)
    (root / "notes").mkdir()
    return root


@pytest.fixture
def shipped(monkeypatch, shipped_folder) -> Path:
    import latentvideo.pipeline

    monkeypatch.setattr(latentvideo.pipeline, "SHIPPED", shipped_folder)
    return shipped_folder


@pytest.fixture(scope="session")
def pipe(tiny_model):
    from latentvideo.pipeline import load_pipeline

    return load_pipeline(tiny_model, "cpu")


@pytest.fixture(scope="session")
def keyframe_pngs(tmp_path_factory) -> list[Path]:
    """Frames 0, 9, 19 of a held-out test sequence as 64x64 grayscale PNGs."""
    from latentvideo.data import moving_mnist

    folder = tmp_path_factory.mktemp("keyframes")
    video = moving_mnist(1, 20, split="test", seed=5).video[:, 0]
    paths = []
    for t in (0, 9, 19):
        paths.append(folder / f"frame_{t:02d}.png")
        Image.fromarray(video[t]).save(paths[-1])
    return paths


def _fake_png(folder: Path) -> Path:
    path = folder / "notes.png"
    path.write_text("this is a text file, renamed")
    return path


# ---------------------------------------------------------------- uploads


def test_check_uploads_counts_types_and_sizes(tmp_path, keyframe_pngs):
    assert web_requests.check_uploads(keyframe_pngs) == keyframe_pngs
    for files in ([], None, keyframe_pngs[:1], keyframe_pngs * 3):
        with pytest.raises(LatentVideoError, match="at (least 2|most 8)"):
            web_requests.check_uploads(files)
    txt = tmp_path / "notes.txt"
    txt.write_text("hello")
    with pytest.raises(LatentVideoError, match="notes.txt is not an image"):
        web_requests.check_uploads([keyframe_pngs[0], txt])
    big = tmp_path / "big.png"
    with open(big, "wb") as f:
        f.truncate(web_requests.MAX_FILE_BYTES + 1)  # sparse: costs no disk
    with pytest.raises(LatentVideoError, match=r"big.png is 10.0 MB; the limit is 10 MB"):
        web_requests.check_uploads([keyframe_pngs[0], big])
    with pytest.raises(LatentVideoError, match="gone.png did not arrive"):
        web_requests.check_uploads([keyframe_pngs[0], tmp_path / "gone.png"])


def test_upload_path_accepts_gradio_file_values(keyframe_pngs):
    p = keyframe_pngs[0]

    class Wrapped:  # gradio 3/4 tempfile wrappers have .name, FileData has .path
        name = str(p)

    assert {web_requests.upload_path(v) for v in (str(p), p, {"path": str(p)}, Wrapped())} == {p}
    with pytest.raises(LatentVideoError):
        web_requests.upload_path(42)


def test_load_keyframes_names_the_file_not_its_temp_path(tmp_path, keyframe_pngs):
    k = web_requests.load_keyframes(keyframe_pngs, channels=1, resolution=64)
    assert k.shape == (3, 1, 64, 64) and k.dtype == torch.float32 and 0 <= k.min() and k.max() <= 1
    with pytest.raises(LatentVideoError) as e:
        web_requests.load_keyframes([keyframe_pngs[0], _fake_png(tmp_path)], 1, 64)
    assert "notes.png" in str(e.value) and str(tmp_path) not in str(e.value)
    small = tmp_path / "small.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(small)
    with pytest.raises(LatentVideoError, match="Rescale"):
        web_requests.load_keyframes([keyframe_pngs[0], small], 1, 64, resize=False)
    assert web_requests.load_keyframes([keyframe_pngs[0], small], 1, 64, resize=True).shape == (2, 1, 64, 64)


def test_parse_times():
    assert (
        web_requests.parse_times("") is None
        and web_requests.parse_times(None) is None
        and web_requests.parse_times("  ") is None
    )
    assert web_requests.parse_times("0, 9,19") == [0.0, 9.0, 19.0]
    assert web_requests.parse_times("0;4.5") == [0.0, 4.5]
    for bad in ("a,b", "0,nan", "1,inf"):
        with pytest.raises(LatentVideoError, match="keyframe times"):
            web_requests.parse_times(bad)


def test_error_markdown_escapes_and_shows_hint():
    text = web_generate.error_markdown(LatentVideoError("bad <b>x</b>", hint="do y"))
    assert text.startswith("**Error:** bad &lt;b&gt;") and "Hint: do y" in text
    assert web_generate.error_markdown(ValueError("boom")).startswith("**Unexpected error:** ValueError: boom")


def test_request_dirs_are_fresh_and_old_ones_pruned(tmp_path):
    dirs = web_requests.RequestDirs(keep_seconds=60, root=tmp_path)
    a, b = dirs.new(), dirs.new()
    assert a != b and a.parent == b.parent == dirs.root and dirs.root.parent == tmp_path
    os.utime(a, (time.time() - 120, time.time() - 120))
    dirs.new()
    assert not a.exists() and b.exists()


def test_request_dirs_discard_and_leave_other_entries_alone(tmp_path):
    dirs = web_requests.RequestDirs(keep_seconds=60, root=tmp_path)
    other = dirs.root / "gradio"  # Gradio's temp folder may live beside the request folders
    other.mkdir()
    old = time.time() - 120
    os.utime(other, (old, old))
    a = dirs.new()
    dirs.discard(a)
    dirs.discard(None)
    assert not a.exists() and dirs.folders() == [] and other.exists()
    b = dirs.new()
    os.utime(b, (old, old))
    dirs.new()
    assert not b.exists() and other.exists() and len(dirs.folders()) == 1


def test_pipeline_gate_takes_turns_in_order_and_says_busy():
    import threading

    gate = web_requests.PipelineGate(concurrency=1, max_queue=2)
    order = []

    def visit(i):
        with gate.turn():
            order.append(i)

    with gate.turn() as waited:  # one request holds the only turn
        assert waited < 1 and gate.running == 1 and gate.waiting == 0
        threads = []
        for i in range(2):
            threads.append(threading.Thread(target=visit, args=(i,)))
            threads[-1].start()
            while gate.waiting < i + 1:  # in line one after the other: first come, first served
                time.sleep(0.01)
        with pytest.raises(web_requests.ServerBusy, match="busy .*try again"):
            with gate.turn():
                pass
        assert web_generate.error_markdown(web_requests.ServerBusy("the server is busy")).startswith("**Busy:**")
    for t in threads:
        t.join(timeout=10)
    assert order == [0, 1] and gate.running == gate.waiting == 0
    with gate.turn():  # free again
        pass
    with pytest.raises(LatentVideoError, match="--concurrency must be between 1"):
        web_requests.PipelineGate(concurrency=0)
    with pytest.raises(LatentVideoError, match="--max-queue must be between 0"):
        web_requests.PipelineGate(max_queue=-1)


def test_check_request_answers_mistakes_without_rendering(pipe, keyframe_pngs, tmp_path):
    r = web_generate.check_request(pipe, keyframe_pngs, "0,5,11", 12)
    assert r.keyframes.shape == (3, 1, 64, 64) and r.times == [0.0, 5.0, 11.0] and r.frames == 12
    for kwargs, message in [
        (dict(times="0,5"), "2 keyframe times for 3 keyframes"),  # checked against the keyframes up front
        (dict(times="9,5,0"), "increasing"),
        (dict(frames="many"), "whole number"),
    ]:
        with pytest.raises(LatentVideoError, match=message):
            web_generate.check_request(pipe, keyframe_pngs, **kwargs)
    with pytest.raises(LatentVideoError, match="cannot read image notes.png"):
        web_generate.check_request(pipe, [keyframe_pngs[0], _fake_png(tmp_path)])


# ---------------------------------------------------------------- sample and generation


def test_load_sample_is_a_held_out_sequence(tmp_path):
    from latentvideo.data import moving_mnist

    s = web_models.load_sample(tmp_path, seed=11)
    video = moving_mnist(1, 20, split="test", seed=11).video[:, 0]
    assert s.seed == 11 and s.times == [0.0, 9.0, 19.0] and np.array_equal(s.truth, video)
    for p, t in zip(s.paths, (0, 9, 19)):
        assert np.array_equal(np.asarray(Image.open(p)), video[t])
    from latentvideo.shapes import moving_shapes

    c = web_models.load_sample(tmp_path / "colour", seed=11, channels=3)  # a colour model samples Moving Shapes
    video = moving_shapes(1, 20, 64, "test", seed=11).video[:, 0]
    assert c.truth.shape == (20, 64, 64, 3) and np.array_equal(c.truth, video)
    assert np.array_equal(np.asarray(Image.open(c.paths[1])), video[9])


def test_run_generation_writes_everything(pipe, keyframe_pngs, tmp_path):
    r = web_generate.run_generation(
        pipe, [str(p) for p in keyframe_pngs], "0,5,11", 12, out_dir=tmp_path, critic_steps=1
    )
    assert r["frames"].shape == (12, 64, 64) and r["frames"].dtype == np.uint8
    assert [p.name for p in r["downloads"]] == ["clip.gif", "clip.mp4", "clip.npy", "contact_sheet.png"]
    assert all(p.is_file() and p.stat().st_size > 0 and p.parent == tmp_path for p in r["downloads"])
    assert np.array_equal(np.load(r["npy"]), r["frames"]) and r["video"] == r["downloads"][1]
    assert r["truth_video"] is None and len(r["errors"]) == 3 and len(r["gallery"]) == 6
    for i, err in enumerate(r["errors"]):
        assert f"keyframe {i}: MSE {err:.4f}" in r["report"]
        assert r["gallery"][2 * i + 1][1] == f"MSE {err:.4f}"
    assert {"project", "path", "render", "correct", "write", "total"} <= set(r["timings"])
    assert "Seconds per stage" in r["report"]


def test_run_generation_with_truth_shows_it_beside(pipe, tmp_path):
    s = web_models.load_sample(tmp_path / "in", seed=2)
    r = web_generate.run_generation(pipe, s.paths, s.times, 20, pca=None, truth=s.truth, out_dir=tmp_path / "out")
    assert r["truth_video"].is_file()
    alone = web_generate.run_generation(pipe, s.paths, s.times, 20, pca=None, out_dir=tmp_path / "alone")
    assert Image.open(r["sheet"]).height > Image.open(alone["sheet"]).height  # a second row: truth


def test_run_generation_with_the_motion_prior(pipe, tmp_path):
    from latentvideo.motion import fit_bounce

    s = web_models.load_sample(tmp_path / "in", seed=2)
    r = web_generate.run_generation(pipe, s.paths, s.times, 20, motion_prior="bounce", out_dir=tmp_path / "out")
    keys = s.truth[[int(t) for t in s.times]] / 255.0  # [3, 64, 64]
    assert (r["clip"].motion is not None) == (fit_bounce(keys, s.times) is not None)
    assert r["frames"].shape[0] == 20 and r["video"].is_file()


def test_run_generation_passes_the_speed_and_projection_budget(pipe, tmp_path):
    names = ["pca", "degree", "motion_speed", "motion_steps", "method", "unwrap"]
    assert web_models.control_values([0, 2, 0, 7, "", False], names) == {
        "pca": None,  # 0 on the page: PCA off
        "degree": 2,
        "motion_speed": None,  # 0 on the page: unknown
        "motion_steps": 7,
        "unwrap": False,
    }  # an empty control keeps the model's default
    s = web_models.load_sample(tmp_path / "in", seed=0)  # digits apart: the bounce prior applies
    slow = web_generate.run_generation(pipe, s.paths, s.times, 20, motion_steps=3, out_dir=tmp_path / "slow")
    fast = web_generate.run_generation(
        pipe, s.paths, s.times, 20, motion_speed=3.6, motion_steps=0, out_dir=tmp_path / "fast"
    )
    assert slow["clip"].motion is not None and fast["clip"].motion is not None
    assert not np.array_equal(fast["frames"], slow["frames"])


class _FakeGradio:
    """Stands in for the gradio module in `option_controls`: each component is a namespace of its arguments."""

    def __getattr__(self, kind):
        from types import SimpleNamespace

        return lambda *args, **kwargs: SimpleNamespace(**{"kind": kind, "args": args, "interactive": True, **kwargs})


def _probe_value(name, k, default):
    """A valid value other than the model's default, for any user-facing option: the command line and the
    page must both carry it into Options. A new kind of option fails here until this test knows it."""
    if k.kind == "choice":
        return [c for c in k.choices if c != default][-1]
    if k.kind == "int":
        return max(default + 1, int(k.low))
    if k.kind == "float":
        return default + 0.5
    if k.kind == "fraction":
        return 0.5 if default != 0.5 else 0.25
    if k.kind == "speed":
        return 2.5 if default != 2.5 else 1.5
    if k.kind == "bool":
        return not default
    raise AssertionError(f"option {name}: kind {k.kind!r} is new to this test; give it a probe value")


def test_every_user_facing_option_has_a_flag_and_a_control_that_reach_options(
    pipe, tiny_model, keyframe_pngs, monkeypatch, capsys
):
    """Each Options field the schema offers to users (not api_only) is a `generate` flag and a page control,
    and a non-default value set through either front-end arrives in Options unchanged."""
    from dataclasses import fields, replace

    import typer

    import latentvideo.pipeline
    from latentvideo.apps import cli
    from latentvideo.cli import main
    from latentvideo.options import Options, schema

    offered = schema(include_api_only=False)
    assert offered and set(offered) < {f.name for f in fields(Options)}  # some fields are API-only
    defaults = pipe.default_options()
    probe = {n: _probe_value(n, k, getattr(defaults, n)) for n, k in offered.items()}
    expected = replace(defaults, **probe)
    assert all(getattr(expected, n) != getattr(defaults, n) for n in offered)

    # the command line: one flag per option, and the values reach the pipeline call of `generate`
    command = typer.main.get_command(cli.app).commands["generate"]
    flags = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
    for name in offered:
        assert "--" + name.replace("_", "-") in flags, f"no generate flag for option {name}"
    for name in set(schema()) - set(offered):
        assert "--" + name.replace("_", "-") not in flags, f"API-only option {name} has a flag"
    args = []
    for name, v in probe.items():
        flag = "--" + name.replace("_", "-")
        args += [flag if v else "--no-" + flag[2:]] if offered[name].kind == "bool" else [flag, str(v)]
    seen = {}

    class Recorder:  # the real model's shape; records the options `generate` passes, then stops
        channels, resolution = pipe.channels, pipe.resolution

        def __call__(self, keyframes, times, frames, **options):
            seen.update(options)
            raise LatentVideoError("recorded")

    monkeypatch.setattr(latentvideo.pipeline, "load_pipeline", lambda model, device: Recorder())
    code = main(["generate", *map(str, keyframe_pngs), "--out", "unused.npy", "--model", str(tiny_model), *args])
    assert code == 2 and "error: recorded" in capsys.readouterr().err
    assert pipe.options(**seen) == expected

    # the page: one control per option, showing the model's default; the form's values reach the request
    controls = web_models.option_controls(_FakeGradio(), pipe)
    assert list(controls) == list(offered)
    for name, c in controls.items():
        shown = getattr(defaults, name)
        shown = (shown or 0) if offered[name].kind in ("fraction", "speed") else shown  # 0: off / unknown
        assert c.elem_id == name.replace("_", "-") and c.value == shown, name
    names = list(offered)  # the order build_app passes the controls in
    form = [probe[n] for n in names]  # what a visitor set
    request = web_generate.check_request(pipe, keyframe_pngs, None, 20, **web_models.control_values(form, names))
    assert pipe.options(**request.opts) == expected


# ---------------------------------------------------------------- the model picker


def test_models_lists_the_shipped_models_and_a_started_folder(shipped, tiny_model, pipe):
    from latentvideo.pipeline import DEFAULT_MODEL, shipped_models

    assert shipped_models() == ["colour-64", "gray-64"]  # folders holding generator/
    models = web_models.Models(tiny_model, "cpu")
    assert models.names == ["colour-64", "gray-64", str(tiny_model)] and models.default == str(tiny_model)
    for start in ("gray-64", shipped / "gray-64"):  # a shipped model, by name or by its folder: listed once
        models = web_models.Models(start, "cpu")
        assert models.names == ["colour-64", "gray-64"] and models.default == "gray-64"
    assert web_models.Models().default == DEFAULT_MODEL  # no --model: the shipped default
    started = web_models.Models(pipe=pipe)  # a pipeline handed over (build_app(pipe)): listed, not reloaded
    assert (
        started.default == web_models.Models.CUSTOM
        and started.get() is pipe
        and started.names[-1] == web_models.Models.CUSTOM
    )


def test_models_load_each_model_once_and_refuse_unknown_names(shipped, tiny_model, pipe, monkeypatch):
    import threading

    import latentvideo.pipeline

    loads = []

    def load(path, device):
        loads.append(Path(path).name)
        time.sleep(0.2)  # a slow load: every thread asks while it runs
        return pipe

    monkeypatch.setattr(latentvideo.pipeline, "load_pipeline", load)
    models = web_models.Models(tiny_model, "cpu")
    assert loads == []  # nothing loads until asked for
    threads = [threading.Thread(target=models.get, args=("colour-64",)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert models.get("colour-64") is pipe and loads == ["colour-64"]
    models.get()
    models.get(None)
    assert loads == ["colour-64", tiny_model.name]  # the started model, once
    for bad in ("moving-shapes-999", str(shipped / "gray-64"), "../gray-64", 3):  # names only, never folders
        with pytest.raises(LatentVideoError) as e:
            models.get(bad)
        text = web_generate.error_markdown(e.value)
        assert f"unknown model {bad!r}; this server offers colour-64, gray-64" in text and "\n" not in text
    assert len(loads) == 2


def test_each_model_gets_its_defaults_and_uploads_in_its_channels(shipped, tiny_model, keyframe_pngs, tmp_path):
    models = web_models.Models(tiny_model, "cpu")
    gray, colour = models.get("gray-64"), models.get("colour-64")
    assert (gray.channels, colour.channels) == (1, 3)
    assert "colour-64: 64x64 colour" == models.describe("colour-64")
    # the controls show each model's own defaults: no P-NET -> L-BFGS, no critic -> no correction (greyed out)
    assert web_models.model_defaults(models, "gray-64")["method"] == "pnet+lbfgs"
    assert web_models.model_defaults(models, "colour-64")["method"] == "lbfgs"
    assert web_models.model_defaults(models, "colour-64")["critic"] == "off"
    assert web_models.control_state(colour, "method")["choices"] == ["lbfgs", "scipy"]
    assert web_models.control_state(colour, "critic_steps")["interactive"] is False
    assert web_models.control_state(gray, "critic_steps")["interactive"] is True
    controls = web_models.option_controls(_FakeGradio(), colour)
    assert controls["method"].value == "lbfgs" and controls["critic"].interactive is False
    # gray uploads become RGB for the colour model; RGB uploads gray for the gray one
    r = web_generate.check_request(colour, keyframe_pngs, None, 12)
    assert r.keyframes.shape == (3, 3, 64, 64) and torch.equal(r.keyframes[:, 0], r.keyframes[:, 2])
    rgb = []
    for i, c in enumerate([(255, 0, 0), (0, 0, 255)]):
        rgb.append(tmp_path / f"rgb{i}.png")
        Image.new("RGB", (64, 64), c).save(rgb[-1])
    assert web_generate.check_request(gray, rgb, None, 12).keyframes.shape == (2, 1, 64, 64)
    result = web_generate.run_generation(
        colour, keyframe_pngs, None, 12, lbfgs_steps=2, motion_prior="off", out_dir=tmp_path
    )
    assert result["frames"].shape == (12, 64, 64, 3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(frames=1), "between 2 and"),
        (dict(frames=web_generate.MAX_WEB_FRAMES + 1), "between 2 and"),
        (dict(degree=3, path="line"), "degree 3 needs more than 3 keyframes"),
        (dict(path="spline"), "unknown path"),
        (dict(pca=1.5), "pca"),
        (dict(method="magic"), "unknown method"),
        (dict(times="0,5"), "2 keyframe times for 3 keyframes"),
        (dict(times="9,5,0"), "increasing"),
        (dict(critic_step_size=float("nan")), "critic"),
        (dict(motion_prior="wave"), "unknown motion_prior"),
        (dict(motion_speed=-2), "motion_speed"),
        (dict(motion_steps=-1), "motion_steps"),
    ],
)
def test_run_generation_rejects_bad_settings(pipe, keyframe_pngs, tmp_path, kwargs, message):
    with pytest.raises(LatentVideoError, match=message):
        web_generate.run_generation(pipe, keyframe_pngs, **{"out_dir": tmp_path, **kwargs})
    assert not any(tmp_path.iterdir())  # failed before writing anything


def test_serve_without_gradio_says_what_to_install(monkeypatch, tiny_model, capsys):
    from latentvideo.cli import main

    for k in [*web.OFFLINE_ENV, "GRADIO_TEMP_DIR"]:  # restored after the test
        monkeypatch.setenv(k, os.environ.get(k, ""))
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio -> ImportError
    assert main(["serve", "--model", str(tiny_model)]) == 2
    assert "pip install 'latentvideo[web]'" in capsys.readouterr().err
    assert main(["serve", "--port", "70000"]) == 2
    assert "--port must be between 1 and 65535" in capsys.readouterr().err
    assert main(["serve", "--concurrency", "0"]) == 2
    assert "--concurrency must be between 1 and" in capsys.readouterr().err
    assert main(["serve", "--max-queue", "-1"]) == 2
    assert "--max-queue must be between 0 and" in capsys.readouterr().err


# ---------------------------------------------------------------- the page in a browser


def _need(what: str):
    if os.environ.get("LATENTVIDEO_SKIP_WEB") == "1":
        pytest.skip(f"{what} (LATENTVIDEO_SKIP_WEB=1)")
    pytest.fail(f"{what}; CI installs it (.ci/run). Set LATENTVIDEO_SKIP_WEB=1 to skip the browser test.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"latentvideo serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"latentvideo serve did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def _text(page, selector: str) -> str:
    return page.inner_text(selector)


def test_browser_upload_generate_sample_and_bad_file(tmp_path, tiny_model, keyframe_pngs):
    if not CHROMIUM.exists():
        _need(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _need("playwright is not installed (pip install -e '.[dev]')")
    try:
        import gradio  # noqa: F401
    except ImportError:
        _need("gradio is not installed (pip install -e '.[dev]')")

    from latentvideo.pipeline import shipped_models

    model = os.environ.get("LATENTVIDEO_WEB_MODEL") or str(tiny_model)
    port = _free_port()
    url = f"http://127.0.0.1:{port}/"
    exe = Path(sys.executable).with_name("latentvideo")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "latentvideo.cli"]
    log = tmp_path / "serve.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [*cmd, "serve", "--port", str(port), "--model", model, "--device", "cpu"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
    outside = []  # every request the page makes that does not go to our server
    try:
        _wait_until_up(url, proc, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                page.on(
                    "request",
                    lambda r: None if r.url.startswith((url, "data:", "blob:")) else outside.append(r.url),
                )
                page.set_default_timeout(30_000)
                page.goto(url)
                upload = page.locator("#keyframes input[type=file]")

                # three keyframe images -> generate -> a video and one error per keyframe
                upload.set_input_files([str(p) for p in keyframe_pngs])
                page.wait_for_function("document.querySelector('#status').innerText.includes('3 keyframes ready')")
                page.click("#generate")
                page.wait_for_selector("#clip video")
                page.wait_for_function("document.querySelector('#report').innerText.includes('keyframe 2: MSE')")
                report = _text(page, "#report")
                for i in range(3):
                    assert re.search(rf"keyframe {i}: MSE \d+\.\d{{4}}", report), report
                assert "Seconds per stage" in report
                assert len(re.findall(r"MSE \d", _text(page, "#gallery"))) == 3  # a caption under each reconstruction
                downloads = _text(page, "#downloads").replace("\n", "")
                for name in ("clip.gif", "clip.mp4", "clip.npy", "contact_sheet.png"):
                    assert name in downloads, downloads
                page.wait_for_timeout(500)  # let the video show a frame
                page.screenshot(path=str(tmp_path / "web-upload.png"), full_page=True)

                # a held-out test sequence: generated and ground truth side by side
                page.click("#sample")
                page.wait_for_selector("#truth video")
                page.wait_for_function("document.querySelector('#status').innerText.includes('Held-out')")
                assert "keyframe 2: MSE" in _text(page, "#report")
                page.wait_for_timeout(500)
                page.screenshot(path=str(tmp_path / "web-sample.png"), full_page=True)
                page.locator("#motion-prior input[value=bounce]").check()  # with the motion prior, a known speed
                page.locator("#motion-speed input").fill("3.6")
                page.click("#generate")  # the same sampled keyframes again: the truth stays beside the clip
                page.wait_for_function("document.querySelector('#status').innerText.includes('Done')")
                assert page.locator("#truth video").count() == 1

                # the model picker lists the shipped models beside --model; another one resets the settings
                # to its defaults and renders the next request (skipped when the shipped model is --model)
                page.click("#model input")
                listed = [t.replace("✓", "").strip() for t in page.get_by_role("option").all_inner_texts()]
                started = web_models.Models(model)  # the server's list, in-process (nothing loads)
                assert listed == started.names and set(shipped_models()) <= set(listed), listed
                others = [n for n in listed if n != started.default]
                if others:
                    page.get_by_role("option", name=others[0], exact=False).click()
                    picked = f"document.querySelector('#status').innerText.includes('Model {others[0]}')"
                    page.wait_for_function(picked)
                    assert page.locator("#motion-speed input").input_value() == "0"  # 3.6 above: a default again
                    page.click("#sample")
                    page.wait_for_function(
                        f"document.querySelector('#status').innerText.includes('done with {others[0]}')",
                        timeout=180_000,
                    )
                    assert "keyframe 2: MSE" in _text(page, "#report")

                # a text file named .png: a message on the page, and the server lives on
                upload.set_input_files(str(_fake_png(tmp_path)))
                page.wait_for_function("document.querySelector('#status').innerText.includes('Error')")
                status = _text(page, "#status")
                assert "notes.png" in status and "cannot read image" in status, status
                page.screenshot(path=str(tmp_path / "web-error.png"), full_page=True)
            finally:
                browser.close()
        assert proc.poll() is None, log.read_text()
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
        assert not outside, f"the page called out: {outside}"
    finally:
        proc.terminate()  # SIGTERM: serve closes like on Ctrl-C and removes its temp files
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, log.read_text()
