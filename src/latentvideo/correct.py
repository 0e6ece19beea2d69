"""Critic correction: a few steps of gradient ascent on the critic's score to sharpen frames.

Objective per frame, maximised:  C(x) - anchor * mean((x - x0)^2)
    correct_latents  moves z, with x = G(z) and x0 = G(z_start) (what the original implementation did,
                     with SGD at lr 1e-4 for 100 steps in float64)
    correct_pixels   moves the pixels x directly, clamped to [0, 1] after every step
    correct_clip     either of the two, plus an optional temporal term over the whole clip

Frames are independent (the batched sum has per-frame gradients) unless `temporal` > 0.
G and C are used frozen: gradients are taken with respect to z or x only.

Default step sizes assume a WGAN-GP critic, whose gradient norm w.r.t. the image is about 1:
a pixel step then moves a frame by about `step_size` in L2 (50 x 0.05 <= 2.5, a few % per pixel
on 64x64). The original's latent lr 1e-4 x 100 steps barely moves z for such a critic, so the
latent default is larger; both are starting points to tune on a trained model.
The steps are explicit, so the penalties must stay soft: with P pixels per frame, pixel correction
needs anchor < P / step_size and temporal < P / (4 * step_size), latent correction less still
(G's Jacobian stiffens the anchor term), or frames oscillate instead of settling.
"""

from __future__ import annotations

import torch

from .errors import LatentVideoError

LATENT_STEPS, LATENT_STEP_SIZE = 50, 0.02
PIXEL_STEPS, PIXEL_STEP_SIZE = 20, 0.01  # the pipeline's measured default (options.Options)
CHUNK = 256  # frames corrected at once when frames are independent (temporal = 0): bounds memory for long clips
SPACES = ("pixel", "latent")


def correct_latents(
    G, C, z: torch.Tensor, steps: int = LATENT_STEPS, step_size: float = LATENT_STEP_SIZE, anchor: float = 0.0
) -> torch.Tensor:
    """z <- z + step_size * grad_z [C(G(z)) - anchor * mean((G(z) - G(z_start))^2)]; z [T, z_dim] -> [T, z_dim]."""
    return correct_clip(G, C, z, None, steps, step_size, anchor, space="latent")[0]


def correct_pixels(
    C, frames: torch.Tensor, steps: int = PIXEL_STEPS, step_size: float = PIXEL_STEP_SIZE, anchor: float = 0.0
) -> torch.Tensor:
    """x <- clamp(x + step_size * grad_x [C(x) - anchor * mean((x - x_start)^2)], 0, 1); [T, C, H, W]."""
    return correct_clip(None, C, None, frames, steps, step_size, anchor, space="pixel")[1]


def correct_clip(
    G,
    C,
    z: torch.Tensor | None,
    frames: torch.Tensor | None,
    steps: int = PIXEL_STEPS,
    step_size: float = PIXEL_STEP_SIZE,
    anchor: float = 0.0,
    temporal: float = 0.0,
    space: str = "pixel",
) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Correct a clip in `space` -> (z [T, z_dim] or None, frames [T, C, H, W]).

    latent: needs G and z (frames ignored, rendered as G(z)); pixel: needs frames (z passed through).
    temporal > 0 subtracts temporal * sum_t relu(d_t - d0_t), where d_t = mean((x_{t+1} - x_t)^2) and
    d0_t is the same for the uncorrected clip: frames may change no faster than they did, so the
    correction cannot, say, turn a digit into another in one frame only.
    """
    _check(steps, step_size, anchor, temporal, space)
    n = len(z) if space == "latent" and z is not None else len(frames) if frames is not None else 0
    if not temporal and n > CHUNK:  # independent frames: correct a chunk at a time, so memory stays bounded
        parts = [
            correct_clip(
                G,
                C,
                None if z is None else z[i : i + CHUNK],
                None if frames is None else frames[i : i + CHUNK],
                steps,
                step_size,
                anchor,
                0.0,
                space,
            )
            for i in range(0, n, CHUNK)
        ]
        frames_out = torch.cat([f for _, f in parts])
        return (torch.cat([zc for zc, _ in parts]) if space == "latent" else z), frames_out
    if space == "latent":
        if G is None or z is None:
            raise LatentVideoError("latent-space correction needs the generator and the latents")
        if z.ndim != 2:
            raise LatentVideoError(f"latents must have shape [T, z_dim], got {tuple(z.shape)}")
        var, render, clamp = z.detach().float(), G, False
    else:
        if frames is None or frames.ndim != 4:
            shape = None if frames is None else tuple(frames.shape)
            raise LatentVideoError(f"pixel-space correction needs frames [T, C, H, W], got {shape}")
        var, render, clamp = frames.detach().float(), (lambda x: x), True
    var = var.clone()  # [T, z_dim] or [T, C, H, W]
    x0 = d0 = None
    if anchor or temporal:
        with torch.no_grad():
            x0 = render(var)  # uncorrected frames
            d0 = _frame_change(x0)  # [T - 1]
    for _ in range(steps):
        with torch.enable_grad():
            v = var.requires_grad_(True)
            x = render(v)
            obj = C(x).sum()
            if anchor:
                obj = obj - anchor * (x - x0).pow(2).flatten(1).mean(1).sum()
            if temporal and len(x) > 1:
                obj = obj - temporal * (_frame_change(x) - d0).clamp_min(0).sum()
            (grad,) = torch.autograd.grad(obj, v)
        var = v.detach() + step_size * grad
        if clamp:
            var = var.clamp(0, 1)

    if space == "latent":
        with torch.no_grad():
            return var, G(var)
    return z, var


def _frame_change(x: torch.Tensor) -> torch.Tensor:
    return (x[1:] - x[:-1]).pow(2).flatten(1).mean(1)  # [T - 1]


def _check(steps, step_size, anchor, temporal, space):
    if space not in SPACES:
        raise LatentVideoError(f"unknown correction space {space!r}", hint="use 'pixel' or 'latent'")
    if not isinstance(steps, int) or steps < 0:
        raise LatentVideoError(f"correction steps must be an integer >= 0, got {steps!r}")
    for name, value in (("step size", step_size), ("anchor", anchor), ("temporal weight", temporal)):
        if not value >= 0:
            raise LatentVideoError(f"correction {name} must be >= 0, got {value}")
