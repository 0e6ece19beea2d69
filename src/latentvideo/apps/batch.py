"""Resumable, fault-tolerant batch rendering of a manifest CSV (`latentvideo generate --manifest`).

Columns: `keyframes` (paths joined by ';', relative to the manifest's folder unless absolute), `times`
(optional, ',' or ';' separated), `out` (relative to `out_dir`, else to the manifest's folder).

Batches. A clip may depend (in floats) on the rows batched with it, so a batch is always the same block
of `batch_rows` consecutive rows (1..b, b+1..2b, ...): a block with any good row not done is rendered
with all its good rows, and only the rows not done are written. Outputs are byte for byte those of one
uninterrupted run, in one process or many, for the same set of good rows (a row failed under
on_error="skip" leaves its block with the good rows only). Rank r (RANK / WORLD_SIZE unless given)
takes blocks r, r + world, ...; every rank parses every row, but reads and renders only its blocks.

Resuming. Each written clip appends a line to `.latentvideo-journal.rank<r>.jsonl` in the output
folder (`out_dir`, else the manifest's): the output's absolute path, its sha256 and a key digesting all
its bytes depend on (model weights, device type, frames, fps, resize, options; times and keyframe file
bytes of every good row of its block, and its place there). A row is done only if its output exists,
matches the sha256 and the key is unchanged, so an edited row or keyframe, another model, or an edit
in its block renders it again. A journal rather than a sidecar per output: one file per rank instead of
a hidden file per clip, one fsync'd append instead of a create-fsync-rename. Ranks never share a file;
entries check themselves, so every rank reads all journals (a resume may use another world size) and a
torn or stale line is harmless. A clip is written atomically (`fileio.atomic_path`) before its line is
appended (one whole-line write, then fsync); a kill in between renders it again. At start a rank
removes the temporaries that a killed run left beside its own outputs.

Errors. on_error="stop": the first bad row raises a `LatentVideoError` before anything is rendered.
on_error="skip": a bad row (missing or unreadable keyframe, wrong size without `resize`, too few
keyframes, bad times, a bad or duplicate output) is reported through `echo`, the others are rendered,
and a `LatentVideoError` summing up (`.report` is the `BatchReport`) is raised at the end. Bad options
or an unreadable manifest always stop at once.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import LatentVideoError
from ..fileio import check_writable
from ..pipeline import MAX_FRAMES, prepare_keyframes
from ..render import check_output_path, to_uint8, write_clip

JOURNAL_PREFIX = ".latentvideo-journal.rank"  # + "<rank>.jsonl"
_TEMP = re.compile(r"^\.(.+)\.[a-z0-9_]{8}\.tmp(\.[^./]+)?$")  # fileio.atomic_path's mkstemp names


@dataclass
class BatchReport:
    total: int = 0  # rows in the manifest
    assigned: int = 0  # rows in this rank's batches
    rendered: int = 0  # clips written by this call
    skipped_done: int = 0  # rows already done by an earlier run
    failed: list[tuple[int, str]] = field(default_factory=list)  # (row number from 1, reason), this rank's


@dataclass
class _Row:
    index: int  # from 0; messages say index + 1
    paths: list[Path]
    times: list[float] | None
    target: Path
    digest: str = ""  # of the row's inputs, once its keyframes are read
    key: str = ""  # of the row in its block: what its output bytes depend on


def run_manifest(
    pipe,
    manifest: Path,
    out_dir: Path | None,
    frames: int,
    overrides: dict,
    *,
    fps: float = 10,
    resize: bool = False,
    batch_rows: int = 16,
    on_error: str = "stop",
    rank: int | None = None,
    world: int | None = None,
    echo: Callable[[str], object] = print,
) -> BatchReport:
    """Render the rows of `manifest` that are not done yet (see the module docstring); returns what was done."""
    if on_error not in ("stop", "skip"):
        raise LatentVideoError(f"on_error must be 'stop' or 'skip', got {on_error!r}")
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise LatentVideoError(f"--batch-rows must be at least 1, got {batch_rows!r}")
    if not 2 <= frames <= MAX_FRAMES:
        raise LatentVideoError(f"--frames must be between 2 and {MAX_FRAMES}, got {frames}")
    if not fps > 0:
        raise LatentVideoError(f"--fps must be positive, got {fps}")
    rank, world = _rank_world(rank, world)
    opts = pipe.options(**overrides)  # every rank checks the options, even one without rows
    manifest = Path(manifest)
    table = read_manifest(manifest)
    base = Path(out_dir) if out_dir is not None else manifest.parent
    n = len(table)
    blocks = [range(b, min(b + batch_rows, n)) for b in range(0, n, batch_rows)][rank::world]
    mine = {i for block in blocks for i in block}
    report = BatchReport(total=n, assigned=len(mine))
    rows: list[_Row | None] = [None] * n

    def fail(i: int, reason: str) -> None:
        rows[i] = None
        if on_error == "stop":
            raise LatentVideoError(f"row {i + 1} of {manifest}: {reason}")
        if i in mine:
            report.failed.append((i + 1, reason))
            echo(f"[rank {rank}] row {i + 1}: failed, skipped: {reason}")

    for i, cells in enumerate(table):  # 1. every row's text, on every rank
        try:
            rows[i] = _parse_row(i, cells, manifest, base)
        except LatentVideoError as e:
            fail(i, str(e))
    keyframes = {os.path.abspath(p) for row in rows if row for p in row.paths}
    seen: dict[str, int] = {}
    for row in [row for row in rows if row]:
        try:
            target = os.path.abspath(row.target)
            if seen.setdefault(target, row.index) != row.index:
                raise LatentVideoError(f"writes the same output twice: {row.target} (row {seen[target] + 1} too)")
            if target in keyframes:
                raise LatentVideoError(f"its output {row.target} is a keyframe in this manifest")
            check_output_path(row.target)  # makes its folder
        except (OSError, ValueError) as e:
            fail(row.index, f"bad output path {str(row.target)!r}: {e}")
        except LatentVideoError as e:
            fail(row.index, str(e))
    run = _sha([frames, fps, bool(resize), dataclasses.asdict(opts), _model_digest(pipe)])
    for i in sorted(mine):  # 2. this rank's keyframes: read, decoded and checked before any rendering
        if (row := rows[i]) is not None:
            try:
                row.digest = _sha([run, row.times, [_file_sha(p) for p in row.paths]])
                keys = prepare_keyframes([str(p) for p in row.paths], pipe.channels, pipe.resolution, resize)
                pipe.check_inputs([keys], [row.times], frames, opts)
            except LatentVideoError as e:
                fail(i, str(e))
    journal = _Journal(base, rank)
    todo = []
    for block in blocks:  # 3. what is done
        good = [rows[i] for i in block if rows[i] is not None]
        block_digest = _sha([r.digest for r in good])
        for pos, r in enumerate(good):
            r.key = _sha([block_digest, pos])
        pending = {r.index for r in good if not journal.done(r)}
        report.skipped_done += len(good) - len(pending)
        if pending:
            todo.append((good, pending))
    if todo:
        check_writable(journal.path)
    if report.skipped_done:
        echo(f"[rank {rank}] {report.skipped_done} row(s) already done, skipped")
    _remove_stale_temps([rows[i].target for i in mine if rows[i] is not None])
    for good, pending in todo:  # 4. render whole blocks, write the rows not done
        sets = [prepare_keyframes([str(p) for p in r.paths], pipe.channels, pipe.resolution, resize) for r in good]
        clips = pipe.generate_many(sets, [r.times for r in good], frames, **overrides)
        for r, clip in zip(good, clips):
            if r.index in pending:
                write_clip(r.target, to_uint8(clip.frames), fps=fps, keyframes=[int(round(t)) for t in clip.times])
                journal.record(r)
                report.rendered += 1
                errs = ", ".join(f"{e:.4f}" for e in clip.keyframe_errors.tolist())
                echo(f"[rank {rank}] row {r.index + 1}: wrote {r.target}  (keyframe MSE {errs})")
    if report.failed:
        numbers = [str(k) for k, _ in report.failed]
        listed = ", ".join(numbers[:20]) + (", ..." if len(numbers) > 20 else "")
        where = f" (rank {rank} of {world})" if world > 1 else ""
        done = f", {report.skipped_done} already done" if report.skipped_done else ""
        err = LatentVideoError(
            f"{len(numbers)} of {report.assigned} rows failed (rows {listed}); {report.rendered} written{done}{where}"
        )
        err.report = report
        raise err
    return report


def read_manifest(manifest: Path) -> list[dict]:
    """The manifest's data rows as dicts (header names stripped); any problem is a LatentVideoError."""
    if not manifest.is_file():
        raise LatentVideoError(f"manifest not found: {manifest}")
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = [h.strip() for h in next(reader, [])]
            rows = [dict(zip(header, cells)) for cells in reader if cells]
    except UnicodeDecodeError as e:
        raise LatentVideoError(f"cannot read manifest {manifest}: not UTF-8 ({e.reason} at byte {e.start})") from None
    except (csv.Error, OSError) as e:
        raise LatentVideoError(f"cannot read manifest {manifest}: {e}") from None
    if not {"keyframes", "out"} <= set(header):
        raise LatentVideoError(f"{manifest} needs a header with columns keyframes, times (optional), out")
    if not rows:
        raise LatentVideoError(f"{manifest} has no rows")
    return rows


def _parse_row(i: int, cells: dict, manifest: Path, base: Path) -> _Row:
    paths = [Path(p.strip()) for p in (cells.get("keyframes") or "").split(";") if p.strip()]
    if len(paths) < 2:
        raise LatentVideoError(f"need at least 2 keyframes, got {len(paths)}")
    out = (cells.get("out") or "").strip()
    if not out:
        raise LatentVideoError("no output path")
    text = (cells.get("times") or "").replace(";", ",").strip()
    times = None
    if text:
        try:
            times = [float(v) for v in text.split(",")]
        except ValueError:
            raise LatentVideoError(f"times must be comma-separated numbers, got {text!r}") from None
    paths = [p if p.is_absolute() else manifest.parent / p for p in paths]
    return _Row(i, paths, times, Path(out) if Path(out).is_absolute() else base / out)


def _rank_world(rank, world) -> tuple[int, int]:
    env_rank, env_world = os.environ.get("RANK", "0"), os.environ.get("WORLD_SIZE", "1")
    try:
        rank = int(env_rank if rank is None else rank)
        world = int(env_world if world is None else world)
    except ValueError:
        raise LatentVideoError(f"bad torchrun environment: RANK={env_rank}, WORLD_SIZE={env_world}") from None
    if not 0 <= rank < world:
        raise LatentVideoError(f"bad torchrun environment: RANK={rank}, WORLD_SIZE={world}")
    return rank, world


def _sha(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha(path: Path) -> str:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        return h.hexdigest()
    except FileNotFoundError:
        raise LatentVideoError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise LatentVideoError(f"expected a file but got a directory: {path}") from None
    except (OSError, ValueError) as e:
        raise LatentVideoError(f"cannot read {str(path)!r}: {e}") from None


def _model_digest(pipe) -> str:
    """The weights (and module types) of every network the clips depend on, plus the device type."""
    h = hashlib.sha256(str(getattr(getattr(pipe, "device", None), "type", None)).encode())
    layout = getattr(pipe, "layout", None)
    h.update(repr(layout.to_dict() if hasattr(layout, "to_dict") else layout).encode())
    feature = getattr(getattr(pipe, "feature_fn", None), "__self__", None)
    for m in [getattr(pipe, name, None) for name in ("generator", "critic", "projector")] + [feature]:
        h.update(type(m).__qualname__.encode())
        if isinstance(m, torch.nn.Module):
            for name, t in m.state_dict().items():
                t = t.detach().cpu().contiguous().reshape(-1)
                h.update(f"{name}:{t.dtype}:{t.numel()}".encode())
                h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _remove_stale_temps(targets: list[Path]) -> None:
    """Delete atomic_path temporaries of these outputs left by a killed run (no other rank writes them)."""
    names: dict[Path, set[str]] = {}
    for t in targets:
        names.setdefault(t.parent, set()).add(t.name)
    for folder, own in names.items():
        for p in folder.iterdir() if folder.is_dir() else ():
            m = _TEMP.match(p.name)
            if m and m.group(1) in own and p.is_file():
                p.unlink(missing_ok=True)


class _Journal:
    """Reads every rank's journal in `folder`; appends this rank's finished rows to its own."""

    def __init__(self, folder: Path, rank: int):
        self.path = folder / f"{JOURNAL_PREFIX}{rank}.jsonl"
        self.entries: dict[str, dict] = {}
        for p in sorted(folder.glob(f"{JOURNAL_PREFIX}*.jsonl")) if folder.is_dir() else ():
            for line in p.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    e = json.loads(line)
                except ValueError:
                    continue  # a line torn by a crash
                if isinstance(e, dict) and all(isinstance(e.get(k), str) for k in ("out", "key", "sha256")):
                    self.entries[e["out"]] = e

    def done(self, row: _Row) -> bool:
        e = self.entries.get(os.path.abspath(row.target))
        if e is None or e["key"] != row.key or not row.target.is_file():
            return False
        try:
            return _file_sha(row.target) == e["sha256"]
        except LatentVideoError:
            return False

    def record(self, row: _Row) -> None:
        line = json.dumps({"out": os.path.abspath(row.target), "key": row.key, "sha256": _file_sha(row.target)})
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())  # one write of a whole line
            os.fsync(fd)
        finally:
            os.close(fd)
