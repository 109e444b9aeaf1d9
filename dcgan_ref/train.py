"""The DCGAN training loop: one config, a D step then a G step per batch, artifacts per epoch.

Per batch (as pytorch/examples' dcgan): fake = G(z); D step on real (target 1, or 1 - smoothing)
and on fake.detach() (target 0); G step on D(fake) with target 1, the non-saturating loss.
Adam(lr 2e-4, betas (0.5, 0.999)) for both (``lr_g`` / ``lr_d`` apart if asked). Two model
families: the DCGAN of models.py and the Keras CIFAR GAN of keras_gan.py (``arch``).

At the start: ``config.json`` (the resolved config, speed settings, device, versions). Every
epoch: a checkpoint (resumable exactly; fsynced, atomic), then ``metrics.csv`` (never ahead of
the checkpoint), a sample grid from one fixed noise batch, optionally FID. At the end:
generator.pt, losses.png (every step's losses) and progress.gif. Ctrl-C (SIGINT) or SIGTERM stops
at the next step boundary with a checkpoint; a second Ctrl-C stops at once. A run that fails
before its first checkpoint removes what it wrote.

Speed knobs (AMP, data on the device, channels_last, torch.compile, fused Adam) sit in the config;
``None``/"auto" picks for the device: everything on for CUDA; on a CPU with bf16 matrix units
(AMX, ``amx_bf16`` in /proc/cpuinfo) bf16 autocast + channels_last, plain fp32 eager on other CPUs
(see resolve_speed).

Under ``torchrun --nproc_per_node=N`` the same loop runs data-parallel (see distributed.py):
each process takes 1/N of every global batch, gradients are averaged by DistributedDataParallel,
BatchNorm uses global-batch statistics, and rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import math
import platform
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import __version__, distributed, losses
from .checkpoint import CheckpointError, atomic_write, load_checkpoint, load_file, save_checkpoint, save_generator
from .data import DATASETS, gpu_batch_transform, make_dataset, native_nc, uint8_images
from .keras_gan import KERAS_IMAGE_SIZE, KerasDiscriminator, KerasGenerator
from .models import Discriminator, Generator, count_parameters, weights_init

ARCHS = ("dcgan", "keras-cifar")
AMP_MODES = ("auto", "off", "bf16", "fp16")


@dataclass
class TrainConfig:
    """Everything a run depends on. ``None`` / "auto" = pick for the device (or the data set).

    Invalid combinations are refused here with a ``ValueError`` naming the setting.
    """

    dataset: str = "cifar10"  # cifar10 | mnist | digits | folder | synthetic (data.DATASETS)
    data_root: str = "data"
    image_size: int = 64
    epochs: int = 25
    batch_size: int = 128
    arch: str = "dcgan"  # dcgan (models.py) | keras-cifar (keras_gan.py: Dense projection, dropout D; 32x32)
    nz: int = 100
    ngf: int | None = None  # None: 64 for dcgan, 128 for keras-cifar
    ndf: int = 64
    nc: int | None = None  # image channels; None: the data set's own (1 for mnist and digits, else 3)
    dropout: float | None = None  # keras-cifar's D only; None: 0.4
    lr: float = 2e-4  # both networks, unless lr_g / lr_d say otherwise
    lr_g: float | None = None  # None: lr
    lr_d: float | None = None  # None: lr
    beta1: float = 0.5
    beta2: float = 0.999
    label_smoothing: float = 0.0  # one-sided: real targets become 1 - label_smoothing
    instance_noise: float = 0.0  # std of noise added to D's inputs at step 0...
    noise_anneal_steps: int | None = None  # ...annealed linearly to 0 over this many steps (None: whole run)
    ema_decay: float | None = None  # exponential moving average of G's weights (e.g. 0.999); None: off
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps
    out: str = "runs/dcgan"
    resume: bool = False
    max_steps: int | None = None  # stop after this many steps in total (smoke runs)
    synthetic_size: int = 10000
    num_workers: int = 2  # DataLoader workers (only when the data is not held as one tensor)
    log_every: int = 50  # steps between loss read-backs (the only host syncs in the loop)
    checkpoint_every: int = 0  # extra checkpoints every N steps; 0: at each epoch's end only
    n_samples: int = 64
    fid_every: int = 0  # FID every N epochs (a column of metrics.csv); 0: never
    fid_n: int = 10000  # generated images (and real ones, at most the data set) per FID during training
    fid_backend: str = "auto"  # auto | pytorch-fid | fid-helper (see fid.py)
    tensorboard: bool = False  # also log to OUT/tensorboard (torch.utils.tensorboard)
    progress: bool = True
    # speed knobs
    amp: str = "auto"  # auto | off | bf16 | fp16
    data_on_device: bool | None = None
    channels_last: bool | None = None
    compile: bool | None = None
    compile_mode: str = "default"  # torch.compile's mode; "reduce-overhead" adds CUDA graphs (see COMPILE_MODES)
    fused_adam: bool | None = None
    cudnn_benchmark: bool | None = None  # let cuDNN time its convolution algorithms once (fixed shapes)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def bad(msg: str) -> None:
            raise ValueError(msg)

        if self.arch not in ARCHS:
            bad(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.dataset not in DATASETS:
            bad(f"unknown dataset {self.dataset!r}: choose {', '.join(DATASETS)}")
        if self.nc is None:
            self.nc = native_nc(self.dataset)
        if self.nc not in (1, 3):
            bad(f"nc must be 1 (grey) or 3 (RGB), got {self.nc}")
        if self.ngf is None:
            self.ngf = 128 if self.arch == "keras-cifar" else 64
        if self.arch == "keras-cifar":
            if self.image_size != KERAS_IMAGE_SIZE:
                bad(f"--arch keras-cifar is 32x32 only: use --image-size 32 (got {self.image_size})")
            if self.dropout is None:
                self.dropout = 0.4
        elif self.dropout is not None:
            bad("--dropout applies to --arch keras-cifar only (the DCGAN discriminator has no dropout)")
        if self.lr_g is None:
            self.lr_g = self.lr
        if self.lr_d is None:
            self.lr_d = self.lr
        for name in ("lr", "lr_g", "lr_d"):
            if not getattr(self, name) > 0:
                bad(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                bad(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.ema_decay is not None and not 0 < self.ema_decay < 1:
            bad(f"ema_decay must be in (0, 1), e.g. 0.999, got {self.ema_decay}")
        if self.amp not in AMP_MODES:
            bad(f"amp must be one of {', '.join(AMP_MODES)}, got {self.amp!r}")
        if self.compile_mode not in COMPILE_MODES:
            bad(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {self.compile_mode!r}")
        if self.compile_mode != "default" and not self.compile:
            bad(f"--compile-mode {self.compile_mode} has no effect without --compile: add --compile")
        if self.noise_anneal_steps is not None and self.instance_noise <= 0:
            bad("--noise-anneal-steps needs --instance-noise > 0 (there is no noise to anneal)")
        if self.max_steps is not None and self.max_steps <= 0:
            bad(f"max_steps must be a positive integer, got {self.max_steps}")
        for name in ("epochs", "batch_size", "nz", "ngf", "ndf", "log_every", "n_samples", "fid_n", "synthetic_size"):
            if getattr(self, name) <= 0:
                bad(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("checkpoint_every", "fid_every", "num_workers"):
            if getattr(self, name) < 0:
                bad(f"{name} must be >= 0, got {getattr(self, name)}")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# On --resume: settings that define the run must match the checkpoint (else its weights, batch
# order or noise are another run's); the others may change and are applied (and said).
DEFINING = ("arch", "dataset", "image_size", "nz", "ngf", "ndf", "nc", "dropout", "seed", "batch_size",
            "synthetic_size", "ema_decay")  # fmt: skip
NOT_REPORTED = ("resume", "progress", "out", "extra", "lr")  # lr: reported as lr_g and lr_d


# torch.compile's modes. The CUDA-graph ones ("reduce-overhead", "max-autotune") replay each
# compiled forward and backward as one graph launch: at batch 128 a DCGAN step is ~400 small
# kernels, so on a fast GPU the launches, not the arithmetic, can set the pace. On a CPU they act
# as "default" / "max-autotune-no-cudagraphs".
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA if there is a GPU, else Apple's MPS, else the CPU; or the device named."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA GPU: use --device cpu or auto")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("--device mps asked for, but MPS is not available: use --device cpu or auto")
    return device


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


def cpu_has_bf16_units() -> bool:
    """True on CPUs with AMX bf16 tile units (Intel Sapphire Rapids and newer): there oneDNN runs
    bf16 convolutions in hardware, ~2.5x faster than fp32; elsewhere bf16 is emulated (~21x slower
    measured on an AVX2 AMD EPYC, benchmarks/README.md)."""
    return "amx_bf16" in cpu_flags()


def auto_amp(device: torch.device) -> str:
    """The mixed precision a device runs fastest and correctly: bf16 on GPUs with bf16 tensor cores
    (Ampere and newer: A100, L4, H100), fp16 with a GradScaler on Volta / Turing (V100, Colab's T4:
    bf16 there is emulated, far slower), off on older GPUs and MPS; on a CPU bf16 where it has AMX
    bf16 units (``cpu_has_bf16_units``), off elsewhere."""
    if device.type == "cpu":
        return "bf16" if cpu_has_bf16_units() else "off"
    if device.type != "cuda":
        return "off"
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16" if major >= 7 else "off"


def resolve_speed(cfg: TrainConfig, device: torch.device) -> SpeedSettings:
    """Fill in the "auto" knobs: everything on for CUDA; bf16 + channels_last on an AMX CPU
    (measured 2.6x there); plain fp32 eager on other CPUs and MPS."""
    cuda = device.type == "cuda"
    amx = device.type == "cpu" and cpu_has_bf16_units()
    amp = auto_amp(device) if cfg.amp == "auto" else cfg.amp
    dtypes = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in dtypes:
        raise ValueError(f"amp must be auto, off, bf16 or fp16, got {cfg.amp!r}")
    if cfg.compile_mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {cfg.compile_mode!r}")
    return SpeedSettings(
        amp_dtype=dtypes[amp],
        data_on_device=True if cfg.data_on_device is None else cfg.data_on_device,
        channels_last=(cuda or amx) if cfg.channels_last is None else cfg.channels_last,
        compile=False if cfg.compile is None else cfg.compile,
        compile_mode=cfg.compile_mode,
        fused_adam=cuda if cfg.fused_adam is None else cfg.fused_adam,
        cudnn_benchmark=cuda if cfg.cudnn_benchmark is None else cfg.cudnn_benchmark,
    )


def build_models(cfg: TrainConfig, device: torch.device) -> tuple[nn.Module, nn.Module]:
    """G and D (logits), in that order from the current RNG state: the DCGAN with its N(0, 0.02)
    init, or the Keras-CIFAR GAN with Keras' default init (``cfg.arch``)."""
    if cfg.arch == "keras-cifar":
        G = KerasGenerator(cfg.nz, cfg.ngf, cfg.nc, cfg.image_size)
        D = KerasDiscriminator(cfg.nc, cfg.ndf, cfg.image_size, dropout=cfg.dropout)
        return G.to(device), D.to(device)
    G = Generator(cfg.nz, cfg.ngf, cfg.nc, cfg.image_size)
    G.apply(weights_init)
    D = Discriminator(cfg.nc, cfg.ndf, cfg.image_size)
    D.apply(weights_init)
    return G.to(device), D.to(device)


def make_optimizers(
    G: nn.Module,
    D: nn.Module,
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    fused: bool = False,
    lr_d: float | None = None,
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for each network (``lr`` for G, ``lr_d`` for D, default the same). beta1 = 0.5 (not
    0.9): momentum that remembers less of a moving target."""
    kw = {"fused": True} if fused else {}
    return (
        torch.optim.Adam(G.parameters(), lr=lr, betas=betas, **kw),
        torch.optim.Adam(D.parameters(), lr=lr if lr_d is None else lr_d, betas=betas, **kw),
    )


def _wrappers(model: nn.Module) -> list[nn.Module]:
    """``model`` and the modules inside torch.compile's / DistributedDataParallel's wrappers."""
    chain = [model]
    for attr in ("_orig_mod", "module", "_orig_mod"):  # compile(DDP(m)), DDP(m), compile(m)
        inner = getattr(chain[-1], attr, None)
        if isinstance(inner, nn.Module):
            chain.append(inner)
    return chain


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside torch.compile's and DistributedDataParallel's wrappers."""
    return _wrappers(model)[-1]


def _returns_logits(D: nn.Module) -> bool:
    return bool(getattr(_unwrap(D), "returns_logits", False))


def _autocast(device_type: str, amp_dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=amp_dtype)


def _optimize(loss: torch.Tensor, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None) -> None:
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)


def discriminator_step(
    D: nn.Module,
    opt_D: torch.optim.Optimizer,
    real: torch.Tensor,
    fake: torch.Tensor,
    label_smoothing: float = 0.0,
    noise_sigma: float = 0.0,
    noise_generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One update of D on a real batch and a (detached) fake batch, each through D separately so
    BatchNorm sees real and fake statistics apart. Returns (loss, logs); logs stay on the device."""
    opt_D.zero_grad(set_to_none=True)
    with _autocast(real.device.type, amp_dtype):
        out_real = D(losses.add_instance_noise(real, noise_sigma, noise_generator))
        out_fake = D(losses.add_instance_noise(fake, noise_sigma, noise_generator))
        if _returns_logits(D):
            loss = losses.discriminator_loss_with_logits(out_real, out_fake, label_smoothing)
        else:
            loss = losses.discriminator_loss(out_real, out_fake, label_smoothing)
    _optimize(loss, opt_D, scaler)
    p_real, p_fake = _probs(D, out_real), _probs(D, out_fake)
    logs = {
        "loss_D": loss.detach(),
        "D_x": p_real.mean(),
        "D_G_z1": p_fake.mean(),
        "acc_real": (p_real > 0.5).float().mean(),
        "acc_fake": (p_fake < 0.5).float().mean(),
    }
    return loss, logs


def generator_step(
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    fake: torch.Tensor,
    noise_sigma: float = 0.0,
    noise_generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One update of G: make D call the fakes real (target 1; -log D(G(z)), non-saturating).

    The gradient flows through D to G, but not into D's weights: only opt_G steps here, and the
    next D step would zero them anyway. Same update of G, less backward work.
    """
    opt_G.zero_grad(set_to_none=True)
    with _frozen(D):
        with _autocast(fake.device.type, amp_dtype):
            out = D(losses.add_instance_noise(fake, noise_sigma, noise_generator))
            loss = losses.generator_loss_with_logits(out) if _returns_logits(D) else losses.generator_loss(out)
        _optimize(loss, opt_G, scaler)
    return loss, {"loss_G": loss.detach(), "D_G_z2": _probs(D, out).mean()}


@contextlib.contextmanager
def _frozen(D: nn.Module) -> Iterator[None]:
    """D's parameters stop requiring gradients for a while: backward then skips D's weight
    gradients (~10% of a step on the CPU); under DistributedDataParallel, no gradient sync for D."""
    params = [p for p in D.parameters() if p.requires_grad]
    ddp = next((m for m in _wrappers(D) if isinstance(m, DistributedDataParallel)), None)
    for p in params:
        p.requires_grad_(False)
    try:
        with ddp.no_sync() if ddp is not None else contextlib.nullcontext():
            yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _probs(D: nn.Module, out: torch.Tensor) -> torch.Tensor:
    out = out.detach().float()
    return torch.sigmoid(out) if _returns_logits(D) else out


def train_step(
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    real: torch.Tensor,
    z: torch.Tensor,
    label_smoothing: float = 0.0,
    noise_sigma: float = 0.0,
    noise_generator: torch.Generator | None = None,
    amp_dtype: torch.dtype | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, torch.Tensor]:
    """fake = G(z), then a D step (on fake.detach(): G gets no gradient from it), then a G step."""
    with _autocast(real.device.type, amp_dtype):
        fake = G(z)
    _, d_logs = discriminator_step(
        D, opt_D, real, fake.detach(), label_smoothing, noise_sigma, noise_generator, amp_dtype, scaler
    )
    _, g_logs = generator_step(D, opt_G, fake, noise_sigma, noise_generator, amp_dtype, scaler)
    if scaler is not None:
        scaler.update()
    return {**d_logs, **g_logs}


class EMA:
    """An exponential moving average of G's weights (StudioGAN's and StyleGAN's trick): after each
    G step, w_ema <- d * w_ema + (1 - d) * w, with d = min(decay, (1 + t) / (10 + t)) at update t
    so the average does not drag the untrained initial weights along in a short run (TensorFlow's
    ``ExponentialMovingAverage(num_updates)`` warm-up). Buffers (BatchNorm's running statistics)
    are copied. Samples, generator.pt and FID come from ``model`` when an EMA is on."""

    def __init__(self, G: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(_unwrap(G)).requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        src = _unwrap(G)
        torch._foreach_lerp_(list(self.model.parameters()), list(src.parameters()), 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), src.buffers(), strict=True):
            b_ema.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


@torch.no_grad()
def sample_images(G: nn.Module, z: torch.Tensor, batchnorm: str = "batch") -> torch.Tensor:
    """G(z) as float in [-1, 1] without touching G.

    ``batchnorm="batch"`` normalises with the statistics of this batch (what pytorch/examples
    shows during training: running averages lag behind a G that changes every step);
    ``"running"`` uses the running averages (eval mode). Works on a copy, so G's running
    statistics, and hence a resumed run, are unaffected.
    """
    g = copy.deepcopy(_unwrap(G))
    g.train(batchnorm == "batch")
    return g(z).float()


METRIC_KEYS = ("loss_D", "loss_G", "D_x", "D_G_z1", "D_G_z2", "acc_real", "acc_fake")


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops at a step boundary."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _Batches:
    """This rank's batches for one epoch in a seeded order, from position ``start`` (mid-epoch resume).

    Either the whole data set as one uint8 tensor on the device (indexed, resized and normalised
    there), or a DataLoader over the canonical PIL transforms. ``cfg.batch_size`` is the global
    batch: with ``world_size`` ranks, rank r gets rows [r * b, (r + 1) * b) of every global batch
    (b = batch_size / world_size), so together the ranks see exactly the batches one process would.
    """

    def __init__(
        self,
        dataset: Dataset,
        cfg: TrainConfig,
        device: torch.device,
        on_device: bool,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.dataset, self.cfg, self.device = dataset, cfg, device
        self.rank, self.world_size = rank, world_size
        if cfg.batch_size % world_size:
            raise ValueError(f"--batch-size {cfg.batch_size} does not split evenly over {world_size} processes")
        self.local_batch = cfg.batch_size // world_size
        images = uint8_images(dataset) if on_device else None
        self.images = images.to(device) if images is not None else None
        self.n = len(dataset)
        self.steps_per_epoch = self.n // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"--batch-size {cfg.batch_size} is larger than the data set ({self.n} images)")

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        bs, lb = self.cfg.batch_size, self.local_batch
        perm = self.order(epoch)[: self.steps_per_epoch * bs]  # drop the ragged last batch
        mine = perm.view(self.steps_per_epoch, bs)[:, self.rank * lb : (self.rank + 1) * lb]
        if self.images is not None:
            mine = mine.to(self.device)
            for i in range(start, self.steps_per_epoch):
                yield gpu_batch_transform(self.images[mine[i]], self.cfg.image_size)
            return
        workers = self.cfg.num_workers
        loader = DataLoader(
            self.dataset,
            batch_size=lb,
            sampler=mine[start:].flatten().tolist(),
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            worker_init_fn=_ignore_sigint if workers else None,
        )
        for x, _ in loader:
            yield x.to(self.device, non_blocking=True)


@dataclass
class Run:
    """Everything the training loop works with, built by ``setup`` (``train`` and the benchmark share it).

    ``G`` and ``D`` are the plain modules (saved, sampled, checkpointed: their state_dict keys never
    change); ``G_step`` and ``D_step`` are what a step calls: the same modules, wrapped in
    DistributedDataParallel and/or ``torch.compile`` when those are on. ``ema``: the moving
    average of G when ``cfg.ema_decay`` is set.
    """

    cfg: TrainConfig
    device: torch.device
    speed: SpeedSettings
    dist: distributed.DistInfo
    G: nn.Module
    D: nn.Module
    G_step: nn.Module
    D_step: nn.Module
    opt_G: torch.optim.Adam  # noqa: N815 - the names used everywhere else
    opt_D: torch.optim.Adam  # noqa: N815
    scaler: torch.amp.GradScaler | None
    noise_gen: torch.Generator  # z (and instance noise in one process); its state is checkpointed
    batches: _Batches
    fixed_noise: torch.Tensor
    ema: EMA | None = None
    dataset: Dataset | None = None

    @property
    def G_sample(self) -> nn.Module:  # noqa: N802 - G, as everywhere
        """The generator that samples, FID and generator.pt use: the EMA copy when it is on."""
        return self.ema.model if self.ema is not None else self.G


def setup(
    cfg: TrainConfig,
    dataset: Dataset | None = None,
    info: distributed.DistInfo | None = None,
    device: torch.device | None = None,
) -> Run:
    """Data, models, optimizers and wrappers for ``cfg``, seeded: the same call gives the same run."""
    info = info or distributed.DistInfo()
    device = device or pick_device(cfg.device)
    speed = resolve_speed(cfg, device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = speed.cudnn_benchmark
    if dataset is None:
        dataset = make_dataset(cfg.dataset, cfg.data_root, cfg.image_size, n_synthetic=cfg.synthetic_size, seed=0,
                               nc=cfg.nc)  # fmt: skip
    torch.manual_seed(cfg.seed)
    G, D = build_models(cfg, device)
    if info.enabled:  # BatchNorm statistics of the global batch, as one process would compute them
        G, D = distributed.sync_batchnorm(G, device.type), distributed.sync_batchnorm(D, device.type)
    if speed.channels_last:
        G, D = G.to(memory_format=torch.channels_last), D.to(memory_format=torch.channels_last)
    opt_G, opt_D = make_optimizers(G, D, cfg.lr_g, (cfg.beta1, cfg.beta2), speed.fused_adam, lr_d=cfg.lr_d)
    scaler = torch.amp.GradScaler(device.type) if speed.amp_dtype == torch.float16 else None
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    fixed_noise = torch.randn(cfg.n_samples, cfg.nz, generator=torch.Generator().manual_seed(cfg.seed + 2)).to(device)
    batches = _Batches(dataset, cfg, device, speed.data_on_device, info.rank, info.world_size)
    ema = EMA(G, cfg.ema_decay) if cfg.ema_decay is not None else None
    G_step, D_step = G, D
    if info.enabled:
        G_step, D_step = distributed.wrap(G, device), distributed.wrap(D, device)
    if speed.compile:
        G_step, D_step = torch.compile(G_step, mode=speed.compile_mode), torch.compile(D_step, mode=speed.compile_mode)
    return Run(cfg, device, speed, info, G, D, G_step, D_step, opt_G, opt_D, scaler, noise_gen, batches, fixed_noise,
               ema, dataset)  # fmt: skip


def run_step(run: Run, real: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
    """One training step on this rank's part of a batch, as ``train`` takes it. No host syncs."""
    cfg = run.cfg
    if run.speed.compile and run.speed.compile_mode in CUDA_GRAPH_MODES and run.device.type == "cuda":
        # a new iteration: the graphs may overwrite the outputs of the last one (no longer needed)
        torch.compiler.cudagraph_mark_step_begin()
    if run.speed.channels_last:
        real = real.contiguous(memory_format=torch.channels_last)
    # z for the whole global batch from the shared generator, then this rank's rows: N ranks use
    # exactly the noise one process would.
    z = torch.randn(cfg.batch_size, cfg.nz, 1, 1, device=run.device, generator=run.noise_gen)
    if run.dist.enabled:
        lb = run.batches.local_batch
        z = z[run.dist.rank * lb : (run.dist.rank + 1) * lb]
    sigma = losses.instance_noise_sigma(cfg.instance_noise, step, _anneal_steps(run))
    noise_gen = run.noise_gen
    if run.dist.enabled and sigma > 0:  # instance noise: independent per rank, re-seeded each step
        noise_gen = torch.Generator(device=run.device).manual_seed(
            (cfg.seed + 1) * 1_000_003 + step * 1_009 + run.dist.rank
        )  # fmt: skip
    logs = train_step(
        run.G_step, run.D_step, run.opt_G, run.opt_D, real, z, cfg.label_smoothing, sigma, noise_gen,
        run.speed.amp_dtype, run.scaler,
    )  # fmt: skip
    if run.ema is not None:
        run.ema.update(run.G)
    return logs


def total_steps(run: Run) -> int:
    """Steps in the whole run: epochs x steps per epoch, capped by ``max_steps``."""
    n = run.cfg.epochs * run.batches.steps_per_epoch
    return n if run.cfg.max_steps is None else min(n, run.cfg.max_steps)


def _anneal_steps(run: Run) -> int:
    return run.cfg.noise_anneal_steps if run.cfg.noise_anneal_steps is not None else total_steps(run)


# ---------------------------------------------------------------------------------------------
# Resuming: what must match, what changes


class ResumeMismatchError(ValueError):
    """--resume with settings that define another run than the checkpoint's."""


def resume_changes(saved: dict[str, Any], cfg: TrainConfig, ckpt: Path) -> list[str]:
    """Compare the checkpoint's config with ``cfg``: raise ``ResumeMismatchError`` naming every
    defining setting that differs; return 'name old -> new' for the others that differ."""
    now = asdict(cfg)
    relevant = set(DEFINING)
    if cfg.dataset != "synthetic":
        relevant.discard("synthetic_size")
    diffs = [f"--{k.replace('_', '-')} {saved[k]} (now {now[k]})" for k in DEFINING
             if k in relevant and k in saved and saved[k] != now[k]]  # fmt: skip
    if diffs:
        raise ResumeMismatchError(
            f"--resume: {ckpt} belongs to another run: it was trained with {', '.join(diffs)}; rerun with the "
            "checkpoint's settings, or choose a new --out to start a new run"
        )
    return [f"{k} {saved[k]} -> {now[k]}" for k in now
            if k not in DEFINING and k not in NOT_REPORTED and k in saved and saved[k] != now[k]]  # fmt: skip


def _apply_optimizer_settings(run: Run) -> None:
    """After loading the optimizers' state (which brings the old hyperparameters along), put the
    configured learning rates, betas and kernel choice back in force."""
    for opt, lr in ((run.opt_G, run.cfg.lr_g), (run.opt_D, run.cfg.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr
            group["betas"] = (run.cfg.beta1, run.cfg.beta2)
            group["fused"] = True if run.speed.fused_adam else None
            if run.speed.fused_adam:
                group["foreach"] = None


# ---------------------------------------------------------------------------------------------
# Stopping cleanly


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM: training stopped at a step boundary after writing a checkpoint."""


class _StopRequest:
    """SIGINT / SIGTERM set a flag the loop checks after every step; a second signal interrupts at once."""

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        # a signal the parent made us ignore (nohup, a background job) stays ignored
        sigs = tuple(s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN)
        old = {s: signal.getsignal(s) for s in sigs}

        def handler(signum: int, frame: object) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        for s in sigs:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s in sigs:
                signal.signal(s, old[s])


class _OutputGuard:
    """What a run wrote into its output folder, so a run that fails before its first checkpoint
    leaves nothing behind (folders it made removed, files it replaced restored)."""

    def __init__(self, out: Path) -> None:
        self.out, self.armed = out, True
        self.made: list[Path] = []
        self.replaced: dict[Path, bytes | None] = {}

    def mkdir(self, path: Path) -> None:
        missing = [p for p in [path, *path.parents] if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        self.made.extend(reversed(missing))  # outermost first

    def will_write(self, path: Path) -> None:
        if self.armed and path not in self.replaced:
            self.replaced[path] = path.read_bytes() if path.is_file() else None

    def undo(self) -> None:
        if not self.armed:
            return
        for path, old in self.replaced.items():
            with contextlib.suppress(OSError):
                if old is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(old)
        for folder in self.made:  # made by this run: everything inside is this run's
            shutil.rmtree(folder, ignore_errors=True)


def _check_optional_features(cfg: TrainConfig) -> None:
    """Refuse, before anything is written, what this installation cannot do."""
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError as err:
            raise ImportError(f"--tensorboard needs the tensorboard package ({err}): pip install tensorboard") from err


# ---------------------------------------------------------------------------------------------
# The loop


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training; write every artifact under ``cfg.out``. Returns a summary.

    Under ``torchrun --nproc_per_node=N`` each process trains on 1/N of every batch
    (``cfg.batch_size`` stays the global batch) and only rank 0 writes files or prints.
    Raises ``TrainingInterrupted`` after Ctrl-C (a checkpoint written first).
    """
    device = pick_device(cfg.device)
    info = distributed.init(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    try:
        summary = _train(cfg, device, info)
    except BaseException:
        distributed.cleanup(info, barrier=False)  # the other ranks may never reach a barrier
        raise
    distributed.cleanup(info)
    return summary


def run_info(run: Run) -> dict[str, Any]:
    """What config.json records: the resolved config, speed settings, device, sizes, versions."""
    import torchvision

    device = run.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name() if device.type == "cpu" else device.type
    return {
        "config": asdict(run.cfg),
        "speed": {k: str(v) if isinstance(v, torch.dtype) else v for k, v in asdict(run.speed).items()},
        "device": str(device),
        "device_name": name,
        "cpu_bf16_units": cpu_has_bf16_units() if device.type == "cpu" else None,
        "threads": torch.get_num_threads(),
        "world_size": run.dist.world_size,
        "parameters": {"G": count_parameters(run.G), "D": count_parameters(run.D)},
        "dataset_size": run.batches.n,
        "steps_per_epoch": run.batches.steps_per_epoch,
        "total_steps": total_steps(run),
        "versions": {"dcgan_ref": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "python": platform.python_version()},  # fmt: skip
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def _write_text(path: Path, text: str, what: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text), what)


def _train(cfg: TrainConfig, device: torch.device, info: distributed.DistInfo) -> dict[str, Any]:
    out = Path(cfg.out)
    ckpt_path = out / "checkpoints" / "last.pt"
    _check_optional_features(cfg)
    run = setup(cfg, info=info, device=device)  # first: missing data stops here, before any folder is made
    G, D, opt_G, opt_D, scaler, noise_gen = run.G, run.D, run.opt_G, run.opt_D, run.scaler, run.noise_gen

    step, epoch, start_in_epoch = 0, 0, 0
    history: list[dict[str, float]] = []
    epoch_rows: list[dict[str, float]] = []
    sums = torch.zeros(len(METRIC_KEYS), device=device)
    changes: list[str] = []
    resumed = cfg.resume and ckpt_path.exists()
    if resumed:  # every rank loads the file rank 0 wrote
        state = load_file(ckpt_path, map_location=device)
        saved_cfg = state.get("config") if isinstance(state, dict) else None
        if isinstance(saved_cfg, dict):
            changes = resume_changes(saved_cfg, cfg, ckpt_path)
        try:
            extra = load_checkpoint(ckpt_path, G, D, opt_G, opt_D, scaler, state=state)
            if run.ema is not None:
                run.ema.load_state_dict(extra["G_ema_state"])
        except (RuntimeError, KeyError) as err:  # a checkpoint without a config: shapes tell
            why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"--resume: {ckpt_path} does not fit this run's networks ({why}); rerun with "
                                  "the checkpoint's settings or choose a new --out") from err  # fmt: skip
        _apply_optimizer_settings(run)
        step, epoch, start_in_epoch = extra["step"], extra["epoch"], extra["step_in_epoch"]
        epoch_rows = list(extra["epoch_rows"])
        history = list(extra["history"])
        noise_gen.set_state(extra["noise_gen"].to(noise_gen.get_state().device))
        sums = extra["epoch_sums"].to(device)  # the mean over ranks: their mean stays right
        _print(info, f"resumed from {ckpt_path}: epoch {epoch}, step {step}")
        if changes:
            _print(info, "resume: settings changed and applied: " + "; ".join(changes))
    elif cfg.resume:
        _print(info, f"--resume: no checkpoint at {ckpt_path} yet, starting fresh")
    elif ckpt_path.exists():
        _print(info, f"note: {ckpt_path} exists; this new run replaces it (pass --resume to continue it instead)")

    batches = run.batches
    n_steps = total_steps(run)
    if resumed and step >= n_steps:
        _print(info, f"nothing left to train: the checkpoint is at step {step} and this run ends at step {n_steps} "
                     "(raise --epochs or --max-steps to train further); rewriting the final artifacts")  # fmt: skip

    guard = _OutputGuard(out)
    fid_state: dict[str, Any] = {}
    writer = None
    stop = _StopRequest()
    pending: list[tuple[int, int, torch.Tensor]] = []  # (step, epoch, logs) not read back yet

    def flush() -> None:  # the host sync: every step's logs since the last one, into history
        if not pending:
            return
        block = distributed.mean_over_ranks(torch.stack([p[2] for p in pending]), info).tolist()
        for (s, e, _), values in zip(pending, block, strict=True):
            history.append({"step": s, "epoch": e, **dict(zip(METRIC_KEYS, values, strict=True))})
        if writer is not None:
            for row in history[-len(pending):]:
                for k in METRIC_KEYS:
                    writer.add_scalar(f"train/{k}", row[k], row["step"])
        pending.clear()
        last = history[-1]
        bar.set_postfix(loss_D=f"{last['loss_D']:.3f}", loss_G=f"{last['loss_G']:.3f}",
                        D_x=f"{last['D_x']:.2f}", D_G_z=f"{last['D_G_z1']:.2f}")  # fmt: skip

    def checkpoint() -> None:  # called on every rank (the metric sums are averaged), written by rank 0
        flush()
        epoch_sums = distributed.mean_over_ranks(sums, info).cpu()
        if info.is_main:
            extra: dict[str, Any] = {}
            if run.ema is not None:
                extra = {"G_ema": run.ema.model.state_dict(), "G_ema_state": run.ema.state_dict()}
            save_checkpoint(
                ckpt_path, G, D, opt_G, opt_D, scaler,
                step=step, epoch=epoch, step_in_epoch=start_in_epoch, history=history,
                epoch_rows=epoch_rows, noise_gen=noise_gen.get_state(), epoch_sums=epoch_sums,
                config=asdict(cfg), **extra,
            )  # fmt: skip
            guard.armed = False  # from here on the run exists: its files stay

    def write_metrics_csv(rows: list[dict[str, float]]) -> None:
        if info.is_main:
            guard.will_write(out / "metrics.csv")
            write_metrics(out / "metrics.csv", rows, fid=cfg.fid_every > 0)

    def save_samples(name: str) -> None:  # rank 0 alone: a copy of G whose BatchNorm waits for no one
        if info.is_main:
            g = distributed.local_copy(run.G_sample) if info.enabled else run.G_sample
            images = sample_images(g, run.fixed_noise)
            guard.will_write(out / "samples" / name)
            _save_grid(images, out / "samples" / name)
            if writer is not None:
                writer.add_image("samples", _grid(images), step)

    def measure_fid() -> float:  # rank 0 computes; the others get the number (they contribute 0)
        value = torch.zeros(1, dtype=torch.float64)
        if info.is_main:
            value[0] = _training_fid(run, fid_state, out)
        if info.enabled:
            value = distributed.mean_over_ranks(value.to(device), info).cpu() * info.world_size
        return float(value[0])

    try:
        if info.is_main:
            guard.mkdir(out / "checkpoints")
            guard.mkdir(out / "samples")
            guard.will_write(out / "config.json")
            _write_config_json(out / "config.json", run, step, changes)
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                guard.mkdir(out / "tensorboard")
                writer = SummaryWriter(str(out / "tensorboard"))
        if cfg.fid_every and info.is_main:  # load Inception now: a missing backend stops the run at once
            from . import fid

            fid_state["extractor"] = fid.load_inception(cfg.fid_backend, device)

        bar = tqdm(total=n_steps, initial=min(step, n_steps), disable=not (cfg.progress and info.is_main),
                   desc="train", unit="step")  # fmt: skip
        t0 = time.perf_counter()
        steps_run = 0
        with stop.installed():
            while step < n_steps and epoch < cfg.epochs:
                for real in batches.epoch(epoch, start_in_epoch):
                    logs = run_step(run, real, step)
                    stacked = torch.stack([logs[k].float() for k in METRIC_KEYS])
                    sums += stacked
                    step += 1
                    steps_run += 1
                    start_in_epoch += 1
                    pending.append((step, epoch, stacked.detach()))
                    bar.update(1)
                    stop_now = stop.requested and not info.enabled
                    if step % cfg.log_every == 0 or step == n_steps:
                        flush()
                        if info.enabled:  # every rank must stop at the same step: agree at read-backs
                            flag = torch.tensor([float(stop.requested)], device=device)
                            stop_now = bool(distributed.mean_over_ranks(flag, info).item() > 0)
                    if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                        checkpoint()
                    if stop_now:
                        checkpoint()
                        write_metrics_csv(epoch_rows)
                        bar.close()
                        raise TrainingInterrupted(
                            f"interrupted at step {step}: checkpoint saved to {ckpt_path}; rerun the same command "
                            "with --resume to continue exactly from there"
                        )
                    if step >= n_steps:
                        break
                if start_in_epoch == batches.steps_per_epoch:  # the epoch is complete
                    row = _epoch_row(epoch, step, distributed.mean_over_ranks(sums, info), start_in_epoch)
                    if cfg.fid_every and (epoch + 1) % cfg.fid_every == 0:
                        row["fid"] = measure_fid()
                        if writer is not None:
                            writer.add_scalar("fid", row["fid"], step)
                    epoch_rows.append(row)
                    epoch, start_in_epoch = epoch + 1, 0
                    sums.zero_()
                    checkpoint()
                    write_metrics_csv(epoch_rows)
                    save_samples(f"epoch_{epoch:03d}.png")
        bar.close()
        elapsed = time.perf_counter() - t0

        checkpoint()
        rows = list(epoch_rows)
        if start_in_epoch:  # a run stopped mid-epoch (--max-steps) still reports what it did
            rows.append(_epoch_row(epoch, step, distributed.mean_over_ranks(sums, info), start_in_epoch))
        if info.is_main:
            write_metrics_csv(rows)
            save_samples("final.png")
            extra = {"ema": True, "ema_decay": cfg.ema_decay} if run.ema is not None else {"ema": False}
            save_generator(out / "generator.pt", run.G_sample, extra)
            atomic_write(out / "losses.png", lambda tmp: plot_losses(history, tmp), "loss plot")
            atomic_write(out / "progress.gif", lambda tmp: make_gif(out / "samples", tmp), "progress GIF")
    except BaseException as err:
        if info.is_main and not isinstance(err, TrainingInterrupted):
            guard.undo()
        raise
    finally:
        if writer is not None:
            writer.close()

    images = steps_run * cfg.batch_size
    summary = {
        "steps": step,
        "epochs_completed": epoch,
        "seconds": elapsed,
        "images_per_second": images / elapsed if elapsed > 0 and images else math.nan,
        "device": str(device),
        "world_size": info.world_size,
        "speed": {k: str(v) for k, v in asdict(run.speed).items()},
        "out": str(out),
    }
    where = f"{info.world_size} processes on {device.type}" if info.enabled else str(device)
    _print(
        info,
        f"done: {step} steps ({steps_run} this run, {summary['images_per_second']:.0f} img/s on {where}); "
        f"artifacts in {out}",
    )
    return summary


def _write_config_json(path: Path, run: Run, step: int, changes: list[str]) -> None:
    """config.json: this run described without unpickling last.pt; each (re)start is a session."""
    info = run_info(run)
    sessions = []
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):
            sessions = list(json.loads(path.read_text()).get("sessions", []))
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sessions.append({"started": started, "from_step": step, "changes": changes})
    info["sessions"] = sessions
    _write_text(path, json.dumps(info, indent=2, default=str) + "\n", "config.json")


def _training_fid(run: Run, state: dict[str, Any], out: Path) -> float:
    """FID of the sampling generator against the training set, as ``--fid-every`` computes it:
    ``fid_n`` generated images vs min(fid_n, data set size) real ones, G's BatchNorm on batch
    statistics as in the sample grids; the real statistics cached in OUT/fid_stats."""
    from . import fid

    cfg = run.cfg
    g = distributed.local_copy(run.G_sample) if run.dist.enabled else run.G_sample
    key = f"{cfg.dataset}-{cfg.image_size}px-nc{cfg.nc}"
    if cfg.dataset == "folder":
        key += "-" + fid.path_digest(cfg.data_root)
    result = fid.compute_fid(
        g, n=cfg.fid_n, n_real=min(cfg.fid_n, run.batches.n), reference=run.dataset, reference_key=key,
        device=run.device, cache_dir=out / "fid_stats", extractor=state["extractor"], batchnorm="batch",
    )  # fmt: skip
    state["protocol"] = result.protocol
    return float(result.value)


def _print(info: distributed.DistInfo, msg: str) -> None:
    if info.is_main:
        print(msg, flush=True)


def _epoch_row(epoch: int, step: int, sums: torch.Tensor, n: int) -> dict[str, float]:
    means = (sums / max(n, 1)).tolist()
    return {"epoch": epoch + 1, "step": step, "batches": n, **dict(zip(METRIC_KEYS, means, strict=True))}


def write_metrics(path: Path, rows: list[dict[str, float]], fid: bool = False) -> None:
    """metrics.csv: one row per epoch (mean over its batches); a ``fid`` column with --fid-every."""
    cols = ["epoch", "step", "batches", *METRIC_KEYS, *(["fid"] if fid else [])]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in cols})
    _write_text(Path(path), buf.getvalue(), "metrics file")


def _grid(images: torch.Tensor) -> torch.Tensor:
    from torchvision.utils import make_grid

    return make_grid(images, nrow=int(math.sqrt(images.shape[0])) or 1, normalize=True, value_range=(-1, 1))


def _save_grid(images: torch.Tensor, path: Path) -> None:
    from torchvision.utils import save_image

    def write(tmp: Path) -> None:
        save_image(images, tmp, format="png", nrow=int(math.sqrt(images.shape[0])) or 1, normalize=True,
                   value_range=(-1, 1))  # fmt: skip

    atomic_write(path, write, "sample grid")


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_losses(history: list[dict[str, float]], path: Path | str | io.BytesIO) -> None:
    """losses.png: both losses, and D(x) / D(G(z)), against the step: every logged step (thin)
    and a moving average (bold)."""
    # The object API, not pyplot: no backend switch, so a notebook calling train() keeps its
    # inline figures, and nothing is left open in pyplot's figure manager.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    steps = [h["step"] for h in history]
    window = max(1, len(history) // 50)

    def curve(ax: Any, key: str, label: str, colour: str) -> None:
        values = [h[key] for h in history]
        if window > 1:
            ax.plot(steps, values, color=colour, lw=0.6, alpha=0.35)
            ax.plot(steps, _smooth(values, window), color=colour, lw=1.6, label=f"{label} (mean of {window})")
        else:
            ax.plot(steps, values, color=colour, lw=1.2, label=label)

    curve(ax1, "loss_D", "loss_D", "C0")
    curve(ax1, "loss_G", "loss_G", "C1")
    ax1.set_xlabel("step")
    ax1.set_title(f"losses ({len(history)} steps)")
    ax1.legend()
    curve(ax2, "D_x", "D(x)", "C2")
    curve(ax2, "D_G_z1", "D(G(z))", "C3")
    ax2.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("step")
    ax2.set_title("discriminator outputs")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")


def make_gif(samples_dir: Path, path: Path, ms_per_frame: int = 400) -> None:
    """progress.gif: the per-epoch sample grids in order, then the final one."""
    from PIL import Image

    frames = sorted(samples_dir.glob("epoch_*.png"))
    if (samples_dir / "final.png").exists():
        frames.append(samples_dir / "final.png")
    if not frames:
        return
    images = [Image.open(f).convert("RGB") for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)

