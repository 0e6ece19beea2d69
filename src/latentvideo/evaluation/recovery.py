"""How well inversion recovers known latents, for a generator with position coordinates.

Clips are drawn from G itself: per clip one appearance per slot (and background), and positions that
bounce (Moving MNIST's dynamics, in the fold range) at the keyframe times. Their keyframes are inverted
as the pipeline does it, and the recovered positions are compared with the true ones after matching the
slots. Reported per stage of the inversion:

    start     P-NET's guess (or the canvas centre without one)
    frames    after L-BFGS on every keyframe alone
    clip      after the clip-level joint fit (the pipeline's keyframe latents)
    clip_matched  the same, with one slot matching per clip instead of per keyframe: a slot that holds one
              object in one keyframe and the other in the next counts as the error it makes to the path

with the median and 90th percentile position error in px, and the share of slots whose error exceeds a
quarter of the sprite: where a sprite does not overlap its target, the pixel loss has no gradient that
moves it there (the "vanishing position gradient" of a translated sprite).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

from ..data import bounce_paths
from ..invert import invert
from ..pipeline import Pipeline
from ..slots import invert_clips


def sample_clips(G, layout, n: int, times, seed: int = 0) -> torch.Tensor:
    """Latents [n, K, z_dim] of n clips drawn from G's prior: shared codes, bouncing positions at `times`."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    K = len(times)
    base = G.sample_latents(n, gen) if hasattr(G, "sample_latents") else torch.randn(n, G.z_dim, generator=gen)
    z = base[:, None].repeat(1, K, 1)  # [n, K, z_dim]
    T = int(max(times)) + 1
    for r, c in layout.positions:
        paths = bounce_paths(rng, n, T, 1000) / 1000.0  # [T, n, 2] in [0, 1]
        z[:, :, r] = torch.from_numpy(paths[list(times), :, 0].T).float()
        z[:, :, c] = torch.from_numpy(paths[list(times), :, 1].T).float()
    return z


def position_errors(layout, z_hat: torch.Tensor, z: torch.Tensor, clip_len: int = 1) -> np.ndarray:
    """Per keyframe and slot, px between recovered and true positions: [N, K]. The slots are matched once per
    run of clip_len keyframes (a clip): with clip_len 1 per keyframe, which hides a slot that follows one
    object in one keyframe and another in the next; per clip, such a swap counts as the error it is."""
    a, b = layout.pixels(z_hat).cpu().numpy(), layout.pixels(z).cpu().numpy()  # [N, K, 2]
    d = np.linalg.norm(a[:, :, None] - b[:, None], axis=-1)  # [N, K, K]
    out = np.empty(a.shape[:2])
    for i in range(0, len(a), clip_len):
        r, c = linear_sum_assignment(d[i : i + clip_len].sum(0))
        out[i : i + clip_len, r] = d[i : i + clip_len, r, c]
    return out


def measure_recovery(pipe: Pipeline, n: int = 64, times=(0, 9, 19), seed: int = 0) -> dict:
    """Position error of each inversion stage on n clips of G's own samples (see the module docstring)."""
    G, layout, opts = pipe.generator, pipe.layout, pipe.default_options()
    z = sample_clips(G, layout, n, times, seed).to(pipe.device)  # [n, K, z_dim]
    with torch.no_grad():
        keys = G(z.flatten(0, 1)).view(n, len(times), *pipe.frame_shape)
    flat_true = z.flatten(0, 1)
    sprite = float(getattr(G, "sprite", 0)) or None
    P = pipe.projector if opts.method != "lbfgs" else None
    stages = {}
    with torch.no_grad():
        start = P(keys.flatten(0, 1)) if P is not None else None
    if start is not None:
        stages["start"] = start
    frames = invert(G, keys.flatten(0, 1), "lbfgs", init=start if start is not None else "zero", steps=opts.lbfgs_steps)
    stages["frames"] = frames.latents
    t0 = time.perf_counter()
    clip = invert_clips(
        G,
        list(keys),
        P,
        layout=layout,
        frame_steps=opts.lbfgs_steps,
        clip_steps=opts.clip_steps,
        associate=opts.associate,
        centre_steps=opts.centre_steps,
        plate_search=opts.plate_search,
        plate_fit=opts.plate_fit,
    )
    seconds = (time.perf_counter() - t0) / n
    stages["clip"] = torch.cat(clip.latents).to(pipe.device)
    mse = torch.cat(clip.errors).clamp_min(1e-12)
    out = {"clips": n, "keyframe_times": list(times), "seconds_per_clip": seconds}
    out["psnr_db"] = float((10 * torch.log10(1 / mse)).median())
    for name, zh in stages.items():
        err = position_errors(layout, zh, flat_true)
        row = {"median_px": float(np.median(err)), "p90_px": float(np.percentile(err, 90))}
        if sprite:
            row["no_overlap_share"] = float((err > sprite / 4).mean())
        out[name] = row
    err = position_errors(layout, stages["clip"], flat_true, len(times))
    out["clip_matched"] = {"median_px": float(np.median(err)), "p90_px": float(np.percentile(err, 90))}
    if sprite:
        out["clip_matched"]["no_overlap_share"] = float((err > sprite / 4).mean())
    return out


def recovery_markdown(r: dict) -> list[str]:
    lines = [
        "## Inversion on G's own samples",
        "",
        f"{r['clips']} clips drawn from G (one appearance per slot, bouncing positions at keyframes "
        f"{', '.join(map(str, r['keyframe_times']))}); position error after slot matching.",
        "",
        "| stage | median px | 90th pct px | share > sprite/4 |",
        "|---|---|---|---|",
    ]
    names = {"clip_matched": "clip, one slot matching per clip (a swapped slot counts)"}
    for stage in ("start", "frames", "clip", "clip_matched"):
        if stage in r:
            s = r[stage]
            share = f"{s['no_overlap_share']:.3f}" if "no_overlap_share" in s else ""
            lines.append(f"| {names.get(stage, stage)} | {s['median_px']:.2f} | {s['p90_px']:.2f} | {share} |")
    lines += [
        "",
        f"Keyframe reconstruction PSNR (median): {r['psnr_db']:.1f} dB; {r['seconds_per_clip']:.2f} s/clip.",
        "",
    ]
    return lines
