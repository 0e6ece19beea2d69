"""The `latentvideo` command's typer app and its `train` and `dataset` groups, with what every command
shares: the --debug flag, `_fail` and the --model help. Commands register themselves on these apps:
cli_train.py the `dataset` and `train` commands, cli_eval.py `demo`, `bench`, `compare` and `ppl`, cli.py the rest
(and the entry point, `main`)."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from ..errors import LatentVideoError

# the order `latentvideo --help` lists the commands in, whichever module registers them
COMMANDS = ("export", "generate", "invert", "render", "demo", "bench", "compare", "ppl", "serve", "train", "dataset")

MODEL_HELP = (
    "A shipped model by name (moving-mnist-objects, the default; moving-mnist-64; moving-shapes), or a model "
    "folder with generator/ and critic/ (a training run works)."
)


class _Commands(TyperGroup):
    def list_commands(self, ctx) -> list[str]:
        rank = {name: i for i, name in enumerate(COMMANDS)}
        return sorted(self.commands, key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    cls=_Commands,
    help="latentvideo: a few still images in, a short video out, through a GAN's latent space.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
train_app = typer.Typer(help="Train the networks: the frame GAN, P-NET and the digit classifier.", no_args_is_help=True)
dataset_app = typer.Typer(help="Write datasets in the standard [T, N, H, W] uint8 layout.", no_args_is_help=True)
app.add_typer(train_app, name="train")
app.add_typer(dataset_app, name="dataset")

_state = {"debug": False}


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on unexpected errors.")):
    _state["debug"] = debug


def _fail(message: str, hint: str | None = None):
    raise LatentVideoError(message, hint)
