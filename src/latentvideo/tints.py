"""Each slot's colour, solved from the keyframes: the tint coordinates of a generator that tints its sprites.

A tinted G (objects.ObjectGenerator with `tint`) draws slot k as colour c_k = Phi(t_k) times the sprite's
per-pixel shade s_k, where t_k is the last 3 coordinates of the slot's appearance code. Composed alpha-over
(slot 0 at the back), a keyframe is

    x = sum_k w_k s_k c_k + w_bg back,   w_k = alpha_k prod_{j > k} (1 - alpha_j),   w_bg = prod_j (1 - alpha_j)

which is linear in the colours. Given the fitted slots (their alphas, shades and positions), the colours that
reconstruct a clip's keyframes best are a least-squares solve per channel (K unknowns), not an iterative one.

The clip fit (slots.invert_clips) leaves the tints near their start: an object covers a few hundred pixels
and its colour error weighs little against a backdrop that G only approximates (a photograph it never saw), so
L-BFGS spends its steps elsewhere. The pipeline renders over the clip's plate, and there a slot drawn 25 % too
dark is nearer a neighbour's colour than its own: in the benchmark's colour masks the object vanishes.
`fit_tints` sets every slot's colour to the least-squares one over the background it will be rendered on.
"""

from __future__ import annotations

import math

import torch

from .objects import LatentLayout

RIDGE = 1e-3  # relative ridge on the normal equations: a slot that draws almost nothing keeps its colour
WHITE = 8.0  # a tint coordinate this high renders Phi(8) = 1: the sprite's shade itself


def tint_index(G, layout: LatentLayout) -> list[list[int]] | None:
    """Latent indices [K, 3] of each slot's colour where G tints its sprites (the last 3 appearance coordinates)."""
    if not getattr(G, "tint", False) or not layout.appearance:
        return None
    return [list(range(b - 3, b)) for _, b in layout.appearance]


def sprite_shades(G, z: torch.Tensor, layout: LatentLayout) -> torch.Tensor:
    """Each slot's mean shade [K] where G tints its sprites (colour = Phi(t) * shade): the sprite drawn white
    (tint far positive), its gray level averaged over its alpha, from keyframe latents z [n, z_dim] (row 0)."""
    codes = torch.stack([z[0, slice(*r)] for r in layout.appearance]).clone()  # [K, A]
    codes[:, -3:] = WHITE
    with torch.no_grad():
        sprites = G.sprites(codes)  # [K, 4, S, S]
    alpha = sprites[:, 3]
    return ((sprites[:, 0] * alpha).sum((1, 2)) / (alpha.sum((1, 2)) + 1e-6)).clamp(0.05, 1.0)


def phi_inverse(colour: torch.Tensor) -> torch.Tensor:
    """Colours in (0, 1) -> the tint coordinates t with Phi(t) = colour (clamped to [0.02, 0.98] first)."""
    return math.sqrt(2) * torch.erfinv(2 * colour.clamp(0.02, 0.98) - 1)


def fit_tints(G, z: torch.Tensor, images: torch.Tensor, layout: LatentLayout, backs: torch.Tensor, counts):
    """Keyframe latents z [N, z_dim] of clips with `counts` keyframes each (in order), their keyframes images
    [N, 3, H, W] and the backgrounds the slots are composed over, backs [N, 3, H, W] -> z with every slot's tint
    set to the colour that reconstructs its clip's keyframes best (least squares, module docstring). The clip
    shares one colour per slot, as it shares the appearance code. Returns z unchanged where G does not tint."""
    index = tint_index(G, layout)
    if index is None:
        return z
    z = z.clone()
    cols = torch.tensor(index, device=z.device)  # [K, 3]
    white = z.clone()
    white[:, cols.flatten()] = WHITE
    with torch.no_grad():
        placed = G.layers(white)  # [N, K, 4, H, W]: shade (in every colour channel) and alpha
    shade, alpha = placed[:, :, 0], placed[:, :, 3]  # [N, K, H, W]
    clear = torch.flip(torch.cumprod(torch.flip(1 - alpha, [1]), 1), [1])  # [N, K, H, W]: prod_{j >= k} (1 - alpha_j)
    above = torch.cat([clear[:, 1:], torch.ones_like(alpha[:, :1])], 1)  # prod_{j > k}
    w = alpha * above  # [N, K, H, W]: slot k's weight in the composite
    basis = (w * shade).flatten(2)  # [N, K, P]
    rest = images - backs * clear[:, :1]  # [N, 3, H, W]: what the slots must draw
    start = 0
    for n in counts:
        a = basis[start : start + n].transpose(0, 1).flatten(1)  # [K, n * P]
        b = rest[start : start + n].transpose(0, 1).flatten(1)  # [3, n * P]
        gram = a @ a.T  # [K, K]
        scale = gram.diagonal().max().clamp_min(1e-6)
        drawn = gram.diagonal() > RIDGE * scale  # slots that draw enough to have a colour
        if drawn.any():
            g = gram[drawn][:, drawn] + RIDGE * scale * torch.eye(int(drawn.sum()), device=z.device)
            colour = torch.linalg.solve(g, a[drawn] @ b.T)  # [K', 3]
            rows = torch.arange(start, start + n, device=z.device)
            z[rows[:, None, None], cols[drawn][None]] = phi_inverse(colour).to(z)[None]
        start += n
    return z
