"""Paired comparison of two benchmark rows: `latentvideo compare A B`.

Two rows scored on the same test sequences (two `latentvideo bench` runs with the same data, seed, dynamics and
sequence count, or two rows of one run) differ clip by clip far less than their intervals say: most of a row's
spread is which clips are hard, and both rows share it. So the difference is bootstrapped over the clips' paired
differences (results.json keeps each row's mean per sequence), and its interval says whether one row is better.

    load_results(path)                   results.json, or the bench folder holding it -> dict
    find_row(results, name, keyframes)   one row's record from a keyframe set
    compare_rows(a, b)                   two rows' records -> a Difference per metric both hold
    compare_markdown(diffs, a, b)        a table of them
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LatentVideoError
from .metrics import bootstrap_ci

# metric -> (label, +1 where higher is better, -1 where lower is, 0 where neither); the table's order
METRICS = {
    "motion": ("motion px", -1),
    "identity": ("identity", +1),
    "mse_pixel": ("MSE/px", -1),
    "ssim": ("SSIM", +1),
    "psnr": ("PSNR dB", +1),
    "ink": ("ink ratio", 0),
}
# what must agree for two runs' sequence i to be the same clip
SAME_SEQUENCES = ("data", "seed", "dynamics", "sequences")


@dataclass
class Difference:
    metric: str
    a: float  # row A's mean over the paired clips
    b: float  # row B's mean over the same clips
    diff: float  # mean of B - A
    low: float  # 95 % bootstrap interval of the difference, over clips
    high: float
    better: str  # "A", "B", or "" where the interval holds 0 or the metric has no better direction
    clips: int  # the clips paired (both rows scored them, and neither scored NaN)


def load_results(path: str | Path) -> dict:
    """A bench run's results.json (the file, or the --out folder holding it)."""
    path = Path(path)
    file = path / "results.json" if path.is_dir() else path
    try:
        results = json.loads(file.read_text())
    except OSError:
        raise LatentVideoError(f"cannot read {file}", hint="pass a `latentvideo bench --out` folder") from None
    except ValueError as e:
        raise LatentVideoError(f"{file} is not JSON: {e}") from None
    if not isinstance(results, dict) or not isinstance(results.get("keyframe_sets"), dict):
        raise LatentVideoError(f"{file} holds no benchmark rows", hint="pass a `latentvideo bench --out` folder")
    return results


def find_row(results: dict, name: str, keyframes: str | None = None) -> dict:
    """The row called `name` of the keyframe set `keyframes` ("0,9,19"; None: the run's main set)."""
    sets = results["keyframe_sets"]
    if keyframes is None:
        main = results.get("config", {}).get("keyframes")
        keyframes = ",".join(map(str, main)) if main else next(iter(sets), "")
    if keyframes not in sets:
        raise LatentVideoError(f"no keyframe set {keyframes} in this run", hint=f"it has {', '.join(sets)}")
    for row in sets[keyframes]:
        if row.get("name") == name:
            if not row.get("per_sequence"):
                raise LatentVideoError(f"row {name!r} has no per-sequence values (a run from before they were kept)")
            return row
    names = "; ".join(r.get("name", "?") for r in sets[keyframes])
    raise LatentVideoError(f"no row {name!r} for keyframes {keyframes}", hint=names)


def check_same_sequences(a: dict, b: dict) -> None:
    """Refuse two runs whose sequence i are not the same clip (their configs differ in SAME_SEQUENCES)."""
    ca, cb = a.get("config", {}), b.get("config", {})
    diff = [k for k in SAME_SEQUENCES if ca.get(k) != cb.get(k)]
    if diff:
        shown = ", ".join(f"{k} {ca.get(k)!r} against {cb.get(k)!r}" for k in diff)
        raise LatentVideoError(f"the two runs scored other test sequences: {shown}", hint="compare runs made alike")


def compare_rows(a: dict, b: dict, n_boot: int = 2000, seed: int = 0) -> list[Difference]:
    """Rows a and b (records of results.json) -> a Difference per metric both hold, over the first n clips
    (n the fewer both scored: an ablation row scores the first N of the run's sequences)."""
    pa, pb = a["per_sequence"], b["per_sequence"]
    out = []
    for metric in [m for m in METRICS if m in pa and m in pb] + sorted(set(pa) & set(pb) - set(METRICS)):
        n = min(len(pa[metric]), len(pb[metric]))
        va, vb = (np.asarray(v[:n], np.float64) for v in (pa[metric], pb[metric]))  # [n] each
        keep = np.isfinite(va) & np.isfinite(vb)  # a clip with no object in view scores NaN on motion
        if keep.sum() < 2:
            continue
        va, vb = va[keep], vb[keep]
        diff, low, high = bootstrap_ci(vb - va, n_boot=n_boot, seed=seed)
        sign = METRICS.get(metric, ("", 0))[1]
        better = "" if not sign or low <= 0 <= high else ("B" if sign * diff > 0 else "A")
        out.append(Difference(metric, float(va.mean()), float(vb.mean()), diff, low, high, better, int(keep.sum())))
    if not out:
        raise LatentVideoError("the two rows share no metric with per-sequence values")
    return out


def compare_markdown(diffs: list[Difference], a_label: str, b_label: str) -> str:
    """A markdown table: each metric's means, B - A with its interval, and which row is better."""
    lines = [
        f"A: {a_label}",
        f"B: {b_label}",
        f"paired over {max(d.clips for d in diffs)} clips; 95 % bootstrap interval of the mean difference over clips",
        "",
        "| metric | A | B | B - A [95 % interval] | better |",
        "|---|---|---|---|---|",
    ]
    for d in diffs:
        label = METRICS.get(d.metric, (d.metric, 0))[0]
        lines.append(
            f"| {label} | {_num(d.a)} | {_num(d.b)} | {_num(d.diff, True)} [{_num(d.low, True)}, "
            f"{_num(d.high, True)}] | {d.better or 'neither'} |"
        )
    return "\n".join(lines)


def _num(x: float, signed: bool = False) -> str:
    text = f"{x:+.3g}" if signed else f"{x:.3g}"
    return text if abs(x) >= 1e-3 or x == 0 else (f"{x:+.2e}" if signed else f"{x:.2e}")
