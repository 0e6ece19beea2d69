"""Networks and the model-directory format in latentvideo.models."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from latentvideo.errors import LatentVideoError
from latentvideo.models import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    Critic,
    DigitClassifier,
    Generator,
    PixelNorm,
    Projector,
    build_model,
    load_model,
    model_config,
    resolve_device,
    save_model,
)


def _gen(seed=0, **kw):
    torch.manual_seed(seed)
    return Generator(**{"z_dim": 8, "resolution": 32, "channels": 1, "width": 4, **kw})


@pytest.mark.parametrize("resolution", [32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shapes(resolution, channels):
    torch.manual_seed(0)
    x = torch.rand(2, channels, resolution, resolution)
    G = Generator(z_dim=8, resolution=resolution, channels=channels, width=4)
    assert G(torch.randn(2, 8)).shape == (2, channels, resolution, resolution)
    assert Critic(resolution, channels, width=4)(x).shape == (2,)
    assert Projector(z_dim=8, resolution=resolution, channels=channels, width=4, hidden=16)(x).shape == (2, 8)
    clf = DigitClassifier(resolution, channels, width=4, hidden=16)
    assert clf(x).shape == (2, 10)
    assert clf.features(x).shape == (2, 16)


def test_generator_128():
    G = Generator(z_dim=8, resolution=128, channels=1, width=2)
    assert G(torch.randn(1, 8)).shape == (1, 1, 128, 128)


@pytest.mark.parametrize("resolution", [0, -64, 16, 48, 256])
def test_bad_resolution_raises(resolution):
    with pytest.raises(LatentVideoError, match="resolution"):
        Generator(z_dim=8, resolution=resolution, width=4)
    with pytest.raises(LatentVideoError, match="resolution"):
        Critic(resolution=resolution, width=4)


def test_generator_output_in_unit_range():
    G = _gen()
    for scale in (1.0, 100.0):
        x = G(torch.randn(16, 8) * scale)
        assert x.min() >= 0 and x.max() <= 1
        assert x.std() > 0  # not a constant image


def test_pixelnorm_normalises_each_pixel():
    x = torch.randn(3, 5, 4, 4) * torch.arange(1, 4).view(3, 1, 1, 1) * 7
    y = PixelNorm()(x)
    torch.testing.assert_close(y.pow(2).mean(1), torch.ones(3, 4, 4))


@pytest.mark.parametrize("train_mode", [False, True])
def test_frame_same_alone_or_in_batch(train_mode):
    G = _gen(resolution=64).train(train_mode)
    z = torch.randn(6, 8)
    with torch.no_grad():
        batch = G(z)
        for i in range(6):
            torch.testing.assert_close(G(z[i : i + 1])[0], batch[i], atol=1e-5, rtol=0)
        # also the same whatever the other frames in the batch are
        torch.testing.assert_close(G(torch.cat([z[:1], torch.randn(5, 8) * 3]))[0], batch[0], atol=1e-5, rtol=0)


def test_models_have_no_batchnorm():
    for m in (_gen(), Critic(32, 1, 4), Projector(8, 32, 1, 4, 16), DigitClassifier(32, 1, 4, 16)):
        assert not [x for x in m.modules() if isinstance(x, torch.nn.modules.batchnorm._BatchNorm)]


# ---------------------------------------------------------------- save / load


@pytest.mark.parametrize(
    "make, cfg",
    [
        (lambda: _gen(seed=3), dict(z_dim=8, resolution=32, channels=1, width=4)),
        (lambda: Critic(64, 3, 4), dict(resolution=64, channels=3, width=4)),
        (lambda: Projector(8, 32, 1, 4, 16), dict(z_dim=8, resolution=32, channels=1, width=4, hidden=16)),
        (lambda: DigitClassifier(32, 1, 4, 16), dict(resolution=32, channels=1, width=4, hidden=16)),
    ],
)
def test_save_load_round_trip_bit_exact(tmp_path, make, cfg):
    torch.manual_seed(1)
    model = make()
    path = save_model(model, tmp_path / "m", model_config(model, **cfg))
    assert path == tmp_path / "m"
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_NAME, WEIGHTS_NAME]  # no temp files
    saved = json.loads((path / CONFIG_NAME).read_text())
    assert saved["arch"] == model_config(model)["arch"] and "latentvideo_version" in saved
    loaded = load_model(path)
    assert type(loaded) is type(model)
    a, b = model.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert not loaded.training and not any(p.requires_grad for p in loaded.parameters())
    x = torch.randn(2, 8) if isinstance(model, Generator) else torch.rand(2, cfg["channels"], *[cfg["resolution"]] * 2)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), loaded(x))


def test_save_model_overwrites(tmp_path):
    cfg = model_config(_gen(), z_dim=8, resolution=32, channels=1, width=4)
    save_model(_gen(seed=1), tmp_path / "m", cfg)
    second = _gen(seed=2)
    save_model(second, tmp_path / "m", cfg)
    assert torch.equal(load_model(tmp_path / "m").fc.weight, second.fc.weight)


def test_load_model_expect(tmp_path):
    save_model(_gen(), tmp_path / "g", model_config(_gen(), z_dim=8, resolution=32, channels=1, width=4))
    assert isinstance(load_model(tmp_path / "g", expect="dcgan-generator"), Generator)
    with pytest.raises(LatentVideoError, match="expected"):
        load_model(tmp_path / "g", expect="dcgan-critic")


def test_model_config_refuses_foreign_module():
    with pytest.raises(LatentVideoError):
        model_config(torch.nn.Linear(2, 2))


def test_build_model_bad_configs():
    with pytest.raises(LatentVideoError, match="unknown architecture"):
        build_model({"arch": "resnet"})
    with pytest.raises(LatentVideoError, match="unknown architecture"):
        build_model({"z_dim": 8})
    with pytest.raises(LatentVideoError, match="bad config"):
        build_model({"arch": "dcgan-critic", "depth": 3})
    assert isinstance(build_model({"arch": "dcgan-critic", "width": 4, "latentvideo_version": "0"}), Critic)


@pytest.fixture
def saved_generator(tmp_path):
    G = _gen()
    return save_model(G, tmp_path / "gen", model_config(G, z_dim=8, resolution=32, channels=1, width=4))


def _write(path, data: bytes):
    path.write_bytes(data)
    return path.parent


def _drop_weight(path, key):
    from safetensors.torch import load_file, save_file

    state = load_file(str(path / WEIGHTS_NAME))
    del state[key]
    save_file(state, str(path / WEIGHTS_NAME))
    return path


def _edit_config(path, **changes):
    cfg = json.loads((path / CONFIG_NAME).read_text())
    cfg.update(changes)
    (path / CONFIG_NAME).write_text(json.dumps(cfg))
    return path


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda p: p / "nothing_here", "not found"),
        (lambda p: (p / CONFIG_NAME).unlink() or p, CONFIG_NAME),
        (lambda p: (p / WEIGHTS_NAME).unlink() or p, WEIGHTS_NAME),
        (lambda p: _edit_config(p, arch="stylegan9"), "unknown architecture"),
        (lambda p: _edit_config(p, width=8), "do not match"),
        (lambda p: _edit_config(p, z_dim=16), "do not match"),
        (lambda p: _edit_config(p, channels=3), "do not match"),
        (lambda p: _edit_config(p, resolution=0), "resolution"),
        (lambda p: _edit_config(p, resolution="64"), None),
        (lambda p: _edit_config(p, color=True), "bad config"),
        (lambda p: _write(p / CONFIG_NAME, b"{not json"), "JSON"),
        (lambda p: _write(p / CONFIG_NAME, b"[1, 2]"), "JSON object"),
        (lambda p: _write(p / CONFIG_NAME, b"\xff\xfe\x00"), "JSON"),
        (lambda p: _write(p / WEIGHTS_NAME, (p / WEIGHTS_NAME).read_bytes()[:-100]), "corrupt"),
        (lambda p: _write(p / WEIGHTS_NAME, (p / WEIGHTS_NAME).read_bytes()[:50]), "corrupt"),
        (lambda p: _write(p / WEIGHTS_NAME, b""), "corrupt"),
        (lambda p: _drop_weight(p, "out.bias"), "do not match"),
    ],
)
def test_load_model_errors(saved_generator, corrupt, message):
    path = corrupt(saved_generator)
    with pytest.raises(LatentVideoError, match=message):
        load_model(path)


def test_load_model_refuses_pickle_file(tmp_path):
    G = _gen()
    torch.save(G.state_dict(), tmp_path / "generator.pt")
    with pytest.raises(LatentVideoError, match="got a file"):
        load_model(tmp_path / "generator.pt")
    (tmp_path / "generator.pkl").write_bytes(pickle.dumps(G))
    with pytest.raises(LatentVideoError, match="got a file"):
        load_model(tmp_path / "generator.pkl")


def test_load_model_weights_of_another_architecture(tmp_path):
    C = Critic(32, 1, 4)
    save_model(C, tmp_path / "m", model_config(C, resolution=32, channels=1, width=4))
    _edit_config(tmp_path / "m", arch="conv-projector", z_dim=8, hidden=16)
    with pytest.raises(LatentVideoError, match="do not match"):
        load_model(tmp_path / "m")


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(LatentVideoError):
        resolve_device("tpu:banana")
    if not torch.cuda.is_available():
        with pytest.raises(LatentVideoError, match="CUDA"):
            resolve_device("cuda")
