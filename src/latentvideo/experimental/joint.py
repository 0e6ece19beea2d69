"""Trajectory inversion: fit the path's polynomial through the generator, all keyframes jointly.

The pipeline inverts every keyframe on its own and then fits a least-squares polynomial to the
latents (trajectory.fit_trajectory). The line misses the latents, so the clip does not reproduce
its own keyframes, and nothing asks the frames in between to look like digits. Here the curve's
coefficients are optimised directly, per clip, starting from that least-squares fit:

    f(c) = mean_k mse(G(z_c(t_k)), x_k)                          keyframes, jointly
           - critic_weight * mean_s C(G(z_c(s_j)))               optional: in-between frames look real
           + prior_weight * mean_s (|z_c(s_j)|^2 / z_dim - 1)^2  optional: in-between latents stay on
                                                                 the N(0, I) shell
    z_c(t) = mean + poly(u(t)) @ c @ basis  (the Trajectory form: full latent space or a PCA basis)

with the project's batched L-BFGS (invert.lbfgs): every clip is an independent problem with its own
curvature history and line search, so a clip's curve is the same fitted alone or with others. The
sample times s_j are the output frames that are not keyframes (or `samples` evenly spaced times
between the first and last keyframe). Without critic and prior terms the result's keyframe error is
never above the least-squares curve's (the line search only accepts decreases).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from ..errors import LatentVideoError
from ..invert import HISTORY, TOL, lbfgs
from ..models import module_device
from ..trajectory import Trajectory, _as_latents, _vandermonde, check_times, fit_trajectory

CLIP_BATCH = 32  # clips per generator pass inside the objective: bounds memory, does not change results


def fit_curve_through_generator(
    G,
    keyframes: torch.Tensor,
    times,
    init_latents: torch.Tensor,
    degree: int = 1,
    steps: int = 50,
    critic=None,
    critic_weight: float = 0.0,
    prior_weight: float = 0.0,
    num_frames: int | None = None,
    pca_basis=None,
    samples: int = 8,
) -> Trajectory:
    """One clip: keyframes float [K, C, H, W] in [0, 1] at `times` [K], independently inverted latents
    init_latents [K, z_dim] -> the refined curve, a `Trajectory` (call it with times for latents; its
    `.coeffs` [degree + 1, r] are the optimised coefficients, lowest power first).

    pca_basis: None = the full latent space; a float in (0, 1] = PCA of the keyframe latents keeping
    that variance fraction (as the pipeline's --pca); an array [r, z_dim] with orthonormal rows = that
    basis around the keyframe latents' mean. num_frames: the critic/prior terms act on the clip's
    non-keyframe frames 0..num_frames-1 (else on `samples` times between the first and last keyframe).
    """
    Z = _as_latents(init_latents)
    t = check_times(times, len(Z))
    if pca_basis is None or isinstance(pca_basis, (float, np.floating)):
        traj = fit_trajectory(init_latents, t, degree=degree, pca=pca_basis)
    else:
        traj = _fit_in_basis(Z, t, degree, np.asarray(pca_basis, np.float64), _device_of(init_latents))
    query = None if num_frames is None else [np.arange(num_frames, dtype=np.float64)]
    return fit_curves_through_generator(
        G,
        [keyframes],
        [init_latents],
        [traj],
        steps=steps,
        critic=critic,
        critic_weight=critic_weight,
        prior_weight=prior_weight,
        query_times=query,
        samples=samples,
    )[0]


def fit_curves_through_generator(
    G,
    keyframe_sets: list[torch.Tensor],
    latents: list[torch.Tensor],
    trajectories: list[Trajectory],
    steps: int = 50,
    critic=None,
    critic_weight: float = 0.0,
    prior_weight: float = 0.0,
    query_times: list | None = None,
    samples: int = 8,
    tol: float = TOL,
    history: int = HISTORY,
) -> list[Trajectory]:
    """Many clips at once: refine each clip's initial `Trajectory` (e.g. from `fit_trajectory`, in any
    basis) through G so that it renders its keyframes [K_i, C, H, W]; `latents` [K_i, z_dim] are the
    keyframe latents the residuals are measured against. query_times[i]: the clip's output frame times
    (the critic and prior terms act on those that are not keyframes). Returns new Trajectory objects."""
    n = len(trajectories)
    if not (len(keyframe_sets) == len(latents) == n) or (query_times is not None and len(query_times) != n):
        raise LatentVideoError("need one keyframe set, latent set and trajectory (and query times) per clip")
    if not isinstance(steps, int) or steps < 0:
        raise LatentVideoError(f"joint fit steps must be an integer >= 0, got {steps!r}")
    for name, value in (("critic weight", critic_weight), ("prior weight", prior_weight)):
        if not (np.isfinite(value) and value >= 0):
            raise LatentVideoError(f"joint fit {name} must be a finite number >= 0, got {value!r}")
    if critic_weight and critic is None:
        raise LatentVideoError("the joint fit's critic term needs a critic")
    if n == 0 or steps == 0:
        return list(trajectories)
    dev = module_device(G)
    z_dim = trajectories[0].mean.shape[0]
    use_samples = bool(critic_weight) or bool(prior_weight)

    # pad every clip to common sizes: degree, components, keyframes, sample times (masks mark the real rows)
    P = max(tr.degree for tr in trajectories) + 1
    R = max(tr.components for tr in trajectories)
    K = max(len(tr.times) for tr in trajectories)
    sample_sets = [np.zeros(0)] * n
    if use_samples:
        queries = query_times if query_times is not None else [None] * n
        sample_sets = [_sample_times(tr.times, q, samples) for tr, q in zip(trajectories, queries)]
    S = max(1, max(len(s) for s in sample_sets))
    mean = torch.zeros(n, z_dim, dtype=torch.float64)
    basis = torch.zeros(n, R, z_dim, dtype=torch.float64)
    Vk, kmask = torch.zeros(n, K, P, dtype=torch.float64), torch.zeros(n, K)
    Vs, smask = torch.zeros(n, S, P, dtype=torch.float64), torch.zeros(n, S)
    c0 = torch.zeros(n, P, R, dtype=torch.float64)
    frame_shape = tuple(keyframe_sets[0].shape[1:])
    X = torch.zeros(n, K, *frame_shape)
    for i, (tr, keys) in enumerate(zip(trajectories, keyframe_sets)):
        k, p, r = len(tr.times), tr.degree + 1, tr.components
        if tuple(keys.shape) != (k, *frame_shape):
            raise LatentVideoError(
                f"clip {i}: {len(tr.times)} keyframe times but keyframes of shape {list(keys.shape)}"
            )
        mean[i] = torch.from_numpy(tr.mean)
        basis[i, :r] = torch.eye(z_dim, dtype=torch.float64) if tr.basis is None else torch.from_numpy(tr.basis)
        Vk[i, :k, :p] = torch.from_numpy(_vandermonde(tr.times, tr.t_center, tr.t_scale, tr.degree))
        kmask[i, :k] = 1
        s = sample_sets[i]
        Vs[i, : len(s), :p] = torch.from_numpy(_vandermonde(s, tr.t_center, tr.t_scale, tr.degree))
        smask[i, : len(s)] = 1
        c0[i, :p, :r] = torch.from_numpy(tr.coeffs)
        X[i, :k] = keys.detach().float().cpu()
    mean, basis, Vk, Vs = (a.float().to(dev) for a in (mean, basis, Vk, Vs))
    kmask, smask, X = kmask.to(dev), smask.to(dev), X.to(dev)

    def objective(c, idx):  # c [m, P, R] with grad -> f [m]
        z = mean[idx, None] + (Vk[idx] @ c) @ basis[idx]  # [m, K, D]
        x = G(z.reshape(-1, z_dim)).float().reshape(len(idx), K, *frame_shape)
        mse = (x - X[idx]).pow(2).flatten(2).mean(2)  # [m, K]
        f = (mse * kmask[idx]).sum(1) / kmask[idx].sum(1)
        if use_samples:
            zs = mean[idx, None] + (Vs[idx] @ c) @ basis[idx]  # [m, S, D]
            w = smask[idx] / smask[idx].sum(1, keepdim=True).clamp_min(1)
            if critic_weight:
                score = critic(G(zs.reshape(-1, z_dim)).float()).reshape(len(idx), S)
                f = f - critic_weight * (score * w).sum(1)
            if prior_weight:
                shell = (zs.pow(2).mean(2) - 1).pow(2)  # [m, S]
                f = f + prior_weight * (shell * w).sum(1)
        return f

    def fg(cflat, idx):
        fs, gs = [], []
        for j in range(0, len(idx), CLIP_BATCH):  # clips are independent: chunking changes nothing
            part = idx[j : j + CLIP_BATCH]
            with torch.enable_grad():
                c = cflat[j : j + CLIP_BATCH].detach().reshape(len(part), P, R).requires_grad_(True)
                f = objective(c, part)
                (g,) = torch.autograd.grad(f.sum(), c)
            fs.append(f.detach())
            gs.append(g.reshape(len(part), -1))
        return torch.cat(fs), torch.cat(gs)

    c, _ = lbfgs(fg, c0.float().to(dev).reshape(n, -1), steps=steps, tol=tol, history=history)
    c = c.reshape(n, P, R).double().cpu().numpy()
    out = []
    for i, tr in enumerate(trajectories):
        new = replace(tr, coeffs=c[i, : tr.degree + 1, : tr.components].copy())
        new.residuals = np.linalg.norm(new.evaluate(tr.times) - _as_latents(latents[i]), axis=1)
        out.append(new)
    return out


def curve_keyframe_errors(G, keyframes: torch.Tensor, trajectory: Trajectory) -> torch.Tensor:
    """MSE per pixel between each keyframe [K, C, H, W] and the curve's render at its time -> [K] (CPU)."""
    with torch.no_grad():
        x = G(trajectory(trajectory.times).to(module_device(G))).float().cpu()
    return (x - keyframes.detach().float().cpu()).pow(2).flatten(1).mean(1)


# ---------------------------------------------------------------- helpers


def _sample_times(key_times: np.ndarray, query, samples: int) -> np.ndarray:
    """Times for the critic/prior terms: the query times that are not keyframes, else `samples` evenly
    spaced times strictly between the first and last keyframe."""
    if query is None:
        if not isinstance(samples, int) or samples < 1:
            raise LatentVideoError(f"samples must be an integer >= 1, got {samples!r}")
        return np.linspace(key_times[0], key_times[-1], samples + 2)[1:-1]
    q = np.asarray(query, np.float64)
    return q[~np.isin(q, key_times)]


def _fit_in_basis(Z: np.ndarray, t: np.ndarray, degree: int, basis: np.ndarray, device) -> Trajectory:
    """Least-squares polynomial in a given orthonormal basis [r, D] around the latents' mean."""
    if basis.ndim != 2 or basis.shape[1] != Z.shape[1] or not np.isfinite(basis).all():
        raise LatentVideoError(f"pca_basis must be [r, {Z.shape[1]}], got {list(basis.shape)}")
    if not np.allclose(basis @ basis.T, np.eye(len(basis)), atol=1e-5):
        raise LatentVideoError("pca_basis rows must be orthonormal")
    if not isinstance(degree, (int, np.integer)) or not 0 <= degree < len(Z):
        raise LatentVideoError(f"a degree-{degree} fit needs more than {degree} keyframes, got {len(Z)}")
    mean = Z.mean(0)
    t_center, t_scale = float(t.mean()), float(np.abs(t - t.mean()).max())
    coeffs = np.linalg.lstsq(_vandermonde(t, t_center, t_scale, degree), (Z - mean) @ basis.T, rcond=None)[0]
    traj = Trajectory(mean, basis, coeffs, t_center, t_scale, t, np.zeros(len(Z)), 1.0, device)
    traj.residuals = np.linalg.norm(traj.evaluate(t) - Z, axis=1)
    return traj


def _device_of(x) -> torch.device:
    return x.device if torch.is_tensor(x) else torch.device("cpu")
