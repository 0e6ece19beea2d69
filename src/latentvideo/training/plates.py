"""The plate critic: a third WGAN-GP critic, on the background alone, for the objects generator in colour.

A run that trains long enough lets the background net paint objects (blurred coloured blobs), which no latent
path can move and which hide objects from inversion; a pair critic (training/pairs.py) did not stop it. The plate
critic says it directly: G's backdrop, drawn by the background net alone (no slots), must look like a real
*plate*, a shot's background without its objects. A real plate is the per-pixel temporal median of one shot of
the footage: objects that move are in each pixel for a minority of the shot's frames, so the median drops them
(`frames.shot_plates`; `frames.ArrayFrames.plates` finds the shots). Whatever G paints into its backdrop that a
plate does not hold, the plate critic can tell apart, so objects must come from the slots.

G still renders single frames and the main critic still scores them (the exported critic/ is unchanged); only
training sees plates. Footage with a moving camera has blurred medians: the plate critic then asks for a blurred
backdrop, which the slots' objects do not need.
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
