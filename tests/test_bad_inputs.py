"""Bad inputs through the real CLI: every case is one `error: ...` line on stderr, exit code 2,
no traceback, and nothing written (no output, no half-written temporary file).

Each case builds its inputs in an empty folder and returns the command line; the folder must look
the same afterwards. A few valid-but-unusual inputs (16-bit, alpha, RGB for a grayscale model)
are in the `ACCEPTED` table: they are converted, not refused.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import listing, write_png
from latentvideo.cli import main
from latentvideo.data import MAX_IMAGE_PIXELS, load_image
from latentvideo.errors import LatentVideoError
from latentvideo.models import Critic, Generator, Projector, model_config, save_model
from latentvideo.pipeline import MAX_FRAMES

FAST = ["--device", "cpu", "--lbfgs-steps", "2", "--critic-steps", "1"]
MARKER = "UNPICKLED"  # created by the planted pickles' payload if anything ever unpickles them


class _Payload:
    """Unpickling this opens (creates) a marker file: proof that a pickle was loaded."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A complete tiny model folder: generator/, critic/, projector/ (z 8, 32x32 grayscale, width 4)."""
    root = tmp_path_factory.mktemp("models") / "tiny"
    torch.manual_seed(0)
    cfg = dict(resolution=32, channels=1, width=4)
    G, C, P = Generator(8, **cfg), Critic(**cfg), Projector(8, **cfg, hidden=16)
    save_model(G, root / "generator", model_config(G, z_dim=8, **cfg))
    save_model(C, root / "critic", model_config(C, **cfg))
    save_model(P, root / "projector", model_config(P, z_dim=8, hidden=16, **cfg))
    return root


@dataclass
class Ctx:
    work: Path  # empty folder for the case's inputs and outputs
    model: Path  # the intact tiny model folder (never modified)
    monkeypatch: pytest.MonkeyPatch

    @property
    def out(self) -> str:
        return str(self.work / "clip.gif")

    def keys(self, n: int = 3, size: int = 32, mode: str = "L") -> list[str]:
        rng = np.random.default_rng(n)
        shape = (size, size) if mode == "L" else (size, size, 3)
        return [
            str(write_png(self.work / f"key{i}.png", rng.integers(0, 256, shape, dtype=np.uint8))) for i in range(n)
        ]

    def gen(self, *args, keys: list[str] | None = None) -> list[str]:
        """`generate` with three good keyframes (or `keys`), the tiny model and fast settings."""
        keys = self.keys() if keys is None else keys
        return ["generate", *keys, "--out", self.out, "--model", str(self.model), *FAST, *map(str, args)]

    def gen_with(self, bad: Path) -> list[str]:
        """`generate` with one bad keyframe among good ones."""
        good = self.keys(2)
        return self.gen(keys=[good[0], str(bad), good[1]])

    def broken_model(self, edit) -> str:
        """A copy of the tiny model with `edit(copy)` applied."""
        copy = self.work / "model"
        shutil.copytree(self.model, copy)
        edit(copy)
        return str(copy)

    def gen_model(self, model: str) -> list[str]:
        return ["generate", *self.keys(), "--out", self.out, "--model", model, *FAST]

    def latents(self, z: np.ndarray, name: str = "z.npz", key: str = "latents") -> str:
        path = self.work / name
        if path.suffix == ".npz":
            np.savez(path, **{key: z})
        else:
            np.save(path, z)
        return str(path)

    def render(self, latents: str, *extra, model: str | None = None) -> list[str]:
        out = ["--out", self.out] if "--out" not in extra else []
        return ["render", latents, *out, "--model", model or str(self.model), "--device", "cpu", *map(str, extra)]


def _pickle_file(c: Ctx, name: str) -> Path:
    path = c.work / name
    path.write_bytes(pickle.dumps({"state": _Payload(c.work / MARKER)}))
    return path


def _torch_saved_module(c: Ctx, name: str) -> Path:
    """A .pt made the usual way, torch.save(module), with the payload riding along."""
    G = Generator(8, 32, 1, 4)
    G.payload = _Payload(c.work / MARKER)
    torch.save(G, c.work / name)
    return c.work / name


def _edit_config(part: str, **changes):
    def edit(model: Path):
        cfg_file = model / part / "config.json"
        cfg_file.write_text(json.dumps({**json.loads(cfg_file.read_text()), **changes}))

    return edit


def _truncate_weights(model: Path):
    w = model / "generator" / "model.safetensors"
    w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])


def _not_writable(c: Ctx) -> list[str]:
    locked = c.work / "locked"
    locked.mkdir()
    real = os.access  # root may write anywhere, so make the folder look read-only to the check
    c.monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p) == locked else real(p, mode, **kw))
    return _replace_out(c.gen(), locked / "clip.gif")


def _replace_out(args: list[str], out: Path) -> list[str]:
    args = list(args)
    args[args.index("--out") + 1] = str(out)
    return args


def _existing_dir_out(c: Ctx) -> list[str]:
    (c.work / "taken.gif").mkdir()
    return _replace_out(c.gen(), c.work / "taken.gif")


def _png_bytes(size: tuple[int, int], mode: str = "L") -> bytes:
    import io

    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return buf.getvalue()


def _truncated_png() -> bytes:
    import io

    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]  # cut inside the pixel data


def _file(c: Ctx, name: str, data: bytes) -> Path:
    (c.work / name).write_bytes(data)
    return c.work / name


def _animated_gif(c: Ctx) -> Path:
    frames = [Image.fromarray(np.full((32, 32), v, np.uint8)) for v in (0, 128, 255)]
    frames[0].save(c.work / "anim.gif", save_all=True, append_images=frames[1:])
    return c.work / "anim.gif"


def _pickle_as_generator_dir(model: Path) -> None:
    shutil.rmtree(model / "generator")
    _torch_saved_module(Ctx(model.parent, model, None), "g.pt").rename(model / "generator")


def _pickle_named_safetensors(model: Path) -> None:
    _torch_saved_module(Ctx(model.parent, model, None), "g.pt").replace(model / "generator" / "model.safetensors")


def _pt_instead_of_safetensors(model: Path) -> None:
    (model / "critic" / "model.safetensors").unlink()
    _torch_saved_module(Ctx(model.parent, model, None), "c.pt").rename(model / "critic" / "model.pt")


def _mixed_folder(c: Ctx) -> str:
    folder = c.work / "mixed"
    folder.mkdir()
    write_png(folder / "a.png", np.zeros((32, 32), np.uint8))
    write_png(folder / "b.png", np.zeros((48, 40), np.uint8))
    return str(folder)


TRAIN = ["--steps", "1", "--width", "4", "--z-dim", "8", "--batch-size", "4", "--device", "cpu"]


def _train(c: Ctx, data: str) -> list[str]:
    return ["train", "gan", "--out", str(c.work / "run"), "--data", data, *TRAIN]


# (id, build(ctx) -> argv, keyword the error line must contain)
BAD = [
    # ---- keyframe files
    ("missing-keyframe", lambda c: c.gen_with(c.work / "nope.png"), "not found"),
    ("directory-as-keyframe", lambda c: c.gen_with(c.work), "directory"),
    ("zero-byte-image", lambda c: c.gen_with(_file(c, "empty.png", b"")), "empty"),
    ("truncated-png", lambda c: c.gen_with(_file(c, "cut.png", _truncated_png())), "cannot read image"),
    ("text-named-png", lambda c: c.gen_with(_file(c, "notes.png", b"just some text\n")), "cannot read image"),
    ("1x1-image", lambda c: c.gen_with(_file(c, "dot.png", _png_bytes((1, 1)))), "too small"),
    ("10000x10000-image", lambda c: c.gen_with(_file(c, "huge.png", _png_bytes((10_000, 10_000), "1"))), "too large"),
    ("above-own-cap-image", lambda c: c.gen_with(_file(c, "big.png", _png_bytes((5_000, 4_000), "1"))), "too large"),
    ("animated-gif-keyframe", lambda c: c.gen_with(_animated_gif(c)), "animated"),
    ("wrong-size-no-resize", lambda c: c.gen(keys=c.keys(3, size=40)), "--resize"),
    # ---- keyframes and times
    ("one-keyframe", lambda c: c.gen(keys=c.keys(1)), "at least 2"),
    ("duplicate-times", lambda c: c.gen("--times", "0,9,9"), "distinct"),
    ("unsorted-times", lambda c: c.gen("--times", "0,19,9"), "increasing"),
    ("non-numeric-times", lambda c: c.gen("--times", "0,nine,19"), "numbers"),
    ("nan-time", lambda c: c.gen("--times", "0,nan,19"), "finite"),
    ("times-count-mismatch", lambda c: c.gen("--times", "0,19"), "2 keyframe times for 3"),
    ("degree-too-high", lambda c: c.gen("--degree", "3", "--path", "line"), "--degree"),
    ("frames-0", lambda c: c.gen("--frames", "0"), "--frames"),
    ("frames-negative", lambda c: c.gen("--frames", "-5"), "--frames"),
    ("frames-above-cap", lambda c: c.gen("--frames", MAX_FRAMES + 1), "--frames"),
    ("pca-0", lambda c: c.gen("--pca", "0"), "--pca"),
    ("pca-1.5", lambda c: c.gen("--pca", "1.5"), "--pca"),
    ("pca-nan", lambda c: c.gen("--pca", "nan"), "--pca"),
    # ---- latents files (render)
    ("nan-latents", lambda c: c.render(c.latents(np.where(np.eye(4, 8) > 0, np.nan, 0.0))), "nan"),
    ("inf-latents-npy", lambda c: c.render(c.latents(np.full((4, 8), np.inf), "z.npy")), "infinite"),
    ("wrong-z-dim", lambda c: c.render(c.latents(np.zeros((4, 9), np.float32))), "9 dimensions"),
    ("latents-key-missing", lambda c: c.render(c.latents(np.zeros((4, 8)), key="z")), "'latents'"),
    ("latents-1d", lambda c: c.render(c.latents(np.zeros(8))), "[t, z_dim]"),
    ("latents-missing-file", lambda c: c.render(str(c.work / "nope.npz")), "not found"),
    ("latents-pickled", lambda c: c.render(c.latents(np.array([_Payload(c.work / MARKER)]), "z.npy")), "pickle"),
    ("latents-unknown-type", lambda c: c.render(str(_file(c, "z.txt", b"1 2 3"))), "file type"),
    # ---- model folders
    ("model-dir-missing", lambda c: c.gen_model(str(c.work / "nomodel")), "not found"),
    (
        "no-config-json",
        lambda c: c.gen_model(c.broken_model(lambda m: (m / "generator/config.json").unlink())),
        "config.json",
    ),
    (
        "generator-unknown-arch",
        lambda c: c.gen_model(c.broken_model(_edit_config("generator", arch="stylegan9"))),
        "stylegan9",
    ),
    (
        "critic-unknown-arch",
        lambda c: c.gen_model(c.broken_model(_edit_config("critic", arch="vit"))),
        "unknown architecture",
    ),
    ("bad-config-key", lambda c: c.gen_model(c.broken_model(_edit_config("critic", depth=3))), "bad config"),
    (
        "weights-shape-mismatch",
        lambda c: c.gen_model(c.broken_model(_edit_config("generator", width=8))),
        "do not match",
    ),
    ("truncated-safetensors", lambda c: c.gen_model(c.broken_model(_truncate_weights)), "truncated"),
    ("pickle-as-model", lambda c: c.gen_model(str(_pickle_file(c, "model.pkl"))), "pickle"),
    ("torch-save-pt-as-model", lambda c: c.gen_model(str(_torch_saved_module(c, "model.pt"))), "pickle"),
    (
        "pickle-as-render-model",
        lambda c: c.render(c.latents(np.zeros((2, 8))), model=str(_torch_saved_module(c, "g.pt"))),
        "pickle",
    ),
    ("pickle-as-generator-dir", lambda c: c.gen_model(c.broken_model(_pickle_as_generator_dir)), "pickle"),
    ("pickle-named-safetensors", lambda c: c.gen_model(c.broken_model(_pickle_named_safetensors)), "corrupt"),
    (
        "pt-instead-of-safetensors",
        lambda c: c.gen_model(c.broken_model(_pt_instead_of_safetensors)),
        "model.safetensors",
    ),
    # ---- outputs
    ("unknown-output-extension", lambda c: _replace_out(c.gen(), c.work / "clip.mp3"), "output format"),
    ("no-output-extension", lambda c: _replace_out(c.gen(), c.work / "clip"), "output format"),
    ("output-folder-not-writable", _not_writable, "not writable"),
    ("output-is-existing-directory", _existing_dir_out, "existing directory"),
    (
        "render-unknown-output",
        lambda c: c.render(c.latents(np.zeros((2, 8))), "--out", c.work / "z.webm"),
        "output format",
    ),
    (
        "invert-output-not-npz",
        lambda c: ["invert", *c.keys(2), "--out", str(c.work / "z.txt"), "--model", str(c.model)],
        "extension",
    ),
    # ---- training data and datasets
    ("train-missing-data", lambda c: _train(c, str(c.work / "frames.npy")), "not found"),
    ("train-unknown-dataset", lambda c: _train(c, "cifar"), "unknown dataset"),
    ("train-npy-wrong-dtype", lambda c: _train(c, c.latents(np.zeros((2, 2, 32, 32), np.float32), "f.npy")), "uint8"),
    ("train-mixed-image-sizes", lambda c: _train(c, _mixed_folder(c)), "mixed sizes"),
    # a file ffmpeg cannot decode: its whole log rides on the exception, and only one line may reach the user
    (
        "train-undecodable-video",
        lambda c: _train(c, str(_file(c, "clip.mp4", b"not a video" * 64))),
        "cannot read video",
    ),
    ("dataset-bad-extension", lambda c: ["dataset", "moving-mnist", "--out", str(c.work / "x.txt")], "extension"),
]


def _assert_clean_error(code: int, err: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err


@pytest.mark.parametrize("build, keyword", [pytest.param(b, k, id=i) for i, b, k in BAD])
def test_bad_input_is_one_clean_error(tmp_path, model_dir, monkeypatch, capsys, build, keyword):
    work = tmp_path / "work"
    work.mkdir()
    args = build(Ctx(work, model_dir, monkeypatch))
    before, model_before = listing(work), listing(model_dir)
    code = main(args)
    out, err = capsys.readouterr()
    _assert_clean_error(code, err)
    assert keyword.lower() in err.lower(), err
    assert listing(work) == before  # no output, no temporary file, no marker of an unpickled payload
    assert not (work / MARKER).exists()
    assert listing(model_dir) == model_before


def test_planted_pickles_would_run_their_payload(tmp_path):
    """Control for the pickle cases: loading these files the unsafe way does create the marker."""
    c = Ctx(tmp_path, tmp_path, None)
    pickle.loads(_pickle_file(c, "a.pkl").read_bytes())["state"].close()
    assert (tmp_path / MARKER).exists()
    (tmp_path / MARKER).unlink()
    torch.load(_torch_saved_module(c, "g.pt"), weights_only=False).payload.close()
    assert (tmp_path / MARKER).exists()
    (tmp_path / MARKER).unlink()
    np.load(c.latents(np.array([_Payload(tmp_path / MARKER)]), "z.npy"), allow_pickle=True)[0].close()
    assert (tmp_path / MARKER).exists()


def test_table_is_big_enough():
    assert len(BAD) >= 35 and len({i for i, _, _ in BAD}) == len(BAD)


# ---------------------------------------------------------------- in a real process


@pytest.mark.parametrize(
    "build, keyword",
    [
        pytest.param(
            lambda c: c.gen_with(_file(c, "huge.png", _png_bytes((10_000, 10_000), "1"))), "too large", id="huge"
        ),
        pytest.param(lambda c: c.gen_model(str(_torch_saved_module(c, "model.pt"))), "pickle", id="pickle-model"),
        pytest.param(lambda c: c.render(c.latents(np.full((3, 8), np.nan))), "nan", id="nan-latents"),
    ],
)
def test_bad_input_in_a_real_process(tmp_path, model_dir, monkeypatch, build, keyword):
    work = tmp_path / "work"
    work.mkdir()
    args = build(Ctx(work, model_dir, monkeypatch))
    before = listing(work)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-m", "latentvideo.cli", *args], cwd=work, env=env, capture_output=True, text=True, timeout=120
    )
    _assert_clean_error(proc.returncode, proc.stderr)
    assert keyword in proc.stderr.lower()
    assert listing(work) == before


def test_huge_image_is_refused_from_its_header(tmp_path, monkeypatch):
    """10000 x 10000 is refused from the PNG header: fast, and the pixels are never decoded."""
    from PIL import ImageFile

    path = tmp_path / "huge.png"
    path.write_bytes(_png_bytes((10_000, 10_000), "1"))
    assert 10_000 * 10_000 > MAX_IMAGE_PIXELS and path.stat().st_size < 100_000
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda im: decoded.append(im.size) or real_load(im))
    for cap in (MAX_IMAGE_PIXELS, 10**12):  # our cap, and Pillow's own decompression-bomb check
        t0 = time.perf_counter()
        with pytest.raises(LatentVideoError, match="too large"):
            load_image(path, max_pixels=cap)
        assert time.perf_counter() - t0 < 2.0
    assert decoded == []


# ---------------------------------------------------------------- accepted: converted, not refused


def _key_16bit(c: Ctx) -> list[str]:
    keys = c.keys(3)
    a = np.random.default_rng(1).integers(0, 65536, (32, 32), dtype=np.uint16)
    Image.fromarray(a).save(c.work / "deep.png")
    with Image.open(c.work / "deep.png") as im:
        assert im.mode.startswith("I")  # really 16-bit on disk
    return [keys[0], str(c.work / "deep.png"), keys[2]]


def _key_alpha(c: Ctx, mode: str) -> list[str]:
    keys = c.keys(3)
    channels = 4 if mode == "RGBA" else 2
    a = np.random.default_rng(2).integers(0, 256, (32, 32, channels), dtype=np.uint8)
    Image.fromarray(a, mode).save(c.work / "alpha.png")
    return [keys[0], str(c.work / "alpha.png"), keys[2]]


ACCEPTED = [
    ("16-bit-png", lambda c: c.gen(keys=_key_16bit(c))),
    ("rgba-png", lambda c: c.gen(keys=_key_alpha(c, "RGBA"))),
    ("gray-alpha-png", lambda c: c.gen(keys=_key_alpha(c, "LA"))),
    ("rgb-keyframes-for-gray-model", lambda c: c.gen(keys=c.keys(3, mode="RGB"))),
    ("wrong-size-with-resize", lambda c: c.gen("--resize", keys=c.keys(3, size=40))),
    ("render-latents-npz", lambda c: c.render(c.latents(np.random.default_rng(0).standard_normal((5, 8))))),
    ("render-latents-npy-float16", lambda c: c.render(c.latents(np.zeros((3, 8), np.float16), "z.npy"))),
]


@pytest.mark.parametrize("build", [pytest.param(b, id=i) for i, b in ACCEPTED])
def test_unusual_but_valid_input_is_accepted(tmp_path, model_dir, monkeypatch, capsys, build):
    work = tmp_path / "work"
    work.mkdir()
    args = build(Ctx(work, model_dir, monkeypatch))
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "wrote" in out
    with Image.open(work / "clip.gif") as im:
        assert im.size == (32, 32)  # identical neighbouring frames are merged, so no frame count
    assert not [p for p in listing(work) if Path(p).name.startswith(".")]  # no temporary files left


# ---------------------------------------------------------------- resource bounds

_RSS_SCRIPT = r"""
import json, resource, sys
import torch
torch.set_num_threads(1)
from latentvideo.models import Critic, Generator
from latentvideo.pipeline import Pipeline
from latentvideo.render import to_uint8, write_clip
frames, out, arch = int(sys.argv[1]), sys.argv[2], sys.argv[3]
torch.manual_seed(0)
G, C = (Generator(8, 32, 1, 4), Critic(32, 1, 4)) if arch == "tiny" else (Generator(), Critic())
pipe = Pipeline.from_modules(G, C)  # default options: L-BFGS inversion, pixel critic correction
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
clip = pipe(torch.rand(3, *pipe.frame_shape), None, frames, lbfgs_steps=10)
write_clip(out, to_uint8(clip.frames), keyframes=[round(t) for t in clip.times])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(json.dumps({"before_mb": before / 1024, "peak_mb": peak / 1024}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("arch, growth_mb", [("tiny", 100), ("default", 600)])
def test_peak_memory_of_a_long_clip_is_bounded(tmp_path, capsys, arch, growth_mb):
    """Peak RSS of a whole `generate` (inversion, path, render, critic correction, GIF) for 20 and
    1000 frames, each in a fresh process. Rendering and correction run in chunks, so 1000 frames
    cost little more than 20. Run with `pytest -m slow` to see the numbers."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    peaks = {}
    for frames in (20, 1000):
        out = tmp_path / f"clip{frames}.gif"
        proc = subprocess.run(
            [sys.executable, "-c", _RSS_SCRIPT, str(frames), str(out), arch],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        peaks[frames] = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out.is_file()
    with capsys.disabled():
        print(
            f"\npeak RSS ({arch} model, CPU): 20 frames {peaks[20]['peak_mb']:.0f} MB, "
            f"1000 frames {peaks[1000]['peak_mb']:.0f} MB "
            f"(after imports and model build: {peaks[20]['before_mb']:.0f} MB)"
        )
    assert peaks[1000]["peak_mb"] - peaks[20]["peak_mb"] < growth_mb
