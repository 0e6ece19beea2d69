"""Learning curves of GAN runs from their training sample grids.

`latentvideo train gan` writes samples/step_*.png every checkpoint: an 8x8 grid of EMA samples of the
same 64 latents (seed 1234) in every run, so runs with the same z_dim compare step for step. This prints,
per grid, the Frechet distance of its 64 samples to 2,000 train frames in the digit classifier's
features. 64 samples make it biased upwards: 64 real test frames score about 1,330 to 1,510.

usage: python scripts/sample_grid_frechet.py RUN [RUN ...]
"""

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from latentvideo.evaluation import metrics
from latentvideo.evaluation.bench import load_classifier
from latentvideo.evaluation.classifier import features
from latentvideo.frames import MovingMNISTFrames
from latentvideo.pipeline import PRETRAINED

TILE, PAD, ROWS = 64, 2, 8  # the grid: 8 x 8 tiles of 64 px with 2 px borders


def grid_tiles(path: Path) -> np.ndarray:  # uint8 [64, 1, 64, 64]
    a = np.asarray(Image.open(path).convert("L"))
    step = TILE + PAD
    tiles = [
        a[PAD + r * step : PAD + r * step + TILE, PAD + c * step : PAD + c * step + TILE]
        for r in range(ROWS)
        for c in range(ROWS)
    ]
    return np.stack(tiles)[:, None]


def main(runs: list[str]) -> None:
    torch.set_num_threads(1)
    clf = load_classifier(None, PRETRAINED)
    real = MovingMNISTFrames("train", 2, TILE).sample(np.random.default_rng(0), 2000)  # never test digits
    ref = metrics.feature_stats(features(clf, real))
    for run in runs:
        for path in sorted(Path(run, "samples").glob("step_*.png")):
            stats = metrics.feature_stats(features(clf, grid_tiles(path)))
            print(f"{run} {int(path.stem[5:])} {metrics.frechet_from_stats(*stats, *ref):.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
