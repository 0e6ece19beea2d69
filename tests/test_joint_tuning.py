"""joint_tuning: the last pivotal tuning moves the keyframes' positions and each slot's colour with the weights, and
gives each slot its own sprite detail (tune.joint_tune_clips, objects.ObjectGenerator.sprite_detail). Tiny seeded
generators, 32 px."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

import latentvideo.pipeline as pipeline_module
from latentvideo.errors import LatentVideoError
from latentvideo.objects import shares_sprites
from latentvideo.pipeline import Pipeline
from latentvideo.tints import tint_index
from latentvideo.tune import add_sprite_detail, joint_tune_clips, pivotal_tune_clips
from test_refit_looks import clip, tiny


def _codes(G, z):  # [K, A]: each slot's appearance code in keyframe 0
    return torch.stack([z[0, slice(*r)] for r in G.latent_layout.appearance])


@pytest.mark.parametrize("colour", [False, True])
def test_a_fresh_sprite_detail_draws_as_before_and_is_never_saved(colour):
    G = tiny(0, colour)
    assert G.sprite_detail is None and "sprite_detail" not in G.state_dict()
    z = clip(G, 1)
    twin = copy.deepcopy(G)
    add_sprite_detail(twin)
    assert twin.sprite_detail.shape == (2, G.sprite_out.out_channels, 12, 12)
    assert "sprite_detail" in dict(twin.named_parameters())
    with torch.no_grad():
        assert torch.equal(twin(z), G(z))
    assert G.sprite_detail is None  # the copy's own


def test_each_slot_gets_its_own_detail():
    G = tiny(0, colour=True)
    add_sprite_detail(G)
    codes = _codes(G, clip(G, 1))  # [2, A]
    with torch.no_grad():
        before = G.sprites(codes)
        G.sprite_detail[1, -1] = 6.0  # slot 1's alpha logits
        after = G.sprites(codes)
        assert torch.equal(after[0], before[0])  # slot 0 unchanged
        assert (after[1, -1] > before[1, -1] + 0.05).float().mean() > 0.5  # slot 1 more opaque
        # rows cycle over the slots, or all are one slot's
        torch.testing.assert_close(G.sprites(codes[1:].repeat(3, 1), slot=1), after[1:].repeat(3, 1, 1, 1))
        with pytest.raises(LatentVideoError, match="whole slot sets"):
            G.sprites(codes.repeat(2, 1)[:3])


def _offset_start(G, truth: torch.Tensor, px: float, tint: float) -> torch.Tensor:
    """truth with every position `px` off and every slot's colour `tint` off (a tinted G)."""
    start = truth.clone()
    lay = G.latent_layout
    start[:, lay.index] += px / lay.fold_range
    tints = tint_index(G, lay)
    if tints is not None:
        start[:, torch.tensor(tints).flatten()] += tint
    return start


@pytest.mark.parametrize("colour", [False, True])
def test_joint_tuning_finds_positions_and_colours_that_held_tuning_cannot(colour):
    """G's own clips, started 1.5 px off (and, tinted, in the wrong colour): tuning with the latents held can only
    bend the sprites towards the keyframes; joint tuning moves the latents back, to a lower keyframe error and
    positions nearer the truth. The clip keeps one look (and colour) per slot; the inputs are not modified."""
    G = tiny(0, colour)
    lay = G.latent_layout
    truth = [clip(G, 1), clip(G, 3)]
    with torch.no_grad():
        keys = [G(z) for z in truth]
    starts = [_offset_start(G, z, 1.5, 0.4) for z in truth]
    kept = [s.clone() for s in starts]
    held = pivotal_tune_clips([G, G], starts, keys, steps=60, lr=1e-3)
    joint, moved = joint_tune_clips([G, G], starts, keys, steps=60, lr=1e-3)
    for s, k in zip(starts, kept):
        assert torch.equal(s, k)
    for i in range(2):
        with torch.no_grad():
            err_held = (held[i](starts[i]) - keys[i]).pow(2).mean()
            err_joint = (joint[i](moved[i]) - keys[i]).pow(2).mean()
        assert err_joint < 0.7 * err_held
        off_before = (lay.pixels(starts[i]) - lay.pixels(truth[i])).abs().mean()
        off_after = (lay.pixels(moved[i]) - lay.pixels(truth[i])).abs().mean()
        assert off_after < 0.6 * off_before
        assert shares_sprites(G, moved[i])  # one look per slot, every keyframe alike
        assert joint[i].sprite_detail is not None and held[i].sprite_detail is None
    if colour:  # the colours moved back towards the truth
        t = torch.tensor(tint_index(G, lay)).flatten()
        assert (moved[0][0, t] - truth[0][0, t]).abs().mean() < (starts[0][0, t] - truth[0][0, t]).abs().mean()


def test_joint_tuning_alone_and_batched_agree():
    """A clip tuned alone (its own weights) or with a partner (stacked weights under vmap) moves alike."""
    G = tiny(0, colour=True)
    truth = [clip(G, 1), clip(G, 3)]
    with torch.no_grad():
        keys = [G(z) for z in truth]
    starts = [_offset_start(G, z, 1.0, 0.3) for z in truth]
    _, alone = joint_tune_clips([G], starts[:1], keys[:1], steps=10, lr=1e-3)
    _, both = joint_tune_clips([G, G], starts, keys, steps=10, lr=1e-3)
    assert (alone[0] - starts[0]).abs().max() > 0.05  # moved (Adam's first steps go about lr each way) ...
    # ... and alike to float rounding, which Adam's near-sign steps on near-zero gradients grow to a few 1e-4
    torch.testing.assert_close(alone[0], both[0], atol=3e-3, rtol=0)


def test_generators_without_positions_are_tuned_with_their_latents_held():
    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 3 * 8 * 8)

        def forward(self, z):
            return torch.sigmoid(self.lin(z)).view(-1, 3, 8, 8)

    torch.manual_seed(0)
    G, z = Plain(), torch.randn(3, 4)
    keys = torch.rand(3, 3, 8, 8)
    tuned, moved = joint_tune_clips([G], [z], [keys], steps=3)
    assert torch.equal(moved[0], z)
    assert not torch.equal(tuned[0].lin.weight, G.lin.weight)


def test_the_pipeline_moves_the_latents_in_its_last_tuning_only(monkeypatch):
    G = tiny(0, colour=True)
    z = clip(G, 2)
    with torch.no_grad():
        keys = G(z)
    calls = []
    for name in ("pivotal_tune_clips", "joint_tune_clips"):
        real = getattr(pipeline_module, name)
        monkeypatch.setattr(pipeline_module, name, lambda *a, _n=name, _r=real, **k: calls.append(_n) or _r(*a, **k))
    pipe = Pipeline.from_modules(G)
    opts = dict(method="lbfgs", lbfgs_steps=2, clip_steps=2, pivot_steps=3, early_pivot_steps=2, refit=1)
    times = [np.array([0.0, 4.0, 9.0])]
    for joint, want in ((True, ["pivotal_tune_clips", "joint_tune_clips"]), (False, ["pivotal_tune_clips"] * 2)):
        calls.clear()
        anim = pipe.animate([z], times, 10, pipe.options(**opts, joint_tuning=joint), keyframes=[keys])
        assert calls == want and anim.frames.shape == (10, 3, 32, 32)
    assert pipe.default_options().joint_tuning  # the colour preset (measured: presets.py)
    assert Pipeline.from_modules(tiny(0)).default_options().joint_tuning  # and the gray one (measured on digits)
