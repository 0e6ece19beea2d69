"""Crash-safe training: a run SIGKILLed at any point (even halfway through writing a checkpoint)
resumes from its last complete checkpoint and ends with exactly the weights of an uninterrupted
run; a checkpoint write that fails (disk full) is reported and leaves the previous one intact."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import latentvideo.training.gan
from conftest import listing
from latentvideo.checkpoint import load_checkpoint
from latentvideo.cli import main
from latentvideo.fileio import _TEMP_NAME

CKPT = "checkpoint.safetensors"
DELAY = 1.0  # seconds each checkpoint write pauses between its temporary file and the rename


def _args(seq32: Path, steps: int = 8) -> list[str]:
    return [
        "--data",
        str(seq32),
        "--steps",
        str(steps),
        "--checkpoint-every",
        "2",
        "--width",
        "4",
        "--z-dim",
        "8",
        "--batch-size",
        "4",
        "--n-critic",
        "1",
        "--device",
        "cpu",
    ]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, seq32) -> Path:
    """The same run, uninterrupted."""
    run = tmp_path_factory.mktemp("reference") / "run"
    assert main(["train", "gan", "--out", str(run), *_args(seq32)]) == 0
    return run


def _temps(root: Path) -> list[str]:
    return [p for p in listing(root) if _TEMP_NAME.match(Path(p).name)]


def _checkpoint_temps(run: Path) -> set[str]:
    return {p.name for p in run.glob(f".{CKPT}.*.tmp*")} if run.is_dir() else set()


def _start_and_kill(tmp_path: Path, seq32: Path, kill_when) -> Path:
    """Start `train gan` in a real process, poll the run folder and SIGKILL it once `kill_when(run, seen)` holds;
    `seen` is every checkpoint temporary file name observed so far."""
    run = tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", LATENTVIDEO_CHECKPOINT_DELAY=str(DELAY))
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    log = tmp_path / "train.log"
    with open(log, "w") as err:
        cmd = [sys.executable, "-m", "latentvideo.cli", "train", "gan", "--out", str(run), *_args(seq32)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=err)
        seen: set[str] = set()
        deadline = time.monotonic() + 180
        try:
            while True:
                seen |= _checkpoint_temps(run)
                if kill_when(run, seen):
                    break
                assert proc.poll() is None, f"the run ended before the kill point:\n{log.read_text()[-2000:]}"
                assert time.monotonic() < deadline, "kill point never reached"
                time.sleep(0.005)
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return run


def _assert_nothing_corrupt(run: Path) -> None:
    """Every complete file of the killed run reads back (temporary files aside)."""
    for p in run.rglob("*"):
        if _TEMP_NAME.match(p.name) or not p.is_file():
            continue
        if p.suffix == ".safetensors":
            load_file(str(p))
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".png":
            with Image.open(p) as im:
                im.load()


def _assert_same_tensors(a: Path, b: Path) -> None:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{a.parent.name}/{a.name}: {k}"


# kill point -> (condition, the step of the last complete checkpoint then, a temporary file is left)
KILL_POINTS = {
    # halfway through writing the first checkpoint: nothing complete yet, the resume starts from step 0
    "during-first-checkpoint-write": (lambda run, seen: len(_checkpoint_temps(run)) == 1, None, True),
    # just after the step-2 checkpoint landed, while the generator/critic exports and samples are written
    "after-checkpoint-during-export": (lambda run, seen: (run / CKPT).exists(), 2, False),
    # halfway through writing the step-6 checkpoint: the step-4 one must survive
    "during-third-checkpoint-write": (lambda run, seen: len(seen) >= 3 and bool(_checkpoint_temps(run)), 4, True),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_then_resume_matches_an_uninterrupted_run(tmp_path, seq32, reference, monkeypatch, capsys, point):
    condition, last_step, temp_left = KILL_POINTS[point]
    run = _start_and_kill(tmp_path, seq32, condition)

    # the killed run: the last complete checkpoint is intact, only temporary files are half-written
    _assert_nothing_corrupt(run)
    if last_step is None:
        assert not (run / CKPT).exists()
    else:
        assert load_checkpoint(run / CKPT, {}, {})[1]["step"] == last_step
    if temp_left:  # killed mid-write: the half-written temporary file is there
        assert _checkpoint_temps(run)

    # resume in this process (no write delay), recording where it starts
    monkeypatch.delenv("LATENTVIDEO_CHECKPOINT_DELAY", raising=False)
    started = []
    real_load = latentvideo.training.gan.load_checkpoint

    def spy(*args, **kwargs):
        rng, meta = real_load(*args, **kwargs)
        started.append(meta["step"])
        return rng, meta

    monkeypatch.setattr(latentvideo.training.gan, "load_checkpoint", spy)
    code = main(["train", "gan", "--resume", str(run), "--device", "cpu"])
    _, err = capsys.readouterr()
    assert code == 0, err
    assert started == ([] if last_step is None else [last_step])
    if last_step is None:
        assert "starting from step 0" in err

    # the resumed run ends exactly where the uninterrupted one did, with nothing left over
    assert _temps(run) == []
    assert load_checkpoint(run / CKPT, {}, {})[1] == load_checkpoint(reference / CKPT, {}, {})[1]
    _assert_same_tensors(run / CKPT, reference / CKPT)
    for name in ("generator", "critic"):
        _assert_same_tensors(run / name / "model.safetensors", reference / name / "model.safetensors")
    final = "samples/step_0000008.png"
    assert (run / final).read_bytes() == (reference / final).read_bytes()
    rows = [json.loads(ln) for ln in (run / "stats.jsonl").read_text().splitlines()]
    ref_rows = [json.loads(ln) for ln in (reference / "stats.jsonl").read_text().splitlines()]
    assert [(r["step"], r["wdist"], r["gp"], r["loss_g"]) for r in rows] == [
        (r["step"], r["wdist"], r["gp"], r["loss_g"]) for r in ref_rows
    ]


@pytest.mark.parametrize("fail_in", ["save_file", "os.replace"])
def test_failed_checkpoint_write_is_reported_and_keeps_the_previous_one(tmp_path, seq32, monkeypatch, capsys, fail_in):
    run = tmp_path / "run"
    assert main(["train", "gan", "--out", str(run), *_args(seq32, steps=4), "--stop-after", "2"]) == 0
    capsys.readouterr()
    before = {p: (run / p).read_bytes() for p in listing(run) if (run / p).is_file()}
    assert load_checkpoint(run / CKPT, {}, {})[1]["step"] == 2

    disk_full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if fail_in == "save_file":
        import safetensors.torch

        real_save = safetensors.torch.save_file

        def save_file(tensors, filename, metadata=None):
            if Path(filename).name.startswith(f".{CKPT}."):
                Path(filename).write_bytes(b"half a checkpoint")  # some bytes made it to disk
                raise disk_full
            return real_save(tensors, filename, metadata=metadata)

        monkeypatch.setattr(safetensors.torch, "save_file", save_file)
    else:
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if Path(dst).name == CKPT:
                raise disk_full
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(os, "replace", replace)

    code = main(["train", "gan", "--resume", str(run), "--device", "cpu"])  # steps 3-4, then the checkpoint fails
    _, err = capsys.readouterr()
    assert code == 2, err
    line = err.strip().splitlines()[-1]  # after the progress bar
    assert line.startswith("error: cannot write") and CKPT in line and "No space left on device" in line, err
    assert "Traceback" not in err
    assert (run / CKPT).read_bytes() == before[CKPT]  # the step-2 checkpoint is intact
    assert load_checkpoint(run / CKPT, {}, {})[1]["step"] == 2
    assert _temps(run) == []  # the failed write cleaned up after itself
    for name in ("generator", "critic"):  # exports happen after the checkpoint: untouched
        for f in ("model.safetensors", "config.json"):
            assert (run / name / f).read_bytes() == before[f"{name}/{f}"]

    monkeypatch.undo()  # space again: the run resumes from step 2 and finishes
    assert main(["train", "gan", "--resume", str(run), "--device", "cpu"]) == 0
    assert load_checkpoint(run / CKPT, {}, {})[1]["step"] == 4
    assert _temps(run) == []
