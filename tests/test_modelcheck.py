"""Model folders from strangers: `check_model_folder` refuses a bad config.json or model.safetensors
before any tensor is allocated, and `load_model` refuses NaN/inf weights. Every case is one line."""

from __future__ import annotations

import json
import struct
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from conftest import tiny_model_dir, write_png
from latentvideo import modelcheck
from latentvideo.cli import main
from latentvideo.errors import LatentVideoError
from latentvideo.modelcheck import check_model_folder
from latentvideo.models import CONFIG_NAME, WEIGHTS_NAME, Critic, Generator, load_model, model_config, save_model
from latentvideo.objects import ObjectGenerator


@pytest.fixture
def models(tmp_path):
    """A tiny model folder (seed 0): generator/ (z 8, 32x32, width 4) and critic/."""
    return tiny_model_dir(tmp_path / "tiny")


# ---------------------------------------------------------------- ways to break a folder


def _config(**changes):
    def edit(m):
        (m / CONFIG_NAME).write_text(json.dumps({**json.loads((m / CONFIG_NAME).read_text()), **changes}))

    return edit


def _config_bytes(raw: bytes):
    return lambda m: (m / CONFIG_NAME).write_bytes(raw)


def _state(edit):
    """Rewrite the weights with `edit(state)` applied (a well-formed safetensors file)."""

    def apply(m):
        state = load_file(str(m / WEIGHTS_NAME))
        edit(state)
        save_file(state, str(m / WEIGHTS_NAME))

    return apply


def _split(m) -> tuple[dict, bytes]:
    raw = (m / WEIGHTS_NAME).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8 : 8 + n]), raw[8 + n :]


def _header(edit):
    """Rewrite the safetensors header: `edit(header dict)` returns the new header (dict or raw bytes)."""

    def apply(m):
        header, data = _split(m)
        new = edit(header)
        raw = new if isinstance(new, bytes) else json.dumps(new).encode()
        (m / WEIGHTS_NAME).write_bytes(struct.pack("<Q", len(raw)) + raw + data)

    return apply


def _tensor(name, **changes):
    return _header(lambda h: {**h, name: {**h[name], **changes}})


def _header_length(n: int):
    def apply(m):
        raw = (m / WEIGHTS_NAME).read_bytes()
        (m / WEIGHTS_NAME).write_bytes(struct.pack("<Q", n) + raw[8:])

    return apply


def _cut(size: int):
    return lambda m: (m / WEIGHTS_NAME).write_bytes((m / WEIGHTS_NAME).read_bytes()[:size])


def _set(name, value):
    return _state(lambda s: s[name].view(-1).__setitem__(0, value))


BAD = [
    # ---- config.json
    ("config-not-json", "generator", _config_bytes(b"{width: 4"), ["not valid JSON"]),
    ("config-json-list", "generator", _config_bytes(b"[1, 2]"), ["JSON object"]),
    ("config-too-big", "critic", _config_bytes(b" " * (modelcheck.MAX_CONFIG_BYTES + 1)), ["larger than"]),
    ("unknown-arch", "generator", _config(arch="stylegan9"), ["unknown architecture", "stylegan9", "dcgan-critic"]),
    ("width-a-string", "critic", _config(width="32"), ["width", "integer", "'32'"]),
    ("width-a-float", "critic", _config(width=4.0), ["width", "integer"]),
    ("mapping-layers-bool", "generator", _config(mapping_layers=True), ["mapping_layers"]),
    ("channels-zero", "critic", _config(channels=0), ["channels", "[1, 16]"]),
    # ---- config against the weights
    ("shapes-not-matching", "generator", _config(width=8), ["do not match", "fc.weight", "shape"]),
    ("other-architecture", "critic", _config(arch="conv-projector", z_dim=8, hidden=16), ["do not match"]),
    ("missing-tensor", "generator", _state(lambda s: s.pop("out.bias")), ["do not match", "'out.bias' is missing"]),
    (
        "extra-tensor",
        "critic",
        _state(lambda s: s.__setitem__("head.extra", torch.zeros(3))),
        ["do not match", "unexpected", "head.extra"],
    ),
    # ---- the safetensors header
    ("cut-to-20-bytes", "generator", _cut(20), ["corrupt or truncated", "header length", "past the end"]),
    ("cut-to-5-bytes", "generator", _cut(5), ["corrupt", "too short"]),
    ("empty-weights", "critic", _cut(0), ["corrupt", "too short"]),
    ("header-length-past-file", "generator", _header_length(1_000_000), ["header length 1,000,000", "past the end"]),
    ("header-length-huge", "generator", _header_length(2**63), ["corrupt", "over the limit"]),
    ("header-not-json", "critic", _header(lambda h: b"{not json" + b" " * 40), ["corrupt", "not JSON"]),
    ("header-not-utf8", "critic", _header(lambda h: b"\xff\xfe\x00"), ["not JSON"]),
    ("header-a-list", "critic", _header(lambda h: b"[1, 2, 3]"), ["not a JSON object"]),
    ("dtype-int", "critic", _tensor("head.bias", dtype="I32"), ["'head.bias'", "dtype 'I32'"]),
    ("shape-negative", "critic", _tensor("head.bias", shape=[-1]), ["'head.bias'", "shape [-1]"]),
    ("shape-not-list", "critic", _tensor("head.bias", shape="1"), ["'head.bias'", "shape"]),
    ("offsets-wrong-size", "critic", _tensor("head.bias", shape=[2]), ["'head.bias'", "data_offsets"]),
    ("offsets-not-pair", "critic", _tensor("head.bias", data_offsets=[0]), ["data_offsets"]),
    ("tensor-not-object", "critic", _header(lambda h: {**h, "head.bias": 7}), ["'head.bias'"]),
    ("weights-truncated", "generator", _cut(-100), ["corrupt or truncated", "past the"]),
    # ---- the weights themselves
    ("nan-weights", "generator", _set("fc.weight", float("nan")), ["not finite", "'fc.weight'", "NaN"]),
    ("inf-weights", "critic", _set("head.bias", float("-inf")), ["not finite", "'head.bias'", "infinite"]),
]


@pytest.mark.parametrize("part, corrupt, words", [pytest.param(*c[1:], id=c[0]) for c in BAD])
def test_bad_folder_is_one_clean_error(models, part, corrupt, words):
    folder = models / part
    corrupt(folder)
    with pytest.raises(LatentVideoError) as info:
        load_model(folder)
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word.lower() in message.lower(), message


def test_table_is_big_enough():
    assert len(BAD) >= 10 and len({c[0] for c in BAD}) == len(BAD)


@pytest.mark.parametrize(
    "claim, words",
    [
        pytest.param(dict(width=4096, z_dim=100000), ["z_dim", "100000"], id="out-of-range"),
        # every value in range, but ~3 billion parameters: refused after the (free) meta build
        pytest.param(dict(width=1024, z_dim=4096, resolution=128), ["parameters", "over the limit"], id="over-cap"),
    ],
)
def test_huge_claimed_network_is_refused_without_allocating(models, claim, words):
    """Refused in a fresh process whose peak RSS (VmHWM, torch included) stays under 500 MB. Not getrusage:
    its ru_maxrss survives fork and exec, so a child would report this (larger) test process's peak."""
    _config(**claim)(models / "generator")
    child = (
        "import sys\n"
        "from latentvideo.errors import LatentVideoError\n"
        "from latentvideo.models import load_model\n"
        "try:\n    load_model(sys.argv[1])\nexcept LatentVideoError as e:\n    print(e)\n"
        "print(next(int(ln.split()[1]) for ln in open('/proc/self/status') if ln.startswith('VmHWM')) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", child, str(models / "generator")], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    message, peak_mb = out.stdout.strip().splitlines()
    assert all(w in message for w in words), message
    assert int(peak_mb) < 500, f"peak RSS {peak_mb} MB"


def test_limits_are_module_level(models, monkeypatch):
    """The byte caps are read at call time, so a deployment can tighten them."""
    weights = models / "critic" / WEIGHTS_NAME
    monkeypatch.setattr(modelcheck, "MAX_WEIGHTS_BYTES", weights.stat().st_size - 1)
    with pytest.raises(LatentVideoError, match="over the limit"):
        check_model_folder(models / "critic")
    monkeypatch.undo()
    monkeypatch.setattr(modelcheck, "MAX_HEADER_BYTES", 16)
    with pytest.raises(LatentVideoError, match="header length .* over the limit"):
        check_model_folder(models / "critic")
    monkeypatch.undo()
    monkeypatch.setattr(modelcheck, "MAX_PARAMETERS", 10)
    with pytest.raises(LatentVideoError, match="parameters"):
        check_model_folder(models / "critic")


# ---------------------------------------------------------------- good folders still load


GOOD = [
    pytest.param(lambda: Generator(z_dim=8, resolution=32, width=4), dict(z_dim=8, resolution=32, width=4), id="gen"),
    pytest.param(
        lambda: Generator(z_dim=8, resolution=32, width=4, mapping_layers=2),
        dict(z_dim=8, resolution=32, width=4, mapping_layers=2),
        id="gen-mapping",
    ),
    pytest.param(
        lambda: Critic(resolution=32, channels=1, width=4), dict(resolution=32, channels=1, width=4), id="critic"
    ),
    pytest.param(
        lambda: ObjectGenerator(objects=2, appearance=4, resolution=32, channels=3, sprite=8, width=4, background=2),
        dict(objects=2, appearance=4, resolution=32, channels=3, sprite=8, width=4, background=2),
        id="objects-rgb",
    ),
]


@pytest.mark.parametrize("make, kwargs", GOOD)
def test_good_folder_loads_and_renders_the_same(tmp_path, make, kwargs):
    torch.manual_seed(0)
    original = make().eval()
    config = model_config(original, **kwargs)
    folder = save_model(original, tmp_path / "m", config)
    assert {k: v for k, v in check_model_folder(folder).items() if k != "latentvideo_version"} == config
    loaded = load_model(folder)
    x = torch.randn(3, original.z_dim) if hasattr(original, "z_dim") else torch.rand(3, 1, 32, 32)
    with torch.no_grad():
        assert torch.equal(original(x), loaded(x))


# ---------------------------------------------------------------- through the CLI


@pytest.mark.parametrize(
    "corrupt, word",
    [
        pytest.param(_config(width=4096, z_dim=100000), "z_dim", id="huge-config"),
        pytest.param(_set("fc.weight", float("nan")), "NaN", id="nan-weights"),
        pytest.param(_tensor("fc.bias", shape=[3]), "fc.bias", id="bad-header"),
    ],
)
def test_cli_bad_model_folder_is_exit_2_and_one_line(tmp_path, models, capsys, corrupt, word):
    corrupt(models / "generator")
    rng = np.random.default_rng(0)
    keys = [str(write_png(tmp_path / f"k{i}.png", rng.integers(0, 256, (32, 32), dtype=np.uint8))) for i in range(3)]
    out = tmp_path / "clip.gif"
    fast = ["--device", "cpu", "--lbfgs-steps", "2", "--critic-steps", "1"]
    code = main(["generate", *keys, "--out", str(out), "--model", str(models), *fast])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err, err
    assert word in err
    assert not out.exists()


def test_checking_the_shipped_models_computes_nothing_on_meta_tensors():
    """check_model_folder builds each model on the meta device for its shapes. Arithmetic on meta tensors imports
    torch._dynamo (1.3 s of every model load, the web page's included), so loading the shipped models imports it
    not at all."""
    code = (
        "import sys\n"
        "from latentvideo.pipeline import load_pipeline\n"
        "for name in ('moving-mnist-objects', 'moving-shapes', 'moving-mnist-64'):\n"
        "    load_pipeline(name)\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
