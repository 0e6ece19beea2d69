"""The pipeline: keyframe images in, a clip out. It reads like the method:

    1. project each keyframe into latent space (P-NET, then batched L-BFGS)   invert.py
    2. PCA on the keyframe latents, then fit a line over time                 trajectory.py
       (or, with the bounce motion prior, paths fitted in image space: each
       in-between frame's target is projected too)                            motion.py
    3. sample one latent per output frame on that line                        trajectory.py
    4. render every latent with the generator                                 render.py
    5. critic correction: a few small gradient-ascent steps on C              correct.py
(writing the clip is render.write_clip; the CLI does the I/O.)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path

import numpy as np
import torch

from .correct import correct_clip, correct_latents, correct_pixels
from .errors import LatentVideoError
from .experimental.joint import fit_curves_through_generator
from .experimental.time_warp import arc_length_times
from .invert import METHODS, Inversion, invert
from .models import GENERATORS, Synthesis, has_mapping, load_model, module_device, resolve_device
from .motion import BounceFit, fit_bounce
from .objects import LatentLayout, latent_layout
from .render import render
from .slots import invert_clips
from .trajectory import check_times, evenly_spaced_times, fit_trajectory, lerp_path, slerp_path
from .unwrap import unwrap_positions

PRETRAINED = Path(__file__).parent / "pretrained" / "moving-mnist-64"
MAX_FRAMES = 10_000  # cap on --frames; rendering is chunked, so memory stays bounded
PATHS = ("line", "lerp", "slerp")
MOTION_PRIORS = ("off", "bounce")
CRITIC_SPACES = ("off", "pixel", "latent")
LATENT_SPACES = ("z", "w")
OBJECT_FRAME_STEPS = 50  # generators with slots: L-BFGS per keyframe before the clip-level fit


@dataclass
class Options:
    """Every knob of the pipeline. Defaults are the measured best (see BENCHMARK.md)."""

    method: str = "pnet+lbfgs"  # inversion: pnet | lbfgs | pnet+lbfgs | scipy
    lbfgs_steps: int = 300  # more steps: better motion, ink and identity (BENCHMARK.md)
    prior_weight: float = 0.0
    path: str = "lerp"  # lerp (through every keyframe) | slerp | line (PCA + least-squares polynomial, the original)
    pca: float | None = 0.99  # fraction of variance kept; None = no PCA
    degree: int = 1
    critic: str = "pixel"  # off | pixel | latent
    critic_steps: int = 20
    critic_step_size: float = 1e-2
    critic_anchor: float = 0.0
    render_batch: int = 256
    seed: int = 0
    # beyond the original pipeline, off by default but the motion prior (experimental/, correct.py, motion.py)
    joint_steps: int = 0  # > 0: refine each clip's line through G, all keyframes jointly (L-BFGS iterations)
    joint_critic: float = 0.0  # joint fit: weight of the critic's mean score on the in-between frames
    joint_prior: float = 0.0  # joint fit: weight of (|z|^2 / z_dim - 1)^2 on the in-between latents
    critic_temporal: float = 0.0  # > 0: correct each clip's frames jointly, penalising faster frame change
    latent_space: str = "z"  # z | w (w: the mapping network's output; needs a generator with one)
    time_warp: bool = False  # between keyframes, space frames evenly by arc length in feature space
    # bounce: sprites on black that bounce off the walls (motion.py); clips it cannot explain keep the path
    # (and the joint fit and time warp, which act only on those)
    motion_prior: str = "bounce"
    motion_speed: float | None = None  # bounce: every object's speed in px/frame, when known
    motion_steps: int = 50  # bounce: L-BFGS iterations projecting each in-between frame (0: P-NET's guess)
    # generators that declare position coordinates (objects.LatentLayout), e.g. the objects generator:
    clip_steps: int = 60  # joint L-BFGS iterations fitting a clip's keyframes (one appearance per slot); 0: per frame
    unwrap: bool = True  # unwrap positions so that the path is the straightest bouncing line (unwrap.py)

    def validated(self) -> Options:
        if self.method not in METHODS:
            raise LatentVideoError(f"unknown inversion method {self.method!r}", hint=", ".join(METHODS))
        if self.path not in PATHS:
            raise LatentVideoError(f"unknown path {self.path!r}", hint=", ".join(PATHS))
        if self.critic not in CRITIC_SPACES:
            raise LatentVideoError(f"unknown critic correction {self.critic!r}", hint=", ".join(CRITIC_SPACES))
        if self.pca is not None and not (_is_number(self.pca) and 0 < self.pca <= 1):  # NaN fails this too
            raise LatentVideoError(f"--pca must be in (0, 1], got {self.pca}")
        if self.latent_space not in LATENT_SPACES:
            raise LatentVideoError(f"unknown latent space {self.latent_space!r}", hint=", ".join(LATENT_SPACES))
        if self.motion_prior not in MOTION_PRIORS:
            raise LatentVideoError(f"unknown motion prior {self.motion_prior!r}", hint=", ".join(MOTION_PRIORS))
        if self.motion_speed is not None and not (
            _is_number(self.motion_speed) and np.isfinite(self.motion_speed) and self.motion_speed > 0
        ):
            raise LatentVideoError(f"--motion-speed must be a number > 0, got {self.motion_speed!r}")
        for name in ("time_warp", "unwrap"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                flag = "--" + name.replace("_", "-")
                raise LatentVideoError(f"{flag} must be true or false, got {getattr(self, name)!r}")
        ints = (("degree", 1), ("lbfgs_steps", 0), ("critic_steps", 0), ("render_batch", 1), ("seed", 0))
        ints += (("motion_steps", 0), ("clip_steps", 0))
        for name, low in (*ints, ("joint_steps", 0)):
            value = getattr(self, name)
            if not _is_int(value) or value < low:
                flag = "--" + name.replace("_", "-")
                raise LatentVideoError(f"{flag} must be an integer >= {low}, got {value!r}")
        for name in (
            "prior_weight",
            "critic_step_size",
            "critic_anchor",
            "joint_critic",
            "joint_prior",
            "critic_temporal",
        ):
            value = getattr(self, name)
            if not (_is_number(value) and np.isfinite(value) and value >= 0):
                raise LatentVideoError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {value!r}")
        if self.joint_steps and self.path != "line":
            raise LatentVideoError("--joint-steps refines the 'line' path", hint="use --path line")
        if (self.joint_critic or self.joint_prior) and not self.joint_steps:
            raise LatentVideoError(
                "--joint-critic and --joint-prior are terms of the joint fit", hint="set --joint-steps"
            )
        if self.critic_temporal and self.critic == "off":
            raise LatentVideoError("--critic-temporal needs critic correction", hint="use --critic pixel or latent")
        return self


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass
class Clip:
    frames: torch.Tensor  # [T, C, H, W] in [0, 1]
    latents: torch.Tensor  # [T, z_dim]
    times: np.ndarray  # [K] keyframe times (frame indices, may be fractional)
    keyframe_latents: torch.Tensor  # [K, z_dim]
    reconstructions: torch.Tensor  # [K, C, H, W]
    keyframe_errors: torch.Tensor  # [K] MSE per pixel of each keyframe's reconstruction
    timings: dict = field(default_factory=dict)  # seconds per stage
    motion: BounceFit | None = None  # the bounce paths the frames follow (motion_prior 'bounce'), else None


class Pipeline:
    """Generator + critic (+ optional P-NET). Any torch modules with these signatures work:
    G: [N, z_dim] -> [N, C, H, W] in [0, 1];  C: [N, C, H, W] -> [N];  P: [N, C, H, W] -> [N, z_dim]."""

    def __init__(self, generator, critic=None, projector=None, z_dim: int | None = None, device=None, layout=None):
        self.generator, self.critic, self.projector = generator, critic, projector
        for m in (generator, critic, projector):
            if m is not None:
                m.eval().requires_grad_(False)
        self.z_dim = z_dim or getattr(generator, "z_dim", None)
        if self.z_dim is None:
            raise LatentVideoError("cannot tell the generator's latent size", hint="pass z_dim=")
        # which latent coordinates are object positions: from the model folder's config.json (the module's
        # latent_layout attribute) or given here for a module of your own; None for a plain generator
        if isinstance(layout, dict):
            layout = LatentLayout.from_dict(layout, self.z_dim)
        elif layout is not None and not isinstance(layout, LatentLayout):
            raise LatentVideoError(f"layout must be a LatentLayout or a dict, got {type(layout).__name__}")
        self.layout = layout if layout is not None else latent_layout(generator)
        if self.layout is not None:
            LatentLayout.from_dict(self.layout.to_dict(), self.z_dim)  # indices within this latent
        self.device = torch.device(device) if device is not None else module_device(generator)
        # images -> features for time warping (e.g. a DigitClassifier's .features); None = pixels
        self.feature_fn = None
        with torch.no_grad():  # one probe render tells the frame shape
            probe = generator(torch.zeros(1, self.z_dim, device=self.device))
        if not torch.is_tensor(probe) or probe.ndim != 4 or probe.shape[0] != 1 or probe.shape[1] not in (1, 3):
            shape = list(probe.shape) if torch.is_tensor(probe) else type(probe).__name__
            raise LatentVideoError(f"the generator must return images [N, 1 or 3, H, W], got {shape} for N = 1")
        self.frame_shape = tuple(probe.shape[1:])

    @classmethod
    def from_modules(cls, generator, critic=None, projector=None, z_dim=None, layout=None) -> Pipeline:
        """Your own modules. `layout` (a LatentLayout or its dict: position index pairs and fold range in px)
        declares which latent coordinates are object positions; such a generator gets the unwrapped path."""
        return cls(generator, critic, projector, z_dim, layout=layout)

    @classmethod
    def from_dir(cls, path: str | Path | None = None, device: str = "auto") -> Pipeline:
        """Load a model folder holding generator/ and critic/ (and projector/ if trained):
        a training run directory or the shipped default (path=None)."""
        path = Path(path) if path is not None else PRETRAINED
        if path.exists() and not path.is_dir():
            raise LatentVideoError(
                f"a model is a folder holding generator/ and critic/, got a file: {path}",
                hint="pickled .pt/.pkl checkpoints are never loaded; export with models.save_model()",
            )
        if not path.is_dir():
            raise LatentVideoError(f"model directory not found: {path}")
        if not (path / "generator").exists():
            raise LatentVideoError(f"{path} has no generator/ model", hint="point --model at a run or model folder")
        dev = resolve_device(device)
        G = load_model(path / "generator", dev, expect=GENERATORS)
        C = load_model(path / "critic", dev) if (path / "critic").exists() else None
        P = load_model(path / "projector", dev) if (path / "projector").exists() else None
        pipe = cls(G, C, P)
        if (path / "classifier").is_dir():  # time warping measures arc length in its feature space
            classifier = load_model(path / "classifier", dev, expect="digit-classifier").eval().requires_grad_(False)
            pipe.feature_fn = classifier.features
        return pipe

    @property
    def channels(self) -> int:
        return self.frame_shape[0]

    @property
    def resolution(self) -> int:
        return self.frame_shape[-1]

    def default_options(self) -> Options:
        opts = Options()
        if self.projector is None:
            opts = replace(opts, method="lbfgs")
        if self.critic is None:
            opts = replace(opts, critic="off")
        if self.layout is not None:  # positions are latent coordinates: the path moves objects by itself
            opts = replace(opts, motion_prior="off", lbfgs_steps=OBJECT_FRAME_STEPS)
        return opts

    def options(self, **overrides) -> Options:
        known = {f.name for f in fields(Options)}
        unknown = set(overrides) - known
        if unknown:
            raise LatentVideoError(f"unknown option(s): {', '.join(sorted(unknown))}")
        opts = replace(self.default_options(), **overrides).validated()
        if opts.method in ("pnet", "pnet+lbfgs") and self.projector is None:
            raise LatentVideoError(f"method {opts.method!r} needs a P-NET", hint="use --method lbfgs")
        if opts.critic != "off" and self.critic is None:
            raise LatentVideoError("critic correction needs a critic", hint="use --critic off")
        if opts.joint_critic and self.critic is None:
            raise LatentVideoError("--joint-critic needs a critic", hint="set --joint-critic 0")
        if opts.latent_space == "w" and not has_mapping(self.generator):
            raise LatentVideoError("latent space 'w' needs a generator with a mapping network", hint="use z")
        return opts

    def latent_generator(self, opts: Options):
        """The network that renders the pipeline's latents: G (z space) or G's synthesis network (w space)."""
        return self.generator if opts.latent_space == "z" else Synthesis(self.generator)

    def __call__(self, keyframes, times=None, num_frames: int = 20, **options) -> Clip:
        """keyframes: float [K, C, H, W] in [0, 1] (see `prepare_keyframes`)."""
        return self.generate_many([keyframes], [times], num_frames, **options)[0]

    def generate_many(self, keyframe_sets, times_list=None, num_frames: int = 20, **options) -> list[Clip]:
        """Many clips at once: all keyframes are inverted in one batched optimisation."""
        opts = self.options(**options)
        sets, times_list = self.check_inputs(keyframe_sets, times_list, num_frames, opts)
        if self.layout is not None and opts.clip_steps:  # 1. clip-level: one appearance per slot and clip
            inv = self.project_clips(sets, opts)
        else:  # 1. every keyframe of every clip, one batch
            inv = self.project(torch.cat(sets), opts)
        bounds = np.cumsum([0] + [len(k) for k in sets])
        latents = [inv.latents[bounds[i] : bounds[i + 1]] for i in range(len(sets))]
        fits = self.fit_motion(sets, times_list, opts)  # image-space paths (None: the latent path)
        frames, z, timings = self.animate(latents, times_list, num_frames, opts, keyframes=sets, fits=fits)  # 2-5.
        timings = {"project": inv.seconds / len(sets), **timings}
        clips = []
        for i in range(len(sets)):
            s, k = slice(i * num_frames, (i + 1) * num_frames), slice(bounds[i], bounds[i + 1])
            clips.append(
                Clip(
                    frames[s],
                    z[s],
                    times_list[i],
                    inv.latents[k].cpu(),
                    inv.reconstructions[k].cpu(),
                    inv.errors[k].cpu(),
                    dict(timings),
                    fits[i],
                )
            )
        return clips

    def check_inputs(self, keyframe_sets, times_list, num_frames: int, opts: Options):
        if not 2 <= num_frames <= MAX_FRAMES:
            raise LatentVideoError(f"--frames must be between 2 and {MAX_FRAMES}, got {num_frames}")
        times_list = times_list or [None] * len(keyframe_sets)
        if len(times_list) != len(keyframe_sets):
            raise LatentVideoError(f"{len(times_list)} time lists for {len(keyframe_sets)} clips")
        sets = [self._check_keyframes(k) for k in keyframe_sets]
        times_list = [
            check_times(evenly_spaced_times(len(k), num_frames) if t is None else t, len(k), num_frames)
            for k, t in zip(sets, times_list)
        ]
        for k in sets:
            if opts.path == "line" and opts.degree >= len(k):
                raise LatentVideoError(f"--degree {opts.degree} needs more than {opts.degree} keyframes, got {len(k)}")
        return sets, times_list

    def project(self, images: torch.Tensor, opts: Options):
        """Step 1: images [N, C, H, W] -> Inversion (latents, reconstructions, errors, seconds);
        latents in w (mapping applied to P-NET's guesses) when opts.latent_space is 'w'."""
        P = self.projector
        if opts.latent_space == "w" and P is not None:
            P = partial(_mapped, self.generator, P)
        return invert(
            self.latent_generator(opts),
            images.to(self.device),
            opts.method,
            P,
            steps=opts.lbfgs_steps,
            prior_weight=opts.prior_weight,
            seed=opts.seed,
            z_dim=self.z_dim,
        )

    def project_clips(self, keyframe_sets: list[torch.Tensor], opts: Options) -> Inversion:
        """Step 1 for a generator with slots: slots.invert_clips, flattened to one Inversion over all keyframes."""
        P = self.projector if opts.method in ("pnet", "pnet+lbfgs") else None
        steps = 0 if opts.method == "pnet" else opts.lbfgs_steps
        ci = invert_clips(
            self.generator, keyframe_sets, P, layout=self.layout, frame_steps=steps, clip_steps=opts.clip_steps
        )
        cat = torch.cat
        return Inversion(cat(ci.latents), cat(ci.reconstructions), cat(ci.errors), ci.seconds)

    def unwrapped(self, z_key: torch.Tensor, times, opts: Options) -> torch.Tensor:
        """Keyframe latents [K, z_dim] with their position coordinates unwrapped (unwrap.py): the straight
        line through them bounces off the walls. Unchanged without a layout or with opts.unwrap off."""
        if self.layout is None or not opts.unwrap:
            return z_key
        idx = self.layout.index  # [slots, 2]
        speed = None if opts.motion_speed is None else opts.motion_speed / self.layout.fold_range
        u = unwrap_positions(z_key[:, idx].detach().cpu().double().numpy(), times, speed=speed, degree=opts.degree)
        z = z_key.detach().clone()
        z[:, idx] = torch.from_numpy(u.positions).to(z)
        return z

    def fit_motion(self, keyframes: list[torch.Tensor], times_list, opts: Options) -> list[BounceFit | None]:
        """Per clip, the bounce paths of its keyframes' objects (motion.fit_bounce), or None where the
        prior is off or does not explain the keyframes (gray models only)."""
        if opts.motion_prior == "off" or self.channels != 1:
            return [None] * len(keyframes)
        return [fit_bounce(k[:, 0].cpu().numpy(), t, speed=opts.motion_speed) for k, t in zip(keyframes, times_list)]

    def animate(
        self,
        latents: list[torch.Tensor],
        times_list,
        num_frames: int,
        opts: Options,
        reference=None,
        keyframes=None,
        fits=None,
    ):
        """Steps 2-5 for clips whose keyframe latents are known ([K, z_dim] each). `reference`
        latents [M, z_dim] (e.g. of many train frames), if given, supply the PCA basis.
        `keyframes` (the images [K, C, H, W] of each clip) are needed by the joint fit (opts.joint_steps)
        and the motion prior, whose `fits` (from fit_motion) are computed here when not given.
        Returns frames [clips * T, C, H, W] (CPU), latents [clips * T, z_dim] and seconds per clip."""
        G = self.latent_generator(opts)
        # 2-3. per clip: PCA + least-squares polynomial over time, sampled at every output frame
        t0 = time.perf_counter()
        query = np.arange(num_frames, dtype=np.float64)
        if opts.motion_prior != "off" and fits is None:
            if keyframes is None or len(keyframes) != len(latents):
                raise LatentVideoError("the motion prior needs every clip's keyframe images", hint="keyframes=")
            fits = self.fit_motion(keyframes, times_list, opts)
        curves = []  # per clip: times -> latents
        for z_key, times in zip(latents, times_list):
            z_key = self.unwrapped(z_key, times, opts)
            if opts.path == "line":
                curves.append(fit_trajectory(z_key, times, degree=opts.degree, pca=opts.pca, reference=reference))
            else:
                curves.append(partial(lerp_path if opts.path == "lerp" else slerp_path, z_key, times))
        if opts.joint_steps:  # the lines refined through G, all keyframes of a clip jointly
            if keyframes is None or len(keyframes) != len(latents):
                raise LatentVideoError("the joint curve fit needs every clip's keyframe images", hint="keyframes=")
            curves = fit_curves_through_generator(
                G,
                [torch.as_tensor(k, dtype=torch.float32) for k in keyframes],
                latents,
                curves,
                steps=opts.joint_steps,
                critic=self.critic,
                critic_weight=opts.joint_critic,
                prior_weight=opts.joint_prior,
                query_times=[query] * len(curves),
            )
        if fits is not None and any(f is not None for f in fits):
            curves = self.motion_curves(curves, latents, times_list, fits, query, opts)
        paths = []
        for i, (curve, times) in enumerate(zip(curves, times_list)):
            q = query
            if opts.time_warp and (fits is None or fits[i] is None):  # a bounce fit already sets the timing
                q = arc_length_times(lambda s, c=curve: c(s).to(self.device), times, query, G, self.feature_fn)
            paths.append(curve(q))
        z = torch.cat(paths).to(self.device)  # [clips * T, z_dim]
        t_path = time.perf_counter() - t0

        # 4. render (latent-space critic correction acts before it)
        t0 = time.perf_counter()
        t_correct = 0.0
        corr = (opts.critic_steps, opts.critic_step_size, opts.critic_anchor)
        if opts.critic == "latent" and opts.critic_steps:
            if opts.critic_temporal:  # all frames of a clip together, clip by clip
                parts = [
                    correct_clip(G, self.critic, zc, None, *corr, opts.critic_temporal, "latent")[0]
                    for zc in z.split(num_frames)
                ]
                z = torch.cat(parts)
            else:
                z = correct_latents(G, self.critic, z, *corr)
            t_correct = time.perf_counter() - t0
        frames = render(G, z, batch_size=opts.render_batch)  # [clips * T, C, H, W]
        t_render = time.perf_counter() - t0 - t_correct

        # 5. pixel-space critic correction
        t0 = time.perf_counter()
        if opts.critic == "pixel" and opts.critic_steps:
            if opts.critic_temporal:
                parts = [
                    correct_clip(None, self.critic, None, f.to(self.device), *corr, opts.critic_temporal)[1]
                    for f in frames.split(num_frames)
                ]
                frames = torch.cat(parts).cpu()
            else:
                frames = correct_pixels(self.critic, frames.to(self.device), *corr).cpu()
        t_correct += time.perf_counter() - t0
        n = len(latents)
        return frames, z.cpu(), {"path": t_path / n, "render": t_render / n, "correct": t_correct / n}

    def motion_curves(self, curves, latents, times_list, fits, query: np.ndarray, opts: Options):
        """Clips with a bounce fit get a path through the latents of its frames: every query time that
        is not a keyframe is rendered by the fit in image space and projected (one batch for all clips);
        the path is piecewise linear through those and the keyframe latents."""
        fitted = [i for i, fit in enumerate(fits) if fit is not None]
        between = [query[~np.isin(query, times_list[i])] for i in fitted]  # in-between frame times per clip
        if not sum(len(b) for b in between):  # every frame is a keyframe
            return curves
        targets = [torch.from_numpy(fits[i].frames(b)).float()[:, None] for i, b in zip(fitted, between)]
        inv = self.project(torch.cat(targets), replace(opts, lbfgs_steps=opts.motion_steps))  # [sum, 1, H, W]
        z_between = inv.latents.cpu().split([len(b) for b in between])  # per clip [T - K, z_dim]
        out = list(curves)
        for i, b, zb in zip(fitted, between, z_between):
            t = np.concatenate([times_list[i], b])
            z = torch.cat([latents[i].cpu(), zb])
            order = np.argsort(t, kind="stable")
            out[i] = partial(lerp_path, z[order], t[order])
        return out

    def _check_keyframes(self, keyframes) -> torch.Tensor:
        k = torch.as_tensor(keyframes, dtype=torch.float32)
        if k.ndim != 4:
            raise LatentVideoError(f"keyframes must be [K, C, H, W], got {list(k.shape)}")
        if len(k) < 2:
            raise LatentVideoError(f"need at least 2 keyframes, got {len(k)}")
        if tuple(k.shape[1:]) != self.frame_shape:
            raise LatentVideoError(
                f"keyframes are {list(k.shape[1:])} but the model makes {list(self.frame_shape)}",
                hint="pass --resize",
            )
        if not torch.isfinite(k).all():
            raise LatentVideoError("keyframes contain NaN or inf")
        return k


def _mapped(G, P, images):
    """P-NET's guess in w: mapping(P(x))."""
    return G.mapping(P(images))


def prepare_keyframes(keyframes, channels: int, resolution: int, resize: bool = False) -> torch.Tensor:
    """Paths, PIL images or arrays ([K, H, W], [K, H, W, 3], [K, C, H, W], uint8 or float in [0, 1];
    or a list mixing paths, PIL images and single-frame arrays) -> float [K, C, H, W] for a model
    with `channels` and `resolution`. RGB becomes gray for a 1-channel model and gray RGB for a
    3-channel one; a size other than the model's is an error unless `resize`."""
    from PIL import Image

    from .data import _to_array, load_image, to_frames

    if isinstance(keyframes, (np.ndarray, torch.Tensor)):
        a = _as_uint8(keyframes, "keyframes")
        if a.ndim != 4 and a.ndim != 3:
            raise LatentVideoError(f"keyframes must be [K, H, W], [K, H, W, C] or [K, C, H, W], got {list(a.shape)}")
        images, names = [_as_image(x, f"keyframe {i}") for i, x in enumerate(a)], None
    elif isinstance(keyframes, (str, Path, Image.Image)):
        raise LatentVideoError("keyframes must be a list of images, not one image")
    else:
        images, names = [], []
        for i, k in enumerate(keyframes):
            if isinstance(k, (str, Path)):
                images.append(load_image(k))
                names.append(str(k))
            elif isinstance(k, Image.Image):  # any mode, read as load_image reads files
                images.append(_to_array(k))
                names.append(f"image {i}")
            elif isinstance(k, (np.ndarray, torch.Tensor)):  # one frame [H, W], [H, W, C] or [C, H, W]
                images.append(_as_image(_as_uint8(k, f"keyframe {i}"), f"keyframe {i}"))
                names.append(f"image {i}")
            else:
                raise LatentVideoError(f"keyframe {i} is a {type(k).__name__}: expected a path, PIL image or array")
    if not images:
        raise LatentVideoError("no keyframes given")
    frames = to_frames(images, channels, resolution, resize=resize, names=names)
    return torch.from_numpy(frames).float() / 255


def _as_uint8(x, what: str) -> np.ndarray:
    """uint8 (or integers in 0..255) as they are; floats in [0, 1] -> uint8."""
    a = x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise LatentVideoError(f"{what} must be uint8 or floats in [0, 1], got {a.dtype}")
    if not np.isfinite(a).all():
        raise LatentVideoError(f"{what} contain NaN or inf")
    if np.issubdtype(a.dtype, np.integer):  # integer pixel values, as uint8 but wider
        if a.size and (a.min() < 0 or a.max() > 255):
            raise LatentVideoError(f"{what} hold {a.dtype} values outside 0..255")
        return a.astype(np.uint8)
    return np.clip(np.round(a * 255), 0, 255).astype(np.uint8)


def _as_image(x: np.ndarray, what: str) -> np.ndarray:
    """One frame [H, W], [H, W, C] or [C, H, W] (C = 1 or 3) -> [H, W] or [H, W, 3]."""
    if x.ndim == 3 and x.shape[0] in (1, 3) and x.shape[-1] not in (1, 3):
        x = x.transpose(1, 2, 0)  # [C, H, W] -> [H, W, C]
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if not (x.ndim == 2 or (x.ndim == 3 and x.shape[-1] == 3)) or min(x.shape[:2]) < 2:
        raise LatentVideoError(f"{what} must be [H, W], [H, W, 3] or [C, H, W], got {list(x.shape)}")
    return np.ascontiguousarray(x)


def load_pipeline(path: str | Path | None = None, device: str = "auto") -> Pipeline:
    """The shipped default model (no arguments), a training run, or a model folder."""
    return Pipeline.from_dir(path, device)


def generate(keyframes, times=None, num_frames: int = 20, model=None, **options) -> np.ndarray:
    """Keyframes (array [K, H, W], paths or PIL images) -> uint8 clip [T, H, W] (or [T, H, W, 3])."""
    from .render import to_uint8

    pipe = model if isinstance(model, Pipeline) else load_pipeline(model)
    k = prepare_keyframes(keyframes, pipe.channels, pipe.resolution, resize=options.pop("resize", False))
    return to_uint8(pipe(k, times, num_frames, **options).frames)
