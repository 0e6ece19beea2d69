"""latentvideo: a few still images in, a short video out, through a GAN's latent space."""

__version__ = "0.1.0"

from .errors import LatentVideoError  # noqa: E402
from .models import Critic, Generator, Projector, load_model, save_model  # noqa: E402

__all__ = ["LatentVideoError", "Generator", "Critic", "Projector", "load_model", "save_model", "__version__"]
