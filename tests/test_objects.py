"""The object-structured generator, its latent layout, slot matching, clip inversion and the unwrapped path."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from conftest import tiny_model_dir
from latentvideo import templates
from latentvideo.cli import main
from latentvideo.errors import LatentVideoError
from latentvideo.evaluation.recovery import position_errors
from latentvideo.ink import centre_on_ink
from latentvideo.models import load_model, model_config, save_model
from latentvideo.objects import LatentLayout, ObjectGenerator, UpConv, fold, render_clips
from latentvideo.pipeline import Pipeline
from latentvideo.slots import (
    invert_clips,
    match_slots,
    permute_slots,
    slot_matched_error,
)
from latentvideo.templates import correlate, template_positions
from latentvideo.tune import pivotal_tune, pivotal_tune_clips
from latentvideo.unwrap import unwrap_positions


def tiny_objects(objects=2, seed=0, **kw) -> ObjectGenerator:
    torch.manual_seed(seed)
    return ObjectGenerator(**{"objects": objects, "appearance": 4, "resolution": 32, "sprite": 12, "width": 4, **kw})


def latent(G, appearance, px) -> torch.Tensor:
    """One latent with given appearance codes [K, A] and pixel positions [K, 2] (inside the fold range)."""
    a = torch.as_tensor(appearance, dtype=torch.float32)[None]
    u = torch.as_tensor(px, dtype=torch.float32)[None] / G.latent_layout.fold_range
    return G.join(a, u)


def ink_centre(img: torch.Tensor) -> torch.Tensor:  # [H, W] -> (row, col)
    r, c = torch.meshgrid(torch.arange(img.shape[0]), torch.arange(img.shape[1]), indexing="ij")
    return torch.stack([(img * r).sum(), (img * c).sum()]) / img.sum()


def test_integer_steps_in_u_translate_the_sprite_pixel_exactly():
    G = tiny_objects(objects=1)
    a = torch.randn(1, 4)
    with torch.no_grad():
        x0 = G(latent(G, a, [[6, 7]]))[0, 0]
        x1 = G(latent(G, a, [[6, 9]]))[0, 0]  # two px to the right
        x2 = G(latent(G, a, [[9, 7]]))[0, 0]  # three px down
    assert x0.sum() > 1
    torch.testing.assert_close(x1[:, 2:], x0[:, :-2], atol=1e-5, rtol=0)
    torch.testing.assert_close(x2[3:], x0[:-3], atol=1e-5, rtol=0)


def test_upconv_is_a_nearest_upsample_then_its_3x3_conv_in_values_and_gradients():
    torch.manual_seed(0)
    conv = UpConv(5, 3)
    x = torch.randn(2, 5, 7, 6, requires_grad=True)
    out = conv(x)
    ref = nn.functional.conv2d(
        nn.functional.interpolate(x, scale_factor=2, mode="nearest"), conv.weight, conv.bias, padding=1
    )
    assert out.shape == (2, 3, 14, 12)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, conv.weight, conv.bias), g)
    for got, want in zip(grads, torch.autograd.grad(ref, (x, conv.weight, conv.bias), g)):
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_upconv_keeps_a_frozen_weights_kernel_until_the_weight_changes():
    """A frozen UpConv builds its transposed kernel once; an in-place step, a replaced `.data`, a trainable weight
    and a copy each get the kernel of their own current weights."""
    torch.manual_seed(0)
    conv = UpConv(4, 2).requires_grad_(False)
    x = torch.randn(1, 4, 5, 5)

    def ref(c):
        up = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        return nn.functional.conv2d(up, c.weight, c.bias, padding=1)

    assert conv.kernel() is conv.kernel()  # built once while the weight stays as it is
    with torch.no_grad():
        conv.weight.mul_(-2)  # in place, as Adam or copy_ changes it
    torch.testing.assert_close(conv(x), ref(conv), atol=1e-5, rtol=1e-5)
    conv.weight.data = torch.randn(2, 4, 3, 3)  # replaced, as module.to() may
    torch.testing.assert_close(conv(x), ref(conv), atol=1e-5, rtol=1e-5)
    twin = copy.deepcopy(conv)
    with torch.no_grad():
        twin.weight.add_(1)
    torch.testing.assert_close(twin(x), ref(twin), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(conv(x), ref(conv), atol=1e-5, rtol=1e-5)
    conv.requires_grad_(True)  # training: rebuilt on every call, in the autograd graph
    assert conv.kernel() is not conv.kernel() and conv.kernel().requires_grad


def test_placing_samples_where_affine_grid_would_at_any_sub_pixel_shift():
    G = tiny_objects(objects=1)
    torch.manual_seed(1)
    sprites, u = torch.rand(3, 1, G.sprite, G.sprite), torch.rand(3, 2) * 1.4 - 0.2  # [M, 1, S, S], [M, 2]
    top_left = fold(u) * G.latent_layout.fold_range - G._shift(sprites)  # [M, 2] px
    R, S = G.resolution, G.sprite
    theta = torch.zeros(3, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = R / S
    theta[:, 0, 2], theta[:, 1, 2] = (R - 2 * top_left[:, 1]) / S - 1, (R - 2 * top_left[:, 0]) / S - 1
    grid = nn.functional.affine_grid(theta, [3, 1, R, R], align_corners=False)
    want = nn.functional.grid_sample(sprites, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    torch.testing.assert_close(G.place(sprites, u), want, atol=1e-5, rtol=0)


def test_the_sprite_lands_at_fold_u():
    """Ink centre of mass = fold(u) * fold_range + (S - 1) / 2, for u inside, beyond and below the range."""
    G = tiny_objects(objects=1)
    a = torch.randn(1, 4)
    for u in ([0.3, 0.6], [1.3, -0.25], [2.4, 3.9]):
        z = G.join(a[None], torch.tensor([[u]]))
        with torch.no_grad():
            centre = ink_centre(G(z)[0, 0])
        expected = fold(torch.tensor(u)) * G.latent_layout.fold_range + (G.sprite - 1) / 2
        torch.testing.assert_close(centre, expected, atol=0.05, rtol=0)


def test_a_line_in_u_reflects_at_both_walls():
    G = tiny_objects(objects=1)
    a = torch.randn(1, 1, 4)
    d = torch.tensor([0.1, 0.35])
    with torch.no_grad():
        for wall in (0.0, 1.0):
            inside, beyond = G(G.join(a, (wall - d)[None, None])), G(G.join(a, (wall + d)[None, None]))
            torch.testing.assert_close(inside, beyond, atol=1e-6, rtol=0)
    assert not torch.equal(G(G.join(a, d[None, None])), G(G.join(a, (d + 0.05)[None, None])))


def test_rgb_with_background_composes_alpha_over():
    """Where no sprite reaches, the frame is the backdrop exactly; under the sprites it is not."""
    G = tiny_objects(objects=2, channels=3, background=3)
    z = G.sample_latents(2, torch.Generator().manual_seed(0))
    z[:, list(G.latent_layout.index.flatten())] = 0.0  # both sprites at the top-left corner
    with torch.no_grad():
        x, bg = G(z), G.backdrop(G.split(z)[2])
    assert x.shape == (2, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    free = G.sprite + G.sprite // 4  # sprite size plus the largest centring shift
    assert torch.equal(x[..., free:, :], bg[..., free:, :]) and torch.equal(x[..., free:], bg[..., free:])
    assert (x[..., :8, :8] - bg[..., :8, :8]).abs().max() > 1e-3


@pytest.mark.parametrize("kw", [{}, {"channels": 3, "background": 3}, {"channels": 3, "tint": True, "edge": 2}])
def test_a_clips_frames_render_from_shared_sprites_as_frame_by_frame(kw):
    G = tiny_objects(3, **kw).eval()
    z = G.sample_latents(6, torch.Generator().manual_seed(1)).view(2, 3, -1)  # 2 clips of 3 frames
    keep = torch.ones(G.z_dim, dtype=torch.bool)
    keep[G.latent_layout.index.flatten()] = False
    z[:, :, keep] = z[:, :1, keep]  # one appearance (and background) per clip, a position per frame
    with torch.no_grad():
        want = G(z.flatten(0, 1)).view(2, 3, *G(z[0]).shape[1:])
        got = render_clips(G, z)
    assert torch.allclose(got, want, atol=1e-6) and want.std() > 0.01
    z[1, 2, 0] += 1.0  # frames that do not share their appearance render frame by frame, still right
    with torch.no_grad():
        assert torch.allclose(render_clips(G, z), G(z.flatten(0, 1)).view_as(want), atol=1e-6)
    assert not torch.allclose(G.forward_shared(z)[1, 2], G(z[1, 2:]).squeeze(0), atol=1e-3)


def test_tint_is_the_objects_colour_and_edge_clears_the_box_border():
    """With tint, the last 3 appearance coordinates t set the colour to Phi(t) * shade: changing them recolours
    the sprite and leaves its alpha; with edge, alpha is 0 on the sprite box's outer row and column."""
    G = tiny_objects(objects=1, channels=3, background=2, tint=True, edge=2)
    a = torch.randn(2, 4)
    a[1, :-3] = a[0, :-3]  # same shape code, another colour
    with torch.no_grad():
        s = G.sprites(a)  # [2, 4, S, S]
        shade = G.sprites(torch.cat([a[:1, :-3], torch.full((1, 3), 10.0)], 1))[0, :3]  # Phi(10) = 1: the shade
    torch.testing.assert_close(s[0, 3], s[1, 3])  # alpha follows the shape code only
    phi = 0.5 * (1 + torch.erf(a[:, -3:] / 2**0.5))
    torch.testing.assert_close(s[:, :3], phi[:, :, None, None] * shade[None], atol=1e-6, rtol=0)
    assert torch.equal(shade[0], shade[1]) and torch.equal(shade[1], shade[2])  # a gray shade
    border = torch.ones(G.sprite, G.sprite, dtype=torch.bool)
    border[1:-1, 1:-1] = False
    assert s[:, 3][:, border].abs().max() == 0 and s[:, 3, 2:-2, 2:-2].min() > 0
    with pytest.raises(LatentVideoError, match="tint"):
        tiny_objects(tint=True)  # gray
    with pytest.raises(LatentVideoError, match="edge"):
        tiny_objects(channels=3, edge=4)  # more than a quarter of the 12 px sprite


def colour_scene(opaque: bool = False):
    """A tiny tint G with a backdrop, 4 latents whose 2 objects lie apart at known px, the images G draws of them,
    and a start with every slot at the canvas centre: (G, layout, generator, truth, images, start). `opaque`:
    half-opaque sprites, as a trained G's objects are (a fresh tint G's are faint)."""
    G = tiny_objects(objects=2, channels=3, background=2, tint=True, edge=1, seed=1)
    if opaque:
        torch.nn.init.zeros_(G.sprite_out.bias[-1:])
    lay = G.latent_layout
    gen = torch.Generator().manual_seed(2)
    truth = G.sample_latents(4, gen)
    px = torch.tensor([[2.0, 3.0], [15.0, 14.0]]) + torch.randint(0, 4, (4, 2, 2), generator=gen)  # apart
    truth[:, lay.index] = px / lay.fold_range
    with torch.no_grad():
        images = G(truth)
    start = truth.clone()
    start[:, lay.index] = 0.5
    return G, lay, gen, truth, images, start


def test_colour_template_starts_find_each_object_over_its_backdrop():
    """RGB, alpha-over: from a start with every slot at the canvas centre, the template starts put each slot
    within a px of where G drew it (G's own sprites and backdrop, known latents)."""
    G, lay, _, truth, images, start = colour_scene()
    found = template_positions(G, start, images, lay)
    err = position_errors(lay, found, truth)  # [4, 2] px, slots matched
    assert err.max() <= 1.0, err


@pytest.mark.parametrize("channels", [1, 3])
def test_fft_correlation_is_each_images_grouped_convolution(channels):
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, channels, 20, 20, generator=g)  # [N, C, R, R]
    w = torch.randn(3, 2, channels, 7, 7, generator=g)  # [N, K, C, S, S]: each image's own two kernels
    got = correlate(x, w)  # [N, K, P*P]
    want = torch.nn.functional.conv2d(x.reshape(1, -1, 20, 20), w.flatten(0, 1), groups=3)  # [1, N*K, P, P]
    assert got.shape == (3, 2, 14 * 14)
    torch.testing.assert_close(got, want.view(3, 2, -1), rtol=1e-5, atol=1e-5)
    # one position by hand: kernel 1 of image 2 at row 4, column 9
    assert float(got[2, 1, 4 * 14 + 9]) == pytest.approx(float((x[2, :, 4:11, 9:16] * w[2, 1]).sum()), rel=1e-5)


def test_tinted_sprites_start_faint_or_as_centred_blobs():
    """A fresh tint G's sprites are faint everywhere (alpha about sigmoid(ALPHA_START)); with the `centre` prior
    (what training builds for colour) they start as blobs in the middle of their boxes, so objects grow as shapes
    rather than as shape-shaped holes cut into opaque boxes; the plain RGB G starts half-opaque everywhere."""
    from latentvideo.objects import ALPHA_START

    a = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    tinted = tiny_objects(channels=3, tint=True).sprites(a)[:, -1]  # [64, S, S] alpha, S = 12
    plain = tiny_objects(channels=3).sprites(a)[:, -1]
    blob = tiny_objects(channels=3, tint=True, centre=3.0).sprites(a)[:, -1].mean(0)  # [S, S]
    expected = torch.sigmoid(torch.tensor(ALPHA_START))
    assert tinted.max() < 0.5 and abs(tinted.mean() - expected) < 0.05
    assert plain.mean() > 0.3
    corners = blob[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert blob[5:7, 5:7].min() > 0.7 and corners.max() < 0.1 and blob[[0, -1]].mean() < 0.3
    with pytest.raises(LatentVideoError, match="centre"):
        tiny_objects(channels=1, centre=3.0)


def test_colour_training_builds_the_centre_prior_into_the_model_folder(tmp_path, rgb_folder, tiny_config):
    from latentvideo.training.gan import CENTRE_PRIOR, train_gan

    cfg = tiny_config(data=str(rgb_folder), arch="objects", objects=1, appearance=4, sprite=12, steps=1)
    run = train_gan(tmp_path / "a", cfg, progress=False)
    saved = json.loads((run / "generator" / "config.json").read_text())
    assert saved["tint"] is True and saved["centre"] == CENTRE_PRIOR
    G = load_model(run / "generator")
    assert G.centre == CENTRE_PRIOR and torch.equal(
        G.alpha_prior,
        ObjectGenerator(
            **{
                k: saved[k]
                for k in (
                    "objects",
                    "appearance",
                    "resolution",
                    "channels",
                    "sprite",
                    "width",
                    "background",
                    "tint",
                    "edge",
                    "centre",
                )
            }
        ).alpha_prior,
    )


def test_paste_gain_is_the_alpha_weighted_drop_in_error_at_every_position():
    """RGB sprites without a colour coordinate: per top-left position, sum_p a_p (|x_p - canvas_p|^2 - |x_p -
    s_p|^2) over the sprite's box, checked by hand at one position of each image's each sprite."""
    g = torch.Generator().manual_seed(4)
    images, canvas = torch.rand(2, 3, 16, 16, generator=g), torch.rand(2, 3, 16, 16, generator=g)
    sprites = torch.rand(2, 2, 4, 5, 5, generator=g)  # [N, K, RGB + alpha, S, S]
    gain = templates._paste_gain(images, canvas, sprites)  # [N, K, 12 * 12]
    assert gain.shape == (2, 2, 144)
    for n, k, r, c in [(0, 0, 0, 0), (0, 1, 7, 3), (1, 0, 11, 11), (1, 1, 2, 9)]:
        x, b = images[n, :, r : r + 5, c : c + 5], canvas[n, :, r : r + 5, c : c + 5]
        rgb, a = sprites[n, k, :3], sprites[n, k, 3]
        want = (a * ((x - b).pow(2).sum(0) - (x - rgb).pow(2).sum(0))).sum()
        assert float(gain[n, k, r * 12 + c]) == pytest.approx(float(want), rel=1e-4, abs=1e-4)


def test_tinted_template_starts_fit_each_objects_colour():
    """Colour is a latent coordinate: from a start with every slot at the canvas centre AND the wrong colours,
    the template starts put each slot within a px of its object and give it the object's colour (to 0.02)."""
    G, lay, gen, truth, images, start = colour_scene(opaque=True)
    tint = [torch.arange(b - 3, b) for _, b in lay.appearance]  # each slot's colour coordinates
    for idx in tint:
        start[:, idx] = torch.randn(4, 3, generator=gen) * 2
    found = template_positions(G, start, images, lay)
    assert position_errors(lay, found, truth).max() <= 1.0
    phi = lambda t: 0.5 * (1 + torch.erf(t / 2**0.5))  # noqa: E731
    for i in range(4):
        for k, idx in enumerate(tint):  # the found slot nearest each true object has its colour
            near = (lay.pixels(found)[i] - lay.pixels(truth)[i, k]).norm(dim=1).argmin()
            assert torch.allclose(phi(found[i, tint[near]]), phi(truth[i, idx]), atol=0.02), (i, k)
    assert not torch.allclose(phi(start[:, tint[0]]), phi(truth[:, tint[0]]), atol=0.1)  # it had to find them


def test_model_folder_round_trip_keeps_the_layout(tmp_path):
    G = tiny_objects()
    cfg = model_config(G, objects=2, appearance=4, resolution=32, sprite=12, width=4)
    save_model(G, tmp_path / "g", cfg)
    saved = json.loads((tmp_path / "g" / "config.json").read_text())
    assert saved["latent_layout"]["positions"] == [[4, 5], [10, 11]] and saved["latent_layout"]["fold_range"] == 20
    G2 = load_model(tmp_path / "g")
    z = G.sample_latents(3, torch.Generator().manual_seed(0))
    assert torch.equal(G(z), G2(z)) and G2.latent_layout == G.latent_layout


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda lay: lay.update(positions=[[4, 5], [10, 99]]), ["out of range"]),
        (lambda lay: lay.update(fold_range=-20), ["fold_range", "> 0"]),
        (lambda lay: lay.update(positions=[[4, 5], [4, 11]]), ["twice"]),
        (lambda lay: lay.update(fold_range=12.0), ["does not match"]),
        (lambda lay: lay.update(extra=1), ["latent_layout must be"]),
        (lambda lay: lay.update(appearance=[[0, 4]]), ["one [start, stop] range per"]),
    ],
)
def test_bad_layouts_in_config_are_refused(tmp_path, edit, words):
    G = tiny_objects()
    save_model(G, tmp_path / "g", model_config(G, objects=2, appearance=4, resolution=32, sprite=12, width=4))
    cfg_file = tmp_path / "g" / "config.json"
    cfg = json.loads(cfg_file.read_text())
    edit(cfg["latent_layout"])
    cfg_file.write_text(json.dumps(cfg))
    with pytest.raises(LatentVideoError) as info:
        load_model(tmp_path / "g")
    assert "\n" not in str(info.value) and all(w in str(info.value) for w in words), info.value


@pytest.mark.parametrize(
    "flags, words",
    [
        (["--arch", "stylegan"], ["unknown arch"]),
        (["--arch", "objects", "--objects", "0"], ["objects must be an integer >= 1"]),
        (["--arch", "objects", "--appearance", "0"], ["appearance must be an integer >= 1"]),
        (["--arch", "objects", "--sprite", "30"], ["sprite must be a multiple of 4"]),
        (["--objects", "3"], ["options of the objects generator"]),
    ],
)
def test_bad_train_flags_are_one_line_errors(tmp_path, capsys, seq32, flags, words):
    code = main(["train", "gan", "--out", str(tmp_path / "run"), "--data", str(seq32), "--steps", "1", *flags])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and all(w in err for w in words), err
    assert not (tmp_path / "run").exists()


def test_training_an_objects_gan_resumes_bit_exactly(tmp_path, tiny_config):
    from latentvideo.training.gan import train_gan

    cfg = tiny_config(arch="objects", objects=1, appearance=4, sprite=12, steps=4, checkpoint_every=2)
    train_gan(tmp_path / "a", cfg, progress=False)
    train_gan(tmp_path / "b", cfg, stop_after=2, progress=False)
    train_gan(tmp_path / "b", None, resume=True, progress=False)
    Ga, Gb = load_model(tmp_path / "a" / "generator"), load_model(tmp_path / "b" / "generator")
    assert isinstance(Ga, ObjectGenerator)
    for (name, pa), pb in zip(Ga.state_dict().items(), Gb.state_dict().values()):
        assert torch.equal(pa, pb), name


# ------------------------------------------------------------------ slots


def test_slot_matched_error_ignores_slot_order():
    G = tiny_objects(objects=3)
    z = G.sample_latents(5, torch.Generator().manual_seed(0))
    lay = G.latent_layout
    swapped = permute_slots(z, lay, [2, 0, 1])
    assert not torch.equal(swapped, z)
    assert slot_matched_error(swapped, z, lay).abs().max() < 1e-6
    noisy = z + 0.1
    assert torch.allclose(
        slot_matched_error(permute_slots(noisy, lay, [1, 2, 0]), z, lay), slot_matched_error(noisy, z, lay)
    )


def test_match_slots_undoes_a_swap_between_keyframes():
    G = tiny_objects(objects=2)
    z = G.sample_latents(1, torch.Generator().manual_seed(1)).repeat(3, 1)
    z[:, list(G.latent_layout.index.flatten())] = torch.rand(3, 4)  # the same two sprites, moving
    z[1] = permute_slots(z[1:2], G.latent_layout, [1, 0])[0]
    perm = match_slots(G, z, G.latent_layout)
    assert perm.tolist() == [[0, 1], [1, 0], [0, 1]]


def test_clip_inversion_recovers_positions_of_g_samples_within_half_a_pixel():
    """Keyframes rendered by G from one appearance per slot, the slots swapped in one keyframe; the start is
    P-NET-like (positions off by up to 2 px, appearance noisy): the clip fit recovers every position."""
    G = tiny_objects(objects=2, seed=3)
    lay = G.latent_layout
    gen = torch.Generator().manual_seed(4)
    truth = G.sample_latents(1, gen).repeat(3, 1)
    truth[:, list(lay.index.flatten())] = 0.15 + 0.7 * torch.rand(3, 4, generator=gen)
    keyframes = G(truth).detach()
    guess = truth + 0.05 * torch.randn(truth.shape, generator=gen)
    guess[:, list(lay.index.flatten())] += (torch.rand(3, 4, generator=gen) - 0.5) * 4 / lay.fold_range
    guess[2] = permute_slots(guess[2:], lay, [1, 0])[0]

    class Guess(nn.Module):  # a projector that returns the perturbed latents
        def forward(self, x):
            return guess

    inv = invert_clips(G, [keyframes], Guess(), frame_steps=30, clip_steps=60)
    z = inv.latents[0]
    err = position_errors(lay, z, truth)  # [3 keyframes, 2 slots] px, slots matched per keyframe
    assert err.max() < 0.5, err
    assert inv.errors[0].max() < 1e-3  # (this tiny G draws both slots as near-identical blobs)
    # one appearance per slot for the clip
    app = torch.cat([z[:, slice(*r)] for r in lay.appearance], 1)
    assert torch.equal(app[0], app[1]) and torch.equal(app[0], app[2])


def test_centre_steps_move_each_object_to_its_inks_centre_when_g_draws_another_shape():
    """Two hand-drawn shapes that G cannot draw (an L and a bar), slots starting 2 px off, one of them on another
    mirror image under fold: every slot ends at its shape's ink centre, on the mirror image it started on."""
    G = tiny_objects(objects=2, seed=5)
    lay, S = G.latent_layout, G.sprite
    x = torch.zeros(1, 1, 32, 32)
    x[0, 0, 4:11, 4:6] = 1.0  # an L
    x[0, 0, 9:11, 6:10] = 0.7
    x[0, 0, 21:23, 18:28] = 0.9  # a bar
    truth = torch.stack([ink_centre(x[0, 0, :16, :16]), ink_centre(x[0, 0, 16:, 16:]) + 16])  # [2, 2] px
    start_px = truth + torch.tensor([[2.0, -2.0], [-2.0, 1.5]])
    z = latent(G, torch.randn(2, 4), start_px - (S - 1) / 2)
    z[0, lay.positions[1][1]] += 2.0  # slot 2's column: the same rendered place, one period on
    out = centre_on_ink(G, z, x, lay, steps=5)
    px = fold(out[:, lay.index])[0] * lay.fold_range + (S - 1) / 2
    assert (px - truth).abs().max() < 0.3, (px, truth)
    assert (out - z).abs().max() < 3 / lay.fold_range  # moved along the mirror image it was on
    other = torch.ones(z.shape[1], dtype=torch.bool)
    other[lay.index.flatten()] = False
    assert torch.equal(out[:, other], z[:, other])  # appearance untouched
    with torch.no_grad():  # and the start was really off
        assert (fold(z[:, lay.index])[0] * lay.fold_range + (S - 1) / 2 - truth).abs().max() > 1.9


# ------------------------------------------------------------------ unwrap


def test_unwrap_picks_the_bouncing_line():
    t = np.array([0.0, 9.0, 19.0])
    truth = 0.62 - 0.1 * np.arange(20)  # row: hits the wall at 0 near frame 6
    col = 0.2 + 0.03 * np.arange(20)  # col: no bounce
    p = np.stack([fold(torch.tensor(truth)).numpy(), col], -1)[t.astype(int)][:, None]  # [3, 1, 2]
    u = unwrap_positions(p, t)
    assert u.unwrapped.all()
    q = np.arange(20)
    rows = fold(torch.tensor(np.interp(q, t, u.positions[:, 0, 0]))).numpy()
    np.testing.assert_allclose(rows, fold(torch.tensor(truth)).numpy(), atol=1e-9)
    np.testing.assert_allclose(u.positions[:, 0, 1], col[t.astype(int)], atol=1e-12)  # straight stays straight
    assert abs(u.speeds[0] - np.hypot(0.1, 0.03)) < 1e-9


def test_unwrap_keeps_straight_lines_and_uses_a_known_speed_with_two_keyframes():
    t = np.array([0.0, 19.0])
    p = np.array([[[0.2, 0.5]], [[0.1, 0.5]]])  # row 0.2 + 0.1 t: 2.1 at frame 19, which folds to 0.1
    slow = unwrap_positions(p, t)
    np.testing.assert_allclose(slow.positions, p)  # no speed: the direct path
    fast = unwrap_positions(p, t, speed=0.1)  # 1.9 fold units in 19 frames: there and back again
    np.testing.assert_allclose(fast.positions[:, 0], [[0.2, 0.5], [2.1, 0.5]], atol=1e-12)


def test_unwrap_tolerates_an_ink_centre_off_its_box_at_the_wall():
    """G folds a digit's ink centre at the walls where Moving MNIST bounces its box, so a reflected keyframe sits
    twice the ink centre's offset (here 1 px of the 36 px fold range) off the line: still the bouncing line."""
    t = np.array([0.0, 9.0, 19.0])
    box = 0.62 - 0.1 * np.arange(20)  # the box bounces off the wall at 0 near frame 6
    ink = fold(torch.tensor(box)).numpy() + 1 / 36  # the ink centre, 1 px below the box's corner
    p = np.stack([ink, np.full(20, 0.5)], -1)[t.astype(int)][:, None]  # [3, 1, 2]
    u = unwrap_positions(p, t)
    assert u.unwrapped.all() and abs(u.speeds[0] - 0.1) < 0.01
    assert not unwrap_positions(p, t, tol=0.02).unwrapped.any()  # 0.72 px of tolerance refuses it


def test_unwrap_keeps_lerp_through_an_arc():
    """A held-out arc (test clip 25 of that set, its first digit: top-left px at frames 0, 9, 19) that a line bouncing
    at 0.11 fold units per frame also fits: beyond the speed limit, so lerp, which stays within ~1 px of it;
    the earlier limit (0.12) and tolerance (0.05) took the false bounce, 6.5 px off on average."""
    t = np.array([0.0, 9.0, 19.0])
    p = np.array([[32.0, 17.0], [21.0, 16.0], [16.0, 27.0]])[:, None] / 36  # [3, 1, 2]
    assert not unwrap_positions(p, t).unwrapped.any()
    assert unwrap_positions(p, t, tol=0.05, max_speed=0.12).unwrapped.all()


def test_unwrap_falls_back_to_lerp_when_no_line_fits():
    t = np.array([0.0, 5.0, 10.0, 15.0])
    p = np.array([0.1, 0.9, 0.15, 0.85])[:, None, None].repeat(2, 2)  # a zigzag no line explains
    u = unwrap_positions(p, t, max_speed=0.1)
    assert not u.unwrapped.any() and np.allclose(u.positions, p)


# ------------------------------------------------------------------ a user's module with a declared layout


class BlobGenerator(nn.Module):
    """A user's G: one Gaussian blob at fold(z[2:4]) * 24 + 4 px on a 32x32 canvas (z[0:2] unused)."""

    z_dim = 4

    def forward(self, z):
        pos = fold(z[:, 2:4]) * 24 + 4  # [N, 2]
        r = torch.arange(32.0)
        gr = torch.exp(-0.5 * ((r[None] - pos[:, :1]) / 1.5) ** 2)  # [N, 32]
        gc = torch.exp(-0.5 * ((r[None] - pos[:, 1:]) / 1.5) ** 2)
        return (gr[:, :, None] * gc[:, None, :])[:, None]


def test_a_users_module_with_a_declared_layout_gets_the_unwrapped_path():
    G = BlobGenerator()
    layout = {"positions": [[2, 3]], "fold_range": 24.0}
    row = fold(torch.tensor(0.7 + 0.08 * np.arange(20)))  # bounces off the bottom wall near frame 4
    col = fold(torch.tensor(0.1 + 0.02 * np.arange(20)))
    z_true = torch.zeros(20, 4)
    z_true[:, 2], z_true[:, 3] = row, col
    keyframes = G(z_true[[0, 9, 19]])
    pipe = Pipeline.from_modules(G, layout=layout)
    opts = dict(method="lbfgs", critic="off", clip_steps=0, lbfgs_steps=0)  # known latents: test the path alone
    clip = pipe.animate([z_true[[0, 9, 19]]], [np.array([0.0, 9.0, 19.0])], 20, pipe.options(**opts)).latents
    rendered_rows = fold(clip[:, 2]) * 24 + 4
    torch.testing.assert_close(rendered_rows, row.float() * 24 + 4, atol=1e-4, rtol=0)
    lerp = pipe.animate([z_true[[0, 9, 19]]], [np.array([0.0, 9.0, 19.0])], 20, pipe.options(**opts, unwrap=False))
    lerp = lerp.latents
    assert (fold(lerp[:, 2]) - row.float()).abs().max() > 0.2  # without unwrapping it never reaches the wall
    assert pipe(keyframes, times=[0, 9, 19], num_frames=20, **opts).frames.shape == (20, 1, 32, 32)


def test_bad_user_layouts_are_refused():
    with pytest.raises(LatentVideoError, match="out of range"):
        Pipeline.from_modules(BlobGenerator(), layout={"positions": [[2, 4]], "fold_range": 24.0})
    with pytest.raises(LatentVideoError, match="fold_range"):
        Pipeline.from_modules(BlobGenerator(), layout={"positions": [[2, 3]], "fold_range": 0})
    with pytest.raises(LatentVideoError, match="LatentLayout or a dict"):
        Pipeline.from_modules(BlobGenerator(), layout=[[2, 3]])
    assert LatentLayout.from_dict({"positions": [[2, 3]], "fold_range": 24}, 4).fold_range == 24.0


def test_pivotal_tuning_fits_the_sprites_to_the_keyframes_and_leaves_g_alone():
    """Keyframes drawn by another G: inversion alone cannot match them; a tuned copy of the sprite net does
    much better, the positions stay, and the pipeline renders the path with the copy."""
    G, other = tiny_objects(objects=2, seed=0), tiny_objects(objects=2, seed=5)
    z = other.sample_latents(3, torch.Generator().manual_seed(2))
    z[1:, : 2 * 6] = z[0, : 2 * 6]  # one appearance per slot for the clip (appearance 4 + 2 position coords)
    with torch.no_grad():
        keys = other(z)
    before = {k: v.clone() for k, v in G.state_dict().items()}
    tuned = pivotal_tune(G, z, keys, steps=60, lr=1e-2)
    with torch.no_grad():
        err_g, err_t = (G(z) - keys).pow(2).mean(), (tuned(z) - keys).pow(2).mean()
    assert err_t < 0.5 * err_g
    assert all(torch.equal(before[k], v) for k, v in G.state_dict().items())  # G untouched
    pipe = Pipeline.from_modules(G)
    opts = pipe.options(method="lbfgs", critic="off", lbfgs_steps=5, clip_steps=5, pivot_steps=0, refit=0)
    opts = replace(opts, joint_tuning=False)  # the tuning holds the latents (test_joint_tuning.py moves them)
    plain = pipe.animate([z], [np.array([0.0, 4.0, 9.0])], 10, opts, keyframes=[keys])
    piv = pipe.animate([z], [np.array([0.0, 4.0, 9.0])], 10, replace(opts, pivot_steps=60), keyframes=[keys])
    err = lambda a: (a.frames[[0, 4, 9]] - keys).pow(2).mean()  # noqa: E731
    assert err(piv) < 0.7 * err(plain) and "pivot" in piv.timings
    torch.testing.assert_close(piv.latents, plain.latents)  # the path is the same; only the sprites differ


def test_pivotal_tuning_in_colour_also_fits_the_background():
    """A colour clip's static background is part of its appearance: the tuned copy changes the background net
    too, and matches keyframes drawn over another G's background better than G does."""
    G, other = (tiny_objects(objects=2, seed=s, channels=3, background=3) for s in (0, 5))
    z = other.sample_latents(3, torch.Generator().manual_seed(2))
    z[1:, : 2 * 6] = z[0, : 2 * 6]
    z[1:, 2 * 6 :] = z[0, 2 * 6 :]  # one background for the clip
    with torch.no_grad():
        keys = other(z)
    tuned = pivotal_tune(G, z, keys, steps=60, lr=1e-2)
    assert not torch.equal(tuned.bg_fc.weight, G.bg_fc.weight) and not torch.equal(
        tuned.sprite_fc.weight, G.sprite_fc.weight
    )
    with torch.no_grad():
        assert (tuned(z) - keys).pow(2).mean() < 0.5 * (G(z) - keys).pow(2).mean()


@pytest.mark.parametrize("colour", [False, True])
def test_clips_tuned_together_equal_clips_tuned_alone(colour):
    """pivotal_tune_clips tunes many clips in one vmapped loop: each copy equals the one pivotal_tune gives for
    its clip alone (to float rounding), also from per-clip starting copies and with a clip whose keyframes render
    frame by frame (appearance differs) or that has another keyframe count; the clips' own weights differ."""
    kw = dict(channels=3, background=3, tint=True, edge=1) if colour else {}
    G, other = tiny_objects(objects=2, seed=0, **kw), tiny_objects(objects=2, seed=5, **kw)
    shared = G.z_dim - G.background
    zs, keys = [], []
    for seed, n in ((2, 3), (3, 3), (4, 3), (5, 2), (6, 3)):
        z = other.sample_latents(n, torch.Generator().manual_seed(seed))
        if seed != 4:  # clip 2 keeps an appearance per keyframe: rendered frame by frame
            own = torch.isin(torch.arange(shared), G.latent_layout.index)  # positions: one per keyframe
            z[1:, :shared] = torch.where(own, z[1:, :shared], z[0, :shared])
        z[1:, shared:] = z[0, shared:]
        zs.append(z)
        with torch.no_grad():
            keys.append(other(z))
    alone = [pivotal_tune(G, z, x, steps=15, lr=1e-2) for z, x in zip(zs, keys)]
    together = pivotal_tune_clips([G] * len(zs), zs, keys, steps=15, lr=1e-2)
    for a, b, z in zip(alone, together, zs):  # Adam's normalised steps amplify rounding where gradients are ~0
        for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
            torch.testing.assert_close(pb, pa, atol=5e-4, rtol=0, msg=name)
        with torch.no_grad():
            torch.testing.assert_close(b(z), a(z), atol=1e-3, rtol=0)  # measured: 2.5e-4 at most
    assert not torch.equal(together[0].sprite_fc.weight, together[1].sprite_fc.weight)
    assert not torch.equal(together[0].sprite_fc.weight, G.sprite_fc.weight)  # G itself untouched
    again_alone = [pivotal_tune(a, z, x, steps=5, lr=1e-2) for a, z, x in zip(alone, zs, keys)]
    again = pivotal_tune_clips(together, zs, keys, steps=5, lr=1e-2)  # from per-clip copies
    for a, b in zip(again_alone, again):
        torch.testing.assert_close(b.sprite_out.weight, a.sprite_out.weight, atol=5e-4, rtol=0)
    with pytest.raises(LatentVideoError, match="pivot steps"):
        pivotal_tune_clips([G], zs[:1], keys[:1], steps=-1)
    with pytest.raises(LatentVideoError, match="2 generators for 1 latents"):
        pivotal_tune_clips([G, G], zs[:1], keys[:1])


def test_refit_fits_the_clip_again_through_the_tuned_copy():
    """Latents whose positions are off (a first inversion that went wrong): a refit pass inverts the clip again
    through the tuned copy and tunes again, which matches the keyframes better than tuning alone; the path then
    runs through the refit latents."""
    G, other = (tiny_objects(objects=2, seed=s, channels=3, background=3) for s in (0, 5))
    z = other.sample_latents(3, torch.Generator().manual_seed(2))
    z[1:, : 2 * 6] = z[0, : 2 * 6]
    z[1:, 2 * 6 :] = z[0, 2 * 6 :]
    with torch.no_grad():
        keys = other(z)
    pipe = Pipeline.from_modules(G)
    start = z.clone()
    start[:, pipe.layout.index] += 0.12  # every object about 2 px off
    opts = pipe.options(
        method="lbfgs",
        critic="off",
        lbfgs_steps=5,
        clip_steps=10,
        pivot_steps=60,
        refit=0,
        plate=False,
        walls="sprite",
        joint_tuning=False,
    )  # walls "sprite": the keyframe latents stay in G's units (test_reach.py moves them into a reached copy's);
    # joint_tuning off: the last tuning holds them (test_joint_tuning.py moves them)
    times = [np.array([0.0, 4.0, 9.0])]
    once = pipe.animate([start], times, 10, opts, keyframes=[keys])
    again = pipe.animate([start], times, 10, replace(opts, refit=1), keyframes=[keys])
    assert torch.equal(once.keyframe_latents[0], start) and "refit" not in once.timings
    assert not torch.equal(again.keyframe_latents[0], start) and "refit" in again.timings
    px = pipe.layout.pixels  # the path passes the refit positions (unwrapped: mirror images fold the same)
    torch.testing.assert_close(px(again.latents[[0, 4, 9]]), px(again.keyframe_latents[0]), atol=1e-4, rtol=0)
    err = lambda a: (a.frames[[0, 4, 9]] - keys).pow(2).mean()  # noqa: E731
    assert err(again) < 0.6 * err(once)  # measured: 0.0049 against 0.0094


def test_tunings_before_the_last_refit_pass_take_early_pivot_steps(monkeypatch):
    """With refit passes, every pivotal tuning but the last takes early_pivot_steps, the last pivot_steps; the
    presets tune every pass alike."""
    import latentvideo.pipeline as pipeline_module

    G = tiny_objects(objects=2, seed=0)
    z = G.sample_latents(3, torch.Generator().manual_seed(2))
    with torch.no_grad():
        keys = G(z)
    steps = []
    for name in ("pivotal_tune_clips", "joint_tune_clips"):  # the presets' last tuning is a joint one
        tune = getattr(pipeline_module, name)
        monkeypatch.setattr(pipeline_module, name, lambda *a, _t=tune, **k: steps.append(a[3]) or _t(*a, **k))
    pipe = Pipeline.from_modules(G)
    opts = pipe.options(method="lbfgs", lbfgs_steps=2, clip_steps=2, pivot_steps=5, early_pivot_steps=2, refit=2)
    pipe.animate([z], [np.array([0.0, 4.0, 9.0])], 10, opts, keyframes=[keys])
    assert steps == [2, 2, 5]
    defaults = pipe.default_options()
    assert defaults.early_pivot_steps == defaults.pivot_steps > 0


def test_object_models_default_to_pivotal_tuning_and_refit_passes_in_gray_and_colour():
    """Sprite-net generators (gray or colour) default to pivotal tuning and two refit passes (measured on both
    shipped domains, BENCHMARK.md); a user's module with positions but no sprite net has nothing to tune."""
    from latentvideo.presets import OBJECT_PIVOT_STEPS, OBJECT_REFIT

    for G in (tiny_objects(), tiny_objects(channels=3, background=3)):
        opts = Pipeline.from_modules(G).default_options()
        assert (opts.pivot_steps, opts.refit, opts.motion_prior) == (OBJECT_PIVOT_STEPS, OBJECT_REFIT, "off")
    assert OBJECT_REFIT == 2
    blob = Pipeline.from_modules(BlobGenerator(), layout={"positions": [[2, 3]], "fold_range": 24.0})
    assert (blob.default_options().pivot_steps, blob.default_options().refit) == (0, 0)


def test_object_models_start_the_clip_fit_from_pnet_or_from_per_keyframe_lbfgs_without_one(tmp_path):
    """With a P-NET, the clip fit starts from its latents (no per-keyframe L-BFGS: BENCHMARK.md); without one,
    from per-keyframe L-BFGS. A dcgan keeps P-NET + L-BFGS per keyframe."""
    from latentvideo.presets import OBJECT_FRAME_STEPS

    def defaults(name, **kw):
        return Pipeline.from_dir(tiny_model_dir(tmp_path / name, **kw), device="cpu").default_options()

    assert defaults("objects-pnet", objects=2, projector=True).method == "pnet"
    alone = defaults("objects", objects=2)
    assert (alone.method, alone.lbfgs_steps) == ("lbfgs", OBJECT_FRAME_STEPS)
    assert defaults("dcgan-pnet", projector=True).method == "pnet+lbfgs"


def test_background_plate_recovers_the_background_behind_moving_objects():
    """Keyframes of G's objects moving over a background G cannot draw: the plate equals that background wherever
    an object leaves it free in some keyframe, also where a slot missed its object (its latent elsewhere)."""
    from latentvideo.tune import background_plate

    G = tiny_objects(objects=2, channels=3, background=3, sprite=8)
    z = G.sample_latents(3, torch.Generator().manual_seed(4))
    z[1:] = z[0]
    z[:, G.latent_layout.index[:, 0]] = torch.tensor([[0.0, 1.0], [0.5, 0.5], [1.0, 0.0]])  # rows cross the canvas
    back = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))  # noise: no net draws it
    G.plate = back
    with torch.no_grad():
        keys = G(z)
    G.plate = None
    free = (1 - G.layers(z)[:, :, 3:]).prod(1)  # [3, 1, 32, 32]
    seen = (free > 0.99).any(0).expand(3, -1, -1)  # free in some keyframe
    plate = background_plate(G, z, keys)
    err = (plate - back)[seen].abs()
    assert err.max() < 0.05 and err.mean() < 0.002
    missed = z.clone()
    missed[:, G.latent_layout.index[1]] = 0.5  # slot 1 never on its object: its object moves across the plate
    plate = background_plate(G, missed, keys)
    ok = (free > 0.99).sum(0).expand(3, -1, -1) >= 2  # free in two of three keyframes: the median is background
    assert (plate - back)[ok].abs().mean() < 0.02
    seems = (1 - G.layers(missed)[:, :, 3:]).prod(1).detach()  # what the slots leave free: the missed object too
    naive = (seems * keys).sum(0) / seems.sum(0).clamp_min(1e-3)  # the mean over uncovered keyframes: ghosts
    assert (naive - back)[ok].abs().mean() > 3 * (plate - back)[ok].abs().mean()


def test_the_plate_option_renders_colour_clips_over_the_keyframes_background():
    """With plate=True a colour clip's in-between frames show the keyframes' own background where no object is,
    not the background net's drawing; gray models ignore it."""
    G = tiny_objects(objects=1, channels=3, background=3, sprite=8)
    z = G.sample_latents(3, torch.Generator().manual_seed(4))
    z[1:] = z[0]
    z[:, G.latent_layout.index[0]] = torch.tensor([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]])
    back = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    G.plate = back
    with torch.no_grad():
        keys = G(z)
    G.plate = None
    pipe = Pipeline.from_modules(G)
    assert pipe.default_options().plate
    opts = pipe.options(method="lbfgs", lbfgs_steps=5, clip_steps=10, pivot_steps=5, refit=0)
    times = [np.array([0.0, 4.0, 9.0])]
    on = pipe.animate([z], times, 10, opts, keyframes=[keys]).frames
    off = pipe.animate([z], times, 10, replace(opts, plate=False), keyframes=[keys]).frames
    corner = (slice(None), slice(None), slice(0, 4), slice(28, 32))  # no object passes the top-right corner
    assert (on[corner] - back[None][corner]).abs().max() < 0.02
    assert (off[corner] - back[None][corner]).abs().mean() > 0.1
    gray = Pipeline.from_modules(tiny_objects())
    assert not gray.default_options().plate
