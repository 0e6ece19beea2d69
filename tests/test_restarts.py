"""restarts: the clip fit run from several starts, each taking the slots' looks from another keyframe, the start
that reconstructs the keyframes best kept. Tiny seeded object generators, 32 px."""

from __future__ import annotations

import pytest
import torch

import latentvideo.slots as slots
from latentvideo.errors import LatentVideoError
from latentvideo.objects import ObjectGenerator
from latentvideo.pipeline import Pipeline
from latentvideo.slots import _best_candidates, _plates, _shared_starts, invert_clips


def clip(channels: int = 1, seed: int = 3):
    """(G, truth [3, z_dim], keyframes [3, C, 32, 32], guess [3, z_dim]): two objects of one look per clip, and a
    P-NET-like guess whose looks differ per keyframe (noisy) and whose positions are up to 2 px off."""
    torch.manual_seed(seed)
    extra = {"channels": 3, "background": 2} if channels == 3 else {}
    G = ObjectGenerator(objects=2, appearance=4, resolution=32, sprite=12, width=4, **extra).requires_grad_(False)
    lay = G.latent_layout
    gen = torch.Generator().manual_seed(seed + 1)
    truth = G.sample_latents(1, gen).repeat(3, 1)
    truth[:, list(lay.index.flatten())] = 0.15 + 0.7 * torch.rand(3, 4, generator=gen)
    keys = G(truth)
    guess = truth + 0.4 * torch.randn(truth.shape, generator=gen)
    guess[:, list(lay.index.flatten())] = truth[:, list(lay.index.flatten())]
    guess[:, list(lay.index.flatten())] += (torch.rand(3, 4, generator=gen) - 0.5) * 4 / lay.fold_range
    return G, truth, keys, guess


def test_shared_starts_take_every_shared_code_from_one_keyframe_best_first():
    G, truth, keys, guess = clip()
    lay = G.latent_layout
    pos = list(lay.index.flatten())
    starts = _shared_starts(G, guess, keys, lay, 5)
    assert len(starts) == 3  # no more starts than keyframes
    errs = [(G(s) - keys).pow(2).mean().item() for s in starts]
    assert errs == sorted(errs)
    shared = [i for i in range(G.z_dim) if i not in pos]
    sources = set()
    for s in starts:
        assert torch.equal(s[:, pos], guess[:, pos])  # each keyframe keeps its own positions
        assert all(torch.equal(s[i, shared], s[0, shared]) for i in range(3))  # one look for the clip ...
        sources.add(next(j for j in range(3) if torch.equal(s[0, shared], guess[j, shared])))  # ... a keyframe's
    assert sources == {0, 1, 2}
    assert torch.equal(_shared_starts(G, guess, keys, lay, 1)[0], starts[0])


@pytest.mark.parametrize("channels", [1, 3])
def test_the_kept_start_is_the_one_that_reconstructs_its_clip_best(channels):
    """Per clip the candidate with the least error wins (in colour, over the clip's plate when given one); a clip
    with a single candidate keeps it."""
    G, truth, keys, guess = clip(channels)
    far = truth + 0.3
    cands = [guess, truth, far, guess]
    owner = [0, 0, 0, 1]
    best = _best_candidates(G, cands, owner, [keys, keys], lambda zs, xs: None)
    assert torch.equal(best[0], truth) and torch.equal(best[1], guess)
    if channels == 3:  # over the plate: G's backdrop no longer counts, the slots still do
        plates = lambda zs, xs: _plates(G, zs, xs)  # noqa: E731
        best = _best_candidates(G, [far, truth, guess], [0, 0, 0], [keys], plates)
        assert torch.equal(best[0], truth)


def test_restarts_fit_one_candidate_per_keyframe_and_keep_the_best_fit(monkeypatch):
    """Each clip's candidates are fitted in one batch, and the clip keeps the fit that reconstructs it best. (Not
    compared with a run without restarts: the batched L-BFGS's float sums depend on the batch, so the same start
    can end a few per cent apart in another batch or on another thread count.)"""
    G, truth, keys, guess = clip()
    fits, fitted = [], []
    real = slots._joint_fit

    def spy(G, starts, *a):
        fits.append(len(starts))
        out = real(G, starts, *a)
        fitted.append(out)
        return out

    monkeypatch.setattr(slots, "_joint_fit", spy)
    kw = dict(frame_steps=0, clip_steps=20, associate=False, centre_steps=0)
    invert_clips(G, [keys, keys[:2]], lambda x: guess.repeat(2, 1)[: len(x)], **kw)
    many = invert_clips(G, [keys, keys[:2]], lambda x: guess.repeat(2, 1)[: len(x)], restarts=3, **kw)
    assert fits == [1, 1, 2, 3]  # batched by keyframe count: the 2-keyframe clip, then the 3-keyframe one
    with torch.no_grad():
        for x, cands, kept in ((keys[:2], fitted[2], many.errors[1]), (keys, fitted[3], many.errors[0])):
            errs = [float((G(z) - x).pow(2).mean()) for z in cands]
            assert len(set(errs)) == len(errs)  # the candidates ended apart: the choice matters
            assert float(kept.mean()) == pytest.approx(min(errs), rel=1e-5)
    with pytest.raises(LatentVideoError, match="restarts must be an integer >= 1"):
        invert_clips(G, [keys], lambda x: guess, restarts=0, **kw)


def test_restarts_is_a_pipeline_option_that_reaches_the_first_inversion(monkeypatch):
    G, truth, keys, guess = clip()
    pipe = Pipeline.from_modules(G, layout=G.latent_layout)
    assert pipe.default_options().restarts == 1
    seen = []
    real = slots._shared_starts
    monkeypatch.setattr(slots, "_shared_starts", lambda *a: seen.append(a[-1]) or real(*a))
    pipe(keys, [0, 9, 19], 20, restarts=2, clip_steps=2, method="lbfgs", lbfgs_steps=0, pivot_steps=2, refit=1)
    assert seen == [2, 1]  # the first inversion from 2 starts; the refit pass from the latents it has
    with pytest.raises(LatentVideoError, match="restarts"):
        pipe.options(restarts=0)
