"""Atomic file writes: every output goes to a temporary name in the same folder,
then `os.replace` moves it into place, so a crash never leaves half a file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import LatentVideoError


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when `path` cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise LatentVideoError(f"output path is an existing directory: {path}")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LatentVideoError(f"cannot create output folder {parent}: {e.strerror}") from None
    if not parent.is_dir():
        raise LatentVideoError(f"output folder is not a directory: {parent}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise LatentVideoError(f"output folder is not writable: {parent}")
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; rename it onto `path` on success.

    On any exception the temporary file is removed and `path` keeps its old content.
    """
    path = check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    except OSError as e:
        _raise_write_error(path, e)
        raise
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        _raise_write_error(path, e)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# a full disk or a read-only place is the user's to fix: report it as a LatentVideoError
_WRITE_ERRNOS = {
    errno.ENOSPC: "free some disk space or write elsewhere",
    errno.EDQUOT: "free some disk space or write elsewhere",
    errno.EFBIG: "the file system refuses files this large; write elsewhere",
    errno.EROFS: "write to another folder",
    errno.EACCES: "write to another folder",
    errno.EPERM: "write to another folder",
}


def _raise_write_error(path: Path, e: OSError) -> None:
    if e.errno in _WRITE_ERRNOS:
        raise LatentVideoError(f"cannot write {path}: {e.strerror or e}", hint=_WRITE_ERRNOS[e.errno]) from e


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporary files that writers killed mid-write (SIGKILL, power loss) left in
    `folder` (not its subfolders); returns what was removed. Call it only when no other process
    writes there."""
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        if _TEMP_NAME.match(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            removed.append(p)
    return removed


_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp(\.[^./]+)?$")  # what atomic_path's mkstemp names look like


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode())


def write_json(path: str | os.PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
