"""The DCGAN training loop: one config, a D step then a G step per batch, artifacts per epoch.

Per batch (as pytorch/examples' dcgan): fake = G(z); D step on real (target 1, or 1 - smoothing)
and on fake.detach() (target 0); G step on D(fake) with target 1, the non-saturating loss.
Adam(lr 2e-4, betas (0.5, 0.999)) for both.

Every epoch: a checkpoint (resumable exactly), a sample grid from one fixed noise batch, a row
of metrics. At the end: generator.pt, losses.png and progress.gif. Speed knobs (AMP, data on the
device, channels_last, torch.compile, fused Adam) sit in the config; ``None``/"auto" picks for the
device: everything on for CUDA, plain fp32 eager on a CPU (see auto_amp).

Under ``torchrun --nproc_per_node=N`` the same loop runs data-parallel (see distributed.py):
each process takes 1/N of every global batch, gradients are averaged by DistributedDataParallel,
BatchNorm uses global-batch statistics, and rank 0 alone writes files.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from . import distributed, losses
from .checkpoint import load_checkpoint, save_checkpoint, save_generator
from .data import gpu_batch_transform, make_dataset, native_nc, uint8_images
from .keras_gan import KERAS_IMAGE_SIZE, KerasDiscriminator, KerasGenerator
from .models import Discriminator, Generator, weights_init

ARCHS = ("dcgan", "keras-cifar")


@dataclass
class TrainConfig:
    """Everything a run depends on. ``None`` / "auto" = pick for the device."""

    dataset: str = "cifar10"  # cifar10 | mnist | digits | folder | synthetic (data.DATASETS)
    data_root: str = "data"
    image_size: int = 64
    epochs: int = 25
    batch_size: int = 128
    arch: str = "dcgan"  # dcgan (models.py) | keras-cifar (keras_gan.py: Dense projection, dropout D; 32x32)
    nz: int = 100
    ngf: int | None = None  # None: 64 for dcgan, 128 for keras-cifar
    ndf: int = 64
    dropout: float | None = None  # keras-cifar's D only; None: 0.4
    nc: int | None = None  # image channels; None: the data set's own (1 for mnist and digits, else 3)
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    label_smoothing: float = 0.0  # one-sided: real targets become 1 - label_smoothing
    instance_noise: float = 0.0  # std of noise added to D's inputs at step 0...
    noise_anneal_steps: int | None = None  # ...annealed linearly to 0 over this many steps (None: whole run)
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
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.nc is None:
            self.nc = native_nc(self.dataset)
        if self.ngf is None:
            self.ngf = 128 if self.arch == "keras-cifar" else 64
        if self.arch == "keras-cifar":
            if self.image_size != KERAS_IMAGE_SIZE:
                raise ValueError(f"--arch keras-cifar is 32x32 only: use --image-size 32 (got {self.image_size})")
            if self.dropout is None:
                self.dropout = 0.4
        elif self.dropout is not None:
            raise ValueError("--dropout applies to --arch keras-cifar only (the DCGAN discriminator has no dropout)")

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


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
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA GPU")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("--device mps asked for, but MPS is not available")
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


def auto_amp(device: torch.device) -> str:
    """The mixed precision a device runs fastest and correctly: bf16 on GPUs with bf16 tensor cores
    (Ampere and newer: A100, L4, H100), fp16 with a GradScaler on Volta / Turing (V100, Colab's T4:
    bf16 there is emulated, far slower), off on older GPUs, MPS and CPUs (most emulate bf16, ~20x
    slower; the few with bf16 units run it faster: see benchmarks/README.md, and pass amp="bf16")."""
    if device.type != "cuda":
        return "off"
    major, _ = torch.cuda.get_device_capability(device)
    return "bf16" if major >= 8 else "fp16" if major >= 7 else "off"


def resolve_speed(cfg: TrainConfig, device: torch.device) -> SpeedSettings:
    """Fill in the "auto" knobs: everything on for CUDA, plain fp32 eager elsewhere."""
    cuda = device.type == "cuda"
    amp = auto_amp(device) if cfg.amp == "auto" else cfg.amp
    dtypes = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    if amp not in dtypes:
        raise ValueError(f"amp must be auto, off, bf16 or fp16, got {cfg.amp!r}")
    if cfg.compile_mode not in COMPILE_MODES:
        raise ValueError(f"compile_mode must be one of {', '.join(COMPILE_MODES)}, got {cfg.compile_mode!r}")
    return SpeedSettings(
        amp_dtype=dtypes[amp],
        data_on_device=True if cfg.data_on_device is None else cfg.data_on_device,
        channels_last=cuda if cfg.channels_last is None else cfg.channels_last,
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
) -> tuple[torch.optim.Adam, torch.optim.Adam]:
    """Adam for each network. beta1 = 0.5 (not 0.9): momentum that remembers less of a moving target."""
    kw = {"fused": True} if fused else {}
    return (
        torch.optim.Adam(G.parameters(), lr=lr, betas=betas, **kw),
        torch.optim.Adam(D.parameters(), lr=lr, betas=betas, **kw),
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
            raise ValueError(f"batch size {cfg.batch_size} does not split evenly over {world_size} processes")
        self.local_batch = cfg.batch_size // world_size
        images = uint8_images(dataset) if on_device else None
        self.images = images.to(device) if images is not None else None
        self.n = len(dataset)
        self.steps_per_epoch = self.n // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"batch size {cfg.batch_size} is larger than the data set ({self.n} images)")

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
        loader = DataLoader(
            self.dataset,
            batch_size=lb,
            sampler=mine[start:].flatten().tolist(),
            num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        for x, _ in loader:
            yield x.to(self.device, non_blocking=True)


@dataclass
class Run:
    """Everything the training loop works with, built by ``setup`` (``train`` and the benchmark share it).

    ``G`` and ``D`` are the plain modules (saved, sampled, checkpointed: their state_dict keys never
    change); ``G_step`` and ``D_step`` are what a step calls: the same modules, wrapped in
    DistributedDataParallel and/or ``torch.compile`` when those are on.
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
    opt_G, opt_D = make_optimizers(G, D, cfg.lr, (cfg.beta1, cfg.beta2), speed.fused_adam)
    scaler = torch.amp.GradScaler(device.type) if speed.amp_dtype == torch.float16 else None
    noise_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    fixed_noise = torch.randn(cfg.n_samples, cfg.nz, generator=torch.Generator().manual_seed(cfg.seed + 2)).to(device)
    batches = _Batches(dataset, cfg, device, speed.data_on_device, info.rank, info.world_size)
    G_step, D_step = G, D
    if info.enabled:
        G_step, D_step = distributed.wrap(G, device), distributed.wrap(D, device)
    if speed.compile:
        G_step, D_step = torch.compile(G_step, mode=speed.compile_mode), torch.compile(D_step, mode=speed.compile_mode)
    return Run(cfg, device, speed, info, G, D, G_step, D_step, opt_G, opt_D, scaler, noise_gen, batches, fixed_noise)


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
    return train_step(
        run.G_step, run.D_step, run.opt_G, run.opt_D, real, z, cfg.label_smoothing, sigma, noise_gen,
        run.speed.amp_dtype, run.scaler,
    )  # fmt: skip


def total_steps(run: Run) -> int:
    """Steps in the whole run: epochs x steps per epoch, capped by ``max_steps``."""
    n = run.cfg.epochs * run.batches.steps_per_epoch
    return n if run.cfg.max_steps is None else min(n, run.cfg.max_steps)


def _anneal_steps(run: Run) -> int:
    return run.cfg.noise_anneal_steps if run.cfg.noise_anneal_steps is not None else total_steps(run)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) training; write every artifact under ``cfg.out``. Returns a summary.

    Under ``torchrun --nproc_per_node=N`` each process trains on 1/N of every batch
    (``cfg.batch_size`` stays the global batch) and only rank 0 writes files or prints.
    """
    device = pick_device(cfg.device)
    info = distributed.init(device.type)
    if info.enabled and device.type == "cuda":
        device = torch.device("cuda", info.local_rank)
    summary = _train(cfg, device, info)
    distributed.cleanup(info)
    return summary


def _train(cfg: TrainConfig, device: torch.device, info: distributed.DistInfo) -> dict[str, Any]:
    out = Path(cfg.out)
    ckpt_path = out / "checkpoints" / "last.pt"
    run = setup(cfg, info=info, device=device)  # first: missing data stops here, before any folder is made
    if info.is_main:
        (out / "checkpoints").mkdir(parents=True, exist_ok=True)
        (out / "samples").mkdir(exist_ok=True)
    G, D, opt_G, opt_D, scaler, noise_gen = run.G, run.D, run.opt_G, run.opt_D, run.scaler, run.noise_gen

    step, epoch, start_in_epoch = 0, 0, 0
    history: list[dict[str, float]] = []
    epoch_rows: list[dict[str, float]] = []
    sums = torch.zeros(len(METRIC_KEYS), device=device)
    if cfg.resume and ckpt_path.exists():  # every rank loads the file rank 0 wrote
        extra = load_checkpoint(ckpt_path, G, D, opt_G, opt_D, scaler, map_location=device)
        step, epoch, start_in_epoch = extra["step"], extra["epoch"], extra["step_in_epoch"]
        epoch_rows = extra["epoch_rows"]
        # a --max-steps stop also logged its last step; a straight run would not have that row
        history = [h for h in extra["history"] if h["step"] % cfg.log_every == 0]
        noise_gen.set_state(extra["noise_gen"].to(noise_gen.get_state().device))
        sums = extra["epoch_sums"].to(device)  # the mean over ranks: their mean stays right
        _print(info, f"resumed from {ckpt_path}: epoch {epoch}, step {step}")
    elif cfg.resume:
        _print(info, f"--resume: no checkpoint at {ckpt_path} yet, starting fresh")

    batches = run.batches
    n_steps = total_steps(run)

    def checkpoint() -> None:  # called on every rank (the metric sums are averaged), written by rank 0
        epoch_sums = distributed.mean_over_ranks(sums, info).cpu()
        if info.is_main:
            save_checkpoint(
                ckpt_path, G, D, opt_G, opt_D, scaler,
                step=step, epoch=epoch, step_in_epoch=start_in_epoch, history=history,
                epoch_rows=epoch_rows, noise_gen=noise_gen.get_state(), epoch_sums=epoch_sums,
                config=asdict(cfg),
            )  # fmt: skip

    def save_samples(name: str) -> None:  # rank 0 alone: a copy of G whose BatchNorm waits for no one
        if info.is_main:
            g = distributed.local_copy(G) if info.enabled else G
            _save_grid(sample_images(g, run.fixed_noise), out / "samples" / name)

    bar = tqdm(total=n_steps, initial=step, disable=not (cfg.progress and info.is_main), desc="train", unit="step")
    t0 = time.perf_counter()
    steps_run = 0
    while step < n_steps and epoch < cfg.epochs:
        for real in batches.epoch(epoch, start_in_epoch):
            logs = run_step(run, real, step)
            sums += torch.stack([logs[k].float() for k in METRIC_KEYS])
            step += 1
            steps_run += 1
            start_in_epoch += 1
            bar.update(1)
            if step % cfg.log_every == 0 or step == n_steps:  # the only host sync in the loop
                values = distributed.mean_over_ranks(torch.stack([logs[k].float() for k in METRIC_KEYS]), info)
                row = {"step": step, "epoch": epoch, **dict(zip(METRIC_KEYS, values.tolist(), strict=True))}
                history.append(row)
                bar.set_postfix(loss_D=f"{row['loss_D']:.3f}", loss_G=f"{row['loss_G']:.3f}",
                                D_x=f"{row['D_x']:.2f}", D_G_z=f"{row['D_G_z1']:.2f}")  # fmt: skip
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                checkpoint()
            if step >= n_steps:
                break
        if start_in_epoch == batches.steps_per_epoch:  # the epoch is complete
            epoch_rows.append(_epoch_row(epoch, step, distributed.mean_over_ranks(sums, info), start_in_epoch))
            save_samples(f"epoch_{epoch + 1:03d}.png")
            epoch, start_in_epoch = epoch + 1, 0
            sums.zero_()
            if info.is_main:
                write_metrics(out / "metrics.csv", epoch_rows)
            checkpoint()
    bar.close()
    elapsed = time.perf_counter() - t0

    checkpoint()
    rows = list(epoch_rows)
    if start_in_epoch:  # a run stopped mid-epoch (--max-steps) still reports what it did
        rows.append(_epoch_row(epoch, step, distributed.mean_over_ranks(sums, info), start_in_epoch))
    if info.is_main:
        write_metrics(out / "metrics.csv", rows)
        save_samples("final.png")
        save_generator(out / "generator.pt", G)
        plot_losses(history, out / "losses.png")
        make_gif(out / "samples", out / "progress.gif")
    images = steps_run * cfg.batch_size
    summary = {
        "steps": step,
        "epochs_completed": epoch,
        "seconds": elapsed,
        "images_per_second": images / elapsed if elapsed > 0 else math.nan,
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


def _print(info: distributed.DistInfo, msg: str) -> None:
    if info.is_main:
        print(msg)


def _epoch_row(epoch: int, step: int, sums: torch.Tensor, n: int) -> dict[str, float]:
    means = (sums / max(n, 1)).tolist()
    return {"epoch": epoch + 1, "step": step, "batches": n, **dict(zip(METRIC_KEYS, means, strict=True))}


def write_metrics(path: Path, rows: list[dict[str, float]]) -> None:
    """metrics.csv: one row per epoch (mean over its batches)."""
    cols = ["epoch", "step", "batches", *METRIC_KEYS]
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in cols})


def _save_grid(images: torch.Tensor, path: Path) -> None:
    from torchvision.utils import save_image

    save_image(images, path, nrow=int(math.sqrt(images.shape[0])) or 1, normalize=True, value_range=(-1, 1))


def plot_losses(history: list[dict[str, float]], path: Path) -> None:
    """losses.png: both losses, and D(x) / D(G(z)), against the step."""
    # The object API, not pyplot: no backend switch, so a notebook calling train() keeps its
    # inline figures, and nothing is left open in pyplot's figure manager.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    steps = [h["step"] for h in history]
    ax1.plot(steps, [h["loss_D"] for h in history], label="loss_D")
    ax1.plot(steps, [h["loss_G"] for h in history], label="loss_G")
    ax1.set_xlabel("step")
    ax1.set_title("losses")
    ax1.legend()
    ax2.plot(steps, [h["D_x"] for h in history], label="D(x)")
    ax2.plot(steps, [h["D_G_z1"] for h in history], label="D(G(z))")
    ax2.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("step")
    ax2.set_title("discriminator outputs")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def make_gif(samples_dir: Path, path: Path, ms_per_frame: int = 400) -> None:
    """progress.gif: the per-epoch sample grids in order, then the final one."""
    from PIL import Image

    frames = sorted(samples_dir.glob("epoch_*.png"))
    if (samples_dir / "final.png").exists():
        frames.append(samples_dir / "final.png")
    if not frames:
        return
    images = [Image.open(f).convert("RGB") for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
