"""A manifest of test clips for timing `latentvideo generate --manifest`: the keyframes (0, 9, 19) of N held-out
Moving MNIST test sequences (seed 0, the benchmark's) as PNGs, and jobs.csv naming them, one GIF out per row.

usage: python scripts/make_manifest.py N FOLDER
       time latentvideo generate --manifest FOLDER/jobs.csv --out-dir FOLDER/clips
"""

import csv
import sys
from pathlib import Path

from latentvideo.data import moving_mnist
from latentvideo.render import write_png

KEYFRAMES = (0, 9, 19)


def main(n: int, folder: Path) -> None:
    video = moving_mnist(n, 20, split="test", seed=0).video  # uint8 [T, N, 64, 64]
    (folder / "keys").mkdir(parents=True, exist_ok=True)
    with open(folder / "jobs.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["keyframes", "times", "out"])
        for i in range(n):
            paths = []
            for t in KEYFRAMES:
                path = f"keys/seq{i:03d}_t{t:02d}.png"
                write_png(folder / path, video[t, i])
                paths.append(path)
            rows.writerow([";".join(paths), ";".join(map(str, KEYFRAMES)), f"clip{i:03d}.gif"])
    print(f"{folder / 'jobs.csv'}: {n} rows")


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[1].isdigit():
        sys.exit(__doc__)
    main(int(sys.argv[1]), Path(sys.argv[2]))
