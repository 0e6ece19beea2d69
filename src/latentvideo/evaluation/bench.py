"""`latentvideo bench`: the pipeline, its ablations and the baselines, measured in one run
on held-out test sequences.

Task: keyframes (default t = 0, 9, 19) of each sequence are given; every method makes all
T frames; metrics are taken over the frames that are not keyframes, averaged per sequence,
with a 95 % bootstrap interval over sequences.
"""

from __future__ import annotations

import functools
import platform
import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..data import moving_mnist, moving_mnist_speed, read_sequences
from ..errors import LatentVideoError
from ..fileio import write_json, write_text
from ..invert import Inversion, invert
from ..models import has_mapping, load_model
from ..pipeline import CLIP_INVERSION_OPTIONS, SHIPPED, Options, Pipeline
from ..render import contact_sheet, render, write_png
from ..shapes import MovingShapes, moving_shapes
from . import baselines, metrics
from .colour import ShapesScorer, shapes_oracle
from .machine import cpu_name, reference_ms
from .ppl import perceptual_path_length
from .recovery import measure_recovery
from .report import plot_per_frame, report_markdown
from .rows import (  # noqa: F401  (re-exported: the row tables live in rows.py)
    DEGREE_3,
    ORIGINAL,
    ROW_GROUPS,
    beyond_variants,
    object_variants,
    pipeline_variants,
    row_command,
    row_names,
    runs_group,
)
from .scoring import Scorer

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


PPL_SAMPLES, PPL_SAMPLES_QUICK, PPL_EPS = 256, 64, 1e-4


@dataclass
class Row:
    name: str
    group: str
    command: str = ""
    values: dict = field(default_factory=dict)  # metric -> [mean, low, high]
    per_frame: dict = field(default_factory=dict)  # metric -> list over t (nan at keyframes)
    per_sequence: dict = field(default_factory=dict)  # metric -> its mean per scored sequence, list over n
    seconds_per_clip: float | None = None
    sequences: int = 0


# ------------------------------------------------------------------ data


@dataclass
class BenchData:
    """The test clips and what is known about them."""

    video: np.ndarray  # uint8 [T, N, H, W] (gray) or [T, N, H, W, 3] (RGB)
    labels: np.ndarray | None = None  # digit classes [N, D] (Moving MNIST)
    oracle: Callable[[tuple], np.ndarray] | None = None  # keyframes -> the piecewise-linear oracle's clips
    speed: float | None = None  # the objects' known speed in px/frame (bouncing Moving MNIST)
    shapes: MovingShapes | None = None  # ground truth of Moving Shapes clips

    @property
    def frames(self) -> torch.Tensor:
        """float [T, N, C, H, W] in [0, 1]."""
        x = torch.from_numpy(self.video).float() / 255
        return x.movedim(-1, 2) if self.video.ndim == 5 else x[:, :, None]


def load_benchmark_data(cfg: BenchConfig) -> BenchData:
    """The held-out test clips of `cfg.data`: Moving MNIST (None), moving-shapes, or a .npy/.npz file."""
    if cfg.data is None:
        mm = moving_mnist(cfg.sequences, 20, 2, 64, split="test", seed=cfg.seed, dynamics=cfg.dynamics)
        bounce = cfg.dynamics == "bounce"
        oracle = functools.partial(baselines.piecewise_linear_oracle, mm.digits, mm.positions)
        return BenchData(mm.video, mm.labels, oracle, moving_mnist_speed(64) if bounce else None)
    if cfg.data == "moving-shapes":
        ms = moving_shapes(cfg.sequences, 20, 64, "test", seed=cfg.seed)
        return BenchData(ms.video, oracle=functools.partial(shapes_oracle, ms), shapes=ms)
    if cfg.dynamics != "bounce":
        raise LatentVideoError("dynamics apply to the synthesised Moving MNIST only, not to --data")
    video, labels = read_sequences(cfg.data, with_labels=True)
    if video.ndim != 4:
        raise LatentVideoError(
            f"a file's sequences are scored as gray digits [T, N, H, W], got {list(video.shape)}",
            hint="colour clips: --data moving-shapes",
        )
    n = min(cfg.sequences, video.shape[1])
    return BenchData(video[:, :n], None if labels is None else labels[:n])


# ------------------------------------------------------------------ methods


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
    data = load_benchmark_data(cfg)
    video, speed = data.video, data.speed
    T, N = video.shape[:2]
    sets = [tuple(cfg.keyframes)] + ([] if cfg.quick else [tuple(k) for k in cfg.extra_keyframes])
    for ks in sets:
        if len(ks) < 2 or any(not 0 <= k < T for k in ks) or list(ks) != sorted(set(ks)):
            raise LatentVideoError(f"keyframes {ks} must be at least 2 sorted distinct frames in 0..{T - 1}")
    base = (options or pipe.default_options()).validated()
    n_abl = N if cfg.ablation_sequences is None else max(1, min(cfg.ablation_sequences, N))
    frames_f = data.frames  # [T, N, C, H, W]
    if frames_f.shape[2] != pipe.channels:
        raise LatentVideoError(
            f"the model makes {pipe.channels}-channel frames, the test clips have {frames_f.shape[2]}"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    reference_start = reference_ms()  # the machine's speed now (machine.py), and again at the end

    # 1. invert every keyframe once per method; rows reuse them
    needed = sorted({k for ks in sets for k in ks})
    methods = ["pnet+lbfgs" if pipe.projector is not None else "lbfgs"]
    if not cfg.quick and pipe.projector is not None and runs_group(cfg, "inversion"):
        methods += ["lbfgs"]
    if pipe.projector is not None and runs_group(cfg, "inversion"):
        methods += ["pnet"]
    cache: dict[str, dict[int, torch.Tensor]] = {}
    inversion_rows = []

    def per_frame(method: str) -> dict[int, torch.Tensor]:
        """Keyframe index -> latents [n, z_dim], every keyframe inverted alone, once per method (on first use:
        a generator with position coordinates may need none, its rows inverting clip by clip)."""
        if method not in cache:
            n = N if method == methods[0] else n_abl  # the other methods feed ablation rows only
            x = frames_f[needed, :n].flatten(0, 1)  # [len(needed) * n, C, H, W]
            inv = invert(
                pipe.generator, x.to(pipe.device), method, pipe.projector, steps=base.lbfgs_steps, z_dim=pipe.z_dim
            )
            z = inv.latents.cpu().reshape(len(needed), n, -1)
            cache[method] = {k: z[i] for i, k in enumerate(needed)}
            row = {"method": method, "images": len(x), "mse_pixel": float(inv.errors.mean())}
            inversion_rows.append({**row, "seconds_per_image": inv.seconds / len(x)})
        return cache[method]

    if pipe.layout is None or runs_group(cfg, "inversion"):
        for method in tqdm(methods, desc="invert", disable=not progress):
            per_frame(method)

    # reference PCA basis: latents of train frames (never test clips)
    reference = None
    if not cfg.quick and runs_group(cfg, "pca"):
        reference = pipe.project(train_frames(data, cfg.reference_frames, cfg.seed), base).latents.cpu()

    scorer_cache, clip_cache, rendered_psnr = {}, {}, None
    results = {"config": asdict(cfg), "keyframe_sets": {}, "inversion": inversion_rows}
    results["data"] = {
        "frames": int(T),
        "size": int(frames_f.shape[-1]),
        "channels": int(frames_f.shape[2]),
        "name": cfg.data or "moving-mnist",
        "dynamics": cfg.dynamics if cfg.data is None else None,
    }
    for ks in sets:
        if ks not in scorer_cache:
            scorer_cache[ks] = (
                ShapesScorer(data.shapes, classifier, ks, cfg.seed)
                if data.shapes is not None
                else Scorer(video, data.labels, classifier, ks, cfg.seed)
            )
        scorer = scorer_cache[ks]
        rows: list[Row] = []
        times = [float(k) for k in ks]

        def add(name, group, clips, seconds=None, n=None, rows=rows, scorer=scorer):
            values, curves, clipwise = scorer(clips, n)
            n = n or clips.shape[1]
            rows.append(Row(name, group, row_command(cfg, name), values, curves, clipwise, seconds, n))

        # baselines
        add("all black", "baseline", baselines.all_black(video, ks))
        add("hold nearest keyframe", "baseline", baselines.hold_nearest(video, ks))
        add("pixel crossfade", "baseline", baselines.crossfade(video, ks))
        for mb in cfg.mb_sizes if not cfg.quick else cfg.mb_sizes[-1:]:
            t0 = time.perf_counter()
            clips = baselines.ffmpeg_minterpolate(video, ks, mb_size=mb)
            add(f"ffmpeg minterpolate mb{mb}", "baseline", clips, (time.perf_counter() - t0) / N)
        sprite_rows = [("bounce sprites (image space)", None)] if video.ndim == 4 else []  # gray sprites on black
        sprite_rows += [("bounce sprites, known speed", speed)] if speed is not None else []
        for name, known in sprite_rows:
            t0 = time.perf_counter()
            clips = baselines.bounce_sprites(video, ks, speed=known)
            add(name, "baseline", clips, (time.perf_counter() - t0) / N)
        if data.oracle is not None:
            add("piecewise-linear oracle", "baseline", data.oracle(ks))
        add("ground truth", "baseline", video)

        # pipeline rows
        objects = pipe.layout is not None
        if ks == sets[0]:
            variants = pipeline_variants(cfg.quick, len(ks), speed, objects, colour=pipe.channels == 3)
        else:  # the other keyframe sets: the default and the methods beyond the original pipeline
            variants = pipeline_variants(True, len(ks))[:1] + ([] if cfg.quick else beyond_variants(speed))
            variants += object_variants(speed)[:2] if objects else []
        if ks == sets[0] and len(ks) >= 5:
            variants.append(DEGREE_3)
        variants = [v for v in variants if v[1] == "pipeline" or runs_group(cfg, v[1])]
        if cfg.rows is not None:  # e.g. a 200-sequence run of a few rows whose default row was measured before
            variants = [v for v in variants if v[0] in cfg.rows]
        keys = [frames_f[list(ks), i] for i in range(N)]  # keyframe images [K, C, H, W]
        for name, group, over in tqdm(variants, desc=f"pipeline {ks}", disable=not progress):
            over = dict(over)
            use_ref = over.pop("_reference", False)
            opts = replace(base, **over).validated()
            method = opts.method if opts.method in methods else methods[0]
            n = N if group == "pipeline" else n_abl
            if pipe.layout is not None and opts.clip_steps:  # clip-level inversion: the pipeline's, every attempt
                project = functools.partial(_cached_clips, clip_cache, pipe, ks, keys)
                ref = reference if use_ref else None
                made = pipe.run_clips(keys[:n], [np.array(times)] * n, T, opts, project, reference=ref)
                frames = torch.cat([c.frames for c in made])
                seconds = float(np.mean([sum(c.timings.values()) for c in made]))  # retries: some clips' only
            else:
                latents = keyframe_latents(per_frame(method), ks, n)
                inv_s = next(r["seconds_per_image"] for r in inversion_rows if r["method"] == method) * len(ks)
                anim = pipe.animate(latents, [times] * n, T, opts, reference if use_ref else None, keyframes=keys[:n])
                frames, seconds = anim.frames, inv_s + sum(anim.timings.values())
            clips = np.concatenate([_to_video(frames, T, n), video[:, n:]], 1)  # unscored tail: truth
            add(name, group, clips, seconds, n)
            if group == "pipeline" and ks == sets[0]:  # the rendered keyframes (after any pivotal tuning)
                rendered_psnr = _median_psnr(clips[list(ks), :n], video[list(ks), :n])
            if group == "pipeline" and n_abl < N:  # the same clips scored like the ablation rows
                add(f"{name}, ablation subset", "pipeline-subset", clips, seconds, n_abl)

        if ks == sets[0] and not cfg.quick and runs_group(cfg, "original"):  # the original's settings, per-image scipy
            n = min(cfg.slow_subset, N)
            x = frames_f[list(ks), :n].transpose(0, 1).flatten(0, 1)  # [n * K, C, H, W]
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
        default = clip_cache.get((_clip_key(sets[0], base), 0))  # the first attempt's inversion
        if default is not None:
            mse = default.errors.clamp_min(1e-12)
            results["recovery"]["held_out_psnr_db"] = float((10 * torch.log10(1 / mse)).median())
            if rendered_psnr is not None:
                results["recovery"]["rendered_keyframe_psnr_db"] = rendered_psnr
    results["speed"] = measure_speed(pipe, frames_f, cfg, base, methods[0])
    results["speed"]["reference_ms"] = {"start": reference_start, "end": reference_ms()}
    if data.shapes is None:  # PPL in the digit classifier's feature space
        ppl_samples = PPL_SAMPLES_QUICK if cfg.quick else PPL_SAMPLES
        results["smoothness"] = measure_smoothness(pipe, classifier, ppl_samples, seed=cfg.seed)
    results["classifier"] = {"accuracy_true_frames": _row(results, "ground truth")["values"]["identity"][0]}
    results["environment"] = _environment(pipe)
    write_json(out_dir / "results.json", results)
    write_text(out_dir / "report.md", report_markdown(results))
    plot_per_frame(results, out_dir / "per_frame.png")
    write_examples(pipe, video, frames_f, cfg, base, out_dir / "examples.png")
    return results


def keyframe_latents(cached: dict, ks, n: int) -> list[torch.Tensor]:
    """Per clip of the first n, its keyframes' latents [K, z_dim] from the inversion cache (keyframe
    index -> [N, z_dim])."""
    return [torch.stack([cached[k][i] for k in ks]) for i in range(n)]  # [K, z_dim] each


def _median_psnr(gen: np.ndarray, true: np.ndarray) -> float:
    """Median PSNR in dB over the images of uint8 videos [K, n, H, W] or [K, n, H, W, 3]."""
    flat = lambda v: v.reshape(*v.shape[:3], -1)  # noqa: E731  [K, n, H, W * C]: one MSE over every channel
    return float(np.median(metrics.psnr(flat(gen), flat(true))))


def _to_video(frames: torch.Tensor, T: int, N: int) -> np.ndarray:
    """Rendered frames [N*T, C, H, W] -> uint8 [T, N, H, W] (gray) or [T, N, H, W, 3] (RGB)."""
    x = (frames.clamp(0, 1) * 255).round().byte().numpy()
    x = x.reshape(N, T, *x.shape[1:]).swapaxes(0, 1)  # [T, N, C, H, W]
    return np.ascontiguousarray(x[:, :, 0] if x.shape[2] == 1 else np.moveaxis(x, 2, -1))


def train_frames(data: BenchData, n: int, seed: int) -> torch.Tensor:
    """n frames [n, C, H, W] of the TRAIN split of the benchmark's data (never test clips)."""
    rng = np.random.default_rng(seed)
    if data.shapes is not None:
        clips = moving_shapes(n // 20 + 1, 20, 64, "train", seed=seed + 1).video  # [20, M, H, W, 3]
        x = clips.reshape(-1, *clips.shape[2:])[rng.permutation(clips.shape[0] * clips.shape[1])[:n]]
        return torch.from_numpy(x).float().movedim(-1, 1) / 255
    from ..frames import MovingMNISTFrames

    src = MovingMNISTFrames("train", 2, data.video.shape[-1])
    return torch.from_numpy(src.sample(rng, n)).float() / 255


def _clip_key(ks, opts: Options) -> tuple:
    """What a clip-level inversion of keyframe set ks depends on: rows that agree on it share one."""
    return ks, *(getattr(opts, name) for name in CLIP_INVERSION_OPTIONS)


def _cached_clips(cache: dict, pipe: Pipeline, ks, keys: list, sets: list, opts: Options, attempt: int) -> Inversion:
    """Pipeline.run_clips' step 1 for the first len(sets) of the clips `keys`: every clip's inversion from start
    `attempt`, made once per (keyframe set, inversion options, attempt) and cut to those clips (and their share
    of its seconds). Any other subset (the clips an attempt retries, `retry_above`) is inverted on its own."""
    if any(s is not k for s, k in zip(sets, keys)):
        return pipe.project_clips(sets, opts, attempt)
    key = (_clip_key(ks, opts), attempt)
    if key not in cache:
        cache[key] = pipe.project_clips(keys, opts, attempt)
    inv, n = cache[key], len(sets) * len(ks)
    share = len(sets) / len(keys)
    return Inversion(inv.latents[:n], inv.reconstructions[:n], inv.errors[:n], inv.seconds * share)


def _row(results, name):
    first = next(iter(results["keyframe_sets"].values()))
    return next(r for r in first if r["name"] == name)


def measure_speed(pipe: Pipeline, frames: torch.Tensor, cfg: BenchConfig, opts: Options, method: str) -> dict:
    """Seconds per clip by stage (one clip at a time), batched against per-image inversion, render rate and
    memory. frames: the test clips [T, N, C, H, W]."""
    T, N = frames.shape[:2]
    ks = list(cfg.keyframes)
    clips = []
    for i in range(min(5, N)):  # one clip at a time, as a user runs it
        k = frames[ks, i]  # [K, C, H, W]
        t0 = time.perf_counter()
        clip = pipe(k, [float(t) for t in ks], T)
        clips.append({**clip.timings, "total": time.perf_counter() - t0})
    per_clip = {k: float(np.median([c[k] for c in clips])) for k in clips[0]}
    # batched inversion against the per-image scipy float64 reference, same images
    n = min(cfg.slow_subset, N) if not cfg.quick else min(4, N)
    x = frames[ks, :n].flatten(0, 1)  # [K * n, C, H, W]
    ours = invert(pipe.generator, x.to(pipe.device), method, pipe.projector, steps=opts.lbfgs_steps, z_dim=pipe.z_dim)
    speed = {"inversion_batched": {"seconds_per_image": ours.seconds / len(x), "mse_pixel": float(ours.errors.mean())}}
    if runs_group(cfg, "inversion") or runs_group(cfg, "original"):  # the reference costs ~20 s per image on a CPU
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
    if pipe.layout is not None and hasattr(pipe.generator, "sample_latents"):  # motion and looks apart
        for part in ("positions", "appearance"):
            out[f"ppl_z_{part}"] = perceptual_path_length(pipe.generator, feats, samples, eps, "z", seed, moving=part)
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
        "cpu": cpu_name(),
        "threads": _t.get_num_threads(),
        "date": time.strftime("%Y-%m-%d"),
    }


# ------------------------------------------------------------------ outputs


def write_examples(pipe, video, frames, cfg, opts, path) -> None:
    """Truth, the pipeline and a crossfade for the first 4 sequences, keyframe columns marked.
    video: the test clips uint8 [T, N, H, W(, 3)]; frames: the same as float [T, N, C, H, W]."""
    ks = list(cfg.keyframes)
    T, n = video.shape[0], min(4, video.shape[1])
    keys = [frames[ks, i] for i in range(n)]  # [K, C, H, W] each
    clips = pipe.generate_many(keys, [[float(k) for k in ks]] * n, T, **vars(opts))
    rows, labels = [], []
    for i, clip in enumerate(clips):
        gen = _to_video(clip.frames, T, 1)[:, 0]
        fade = baselines.crossfade(video[:, i : i + 1], ks)[:, 0]
        rows += [video[:, i], gen, fade]
        labels += [f"#{i} truth", f"#{i} pipeline", f"#{i} crossfade"]
    write_png(path, contact_sheet(rows, labels, ks))


CLASSIFIERS = {  # the benchmark's data -> (architecture of its identity classifier, shipped model that holds one)
    None: ("digit-classifier", "moving-mnist-64"),  # the dcgan model folder holds the digit classifier
    "moving-shapes": ("shape-classifier", "moving-shapes"),
}


def load_classifier(path: str | Path | None, model_dir: str | Path | None, data: str | None = None):
    """The identity classifier for `data` (digits for Moving MNIST and files, shapes for moving-shapes):
    `path`, else the model folder's classifier/, else the shipped one."""
    arch, shipped = CLASSIFIERS.get(data, CLASSIFIERS[None])
    for candidate in [path, Path(model_dir) / "classifier" if model_dir else None, SHIPPED / shipped / "classifier"]:
        if candidate is not None and Path(candidate).is_dir():
            return load_model(candidate, expect=arch)
    what = "shape" if arch == "shape-classifier" else "digit"
    hint = "latentvideo train classifier" + (" --data moving-shapes" if data == "moving-shapes" else "")
    raise LatentVideoError(f"no {what} classifier found", hint=f"pass --classifier DIR ({hint})")
