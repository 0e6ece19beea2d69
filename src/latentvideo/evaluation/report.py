"""The benchmark's report: report.md (the tables) and per_frame.png (metrics over time) from results.json."""

from __future__ import annotations

from pathlib import Path

from .recovery import recovery_markdown

_COLS = [
    ("mse_pixel", "MSE/px", 4),
    ("mse_frame", "MSE/frame", 1),
    ("psnr", "PSNR", 2),
    ("ssim", "SSIM", 3),
    ("motion", "motion px", 2),
    ("ink", "ink", 2),
    ("identity", "identity", 3),
    ("frechet", "Fréchet", 1),
    ("flicker", "flicker", 4),
]


def report_markdown(results: dict) -> str:
    cfg = results["config"]
    env = results["environment"]
    data = results.get("data", {})
    size = data.get("size", 64)
    if data.get("name") == "moving-shapes":
        source = f"Moving Shapes test split: unseen backgrounds and hues, seed {cfg['seed']}"
        described = (
            " MSE and SSIM on RGB. Motion: per object, exact EMD (POT) between its colour masks in the generated"
            " and true frames, 16x16 pooled, in px. Identity: every object's shape named right in its colour mask"
            " by the shape classifier (evaluation/colour.py)."
        )
    else:
        if cfg.get("data"):
            source = f"from {cfg['data']}"
        else:
            motion = {"held-out": "held-out dynamics: arcs and gravity"}.get(data.get("dynamics"), "bouncing")
            source = f"test-split digits, {motion}, seed {cfg['seed']}"
        described = (
            " SSIM: scikit-image. Motion: exact EMD (POT) on 16x16 pooled frames, in pixels of the 64x64 frame."
            " Identity and Fréchet: the project's digit classifier."
        )
    out = [
        "# latentvideo benchmark",
        "",
        f"{cfg['sequences']} held-out test sequences ({source}), {data.get('frames', 20)} frames, {size}x{size}."
        f" Metrics over non-keyframe frames, mean [95 % bootstrap interval over sequences].{described}"
        f" {env['date']}, {env['device']}, torch {env['torch']}, {env['threads']} threads.",
        "",
    ]
    for ks, rows in results["keyframe_sets"].items():
        cols = [c for c in _COLS if c[0] in rows[0]["values"]]  # colour clips have no ink or Fréchet column
        out += [
            f"## Keyframes {ks}",
            "",
            "| method | " + " | ".join(c[1] for c in cols) + " | s/clip |",
            "|---" * (len(cols) + 2) + "|",
        ]
        for r in rows:
            cells = []
            for key, _, digits in cols:
                m, lo, hi = r["values"][key]
                cells.append(
                    f"{m:.{digits}f}" if key == "frechet" else f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
                )
            s = "" if r["seconds_per_clip"] is None else f"{r['seconds_per_clip']:.2f}"
            name = r["name"] if r["sequences"] == cfg["sequences"] else f"{r['name']} ({r['sequences']} seq)"
            out.append(f"| {name} | " + " | ".join(cells) + f" | {s} |")
        out.append("")
    if "recovery" in results:
        out += recovery_markdown(results["recovery"])
        if "held_out_psnr_db" in results["recovery"]:
            r = results["recovery"]
            rendered = r.get("rendered_keyframe_psnr_db")
            out += [
                f"Held-out test keyframes (default row): PSNR {r['held_out_psnr_db']:.1f} dB from the inversion"
                + ("." if rendered is None else f", {rendered:.1f} dB in the rendered clip (after pivotal tuning)."),
                "",
            ]
    out += ["## Inversion", "", "| method | images | MSE/px | s/image |", "|---|---|---|---|"]
    for r in results["inversion"]:
        out.append(f"| {r['method']} | {r['images']} | {r['mse_pixel']:.4f} | {r['seconds_per_image']:.3f} |")
    sp = results["speed"]
    stages = ", ".join(f"{k} {v:.2f}" for k, v in sp["seconds_per_clip"].items())
    ours = sp["inversion_batched"]
    batched = f"- Batched inversion {ours['seconds_per_image']:.3f} s/image (MSE/px {ours['mse_pixel']:.4f})"
    if "inversion_scipy" in sp:
        ref = sp["inversion_scipy"]
        batched += f" vs per-image scipy float64 L-BFGS-B {ref['seconds_per_image']:.3f} s/image"
        batched += f" (MSE/px {ref['mse_pixel']:.4f}): {sp['inversion_speedup']:.1f}x"
    out += [
        "",
        "## Speed and memory",
        "",
        f"- Seconds per 20-frame clip (median of 5, one clip at a time): {stages}",
        batched,
        f"- Rendering: {sp['render_frames_per_s']:.0f} frames/s",
        f"- Peak RSS: {sp['peak_rss_mb']:.0f} MB",
        _machine_line(results),
        f"- Identity classifier's accuracy on the true frames: {results['classifier']['accuracy_true_frames']:.3f}",
        "",
    ]
    if "smoothness" in results:
        sm = results["smoothness"]
        ppl = ", ".join(f"{k[4:]} {v:.1f}" for k, v in sm.items() if k.startswith("ppl_"))
        out += [
            "## Smoothness",
            "",
            f"- Perceptual path length ({sm['samples']} samples, eps {sm['eps']:g}, full paths, 1-99 % filtered,"
            f" squared distance of the digit classifier's features): {ppl}",
            "",
        ]
    return "\n".join(out)


def plot_per_frame(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..fileio import atomic_path

    ks, rows = next(iter(results["keyframe_sets"].items()))
    keep = [r for r in rows if r["group"] in ("baseline", "pipeline", "original") and r["name"] != "ground truth"]
    keys = ["mse_pixel", "ssim", "motion", "identity"]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.6))
    for ax, key in zip(axes, keys):
        for r in keep:
            ax.plot(r["per_frame"][key], marker=".", label=r["name"], lw=2.5 if r["group"] == "pipeline" else 1)
        ax.set_title(key)
        ax.set_xlabel("t")
        for k in map(int, ks.split(",")):
            ax.axvline(k, color="0.8", lw=0.8)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def _machine_line(results: dict) -> str:
    """The machine and its speed during the run (evaluation/machine.py): what seconds here can be compared with."""
    cpu = results.get("environment", {}).get("cpu", "?")
    ref = results["speed"].get("reference_ms")
    if not ref:
        return f"- Machine: {cpu}"
    return (
        f"- Machine: {cpu}; its reference workload (machine.py, lower is faster) {ref['start']:.1f} ms at the start,"
        f" {ref['end']:.1f} at the end: `latentvideo compare` divides seconds by it across runs"
    )
