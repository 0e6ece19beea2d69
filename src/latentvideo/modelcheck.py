"""Check a model folder from a stranger before any tensor is allocated.

`check_model_folder(dir)` reads `config.json`, caps its sizes, builds the architecture on the
`meta` device (shapes only, no memory), and compares it with the `model.safetensors` header,
read without loading a single tensor. Only then does `load_model` build the real module and
read the weights. Every refusal is a one-line `LatentVideoError`.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import torch

from .errors import LatentVideoError

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: a config is a handful of numbers
MAX_HEADER_BYTES = 16 << 20  # 16 MiB: the safetensors JSON header (names, shapes, offsets)
MAX_WEIGHTS_BYTES = 512 << 20  # 512 MiB: model.safetensors on disk
MAX_PARAMETERS = 50_000_000  # elements of the state_dict (parameters and buffers), ~200 MB in float32

# Integer config values, as [low, high]: far beyond any model this project trains, far below a
# claim that would need hundreds of GB. Keys absent from a config are not checked.
CONFIG_INT_RANGES: dict[str, tuple[int, int]] = {
    "z_dim": (1, 8192),
    "width": (1, 1024),
    "hidden": (1, 16384),
    "appearance": (1, 4096),
    "objects": (1, 64),
    "background": (0, 4096),
    "resolution": (1, 1024),
    "mapping_layers": (0, 64),
    "channels": (1, 16),
    "sprite": (1, 1024),
}

FLOAT_DTYPES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2}  # safetensors dtype -> bytes per element


def check_model_folder(path: str | Path, expect: str | tuple[str, ...] | None = None) -> dict:
    """Check `path`/config.json and `path`/model.safetensors against each other without loading
    the weights; `expect` (arch name or names) refuses another architecture. Returns the config."""
    from .models import ARCHITECTURES, CONFIG_NAME, WEIGHTS_NAME, build_model

    path = Path(path)
    cfg_file, weights = path / CONFIG_NAME, path / WEIGHTS_NAME
    config = _read_config(cfg_file)
    arch, allowed = config.get("arch"), (expect,) if isinstance(expect, str) else expect
    if not isinstance(arch, str):
        raise LatentVideoError(f"{cfg_file}: arch must be an architecture name, got {arch!r}")
    if allowed is not None and arch not in allowed:
        raise LatentVideoError(f"{path} holds a {arch!r}, expected a {' or '.join(map(repr, allowed))}")
    if arch not in ARCHITECTURES:
        raise LatentVideoError(f"unknown architecture {arch!r}", hint=f"known: {', '.join(ARCHITECTURES)}")
    for key, (low, high) in CONFIG_INT_RANGES.items():
        value = config.get(key, low)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise LatentVideoError(f"{cfg_file}: {key} must be an integer in [{low}, {high}], got {value!r}")

    try:
        with torch.device("meta"):  # shapes only: nothing is allocated, whatever the config claims
            module = build_model(config)
    except (ValueError, RuntimeError, OverflowError, ZeroDivisionError) as e:
        raise LatentVideoError(f"bad config for {arch}: {e}") from None
    # {name: (shape, dtype)}, buffers included; dtypes are not compared (load_state_dict casts F16 weights)
    expected = {name: (tuple(t.shape), t.dtype) for name, t in module.state_dict().items()}
    n = sum(math.prod(shape) for shape, _ in expected.values())
    if n > MAX_PARAMETERS:
        raise LatentVideoError(f"{cfg_file} describes {n:,} parameters, over the limit of {MAX_PARAMETERS:,}")

    header = _read_header(weights)
    for name, (shape, _) in expected.items():
        if name not in header:
            raise LatentVideoError(f"weights in {weights} do not match {cfg_file}: tensor {name!r} is missing")
        if header[name] != shape:
            raise LatentVideoError(
                f"weights in {weights} do not match {cfg_file}: tensor {name!r} has shape "
                f"{list(header[name])} in the weights, {list(shape)} in the config's architecture"
            )
    for name in header:
        if name not in expected:
            raise LatentVideoError(f"weights in {weights} do not match {cfg_file}: unexpected tensor {name!r}")
    return config


def _read_config(cfg_file: Path) -> dict:
    try:
        with open(cfg_file, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise LatentVideoError(f"cannot read {cfg_file}: {e.strerror or e}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise LatentVideoError(f"{cfg_file} is larger than {MAX_CONFIG_BYTES:,} bytes")
    try:
        config = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise LatentVideoError(f"{cfg_file} is not valid JSON: {e}") from None
    if not isinstance(config, dict):
        raise LatentVideoError(f"{cfg_file} must hold a JSON object")
    return config


def _read_header(weights: Path) -> dict[str, tuple[int, ...]]:
    """The safetensors header, checked, as {tensor name: shape}; the tensors themselves are not read.

    Layout: u64 little-endian N, then N bytes of JSON {name: {dtype, shape, data_offsets}}, then the data."""

    def bad(detail: str) -> LatentVideoError:
        return LatentVideoError(f"cannot read {weights} (corrupt or truncated?): {detail}")

    try:
        with open(weights, "rb") as f:
            size = Path(weights).stat().st_size
            if size > MAX_WEIGHTS_BYTES:
                raise LatentVideoError(f"{weights} is {size:,} bytes, over the limit of {MAX_WEIGHTS_BYTES:,}")
            if size < 8:
                raise bad(f"the file has {size} bytes, too short for a header")
            (n,) = struct.unpack("<Q", f.read(8))
            if n > MAX_HEADER_BYTES:
                raise bad(f"header length {n:,} is over the limit of {MAX_HEADER_BYTES:,} bytes")
            if n + 8 > size:
                raise bad(f"header length {n:,} runs past the end of the {size:,}-byte file")
            raw = f.read(n)
    except OSError as e:
        raise LatentVideoError(f"cannot read {weights}: {e.strerror or e}") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise bad("the header is not JSON") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")

    data_size, shapes = size - 8 - n, {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            raise bad(f"tensor {name!r} has no dtype, shape and data_offsets")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in FLOAT_DTYPES:
            raise bad(f"tensor {name!r} has dtype {dtype!r}; weights must be one of {', '.join(FLOAT_DTYPES)}")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise bad(f"tensor {name!r} has shape {shape!r}, not a list of integers >= 0")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
            raise bad(f"tensor {name!r} has data_offsets {offsets!r}, not [begin, end]")
        begin, end = offsets
        if end - begin != math.prod(shape) * FLOAT_DTYPES[dtype]:
            raise bad(f"tensor {name!r}: data_offsets {offsets} do not hold a {dtype} tensor of shape {shape}")
        if end > data_size:
            raise bad(f"tensor {name!r} ends at byte {end:,}, past the {data_size:,} bytes of data")
        shapes[name] = tuple(shape)
    return shapes


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)
