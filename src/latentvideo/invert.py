"""Project images into a generator's latent space: find z with G(z) close to each image.

Methods:
    pnet        the projector's guess P(x), one forward pass
    lbfgs       batched L-BFGS from `init` (zeros, seeded N(0, I) or a given tensor)
    pnet+lbfgs  batched L-BFGS started from P(x) (the pipeline default)
    scipy       the original implementation's reference: scipy L-BFGS-B, one image at a time,
                in float64 on a double copy of G (speed/quality baseline for the benchmark)

The torch L-BFGS solves N independent problems at once: every image has its own curvature
history, step size, backtracking line search and stopping test; only G's forward/backward passes
are batched. An image's result is the same whether it is inverted alone or in a batch, exactly
in float64; in float32 the kernels round differently for different batch sizes, and over hundreds of
iterations an image can settle in a nearby optimum instead (on the shipped model, 40 benchmark
sequences inverted in another batch moved the clips' mean motion error by 0.3 px).
G must treat the samples of a batch independently (no batch statistics), as every
latentvideo model does; G, P and their parameters are never modified.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import LatentVideoError

METHODS = ("pnet", "lbfgs", "pnet+lbfgs", "scipy")
LOSSES = ("mse", "bce")
INITS = ("zero", "random")

# Defaults measured on a random-init Generator() (z_dim 256, 64x64) inverting 8 targets from zero init:
# with tol 1e-6 images stop after 35-60 iterations within 0.01% of the loss reached by 400 iterations
# (G(z) targets reach mse ~1e-13). A trained G is more curved, so the iteration cap is kept generous.
STEPS, TOL, HISTORY = 300, 1e-6, 10
C1, MAX_LS = 1e-4, 20  # Armijo constant, backtracking trials per iteration


@dataclass
class Inversion:
    latents: torch.Tensor  # [N, z_dim]
    reconstructions: torch.Tensor  # [N, C, H, W] in [0, 1]
    errors: torch.Tensor  # [N] mean squared error per pixel of each image
    seconds: float
    iterations: torch.Tensor | None = None  # [N] L-BFGS iterations each image ran (None for pnet)


def invert(
    G,
    images: torch.Tensor,
    method: str = "pnet+lbfgs",
    projector=None,
    *,
    init: str | torch.Tensor = "zero",
    steps: int = STEPS,
    tol: float = TOL,
    loss: str = "mse",
    prior_weight: float = 0.0,
    history: int = HISTORY,
    seed: int = 0,
    z_dim: int | None = None,
    progress: bool = False,
) -> Inversion:
    """Invert `images` float [N, C, H, W] in [0, 1] (on G's device) through generator `G`.

    Per-image objective: loss(G(z), x) + prior_weight * mean(z^2), loss "mse" or "bce"
    (mean over pixels). `steps` caps the L-BFGS iterations, `tol` stops an image once an
    iteration lowers its objective by less than tol (relative), `history` is the number
    of curvature pairs kept. `init` ("zero", "random" = N(0, I) seeded by `seed`, or a
    tensor [N, z_dim]) starts `lbfgs`, and `scipy` when no projector is given.
    """
    P = projector
    _check_args(images, method, P, init, steps, tol, loss, prior_weight, history)
    images = images.detach().float()
    dev = _device_of(G)
    if dev is not None and dev != images.device:
        raise LatentVideoError(f"images are on {images.device} but G is on {dev}", hint="move them to G's device")
    if P is None and method in ("pnet", "pnet+lbfgs"):
        raise LatentVideoError(f"method {method!r} needs a projector (P-NET)", hint="pass projector= or use 'lbfgs'")
    N = images.shape[0]
    sync = torch.cuda.synchronize if images.is_cuda else (lambda: None)
    sync()
    t0 = time.perf_counter()

    with torch.no_grad():
        if P is not None and method != "lbfgs":
            z0 = P(images).float()  # [N, z_dim]
            if z0.ndim != 2 or z0.shape[0] != N:
                raise LatentVideoError(f"projector must return latents [N, z_dim], got {tuple(z0.shape)}")
        else:
            z0 = _initial_latents(images, init, seed, _latent_size(G, z_dim, init))
        _check_render(G, z0[:1], images)

    iterations = None
    if method in ("lbfgs", "pnet+lbfgs"):
        fg = _objective(G, images, loss, prior_weight)
        z, iterations = lbfgs(fg, z0, steps=steps, tol=tol, history=history, progress=progress)
    elif method == "scipy" and steps > 0:
        z, iterations = _scipy_lbfgsb(G, images, z0, steps, tol, loss, prior_weight, history, progress)
    else:
        z = z0
        iterations = torch.zeros(N, dtype=torch.long, device=z.device) if method == "scipy" else None

    with torch.no_grad():
        recon = G(z).float().clamp(0, 1)  # [N, C, H, W]
        errors = (recon - images).pow(2).flatten(1).mean(1)  # [N]
    sync()
    return Inversion(z, recon, errors, time.perf_counter() - t0, iterations)


# ---------------------------------------------------------------- batched L-BFGS


def lbfgs(
    fg: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    z0: torch.Tensor,
    *,
    steps: int = STEPS,
    tol: float = TOL,
    history: int = HISTORY,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise N independent objectives at once.

    fg(z [n, D], idx [n]) -> (f [n], grad [n, D]) evaluates the objectives of rows `idx`.
    Returns (z [N, D], iterations [N]). Iterations are synchronous across the batch, so
    curvature pairs live in one ring buffer; a rejected pair is stored with rho = 0 and
    drops out of the two-loop recursion for that image only.
    """
    N, D = z0.shape
    m = history
    z = z0.detach().clone()
    idx_all = torch.arange(N, device=z.device)
    f, g = fg(z, idx_all)  # [N], [N, D]
    S, Y = z.new_zeros(m, N, D), z.new_zeros(m, N, D)
    rho = z.new_zeros(m, N)  # 1 / (s.y) of each stored pair, 0 = no pair
    gamma = z.new_ones(N)  # initial inverse-Hessian scale s.y / y.y of the newest pair
    active = torch.isfinite(f)
    iters = torch.zeros(N, dtype=torch.long, device=z.device)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="L-BFGS", unit="it", leave=False)
    for k in range(steps):
        idx = active.nonzero().squeeze(1)
        if idx.numel() == 0:
            break
        zi, fi, gi = z[idx], f[idx], g[idx]  # [n, D], [n], [n, D]
        d = _two_loop(gi, S[:, idx], Y[:, idx], rho[:, idx], gamma[idx], newest=(k - 1) % m)  # [n, D]
        gd = (gi * d).sum(1)  # [n]
        uphill = ~(gd < 0)  # bad curvature info: restart from steepest descent
        if uphill.any():
            d[uphill], gd[uphill] = -gi[uphill], -(gi[uphill] ** 2).sum(1)
            rho[:, idx[uphill]] = 0
        no_hist = (rho[:, idx] == 0).all(0)
        t = torch.where(no_hist, 1 / d.norm(dim=1).clamp_min(1e-12), torch.ones_like(gd))  # first step: unit length

        z_new, f_new, g_new, found = _backtrack(fg, idx, zi, fi, gi, d, gd, t)

        # accepted steps: store the curvature pair and test convergence
        s, y = z_new - zi, g_new - gi  # [n, D]
        sy, yy = (s * y).sum(1), (y * y).sum(1)
        good = found & (sy > 1e-10 * s.norm(dim=1) * y.norm(dim=1))  # positive curvature only
        slot = k % m
        S[slot, idx], Y[slot, idx] = s, y
        rho[slot, idx] = torch.where(good, 1 / sy.where(good, torch.ones_like(sy)), torch.zeros_like(sy))
        gamma[idx] = torch.where(good, sy / yy.where(good, torch.ones_like(yy)), gamma[idx])
        z[idx], f[idx], g[idx] = z_new, f_new, g_new
        iters[idx] += 1
        small = (fi - f_new) <= tol * torch.maximum(fi.abs(), f_new.abs()).clamp_min(1e-30)
        # a failed line search with history gets another try from steepest descent; without, it is done
        failed = ~found
        rho[:, idx[failed]] = 0
        stop = (found & small) | (failed & no_hist) | (g_new.abs().amax(1) == 0)
        active[idx[stop]] = False
        if bar is not None:
            bar.update(1)
            bar.set_postfix(active=int(active.sum()), loss=f"{f.mean().item():.4g}")
    if bar is not None:
        bar.close()
    return z, iters


def _two_loop(g, S, Y, rho, gamma, newest):
    """Direction -H g per row: g [n, D]; S, Y [m, n, D]; rho [m, n]; gamma [n]."""
    m = S.shape[0]
    order = [(newest - j) % m for j in range(m)]  # newest pair first
    q = -g
    alpha = g.new_zeros(m, g.shape[0])  # [m, n]
    for j in order:
        alpha[j] = rho[j] * (S[j] * q).sum(1)
        q = q - alpha[j, :, None] * Y[j]
    r = gamma[:, None] * q
    for j in reversed(order):
        beta = rho[j] * (Y[j] * r).sum(1)
        r = r + (alpha[j] - beta)[:, None] * S[j]
    return r


def _backtrack(fg, idx, z, f, g, d, gd, t):
    """Per-row backtracking Armijo search along d; each trial evaluates only the rows still searching.

    Returns (z_new, f_new, g_new, found); rows that found no decrease keep their point."""
    z_new, f_new, g_new = z.clone(), f.clone(), g.clone()
    searching = torch.ones_like(f, dtype=torch.bool)
    for _ in range(MAX_LS):
        r = searching.nonzero().squeeze(1)
        if r.numel() == 0:
            break
        zt = z[r] + t[r, None] * d[r]
        ft, gt = fg(zt, idx[r])
        ok = torch.isfinite(ft) & (ft <= f[r] + C1 * t[r] * gd[r])
        acc = r[ok]
        z_new[acc], f_new[acc], g_new[acc] = zt[ok], ft[ok], gt[ok]
        searching[acc] = False
        # shrink: minimiser of the quadratic through f(0), f'(0), f(t), kept within [0.1 t, 0.5 t]
        rj, tj = r[~ok], t[r[~ok]]
        fj = torch.nan_to_num(ft[~ok], nan=float("inf"))
        denom = 2 * (fj - f[rj] - gd[rj] * tj)
        tq = torch.where(denom > 0, -gd[rj] * tj**2 / denom.clamp_min(1e-30), 0.1 * tj)
        t[rj] = torch.minimum(torch.maximum(tq, 0.1 * tj), 0.5 * tj)
    return z_new, f_new, g_new, ~searching


def _objective(G, images, loss, prior_weight):
    """fg(z, idx) -> (f [n], grad_z f [n, D]); gradients flow to z only, never into G's parameters."""

    def fg(z, idx):
        target = images[idx]
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            x = G(z).float()
            if loss == "mse":
                per = (x - target).pow(2)
            else:
                per = F.binary_cross_entropy(x.clamp(0, 1), target, reduction="none")
            f = per.flatten(1).mean(1) + prior_weight * z.pow(2).mean(1)  # [n]
            (grad,) = torch.autograd.grad(f.sum(), z)
        return f.detach(), grad

    return fg


# ---------------------------------------------------------------- scipy reference


def _scipy_lbfgsb(G, images, z0, steps, tol, loss, prior_weight, history, progress):
    """One scipy L-BFGS-B run per image in float64 on a double copy of G, as the original did.

    Same objective, iteration cap and history as the torch solver. The original kept scipy's default
    stopping rule, whose gradient test (1e-5) fires after ~10 iterations on pixel-mean losses (measured:
    mse 2e-4 where the torch solver reaches 3e-14); here the gradient test is off and scipy's
    function test (absolute below 1) is scaled by each image's starting objective."""
    from scipy.optimize import minimize

    G64 = copy.deepcopy(G).double()
    fg = _objective(G64, images.double(), loss, prior_weight)
    zs, iters = [], []
    rows = range(len(images))
    if progress:
        from tqdm.auto import tqdm

        rows = tqdm(rows, desc="L-BFGS-B", leave=False)
    for i in rows:
        idx = torch.tensor([i], device=images.device)

        def fun(x, idx=idx):
            f, g = fg(torch.from_numpy(x).to(images.device)[None], idx)
            return float(f[0]), g[0].cpu().numpy()

        x0 = z0[i].double().cpu().numpy()
        opts = {"maxiter": steps, "maxcor": history, "ftol": tol * max(fun(x0)[0], 1e-30), "gtol": 0.0}
        res = minimize(fun, x0, jac=True, method="L-BFGS-B", options=opts)
        zs.append(torch.from_numpy(np.asarray(res.x)))
        iters.append(res.nit)
    z = torch.stack(zs).float().to(images.device)
    return z, torch.tensor(iters, device=images.device)


# ---------------------------------------------------------------- checks


def _check_args(images, method, P, init, steps, tol, loss, prior_weight, history):
    if method not in METHODS:
        raise LatentVideoError(f"unknown inversion method {method!r}", hint=f"choose from {', '.join(METHODS)}")
    if loss not in LOSSES:
        raise LatentVideoError(f"unknown inversion loss {loss!r}", hint="use 'mse' or 'bce'")
    if not torch.is_tensor(images) or images.ndim != 4 or images.shape[0] == 0:
        shape = tuple(images.shape) if torch.is_tensor(images) else type(images).__name__
        raise LatentVideoError(f"images must be a float tensor [N, C, H, W] with N >= 1, got {shape}")
    if not images.is_floating_point():
        raise LatentVideoError(f"images must be floats in [0, 1], got {images.dtype}", hint="divide uint8 by 255")
    if not torch.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise LatentVideoError("images must hold finite values in [0, 1]")
    if isinstance(init, str) and init not in INITS:
        raise LatentVideoError(f"unknown init {init!r}", hint="use 'zero', 'random' or a tensor [N, z_dim]")
    if not isinstance(steps, int) or steps < 0:
        raise LatentVideoError(f"steps must be an integer >= 0, got {steps!r}")
    if not tol >= 0 or not prior_weight >= 0:
        raise LatentVideoError("tol and prior_weight must be >= 0")
    if not isinstance(history, int) or history < 1:
        raise LatentVideoError(f"history must be an integer >= 1, got {history!r}")


def _device_of(module):
    p = next(iter(module.parameters()), None) if hasattr(module, "parameters") else None
    return p.device if p is not None else None


def _latent_size(G, z_dim, init):
    if z_dim is None:
        z_dim = init.shape[-1] if torch.is_tensor(init) else getattr(G, "z_dim", None)
    if not isinstance(z_dim, int) or z_dim < 1:
        raise LatentVideoError("cannot tell the latent size of G", hint="pass z_dim= (or a projector)")
    return z_dim


def _initial_latents(images, init, seed, z_dim):
    N = images.shape[0]
    if torch.is_tensor(init):
        if tuple(init.shape) != (N, z_dim):
            raise LatentVideoError(f"init must have shape {(N, z_dim)}, got {tuple(init.shape)}")
        return init.detach().float().to(images.device)
    if init == "zero":
        return torch.zeros(N, z_dim, device=images.device)
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(N, z_dim, generator=gen).to(images.device)


def _check_render(G, z, images):
    x = G(z)
    if tuple(x.shape[1:]) != tuple(images.shape[1:]):
        raise LatentVideoError(
            f"G renders images of shape {tuple(x.shape[1:])} but the targets are {tuple(images.shape[1:])}",
            hint="resize the images to the generator's resolution and channels",
        )
