"""Smoothness: perceptual path length, the path-length penalty in training, the mapping network
(w space) and its compatibility with models saved before it, and keyframe-aware time warping."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from latentvideo.errors import LatentVideoError
from latentvideo.evaluation.ppl import path_length_distances, perceptual_path_length, prior_path, slerp
from latentvideo.experimental.time_warp import arc_length_times
from latentvideo.models import Critic, Generator, Synthesis, has_mapping, load_model, model_config, save_model
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import Pipeline
from latentvideo.training.gan import train_gan
from latentvideo.training.regularisers import path_length_penalty

CPU = dict(device="cpu", progress=False)
Z, SIDE = 8, 8


class SinGenerator(nn.Module):
    """z [N, 8] -> sigmoid(W sin(freq * z)) as [N, 1, 8, 8]; freq 0 gives the smooth sigmoid(W z) instead."""

    def __init__(self, freq: float = 0.0):
        super().__init__()
        torch.manual_seed(0)
        self.fc, self.freq, self.z_dim = nn.Linear(Z, SIDE * SIDE), freq, Z

    def forward(self, z):
        h = torch.sin(self.freq * z) if self.freq else z
        return torch.sigmoid(self.fc(h)).view(-1, 1, SIDE, SIDE)


def _features(x):  # a fixed random projection of the pixels as the "perceptual" feature space
    w = torch.randn(x[0].numel(), 16, generator=torch.Generator().manual_seed(7))
    return x.flatten(1) @ w


# ---------------------------------------------------------------- PPL


def test_ppl_is_finite_positive_and_larger_for_a_rougher_generator():
    smooth = perceptual_path_length(SinGenerator(0.0), _features, num_samples=128)
    rough = perceptual_path_length(SinGenerator(40.0), _features, num_samples=128)
    assert math.isfinite(smooth) and smooth > 0
    assert rough > 100 * smooth  # measured: 50 vs 43,000
    # seeded: the same samples again, and independent of the batch size
    again = perceptual_path_length(SinGenerator(0.0), _features, num_samples=128, batch_size=50)
    assert again == pytest.approx(smooth, rel=1e-5)


def test_ppl_filters_the_outer_percentiles():
    G = SinGenerator(40.0)
    d = path_length_distances(G, _features, num_samples=200, eps=1e-3)
    assert d.shape == (200,) and (d >= 0).all()
    ppl = perceptual_path_length(G, _features, num_samples=200, eps=1e-3)
    lo, hi = np.percentile(d, 1, method="lower"), np.percentile(d, 99, method="higher")
    assert ppl == pytest.approx(d[(d >= lo) & (d <= hi)].mean())
    assert d.min() <= ppl <= d.max()


def test_ppl_in_w_needs_a_mapping_network():
    torch.manual_seed(0)
    G = Generator(z_dim=Z, resolution=32, width=4, mapping_layers=2).eval()
    ppl_w = perceptual_path_length(G, _features, num_samples=16, space="w", eps=1e-3)
    ppl_z = perceptual_path_length(G, _features, num_samples=16, space="z", eps=1e-3)
    assert math.isfinite(ppl_w) and ppl_w > 0 and math.isfinite(ppl_z)
    with pytest.raises(LatentVideoError, match="mapping network"):
        perceptual_path_length(SinGenerator(), _features, num_samples=4, space="w")
    with pytest.raises(LatentVideoError, match="unknown latent space"):
        perceptual_path_length(SinGenerator(), _features, num_samples=4, space="x")
    with pytest.raises(LatentVideoError, match="eps"):
        perceptual_path_length(SinGenerator(), _features, num_samples=4, eps=0)


def test_prior_path_lerps_positions_and_slerps_the_rest():
    g = torch.Generator().manual_seed(0)
    a, b, pos = torch.randn(3, 6, generator=g), torch.randn(3, 6, generator=g), torch.tensor([1, 4])
    t = torch.tensor([0.0, 0.3, 1.0])
    p = prior_path(a, b, t, pos)
    torch.testing.assert_close(p[:, pos], torch.lerp(a[:, pos], b[:, pos], t[:, None]))
    rest = torch.tensor([0, 2, 3, 5])
    torch.testing.assert_close(p[:, rest], slerp(a[:, rest], b[:, rest], t))
    torch.testing.assert_close(prior_path(a, b, t, None), slerp(a, b, t))


class Recording(ObjectGenerator):
    """A tiny objects generator that keeps every latent batch it renders."""

    def forward(self, z, *args, **kwargs):
        self.seen.append(z.clone())
        return super().forward(z, *args, **kwargs)


@pytest.mark.parametrize("moving", ["all", "positions", "appearance"])
def test_object_paths_come_from_the_prior_and_move_only_what_is_asked(moving):
    torch.manual_seed(0)
    G = Recording(objects=2, appearance=4, resolution=32, sprite=12, width=4)
    G.seen = []
    d = path_length_distances(G, _features, num_samples=16, eps=1e-3, moving=moving)
    assert d.shape == (16,) and np.isfinite(d).all() and (d >= 0).all()
    z = torch.cat(G.seen)  # [2 * 16, z_dim]: the points at t, then at t + eps
    pos = G.latent_layout.index.flatten()
    rest = torch.tensor([i for i in range(G.z_dim) if i not in set(pos.tolist())])
    assert ((z[:, pos] >= 0) & (z[:, pos] <= 1)).all()  # uniform ends over the fold range, lerped: inside it
    at, after = z[:16], z[16:]
    if moving == "positions":  # every appearance code is held: both points share it
        torch.testing.assert_close(at[:, rest], after[:, rest])
        assert not torch.equal(at[:, pos], after[:, pos])
    if moving == "appearance":
        torch.testing.assert_close(at[:, pos], after[:, pos])
        assert not torch.equal(at[:, rest], after[:, rest])
    if moving != "all":
        assert perceptual_path_length(G, _features, 16, 1e-3, moving=moving) > 0


def test_only_a_position_layout_can_move_its_parts():
    with pytest.raises(LatentVideoError, match="cannot move only 'positions'"):
        path_length_distances(SinGenerator(), _features, num_samples=4, moving="positions")
    G = Recording(objects=1, appearance=2, resolution=32, sprite=12, width=4)
    G.seen = []
    with pytest.raises(LatentVideoError, match="cannot move only 'colour'"):
        path_length_distances(G, _features, num_samples=4, moving="colour")


def test_slerp_ends_and_norms():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, Z, generator=g), torch.randn(5, Z, generator=g)
    torch.testing.assert_close(slerp(a, b, torch.zeros(5)), a, atol=1e-5, rtol=0)
    torch.testing.assert_close(slerp(a, b, torch.ones(5)), b, atol=1e-5, rtol=0)
    mid = slerp(a, b, torch.full((5,), 0.5))
    torch.testing.assert_close(mid.norm(dim=1), (a.norm(dim=1) + b.norm(dim=1)) / 2)


# ---------------------------------------------------------------- path-length penalty


@pytest.mark.parametrize("mapping_layers", [0, 2])
def test_path_length_penalty_gives_finite_gradients(mapping_layers):
    torch.manual_seed(0)
    G = Generator(z_dim=Z, resolution=32, width=4, mapping_layers=mapping_layers)
    z = torch.randn(4, Z, generator=torch.Generator().manual_seed(1))
    pen, mean = path_length_penalty(G, z, 0.0, generator=torch.Generator().manual_seed(2))
    assert pen.ndim == 0 and torch.isfinite(pen) and pen > 0
    assert not mean.requires_grad and 0 < mean.item()
    pen.backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    if mapping_layers:
        assert G.mapper[1].weight.grad.abs().sum() > 0  # the mapping network is regularised too
    # the running mean moves by `decay` towards the batch mean
    pen2, mean2 = path_length_penalty(G, z, mean, decay=0.5, generator=torch.Generator().manual_seed(2))
    batch = (mean - 0) / 0.01  # first call: mean = 0.01 * batch mean
    assert mean2.item() == pytest.approx(mean.item() + 0.5 * (batch.item() - mean.item()), rel=1e-4)


def test_path_length_penalty_of_a_linear_generator():
    """x = A z: |J^T y| is |A^T y|; with the mean at the batch mean the penalty is the lengths' variance."""
    G = nn.Sequential(nn.Linear(Z, 16, bias=False), nn.Unflatten(1, (1, 4, 4)))
    z = torch.randn(6, Z)
    gen = torch.Generator().manual_seed(3)
    pen, mean = path_length_penalty(G, z, 0.0, decay=1.0, generator=gen)
    y = torch.randn((6, 1, 4, 4), generator=torch.Generator().manual_seed(3)) / 4
    lengths = (y.flatten(1) @ G[0].weight).norm(dim=1)
    assert mean.item() == pytest.approx(lengths.mean().item(), rel=1e-5)
    assert pen.item() == pytest.approx(lengths.var(unbiased=False).item(), rel=1e-4)


def test_train_with_path_length_and_mapping_resumes_bit_exactly(tmp_path, tiny_config):
    cfg = tiny_config(steps=4, checkpoint_every=2, pl_weight=2.0, pl_every=1, mapping_layers=2)
    a = train_gan(tmp_path / "a", cfg, **CPU)
    b = train_gan(tmp_path / "b", cfg, stop_after=2, **CPU)
    train_gan(b, resume=True, **CPU)
    for name in ("generator", "critic"):
        sa, sb = load_model(a / name).state_dict(), load_model(b / name).state_dict()
        assert sa.keys() == sb.keys()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    rows = lambda run: [json.loads(x) for x in (run / "stats.jsonl").read_text().splitlines()]  # noqa: E731
    ra, rb = rows(a), rows(b)
    assert [r["step"] for r in rb] == [1, 2, 3, 4]
    assert [(r["loss_g"], r["pl_mean"]) for r in ra] == [(r["loss_g"], r["pl_mean"]) for r in rb]
    assert ra[-1]["pl_mean"] > 0
    G = load_model(a / "generator")
    assert G.mapping_layers == 2 and has_mapping(G)
    assert json.loads((a / "generator" / "config.json").read_text())["mapping_layers"] == 2


def test_a_checkpoint_from_before_the_path_length_option_resumes(tmp_path, tiny_config):
    """Checkpoints written before `pl_mean` was saved (e.g. a run in progress) resume as they did."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    cfg = tiny_config(steps=4, checkpoint_every=2)
    a = train_gan(tmp_path / "a", cfg, **CPU)
    b = train_gan(tmp_path / "b", cfg, stop_after=2, **CPU)
    ck = b / "checkpoint.safetensors"
    with safe_open(str(ck), "pt") as f:
        meta = json.loads(f.metadata()["latentvideo"])
    assert meta.pop("pl_mean") == 0.0
    save_file(load_file(str(ck)), str(ck), metadata={"latentvideo": json.dumps(meta)})
    train_gan(b, resume=True, **CPU)
    sa, sb = load_model(a / "generator").state_dict(), load_model(b / "generator").state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)


def test_path_length_changes_training_only_when_on(tmp_path, tiny_config):
    off = train_gan(tmp_path / "off", tiny_config(steps=2), **CPU)
    on = train_gan(tmp_path / "on", tiny_config(steps=2, pl_weight=1.0, pl_every=2), **CPU)
    assert not torch.equal(load_model(off / "generator").fc.weight, load_model(on / "generator").fc.weight)
    assert "mapping_layers" not in json.loads((off / "generator" / "config.json").read_text())
    with pytest.raises(LatentVideoError, match="pl_every"):
        train_gan(tmp_path / "bad", tiny_config(pl_weight=1.0, pl_every=0), **CPU)


# ---------------------------------------------------------------- mapping network and old models


def test_models_saved_without_the_new_keys_load_and_render_identically(tmp_path):
    torch.manual_seed(0)
    G = Generator(z_dim=Z, resolution=32, channels=1, width=4).eval()
    old_keys = ["fc.weight", "fc.bias", "blocks.0.weight", "blocks.0.bias", "blocks.3.weight", "blocks.3.bias"]
    assert list(G.state_dict())[:6] == old_keys and not any(k.startswith("mapper") for k in G.state_dict())
    # a config as written before the mapping option existed
    save_model(G, tmp_path / "g", model_config(G, z_dim=Z, resolution=32, channels=1, width=4))
    config = json.loads((tmp_path / "g" / "config.json").read_text())
    assert "mapping_layers" not in config
    H = load_model(tmp_path / "g")
    z = torch.randn(5, Z, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(G(z), H(z))
        assert torch.equal(H.mapping(z), z) and torch.equal(H.synthesis(z), H(z))
    assert not has_mapping(H)
    # the body of a generator with a mapping network starts from the same weights
    torch.manual_seed(0)
    M = Generator(z_dim=Z, resolution=32, channels=1, width=4, mapping_layers=2)
    assert torch.equal(M.fc.weight, G.fc.weight) and torch.equal(M.out.weight, G.out.weight)
    with pytest.raises(LatentVideoError, match="mapping_layers"):
        Generator(z_dim=Z, resolution=32, width=4, mapping_layers=-1)
    with pytest.raises(LatentVideoError, match="mapping network"):
        Synthesis(G)


def test_pipeline_in_w_space():
    """Interpolation in w (measured, not adopted) stays one line away: the synthesis network as the generator."""
    torch.manual_seed(0)
    G = Generator(z_dim=Z, resolution=32, channels=1, width=4, mapping_layers=2).eval()
    pipe = Pipeline.from_modules(Synthesis(G), Critic(32, 1, 4))
    with torch.no_grad():
        keys = G(torch.randn(3, Z, generator=torch.Generator().manual_seed(4)))
    clip = pipe(keys, [0, 4, 9], 10, lbfgs_steps=5, critic="off")
    with torch.no_grad():
        torch.testing.assert_close(clip.frames, G.synthesis(clip.latents), atol=1e-6, rtol=0)
        torch.testing.assert_close(clip.reconstructions, G.synthesis(clip.keyframe_latents), atol=1e-6, rtol=0)
    z_clip = Pipeline.from_modules(G)(keys, [0, 4, 9], 10, lbfgs_steps=5, critic="off")
    assert not torch.allclose(z_clip.latents, clip.latents)


# ---------------------------------------------------------------- time warping


def test_arc_length_times_evens_out_the_change_between_keyframes():
    """A 1-pixel 'image' whose value is s^3 changes slowly, then fast: warped frames are evenly spaced in it."""
    curve = lambda s: torch.as_tensor(np.asarray(s), dtype=torch.float32)[:, None]  # noqa: E731
    render = lambda z: (z / 19).pow(3).view(-1, 1, 1, 1)  # noqa: E731
    q = np.arange(20.0)
    warped = arc_length_times(curve, [0.0, 19.0], q, render, density=16)
    assert warped[0] == 0 and warped[-1] == 19 and (np.diff(warped) > 0).all()
    values = (warped / 19) ** 3
    np.testing.assert_allclose(np.diff(values), 1 / 19, atol=2e-3)
    # keyframe times stay; outside the keyframe range nothing moves
    w2 = arc_length_times(curve, [2.0, 9.0, 15.0], q, render)
    assert w2[9] == 9 and (w2[:3] == q[:3]).all() and (w2[15:] == q[15:]).all()
    # a constant path is left alone
    flat = arc_length_times(curve, [0.0, 19.0], q, lambda z: torch.zeros(len(z), 1, 1, 1))
    np.testing.assert_array_equal(flat, q)
