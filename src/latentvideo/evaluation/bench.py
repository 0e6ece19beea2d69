"""`latentvideo bench`: the pipeline, its ablations and the baselines, measured in one run
on held-out test sequences.

Task: keyframes (default t = 0, 9, 19) of each sequence are given; every method makes all
T frames; metrics are taken over the frames that are not keyframes, averaged per sequence,
with a 95 % bootstrap interval over sequences.
"""

from __future__ import annotations

import platform
import resource
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data import moving_mnist, moving_mnist_speed, read_sequences
from ..errors import LatentVideoError
from ..fileio import write_json, write_text
from ..invert import invert
from ..models import has_mapping, load_model
from ..pipeline import PRETRAINED, Options, Pipeline
from ..render import contact_sheet, render, write_png
from . import baselines, metrics
from .classifier import features as classifier_features
from .classifier import predict_digits
from .ppl import perceptual_path_length
from .recovery import measure_recovery, recovery_markdown

METRICS = ("mse_pixel", "mse_frame", "psnr", "ssim", "motion", "ink", "identity", "flicker")


@dataclass
class BenchConfig:
    sequences: int = 200
    seed: int = 0
    keyframes: tuple[int, ...] = (0, 9, 19)
    extra_keyframes: tuple[tuple[int, ...], ...] = ((0, 19), (0, 4, 9, 14, 19))
    quick: bool = False
    slow_subset: int = 20  # sequences for the per-image scipy rows (the original settings)
    ablation_sequences: int | None = None  # first N sequences for the ablation rows (None: all)
    reference_frames: int = 512  # train frames whose latents give the "reference" PCA basis
    mb_sizes: tuple[int, ...] = (4, 8)
    data: str | None = None
    groups: tuple[str, ...] | None = None  # row groups to run (None: all; (): only the default row + baselines)
    rows: tuple[str, ...] | None = None  # only these pipeline rows, by name (None: every row of `groups`)
    dynamics: str = "bounce"  # synthesised motion: bounce (Moving MNIST) or held-out (arcs and gravity)


ROW_GROUPS = ("inversion", "pca", "degree", "critic", "path", "motion", "objects", "original")
KEEP_PRIOR = ("motion", "objects")  # row groups that keep the default motion prior (the others: the latent path)


@dataclass
class Row:
    name: str
    group: str
    command: str = ""
    values: dict = field(default_factory=dict)  # metric -> [mean, low, high]
    per_frame: dict = field(default_factory=dict)  # metric -> list over t (nan at keyframes)
    seconds_per_clip: float | None = None
    sequences: int = 0


# ------------------------------------------------------------------ data


def load_benchmark_data(cfg: BenchConfig):
    """video uint8 [T, N, H, W], labels [N, D] or None, digits and positions (for the oracle) or None."""
    if cfg.data is None:
        mm = moving_mnist(cfg.sequences, 20, 2, 64, split="test", seed=cfg.seed, dynamics=cfg.dynamics)
        return mm.video, mm.labels, mm.digits, mm.positions
    video, labels = read_sequences(cfg.data, with_labels=True)
    if video.ndim != 4:
        raise LatentVideoError(f"the benchmark scores gray digit sequences [T, N, H, W], got {list(video.shape)}")
    n = min(cfg.sequences, video.shape[1])
    return video[:, :n], None if labels is None else labels[:n], None, None


# ------------------------------------------------------------------ scoring


class Scorer:
    """Computes every metric of a clip set [T, N, H, W] uint8 against the truth."""

    def __init__(self, truth, labels, classifier, keyframes, seed=0):
        self.truth, self.classifier, self.seed = truth, classifier, seed
        T, N = truth.shape[:2]
        self.others = np.array([t for t in range(T) if t not in set(keyframes)])
        if labels is None:  # the classifier's digit set on the keyframes, by majority
            votes = predict_digits(classifier, truth[list(keyframes)].reshape(-1, 1, *truth.shape[2:]))
            self.sets = votes.reshape(len(keyframes), N, 10).mean(0) > 0.5
        else:
            self.sets = metrics.label_sets(labels)
        ref = moving_mnist(max(N, 50), T, 2, truth.shape[-1], split="test", seed=seed + 10_000).video
        self.ref_stats = metrics.feature_stats(classifier_features(classifier, ref.reshape(-1, 1, *ref.shape[2:])))

    def __call__(self, clips: np.ndarray, n: int | None = None) -> tuple[dict, dict]:
        n = n or clips.shape[1]
        gen, true = clips[self.others, :n], self.truth[self.others, :n]  # [T', n, H, W]
        per = {
            "mse_pixel": metrics.mse_per_pixel(gen, true),
            "mse_frame": metrics.mse_per_frame(gen, true),
            "psnr": metrics.psnr(gen, true),
            "ssim": metrics.ssim(gen, true),
            "motion": metrics.motion_error(gen, true),
            "ink": metrics.ink_ratio(gen, true),
        }
        pred = predict_digits(self.classifier, gen.reshape(-1, 1, *gen.shape[2:])).reshape(*gen.shape[:2], 10)
        per["identity"] = (pred == self.sets[None, :n]).all(-1).astype(np.float64)
        values = {k: list(metrics.bootstrap_ci(np.nanmean(v, 0), seed=self.seed)) for k, v in per.items()}
        values["flicker"] = list(metrics.bootstrap_ci(metrics.flicker(clips[:, :n]), seed=self.seed))
        feats = classifier_features(self.classifier, gen.reshape(-1, 1, *gen.shape[2:]))
        values["frechet"] = [metrics.frechet_from_stats(*metrics.feature_stats(feats), *self.ref_stats)] * 3
        curves = {}
        for k, v in per.items():
            curve = np.full(clips.shape[0], np.nan)
            curve[self.others] = np.nanmean(v, 1)
            curves[k] = curve.tolist()
        return values, curves


# ------------------------------------------------------------------ methods


def pipeline_variants(
    quick: bool, num_keyframes: int, speed: float | None = None, objects: bool = False
) -> list[tuple[str, str, dict]]:
    """(name, group, option overrides) of every pipeline row. The ablations are of the latent path, so
    they run with the motion prior off (their reference: "motion prior off"). `objects`: the generator declares position
    coordinates, so the rows of the objects group (clip fit, unwrap) apply."""
    return [("pipeline (default)", "pipeline", {})] + [
        (name, group, over if group in KEEP_PRIOR else {"motion_prior": "off", **over})
        for name, group, over in (object_variants(speed) if objects else []) + _ablations(quick, num_keyframes, speed)
    ]


def object_variants(speed: float | None = None) -> list[tuple[str, str, dict]]:
    """Rows for a generator with position coordinates: what the clip-level inversion and the unwrap buy,
    and the description's plain line on this latent space (no unwrap)."""
    rows = [
        ("line, no unwrap", "objects", {"path": "line", "unwrap": False}),
        ("lerp, no unwrap", "objects", {"unwrap": False}),
        ("line (PCA + least squares), unwrapped", "objects", {"path": "line"}),
        ("per-keyframe inversion (no clip fit)", "objects", {"clip_steps": 0}),
        ("P-NET + clip fit (no per-keyframe L-BFGS)", "objects", {"method": "pnet"}),
        ("pivotal tuning, 30 steps", "objects", {"pivot_steps": 30}),
        ("pivotal tuning off", "objects", {"pivot_steps": 0}),
    ]
    return rows + ([("unwrap with the known speed", "objects", {"motion_speed": speed})] if speed else [])


def _ablations(quick: bool, num_keyframes: int, speed: float | None) -> list[tuple[str, str, dict]]:
    rows = []
    if quick:
        return [
            ("motion prior off", "motion", {"motion_prior": "off"}),
            ("inversion pnet", "inversion", {"method": "pnet"}),
            ("line, no PCA", "pca", {"path": "line", "pca": None}),
            ("critic off", "critic", {"critic": "off"}),
            ("line (the original path)", "path", {"path": "line"}),
        ]
    rows += [
        ("inversion pnet", "inversion", {"method": "pnet"}),
        ("inversion lbfgs (zero init)", "inversion", {"method": "lbfgs"}),
        ("inversion pnet+lbfgs", "inversion", {"method": "pnet+lbfgs"}),
    ]
    for pca in (None, 0.9, 0.99, 0.999):
        rows.append((f"PCA {pca or 'off'} (keyframes)", "pca", {"path": "line", "pca": pca}))
        if pca is not None:
            rows.append((f"PCA {pca} (reference)", "pca", {"path": "line", "pca": pca, "_reference": True}))
    for degree in (1, 2, 3):
        if degree < num_keyframes and (degree < 3 or num_keyframes >= 5):
            rows.append((f"degree {degree}", "degree", {"path": "line", "degree": degree}))
    rows += [("critic off", "critic", {"critic": "off"})]
    for space in ("pixel", "latent"):
        for steps, size in ((5, 1e-3), (20, 1e-3), (5, 1e-2)):
            rows.append(
                (
                    f"critic {space} {steps}x{size:g}",
                    "critic",
                    {"critic": space, "critic_steps": steps, "critic_step_size": size},
                )
            )
    rows += [("line (the original path)", "path", {"path": "line"}), ("slerp", "path", {"path": "slerp"})]
    return rows + beyond_variants(speed)


def row_names() -> list[str]:
    """Names of every pipeline row the benchmark can run (for `--rows`)."""
    return list(dict.fromkeys(name for name, _, _ in _all_variants()))


def beyond_variants(speed: float | None = None) -> list[tuple[str, str, dict]]:
    """Rows of the bounce motion prior (motion.py), run with every keyframe set. `speed`: the digits' known
    speed in px/frame (Moving MNIST), for a row of the bounce prior that uses it. (The joint curve fit,
    temporal critic, time warp and interpolation in w were measured and not adopted: docs/benchmark-history.md;
    experimental/ keeps the first and the third as functions.)"""
    known = [("bounce prior, known speed", "motion", {"motion_prior": "bounce", "motion_speed": speed})]
    return [
        ("motion prior off", "motion", {"motion_prior": "off"}),
        ("bounce prior, P-NET only", "motion", {"motion_prior": "bounce", "motion_steps": 0}),
        *[
            (f"bounce prior, {n} steps per frame", "motion", {"motion_prior": "bounce", "motion_steps": n})
            for n in MOTION_STEPS
        ],
        *(known if speed is not None else []),
    ]


MOTION_STEPS = (25, 100)  # the bounce prior's cost/identity trade-off around the default's L-BFGS steps per frame
DEGREE_3 = ("degree 3", "degree", {"motion_prior": "off", "path": "line", "degree": 3})  # 5+ keyframes only
PPL_SAMPLES, PPL_SAMPLES_QUICK, PPL_EPS = 256, 64, 1e-4


ORIGINAL = {
    "motion_prior": "off",
    "method": "scipy",
    "pca": None,
    "degree": 1,
    "critic": "latent",
    "critic_steps": 100,
    "critic_step_size": 1e-4,
    "path": "line",
}


def _command(cfg: BenchConfig, name: str) -> str:
    keys = ",".join(map(str, cfg.keyframes))
    cmd = f"latentvideo bench --sequences {cfg.sequences} --seed {cfg.seed} --keyframes {keys}"
    if cfg.ablation_sequences is not None:
        cmd += f" --ablation-sequences {cfg.ablation_sequences}"
    if cfg.groups is not None:
        cmd += f" --groups {','.join(cfg.groups) or 'none'}"
    if cfg.dynamics != "bounce":
        cmd += f" --dynamics {cfg.dynamics}"
    if not cfg.extra_keyframes and not cfg.quick:
        cmd += " --main-keyframes-only"
    if cfg.rows is not None:
        cmd += f" --rows '{';'.join(cfg.rows)}'"
    return cmd + (" --quick" if cfg.quick else "")


def run_benchmark(
    cfg: BenchConfig,
    pipe: Pipeline,
    classifier,
    out_dir: str | Path,
    progress: bool = True,
    options: Options | None = None,
) -> dict:
    """Score every baseline and pipeline row; write results.json, report.md, per_frame.png, examples.png.

    `options` are the settings of the "pipeline (default)" row, which every ablation row changes
    one knob of (default: the model's default options). Baselines and the default row use all
    sequences; ablation rows use the first `cfg.ablation_sequences`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    video, labels, digits, positions = load_benchmark_data(cfg)
    T, N = video.shape[:2]
    sets = [tuple(cfg.keyframes)] + ([] if cfg.quick else [tuple(k) for k in cfg.extra_keyframes])
    for ks in sets:
        if len(ks) < 2 or any(not 0 <= k < T for k in ks) or list(ks) != sorted(set(ks)):
            raise LatentVideoError(f"keyframes {ks} must be at least 2 sorted distinct frames in 0..{T - 1}")
    base = (options or pipe.default_options()).validated()
    n_abl = N if cfg.ablation_sequences is None else max(1, min(cfg.ablation_sequences, N))
    frames_f = torch.from_numpy(video).float() / 255  # [T, N, H, W]
    bounce = cfg.data is None and cfg.dynamics == "bounce"
    speed = moving_mnist_speed(video.shape[-1]) if bounce else None  # known only for Moving MNIST

    # 1. invert every keyframe once per method; rows reuse them
    needed = sorted({k for ks in sets for k in ks})
    methods = ["pnet+lbfgs" if pipe.projector is not None else "lbfgs"]
    if not cfg.quick and pipe.projector is not None and _runs(cfg, "inversion"):
        methods += ["lbfgs"]
    if pipe.projector is not None and _runs(cfg, "inversion"):
        methods += ["pnet"]
    cache: dict[str, dict[int, torch.Tensor]] = {}
    inversion_rows = []

    def per_frame(method: str) -> dict[int, torch.Tensor]:
        """Keyframe index -> latents [n, z_dim], every keyframe inverted alone, once per method (on first use:
        a generator with position coordinates may need none, its rows inverting clip by clip)."""
        if method not in cache:
            n = N if method == methods[0] else n_abl  # the other methods feed ablation rows only
            x = frames_f[needed, :n].reshape(-1, 1, *video.shape[2:])  # [len(needed) * n, 1, H, W]
            inv = invert(
                pipe.generator, x.to(pipe.device), method, pipe.projector, steps=base.lbfgs_steps, z_dim=pipe.z_dim
            )
            z = inv.latents.cpu().reshape(len(needed), n, -1)
            cache[method] = {k: z[i] for i, k in enumerate(needed)}
            row = {"method": method, "images": len(x), "mse_pixel": float(inv.errors.mean())}
            inversion_rows.append({**row, "seconds_per_image": inv.seconds / len(x)})
        return cache[method]

    if pipe.layout is None or _runs(cfg, "inversion"):
        for method in tqdm(methods, desc="invert", disable=not progress):
            per_frame(method)

    # reference PCA basis: latents of train frames (never test digits)
    reference = None
    if not cfg.quick and _runs(cfg, "pca"):
        from ..data import MovingMNISTFrames

        src = MovingMNISTFrames("train", 2, video.shape[-1])
        ref_x = torch.from_numpy(src.sample(np.random.default_rng(cfg.seed), cfg.reference_frames)).float() / 255
        reference = pipe.project(ref_x, base).latents.cpu()

    scorer_cache, clip_cache = {}, {}
    results = {"config": asdict(cfg), "keyframe_sets": {}, "inversion": inversion_rows}
    results["data"] = {
        "frames": int(T),
        "size": int(video.shape[-1]),
        "dynamics": cfg.dynamics if cfg.data is None else None,
    }
    for ks in sets:
        scorer = scorer_cache.setdefault(ks, Scorer(video, labels, classifier, ks, cfg.seed))
        rows: list[Row] = []
        times = [float(k) for k in ks]

        def add(name, group, clips, seconds=None, n=None, rows=rows, scorer=scorer):
            values, curves = scorer(clips, n)
            rows.append(Row(name, group, _command(cfg, name), values, curves, seconds, n or clips.shape[1]))

        # baselines
        add("all black", "baseline", baselines.all_black(video, ks))
        add("hold nearest keyframe", "baseline", baselines.hold_nearest(video, ks))
        add("pixel crossfade", "baseline", baselines.crossfade(video, ks))
        for mb in cfg.mb_sizes if not cfg.quick else cfg.mb_sizes[-1:]:
            t0 = time.perf_counter()
            clips = baselines.ffmpeg_minterpolate(video, ks, mb_size=mb)
            add(f"ffmpeg minterpolate mb{mb}", "baseline", clips, (time.perf_counter() - t0) / N)
        sprite_rows = [("bounce sprites (image space)", None)]
        sprite_rows += [("bounce sprites, known speed", speed)] if speed is not None else []
        for name, known in sprite_rows:
            t0 = time.perf_counter()
            clips = baselines.bounce_sprites(video, ks, speed=known)
            add(name, "baseline", clips, (time.perf_counter() - t0) / N)
        if digits is not None:
            add("piecewise-linear oracle", "baseline", baselines.piecewise_linear_oracle(digits, positions, ks))
        add("ground truth", "baseline", video)

        # pipeline rows
        objects = pipe.layout is not None
        if ks == sets[0]:
            variants = pipeline_variants(cfg.quick, len(ks), speed, objects)
        else:  # the other keyframe sets: the default and the methods beyond the original pipeline
            variants = pipeline_variants(True, len(ks))[:1] + ([] if cfg.quick else beyond_variants(speed))
            variants += object_variants(speed)[:2] if objects else []
        if ks == sets[0] and len(ks) >= 5:
            variants.append(DEGREE_3)
        variants = [v for v in variants if v[1] == "pipeline" or _runs(cfg, v[1])]
        if cfg.rows is not None:  # e.g. a 200-sequence run of a few rows whose default row was measured before
            variants = [v for v in variants if v[0] in cfg.rows]
        keys = [frames_f[list(ks), i][:, None] for i in range(N)]  # keyframe images [K, 1, H, W] (joint fit)
        for name, group, over in tqdm(variants, desc=f"pipeline {ks}", disable=not progress):
            over = dict(over)
            use_ref = over.pop("_reference", False)
            opts = replace(base, **over).validated()
            method = opts.method if opts.method in methods else methods[0]
            n = N if group == "pipeline" else n_abl
            if pipe.layout is not None and opts.clip_steps:  # clip-level inversion: per keyframe set
                key = (ks, opts.method, opts.lbfgs_steps, opts.clip_steps)
                if key not in clip_cache:
                    clip_cache[key] = pipe.project_clips(keys, opts)
                inv = clip_cache[key]
                latents = list(inv.latents.reshape(N, len(ks), -1)[:n])
                inv_s = inv.seconds / N
            else:
                latents = keyframe_latents(per_frame(method), ks, n)
                inv_s = next(r["seconds_per_image"] for r in inversion_rows if r["method"] == method) * len(ks)
            anim = pipe.animate(latents, [times] * n, T, opts, reference if use_ref else None, keyframes=keys[:n])
            frames, timings = anim.frames, anim.timings
            clips = np.concatenate([_to_video(frames, T, n), video[:, n:]], 1)  # unscored tail: truth
            add(name, group, clips, inv_s + sum(timings.values()), n)
            if group == "pipeline" and n_abl < N:  # the same clips scored like the ablation rows
                add(f"{name}, ablation subset", "pipeline-subset", clips, inv_s + sum(timings.values()), n_abl)

        if ks == sets[0] and not cfg.quick and _runs(cfg, "original"):  # the original's settings, per-image scipy
            n = min(cfg.slow_subset, N)
            x = frames_f[list(ks), :n].transpose(0, 1).reshape(-1, 1, *video.shape[2:])  # [n * K, 1, H, W]
            opts = replace(base, **ORIGINAL).validated()
            inv = pipe.project(x, opts)
            latents = list(inv.latents.cpu().reshape(n, len(ks), -1))
            anim = pipe.animate(latents, [times] * n, T, opts)
            frames, timings = anim.frames, anim.timings
            clips = np.concatenate([_to_video(frames, T, n), video[:, n:]], 1)
            add("original settings", "original", clips, inv.seconds / n + sum(timings.values()), n)
        results["keyframe_sets"][",".join(map(str, ks))] = [asdict(r) for r in rows]

    if pipe.layout is not None:  # how well inversion recovers known positions, and held-out keyframe PSNR
        results["recovery"] = measure_recovery(pipe, 16 if cfg.quick else 64, tuple(cfg.keyframes), cfg.seed)
        default = clip_cache.get((sets[0], base.method, base.lbfgs_steps, base.clip_steps))
        if default is not None:
            mse = default.errors.clamp_min(1e-12)
            results["recovery"]["held_out_psnr_db"] = float((10 * torch.log10(1 / mse)).median())
    results["speed"] = measure_speed(pipe, video, cfg, base, methods[0])
    ppl_samples = PPL_SAMPLES_QUICK if cfg.quick else PPL_SAMPLES
    results["smoothness"] = measure_smoothness(pipe, classifier, ppl_samples, seed=cfg.seed)
    results["classifier"] = {"accuracy_true_frames": _row(results, "ground truth")["values"]["identity"][0]}
    results["environment"] = _environment(pipe)
    write_json(out_dir / "results.json", results)
    write_text(out_dir / "report.md", report_markdown(results))
    plot_per_frame(results, out_dir / "per_frame.png")
    write_examples(pipe, video, cfg, base, out_dir / "examples.png")
    return results


def keyframe_latents(cached: dict, ks, n: int) -> list[torch.Tensor]:
    """Per clip of the first n, its keyframes' latents [K, z_dim] from the inversion cache (keyframe
    index -> [N, z_dim])."""
    return [torch.stack([cached[k][i] for k in ks]) for i in range(n)]  # [K, z_dim] each


def _runs(cfg: BenchConfig, group: str) -> bool:
    """Whether a row group runs: chosen by `groups`, and, with `rows`, holding one of the named rows (so
    that naming a few rows does not pay for the ablation inversions, the reference basis or the scipy rows)."""
    if cfg.rows is not None and group not in {g for name, g, _ in _all_variants() if name in cfg.rows}:
        return False
    return cfg.groups is None or group in cfg.groups


def _all_variants() -> list[tuple[str, str, dict]]:
    return pipeline_variants(False, 5, speed=1.0, objects=True) + [DEGREE_3]


def _to_video(frames: torch.Tensor, T: int, N: int) -> np.ndarray:  # [N*T, 1, H, W] -> uint8 [T, N, H, W]
    x = (frames.clamp(0, 1) * 255).round().byte().numpy()
    return x.reshape(N, T, *x.shape[-2:]).transpose(1, 0, 2, 3)


def _row(results, name):
    first = next(iter(results["keyframe_sets"].values()))
    return next(r for r in first if r["name"] == name)


def measure_speed(pipe: Pipeline, video, cfg: BenchConfig, opts: Options, method: str) -> dict:
    T, N = video.shape[:2]
    ks = list(cfg.keyframes)
    clips = []
    for i in range(min(5, N)):  # one clip at a time, as a user runs it
        k = torch.from_numpy(video[ks, i][:, None]).float() / 255
        t0 = time.perf_counter()
        clip = pipe(k, [float(t) for t in ks], T)
        clips.append({**clip.timings, "total": time.perf_counter() - t0})
    per_clip = {k: float(np.median([c[k] for c in clips])) for k in clips[0]}
    # batched inversion against the per-image scipy float64 reference, same images
    n = min(cfg.slow_subset, N) if not cfg.quick else min(4, N)
    x = (torch.from_numpy(video[ks, :n]).float() / 255).reshape(-1, 1, *video.shape[2:])
    ours = invert(pipe.generator, x.to(pipe.device), method, pipe.projector, steps=opts.lbfgs_steps, z_dim=pipe.z_dim)
    speed = {"inversion_batched": {"seconds_per_image": ours.seconds / len(x), "mse_pixel": float(ours.errors.mean())}}
    if _runs(cfg, "inversion") or _runs(cfg, "original"):  # the reference costs ~20 s per image on a CPU
        ref = invert(
            pipe.generator, x.to(pipe.device), "scipy", pipe.projector, steps=opts.lbfgs_steps, z_dim=pipe.z_dim
        )
        speed["inversion_scipy"] = {"seconds_per_image": ref.seconds / len(x), "mse_pixel": float(ref.errors.mean())}
        speed["inversion_speedup"] = ref.seconds / max(ours.seconds, 1e-9)
    z = torch.randn(1000, pipe.z_dim, generator=torch.Generator().manual_seed(0))
    t0 = time.perf_counter()
    render(pipe.generator, z, batch_size=opts.render_batch)
    fps = 1000 / (time.perf_counter() - t0)
    return {
        "seconds_per_clip": per_clip,
        **speed,
        "render_frames_per_s": fps,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def classifier_feature_fn(classifier):
    """The classifier's penultimate features of images on any device (time warping, PPL)."""
    dev = next(classifier.parameters()).device
    return lambda x: classifier.features(x.to(dev))


def measure_smoothness(
    pipe: Pipeline, classifier, samples: int = PPL_SAMPLES, eps: float = PPL_EPS, seed: int = 0
) -> dict:
    """PPL of the model's generator in z (and w, with a mapping network) in the classifier's feature space."""
    feats = classifier_feature_fn(classifier)
    out = {"samples": samples, "eps": eps}
    for space in ("z", "w") if has_mapping(pipe.generator) else ("z",):
        out[f"ppl_{space}"] = perceptual_path_length(pipe.generator, feats, samples, eps, space, seed)
    return out


def _environment(pipe) -> dict:
    import torch as _t

    from .. import __version__

    return {
        "latentvideo": __version__,
        "torch": _t.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "device": str(pipe.device),
        "cpu": platform.processor() or platform.machine(),
        "threads": _t.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }


# ------------------------------------------------------------------ outputs

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
    if cfg.get("data"):
        source = f"from {cfg['data']}"
    else:
        motion = {"held-out": "held-out dynamics: arcs and gravity"}.get(data.get("dynamics"), "bouncing")
        source = f"test-split digits, {motion}, seed {cfg['seed']}"
    out = [
        "# latentvideo benchmark",
        "",
        f"{cfg['sequences']} held-out test sequences ({source}), {data.get('frames', 20)} frames, {size}x{size}."
        f" Metrics over non-keyframe frames, mean [95 % bootstrap interval over sequences]."
        f" SSIM: scikit-image. Motion: exact EMD (POT) on 16x16 pooled frames, in pixels of the 64x64 frame."
        f" Identity and Fréchet: the project's digit classifier. {env['date']}, {env['device']},"
        f" torch {env['torch']}, {env['threads']} threads.",
        "",
    ]
    for ks, rows in results["keyframe_sets"].items():
        out += [
            f"## Keyframes {ks}",
            "",
            "| method | " + " | ".join(c[1] for c in _COLS) + " | s/clip |",
            "|---" * (len(_COLS) + 2) + "|",
        ]
        for r in rows:
            cells = []
            for key, _, digits in _COLS:
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
            out += [
                f"Held-out test keyframes (default row): PSNR {results['recovery']['held_out_psnr_db']:.1f} dB.",
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
        f"- Classifier exact-set accuracy on true frames: {results['classifier']['accuracy_true_frames']:.3f}",
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


def write_examples(pipe, video, cfg, opts, path) -> None:
    """Truth, the pipeline and a crossfade for the first 4 sequences, keyframe columns marked."""
    ks = list(cfg.keyframes)
    T, n = video.shape[0], min(4, video.shape[1])
    keys = [torch.from_numpy(video[ks, i][:, None]).float() / 255 for i in range(n)]  # [K, 1, H, W] each
    clips = pipe.generate_many(keys, [[float(k) for k in ks]] * n, T, **vars(opts))
    rows, labels = [], []
    for i, clip in enumerate(clips):
        gen = _to_video(clip.frames, T, 1)[:, 0]
        fade = baselines.crossfade(video[:, i : i + 1], ks)[:, 0]
        rows += [video[:, i], gen, fade]
        labels += [f"#{i} truth", f"#{i} pipeline", f"#{i} crossfade"]
    write_png(path, contact_sheet(rows, labels, ks))


def load_classifier(path: str | Path | None, model_dir: str | Path | None):
    for candidate in [path, Path(model_dir) / "classifier" if model_dir else None, PRETRAINED / "classifier"]:
        if candidate is not None and Path(candidate).is_dir():
            return load_model(candidate, expect="digit-classifier")
    raise LatentVideoError("no digit classifier found", hint="pass --classifier DIR (latentvideo train classifier)")
