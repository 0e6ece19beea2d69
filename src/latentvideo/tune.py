"""Per-clip tuning of G: pivotal tuning (Roich et al. 2021) and, in colour, the clip's background plate.

After inversion, a copy of G per clip has its sprite (and background) nets fine-tuned on the clip's keyframes,
so that the sprites are the keyframes' own objects while the positions still come from the latent path.

    pivotal_tune(G, latents, keyframes)                 one clip -> its tuned copy of G
    pivotal_tune_clips(generators, latents, keyframes)  many clips -> their tuned copies, in one batched loop:
        the copies' tuned weights are stacked [M, ...], torch.func.vmap renders every clip with its own weights
        (the convolutions become grouped ones), and one Adam step serves all clips. Adam is elementwise and the
        clips' losses are separate, so each copy is the one `pivotal_tune` gives (to float rounding), in about
        two thirds of the time per clip on 2 CPU cores (the per-step overheads are shared; the convolutions'
        arithmetic is not). A clip with no partner runs the plain loop on its copy's own weights.
    background_plate(G, latents, keyframes)             a colour clip's static background from its keyframes
    pivotal_tune_clips(..., plates=[...])                tuning over each clip's plate: the sprite net alone, its
        slots' coverage held to the keyframes' matte (`plate_matte`); the pipeline's `plate_tuning` (measured,
        not adopted: docs/benchmark-history.md, 2026-12-04); with `held_backdrop(G, latents)` as the plates and
        no matte, the sprite net alone over the copy's own backdrop, drawn once (`last_bg_tuning` off)
    ..._tune_clips(..., free=[plate_free(...)], halo=w)   a term that holds the slots' coverage to zero where the
        keyframes show the clip's plate (the pipeline's `halo`, in its last tuning)
    joint_tune_clips(generators, latents, keyframes)    pivotal tuning in which the clip's latents move too:
        each keyframe's object positions and each object's colour (a tinted G) take Adam steps with the
        weights, and each copy gets its own sprite detail (per slot, logits added to what its sprite net draws:
        objects.py) -> (copies, latents). Tuning with the latents held keeps each object where, and in the
        colour, an earlier fit left it: a 12 px star placed 1 px apart in two keyframes is tuned into a blur,
        and a slot whose colour was solved while it drew a ring as a disc (the ring's colour mixed with what
        shows through it) stays darker than any shade (at most 1) can make up for.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call, vmap

from .errors import LatentVideoError
from .objects import latent_layout, shares_sprites
from .tints import tint_index

CHUNK = 32  # clips per batched tuning loop (memory grows with it; the time per clip stops falling near 4)
MATTE = 1.0  # weight of the matte term when tuning over a plate
MATTE_DISTANCE = 0.15  # RGB distance from the plate at which a keyframe pixel is all object
# joint tuning (joint_tune_clips): Adam's steps besides the weights' lr, chosen on 7 hard colour test clips
DETAIL_LR = 0.05  # each slot's sprite detail (logits; 0.2 measured alike)
MOVE_PX = 0.2  # each keyframe's positions, px per step (fold units: MOVE_PX / fold range)
TINT_LR = 0.02  # each slot's colour (its tint coordinates t; colour Phi(t))
DETAIL = "sprite_detail"  # the sprite detail's parameter name (objects.ObjectGenerator)


def pivotal_tune(G, latents: torch.Tensor, keyframes: torch.Tensor, steps: int = 30, lr: float = 1e-3):
    """A copy of G whose sprite and background nets (parameters named sprite* or bg*, or all of G's without such:
    the clip's static background is as much a keyframe's appearance as its sprites) are fine-tuned with Adam
    for `steps` so that G(latents [K, z_dim]) matches keyframes [K, C, H, W]; the latents stay fixed. Returns the
    copy, frozen; G is not modified."""
    return pivotal_tune_clips([G], [latents], [keyframes], steps, lr)[0]


def pivotal_tune_clips(generators, latents, keyframes, steps: int = 30, lr: float = 1e-3, **over) -> list[nn.Module]:
    """`pivotal_tune` for many clips at once: `_tune_clips` (over: its plates, matte, free, halo) -> the tuned
    copies."""
    return _tune_clips(generators, latents, keyframes, steps, lr, **over)[0]


def joint_tune_clips(
    generators, latents, keyframes, steps: int = 30, lr: float = 1e-3, **over
) -> tuple[list[nn.Module], list[torch.Tensor]]:
    """Pivotal tuning in which the latents move too (module docstring): `_tune_clips` (over: its plates, matte,
    free, halo) -> (per clip its tuned copy of G with its own sprite detail, per clip its moved latents [K, z_dim]).
    A generator without position coordinates is tuned as `pivotal_tune_clips` tunes it, its latents held."""
    return _tune_clips(generators, latents, keyframes, steps, lr, joint=True, **over)


def _tune_clips(
    generators,
    latents,
    keyframes,
    steps: int,
    lr: float,
    plates=None,
    matte: float = MATTE,
    joint: bool = False,
    free=None,
    halo: float = 0.0,
) -> tuple[list[nn.Module], list[torch.Tensor]]:
    """Tuning for many clips at once: generators (one per clip; the same module may repeat), latents
    (per clip [K, z_dim]) and keyframes (per clip [K, C, H, W]) -> one tuned, frozen copy per clip. Clips are
    tuned together where they have as many keyframes, render alike (shared sprites or frame by frame) and their
    generators agree on every weight that is not tuned; the others alone.

    plates (colour; per clip [3, H, W], tune.background_plate): the keyframes are rendered over the clip's plate
    and only the sprite net is tuned, with `matte` times the squared error between the slots' joint coverage
    (1 - prod(1 - alpha)) and the keyframes' matte (`plate_matte`: where they differ from the plate) added to the
    loss, so that sprites cover the objects and nothing else; each copy keeps its plate (`G.plate`).

    joint: the latents move too (`_Moving`) and each copy gets its sprite detail.

    free (colour; per clip [K, 1, H, W] in [0, 1], `plate_free`): where each keyframe shows the clip's background;
    `halo` times the mean of the slots' joint coverage squared there is added to the loss, so that no slot keeps
    an opaque patch of background colour (invisible over the keyframes' backdrop, a moving hole over the other
    objects in between). -> (copies, per clip latents)."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise LatentVideoError(f"pivot steps must be an integer >= 0, got {steps!r}")
    if not len(generators) == len(latents) == len(keyframes):
        raise LatentVideoError(f"{len(generators)} generators for {len(latents)} latents and {len(keyframes)} clips")
    copies = [copy.deepcopy(G).requires_grad_(False) for G in generators]
    latents = [z.detach() for z in latents]
    if joint:
        for G in copies:
            add_sprite_detail(G)
    if free is not None and len(free) != len(copies):
        raise LatentVideoError(f"{len(free)} background masks for {len(copies)} clips")
    if plates is not None:
        if len(plates) != len(copies):
            raise LatentVideoError(f"{len(plates)} plates for {len(copies)} clips")
        for G in copies:
            G.plate = None  # the plate is an input of the tuning below, set on the copies after it
    groups = defaultdict(list)  # clips that one vmapped loop can tune together
    for i, (G, z) in enumerate(zip(copies, latents)):
        names = tuned_names(G, sprites_only=plates is not None)
        if names and steps:
            groups[(len(z), shares_sprites(G, z), tuple(names), _fixed_key(G, names, plates is not None))].append(i)
    for (_, shared, names, _), idx in groups.items():
        for start in range(0, len(idx), CHUNK):
            chunk = idx[start : start + CHUNK]
            z = torch.stack([latents[i] for i in chunk])  # [M, K, z_dim]
            x = torch.stack([keyframes[i].detach() for i in chunk])  # [M, K, C, H, W]
            p = None if plates is None else torch.stack([plates[i].detach().to(x) for i in chunk])  # [M, 3, H, W]
            f = None if free is None or not halo else torch.stack([free[i].detach().to(x) for i in chunk])
            task = _Task(
                list(names), shared, steps, lr, matte if p is not None else 0.0, halo if f is not None else 0.0
            )
            moving = _Moving(copies[chunk[0]], z, joint)
            if len(chunk) == 1:
                one = [None if v is None else v[0] for v in (p, f)]
                _tune_alone(copies[chunk[0]], moving, x[0], one[0], task, one[1])
            else:
                _tune_together([copies[i] for i in chunk], moving, x, p, task, f)
            for i, zi in zip(chunk, moving().detach()):
                latents[i] = zi
    if plates is not None:
        for G, p in zip(copies, plates):
            G.plate = p.detach()
    return [G.eval().requires_grad_(False) for G in copies], latents


def tuned_names(G, sprites_only: bool = False) -> list[str]:
    """The parameters pivotal tuning changes: the sprite and background nets' (`sprites_only`: the sprite net's),
    or all of G's without such."""
    names = [n for n, _ in G.named_parameters()]
    return [n for n in names if n.startswith(("sprite",) if sprites_only else ("sprite", "bg"))] or names


def plate_matte(keyframes: torch.Tensor, plate: torch.Tensor) -> torch.Tensor:
    """Keyframes [K, 3, H, W] and their clip's plate [3, H, W] -> [K, 1, H, W] in [0, 1]: where an object covers
    the plate, 1 once a pixel is MATTE_DISTANCE from it in RGB."""
    return ((keyframes - plate).norm(dim=1, keepdim=True) / MATTE_DISTANCE).clamp(0, 1)


def plate_free(keyframes: torch.Tensor, plate: torch.Tensor) -> torch.Tensor:
    """Keyframes [K, 3, H, W] and their clip's plate [3, H, W] -> [K, 1, H, W] in [0, 1]: where the keyframes show
    the plate (1 where a pixel equals it, 0 from MATTE_DISTANCE on), squared so that object edges count little."""
    return (1 - plate_matte(keyframes, plate)).pow(2)


@dataclass(frozen=True)
class _Task:
    names: list[str]  # the parameters tuned
    shared: bool  # the clip renders from shared sprites (`forward_shared`), else frame by frame
    steps: int
    lr: float
    matte: float  # weight of the matte term (with a plate)
    halo: float = 0.0  # weight of the coverage term where the keyframes show the background (with `free`)


class _Renderer(nn.Module):
    """One clip's keyframes from its latents [K, z_dim]: from shared sprites (`forward_shared`) or frame by frame;
    with a plate [3, H, W], composed over it, and the slots' joint coverage [K, 1, H, W] returned too (`covered`:
    that coverage without a plate, the slots composed over G's own backdrop)."""

    def __init__(self, G, shared: bool):
        super().__init__()
        self.g, self.shared = G, shared

    def forward(self, z, plate=None, covered: bool = False):
        if plate is None and not covered:
            return self.g.forward_shared(z[None])[0] if self.shared else self.g(z)
        layers = self.g.layers_shared(z[None])[0] if self.shared else self.g.layers(z)  # [K, slots, 4, H, W]
        cover = 1 - (1 - layers[:, :, 3:]).prod(1)
        if plate is None:  # G's own backdrop, drawn once where the keyframes share their background code
            b = self.g.split(z[:1] if self.shared else z)[2]
            back = self.g.backdrop(b).expand(len(z), -1, -1, -1)
        else:
            back = plate.expand(len(z), -1, -1, -1)
        return self.g.compose(layers, back), cover


def _loss(out, x, plate, task: _Task, free=None):
    image, cover = out if isinstance(out, tuple) else (out, None)
    loss = (image - x).pow(2).mean()
    if plate is not None and task.matte:
        loss = loss + task.matte * (cover - plate_matte(x, plate)).pow(2).mean()
    if free is not None and task.halo:
        loss = loss + task.halo * (cover.pow(2) * free).mean()
    return loss


def _tune_alone(G, moving: _Moving, x, plate, task: _Task, free=None):
    """One clip: Adam on G's own weights `task.names` and on what `moving` moves of its latents [1, K, z_dim],
    x [K, C, H, W], plate [3, H, W] or None, free [K, 1, H, W] or None. The same steps as `_tune_together` for
    one clip, without the copies of weights that vmap and functional_call make."""
    params = dict(G.named_parameters())
    tuned = [params[n].requires_grad_(True) for n in task.names]
    renderer = _Renderer(G, task.shared)
    opt = _adam(tuned, task.lr, task.names, moving)
    with torch.enable_grad():
        for _ in range(task.steps):
            loss = _loss(renderer(moving()[0], plate, free is not None), x, plate, task, free)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    for p in tuned:
        p.requires_grad_(False)


def _tune_together(copies, moving: _Moving, x, plates, task: _Task, free=None):
    """Adam on the stacked weights `task.names` of copies (which agree on every other weight) and on what `moving`
    moves of their latents [M, K, z_dim], x [M, K, C, H, W], plates [M, 3, H, W] or None, free [M, K, 1, H, W] or
    None. Writes each clip's tuned
    weights back into its copy."""
    own = [dict(G.named_parameters()) for G in copies]
    stacked = {f"g.{n}": torch.stack([p[n].detach() for p in own]).requires_grad_(True) for n in task.names}
    renderer = _Renderer(copies[0], task.shared)

    def clip_loss(params, zi, xi, *extra):  # one clip: zi [K, z_dim], xi [K, C, H, W], then pi [3, H, W] and
        # fi [K, 1, H, W] where given -> scalar
        pi = extra[0] if plates is not None else None
        fi = extra[-1] if free is not None else None
        return _loss(functional_call(renderer, params, (zi, pi, fi is not None)), xi, pi, task, fi)

    losses = vmap(clip_loss)
    rest = (x,) + ((plates,) if plates is not None else ()) + ((free,) if free is not None else ())
    opt = _adam(list(stacked.values()), task.lr, task.names, moving)
    with torch.enable_grad():
        for _ in range(task.steps):
            loss = losses(stacked, moving(), *rest).sum()  # the clips' losses are separate: each its own gradient
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        for i, p in enumerate(own):
            for n in task.names:
                p[n].copy_(stacked[f"g.{n}"][i])


def _adam(params: list[torch.Tensor], lr: float, names: list[str], moving: _Moving) -> torch.optim.Adam:
    """Adam, fused where torch has the kernel (CPU, CUDA): a quarter less time per tuning step on 2 CPU cores. The
    weights `params` (named `names`) step by lr, a sprite detail by DETAIL_LR, the latents as `moving` says."""
    groups = [
        {"params": [p for n, p in zip(names, params) if n != DETAIL]},
        {"params": [p for n, p in zip(names, params) if n == DETAIL], "lr": DETAIL_LR},
        *moving.groups(),
    ]
    groups = [g for g in groups if g["params"]]
    fused = all(p.device.type in ("cpu", "cuda") for g in groups for p in g["params"])
    return torch.optim.Adam(groups, lr, fused=fused)


class _Moving:
    """A chunk of clips' latents z [M, K, z_dim] and what a joint tuning moves of them: per keyframe the object
    positions, per clip each slot's colour (a tinted G), each an offset that Adam steps (`groups`). `moving()` ->
    the latents as they stand. Without `joint` (or without position coordinates) nothing moves."""

    def __init__(self, G, z: torch.Tensor, joint: bool):
        self.z, self.offsets, self.lrs = z, [], []
        layout = latent_layout(G)
        if not joint or layout is None:
            return
        self.pos = layout.index.flatten().to(z.device)  # [2 * slots]
        self.offsets.append(z.new_zeros(*z.shape[:2], len(self.pos)).requires_grad_(True))  # [M, K, 2 * slots]
        self.lrs.append(MOVE_PX / layout.fold_range)
        tints = tint_index(G, layout)
        if tints is not None:
            self.tint = torch.tensor(tints, device=z.device).flatten()  # [3 * slots]
            self.offsets.append(z.new_zeros(len(z), len(self.tint)).requires_grad_(True))  # [M, 3 * slots]
            self.lrs.append(TINT_LR)

    def groups(self) -> list[dict]:
        return [{"params": [o], "lr": lr} for o, lr in zip(self.offsets, self.lrs)]

    def __call__(self) -> torch.Tensor:
        z = self.z
        if self.offsets:
            z = z.index_add(-1, self.pos, self.offsets[0])
        if len(self.offsets) > 1:  # one colour per slot for the whole clip: its keyframes move alike
            z = z.index_add(-1, self.tint, self.offsets[1][:, None].expand(-1, z.shape[1], -1))
        return z


def add_sprite_detail(G) -> None:
    """Give a copy of an objects generator its own sprite detail (`sprite_detail`: per slot, logits [K, c, S, S]
    added to what its sprite net draws), started at 0 so that the copy draws as before. Nothing for other
    generators, or where the copy has its detail already."""
    if not hasattr(G, DETAIL) or getattr(G, DETAIL) is not None:
        return
    out = G.sprite_out
    G.sprite_detail = nn.Parameter(out.weight.new_zeros(G.objects, out.out_channels, G.sprite, G.sprite))


def _fixed_key(G, names, over_plate: bool = False) -> tuple:
    """What copies must share to be tuned together: their untuned weights, buffers and reach (reach.py; by value;
    over a plate the background net draws nothing and does not count), and a plate (a per-clip plate is never
    shared)."""
    fixed = [p for n, p in G.named_parameters() if n not in names and not (over_plate and n.startswith("bg"))]
    reach = [] if getattr(G, "reach", None) is None else [G.reach]
    values = tuple(
        bytes(t.detach().cpu().contiguous().view(torch.uint8).numpy()) for t in fixed + list(G.buffers()) + reach
    )
    return values, id(G) if getattr(G, "plate", None) is not None else None


def held_backdrop(G, latents: torch.Tensor) -> torch.Tensor:
    """A clip's latents [K, z_dim] (one background code, keyframe 0's) -> [3, H, W]: G's backdrop of it (the
    background net's drawing, or G's plate where one is set), drawn once: for a tuning that holds the background
    net (`_tune_clips` with it as the plate and no matte), and for a clip fit that holds the background code."""
    with torch.no_grad():
        return G.backdrop(G.split(latents[:1])[2])[0]


def background_plate(G, latents: torch.Tensor, keyframes: torch.Tensor, sigma: float = 0.1) -> torch.Tensor:
    """A clip's static background from its own keyframes: latents [K, z_dim], keyframes [K, 3, H, W] -> [3, H, W].

    Each pixel is a weighted mean of the keyframes: a keyframe counts where none of G's objects (every slot's
    alpha at its keyframe position) covers the pixel, and where it agrees (within `sigma` in RGB) with the median
    of the keyframes that are free there, so an object that moves between keyframes leaves no trace even where a
    slot missed it. Where objects cover a pixel in every keyframe, the keyframes' median fills in. The objects,
    their positions and the path stay G's; the plate only replaces the background net's blurred drawing."""
    with torch.no_grad():
        free = (1 - G.layers(latents)[:, :, 3:]).prod(1)  # [K, 1, H, W]: 1 where no object covers the pixel
        ref = keyframes.masked_fill(free < 0.5, float("nan")).nanmedian(0).values  # [3, H, W]: NaN if never free
        ref = torch.where(ref.isnan(), keyframes.median(0).values, ref)
        agree = torch.exp(-(keyframes - ref).pow(2).sum(1, keepdim=True) / (2 * sigma**2))  # [K, 1, H, W]
        w = free * agree
        return ((w * keyframes).sum(0) + 0.05 * ref) / (w.sum(0) + 0.05)
