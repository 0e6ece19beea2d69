"""Networks and the model-directory format.

A model is a directory holding `config.json` (the architecture name and its keyword
arguments) and `model.safetensors`. `load_model(dir)` rebuilds the module from the
config and loads the weights; nothing is ever unpickled.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import LatentVideoError
from .objects import LatentLayout, ObjectGenerator

CONFIG_NAME, WEIGHTS_NAME = "config.json", "model.safetensors"


def _num_blocks(resolution: int) -> int:
    if resolution not in (32, 64, 128):
        raise LatentVideoError(f"resolution must be 32, 64 or 128, got {resolution}")
    return int(math.log2(resolution)) - 2  # 4x4 -> resolution


class PixelNorm(nn.Module):
    """Normalise each pixel's feature vector (ProGAN): batch-independent, unlike BatchNorm,
    so a frame renders the same alone or in a batch."""

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class Generator(nn.Module):
    """DCGAN-style generator: z [N, z_dim] ~ N(0, I) -> image [N, C, R, R] in [0, 1].

    mapping_layers > 0 adds a StyleGAN-like mapping network w = mapping(z) (pixel norm on z, then
    that many Linear + LeakyReLU layers, w_dim = z_dim) in front of the DCGAN body `synthesis(w)`;
    0 (the default) has no mapping: w = z, and the weights and config are those of before."""

    def __init__(
        self, z_dim: int = 256, resolution: int = 64, channels: int = 1, width: int = 32, mapping_layers: int = 0
    ):
        super().__init__()
        if not isinstance(mapping_layers, int) or mapping_layers < 0:
            raise LatentVideoError(f"mapping_layers must be an integer >= 0, got {mapping_layers!r}")
        self.z_dim, self.resolution, self.channels = z_dim, resolution, channels
        self.mapping_layers, self.w_dim = mapping_layers, z_dim
        n = _num_blocks(resolution)
        chans = [width * 2 ** (n - 1 - i) for i in range(n)]  # e.g. [256, 128, 64, 32] for 64x64
        self.c0 = chans[0]
        self.fc = nn.Linear(z_dim, chans[0] * 16)
        blocks = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            blocks += [nn.ConvTranspose2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2), PixelNorm()]
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.ConvTranspose2d(chans[-1], channels, 4, 2, 1)
        if mapping_layers:  # built last, so the body's initial weights do not depend on it
            layers = [PixelNorm()]
            for _ in range(mapping_layers):
                layers += [nn.Linear(z_dim, z_dim), nn.LeakyReLU(0.2)]
            self.mapper = nn.Sequential(*layers)

    def mapping(self, z):
        """z [N, z_dim] -> w [N, w_dim] (the identity without a mapping network)."""
        return self.mapper(z) if self.mapping_layers else z

    def synthesis(self, w):
        """w [N, w_dim] -> image [N, C, R, R] in [0, 1]."""
        x = F.leaky_relu(self.fc(w), 0.2).view(-1, self.c0, 4, 4)  # [N, c0, 4, 4]
        x = self.blocks(PixelNorm()(x))
        return torch.sigmoid(self.out(x))  # [N, C, R, R]

    def forward(self, z):
        return self.synthesis(self.mapping(z))


class Synthesis(nn.Module):
    """A generator's synthesis network as a generator of its own: w [N, w_dim] -> image, with
    `z_dim` = w_dim, so that inversion, paths and rendering can work in w (G is shared, not copied)."""

    def __init__(self, G: nn.Module):
        super().__init__()
        if not has_mapping(G):
            raise LatentVideoError("the generator has no mapping network, so it has no w space", hint="use z")
        self.G = G
        self.z_dim = getattr(G, "w_dim", getattr(G, "z_dim", None))

    def forward(self, w):
        return self.G.synthesis(w)


def has_mapping(G) -> bool:
    """Whether G has a mapping network z -> w and a `synthesis(w)` (a Generator with mapping_layers > 0)."""
    return (
        callable(getattr(G, "synthesis", None))
        and callable(getattr(G, "mapping", None))
        and (getattr(G, "mapping_layers", 1) > 0)
    )


class _Encoder(nn.Module):
    """Strided-conv encoder shared by the critic, P-NET and classifier: [N, C, R, R] -> [N, F]."""

    def __init__(self, resolution: int, channels: int, width: int):
        super().__init__()
        n = _num_blocks(resolution)
        chans = [channels] + [width * 2**i for i in range(n)]
        layers = []
        for cin, cout in zip(chans[:-1], chans[1:]):
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers)
        self.features = chans[-1] * 16

    def forward(self, x):
        return self.body(x * 2 - 1).flatten(1)  # images in [0, 1] -> [-1, 1]


class Critic(nn.Module):
    """WGAN critic: image [N, C, R, R] in [0, 1] -> score [N]. No normalisation layers,
    as the gradient penalty needs per-sample gradients."""

    def __init__(self, resolution: int = 64, channels: int = 1, width: int = 32):
        super().__init__()
        self.resolution, self.channels = resolution, channels
        self.encoder = _Encoder(resolution, channels, width)
        self.head = nn.Linear(self.encoder.features, 1)

    def forward(self, x):
        return self.head(self.encoder(x)).squeeze(1)


class Projector(nn.Module):
    """P-NET: image [N, C, R, R] -> latent z [N, z_dim]."""

    def __init__(self, z_dim: int = 256, resolution: int = 64, channels: int = 1, width: int = 32, hidden: int = 512):
        super().__init__()
        self.z_dim, self.resolution, self.channels = z_dim, resolution, channels
        self.encoder = _Encoder(resolution, channels, width)
        self.head = nn.Sequential(nn.Linear(self.encoder.features, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, z_dim))

    def forward(self, x):
        return self.head(self.encoder(x))


class DigitClassifier(nn.Module):
    """Multi-label digit classifier: image -> 10 logits (one per digit class present).

    `features(x)` gives the penultimate features used for the Fréchet distance."""

    def __init__(self, resolution: int = 64, channels: int = 1, width: int = 32, hidden: int = 256):
        super().__init__()
        self.resolution, self.channels = resolution, channels
        self.encoder = _Encoder(resolution, channels, width)
        self.fc = nn.Sequential(nn.Linear(self.encoder.features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 10)

    def features(self, x):
        return self.fc(self.encoder(x))

    def forward(self, x):
        return self.head(self.features(x))


class ShapeClassifier(nn.Module):
    """Shape of an object's colour mask: mask [N, 1, R, R] in [0, 1] -> logits [N, 6] (the five Moving Shapes
    shapes, then "no object of this colour"). See evaluation/colour.py."""

    def __init__(self, resolution: int = 64, width: int = 16, hidden: int = 128):
        super().__init__()
        self.resolution, self.channels = resolution, 1
        self.encoder = _Encoder(resolution, 1, width)
        self.fc = nn.Sequential(nn.Linear(self.encoder.features, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 6)

    def features(self, x):
        return self.fc(self.encoder(x))

    def forward(self, x):
        return self.head(self.features(x))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "dcgan-generator": Generator,
    "objects-generator": ObjectGenerator,
    "dcgan-critic": Critic,
    "conv-projector": Projector,
    "digit-classifier": DigitClassifier,
    "shape-classifier": ShapeClassifier,
}


GENERATORS = ("dcgan-generator", "objects-generator")


def build_model(config: dict) -> nn.Module:
    """Rebuild a module from its config (weights not loaded). A `latent_layout` entry (objects-generator)
    must match the layout the architecture renders."""
    config = dict(config)
    arch = config.pop("arch", None)
    config.pop("latentvideo_version", None)
    layout = config.pop("latent_layout", None)
    if not isinstance(arch, str) or arch not in ARCHITECTURES:
        raise LatentVideoError(f"unknown architecture {arch!r}", hint=f"known: {', '.join(ARCHITECTURES)}")
    try:
        model = ARCHITECTURES[arch](**config)
    except TypeError as e:
        raise LatentVideoError(f"bad config for {arch}: {e}") from None
    if layout is not None:
        own = getattr(model, "latent_layout", None)
        if own is None:
            raise LatentVideoError(f"{arch} has no position coordinates, but its config declares a latent_layout")
        declared = LatentLayout.from_dict(layout, model.z_dim)
        if not declared.agrees_with(own):
            raise LatentVideoError(
                f"latent_layout {declared.to_dict()} does not match the generator's {own.to_dict()}",
                hint="the layout follows from objects, appearance, resolution and sprite",
            )
    return model


def model_config(model: nn.Module, **kwargs) -> dict:
    """config.json for `model`: its architecture name, the given arguments and, for a generator with
    position coordinates, its `latent_layout`."""
    arch = {cls: name for name, cls in ARCHITECTURES.items()}.get(type(model))
    if arch is None:
        raise LatentVideoError(f"cannot save a {type(model).__name__}: not a latentvideo architecture")
    layout = getattr(model, "latent_layout", None)
    return {"arch": arch, **kwargs, **({"latent_layout": layout.to_dict()} if layout is not None else {})}


def save_model(model: nn.Module, path: str | Path, config: dict) -> Path:
    """Write `config.json` + `model.safetensors` into directory `path`, each atomically."""
    from safetensors.torch import save_file

    from . import __version__
    from .fileio import atomic_path, write_json

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp))
    write_json(path / CONFIG_NAME, {**config, "latentvideo_version": __version__})
    return path


def load_model(
    path: str | Path, device: str | torch.device = "cpu", expect: str | tuple[str, ...] | None = None
) -> nn.Module:
    """Rebuild a model from its directory. Refuses pickles; every failure is a LatentVideoError."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from .modelcheck import check_model_folder

    path = Path(path)
    if not path.exists():
        raise LatentVideoError(f"model directory not found: {path}")
    if not path.is_dir():
        raise LatentVideoError(
            f"a model is a directory with {CONFIG_NAME} and {WEIGHTS_NAME}, got a file: {path}",
            hint="pickled .pt/.pkl checkpoints are never loaded; export with save_model()",
        )
    cfg_file, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
    if not cfg_file.is_file():
        raise LatentVideoError(f"model directory has no {CONFIG_NAME}: {path}")
    if not weights.is_file():
        raise LatentVideoError(f"model directory has no {WEIGHTS_NAME}: {path}")
    config = check_model_folder(path, expect)  # sizes, shapes and the weights' header, before any allocation
    model = build_model(config)
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise LatentVideoError(f"cannot read {weights} (corrupt or truncated?): {e}") from None
    for name, t in state.items():
        if not torch.isfinite(t).all():
            kind = "NaN" if torch.isnan(t).any() else "infinite"
            raise LatentVideoError(f"weights in {weights} are not finite: tensor {name!r} holds {kind} values")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        detail = next((ln.strip() for ln in first[1:] if ln.strip()), first[0] if first else "")
        raise LatentVideoError(f"weights in {weights} do not match {cfg_file}: {detail}") from None
    return model.to(device).eval().requires_grad_(False)


def module_device(module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module without any, or a plain function)."""
    for tensors in (getattr(module, "parameters", None), getattr(module, "buffers", None)):
        t = next(tensors(), None) if tensors else None
        if t is not None:
            return t.device
    return torch.device("cpu")


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise LatentVideoError(f"unknown device {device!r}", hint="auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LatentVideoError("CUDA was requested but is not available", hint="use --device cpu")
    return dev
