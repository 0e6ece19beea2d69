"""The plate critic: the background net learns the footage's plates, the slots its objects.

A run that trains long enough lets the background net paint objects (blurred coloured blobs), which no latent
path can move and which hide objects from inversion; a pair critic (training/pairs.py) did not stop it. With a
plate weight > 0 training splits the frame in two:

- **the background net** learns from a third WGAN-GP critic alone: its backdrop, drawn without slots, must look
  like a real *plate*, a shot's background without its objects. A real plate is the per-pixel temporal median of
  one shot of the footage: objects that move are in each pixel for a minority of the shot's frames, so the median
  drops them (`frames.shot_plates`; `frames.ArrayFrames.plates` finds the shots);
- **the slots** are composed over real plates, not over G's backdrop, for the main critic: a real background on
  both sides of it, so that the only way to match the footage's objects is to draw them with the slots.

This is how the pipeline renders a colour clip anyway (over the clip's plate, `tune.background_plate`). G still
renders single frames over its own backdrop outside training (P-NET's samples, the first clip fit), and the
exported critic still scores single frames. Footage with a moving camera has blurred medians: the background
net then learns blurred backdrops, which the pipeline's plates replace.
"""

from __future__ import annotations

import math

from ..errors import LatentVideoError


def check_plate_settings(weight, arch: str, background: int) -> None:
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool) and math.isfinite(weight)):
        raise LatentVideoError(f"plate_weight must be a finite number >= 0, got {weight!r}")
    if weight < 0:
        raise LatentVideoError(f"plate_weight must be a finite number >= 0, got {weight!r}")
    if weight and (arch != "objects" or not background):
        raise LatentVideoError(
            "the plate critic needs an objects generator with a background code", hint="--arch objects --background 32"
        )
