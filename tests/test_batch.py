"""apps/batch.run_manifest: resumable (journal, SIGKILL), per-row errors (on_error), edits re-render,
and any manifest text gives a result or a LatentVideoError."""

from __future__ import annotations

import csv
import inspect
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import tiny_model_dir, write_png
from latentvideo.apps.batch import JOURNAL_PREFIX, BatchReport, run_manifest
from latentvideo.errors import LatentVideoError
from latentvideo.fileio import _TEMP_NAME
from latentvideo.pipeline import Pipeline

FAST = dict(method="lbfgs", lbfgs_steps=2, critic="off", motion_prior="off")
FRAMES = 6


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("m32"), 32)


def couple(pipe):
    """Make every clip depend on its whole batch (as a batched optimisation may, in floats), so that a
    batch formed other than as a fixed block of rows changes the bytes."""
    inner = pipe.generate_many

    def generate_many(sets, times_list, num_frames, **options):
        clips = inner(sets, times_list, num_frames, **options)
        shift = 0.3 * float(torch.stack([k.mean() for k in sets]).mean())
        for clip in clips:
            clip.frames = (clip.frames + shift).clamp(0, 1)
        return clips

    pipe.generate_many = generate_many
    return pipe


@pytest.fixture(scope="module")
def pipe(model) -> Pipeline:
    return couple(Pipeline.from_dir(model, "cpu"))


def _keys(folder: Path, n: int = 4, seed: int = 0) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    return [write_png(folder / f"k{i}.png", rng.integers(0, 256, (32, 32), dtype=np.uint8)).name for i in range(n)]


def _manifest(folder: Path, rows: list[tuple[str, str, str]]) -> Path:
    path = folder / "jobs.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["keyframes", "times", "out"])
        w.writerows(rows)
    return path


def _rows(keys: list[str], n: int = 8) -> list[tuple[str, str, str]]:
    """n rows over the keys, with and without times, .npy and .gif (in a subfolder) outputs."""
    rows = []
    for i in range(n):
        ks = [keys[(i + j) % len(keys)] for j in range(2 + i % 2)]
        times = "" if i % 4 < 2 else ("0,5" if len(ks) == 2 else "0;2;5")
        rows.append((";".join(ks), times, f"c{i}.npy" if i % 2 == 0 else f"sub/c{i}.gif"))
    return rows


def _run(pipe, manifest, out, **kw) -> BatchReport:
    return run_manifest(pipe, manifest, out, FRAMES, FAST, echo=lambda s: None, **kw)


def _outputs(out: Path) -> dict[str, bytes]:
    """Visible files under `out` (no journal, no atomic_path temporaries), by relative path."""
    return {
        str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")
    }


def _temps(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if _TEMP_NAME.match(p.name)]


def test_renders_all_then_skips_done(pipe, tmp_path):
    jobs = _manifest(tmp_path, _rows(_keys(tmp_path)))
    out = tmp_path / "out"
    report = _run(pipe, jobs, out, batch_rows=3)
    assert (report.total, report.rendered, report.skipped_done, report.failed) == (8, 8, 0, [])
    files = _outputs(out)
    assert len(files) == 8 and np.load(out / "c0.npy").shape == (FRAMES, 32, 32)
    assert [p.name for p in out.glob(JOURNAL_PREFIX + "*")] == [JOURNAL_PREFIX + "0.jsonl"]
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    lines = []
    report = run_manifest(pipe, jobs, out, FRAMES, FAST, batch_rows=3, echo=lines.append)
    assert (report.rendered, report.skipped_done) == (0, 8)
    assert lines == ["[rank 0] 8 row(s) already done, skipped"]
    assert _outputs(out) == files
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == stamps
    # a deleted output, or one changed on disk, is rendered again (to the same bytes)
    (out / "c0.npy").unlink()
    (out / "sub/c3.gif").write_bytes(b"GIF89a tampered")
    report = _run(pipe, jobs, out, batch_rows=3)
    assert (report.rendered, report.skipped_done) == (2, 6)
    assert _outputs(out) == files


def test_ranks_split_batches_and_share_journals(pipe, tmp_path):
    """Rank 1 of 2 renders its blocks; a later single process renders only the rest, to the same bytes."""
    jobs = _manifest(tmp_path, _rows(_keys(tmp_path)))
    ref = tmp_path / "ref"
    _run(pipe, jobs, ref, batch_rows=3)
    out = tmp_path / "out"
    report = _run(pipe, jobs, out, batch_rows=3, rank=1, world=2)
    assert (report.assigned, report.rendered) == (3, 3)  # block rows 4-6
    assert set(_outputs(out)) == {"sub/c3.gif", "c4.npy", "sub/c5.gif"}
    report = _run(pipe, jobs, out, batch_rows=3)  # world 1 reads rank 1's journal
    assert (report.rendered, report.skipped_done) == (5, 3)
    assert _outputs(out) == _outputs(ref)
    with pytest.raises(LatentVideoError, match="RANK=2"):
        _run(pipe, jobs, out, rank=2, world=2)


KILL_SCRIPT = (
    inspect.getsource(couple)
    + """
import json, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
import latentvideo.apps.batch as batch
from latentvideo.pipeline import Pipeline
model, jobs, out, frames, fast = sys.argv[1:]
pipe = couple(Pipeline.from_dir(model, "cpu"))
# time for the test's kill to land in each window: before a batch, between a clip and its journal line,
# between one row of a batch and the next
generate_many, record = pipe.generate_many, batch._Journal.record
pipe.generate_many = lambda *args, **kwargs: (time.sleep(0.3), generate_many(*args, **kwargs))[1]
batch._Journal.record = lambda self, row: (time.sleep(0.1), record(self, row))[1]
slow_echo = lambda s: time.sleep(0.1)
batch.run_manifest(pipe, Path(jobs), Path(out), int(frames), json.loads(fast), batch_rows=2, echo=slow_echo)
"""
)


def test_sigkill_then_resume_gives_the_same_bytes(pipe, model, tmp_path):
    jobs = _manifest(tmp_path, _rows(_keys(tmp_path)))
    ref = tmp_path / "ref"
    _run(pipe, jobs, ref, batch_rows=2)
    expected = _outputs(ref)
    _run(pipe, jobs, tmp_path / "ones", batch_rows=1)
    assert _outputs(tmp_path / "ones") != expected  # batches matter, so the check below has teeth
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for k in ("RANK", "WORLD_SIZE"):
        env.pop(k, None)
    rng = np.random.default_rng(7)
    # (outputs to wait for, then seconds): row 1 written but not journaled; row 3 journaled, row 4 not
    # written (a block half done); anywhere
    kills = [(1, rng.uniform(0, 0.06)), (3, rng.uniform(0.12, 0.18)), (int(rng.integers(1, 7)), rng.uniform(0, 0.25))]
    for attempt, (wait_for, delay) in enumerate(kills):
        out = tmp_path / f"out{attempt}"
        args = [sys.executable, "-c", KILL_SCRIPT, str(model), str(jobs), str(out), str(FRAMES), json.dumps(FAST)]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while len(_outputs(out) if out.exists() else {}) < wait_for:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the renderer made no progress"
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        partial = _outputs(out)
        assert wait_for <= len(partial) < len(expected), (wait_for, sorted(partial))
        assert all(expected[name] == data for name, data in partial.items())  # every visible file is whole
        stale = out / "sub" / ".c7.gif.k1ll3d_x.tmp.gif"  # as atomic_path names them; a kill mid-write leaves one
        stale.parent.mkdir(exist_ok=True)
        stale.write_bytes(b"GIF89a half")
        assert _TEMP_NAME.match(stale.name)
        report = _run(pipe, jobs, out, batch_rows=2)
        assert report.rendered + report.skipped_done == 8 and report.skipped_done >= len(partial) - 1
        assert _outputs(out) == expected
        assert _temps(out) == []
        assert {p.name for p in out.rglob("*") if p.is_file() and p.name.startswith(".")} == {
            JOURNAL_PREFIX + "0.jsonl"
        }


@pytest.mark.parametrize("bad", ["missing", "corrupt"])
def test_bad_row_skip_or_stop(pipe, tmp_path, bad):
    keys = _keys(tmp_path)
    rows = _rows(keys, 6)
    if bad == "missing":
        rows[2] = (f"{keys[0]};nowhere.png", "", "c2.npy")
    else:
        (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
        rows[2] = (f"{keys[0]};corrupt.png", "", "c2.npy")
    rows[4] = (f"{keys[0]};{keys[1]}", "0,99", "c4.npy")  # times past the last frame
    jobs = _manifest(tmp_path, rows)
    stopped = tmp_path / "stopped"
    with pytest.raises(
        LatentVideoError,
        match=r"^row 3 of .*jobs\.csv: " + ("file not found" if bad == "missing" else "cannot read image"),
    ):
        _run(pipe, jobs, stopped, batch_rows=2)
    assert not stopped.exists() or not [p for p in stopped.rglob("*") if p.is_file()]  # nothing written
    out = tmp_path / "out"
    lines = []
    with pytest.raises(LatentVideoError) as err:
        run_manifest(pipe, jobs, out, FRAMES, FAST, batch_rows=2, on_error="skip", echo=lines.append)
    assert str(err.value) == "2 of 6 rows failed (rows 3, 5); 4 written"
    assert [r for r, _ in err.value.report.failed] == [3, 5]
    assert [s.split(":")[0] for s in lines if "failed" in s] == ["[rank 0] row 3", "[rank 0] row 5"]
    assert set(_outputs(out)) == {"c0.npy", "sub/c1.gif", "sub/c3.gif", "sub/c5.gif"}
    # a rerun renders nothing new and fails the same rows again
    with pytest.raises(LatentVideoError, match=r"2 of 6 rows failed \(rows 3, 5\); 0 written, 4 already done"):
        _run(pipe, jobs, out, batch_rows=2, on_error="skip")
    # a block is its good rows: rows 1-2 as in a manifest without bad rows, rows 4 and 6 as if batched alone
    clean = tmp_path / "clean"
    good = [r if i not in (2, 4) else (f"{keys[2]};{keys[3]}", "", f"x{i}.npy") for i, r in enumerate(rows)]
    _run(pipe, _manifest(tmp_path, good), clean, batch_rows=2)
    alone = tmp_path / "alone"
    _run(pipe, _manifest(tmp_path, [rows[3], rows[5]]), alone, batch_rows=1)
    for name in ("c0.npy", "sub/c1.gif"):
        assert (clean / name).read_bytes() == (out / name).read_bytes(), name
    for name in ("sub/c3.gif", "sub/c5.gif"):
        assert (alone / name).read_bytes() == (out / name).read_bytes(), name


def test_edited_row_or_keyframe_renders_again(pipe, tmp_path):
    keys = _keys(tmp_path)
    rows = _rows(keys)
    jobs = _manifest(tmp_path, rows)
    out = tmp_path / "out"
    _run(pipe, jobs, out, batch_rows=2)
    before = _outputs(out)
    rows[2] = (rows[2][0], "0,4", rows[2][2])  # row 3: new times
    _manifest(tmp_path, rows)
    report = _run(pipe, jobs, out, batch_rows=2)
    assert (report.rendered, report.skipped_done) == (2, 6)  # its block, rows 3-4, is rendered and written
    after = _outputs(out)
    assert after["c2.npy"] != before["c2.npy"]
    assert {k for k in after if after[k] != before[k]} <= {"c2.npy", "sub/c3.gif"}
    fresh = tmp_path / "fresh"
    _run(pipe, jobs, fresh, batch_rows=2)
    assert _outputs(fresh) == after
    # a keyframe file with new pixels: every block that uses it renders again
    write_png(tmp_path / keys[3], np.zeros((32, 32), np.uint8))
    report = _run(pipe, jobs, out, batch_rows=2)
    assert report.rendered == 8  # every block has a row that uses k3
    fresh2 = tmp_path / "fresh2"
    _run(pipe, jobs, fresh2, batch_rows=2)
    assert _outputs(fresh2) == _outputs(out)


# ---------------------------------------------------------------- any manifest text


class _TinyG(torch.nn.Module):
    z_dim = 2

    def forward(self, z):
        return torch.zeros(len(z), 1, 8, 8) + 0 * z[:, :1, None, None]


class _FakePipe(Pipeline):
    """The real option and input checks, a trivial clip (the mean keyframe) instead of the optimisation."""

    def generate_many(self, keyframe_sets, times_list=None, num_frames=20, **options):
        opts = self.options(**options)
        sets, times_list = self.check_inputs(keyframe_sets, times_list, num_frames, opts)
        return [
            SimpleNamespace(
                frames=k.mean(0, keepdim=True).expand(num_frames, -1, -1, -1),
                times=t,
                keyframe_errors=torch.zeros(len(k)),
            )
            for k, t in zip(sets, times_list)
        ]


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fake")
    rng = np.random.default_rng(0)
    for name in ("k0.png", "k1.png", "sub dir/k 2.png", "é.png"):
        (folder / name).parent.mkdir(exist_ok=True)
        write_png(folder / name, rng.integers(0, 256, (8, 8), dtype=np.uint8))
    write_png(folder / "big.png", np.zeros((16, 16), np.uint8))
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "a dir").mkdir()
    return _FakePipe(_TinyG()), folder


GOOD_KEYS = ["k0.png", "k1.png", "{ABS}/k1.png", "sub dir/k 2.png", " é.png "]
BAD_KEYS = ["missing.png", "a;b.png", "corrupt.png", "big.png", "a dir", "", " ", "k0.png\x00", "{ABS}/../no/k0.png"]
GOOD_TIMES = ["", "", "0,5", "0;5", " 1 , 4 "]
BAD_TIMES = ["x", "5,0", "nan,1", "0, 9", "1e999,2", ";", "0,,3", "0,1,2,3,4,5,6", "0,2,5"]
BAD_OUTS = ["o3.avi", "", "a dir", "x\x00.npy", "k0.png/o.npy", "./o0.npy", "o", "/", "sub/../o1.npy"]
ODD_OUTS = ["{ABS}/abs.npy", "o 4.png", "../up.npy", "O0.npy", "é.npy", "sub/o.gif"]


@st.composite
def manifests(draw):
    """Bytes of a manifest CSV, mostly plausible, with bad cells, headers, quoting and encodings mixed in."""
    if draw(st.integers(0, 9)) == 0:  # free text now and then
        return draw(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
    header = ["keyframes", "times", "out"]
    if draw(st.integers(0, 4)) == 0:  # a shuffled, partial or padded header
        extra = ["extra", "Keyframes", " out ", "", "times", "keyframes"]
        header = draw(st.lists(st.sampled_from(header + extra), max_size=5))
    rows = []
    for i in range(draw(st.integers(0, 7))):
        bad = draw(st.integers(0, 4)) == 0
        keys = draw(st.lists(st.sampled_from(GOOD_KEYS + (BAD_KEYS if bad else [])), min_size=2, max_size=3))
        times = draw(st.sampled_from(GOOD_TIMES + (BAD_TIMES if bad else [])))
        out = draw(st.sampled_from([f"o{i}.npy", f"sub/o{i}.gif"] + ODD_OUTS + (BAD_OUTS if bad else [])))
        row = [";".join(keys), times, out]
        if draw(st.integers(0, 9)) == 0:  # a short, long or scrambled row
            row = draw(st.lists(st.sampled_from(row + ["", "x"]) | st.text(max_size=4), max_size=5))
        rows.append(row)
    buf = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    w = csv.writer(buf, quoting=quoting, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    w.writerow(header)
    w.writerows(rows)
    encoding = draw(st.sampled_from(["utf-8"] * 5 + ["utf-8-sig"] * 2 + ["latin-1", "utf-16"]))
    tail = draw(st.sampled_from([b""] * 6 + [b"\xff\xfe", b"\n\n", b'"unterminated', b"a,b\x00c"]))
    return buf.getvalue().encode(encoding, errors="replace") + tail


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=manifests(),
    on_error=st.sampled_from(["stop", "skip"]),
    batch_rows=st.integers(1, 3),
    split=st.sampled_from([(0, 1), (0, 2), (1, 2)]),
    own_out_dir=st.booleans(),
)
def test_any_manifest_text_gives_a_result_or_a_clean_error(fake, data, on_error, batch_rows, split, own_out_dir):
    pipe, keys = fake
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "w"
        shutil.copytree(keys, work)
        jobs = work / "jobs.csv"
        jobs.write_bytes(data.replace(b"{ABS}", str(work).encode()))
        out = work / "out" if own_out_dir else None
        kw = dict(batch_rows=batch_rows, on_error=on_error, rank=split[0], world=split[1], echo=lambda s: None)
        try:
            report = run_manifest(pipe, jobs, out, 6, {}, **kw)
        except LatentVideoError as e:
            report = getattr(e, "report", None)
            assert report is None or report.failed
        else:
            assert not report.failed and report.rendered + report.skipped_done == report.assigned
        if report is not None:  # a second run finds every written row done
            again = getattr(_rerun(pipe, jobs, out, kw), "rendered", 0)
            assert again == 0
        assert _temps(work) == []


def _rerun(pipe, jobs, out, kw):
    try:
        return run_manifest(pipe, jobs, out, 6, {}, **kw)
    except LatentVideoError as e:
        return getattr(e, "report", None)


def test_output_over_a_keyframe_is_refused(pipe, tmp_path):
    keys = _keys(tmp_path)
    jobs = _manifest(tmp_path, [(f"{keys[0]};{keys[1]}", "", "c.npy"), (f"{keys[2]};{keys[3]}", "", keys[0])])
    before = (tmp_path / keys[0]).read_bytes()
    with pytest.raises(LatentVideoError, match=r"^row 2 of .*: its output .*k0\.png is a keyframe"):
        _run(pipe, jobs, None)
    assert (tmp_path / keys[0]).read_bytes() == before and not (tmp_path / "c.npy").exists()
