"""latentvideo: a few still images in, a short video out, through a GAN's latent space."""

__version__ = "0.1.0"

# ruff: noqa: E402  (the version must be set before the submodules import it)
# The stage functions named like their modules (invert.invert, render.render) are not re-exported
# here: that would shadow the modules themselves.
from .correct import correct_clip, correct_latents, correct_pixels
from .data import load_digits, moving_mnist, read_sequences
from .errors import LatentVideoError
from .invert import Inversion
from .models import Critic, DigitClassifier, Generator, Projector, load_model, save_model
from .pipeline import Clip, Options, Pipeline, generate, load_pipeline, prepare_keyframes
from .render import to_uint8, write_clip
from .training.gan import GANConfig, train_gan
from .trajectory import fit_trajectory, lerp_path, slerp_path

__all__ = [
    "__version__",
    "LatentVideoError",
    # data and models
    "load_digits",
    "moving_mnist",
    "read_sequences",
    "Generator",
    "Critic",
    "Projector",
    "DigitClassifier",
    "load_model",
    "save_model",
    "GANConfig",
    "train_gan",
    # the pipeline and its stages
    "Pipeline",
    "Options",
    "Clip",
    "load_pipeline",
    "generate",
    "prepare_keyframes",
    "Inversion",
    "fit_trajectory",
    "lerp_path",
    "slerp_path",
    "correct_latents",
    "correct_pixels",
    "correct_clip",
    "to_uint8",
    "write_clip",
]
