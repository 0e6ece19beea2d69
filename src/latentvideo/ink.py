"""Where each object is, read from the keyframes' own ink (`G.layers`: gray generators composed on black, and
RGB generators that paste sprites alpha-over onto a backdrop).

Stage 4 of the clip-level inversion (slots.invert_clips), after the joint L-BFGS fit:
    centre_on_ink     every slot moved to the centre of mass of the ink it explains
    associate_slots   which slot is which object in every keyframe: the ink a slot explains is compared across
                      the clip's keyframes (an object keeps its look while it moves), and keyframes whose
                      slots clearly hold each other's objects have their positions permuted
On 30 test clips (keyframes 0, 9, 19; an early objects G, 3,000 steps) slots more than 7 px from their digit with
one slot matching per clip fall from 9.4 % to 1.7 % (0.6 % matched keyframe by keyframe); associating before the
centre steps only reached 7.2 %, as the centre steps can move a slot that sat between two digits onto the other.

Both change only position coordinates. A pixel's ink is shared among the slots in proportion to their layers
blurred by OWN_BLUR px (`owned_ink`), so ink that G's sprite misses still counts for the nearest object.
Gray: a pixel's ink is its intensity. RGB: its distance from G's fitted backdrop, less twice the image's median
distance (the backdrop never fits a photograph exactly; objects cover a minority of pixels), and objects are
compared by their colours where there is ink.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from .objects import LatentLayout, fold
from .unwrap import line_misfit

CENTRE_STEPS = 3  # centre-of-mass steps after the clip fit (measured: docs/benchmark-history.md)
OWN_BLUR = 4.0  # px: blur of each slot's layer that decides which slot explains a pixel's ink
MATCH_SHIFT = 3  # px: the alignment searched when two keyframes' objects are compared
SWAP_MARGIN = 0.8  # a clip's slots are reassigned only when that costs below this fraction of keeping them
JOINT_LIMIT = 5000  # assignments tried jointly per clip (2 slots: up to 13 keyframes; 3 slots: up to 5)
# With keyframe times (`motion_association`): an object's path across the keyframes off the best straight bouncing
# line by MOTION_CAP (fold units, RMS; 4 px on the colour G's 40 px range) or more costs MOTION_WEIGHT, as much as
# its patches differing completely in one pair of keyframes; a path on a line costs nothing. Look-alike objects
# (the same shape, near hues) give patch distances that cannot tell them apart; their motion can.
MOTION_CAP = 0.1
MOTION_WEIGHT = 1.0


def blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of [N, C, H, W] (sigma in px; 0 returns the images)."""
    if sigma <= 0:
        return images
    r = int(3 * sigma + 0.5)
    x = torch.arange(-r, r + 1, dtype=images.dtype, device=images.device)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    k = k / k.sum()
    C = images.shape[1]
    out = F.conv2d(F.pad(images, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1).repeat(C, 1, 1, 1), groups=C)
    return F.conv2d(F.pad(out, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1).repeat(C, 1, 1, 1), groups=C)


def slot_ink(G, z: torch.Tensor, images: torch.Tensor, backs: torch.Tensor | None = None):
    """-> (layers [N, K, R, R], ink [N, 1, R, R], drawn [N, 1, R, R], look [N, C, R, R]): each slot's placed
    sprite (gray: intensity; RGB: alpha), the images' ink, G's own rendering's ink, and what an object looks like
    (gray: its ink; RGB: its colours where there is ink). RGB: ink is measured against `backs` [N, 3, R, R] (a
    clip's background plate, tune.background_plate) where given, else against G's backdrop for z."""
    with torch.no_grad():
        placed = G.layers(z)  # [N, K, c, R, R]
        if placed.shape[2] == 1:  # gray, max-composed on black
            layers = placed[:, :, 0]
            return layers, images[:, :1], layers.amax(1, keepdim=True), images[:, :1]
        back = G.backdrop(G.split(z)[2]) if backs is None else backs  # [N, 3, R, R]
        e = (images - back).norm(dim=1, keepdim=True)
        ink = (e - 2 * e.flatten(1).median(1).values[:, None, None, None]).clamp_min(0)
        rendered = G.compose(placed, back) if hasattr(G, "compose") else G(z)  # compose: no second placement
        drawn = (rendered - back).norm(dim=1, keepdim=True)
        return placed[:, :, 3], ink, drawn, images * (ink > 0)


def owned_ink(layers: torch.Tensor) -> torch.Tensor:
    """Slot layers [N, K, R, R] -> share [N, K, R, R]: the fraction of every pixel's ink that each slot explains
    (its layer blurred by OWN_BLUR px, normalised over the slots)."""
    own = blur(layers, OWN_BLUR) + 1e-6
    return own / own.sum(1, keepdim=True)


def ink_centres(w: torch.Tensor):
    """Ink [N, K, R, R] -> (centres of mass [N, K, 2] px (row, col), mass [N, K])."""
    coords = torch.arange(w.shape[-1], dtype=w.dtype, device=w.device)
    m = w.sum((2, 3))
    return torch.stack([(w.sum(3) * coords).sum(2), (w.sum(2) * coords).sum(2)], -1) / (m[..., None] + 1e-6), m


def centre_on_ink(
    G, z: torch.Tensor, images: torch.Tensor, layout: LatentLayout, steps: int = CENTRE_STEPS, backs=None
):
    """z [N, z_dim] with every slot moved so that the ink it explains in the image and in G's rendering have the
    same centre of mass, `steps` times. An exact fit is left as it is; where G's sprite is not the keyframe's
    object, the slot moves to the object's centre rather than to where the strokes align best. Each new position
    is the mirror image under fold nearest the old one; a slot that explains almost no ink keeps its position."""
    z = z.clone()
    idx = layout.index.to(z.device)  # [K, 2]
    for _ in range(steps):
        layers, ink, drawn_ink, _ = slot_ink(G, z, images, backs)
        share = owned_ink(layers)
        want, mass = ink_centres(ink * share)  # the ink each slot explains in the image ...
        have, drawn = ink_centres(drawn_ink * share)  # ... and in G's rendering
        u = z[:, idx]  # [N, K, 2]
        target = (fold(u) + (want - have) / layout.fold_range).clamp(0, 1)
        base = 2 * torch.floor(u / 2)
        mirrors = torch.stack([base - target, base + target, base + 2 - target, base + 2 + target])  # [4, N, K, 2]
        new = mirrors.gather(0, (mirrors - u).abs().argmin(0, keepdim=True))[0]  # fold(new) = target
        keep = (mass < 0.05 * drawn)[..., None]  # [N, K, 1]
        z[:, idx] = torch.where(keep, u, new)
    return z


def object_patches(G, z: torch.Tensor, images: torch.Tensor, margin: int = MATCH_SHIFT, backs=None) -> torch.Tensor:
    """-> [N, K, C, P, P] with P = G.sprite + 2 margin: what each slot explains (`slot_ink`'s look times the slot's
    share), cut out around the centre of mass of its ink (zeros beyond the canvas). The same object in two
    keyframes gives the same patch, up to a shift."""
    layers, ink, _, look = slot_ink(G, z, images, backs)
    share = owned_ink(layers)[:, :, None]  # [N, K, 1, R, R]
    centre, _ = ink_centres(ink * share[:, :, 0])
    obj = look[:, None] * share  # [N, K, C, R, R]
    N, K, _, R, _ = obj.shape
    P = G.sprite + 2 * margin
    pad = F.pad(obj, (P, P, P, P))
    top = (centre.round().long() - P // 2 + P).clamp(0, R + P)  # [N, K, 2] in the padded canvas
    rows = (top[..., 0, None] + torch.arange(P, device=z.device))[..., :, None]  # [N, K, P, 1]
    cols = (top[..., 1, None] + torch.arange(P, device=z.device))[..., None, :]  # [N, K, 1, P]
    n, k = torch.arange(N, device=z.device)[:, None, None, None], torch.arange(K, device=z.device)[None, :, None, None]
    return pad[n, k, :, rows, cols].movedim(-1, 2)  # [N, K, P, P, C] -> [N, K, C, P, P]


def patch_distance(a: torch.Tensor, b: torch.Tensor, margin: int = MATCH_SHIFT) -> torch.Tensor:
    """Patches a [..., C, P, P] and b [..., C, P, P] -> [...]: the least normalised squared difference between
    a's centre and b's window at any shift up to `margin` px, |a - b|^2 / (|a|^2 + |b|^2) (0: the same object)."""
    S = a.shape[-1] - 2 * margin
    ac = a[..., margin : margin + S, margin : margin + S][..., None, None, :, :, :]  # [..., 1, 1, C, S, S]
    bw = b.unfold(-2, S, 1).unfold(-2, S, 1).movedim(-5, -3)  # [..., 2m + 1, 2m + 1, C, S, S]
    dims = (-1, -2, -3)
    d = (ac - bw).pow(2).sum(dims) / (ac.pow(2).sum(dims) + bw.pow(2).sum(dims) + 1e-6)
    return d.flatten(-2).amin(-1)


def associate_slots(G, z, images, layout: LatentLayout, counts, margin=SWAP_MARGIN, backs=None, times=None):
    """z [N, z_dim] of clips with `counts` keyframes each (in order) -> (z, perms): in every clip, the keyframes'
    slot positions permuted so that slot k is the same object in every keyframe.

    Calling slot l of keyframe i and slot m of keyframe j the same object costs their patch distance. Per clip
    the permutations (keyframe 0 fixed) with the least total cost over all pairs of keyframes win: every
    combination where there are at most JOINT_LIMIT, else keyframe by keyframe against the ones before it
    (Hungarian method). A pair of keyframes where the objects overlap then cannot outvote the others. The clip
    changes only when the new assignment costs below `margin` times keeping its slots, so look-alike objects
    keep the fit's choice (with motion: costs less than keeping them, by (1 - margin) times their patch cost).
    Appearance is shared by the clip, so only positions move. perms: per clip [n, K] (slot perm[i, k] of keyframe
    i became slot k).

    times: per clip its keyframe times [n] (or None): each object's path then adds MOTION_WEIGHT times how far it
    is from a straight line that bounces at the slot's walls (`unwrap.line_misfit`, at most MOTION_CAP, as a
    fraction of it) to the assignments tried jointly, so that objects that look alike are told apart by where
    they go (objects that move in straight lines between bounces); a clip of two keyframes is unchanged."""
    K = len(layout.positions)
    idx = layout.index.to(z.device)
    z = z.clone()
    patches = object_patches(G, z, images, backs=backs)  # [N, K, P, P]
    perms, start = [], 0
    for n in counts:
        perm = np.tile(np.arange(K), (n, 1))
        if K > 1 and n > 1:
            p = patches[start : start + n]
            d = patch_distance(p[:, :, None, None], p[None, None]).cpu().numpy()  # [n, K, n, K]
            joint = math.factorial(K) ** (n - 1) <= JOINT_LIMIT
            motion = None
            if joint and times is not None and n > 2:
                walls = G.walls(z[start]) if hasattr(G, "walls") else None  # [K, 2, 2]
                motion = _misfits(z[start : start + n, idx].cpu().double().numpy(), times[len(perms)], walls)
            new = _best_joint(d, motion) if joint else _best_sequential(d)
            keep = _total(d, perm[None])[0]  # the margin is on the looks: motion is evidence of its own
            if _total(d, new[None], motion)[0] < _total(d, perm[None], motion)[0] - (1 - margin) * keep:
                perm = new
                for i in range(1, n):
                    z[start + i, idx] = z[start + i, idx[torch.as_tensor(perm[i])]]
        perms.append(perm)
        start += n
    return z, perms


def _total(d: np.ndarray, combos: np.ndarray, motion=None) -> np.ndarray:
    """Patch distances d [n, K, n, K], permutations combos [M, n, K] -> [M] summed over keyframe pairs and objects;
    plus, with `motion` (`_misfits`), every object's path's cost."""
    n = d.shape[0]
    total = sum(d[i, combos[:, i], j, combos[:, j]].sum(-1) for i in range(n) for j in range(i + 1, n))
    return total if motion is None else total + np.array([sum(motion(tuple(p)) for p in c.T) for c in combos])


def _misfits(u: np.ndarray, times, walls):
    """One clip's slot positions u [n, K, 2] (fold units), keyframe times [n], the slots' walls [K, 2, 2] or None
    -> cost(path) for a path (slot at keyframe 0, slot at keyframe 1, ...): MOTION_WEIGHT times its line misfit as
    a fraction of MOTION_CAP, bouncing at the walls of its keyframe-0 slot (whose sprite it keeps). Memoised."""
    memo = {}

    def cost(path: tuple) -> float:
        if path not in memo:
            pos = u[np.arange(len(path)), list(path)]  # [n, 2]
            w = None if walls is None else walls[path[0]]
            memo[path] = MOTION_WEIGHT * line_misfit(pos, times, w, cap=MOTION_CAP) / MOTION_CAP
        return memo[path]

    return cost


def _best_joint(d: np.ndarray, motion=None) -> np.ndarray:
    n, K = d.shape[:2]
    ident = np.arange(K)
    choices = [[ident]] + [list(itertools.permutations(range(K)))] * (n - 1)
    combos = np.array(list(itertools.product(*choices)))  # [M, n, K]
    return combos[np.argmin(_total(d, combos, motion))]


def _best_sequential(d: np.ndarray) -> np.ndarray:
    n, K = d.shape[:2]
    perm = np.tile(np.arange(K), (n, 1))
    for i in range(1, n):
        cost = sum(d[j, perm[j]][:, i] for j in range(i))  # [K objects, K slots of keyframe i]
        perm[i] = linear_sum_assignment(cost)[1]
    return perm
