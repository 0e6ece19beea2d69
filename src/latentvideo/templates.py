"""Template starts for the clip-level inversion (slots.invert_clips, stages 1-2): every slot placed where G's own
sprite for it best explains the keyframe, by correlation over all positions at once, so that L-BFGS starts with
each sprite overlapping its object (from a wrong place it would see no position gradient).

    gray, max-composed on black      the sprite correlated with the residual ink (`_ink_match`)
    RGB, alpha-over onto a backdrop  the drop in squared error when the sprite is pasted (`_paste_gain`)
    RGB with a colour coordinate     the same with the sprite's colour fitted in closed form (`_tinted_paste_gain`)
"""

from __future__ import annotations

import math

import torch

from .objects import LatentLayout


def template_positions(G, z: torch.Tensor, images: torch.Tensor, layout: LatentLayout, canvas=None) -> torch.Tensor:
    """z [N, z_dim] with every slot's position set where G's own sprite for that slot best explains the image:
    greedy template matching over all positions, the slot with the strongest match first, then the next on
    what is left. Gray max-composed generators: correlation of the sprite with the residual ink. RGB
    generators with a backdrop (alpha-over): the drop in squared error when the sprite is pasted over the
    current canvas (`canvas` [N, 3, R, R] where given, else G's backdrop for z; then the slots placed so far).
    Generators whose colour is a latent coordinate (`tint`): each slot's colour is fitted too, in closed form at
    every position, so a slot finds its object whatever colour the start gave it, and leaves with that colour.
    A start whose sprite overlaps its target, where L-BFGS from a wrong place would see no gradient."""
    N, K, S = len(z), len(layout.positions), G.sprite
    tint = bool(getattr(G, "tint", False))
    with torch.no_grad():
        codes = [z[:, slice(*r)].clone() for r in layout.appearance]
        if tint:  # colour 1: the sprite's shade and alpha alone; the colour is fitted below
            for c in codes:
                c[:, -3:] = _WHITE
        sprites = torch.stack([_slot_sprites(G, c, k) for k, c in enumerate(codes)], 1)  # [N, K, c, S, S]
        colour = sprites.shape[2] == 4
        coords = torch.arange(S, dtype=z.dtype, device=z.device)
        mass = sprites[:, :, -1].sum((2, 3)) + 1e-3  # [N, K]
        ink = sprites[:, :, -1]
        com = torch.stack([(ink.sum(3) * coords).sum(2), (ink.sum(2) * coords).sum(2)], -1) / mass[..., None]
        shift = (com - (S - 1) / 2).clamp(-S / 4, S / 4)  # [N, K, 2], as ObjectGenerator.place
        if colour:  # the canvas (RGB) ...
            state = G.backdrop(G.split(z)[2]) if canvas is None else canvas.clone()
        else:  # ... or the residual ink
            state = images[:, :1].clone()
        out, todo = z.clone(), torch.ones(N, K, dtype=torch.bool, device=z.device)
        rows = torch.arange(N, device=z.device)
        for _ in range(K):
            if tint:
                score, fit = _tinted_paste_gain(images, state, sprites)  # [N, K, P*P], [N, K, P*P, 3]
            else:
                score = _paste_gain(images, state, sprites) if colour else _ink_match(state, sprites[:, :, 0])
            score = score.masked_fill(~todo[..., None], -float("inf"))  # [N, K, P*P]
            where = score.flatten(1).argmax(1)  # [N]: the strongest remaining match per image
            k, pos = where // score.shape[2], where % score.shape[2]
            P = int(round(score.shape[2] ** 0.5))
            top_left = torch.stack([pos // P, pos % P], 1).to(z.dtype)  # [N, 2] px
            out[rows[:, None], layout.index.to(z.device)[k]] = (top_left + shift[rows, k]) / layout.fold_range
            todo[rows, k] = False
            for i in range(N):
                at = (i, slice(None), slice(int(top_left[i, 0]), int(top_left[i, 0]) + S))
                at = (*at, slice(int(top_left[i, 1]), int(top_left[i, 1]) + S))
                sp = sprites[i, k[i]]
                if tint:  # the fitted colour becomes the slot's colour coordinates, Phi^-1(c)
                    c = fit[i, k[i], pos[i]]  # [3]
                    out[i, layout.appearance[k[i]][1] - 3 : layout.appearance[k[i]][1]] = _probit(c)
                    sp = torch.cat([c[:, None, None] * sp[:1], sp[3:]])
                if colour:  # alpha-over onto the canvas
                    state[at] = sp[3:] * sp[:3] + (1 - sp[3:]) * state[at]
                else:  # the ink this slot explains is removed
                    state[at] = (state[at] - sp).clamp_min(0)
    return out


def correlate(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Each image's own kernels at every top-left position, by FFT: x [N, C, R, R], w [N, K, C, S, S] ->
    [N, K, P*P] (P = R - S + 1), out[n, k, (i, j)] = sum_c,u,v x[n, c, i + u, j + v] w[n, k, c, u, v]. A circular
    convolution of size R with the flipped kernel: its last P x P entries are the valid correlation, untouched by
    the wrap. Equal to a grouped conv2d to float rounding, and several times faster on the CPU for sprite-sized
    kernels."""
    R, S = x.shape[-1], w.shape[-1]
    X = torch.fft.rfft2(x, s=(R, R))[:, None]  # [N, 1, C, R, R // 2 + 1]
    W = torch.fft.rfft2(w.flip(-2, -1), s=(R, R))  # [N, K, C, R, R // 2 + 1]
    y = torch.fft.irfft2((X * W).sum(2), s=(R, R))  # [N, K, R, R]
    return y[..., S - 1 :, S - 1 :].flatten(2)


def _ink_match(residual: torch.Tensor, sprites: torch.Tensor) -> torch.Tensor:
    """Residual ink [N, 1, R, R], gray sprites [N, K, S, S] -> [N, K, P*P]: the drop in squared error
    when a sprite is added at each top-left position, <r, s> - |s|^2 / 2."""
    score = correlate(residual, sprites[:, :, None])  # [N, K, P*P]
    return score - 0.5 * sprites.pow(2).sum((2, 3))[..., None]


def _paste_gain(images: torch.Tensor, canvas: torch.Tensor, sprites: torch.Tensor) -> torch.Tensor:
    """Images and canvas [N, 3, R, R], RGBA sprites [N, K, 4, S, S] -> [N, K, P*P]: per top-left position
    the alpha-weighted drop in squared error, sum_p a_p (|x_p - canvas_p|^2 - |x_p - s_p|^2), by correlation."""
    rgb, a = sprites[:, :, :3], sprites[:, :, 3:]  # [N, K, 3 | 1, S, S]
    drop = ((images - canvas).pow(2) - images.pow(2)).sum(1, keepdim=True)  # [N, 1, R, R]: |x - canvas|^2 - |x|^2
    gain = correlate(drop, a) + 2 * correlate(images, a * rgb)  # [N, K, P*P]
    return gain - (a * rgb.pow(2)).sum((2, 3, 4))[..., None]


_WHITE = 8.0  # a colour coordinate t with Phi(t) = 1 in float32


def _probit(c: torch.Tensor) -> torch.Tensor:
    """Colours in [0, 1] -> the tint coordinates t with Phi(t) = c (kept off 0 and 1)."""
    return math.sqrt(2) * torch.erfinv(2 * c.clamp(1e-3, 1 - 1e-3) - 1)


def _tinted_paste_gain(images: torch.Tensor, canvas: torch.Tensor, sprites: torch.Tensor):
    """`_paste_gain` for sprites whose colour is free: shade-and-alpha sprites [N, K, 4, S, S] (colour 1)
    -> (gain [N, K, P*P], colour [N, K, P*P, 3]). At each position the colour c in [0, 1]^3 that best pastes
    c * shade with the sprite's alpha over the canvas, least squares per channel, and its drop in error:
    with d = x - canvas, w = alpha * shade, the error inside the box falls by
    2 c.(<d, w> + <canvas, alpha w>) - |c|^2 |w|^2 - 2 <<d, canvas>, alpha> - <|canvas|^2, alpha^2>."""
    a = sprites[:, :, 3:]  # [N, K, 1, S, S]
    w = a * sprites[:, :, :1]
    d = images - canvas  # [N, 3, R, R]
    kernels = torch.cat([w, a * w], 2)  # [N, K, 2, S, S]
    num = torch.stack([correlate(torch.stack([d[:, ch], canvas[:, ch]], 1), kernels) for ch in range(3)], -1)
    den = w.pow(2).sum((2, 3, 4))[..., None, None] + 1e-6  # [N, K, 1, 1]
    c = (num / den).clamp(0, 1)  # [N, K, P*P, 3]
    cost = 2 * correlate((d * canvas).sum(1, keepdim=True), a) + correlate(canvas.pow(2).sum(1, keepdim=True), a.pow(2))
    return 2 * (c * num).sum(-1) - c.pow(2).sum(-1) * den[..., 0] - cost, c


def _slot_sprites(G, codes: torch.Tensor, k: int) -> torch.Tensor:
    """Slot k's sprites for codes [N, A]: a copy with its own sprite detail adds slot k's (objects.py)."""
    return G.sprites(codes) if getattr(G, "sprite_detail", None) is None else G.sprites(codes, slot=k)
