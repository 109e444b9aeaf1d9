"""The CUDA fast path's settings, run on the CPU: each one trains, and a run stopped and resumed
with it is bit-identical to one never stopped.

No session of this project has had a GPU, so what the CUDA default picks (data held on the
device, channels_last, fused Adam, bf16 autocast or fp16 with a GradScaler) is run here on the
CPU: ``speed_profile="cuda"`` resolves the knobs as for a CUDA GPU (test_fast_path checks that
each knob computes the same numbers as the plain path; this file checks that resuming stays
exact with each). torch.compile (Inductor's C++ kernels, needs a C compiler) is the slow one.
cuDNN autotuning has no CPU counterpart: it is resolved and recorded, and acts on CUDA only.
"""

from __future__ import annotations

import shutil
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from dcgan_ref import speed
from dcgan_ref.config import TrainConfig
from dcgan_ref.train import resolve_speed, setup, train

# 64 images / batch 16 = 4 steps per epoch: stopping at step 3 is mid-epoch, 6 crosses an epoch end.
# The instance noise anneals over a fixed 8 steps (by default it anneals over the whole run, which
# --max-steps shortens: the first part of a split run would be another schedule).
TINY = dict(dataset="synthetic", image_size=32, ngf=8, ndf=8, batch_size=16, synthetic_size=64, epochs=2,
            progress=False, log_every=2, device="cpu", num_workers=0, ema_decay=0.9, instance_noise=0.1,
            noise_anneal_steps=8)  # fmt: skip
PLAIN = dict(amp="off", data_on_device=False, channels_last=False, fused_adam=False, cudnn_benchmark=False)

SETTINGS = {
    "plain (DataLoader, fp32, for-each Adam)": PLAIN,
    "data held on the device": {**PLAIN, "data_on_device": True},
    "channels_last": {**PLAIN, "channels_last": True},
    "fused Adam": {**PLAIN, "fused_adam": True},
    "bf16 autocast": {**PLAIN, "amp": "bf16"},
    "fp16 autocast + GradScaler('cpu')": {**PLAIN, "amp": "fp16"},
    "the CUDA default (Ampere+: bf16)": {"speed_profile": "cuda"},
    "the CUDA default of a T4 (fp16 + scaler)": {"speed_profile": "cuda", "amp": "fp16"},
}


def checkpoint(out: Path) -> dict:
    return torch.load(out / "checkpoints" / "last.pt", weights_only=True)


def assert_identical(a: dict, b: dict, what: str) -> None:
    """Two checkpoints hold the same run: every tensor and number equal, bit for bit."""

    def walk(x, y, where: str) -> None:
        if isinstance(x, torch.Tensor):
            assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y), f"{what}: {where} differs"
        elif isinstance(x, dict):
            assert set(x) == set(y), f"{what}: {where} keys {sorted(map(str, x))} vs {sorted(map(str, y))}"
            for k in x:
                walk(x[k], y[k], f"{where}.{k}")
        elif isinstance(x, list | tuple):
            assert len(x) == len(y), f"{what}: {where} length"
            for i, (u, v) in enumerate(zip(x, y, strict=True)):
                walk(u, v, f"{where}[{i}]")
        else:
            assert x == y, f"{what}: {where} = {x!r} vs {y!r}"

    assert set(a) == set(b), f"{what}: the checkpoints hold {sorted(a)} and {sorted(b)}"
    for key in ("G", "D", "opt_G", "opt_D", "scaler", "noise_gen", "epoch_sums", "history", "epoch_rows", "G_ema",
                "step", "epoch", "step_in_epoch"):  # fmt: skip
        if key in a:  # G_ema: with --ema-decay only
            walk(a[key], b[key], key)


def stopped_and_resumed_equals_straight(tmp_path: Path, cfg: TrainConfig, total: int, stop_at: int, what: str) -> dict:
    train(replace(cfg, out=str(tmp_path / "straight"), max_steps=total))
    train(replace(cfg, out=str(tmp_path / "resumed"), max_steps=stop_at))
    train(replace(cfg, out=str(tmp_path / "resumed"), max_steps=total, resume=True))
    straight, resumed = checkpoint(tmp_path / "straight"), checkpoint(tmp_path / "resumed")
    assert straight["step"] == total
    assert_identical(straight, resumed, what)
    return straight


@pytest.mark.parametrize("name", list(SETTINGS))
def test_each_speed_setting_trains_and_resumes_bit_exactly(tmp_path, name):
    cfg = TrainConfig(**TINY, **SETTINGS[name])
    run = setup(cfg)
    s = run.speed
    # the setting is in force, not just recorded
    assert (run.batches.images is not None) == s.data_on_device
    assert run.G.main[0].weight.is_contiguous(memory_format=torch.channels_last) == s.channels_last
    assert all(g["fused"] for g in run.opt_G.param_groups) == s.fused_adam
    assert (run.scaler is not None) == (s.amp_dtype == torch.float16)
    if run.scaler is not None:
        assert run.scaler._device == "cpu", "fp16 on the CPU: torch.amp.GradScaler('cpu')"
    state = stopped_and_resumed_equals_straight(tmp_path, cfg, total=6, stop_at=3, what=name)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in state["history"])
    if s.amp_dtype == torch.float16:
        assert state["scaler"]["scale"] > 0, "the GradScaler's state is checkpointed"


def test_the_cuda_profile_is_what_a_cuda_gpu_gets(monkeypatch):
    # "cuda" on the CPU resolves every auto knob exactly as a CUDA GPU with bf16 tensor cores does
    # (resolving needs no GPU: only its capability); compile stays what the CUDA default says.
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    on_gpu = resolve_speed(TrainConfig(), torch.device("cuda"))
    on_cpu = resolve_speed(TrainConfig(speed_profile="cuda"), torch.device("cpu"))
    assert asdict(on_cpu) == asdict(on_gpu)
    assert on_cpu.amp_dtype == torch.bfloat16 and on_cpu.data_on_device and on_cpu.channels_last
    assert on_cpu.fused_adam and on_cpu.cudnn_benchmark
    monkeypatch.setattr(speed, "cpu_has_bf16_units", lambda: False)
    plain = resolve_speed(TrainConfig(), torch.device("cpu"))
    assert (plain.amp_dtype, plain.channels_last, plain.fused_adam) == (None, False, False), "device: the CPU's own"
    assert resolve_speed(TrainConfig(speed_profile="cuda", amp="off"), torch.device("cpu")).amp_dtype is None


def test_the_speed_profile_is_a_flag_and_is_recorded(tmp_path):
    from dcgan_ref.cli import _train_config, build_parser

    args = build_parser().parse_args(["train", "--speed-profile", "cuda", "--dataset", "synthetic"])
    assert _train_config(args).speed_profile == "cuda"
    with pytest.raises(ValueError, match="speed_profile must be one of device, cuda"):
        TrainConfig(speed_profile="tpu")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on the CPU needs a C compiler")  # fmt: skip
def test_compile_with_the_cuda_default_resumes_bit_exactly(tmp_path):
    # torch.compile's Inductor kernels on the CPU (~1 min of compiling on 2 cores): every train()
    # compiles afresh, so 4 steps split 2 + 2 keep this to three compilations.
    cfg = TrainConfig(**{**TINY, "ema_decay": None}, speed_profile="cuda", compile=True)
    stopped_and_resumed_equals_straight(tmp_path, cfg, total=4, stop_at=2, what="compile + the CUDA default")
