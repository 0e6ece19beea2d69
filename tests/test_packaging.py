"""The wheel carries every shipped model file, so `pip install latentvideo` works offline."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ROOT / "src" / "latentvideo" / "pretrained"


def test_wheel_carries_every_shipped_model_file(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "License classifiers are deprecated" not in out.stderr and "project.license" not in out.stderr
    (wheel,) = tmp_path.glob("latentvideo-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = [p.relative_to(ROOT / "src").as_posix() for p in PRETRAINED.rglob("*") if p.is_file()]
    assert shipped and any(n.endswith("model.safetensors") for n in shipped)
    missing = [n for n in shipped if n not in names]
    assert not missing, missing
    for module in ("latentvideo/apps/cli.py", "latentvideo/training/gan.py", "latentvideo/objects.py"):
        assert module in names
