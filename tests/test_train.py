"""WGAN-GP training, checkpoints, resume, DDP and the `train` / top-level CLI."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, listing, write_png
from latentvideo.checkpoint import load_checkpoint, save_checkpoint, truncate_stats
from latentvideo.cli import main
from latentvideo.errors import LatentVideoError
from latentvideo.models import Critic, Generator, load_model
from latentvideo.training.gan import GANConfig, gradient_penalty_loss, train_gan

CPU = dict(device="cpu", progress=False)


def _stats(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env.pop("RANK", None)
    env.pop("WORLD_SIZE", None)
    return env


# ---------------------------------------------------------------- losses


def test_gradient_penalty_of_a_linear_critic():
    """For f(x) = w.x + b the input gradient is w everywhere: gp = (|w| - 1)^2."""
    torch.manual_seed(0)
    lin = torch.nn.Linear(2 * 3 * 3, 1)
    critic = torch.nn.Sequential(torch.nn.Flatten(), lin, torch.nn.Flatten(0))
    real, fake = torch.rand(4, 2, 3, 3), torch.rand(4, 2, 3, 3)
    loss, gp, wdist = gradient_penalty_loss(critic, real, fake, torch.rand(4, 1, 1, 1))
    w = lin.weight.detach()
    torch.testing.assert_close(gp, (w.norm() - 1) ** 2)
    torch.testing.assert_close(wdist, critic(real).mean() - critic(fake).mean())
    torch.testing.assert_close(loss, -wdist)
    (loss + 10 * gp).backward()  # the penalty is differentiable w.r.t. the critic weights
    expected = -(real.flatten(1).mean(0) - fake.flatten(1).mean(0)) + 10 * 2 * (w.norm() - 1) * w / w.norm()
    torch.testing.assert_close(lin.weight.grad, expected.view_as(lin.weight.grad))


# ---------------------------------------------------------------- training runs


def test_train_writes_a_complete_run(tmp_path, tiny_config):
    run = train_gan(tmp_path / "run", tiny_config(steps=3, checkpoint_every=2), **CPU)
    assert run == tmp_path / "run"
    rows = _stats(run)
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows:
        assert {"wdist", "gp", "loss_g", "frames_per_s"} <= r.keys()
        assert all(math.isfinite(r[k]) for k in ("wdist", "gp", "loss_g", "frames_per_s"))
        assert r["gp"] >= 0 and r["frames_per_s"] > 0
    assert json.loads((run / "config.json").read_text())["z_dim"] == 8
    assert (run / "checkpoint.safetensors").is_file()
    samples = sorted(p.name for p in (run / "samples").iterdir())
    assert samples == ["step_0000002.png", "step_0000003.png"]
    with Image.open(run / "samples" / "step_0000003.png") as im:
        assert im.size == (8 * 34 + 2, 8 * 34 + 2)  # 64 samples, 8 per row, 32 px + 2 px gaps
    G = load_model(run / "generator", expect="dcgan-generator")
    C = load_model(run / "critic", expect="dcgan-critic")
    assert (G.z_dim, G.resolution, G.channels) == (8, 32, 1)
    assert G(torch.randn(2, 8)).shape == (2, 1, 32, 32)
    assert C(torch.rand(2, 1, 32, 32)).shape == (2,)
    torch.manual_seed(0)  # the run's initial weights
    G0, C0 = Generator(8, 32, 1, 4), Critic(32, 1, 4)
    assert not torch.equal(C.head.weight, C0.head.weight)  # the critic trained
    assert not torch.equal(G.fc.weight, G0.fc.weight)  # the EMA generator moved too
    # no stray temporary files anywhere in the run
    assert not [p for p in listing(run) if p.rsplit("/", 1)[-1].startswith(".")]


def test_checkpoint_holds_the_training_state(tmp_path, tiny_config):
    run = train_gan(tmp_path / "run", tiny_config(steps=2), **CPU)
    G, C, G_ema = Generator(8, 32, 1, 4), Critic(32, 1, 4), Generator(8, 32, 1, 4)
    opt_g, opt_c = torch.optim.Adam(G.parameters()), torch.optim.Adam(C.parameters())
    rng, meta = load_checkpoint(
        run / "checkpoint.safetensors", {"G": G, "C": C, "G_ema": G_ema}, {"g": opt_g, "c": opt_c}
    )
    assert meta["step"] == 2 and meta["config"]["steps"] == 2
    assert set(rng) == {"torch_0"} and len(meta["data_rng"]) == 1
    _assert_same_weights(G_ema, load_model(run / "generator"))  # exported generator is the EMA one
    _assert_same_weights(C, load_model(run / "critic"))
    assert not torch.equal(G.fc.weight, G_ema.fc.weight)
    assert all(float(s["step"]) == 2 for s in opt_g.state_dict()["state"].values())
    assert list(opt_g.param_groups[0]["betas"]) == [0.5, 0.9]  # the run's betas, not Adam's defaults
    with pytest.raises(LatentVideoError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors", {}, {})
    (tmp_path / "bad.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(LatentVideoError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.safetensors", {}, {})


def test_save_checkpoint_round_trips_optimizer_state(tmp_path):
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        net(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    gen = torch.Generator().manual_seed(9)
    save_checkpoint(tmp_path / "ck.safetensors", {"net": net}, {"o": opt}, {"g": gen.get_state()}, {"step": 3})
    net2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=1.0)
    rng, meta = load_checkpoint(tmp_path / "ck.safetensors", {"net": net2}, {"o": opt2})
    assert meta["step"] == 3 and opt2.param_groups[0]["lr"] == 1e-2
    _assert_same_weights(net, net2)
    for s1, s2 in zip(opt.state_dict()["state"].values(), opt2.state_dict()["state"].values()):
        for k in s1:
            assert torch.equal(torch.as_tensor(s1[k]), torch.as_tensor(s2[k])), k
    assert torch.equal(rng["g"], gen.get_state())
    assert listing(tmp_path) == {"ck.safetensors"}


def test_resume_is_bit_exact(tmp_path, tiny_config):
    cfg = tiny_config(steps=6, checkpoint_every=3)
    a = train_gan(tmp_path / "a", cfg, **CPU)
    b = train_gan(tmp_path / "b", cfg, stop_after=3, **CPU)
    assert [r["step"] for r in _stats(b)] == [1, 2, 3]
    assert sorted(p.name for p in (b / "samples").iterdir()) == ["step_0000003.png"]
    train_gan(b, resume=True, **CPU)
    for name in ("generator", "critic"):
        _assert_same_weights(load_model(a / name), load_model(b / name))
    sa, sb = _stats(a), _stats(b)
    assert [r["step"] for r in sb] == list(range(1, 7))
    for ra, rb in zip(sa, sb):
        assert (ra["wdist"], ra["gp"], ra["loss_g"]) == (rb["wdist"], rb["gp"], rb["loss_g"])


def test_a_time_budget_stops_with_a_checkpoint_and_resumes(tmp_path, tiny_config):
    """--minutes: once the budget is spent, the run stops at the next check (every TIME_CHECK_EVERY steps)
    with a checkpoint, its planned steps unchanged, and resuming finishes it."""
    from latentvideo.training.gan import TIME_CHECK_EVERY

    run = train_gan(tmp_path / "r", tiny_config(steps=25, checkpoint_every=100, log_every=50), minutes=1e-9, **CPU)
    assert _stats(run)[-1]["step"] == TIME_CHECK_EVERY  # the first check: out of time
    assert (run / "samples" / f"step_{TIME_CHECK_EVERY:07d}.png").is_file()  # its checkpoint
    assert json.loads((run / "config.json").read_text())["steps"] == 25
    train_gan(run, resume=True, **CPU)
    assert _stats(run)[-1]["step"] == 25
    with pytest.raises(LatentVideoError, match="minutes"):
        train_gan(tmp_path / "bad", tiny_config(), minutes=0, **CPU)


def test_resume_is_not_a_fresh_start(tmp_path, tiny_config):
    """Guards the test above: a run restarted without its state ends elsewhere."""
    cfg = tiny_config(steps=6, checkpoint_every=3)
    a = train_gan(tmp_path / "a", cfg, **CPU)
    c = train_gan(tmp_path / "c", tiny_config(steps=3, seed=1), **CPU)
    assert not torch.equal(load_model(a / "critic").head.weight, load_model(c / "critic").head.weight)


def test_resume_with_more_steps_and_stats_truncation(tmp_path, tiny_config):
    run = train_gan(tmp_path / "run", tiny_config(steps=2, checkpoint_every=1), **CPU)
    with open(run / "stats.jsonl", "a") as f:  # a crash after step 2's checkpoint left more lines
        f.write(json.dumps({"step": 3, "wdist": 0.0}) + "\n" + '{"step": 4, "wd')
    train_gan(run, GANConfig(steps=4), resume=True, **CPU)
    assert [r["step"] for r in _stats(run)] == [1, 2, 3, 4]
    assert _stats(run)[2]["wdist"] != 0.0  # the stale step-3 line is gone
    meta = load_checkpoint(run / "checkpoint.safetensors", {}, {})[1]
    assert meta["step"] == 4 and meta["config"]["steps"] == 4
    assert meta["config"]["width"] == 4  # the saved config, not GANConfig()'s defaults


def test_truncate_stats(tmp_path):
    path = tmp_path / "stats.jsonl"
    path.write_text("".join(json.dumps({"step": s}) + "\n" for s in range(1, 6)) + '{"step": 6, "x"')
    truncate_stats(path, 3)
    assert path.read_text() == "".join(json.dumps({"step": s}) + "\n" for s in range(1, 4))
    truncate_stats(tmp_path / "missing.jsonl", 3)
    assert not (tmp_path / "missing.jsonl").exists()


def test_init_starts_a_run_from_a_trained_model(tmp_path, tiny_config):
    """--init: G, its EMA and C start as the given model's networks; the run then trains on from there."""
    from latentvideo.models import model_config
    from latentvideo.training.gan import build_generator, init_from

    base = train_gan(tmp_path / "base", tiny_config(steps=2), **CPU)
    cfg = tiny_config()
    G, g_args = build_generator(cfg, 32, 1)
    C = Critic(32, 1, cfg.width)
    init_from(str(base), G, C, model_config(G, **g_args), model_config(C, width=cfg.width, resolution=32, channels=1))
    _assert_same_weights(G, load_model(base / "generator"))
    _assert_same_weights(C, load_model(base / "critic"))

    run = train_gan(tmp_path / "ft", tiny_config(steps=1, init=str(base)), **CPU)
    assert json.loads((run / "config.json").read_text())["init"] == str(base)
    trained, start = load_model(run / "critic").state_dict(), load_model(base / "critic").state_dict()
    torch.manual_seed(0)
    fresh = Critic(32, 1, cfg.width).state_dict()  # a random critic
    lr = cfg.lr_c * cfg.n_critic * 1.5  # Adam moves a weight by about lr per step
    for k in trained:
        assert (trained[k] - start[k]).abs().max() <= lr, k
    assert any((trained[k] - fresh[k]).abs().max() > 10 * lr for k in trained)


def test_init_refuses_a_model_of_other_settings(tmp_path, tiny_config):
    base = train_gan(tmp_path / "base", tiny_config(steps=1), **CPU)
    with pytest.raises(LatentVideoError, match="differs from this run's in .*width"):
        train_gan(tmp_path / "ft", tiny_config(width=8, init=str(base)), **CPU)
    with pytest.raises(LatentVideoError, match="model directory not found"):
        train_gan(tmp_path / "ft", tiny_config(init=str(tmp_path / "nowhere")), **CPU)
    assert not (tmp_path / "ft").exists()  # nothing written


def test_train_refuses_to_overwrite_a_run(tmp_path, tiny_config):
    run = train_gan(tmp_path / "run", tiny_config(steps=1), **CPU)
    before = (run / "checkpoint.safetensors").read_bytes()
    with pytest.raises(LatentVideoError, match="already holds a run"):
        train_gan(run, tiny_config(steps=1), **CPU)
    assert (run / "checkpoint.safetensors").read_bytes() == before
    with pytest.raises(LatentVideoError, match="not a training run"):
        train_gan(tmp_path / "elsewhere", resume=True, **CPU)
    assert not (tmp_path / "elsewhere").exists()


def test_train_on_a_folder_of_rgb_images(tmp_path, rgb_folder):
    cfg = GANConfig(data=str(rgb_folder), steps=2, **TINY)
    run = train_gan(tmp_path / "run", cfg, **CPU)
    G = load_model(run / "generator")
    assert (G.channels, G.resolution) == (3, 32)
    assert G(torch.randn(2, 8)).shape == (2, 3, 32, 32)
    assert load_model(run / "critic").channels == 3
    with Image.open(run / "samples" / "step_0000002.png") as im:
        assert im.mode == "RGB"


def test_train_refuses_unsupported_resolution(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(2):
        write_png(folder / f"{i}.png", np.full((40, 40), 9 * i, np.uint8))
    with pytest.raises(LatentVideoError, match="40x40"):
        train_gan(tmp_path / "run", GANConfig(data=str(folder), steps=1, **TINY), **CPU)
    assert not (tmp_path / "run").exists()
    run = train_gan(tmp_path / "run", GANConfig(data=str(folder), resize=32, steps=1, **TINY), **CPU)
    assert load_model(run / "generator").resolution == 32


def test_ddp_two_processes_gloo(tmp_path, torchrun):
    cmd = [
        str(torchrun),
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "latentvideo.cli",
        "train",
        "gan",
        "--out",
        "ddp",
        "--steps",
        "3",
        "--batch-size",
        "8",
        "--width",
        "4",
        "--z-dim",
        "8",
        "--checkpoint-every",
        "3",
        "--device",
        "cpu",
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run = tmp_path / "ddp"
    assert (run / "checkpoint.safetensors").is_file()
    rng, meta = load_checkpoint(run / "checkpoint.safetensors", {}, {})
    assert meta["step"] == 3 and set(rng) == {"torch_0", "torch_1"}  # both ranks' RNG states saved
    assert not torch.equal(rng["torch_0"], rng["torch_1"])
    assert len(meta["data_rng"]) == 2 and meta["data_rng"][0] != meta["data_rng"][1]
    G = load_model(run / "generator")
    assert (G.z_dim, G.resolution, G.channels) == (8, 64, 1)
    assert G(torch.randn(1, 8)).shape == (1, 1, 64, 64)
    load_model(run / "critic")
    assert [r["step"] for r in _stats(run)] == [3]  # only rank 0 writes stats
    assert (run / "samples" / "step_0000003.png").is_file()


# ---------------------------------------------------------------- CLI


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _assert_clean_error(code: int, err: str) -> None:
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    assert "Traceback" not in err


TINY_ARGS = ["--batch-size", "4", "--width", "4", "--z-dim", "8", "--n-critic", "1", "--device", "cpu"]


def test_cli_train_then_resume(tmp_path, seq32, capsys):
    run = tmp_path / "run"
    code, out, err = _cli(capsys, "train", "gan", "--out", run, "--data", seq32, "--steps", "2", *TINY_ARGS)
    assert code == 0, err
    assert str(run) in out
    assert [r["step"] for r in _stats(run)] == [2]
    code, out, err = _cli(capsys, "train", "gan", "--resume", run, "--steps", "4")
    assert code == 0, err
    assert _stats(run)[-1]["step"] == 4
    assert load_checkpoint(run / "checkpoint.safetensors", {}, {})[1]["step"] == 4
    assert load_model(run / "generator").z_dim == 8  # the run kept its own settings
    code, out, err = _cli(capsys, "train", "gan", "--resume", run)  # already at its planned 4 steps
    assert code == 0, err
    assert _stats(run)[-1]["step"] == 4


def test_cli_smoothing_options_set_up_a_new_run(tmp_path, seq32, capsys):
    run = tmp_path / "run"
    args = ["--data", seq32, "--steps", "4", "--pl-weight", "2", "--pl-every", "2", "--mapping-layers", "2"]
    code, _, err = _cli(capsys, "train", "gan", "--out", run, *args, *TINY_ARGS)
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert (config["pl_weight"], config["pl_every"], config["mapping_layers"]) == (2.0, 2, 2)
    assert load_model(run / "generator").mapping_layers == 2
    assert [r["step"] for r in _stats(run)] == [4] and _stats(run)[-1]["pl_mean"] > 0  # two path-length steps
    code, _, err = _cli(capsys, "train", "gan", "--resume", run, "--pl-weight", "1")
    _assert_clean_error(code, err)
    assert "set up a new run" in err
    code, _, err = _cli(capsys, "train", "gan", "--resume", run, "--init", run)
    _assert_clean_error(code, err)
    assert "set up a new run" in err
    code, _, err = _cli(capsys, "train", "gan", "--out", tmp_path / "bad", "--data", seq32, "--pl-weight", "-1")
    _assert_clean_error(code, err)
    assert not (tmp_path / "bad").exists()


def test_cli_init_takes_the_models_architecture(tmp_path, seq32, capsys):
    base = tmp_path / "base"
    code, _, err = _cli(capsys, "train", "gan", "--out", base, "--data", seq32, "--steps", "1", *TINY_ARGS)
    assert code == 0, err
    run, quick = tmp_path / "ft", ["--batch-size", "4", "--n-critic", "1", "--device", "cpu", "--steps", "1"]
    code, _, err = _cli(capsys, "train", "gan", "--out", run, "--data", seq32, "--init", base, *quick)
    assert code == 0, err
    config = json.loads((run / "config.json").read_text())
    assert (config["width"], config["z_dim"], config["init"]) == (4, 8, str(base))  # not the defaults 32, 256
    bad = ["--out", tmp_path / "bad", "--data", seq32, "--init", base, "--width", "8"]
    code, _, err = _cli(capsys, "train", "gan", *bad)
    _assert_clean_error(code, err)
    assert "differs from this run's in width" in err and not (tmp_path / "bad").exists()


def _wrong_dtype(tmp_path: Path) -> list[str]:
    np.save(tmp_path / "float.npy", np.zeros((2, 2, 32, 32), np.float32))
    return ["--data", str(tmp_path / "float.npy")]


def _mixed_folder(tmp_path: Path) -> list[str]:
    folder = tmp_path / "mixed"
    folder.mkdir()
    write_png(folder / "a.png", np.zeros((32, 32), np.uint8))
    write_png(folder / "b.png", np.zeros((48, 40), np.uint8))
    return ["--data", str(folder)]


def _not_a_run(tmp_path: Path) -> list[str]:
    (tmp_path / "somedir").mkdir()
    (tmp_path / "somedir" / "notes.txt").write_text("hello")
    return ["--resume", str(tmp_path / "somedir")]


@pytest.mark.parametrize(
    "make_args",
    [
        lambda p: ["--data", str(p / "missing_data.npy")],
        lambda p: ["--data", str(p / "missing_folder") + "/"],
        lambda p: ["--data", "nope"],
        _wrong_dtype,
        _mixed_folder,
        _not_a_run,
        lambda p: _not_a_run(p) + ["--steps", "5"],
        lambda p: ["--resume", str(p / "never_created")],
        lambda p: ["--minutes", "0"],
        lambda p: ["--minutes", "nan"],
        lambda p: [],  # neither --out nor --resume
    ],
)
def test_cli_train_bad_inputs(tmp_path, capsys, make_args):
    extra = make_args(tmp_path)
    before = listing(tmp_path)
    out = [] if any(a == "--resume" for a in extra) or not extra else ["--out", str(tmp_path / "run")]
    code, _, err = _cli(capsys, "train", "gan", *out, *extra, "--steps", "1", *TINY_ARGS)
    _assert_clean_error(code, err)
    assert listing(tmp_path) == before  # nothing written


def test_cli_train_both_out_and_resume(tmp_path, capsys):
    code, _, err = _cli(capsys, "train", "gan", "--out", tmp_path / "a", "--resume", tmp_path / "b")
    _assert_clean_error(code, err)
    assert listing(tmp_path) == set()


def test_cli_train_existing_run_refused(tmp_path, seq32, capsys):
    run = tmp_path / "run"
    assert _cli(capsys, "train", "gan", "--out", run, "--data", seq32, "--steps", "1", *TINY_ARGS)[0] == 0
    before = {p: (run / p).stat().st_mtime_ns for p in listing(run)}
    code, _, err = _cli(capsys, "train", "gan", "--out", run, "--data", seq32, "--steps", "1", *TINY_ARGS)
    _assert_clean_error(code, err)
    assert {p: (run / p).stat().st_mtime_ns for p in listing(run)} == before


def test_cli_mixed_folder_works_with_resize(tmp_path, capsys):
    data = _mixed_folder(tmp_path)
    run = tmp_path / "run"
    code, _, err = _cli(capsys, "train", "gan", "--out", run, *data, "--resize", "32", "--steps", "1", *TINY_ARGS)
    assert code == 0, err
    G = load_model(run / "generator")
    assert (G.resolution, G.channels) == (32, 1)


def test_cli_errors_in_a_real_process(tmp_path):
    """The installed entry point: exit code 2, one line, no traceback, nothing written."""
    proc = subprocess.run(
        [sys.executable, "-m", "latentvideo.cli", "train", "gan", "--out", "run", "--data", "nope", "--steps", "1"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    _assert_clean_error(proc.returncode, proc.stderr)
    assert "nope" in proc.stderr
    assert listing(tmp_path) == set()


def test_cli_help():
    script = Path(sys.executable).with_name("latentvideo")  # the installed console script
    entry = [str(script)] if script.exists() else [sys.executable, "-m", "latentvideo.cli"]
    top = subprocess.run([*entry, "--help"], env=_env(), capture_output=True, text=True, timeout=120)
    assert top.returncode == 0, top.stderr
    assert "train" in top.stdout and "dataset" in top.stdout
    sub = subprocess.run(
        [sys.executable, "-m", "latentvideo.cli", "train", "gan", "--help"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sub.returncode == 0, sub.stderr
    assert "Example" in sub.stdout and "--resume" in sub.stdout


def test_cli_help_lists_subcommands(capsys):
    code, out, _ = _cli(capsys, "train", "--help")
    assert code == 0 and "gan" in out
    code, out, _ = _cli(capsys, "dataset", "--help")
    assert code == 0 and "moving-mnist" in out
