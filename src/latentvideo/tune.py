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
"""

from __future__ import annotations

import copy
import warnings
from collections import defaultdict

import torch
from torch import nn
from torch.func import functional_call, vmap

from .errors import LatentVideoError
from .objects import shares_sprites

CHUNK = 32  # clips per batched tuning loop (memory grows with it; the time per clip stops falling near 4)


def pivotal_tune(G, latents: torch.Tensor, keyframes: torch.Tensor, steps: int = 30, lr: float = 1e-3):
    """A copy of G whose sprite and background nets (parameters named sprite* or bg*, or all of G's without such:
    the clip's static background is as much a keyframe's appearance as its sprites) are fine-tuned with Adam
    for `steps` so that G(latents [K, z_dim]) matches keyframes [K, C, H, W]; the latents stay fixed. Returns the
    copy, frozen; G is not modified."""
    return pivotal_tune_clips([G], [latents], [keyframes], steps, lr)[0]


def pivotal_tune_clips(generators, latents, keyframes, steps: int = 30, lr: float = 1e-3) -> list[nn.Module]:
    """`pivotal_tune` for many clips at once: generators (one per clip; the same module may repeat), latents
    (per clip [K, z_dim]) and keyframes (per clip [K, C, H, W]) -> one tuned, frozen copy per clip. Clips are
    tuned together where they have as many keyframes, render alike (shared sprites or frame by frame) and their
    generators agree on every weight that is not tuned; the others alone."""
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
        raise LatentVideoError(f"pivot steps must be an integer >= 0, got {steps!r}")
    if not len(generators) == len(latents) == len(keyframes):
        raise LatentVideoError(f"{len(generators)} generators for {len(latents)} latents and {len(keyframes)} clips")
    copies = [copy.deepcopy(G).requires_grad_(False) for G in generators]
    groups = defaultdict(list)  # clips that one vmapped loop can tune together
    for i, (G, z) in enumerate(zip(copies, latents)):
        names = tuned_names(G)
        if names and steps:
            groups[(len(z), shares_sprites(G, z), tuple(names), _fixed_key(G, names))].append(i)
    for (_, shared, names, _), idx in groups.items():
        for start in range(0, len(idx), CHUNK):
            chunk = idx[start : start + CHUNK]
            z = torch.stack([latents[i].detach() for i in chunk])  # [M, K, z_dim]
            x = torch.stack([keyframes[i].detach() for i in chunk])  # [M, K, C, H, W]
            if len(chunk) == 1:
                _tune_alone(copies[chunk[0]], z[0], x[0], list(names), shared, steps, lr)
            else:
                _tune_together([copies[i] for i in chunk], z, x, list(names), shared, steps, lr)
    return [G.eval().requires_grad_(False) for G in copies]


def tuned_names(G) -> list[str]:
    """The parameters pivotal tuning changes: the sprite and background nets', or all of G's without such."""
    names = [n for n, _ in G.named_parameters()]
    return [n for n in names if n.startswith(("sprite", "bg"))] or names


class _Renderer(nn.Module):
    """One clip's keyframes from its latents [K, z_dim]: from shared sprites (`forward_shared`) or frame by frame."""

    def __init__(self, G, shared: bool):
        super().__init__()
        self.g, self.shared = G, shared

    def forward(self, z):
        return self.g.forward_shared(z[None])[0] if self.shared else self.g(z)


def _tune_alone(G, z, x, names, shared: bool, steps: int, lr: float):
    """One clip: Adam on G's own weights `names`, z [K, z_dim], x [K, C, H, W]. The same steps as
    `_tune_together` for one clip, without the copies of weights that vmap and functional_call make."""
    params = dict(G.named_parameters())
    tuned = [params[n].requires_grad_(True) for n in names]
    renderer = _Renderer(G, shared)
    opt = _adam(tuned, lr)
    with torch.enable_grad():
        for _ in range(steps):
            loss = (renderer(z) - x).pow(2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    for p in tuned:
        p.requires_grad_(False)


def _tune_together(copies, z, x, names, shared: bool, steps: int, lr: float):
    """Adam on the stacked weights `names` of copies (which agree on every other weight): z [M, K, z_dim],
    x [M, K, C, H, W]. Writes each clip's tuned weights back into its copy."""
    own = [dict(G.named_parameters()) for G in copies]
    stacked = {f"g.{n}": torch.stack([p[n].detach() for p in own]).requires_grad_(True) for n in names}  # [M, ...]
    renderer = _Renderer(copies[0], shared)

    def clip_loss(params, zi, xi):  # one clip: zi [K, z_dim], xi [K, C, H, W] -> scalar
        return (functional_call(renderer, params, (zi,)) - xi).pow(2).mean()

    losses = vmap(clip_loss)
    opt = _adam(list(stacked.values()), lr)
    with torch.enable_grad(), warnings.catch_warnings():
        # affine_grid has no vmap batching rule yet: torch loops over the clips for it (a small share of a step)
        warnings.filterwarnings("ignore", message=".*batching rule for aten::affine_grid_generator.*")
        for _ in range(steps):
            loss = losses(stacked, z, x).sum()  # the clips' losses are separate: each gets its own gradient
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    with torch.no_grad():
        for i, p in enumerate(own):
            for n in names:
                p[n].copy_(stacked[f"g.{n}"][i])


def _adam(params: list[torch.Tensor], lr: float) -> torch.optim.Adam:
    """Adam, fused where torch has the kernel (CPU, CUDA): a quarter less time per tuning step on 2 CPU cores."""
    return torch.optim.Adam(params, lr, fused=all(p.device.type in ("cpu", "cuda") for p in params))


def _fixed_key(G, names) -> tuple:
    """What copies must share to be tuned together: their untuned weights and buffers (by value), and a plate
    (a per-clip plate is never shared)."""
    fixed = [p for n, p in G.named_parameters() if n not in names] + list(G.buffers())
    values = tuple(bytes(t.detach().cpu().contiguous().view(torch.uint8).numpy()) for t in fixed)
    return values, id(G) if getattr(G, "plate", None) is not None else None


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
