"""The speed knobs resolved for a device: mixed precision, data on the device, channels_last,
torch.compile, fused Adam, cuDNN autotuning.

``None`` / "auto" in the config picks for the device: everything but compile on for CUDA (bf16 on
GPUs with bf16 tensor cores, fp16 with a GradScaler on Volta / Turing); on a CPU with bf16 matrix
units (AMX, ``amx_bf16`` in /proc/cpuinfo) bf16 autocast + channels_last; plain fp32 eager on
other CPUs and MPS. ``speed_profile="cuda"`` picks as for a CUDA GPU on any device, so the GPU
path's settings run (slowly) on a CPU in tests.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

from .config import TrainConfig

AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
# the compute capability the "cuda" speed profile assumes: an Ampere-or-newer GPU (A100, L4, H100)
PROFILE_CUDA_CAPABILITY = 8


@dataclass
class SpeedSettings:
    """The speed knobs resolved for one device."""

    amp_dtype: torch.dtype | None
    data_on_device: bool
    channels_last: bool
    compile: bool
    compile_mode: str
    fused_adam: bool
    cudnn_benchmark: bool


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux); empty elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux, else what ``platform`` knows)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def cpu_has_bf16_units() -> bool:
    """True on CPUs with AMX bf16 tile units (Intel Sapphire Rapids and newer): there oneDNN runs
    bf16 convolutions in hardware, ~2.5x faster than fp32; elsewhere bf16 is emulated (~21x slower
    measured on an AVX2 AMD EPYC, benchmarks/README.md)."""
    return "amx_bf16" in cpu_flags()


def cuda_amp(major: int) -> str:
    """The mixed precision of a CUDA GPU of compute capability ``major``.x: bf16 with bf16 tensor
    cores (Ampere and newer: A100, L4, H100), fp16 with a GradScaler on Volta / Turing (V100, Colab's
    T4: bf16 there is emulated, far slower), off on older GPUs."""
    return "bf16" if major >= 8 else "fp16" if major >= 7 else "off"


def auto_amp(device: torch.device) -> str:
    """The mixed precision a device runs fastest and correctly: ``cuda_amp`` of a GPU's capability,
    off on MPS; on a CPU bf16 where it has AMX bf16 units (``cpu_has_bf16_units``), off elsewhere."""
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16_units() else "off"
    if device.type != "cuda":
        return "off"
    major, _ = torch.cuda.get_device_capability(device)
    return cuda_amp(major)


def resolve_speed(cfg: TrainConfig, device: torch.device) -> SpeedSettings:
    """Fill in the "auto" knobs: everything but compile on for CUDA (and for the "cuda" speed
    profile on any device); bf16 + channels_last on an AMX CPU (measured 2.6x there); plain fp32
    eager on other CPUs and MPS. (TrainConfig has checked every value.)"""
    as_cuda = device.type == "cuda" or cfg.speed_profile == "cuda"
    amx = device.type == "cpu" and cpu_has_bf16_units()
    if cfg.amp != "auto":
        amp = cfg.amp
    elif as_cuda and device.type != "cuda":
        amp = cuda_amp(PROFILE_CUDA_CAPABILITY)
    else:
        amp = auto_amp(device)
    return SpeedSettings(
        amp_dtype=AMP_DTYPES[amp],
        data_on_device=True if cfg.data_on_device is None else cfg.data_on_device,
        channels_last=(as_cuda or amx) if cfg.channels_last is None else cfg.channels_last,
        compile=False if cfg.compile is None else cfg.compile,
        compile_mode=cfg.compile_mode,
        fused_adam=as_cuda if cfg.fused_adam is None else cfg.fused_adam,
        cudnn_benchmark=as_cuda if cfg.cudnn_benchmark is None else cfg.cudnn_benchmark,
    )
