"""Elastic training: under `torchrun --max-restarts=N` the restarted workers re-run `train gan --out RUN`
and continue from the run's last complete checkpoint, ending with exactly the weights of an
uninterrupted run; a restart that finds another run's files there refuses to touch them."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from conftest import listing
from latentvideo.checkpoint import load_checkpoint
from latentvideo.errors import LatentVideoError
from latentvideo.fileio import write_json
from latentvideo.models import load_model
from latentvideo.training.gan import train_gan

CKPT = "checkpoint.safetensors"


def _same_files(a: Path, b: Path) -> None:
    """The same tensors in two safetensors files."""
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{a}: {k}"


def _same_run(run: Path, reference: Path) -> None:
    """Final weights, optimizer moments, RNG states and exported models of two runs are equal."""
    _same_files(run / CKPT, reference / CKPT)
    meta, ref_meta = load_checkpoint(run / CKPT, {}, {})[1], load_checkpoint(reference / CKPT, {}, {})[1]
    meta.pop("elastic_run"), ref_meta.pop("elastic_run")  # the torchrun job id differs
    assert meta == ref_meta
    for name in ("generator", "critic"):
        m, ref = load_model(run / name).state_dict(), load_model(reference / name).state_dict()
        assert m.keys() == ref.keys()
        for k in m:
            assert torch.equal(m[k], ref[k]), f"{name}: {k}"


# ---------------------------------------------------------------- real torchrun, one worker killed


def _torchrun(torchrun: Path, cwd: Path, out: str, seq32: Path, **env) -> subprocess.Popen:
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "--max-restarts=3"]
    cmd += ["-m", "latentvideo.cli", "train", "gan", "--out", out, "--data", str(seq32), "--steps", "8"]
    cmd += ["--checkpoint-every", "3", "--batch-size", "4", "--width", "4", "--z-dim", "8", "--n-critic", "1"]
    cmd += ["--device", "cpu"]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TORCHELASTIC_", "LATENTVIDEO_FAULT_"))}
    base = {k: v for k, v in base.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env = {**base, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", **env}
    return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_torchrun_restart_after_a_killed_worker_matches_an_uninterrupted_run(tmp_path, torchrun, seq32):
    results = {}
    for name, env in (
        ("reference", {}),
        ("elastic", {"LATENTVIDEO_FAULT_AT_STEP": "5", "LATENTVIDEO_FAULT_RANK": "1"}),
    ):
        # elastic: rank 1 dies after step 5 (test-only hook in train_gan, first attempt only); the last
        # complete checkpoint is step 3's, as rank 0 cannot reach step 6's without rank 1
        proc = _torchrun(torchrun, tmp_path, name, seq32, **env)
        try:
            out, err = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert proc.returncode == 0, f"{name}:\n{out[-3000:]}\n{err[-3000:]}"
        results[name] = err

    err = results["elastic"]
    assert re.search(r"failed \(exitcode: 1\) local_rank: 1", err), err[-3000:]  # the worker really died
    assert re.search(r"torchrun restart \d: continuing elastic from step 3\n", err), err[-3000:]
    # the reference trains uninterrupted: no restart continued it before its last step (once in CI a worker failed
    # on its way out after step 8, and torchrun's restart then had nothing left to train)
    restarts = re.findall(r"torchrun restart \d: continuing reference from step (\d+)", results["reference"])
    assert all(int(s) == 8 for s in restarts), results["reference"][-3000:]
    run, ref = tmp_path / "elastic", tmp_path / "reference"
    assert load_checkpoint(run / CKPT, {}, {})[1]["step"] == 8
    _same_run(run, ref)
    final = "samples/step_0000008.png"
    assert (run / final).read_bytes() == (ref / final).read_bytes()
    rows, ref_rows = ([json.loads(ln) for ln in (r / "stats.jsonl").read_text().splitlines()] for r in (run, ref))
    assert [(r["step"], r["wdist"], r["loss_g"]) for r in rows] == [
        (r["step"], r["wdist"], r["loss_g"]) for r in ref_rows
    ]


# ---------------------------------------------------------------- the restart logic, in one process


@pytest.fixture
def single(monkeypatch):
    """One process, as torchrun's attempt `restart` of job `job` would see it."""
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LATENTVIDEO_FAULT_AT_STEP", "LATENTVIDEO_FAULT_RANK"):
        monkeypatch.delenv(k, raising=False)

    def attempt(restart: int, job: str = "job-1"):
        monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", str(restart))
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", job)

    return attempt


def test_restart_continues_from_the_last_checkpoint(tmp_path, tiny_config, single, capsys):
    reference = train_gan(tmp_path / "reference", tiny_config(steps=6, checkpoint_every=2), progress=False)
    single(0)
    run = tmp_path / "run"
    train_gan(run, tiny_config(steps=6, checkpoint_every=2), stop_after=3, progress=False)  # "killed" after 3
    with pytest.raises(LatentVideoError, match="already holds a run"):  # attempt 0: nothing changed
        train_gan(run, tiny_config(steps=6, checkpoint_every=2), progress=False)
    capsys.readouterr()
    single(1)
    train_gan(run, tiny_config(steps=6, checkpoint_every=2), progress=False)
    assert "torchrun restart 1: continuing" in capsys.readouterr().err
    _same_run(run, reference)


def test_restart_may_change_steps_only(tmp_path, tiny_config, single):
    reference = train_gan(tmp_path / "reference", tiny_config(steps=5), progress=False)
    single(0)
    run = tmp_path / "run"
    train_gan(run, tiny_config(steps=3), progress=False)
    single(2)
    before = {p: (run / p).read_bytes() for p in listing(run) if (run / p).is_file()}
    with pytest.raises(LatentVideoError, match="another config.json"):
        train_gan(run, tiny_config(steps=5, lr_g=1e-3), progress=False)
    assert {p: (run / p).read_bytes() for p in listing(run) if (run / p).is_file()} == before  # untouched
    train_gan(run, tiny_config(steps=5), progress=False)
    _same_run(run, reference)


def test_restart_before_any_checkpoint_starts_from_step_0(tmp_path, tiny_config, single, capsys):
    reference = train_gan(tmp_path / "reference", tiny_config(), progress=False)
    single(1)
    # the first attempt died after writing config.json, before its first checkpoint
    run = tmp_path / "run"
    (run / "samples").mkdir(parents=True)
    write_json(run / "config.json", dataclasses.asdict(tiny_config()))
    train_gan(run, tiny_config(), progress=False)
    assert "no checkpoint yet: starting from step 0" in capsys.readouterr().err
    _same_run(run, reference)
    # ... or before it wrote anything at all
    fresh = tmp_path / "fresh"
    train_gan(fresh, tiny_config(), progress=False)
    _same_run(fresh, reference)


def test_restart_leaves_another_jobs_run_alone(tmp_path, tiny_config, single):
    single(0, job="job-1")
    run = train_gan(tmp_path / "run", tiny_config(), progress=False)
    before = {p: (run / p).read_bytes() for p in listing(run) if (run / p).is_file()}
    single(1, job="job-2")  # job 2's first attempt failed with "already holds a run": its restart must not resume
    with pytest.raises(LatentVideoError, match="already holds a run"):
        train_gan(run, tiny_config(steps=5), progress=False)
    assert {p: (run / p).read_bytes() for p in listing(run) if (run / p).is_file()} == before
