"""The object-structured generator: a latent space where a straight line is motion.

A latent z holds K object slots and an optional background code:

    z = [a_1, u_1, a_2, u_2, ..., a_K, u_K, b]      a_k in R^A ~ N(0, I)   appearance ("what")
                                                    u_k in R^2             position ("where", row, col)
                                                    b   in R^B ~ N(0, I)   background (B may be 0)

A small conv net draws each slot's appearance as a sprite (intensity for gray; colour plus alpha
for RGB). With `tint` (RGB), the last 3 coordinates of each appearance code are the object's colour,
an explicit latent coordinate like position: the sprite net draws a gray shade and an alpha mask from
the rest of the code, and the colour is Phi(t) * shade (Phi the normal CDF, so t ~ N(0, 1) gives colours
uniform on the RGB cube, including hues the training footage never showed). `edge` fades the alpha to 0
over the sprite box's outer px, so a sprite cannot leave marks at its box's border.

The sprite's ink centre of mass is placed at `fold(u_k) * fold_range` px (plus the sprite's half size),
by a differentiable sub-pixel translation (a translated sampling grid + `grid_sample`). `fold` is a triangle wave
onto [0, 1], so a straight line in u renders as a path that bounces off the walls, and position *is*
an explicit latent coordinate. Slots combine with max (gray, as Moving MNIST is made)
or alpha-over onto the background (RGB).

`LatentLayout` says which latent coordinates are positions and the fold range in px. It is written to
the model folder's config.json, and the pipeline reads it from there (or from a user module's
`latent_layout` attribute), never from the architecture's name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .errors import LatentVideoError

MAX_OBJECTS = 8  # slots per generator
FIELDS = ("positions", "fold_range", "appearance")  # of a config.json latent_layout


ALPHA_START = -2.0  # tint: the alpha logit every sprite pixel starts from


def fold(u: torch.Tensor) -> torch.Tensor:
    """Triangle wave of period 2 onto [0, 1]: fold(u) = u on [0, 1], reflected at 0 and 1."""
    return 1 - ((u % 2) - 1).abs()


@dataclass(frozen=True)
class LatentLayout:
    """Which latent coordinates are object positions (pairs: row, col) and their fold range in px.

    A position coordinate u renders at fold(u) * fold_range px from the top-left of the free range."""

    positions: tuple[tuple[int, int], ...]  # [K] pairs of latent indices (row, col)
    fold_range: float  # px: the free range (canvas - sprite) that fold(u) in [0, 1] spans
    appearance: tuple[tuple[int, int], ...] | None = None  # [K] (start, stop) of each slot's appearance code

    @classmethod
    def from_dict(cls, d, z_dim: int) -> LatentLayout:
        """Validate a config.json `latent_layout` entry against a latent of size z_dim."""
        if not isinstance(d, dict) or not {"positions", "fold_range"} <= set(d) <= {*FIELDS}:
            raise LatentVideoError("latent_layout must be an object with 'positions', 'fold_range' (and 'appearance')")
        pos, rng = d["positions"], d["fold_range"]
        ok_pair = lambda p: isinstance(p, (list, tuple)) and len(p) == 2 and all(_is_int(i) for i in p)  # noqa: E731
        if not isinstance(pos, (list, tuple)) or not pos or not all(ok_pair(p) for p in pos):
            raise LatentVideoError("latent_layout positions must be a non-empty list of [row, col] index pairs")
        flat = [int(i) for p in pos for i in p]
        if any(not 0 <= i < z_dim for i in flat):
            raise LatentVideoError(f"latent_layout position index out of range for a latent of size {z_dim}: {flat}")
        if len(set(flat)) != len(flat):
            raise LatentVideoError(f"latent_layout names a position index twice: {flat}")
        if not (isinstance(rng, (int, float)) and not isinstance(rng, bool) and math.isfinite(rng) and rng > 0):
            raise LatentVideoError(f"latent_layout fold_range must be a number of px > 0, got {rng!r}")
        app = d.get("appearance")
        if app is not None:
            if not isinstance(app, (list, tuple)) or len(app) != len(pos) or not all(ok_pair(r) for r in app):
                raise LatentVideoError("latent_layout appearance must give one [start, stop] range per position pair")
            if any(not 0 <= a < b <= z_dim for a, b in app):
                raise LatentVideoError(f"latent_layout appearance range out of [0, {z_dim}]: {app}")
            app = tuple((int(a), int(b)) for a, b in app)
        return cls(tuple((int(r), int(c)) for r, c in pos), float(rng), app)

    def to_dict(self) -> dict:
        d = {"positions": [list(p) for p in self.positions], "fold_range": self.fold_range}
        return d if self.appearance is None else {**d, "appearance": [list(r) for r in self.appearance]}

    def agrees_with(self, other: LatentLayout) -> bool:
        """Same positions and fold range, and the same appearance ranges where both declare them."""
        same = self.positions == other.positions and self.fold_range == other.fold_range
        return same and (self.appearance is None or other.appearance is None or self.appearance == other.appearance)

    @property
    def index(self) -> torch.Tensor:  # [K, 2] latent indices of each slot's (row, col)
        return torch.tensor(self.positions, dtype=torch.long)

    def positions_of(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [N, z_dim] -> position coordinates u [N, K, 2] (unfolded)."""
        return z[:, self.index]

    def pixels(self, z: torch.Tensor) -> torch.Tensor:
        """Latents [N, z_dim] -> rendered positions [N, K, 2] in px (fold applied)."""
        return fold(self.positions_of(z)) * self.fold_range


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class UpConv(nn.Conv2d):
    """A 3x3 conv (padding 1) on the nearest x2 upsample of its input, computed as the one stride-2 4x4 transposed
    conv that equals it: each output pixel of the upsample + conv reads a 2x2 block of the input, so the taps that
    read the same input pixel add up (along each axis [w2, w1 + w2, w0 + w1, w0]). The same function and the same
    3x3 weights (it trains as upsample + conv does, without a transposed conv's stripes), to float rounding, with
    4/9 of the multiply-adds: on 2 CPU cores 8 digit clips take 9 % less time than with upsample + conv (under
    vmap the grouped transposed conv gains at 28 px, not at 14)."""

    def __init__(self, cin: int, cout: int):
        super().__init__(cin, cout, 3, 1, 1)
        self._kernel = None  # (weight, its version key, its kernel): a frozen weight's kernel, built once

    def forward(self, x):
        return F.conv_transpose2d(x, self.kernel(), self.bias, stride=2, padding=1)

    def kernel(self) -> torch.Tensor:
        """The transposed conv's weights, kept while the weight is a frozen parameter that has not changed (an
        inversion's thousands of evaluations through a frozen G: 7 % of a colour clip's time was spent building
        it); rebuilt on every call where the weight trains, or is another tensor (torch.func.functional_call)."""
        w = self.weight
        if not isinstance(w, nn.Parameter) or w.requires_grad:
            return _up_kernel(w)
        key = (w._version, w.data_ptr(), w.dtype, w.device)  # in-place steps, `.data =` and `.to()` change it
        cached = self._kernel
        if cached is None or cached[0] is not w or cached[1] != key:
            with torch.no_grad():
                cached = self._kernel = (w, key, _up_kernel(w).contiguous())
        return cached[2]


def _up_kernel(w: torch.Tensor) -> torch.Tensor:
    """3x3 conv weights [O, I, 3, 3] -> the transposed conv's [I, O, 4, 4] (UpConv)."""

    def axis(w, d):
        w0, w1, w2 = w.unbind(d)
        return torch.stack([w2, w1 + w2, w0 + w1, w0], d)

    return axis(axis(w, -2), -1).transpose(0, 1)


def _upconv_stack(cin: int, chans: list[int]) -> nn.Sequential:
    """Per stage: nearest x2 upsample, then a 3x3 conv (upsample + conv does not stripe, where
    transposed convs did in the prototype), as one UpConv; the Identity keeps the saved weights' names."""
    layers: list[nn.Module] = []
    for c in chans:
        layers += [nn.Identity(), UpConv(cin, c), nn.LeakyReLU(0.2), PixelNorm()]
        cin = c
    return nn.Sequential(*layers)


class ObjectGenerator(nn.Module):
    """z [N, z_dim] -> image [N, C, R, R] in [0, 1]; z_dim = objects * (appearance + 2) + background."""

    def __init__(
        self,
        objects: int = 2,
        appearance: int = 32,
        resolution: int = 64,
        channels: int = 1,
        sprite: int = 28,
        width: int = 32,
        background: int = 0,
        tint: bool = False,
        edge: int = 0,
        centre: float = 0.0,
    ):
        super().__init__()
        for name, v, low in (("objects", objects, 1), ("appearance", appearance, 1), ("width", width, 1)):
            if not _is_int(v) or v < low:
                raise LatentVideoError(f"{name} must be an integer >= {low}, got {v!r}")
        if objects > MAX_OBJECTS:
            raise LatentVideoError(f"objects must be at most {MAX_OBJECTS}, got {objects}")
        if not _is_int(background) or background < 0:
            raise LatentVideoError(f"background must be an integer >= 0, got {background!r}")
        if channels not in (1, 3):
            raise LatentVideoError(f"channels must be 1 or 3, got {channels!r}")
        if not _is_int(resolution) or resolution not in (32, 64, 128):
            raise LatentVideoError(f"resolution must be 32, 64 or 128, got {resolution!r}")
        if not _is_int(sprite) or sprite % 4 or not 8 <= sprite < resolution:
            raise LatentVideoError(f"sprite must be a multiple of 4 in [8, {resolution}), got {sprite!r}")
        if not isinstance(tint, bool) or (tint and channels != 3) or (tint and appearance < 4):
            raise LatentVideoError(f"tint needs RGB and an appearance code of at least 4, got tint={tint!r}")
        if not _is_int(edge) or not 0 <= edge <= sprite // 4:
            raise LatentVideoError(f"edge must be an integer in [0, {sprite // 4}] px, got {edge!r}")
        self.objects, self.appearance, self.background = objects, appearance, background
        if (
            not isinstance(centre, (int, float))
            or isinstance(centre, bool)
            or not 0 <= centre <= 10
            or (centre and channels != 3)
        ):
            raise LatentVideoError(f"centre must be a number in [0, 10] for RGB sprites, got {centre!r}")
        self.tint, self.edge, self.centre = tint, edge, float(centre)
        self.resolution, self.channels, self.sprite = resolution, channels, sprite
        self.z_dim = objects * (appearance + 2) + background
        self.latent_layout = LatentLayout(
            tuple((k * (appearance + 2) + appearance, k * (appearance + 2) + appearance + 1) for k in range(objects)),
            float(resolution - sprite),
            tuple((k * (appearance + 2), k * (appearance + 2) + appearance) for k in range(objects)),
        )
        self.c0 = width * 4
        self.sprite_fc = nn.Linear(appearance - 3 * tint, self.c0 * (sprite // 4) ** 2)
        self.sprite_body = _upconv_stack(self.c0, [width * 2, width])
        # gray: one intensity channel (also its own alpha); RGB: colour + alpha; tint: shade + alpha
        self.sprite_out = nn.Conv2d(width, 1 if channels == 1 else 2 if tint else 4, 3, 1, 1)
        if tint and not centre:  # alpha starts nearly transparent (0.12)
            nn.init.constant_(self.sprite_out.bias[-1:], ALPHA_START)
        # these two buffers are made on the CPU even under a meta device (modelcheck builds a model there for its
        # shapes): arithmetic on meta tensors imports torch._dynamo, 1.3 s of every model load
        i = torch.arange(sprite, dtype=torch.float32, device="cpu")
        ramp = (torch.minimum(i, sprite - 1 - i) / max(edge, 1)).clamp(max=1.0) if edge else torch.ones_like(i)
        self.register_buffer("window", ramp[:, None] * ramp[None, :], persistent=False)  # [S, S]
        # `centre`: a fixed prior added to the alpha logit, centre x (1/2 - d^2) with d the distance from the box
        # centre over half the box: a fresh sprite is a centred blob (alpha 0.82 in the middle, 0.5 at d = 0.71,
        # 0.18 mid-edge), so objects grow as shapes in their boxes (without it, RGB runs cut shape-shaped holes
        # into opaque boxes); the sprite net can override it anywhere
        d = (i - (sprite - 1) / 2) / (sprite / 2)
        self.register_buffer("alpha_prior", centre * (0.5 - d[:, None] ** 2 - d[None, :] ** 2), persistent=False)
        # [K, logits, S, S] or None: a per-clip copy's own sprite detail, added to each slot's sprite logits (given
        # by the last pivotal tuning with `joint_tuning`, tune.add_sprite_detail); never part of a saved model
        self.register_parameter("sprite_detail", None)
        if background:
            n_up = int(math.log2(resolution)) - 2  # 4x4 -> R
            self.bg_fc = nn.Linear(background, self.c0 * 16)
            self.bg_body = _upconv_stack(self.c0, [max(width, self.c0 >> (i + 1)) for i in range(n_up)])
            self.bg_out = nn.Conv2d(max(width, self.c0 >> n_up), channels, 3, 1, 1)
        # a clip's background plate [C, R, R] that replaces the background net (set on a per-clip tuned copy by
        # the pipeline, tune.background_plate); not a weight, never saved
        self.plate: torch.Tensor | None = None
        # [K, 2, 2] fold units: how far past each end of the fold range (below 0, above 1) slot k's positions
        # reach, per axis (set on a per-clip copy by reach.py, from `walls`); not a weight, never saved
        self.reach: torch.Tensor | None = None
        # how `place` samples a sprite at its position: bilinear (training, inversion, tuning), or bicubic, which
        # a clip's copy can draw the clip with (Options.bicubic: bilinear averages two px at a half px, a blur
        # that footage with objects on whole px, as Moving MNIST's, does not have); not a weight, never saved
        self.sampling = "bilinear"

    # ------------------------------------------------------------ latent layout

    def split(self, z: torch.Tensor):
        """z [N, z_dim] -> appearance [N, K, A], positions u [N, K, 2], background [N, B]."""
        N, K, A = z.shape[0], self.objects, self.appearance
        slots = z[:, : K * (A + 2)].reshape(N, K, A + 2)
        return slots[..., :A], slots[..., A:], z[:, K * (A + 2) :]

    @staticmethod
    def join(appearance: torch.Tensor, positions: torch.Tensor, background: torch.Tensor | None = None):
        """Inverse of `split`: [N, K, A], [N, K, 2], [N, B] -> z [N, z_dim]."""
        z = torch.cat([appearance, positions], -1).flatten(1)
        return z if background is None else torch.cat([z, background], 1)

    def sample_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Training latents: appearance and background ~ N(0, I), positions ~ U(0, 1) (the fold range)."""
        z = torch.randn(n, self.z_dim, generator=generator)
        u = torch.rand(n, self.objects, 2, generator=generator)
        z[:, self.latent_layout.index] = u
        return z

    # ------------------------------------------------------------ rendering

    def sprites(self, appearance: torch.Tensor, slot: int | None = None) -> torch.Tensor:
        """appearance [M, A] -> sprites [M, 1 or 4, S, S] in [0, 1] (RGB: colour, then alpha). Rows cycle over the
        slots (row i is slot i % K), or all are slot `slot`: that matters only to a copy with `sprite_detail`."""
        s = self.sprite // 4
        code = appearance[:, :-3] if self.tint else appearance
        x = F.leaky_relu(self.sprite_fc(code), 0.2).view(-1, self.c0, s, s)
        out = self.sprite_out(self.sprite_body(PixelNorm()(x)))  # [M, 1 | 2 | 4, S, S] logits
        if self.sprite_detail is not None and slot is not None:  # every row one slot's
            out = out + self.sprite_detail[slot]
        elif self.sprite_detail is not None:  # rows cycle over the slots: row i is slot i % K
            K = self.objects
            if len(out) % K:
                raise LatentVideoError(f"a copy with sprite detail draws whole slot sets: {len(out)} codes for {K}")
            out = (out.view(-1, K, *out.shape[1:]) + self.sprite_detail).flatten(0, 1)
        if self.centre:
            out = torch.cat([out[:, :-1], out[:, -1:] + self.alpha_prior], 1)
        out = torch.sigmoid(out)
        if self.tint:
            colour = 0.5 * (1 + torch.erf(appearance[:, -3:] / math.sqrt(2)))  # [M, 3] Phi(t)
            out = torch.cat([colour[:, :, None, None] * out[:, :1], out[:, 1:]], 1)
        return torch.cat([out[:, :-1], out[:, -1:] * self.window], 1) if self.edge else out

    def place(self, sprites: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Sprites [M, c, S, S] with positions u [M, 2] -> layers [M, c, R, R]: the sprite's ink centre of
        mass lands at fold(u) * fold_range + (S - 1) / 2 px; at integer px the copy is pixel-exact. With `reach`
        set, rows cycle over the slots (row i is slot i % K) and fold(u) spans each slot's own reach instead."""
        M, _, S, _ = sprites.shape
        R = self.resolution
        top_left = self.reached(fold(u)) * self.latent_layout.fold_range - self._shift(sprites)  # [M, 2] px
        # the sampling grid of a scale R / S and a shift, as affine_grid (align_corners=False) builds it, made
        # from one base grid (affine_grid multiplies [M, R * R, 3] by [M, 3, 2], and has no vmap rule); x is col
        base = (torch.arange(R, dtype=sprites.dtype, device=sprites.device) * 2 + 1) / S - R / S  # [R]
        shift = (R - 2 * top_left) / S - 1  # [M, 2] (row, col)
        grid = (
            torch.stack(torch.meshgrid(base, base, indexing="xy"), -1) + shift.flip(-1)[:, None, None]
        )  # [M, R, R, 2]
        placed = F.grid_sample(sprites, grid, mode=self.sampling, padding_mode="zeros", align_corners=False)
        return placed if self.sampling == "bilinear" else placed.clamp(0, 1)  # bicubic overshoots at edges

    def reached(self, f: torch.Tensor) -> torch.Tensor:
        """Folded positions f [M, 2] in [0, 1], rows cycling over the slots -> positions in G's fold units: f itself,
        or with `reach` set, slot k's f mapped onto [-reach[k, :, 0], 1 + reach[k, :, 1]]."""
        r = self.reach
        if r is None:
            return f
        K = len(r)
        if len(f) % K:
            raise LatentVideoError(f"a reached copy places whole slot sets: {len(f)} positions for {K} slots")
        r = r.to(f)
        return (f.view(-1, K, 2) * (1 + r.sum(-1)) - r[..., 0]).view(-1, 2)

    @staticmethod
    def _shift(sprites: torch.Tensor) -> torch.Tensor:
        """Sprites [M, c, S, S] -> [M, 2] (row, col) px from the box centre to the ink (or alpha) centre of mass."""
        S = sprites.shape[-1]
        mass = sprites[:, -1]  # [M, S, S]: intensity (gray) or alpha (RGB)
        coords = torch.arange(S, dtype=sprites.dtype, device=sprites.device)
        total = mass.sum((1, 2)) + 1e-3
        com = torch.stack([(mass.sum(2) * coords).sum(1), (mass.sum(1) * coords).sum(1)], 1) / total[:, None]
        return (com - (S - 1) / 2).clamp(-S / 4, S / 4)

    @torch.no_grad()
    def walls(self, z: torch.Tensor, threshold: float = 0.5) -> np.ndarray:
        """A latent [z_dim] -> [K, 2, 2]: per slot and axis (row, col), how far (fold units) past each end of the
        fold range (below 0, above 1) the slot's sprite can go before its ink (alpha >= threshold) meets the
        canvas edge: where an object of that sprite bounces (unwrap.py). 0 where the ink already meets it at the
        fold's end, or where the slot draws nothing."""
        sprites = self.sprites(self.split(z[None])[0][0])  # [K, c, S, S]
        shift = self._shift(sprites)  # [K, 2]
        fr, R = self.latent_layout.fold_range, self.resolution
        out = np.zeros((self.objects, 2, 2))
        for k in range(self.objects):
            mass = sprites[k, -1]  # [S, S]
            for axis in range(2):
                inked = torch.nonzero(mass.amax(1 - axis) >= threshold).flatten()
                if len(inked):  # the ink's first and last px meet the walls at these fold positions
                    lo, hi = (shift[k, axis] - inked[0]) / fr, (R - 1 - inked[-1] + shift[k, axis]) / fr
                    out[k, axis] = (float(-lo), float(hi - 1))
        return out.clip(0, 0.5)

    def backdrop(self, b: torch.Tensor) -> torch.Tensor:
        """Background codes [N, B] -> [N, C, R, R]: the clip's plate where one is set, else `draw_backdrop`."""
        if self.plate is not None:
            return self.plate.to(b)[None].expand(b.shape[0], -1, -1, -1)
        return self.draw_backdrop(b)

    def draw_backdrop(self, b: torch.Tensor) -> torch.Tensor:
        """Background codes [N, B] -> the background net's [N, C, R, R] (black without a background code)."""
        if not self.background:
            return b.new_zeros(b.shape[0], self.channels, self.resolution, self.resolution)
        x = F.leaky_relu(self.bg_fc(b), 0.2).view(-1, self.c0, 4, 4)
        return torch.sigmoid(self.bg_out(self.bg_body(PixelNorm()(x))))

    def layers(self, z: torch.Tensor) -> torch.Tensor:
        """z [N, z_dim] -> each slot's placed sprite [N, K, c, R, R] (c = 1 gray, 4 RGB + alpha)."""
        a, u, _ = self.split(z)
        N, K = a.shape[:2]
        placed = self.place(self.sprites(a.reshape(N * K, -1)), u.reshape(N * K, 2))
        return placed.view(N, K, *placed.shape[1:])

    def forward(self, z: torch.Tensor, with_backdrop: bool = False, over: torch.Tensor | None = None):
        """z [N, z_dim] -> images [N, C, R, R]. For training with the plate critic (training/plates.py), in one
        forward: `over` [N, 3, R, R] composes the slots over these backdrops (real plates) instead of G's own, and
        `with_backdrop` returns (images, G's backdrop [N, 3, R, R], None for gray)."""
        back = None
        if self.channels == 3 and (over is None or with_backdrop):
            back = self.backdrop(self.split(z)[2])
        x = self.compose(self.layers(z), back if over is None else over)
        return (x, back) if with_backdrop else x

    def compose(self, layers: torch.Tensor, backdrop: torch.Tensor | None) -> torch.Tensor:
        """Placed sprites [N, K, c, R, R] -> images [N, C, R, R]: max (gray), or alpha-over onto the backdrop
        [N, 3, R, R] with slot 1 at the back (RGB)."""
        if self.channels == 1:
            return layers.amax(1)  # max compositing, as Moving MNIST is made
        out = backdrop
        for k in range(self.objects):
            rgb, alpha = layers[:, k, :3], layers[:, k, 3:]
            out = alpha * rgb + (1 - alpha) * out
        return out

    def forward_shared(self, z: torch.Tensor) -> torch.Tensor:
        """Clips whose frames share every coordinate but the positions: z [M, n, z_dim] -> [M, n, C, R, R],
        equal to forward(z.flatten(0, 1)) when z[:, i] and z[:, 0] differ only in positions. The sprite and
        background nets run once per clip (appearance and background from z[:, 0]), not once per frame: the clip
        fit and pivotal tuning render a clip's keyframes many times."""
        M, n = z.shape[:2]
        placed = self.layers_shared(z).flatten(0, 1)  # [M * n, K, c, R, R]
        back = None
        if self.channels == 3:
            b = self.split(z[:, 0])[2]  # [M, B]
            back = self.backdrop(b)[:, None].expand(M, n, 3, self.resolution, self.resolution).flatten(0, 1)
        return self.compose(placed, back).view(M, n, self.channels, *placed.shape[3:])

    def layers_shared(self, z: torch.Tensor) -> torch.Tensor:
        """`layers` for clips whose frames share every coordinate but the positions: z [M, n, z_dim] ->
        [M, n, K, c, R, R], each clip's sprites drawn once (from z[:, 0])."""
        M, n = z.shape[:2]
        a = self.split(z[:, 0])[0]  # [M, K, A]
        u = self.split(z.flatten(0, 1))[1]  # [M * n, K, 2]
        K = a.shape[1]
        sprites = self.sprites(a.reshape(M * K, -1))  # [M * K, c, S, S]
        sprites = sprites.view(M, 1, K, *sprites.shape[1:]).expand(M, n, K, *sprites.shape[1:])
        placed = self.place(sprites.reshape(M * n * K, *sprites.shape[3:]), u.reshape(M * n * K, 2))
        return placed.view(M, n, K, *placed.shape[1:])


def latent_layout(module) -> LatentLayout | None:
    """The position layout a generator declares (`latent_layout` attribute), or None."""
    layout = getattr(module, "latent_layout", None)
    if layout is None or isinstance(layout, LatentLayout):
        return layout
    return LatentLayout.from_dict(layout, getattr(module, "z_dim", 0))


def render_clips(G, z: torch.Tensor) -> torch.Tensor:
    """Clips' latents [M, n, z_dim] -> images [M, n, C, H, W]. Where G can render a clip's frames from shared
    sprites (`forward_shared`) and every frame of each clip shares all but its positions, the sprite net runs once
    per clip (3x fewer sprites for 3 keyframes); otherwise frame by frame. The same images either way."""
    if shares_sprites(G, z):
        return G.forward_shared(z)
    x = G(z.flatten(0, 1))
    return x.view(*z.shape[:2], *x.shape[1:])


def shares_sprites(G, z: torch.Tensor) -> bool:
    """Whether G can render clips' frames z [..., n, z_dim] from shared sprites (`forward_shared`): it has that
    method and a layout, and within each clip the frames differ only in their positions."""
    layout = latent_layout(G)
    if not hasattr(G, "forward_shared") or layout is None:
        return False
    rest = torch.ones(z.shape[-1], dtype=torch.bool, device=z.device)
    rest[layout.index.flatten()] = False
    return torch.equal(z[..., rest], z[..., :1, rest].expand_as(z[..., rest]))
