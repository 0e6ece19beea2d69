"""Training checkpoints as one safetensors file: weights, optimizer moments and RNG
states as tensors, everything else as JSON in the file's metadata. Written atomically."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from .errors import LatentVideoError


def _flatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    sd = opt.state_dict()
    for idx, state in sd["state"].items():
        for name, value in state.items():
            key = f"{prefix}.state.{idx}.{name}"
            tensors[key] = value.detach().cpu().contiguous() if torch.is_tensor(value) else torch.tensor(value)
    meta[f"{prefix}.param_groups"] = sd["param_groups"]


def _unflatten_optimizer(prefix: str, opt: torch.optim.Optimizer, tensors: dict, meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + ".state."):
            idx, name = key[len(prefix) + 7 :].split(".", 1)
            state.setdefault(int(idx), {})[name] = value
    opt.load_state_dict({"state": state, "param_groups": meta[f"{prefix}.param_groups"]})


def save_checkpoint(path: str | Path, modules: dict, optimizers: dict, rng: dict, meta: dict) -> None:
    """modules/optimizers: name -> object; rng: name -> uint8 state tensor; meta: JSON-able."""
    from safetensors.torch import save_file

    from .fileio import atomic_path

    tensors, meta = {}, dict(meta)
    for name, module in modules.items():
        for k, v in module.state_dict().items():
            tensors[f"{name}.{k}"] = v.detach().cpu().contiguous()
    for name, opt in optimizers.items():
        _flatten_optimizer(f"opt_{name}", opt, tensors, meta)
    for name, state in rng.items():
        tensors[f"rng.{name}"] = state.cpu().contiguous()
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"latentvideo": json.dumps(meta)})
        delay = float(os.environ.get("LATENTVIDEO_CHECKPOINT_DELAY", "0"))  # for crash tests
        if delay:
            time.sleep(delay)


def load_checkpoint(path: str | Path, modules: dict, optimizers: dict) -> tuple[dict, dict]:
    """Load weights and optimizer state in place; return (rng states, meta)."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise LatentVideoError(f"no checkpoint in {path.parent}", hint="was the run started with this folder?")
    try:
        tensors = load_file(str(path))
        with safe_open(str(path), "pt") as f:
            meta = json.loads(f.metadata()["latentvideo"])
    except (SafetensorError, OSError, KeyError, ValueError, TypeError) as e:
        raise LatentVideoError(f"corrupt checkpoint {path}: {e}") from None
    for name, module in modules.items():
        p = name + "."
        module.load_state_dict({k[len(p) :]: v for k, v in tensors.items() if k.startswith(p)})
    for name, opt in optimizers.items():
        _unflatten_optimizer(f"opt_{name}", opt, tensors, meta)
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return rng, meta


def truncate_stats(path: Path, step: int) -> None:
    """On resume, keep the stats.jsonl rows up to the checkpoint's step (dropping rows
    written after it, and a line cut short by a crash)."""
    from .fileio import write_text

    if not path.exists():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                keep.append(line)
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    write_text(path, "".join(ln + "\n" for ln in keep))
