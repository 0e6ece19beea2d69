import copy

import pytest
import torch
from torch import nn

from latentvideo.errors import LatentVideoError
from latentvideo.invert import METHODS, Inversion, _objective, invert, lbfgs
from latentvideo.models import Generator, Projector

torch.set_num_threads(1)
Z = 8


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(z_dim=Z, resolution=32, channels=1, width=4).eval()


@pytest.fixture(scope="module")
def P():
    torch.manual_seed(1)
    return Projector(z_dim=Z, resolution=32, channels=1, width=4, hidden=16).eval()


@pytest.fixture(scope="module")
def targets(G):
    z_true = torch.randn(4, Z, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        return G(z_true)


def init_errors(G, images, z):
    with torch.no_grad():
        return (G(z) - images).pow(2).flatten(1).mean(1)


def test_result_shapes(G, targets):
    r = invert(G, targets, "lbfgs", steps=5)
    assert isinstance(r, Inversion)
    assert r.latents.shape == (4, Z) and r.latents.dtype == torch.float32
    assert r.reconstructions.shape == targets.shape
    assert 0 <= r.reconstructions.min() and r.reconstructions.max() <= 1
    assert r.errors.shape == (4,)
    assert torch.allclose(r.errors, init_errors(G, targets, r.latents), atol=1e-7)
    assert r.seconds > 0 and r.iterations.shape == (4,)


@pytest.mark.parametrize("init", ["zero", "random"])
def test_lbfgs_reduces_error(G, targets, init):
    start = invert(G, targets, "lbfgs", init=init, steps=0)
    r = invert(G, targets, "lbfgs", init=init, steps=60)
    assert (r.errors < 0.01 * start.errors).all()
    assert r.errors.max() < 1e-5


def noisy_targets(targets, seed=6):
    # off the generator's range: the optimum is not an exact reconstruction, so the path taken matters
    return (targets + 0.1 * torch.randn(targets.shape, generator=torch.Generator().manual_seed(seed))).clamp(0, 1)


def test_batched_matches_one_by_one(G, targets):
    noisy, init = noisy_targets(targets), torch.randn(4, Z, generator=torch.Generator().manual_seed(3))
    kw = {"init": init, "steps": 8, "prior_weight": 0.1}
    batch = invert(G, noisy, "lbfgs", **kw)
    for i in range(4):
        alone = invert(G, noisy[i : i + 1], "lbfgs", **{**kw, "init": init[i : i + 1]})
        torch.testing.assert_close(alone.latents[0], batch.latents[i], atol=1e-4, rtol=0)


def test_batched_lbfgs_is_exactly_per_image_in_float64(G, targets):
    # float32 convolutions round differently for different batch sizes and L-BFGS amplifies that near
    # the optimum; in float64 the solver itself shows that no image influences another
    G64, noisy = copy.deepcopy(G).double(), noisy_targets(targets).double()
    init = torch.randn(4, Z, generator=torch.Generator().manual_seed(3)).double()
    z, iters = lbfgs(_objective(G64, noisy, "mse", 0.0), init, steps=100)
    assert (iters < 100).all()  # all converged
    for i in range(4):
        zi, it = lbfgs(_objective(G64, noisy[i : i + 1], "mse", 0.0), init[i : i + 1], steps=100)
        torch.testing.assert_close(zi[0], z[i], atol=1e-5, rtol=0)
        assert it[0] == iters[i]


def test_converged_image_stops_changing(G, targets):
    z_true = torch.randn(4, Z, generator=torch.Generator().manual_seed(2))
    init = torch.zeros(4, Z)
    init[0] = z_true[0]  # already at the optimum
    r = invert(G, targets, "lbfgs", init=init, steps=30)
    assert torch.equal(r.latents[0], z_true[0])
    assert r.iterations[0] == 1 and (r.iterations[1:] > 1).all()


def test_pnet_uses_projector(G, P, targets):
    with torch.no_grad():
        guess = P(targets)
    r = invert(G, targets, "pnet", P)
    assert torch.equal(r.latents, guess) and r.iterations is None
    start = invert(G, targets, "pnet+lbfgs", P, steps=0)
    assert torch.equal(start.latents, guess)
    refined = invert(G, targets, "pnet+lbfgs", P, steps=30)
    assert (refined.errors < r.errors).all()


def test_scipy_reference_matches_lbfgs(G, targets):
    init = torch.randn(4, Z, generator=torch.Generator().manual_seed(4))
    start = init_errors(G, targets, init)
    ours = invert(G, targets, "lbfgs", init=init, steps=100)
    ref = invert(G, targets, "scipy", init=init, steps=100)
    assert ref.latents.dtype == torch.float32 and ref.latents.shape == (4, Z)
    assert (ref.errors < 1e-3 * start).all() and (ours.errors < 1e-3 * start).all()


def test_scipy_starts_from_projector(G, P, targets):
    r = invert(G, targets, "scipy", P, steps=0)
    with torch.no_grad():
        torch.testing.assert_close(r.latents, P(targets))


def test_bce_loss_and_prior(G, targets):
    noisy = (targets + 0.2 * torch.randn(targets.shape, generator=torch.Generator().manual_seed(5))).clamp(0, 1)
    start = invert(G, noisy, "lbfgs", init="random", steps=0, loss="bce")
    bce = invert(G, noisy, "lbfgs", init="random", steps=30, loss="bce")
    assert (bce.errors < start.errors).all()
    free = invert(G, noisy, "lbfgs", init="random", steps=30)
    shrunk = invert(G, noisy, "lbfgs", init="random", steps=30, prior_weight=1.0)
    assert shrunk.latents.norm(dim=1).mean() < free.latents.norm(dim=1).mean()


def test_generator_stays_frozen(G, P, targets):
    before = [p.detach().clone() for p in G.parameters()]
    assert all(p.requires_grad for p in G.parameters())
    invert(G, targets, "pnet+lbfgs", P, steps=5)
    invert(G, targets, "scipy", steps=2)
    assert all(p.grad is None for p in list(G.parameters()) + list(P.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(before, G.parameters()))
    assert next(G.parameters()).dtype == torch.float32


def test_latent_size_from_argument(G, targets):
    wrapped = nn.Sequential(G)  # no z_dim attribute
    with pytest.raises(LatentVideoError, match="latent size"):
        invert(wrapped, targets, "lbfgs", steps=1)
    assert invert(wrapped, targets, "lbfgs", steps=1, z_dim=Z).latents.shape == (4, Z)


def test_progress_bar_runs(G, targets):
    assert invert(G, targets[:1], "lbfgs", steps=2, progress=True).latents.shape == (1, Z)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"method": "adam"}, "unknown inversion method"),
        ({"method": "pnet"}, "needs a projector"),
        ({"method": "pnet+lbfgs"}, "needs a projector"),
        ({"loss": "l1"}, "unknown inversion loss"),
        ({"init": "ones"}, "unknown init"),
        ({"init": torch.zeros(3, Z)}, "init must have shape"),
        ({"steps": -1}, "steps"),
        ({"history": 0}, "history"),
    ],
)
def test_bad_arguments(G, targets, kwargs, match):
    kwargs = {"method": "lbfgs", **kwargs}
    with pytest.raises(LatentVideoError, match=match):
        invert(G, targets, **kwargs)


def test_bad_images(G, targets):
    with pytest.raises(LatentVideoError, match="float"):
        invert(G, (targets * 255).to(torch.uint8), "lbfgs")
    with pytest.raises(LatentVideoError, match=r"\[0, 1\]"):
        invert(G, targets * 2, "lbfgs")
    with pytest.raises(LatentVideoError, match="N, C, H, W"):
        invert(G, targets[:, 0], "lbfgs")
    with pytest.raises(LatentVideoError, match="G renders"):
        invert(G, torch.zeros(1, 1, 64, 64), "lbfgs")


def test_methods_listed():
    assert METHODS == ("pnet", "lbfgs", "pnet+lbfgs", "scipy")
