"""Shared fixtures. Everything is tiny: the machine has two cores and other work runs on it."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

TINY = dict(z_dim=8, width=4, batch_size=4, n_critic=1, checkpoint_every=100, log_every=1)


@pytest.fixture(scope="session")
def train_digits():
    """(images uint8 [4000, 28, 28], labels) of the train split, loaded once."""
    from latentvideo.data import load_digits

    return load_digits("train")


@pytest.fixture(scope="session")
def test_digits():
    from latentvideo.data import load_digits

    return load_digits("test")


@pytest.fixture(scope="session")
def seq32(tmp_path_factory, train_digits) -> Path:
    """A small Moving MNIST sequence file on a 32x32 canvas: uint8 [6, 4, 32, 32]."""
    from latentvideo.data import moving_mnist, write_sequences

    path = tmp_path_factory.mktemp("data") / "seq32.npy"
    write_sequences(path, moving_mnist(4, 6, 1, 32, seed=3, digit_source=train_digits).video)
    return path


@pytest.fixture(scope="session")
def shapes32_file(tmp_path_factory) -> Path:
    """A tiny Moving Shapes sequence file, 32x32 RGB, 3 sequences of 10 frames (each a shot with a plate):
    uint8 [10, 3, 32, 32, 3]."""
    from latentvideo.shapes import moving_shapes, write_moving_shapes

    path = tmp_path_factory.mktemp("shapes") / "shapes32.npy"
    write_moving_shapes(path, moving_shapes(3, 10, 32, split="train", seed=0, objects=(1, 1)))
    return path


@pytest.fixture
def tiny_config(seq32):
    """Factory for a GANConfig that trains in well under a second on one CPU thread."""
    from latentvideo.training.gan import GANConfig

    def make(**overrides):
        return GANConfig(**{"data": str(seq32), "steps": 3, **TINY, **overrides})

    return make


def write_png(path: Path, array: np.ndarray) -> Path:
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def rgb_folder(tmp_path) -> Path:
    """Six random 32x32 RGB PNGs (plus a file that is not an image, to be ignored)."""
    folder = tmp_path / "rgb"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        write_png(folder / f"img_{i}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="session")
def torchrun() -> Path:
    path = Path(sys.executable).with_name("torchrun")
    if not path.exists():
        pytest.skip("torchrun is not installed next to the interpreter")
    return path


# `train gan` flags for a one-step run of a tiny objects generator (CLI tests)
TINY_OBJECTS_CLI = ["--batch-size", "4", "--width", "4", "--n-critic", "1", "--device", "cpu", "--steps", "1"]
TINY_OBJECTS_CLI += ["--arch", "objects", "--objects", "1", "--appearance", "4", "--sprite", "12"]


def assert_cli_refuses(argv: list[str], capsys) -> str:
    """The CLI refuses `argv` as bad input: exit code 2 and a one-line error without a traceback. Returns it."""
    from latentvideo.cli import main

    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def listing(root: Path) -> set[str]:
    """Every path under `root`, relative, to check that a failed command left nothing behind."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def tiny_model_dir(
    path: Path,
    resolution: int = 32,
    projector: bool = False,
    seed: int = 0,
    mapping_layers: int = 0,
    objects: int = 0,
    channels: int = 1,
) -> Path:
    """A model folder with tiny untrained networks, seeded: a DCGAN generator (z_dim 8, width 4), or with
    objects > 0 an objects generator with that many slots (appearance 2, sprite 12 px, width 4; in colour
    with a background code of 2)."""
    from latentvideo.models import Critic, Generator, Projector, model_config, save_model
    from latentvideo.objects import ObjectGenerator

    torch.manual_seed(seed)
    if objects:
        background = 2 if channels == 3 else 0
        kw = dict(objects=objects, appearance=2, resolution=resolution, channels=channels, sprite=12, width=4)
        kw = dict(kw, background=background)
        G = ObjectGenerator(**kw)
        g_cfg = model_config(G, **kw)
    else:
        kw = dict(z_dim=8, resolution=resolution, channels=channels, width=4, mapping_layers=mapping_layers)
        G = Generator(**kw)
        g_cfg = model_config(G, **kw)
    C = Critic(resolution=resolution, channels=channels, width=4)
    save_model(G, path / "generator", g_cfg)
    save_model(C, path / "critic", model_config(C, resolution=resolution, channels=channels, width=4))
    if projector:
        P = Projector(z_dim=G.z_dim, resolution=resolution, channels=channels, width=4, hidden=16)
        cfg = model_config(P, z_dim=G.z_dim, resolution=resolution, channels=channels, width=4, hidden=16)
        save_model(P, path / "projector", cfg)
    return path
