"""WGAN-GP training of the frame GAN (generator G + critic C).

    latentvideo train gan --out runs/mm64 --steps 20000
    torchrun --nproc_per_node=2 -m latentvideo.cli train gan --out runs/mm64

A run directory holds config.json, checkpoint.safetensors (atomic), stats.jsonl,
samples/*.png and exported model dirs generator/ and critic/. `--resume RUN_DIR`
restores step, weights, optimizer moments and every RNG, so a resumed run ends
with the same weights as an uninterrupted one. Under `torchrun --max-restarts=N`, the
workers torchrun restarts after a failure re-run the `--out` command line; they continue
from the run's last complete checkpoint as `--resume` would (see elastic_restart).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..checkpoint import load_checkpoint, save_checkpoint, truncate_stats
from ..errors import LatentVideoError
from ..fileio import remove_stale_temps, write_json
from ..frames import frame_source
from ..models import Critic, Generator, load_model, model_config, save_model
from ..objects import ObjectGenerator
from ..render import save_grid
from .distributed import Dist, checkpoint_owner, elastic_restart, unwrap
from .pairs import check_pair_settings, move_slots, pair_gaps
from .plates import check_plate_settings
from .regularisers import path_length_penalty


@dataclass
class GANConfig:
    data: str = "moving-mnist"  # or a folder of images, a video, a .npy/.npz sequence file
    num_digits: int = 2
    resolution: int = 64
    resize: int | None = None  # rescale user images to this size
    z_dim: int = 256
    width: int = 32  # channels of the first critic / last generator block
    batch_size: int = 64
    steps: int = 20000  # generator steps
    n_critic: int = 2  # critic steps per generator step
    lr_g: float = 2e-4
    lr_c: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.9
    gp_weight: float = 10.0
    ema: float = 0.999  # EMA decay of G's weights, 0 disables
    seed: int = 0
    checkpoint_every: int = 500
    log_every: int = 50
    mapping_layers: int = 0  # > 0: G gets a mapping network z -> w (models.Generator)
    pl_weight: float = 0.0  # StyleGAN2 path-length regularisation of G, 0 = off (training/regularisers.py)
    pl_every: int = 4  # lazy regularisation: a path-length step after every pl_every-th generator step
    arch: str = "dcgan"  # dcgan | objects (objects.ObjectGenerator: position is an explicit latent coordinate)
    objects: int = 2  # objects: slots per frame
    appearance: int = 32  # objects: appearance code size per slot (z_dim = objects * (appearance + 2) + background)
    sprite: int = 28  # objects: sprite size in px (the free range is resolution - sprite)
    background: int = 0  # objects: background code size (0: black, as Moving MNIST)
    init: str | None = None  # start G and C from this model (a run, a model folder or a shipped name): fine-tuning
    pair_weight: float = 0.0  # objects: weight of the pair critic (two frames of one shot; training/pairs.py), 0 = off
    pair_gap: int = 3  # objects: the pair critic's frames are 1..pair_gap frames apart
    pair_speed: float = 3.6  # objects: px per frame that G's slots move between a pair's frames (Moving MNIST's)
    plate_weight: float = 0.0  # objects in colour: > 0 trains the background net against the footage's shot medians
    # (the plate critic, at this weight) and the slots over those real plates (training/plates.py); 0 = off


ARCHS = ("dcgan", "objects")
CENTRE_PRIOR = 3.0  # objects in colour: the alpha logit's centred prior (objects.ObjectGenerator `centre`)


def build_generator(config: GANConfig, resolution: int, channels: int):
    """G for a run: (module, its config.json arguments)."""
    if config.arch == "objects":
        kw = dict(objects=config.objects, appearance=config.appearance, resolution=resolution, channels=channels)
        kw.update(sprite=config.sprite, width=config.width, background=config.background)
        if channels == 3:  # colour: an explicit colour coordinate per object, alpha fading at the box edge
            kw.update(tint=True, edge=max(1, config.sprite // 12), centre=CENTRE_PRIOR)
        return ObjectGenerator(**kw), kw
    kw = dict(z_dim=config.z_dim, resolution=resolution, channels=channels)
    if config.mapping_layers:  # only then: configs without a mapping network stay as they were
        kw["mapping_layers"] = config.mapping_layers
    return Generator(**kw, width=config.width), {**kw, "width": config.width}


def sample_latents(G, n: int, generator: torch.Generator) -> torch.Tensor:
    """Training latents: N(0, I) for a plain generator, the generator's own prior where it has one."""
    G = unwrap(G)
    if hasattr(G, "sample_latents"):
        return G.sample_latents(n, generator)
    return torch.randn(n, G.z_dim, generator=generator)


def check_gan_config(config: GANConfig) -> None:
    """One-line errors for bad settings, before any work."""
    if config.arch not in ARCHS:
        raise LatentVideoError(f"unknown arch {config.arch!r}", hint=", ".join(ARCHS))
    slot_opts = ("objects", "appearance", "sprite", "background")
    if config.arch == "objects":
        if config.mapping_layers or config.pl_weight:
            raise LatentVideoError("mapping_layers and pl_weight are dcgan options", hint="drop them for objects")
        res = config.resize or config.resolution  # a size mismatch with the data is caught once frames load
        ObjectGenerator(config.objects, config.appearance, res, 1, config.sprite, config.width, config.background)
    elif any(getattr(config, k) != getattr(GANConfig, k) for k in slot_opts):
        raise LatentVideoError(f"{', '.join(slot_opts)} are options of the objects generator", hint="arch='objects'")
    check_pair_settings(config.pair_weight, config.pair_gap, config.pair_speed, config.arch)
    check_plate_settings(config.plate_weight, config.arch, config.background)


def init_settings(model: str | Path) -> dict:
    """The GANConfig fields that describe `model`'s generator (arch, slots, sizes): a run started with
    `init=model` takes these unless told otherwise."""
    from ..pipeline import model_dir

    file = model_dir(model) / "generator" / "config.json"
    try:
        g = json.loads(file.read_text())
    except (OSError, ValueError) as e:
        raise LatentVideoError(f"cannot read {file}: {e}") from None
    if g.get("arch") == "objects-generator":
        keys = ("objects", "appearance", "sprite", "background", "width")
        return {"arch": "objects", **{k: g[k] for k in keys if k in g}}
    keys = ("z_dim", "width", "mapping_layers")
    return {"arch": "dcgan", **{k: g[k] for k in keys if k in g}}


def init_from(model: str | Path, G, C, g_config: dict, c_config: dict) -> None:
    """Copy a trained model's generator/ and critic/ weights into a new run's G and C (fine-tuning on new
    frames). The folders' config.json must describe the same networks as this run's."""
    from ..pipeline import model_dir

    path = model_dir(model)
    for name, module, want in (("generator", G, g_config), ("critic", C, c_config)):
        folder = path / name
        if not (folder / "config.json").is_file():
            raise LatentVideoError(f"--init {model}: {path} has no {name}/ model")
        have = {k: v for k, v in json.loads((folder / "config.json").read_text()).items() if k != "latentvideo_version"}
        want = json.loads(json.dumps(want))  # tuples -> lists, as in the file
        if have != want:
            diff = sorted(k for k in set(have) | set(want) if have.get(k) != want.get(k))
            raise LatentVideoError(
                f"--init {model}: its {name} differs from this run's in {', '.join(diff)}",
                hint="train with the settings in its config.json (arch, objects, sprite, background, width, data)",
            )
        module.load_state_dict(load_model(folder).state_dict())


def gradient_penalty_loss(critic, real, fake, eps):
    """WGAN-GP critic loss with one critic forward over [real, fake, interpolates]
    (a single forward keeps DistributedDataParallel happy)."""
    B = real.shape[0]
    mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
    scores = critic(torch.cat([real, fake, mix]))
    s_real, s_fake, s_mix = scores[:B], scores[B : 2 * B], scores[2 * B :]
    (grad,) = torch.autograd.grad(s_mix.sum(), mix, create_graph=True)
    gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    wdist = s_real.mean() - s_fake.mean()
    return -wdist, gp, wdist


TIME_CHECK_EVERY = 10  # generator steps between checks of the `minutes` budget


def train_gan(
    run_dir: str | Path,
    config: GANConfig | None = None,
    resume: bool = False,
    device: str = "auto",
    stop_after: int | None = None,
    progress: bool = True,
    minutes: float | None = None,
) -> Path:
    """Train (or resume) a WGAN-GP run in `run_dir`. Returns the run directory.

    `stop_after` ends the call after that many generator steps in total, and `minutes` once that much
    wall-clock time has passed in this call (checked every `TIME_CHECK_EVERY` steps, agreed by every
    torchrun rank); either writes a checkpoint and leaves the run's planned `steps` as they are, so
    `resume=True` continues it (tests, time-boxed sessions, a lent GPU).
    """
    if minutes is not None and not (isinstance(minutes, (int, float)) and math.isfinite(minutes) and minutes > 0):
        raise LatentVideoError(f"minutes must be a positive number, got {minutes!r}")
    t_call = time.perf_counter()
    run_dir = Path(run_dir)
    # torchrun --max-restarts: restarted workers re-run `train gan --out RUN_DIR`. Once the first attempt has
    # written config.json they continue the run like --resume (from the last complete checkpoint, or from
    # step 0 if there is none yet). The old workers are all gone by then and rank 0 writes no checkpoint
    # before the collectives below, so every rank sees (and loads) the same checkpoint file.
    restart = elastic_restart()
    elastic = restart > 0 and not resume and (run_dir / "config.json").is_file()
    if resume or elastic:
        cfg_file = run_dir / "config.json"
        if not cfg_file.is_file():
            raise LatentVideoError(f"not a training run (no config.json): {run_dir}")
        saved = GANConfig(**json.loads(cfg_file.read_text()))
        if elastic:
            config = config if config is not None else GANConfig()
            if dataclasses.replace(saved, steps=config.steps) != config:
                raise LatentVideoError(
                    f"torchrun restart: {run_dir} holds a run with another config.json",
                    hint="pass --resume to continue it or pick --out",
                )
            ckpt = run_dir / "checkpoint.safetensors"  # a run this torchrun job did not start stays refused
            if ckpt.exists() and checkpoint_owner(ckpt) != os.environ.get("TORCHELASTIC_RUN_ID"):
                raise LatentVideoError(
                    f"{run_dir} already holds a run", hint="pass --resume to continue it or pick --out"
                )
            resume = True
        config = dataclasses.replace(saved, steps=config.steps) if config is not None else saved
    elif config is None:
        config = GANConfig()
    elif (run_dir / "checkpoint.safetensors").exists():
        raise LatentVideoError(f"{run_dir} already holds a run", hint="pass --resume to continue it or pick --out")
    check_gan_config(config)
    if config.pl_weight and (not isinstance(config.pl_every, int) or config.pl_every < 1):
        raise LatentVideoError(f"pl_every must be an integer >= 1, got {config.pl_every!r}")
    dist = Dist(device)
    dev, main = dist.device, dist.rank == 0

    source = frame_source(config.data, config.num_digits, config.resolution, config.resize)
    channels, res = source.shape[0], source.shape[-1]
    if res not in (32, 64, 128):
        raise LatentVideoError(f"frames are {res}x{res}; models need 32, 64 or 128", hint="pass --resize 64")
    torch.manual_seed(config.seed)
    G, g_args = build_generator(config, res, channels)
    G = G.to(dev)
    C = Critic(res, channels, config.width).to(dev)
    if config.init is not None:  # a resumed run's checkpoint overwrites these below
        c_args = dict(width=config.width, resolution=res, channels=channels)
        init_from(config.init, G, C, model_config(G, **g_args), model_config(C, **c_args))
    G_ema = copy.deepcopy(G).requires_grad_(False)
    betas = (config.beta1, config.beta2)
    opt_g = torch.optim.Adam(G.parameters(), config.lr_g, betas=betas)
    opt_c = torch.optim.Adam(C.parameters(), config.lr_c, betas=betas)
    modules, optimizers = {"G": G, "C": C, "G_ema": G_ema}, {"g": opt_g, "c": opt_c}
    pair = config.pair_weight > 0  # the pair critic (training/pairs.py), fresh under --init
    if pair:
        C_pair = Critic(res, 2 * channels, config.width).to(dev)
        opt_cp = torch.optim.Adam(C_pair.parameters(), config.lr_c, betas=betas)
        modules["C_pair"], optimizers["cp"] = C_pair, opt_cp
    plate = config.plate_weight > 0  # the plate critic (training/plates.py), fresh under --init
    if plate:
        if not hasattr(source, "sample_plates") or channels != 3:
            raise LatentVideoError("the plate critic needs colour footage", hint="--data a video or a sequence file")
        source.plates()  # find the shots now: footage without any fails before the first step
        C_plate = Critic(res, channels, config.width).to(dev)
        opt_cq = torch.optim.Adam(C_plate.parameters(), config.lr_c, betas=betas)
        modules["C_plate"], optimizers["cq"] = C_plate, opt_cq
    gen = torch.Generator().manual_seed(config.seed * 1000 + dist.rank)  # z and GP mixing weights
    data_rng = np.random.default_rng([config.seed, dist.rank])
    step = 0
    pl_mean = torch.zeros((), device=dev)  # running mean of the path lengths (saved in the checkpoint)
    if resume and main:  # half-written files of a killed run: the completed ones are intact
        for folder in (run_dir, run_dir / "generator", run_dir / "critic", run_dir / "samples"):
            remove_stale_temps(folder)
    if resume and (run_dir / "checkpoint.safetensors").exists():
        rng, meta = load_checkpoint(run_dir / "checkpoint.safetensors", modules, optimizers)
        step = meta["step"]
        pl_mean.fill_(meta.get("pl_mean", 0.0))  # float32 -> JSON -> float32 is exact
        gen.set_state(rng[f"torch_{dist.rank}"])
        data_rng.bit_generator.state = meta["data_rng"][dist.rank]
        if main:
            truncate_stats(run_dir / "stats.jsonl", step)
            if elastic:
                print(f"torchrun restart {restart}: continuing {run_dir} from step {step}", file=sys.stderr)
    elif resume:  # stopped before its first checkpoint: start over from the same seed and config
        if main:
            print(f"{run_dir} has no checkpoint yet: starting from step 0", file=sys.stderr)
            truncate_stats(run_dir / "stats.jsonl", 0)
            (run_dir / "samples").mkdir(exist_ok=True)
    elif main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "samples").mkdir(exist_ok=True)
        write_json(run_dir / "config.json", dataclasses.asdict(config))

    G_d, C_d = dist.wrap(G), dist.wrap(C)
    Cp_d = dist.wrap(C_pair) if pair else None
    Cq_d = dist.wrap(C_plate) if plate else None
    local_batch = max(1, config.batch_size // dist.world)
    fixed_z = sample_latents(G, 64, torch.Generator().manual_seed(1234)).to(dev)
    end = min(config.steps, stop_after) if stop_after is not None else config.steps

    def real_batch():
        return torch.from_numpy(source.sample(data_rng, local_batch)).to(dev).float() / 255

    def real_pairs():  # [B, 2C, H, W]: frames t and t + g of one shot, stacked on channels
        pairs = source.sample_pairs(data_rng, local_batch, config.pair_gap)  # uint8 [B, 2, C, H, W]
        return torch.from_numpy(pairs).to(dev).flatten(1, 2).float() / 255

    def real_plates():  # [B, C, H, W]: shots' medians
        return torch.from_numpy(source.sample_plates(data_rng, local_batch)).to(dev).float() / 255

    def checkpoint():
        rng = {f"torch_{dist.rank}": gen.get_state()}
        states = [data_rng.bit_generator.state]
        if dist.world > 1:  # every rank's RNG goes into rank 0's file
            import torch.distributed as tdist

            gathered_t = [None] * dist.world
            gathered_d = [None] * dist.world
            tdist.all_gather_object(gathered_t, gen.get_state())
            tdist.all_gather_object(gathered_d, data_rng.bit_generator.state)
            rng = {f"torch_{r}": s for r, s in enumerate(gathered_t)}
            states = gathered_d
        if not main:
            return
        meta = {"step": step, "data_rng": states, "config": dataclasses.asdict(config), "pl_mean": pl_mean.item()}
        meta["elastic_run"] = os.environ.get("TORCHELASTIC_RUN_ID")  # lets a torchrun restart tell its own run
        save_checkpoint(run_dir / "checkpoint.safetensors", modules, optimizers, rng, meta)
        save_model(G_ema if config.ema else G, run_dir / "generator", model_config(G, **g_args))
        save_model(C, run_dir / "critic", model_config(C, width=config.width, resolution=res, channels=channels))
        with torch.no_grad():
            save_grid((G_ema if config.ema else G)(fixed_z), run_dir / "samples" / f"step_{step:07d}.png")

    # Test-only fault injection (tests/test_elastic.py): on torchrun's first attempt, rank
    # LATENTVIDEO_FAULT_RANK exits abruptly once LATENTVIDEO_FAULT_AT_STEP steps are done (and checkpointed,
    # if due), as a killed worker would; the restarted world does not fault, so it finishes the run.
    fault_at = int(os.environ.get("LATENTVIDEO_FAULT_AT_STEP", "-1")) if restart == 0 else -1
    fault = fault_at >= 0 and dist.rank == int(os.environ.get("LATENTVIDEO_FAULT_RANK", "0"))
    bar = tqdm(total=end, initial=step, disable=not (progress and main), desc="train gan", unit="step")
    t0, frames_seen = time.perf_counter(), 0
    try:  # close the bar on errors too, so that the error line starts a line of its own
        while step < end:
            # critic: n_critic steps on fresh real frames
            for i in range(config.n_critic):
                real = real_batch()
                z = sample_latents(G, local_batch, gen).to(dev)
                eps = torch.rand(local_batch, 1, 1, 1, generator=gen).to(dev)
                with torch.no_grad():
                    fake = G(z, over=real_plates()) if plate else G(z)
                loss_c, gp, wdist = gradient_penalty_loss(C_d, real, fake, eps)
                opt_c.zero_grad(set_to_none=True)
                (loss_c + config.gp_weight * gp).backward()
                opt_c.step()
                frames_seen += local_batch * dist.world
                if pair and i == config.n_critic - 1:  # the pair critic, a step per G step: the same fakes, each
                    # beside its latent rendered with the slots moved
                    with torch.no_grad():
                        moved = move_slots(G, z, pair_gaps(local_batch, config.pair_gap, gen), config.pair_speed, gen)
                        fake_pair = torch.cat([fake, G(moved)], 1)
                    eps = torch.rand(local_batch, 1, 1, 1, generator=gen).to(dev)
                    loss_p, gp_p, wdist_p = gradient_penalty_loss(Cp_d, real_pairs(), fake_pair, eps)
                    opt_cp.zero_grad(set_to_none=True)
                    (loss_p + config.gp_weight * gp_p).backward()
                    opt_cp.step()
                if plate and i == config.n_critic - 1:  # the plate critic, a step per G step: the same latents'
                    # backdrops, drawn by the background net alone
                    with torch.no_grad():
                        back = unwrap(G).draw_backdrop(unwrap(G).split(z)[2])
                    eps = torch.rand(local_batch, 1, 1, 1, generator=gen).to(dev)
                    loss_q, gp_q, wdist_q = gradient_penalty_loss(Cq_d, real_plates(), back, eps)
                    opt_cq.zero_grad(set_to_none=True)
                    (loss_q + config.gp_weight * gp_q).backward()
                    opt_cq.step()
            # generator: one step against the current critic (unwrapped, frozen)
            C.requires_grad_(False)
            z = sample_latents(G, local_batch, gen).to(dev)
            zs = z
            if pair:  # one forward of G over both frames of each pair (DDP allows one forward per backward)
                C_pair.requires_grad_(False)
                zs = torch.cat(
                    [z, move_slots(G, z, pair_gaps(local_batch, config.pair_gap, gen), config.pair_speed, gen)]
                )
            if plate:  # the slots over real plates (a pair's two frames over one), G's backdrops in the same forward
                C_plate.requires_grad_(False)
                x, back = G_d(zs, with_backdrop=True, over=real_plates().repeat(len(zs) // local_batch, 1, 1, 1))
            else:
                x = G_d(zs)
            if pair:
                x, x2 = x.chunk(2)
                loss_g = -C(x).mean() - config.pair_weight * C_pair(torch.cat([x, x2], 1)).mean()
            else:
                loss_g = -C(x).mean()
            if plate:
                loss_g = loss_g - config.plate_weight * C_plate(back[:local_batch]).mean()
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            if pair:
                C_pair.requires_grad_(True)
            if plate:
                C_plate.requires_grad_(True)
            if config.pl_weight and (step + 1) % config.pl_every == 0:  # lazy path-length regularisation
                pl_z = torch.randn(max(1, local_batch // 2), config.z_dim, generator=gen).to(dev)
                pl, pl_mean = path_length_penalty(G, pl_z, pl_mean, generator=gen, reduce=dist.mean)
                opt_g.zero_grad(set_to_none=True)
                (config.pl_weight * config.pl_every * pl).backward()
                dist.average_grads(G)
                opt_g.step()
            C.requires_grad_(True)
            if config.ema:
                beta = min(config.ema, (1 + step) / (10 + step))  # warm-up: an early EMA averages the random init
                with torch.no_grad():
                    for pe, p in zip(G_ema.parameters(), G.parameters()):
                        pe.lerp_(p, 1 - beta)
            step += 1
            bar.update(1)
            if minutes is not None and step % TIME_CHECK_EVERY == 0 and step < end:
                late = torch.tensor([float(time.perf_counter() - t_call > 60 * minutes)], device=dev)
                if dist.mean(late).item() > 0:  # any rank out of time: all stop at this step
                    end = step
            if main and (step % config.log_every == 0 or step == end):
                fps = frames_seen / (time.perf_counter() - t0)
                row = {
                    "step": step,
                    "wdist": wdist.item(),
                    "gp": gp.item(),
                    "loss_g": loss_g.item(),
                    "frames_per_s": fps,
                }
                if config.pl_weight:
                    row["pl_mean"] = pl_mean.item()
                if pair:
                    row["wdist_pair"] = wdist_p.item()
                if plate:
                    row["wdist_plate"] = wdist_q.item()
                bar.set_postfix(wdist=f"{row['wdist']:.3f}", gp=f"{row['gp']:.3f}", fps=f"{fps:.0f}")
                with open(run_dir / "stats.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
            if step % config.checkpoint_every == 0 or step == end:
                checkpoint()
            if fault and step == fault_at:
                os._exit(1)
    finally:
        bar.close()
    dist.close()
    return run_dir


def export_checkpoint(run_dir: str | Path, out_dir: str | Path, weights: str = "raw") -> Path:
    """Write generator/ and critic/ model folders from a run's checkpoint, with G's raw
    weights or its EMA (early in training the EMA still lags behind the raw weights)."""
    if weights not in ("raw", "ema"):
        raise LatentVideoError(f"unknown weights {weights!r}", hint="raw or ema")
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not (run_dir / "generator").is_dir() or not (run_dir / "critic").is_dir():
        raise LatentVideoError(f"not a training run (no generator/ and critic/): {run_dir}")
    G, C = load_model(run_dir / "generator"), load_model(run_dir / "critic")
    G_ema = copy.deepcopy(G)
    opt_g, opt_c = torch.optim.Adam(G.parameters()), torch.optim.Adam(C.parameters())
    modules = {"G": G, "C": C, "G_ema": G_ema}
    _, meta = load_checkpoint(run_dir / "checkpoint.safetensors", modules, {"g": opt_g, "c": opt_c})
    for name in ("generator", "critic"):
        config = json.loads((run_dir / name / "config.json").read_text())
        model = C if name == "critic" else (G if weights == "raw" else G_ema)
        save_model(model, out_dir / name, config)
    write_json(out_dir / "export.json", {"run": str(run_dir), "step": meta["step"], "weights": weights})
    return out_dir
