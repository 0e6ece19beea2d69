"""examples/your_own_video.ipynb runs top to bottom (tiny settings) in a Jupyter kernel and draws its strip."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "your_own_video.ipynb"
BUDGET_S = 60  # the whole tiny run, kernel start included
KERNEL = "latentvideo-test"


def test_the_notebook_is_saved_clean():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)
    assert "LATENTVIDEO_NOTEBOOK_TINY" in code[0].source  # the settings cell comes first


def test_the_notebook_runs_tiny_and_writes_the_strip(tmp_path, monkeypatch):
    # a kernel spec of this interpreter (JUPYTER_PATH comes before any user-wide "python3" spec)
    spec = tmp_path / "jupyter" / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    for name, value in (("LATENTVIDEO_NOTEBOOK_TINY", "1"), ("OMP_NUM_THREADS", "1"), ("MKL_NUM_THREADS", "1")):
        monkeypatch.setenv(name, value)
    work = tmp_path / "work"
    work.mkdir()

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=BUDGET_S,  # per cell
        startup_timeout=BUDGET_S,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(work)}},  # the kernel's working directory
    )
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError on the first failing cell
    seconds = time.perf_counter() - t0

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert seconds < BUDGET_S, f"the tiny notebook took {seconds:.1f} s"
    assert any("tiny settings" in o.get("text", "") for o in outputs)
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 3  # frames, samples, strip

    strip = work / "strip.png"
    assert strip.is_file()
    sheet = Image.open(strip)
    assert sheet.mode == "RGB" and sheet.width > 20 * 32 and sheet.height > 2 * 32  # 20 frames, 2 rows, 32 px x2
    assert np.asarray(sheet).std() > 0
    assert (work / "clip.gif").is_file() and (work / "video.mp4").is_file()
    assert (work / "runs" / "your_own_video" / "projector" / "model.safetensors").is_file()
    cfg = json.loads((work / "runs" / "your_own_video" / "generator" / "config.json").read_text())
    assert cfg["arch"] == "objects-generator" and cfg["channels"] == 3 and cfg["background"] == 3
