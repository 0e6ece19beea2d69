"""The web page's model picker and option controls, none of it tied to Gradio.

`Models` is the list of models a request may name (the shipped ones and the one the server was started
with), each loaded on first use. `control_state` is what of an option's control depends on the model (its
default, the methods offered, whether the critic's controls are live), `option_controls` makes one control
per pipeline option (given the gradio module) and `control_values` turns the controls' values back into
Options overrides. `load_sample` writes keyframes of a held-out test sequence for 'Sample a test sequence'.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data import moving_mnist
from ..errors import LatentVideoError
from ..options import schema
from ..render import write_png
from ..shapes import moving_shapes

SAMPLE_KEYFRAMES = (0, 9, 19)
SAMPLE_FRAMES = 20


# ---------------------------------------------------------------- models


class Models:
    """The models the page offers, by name: every shipped model (`pipeline.shipped_models()`, in the picker's
    order) and, last, the one the server was started with when that is a folder of its own (named by its path
    as given). Each pipeline is loaded on first use, once (a second request for it waits for that load), and
    kept. A request names a model on this list or gets a one-line `LatentVideoError`: no request ever names a
    folder to load. `pipe`: the started model, already loaded."""

    CUSTOM = "custom model"  # the name of a started model given only as a loaded pipeline

    def __init__(self, start: str | Path | None = None, device: str = "auto", *, pipe=None):
        from .. import pipeline

        self.device = device
        shipped = pipeline.shipped_models() if pipeline.SHIPPED.is_dir() else []
        self._where: dict[str, Path | None] = {name: pipeline.SHIPPED / name for name in shipped}
        self.default = self._started(start, pipe)
        self._pipes = {} if pipe is None else {self.default: pipe}
        self._lock = threading.Lock()

    def _started(self, start, pipe) -> str:
        """The started model's name, added to the list unless it is a shipped one."""
        from .. import pipeline

        if start is None and pipe is None:
            name = pipeline.DEFAULT_MODEL  # load_pipeline(None); listed even if missing, to fail on load
            self._where.setdefault(name, pipeline.SHIPPED / name)
            return name
        if start is None:
            self._where[self.CUSTOM] = None
            return self.CUSTOM
        path = Path(start)
        for name, where in self._where.items():
            if str(start) == name and not path.exists():  # --model NAME
                return name
            if path.exists() and path.resolve() == where.resolve():  # the shipped folder by its path
                return name
        name = str(start) if str(start) not in self._where else str(path.resolve())
        self._where[name] = path
        return name

    @property
    def names(self) -> list[str]:
        return list(self._where)

    def get(self, name: str | None = None):
        """The pipeline of model `name` (default: the started model), loaded on first use."""
        name = name or self.default
        if not isinstance(name, str) or name not in self._where:
            raise LatentVideoError(f"unknown model {name!r}; this server offers {', '.join(self.names)}")
        pipe = self._pipes.get(name)
        if pipe is None:
            with self._lock:  # one load per model, however many requests ask at once
                pipe = self._pipes.get(name)
                if pipe is None:
                    from .. import pipeline

                    pipe = self._pipes[name] = pipeline.load_pipeline(self._where[name], self.device)
        return pipe

    def describe(self, name: str | None = None) -> str:
        """One line about a model: its name, frame size and colour."""
        pipe = self.get(name)
        colour = "colour" if pipe.channels == 3 else "grayscale"
        return f"{name or self.default}: {pipe.resolution}x{pipe.resolution} {colour}"


def as_models(pipe_or_models) -> Models:
    """A `Models` as it is, or a loaded pipeline as the started model."""
    return pipe_or_models if isinstance(pipe_or_models, Models) else Models(pipe=pipe_or_models)


# ---------------------------------------------------------------- sample


@dataclass
class Sample:
    paths: list[Path]  # keyframe PNGs, in time order
    times: list[float]  # their frame indices
    truth: np.ndarray  # uint8 [T, H, W] (gray) or [T, H, W, 3] (colour): the whole test sequence
    seed: int


def load_sample(out_dir: str | Path, seed: int | None = None, channels: int = 1) -> Sample:
    """Keyframes 0, 9, 19 of one held-out test sequence, written as PNGs into `out_dir`: Moving MNIST
    (test-split digits) for a gray model, Moving Shapes (test backgrounds and hues) for a colour one."""
    seed = secrets.randbelow(2**31) if seed is None else int(seed)
    if channels == 3:
        video = moving_shapes(1, SAMPLE_FRAMES, 64, "test", seed=seed).video[:, 0]  # [T, 64, 64, 3]
    else:
        video = moving_mnist(1, SAMPLE_FRAMES, split="test", seed=seed).video[:, 0]  # [T, 64, 64]
    out_dir = Path(out_dir)
    paths = []
    for t in SAMPLE_KEYFRAMES:
        p = out_dir / f"test-t{t:02d}.png"
        write_png(p, video[t])
        paths.append(p)
    return Sample(paths, [float(t) for t in SAMPLE_KEYFRAMES], video, seed)


# ---------------------------------------------------------------- option controls


def control_values(values: Sequence, names: Sequence[str]) -> dict:
    """The page's control values (in `names` order, options.schema fields) -> Options overrides: 0 means
    off for a fraction (PCA) and unknown for a speed; empty controls keep the model's default."""
    out = {}
    for name, v in zip(names, values):
        k = schema()[name]
        if v is None or v == "":
            continue
        if k.kind in ("fraction", "speed"):
            out[name] = float(v) if float(v) > 0 else None
        elif k.kind == "int":
            out[name] = int(v)
        elif k.kind == "float":
            out[name] = float(v)
        elif k.kind == "bool":
            out[name] = bool(v)
        else:
            out[name] = str(v)
    return out


def control_state(pipe, name: str) -> dict:
    """What of option `name`'s control depends on the model: its value (the model's default, as the page shows
    it: 0 for off or unknown), the methods offered (P-NET ones need a projector) and whether the critic's
    controls are live (they need a critic)."""
    from ..invert import METHODS

    k = schema()[name]
    value = getattr(pipe.default_options(), name)
    state = {"value": (value or 0) if k.kind in ("float", "fraction", "speed") else value}
    if name == "method":
        state["choices"] = [m for m in METHODS if pipe.projector is not None or not m.startswith("pnet")]
    if name.startswith("critic"):
        state["interactive"] = pipe.critic is not None
    return state


def model_defaults(models: Models, name: str | None = None) -> dict:
    """Option name -> the value its control shows for model `name` (loaded if need be)."""
    pipe = models.get(name)
    return {n: control_state(pipe, n)["value"] for n in schema(include_api_only=False)}


def option_controls(gr, pipe) -> dict:
    """One control per pipeline option (options.schema, API-only fields aside), labelled with its help text
    and set to the model's default (`control_state`); elem_id is the option's flag name (e.g. motion-speed)."""
    controls = {}
    for name, k in schema(include_api_only=False).items():
        state, elem = control_state(pipe, name), name.replace("_", "-")
        label = f"{name.replace('_', ' ')}: {k.help}"
        if name == "method":
            controls[name] = gr.Dropdown(label=label, elem_id=elem, **state)
        elif k.kind == "choice":
            controls[name] = gr.Radio(list(k.choices), label=label, elem_id=elem, **state)
        elif k.kind == "int":
            high = k.high if k.high is not None else max(100, state["value"])
            controls[name] = gr.Slider(k.low, high, step=1, label=label, elem_id=elem, **state)
        elif k.kind == "bool":
            controls[name] = gr.Checkbox(label=label, elem_id=elem, **state)
        else:  # float, fraction (0: off), speed (0: unknown)
            zero = {"fraction": " (0: off)", "speed": " (0: unknown)"}.get(k.kind, "")
            controls[name] = gr.Number(minimum=0, label=label + zero, elem_id=elem, **state)
    return controls
