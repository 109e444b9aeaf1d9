"""Training throughput: the canonical DCGAN pipeline against dcgan_ref's fast path.

    python benchmarks/bench_train.py                      # GPU: 3 rounds of 50 steps; CPU: about a minute
    python benchmarks/bench_train.py --image-size 32      # the 32x32 DCGAN (one block less each side)

Defaults follow the device: on a GPU 10 warm-up steps and 3 rounds of 50 steps on 50,000 images;
on a CPU 1 warm-up step and 3 rounds of 3 steps at 64x64 (2 and 3 x 10 at 32x32) on 10,000
images, about a minute on 2 cores. Every default can be overridden.

Both train the same DCGAN (nz 100, ngf = ndf = 64, 64x64 or 32x32, batch 128, Adam 2e-4 / (0.5,
0.999)) on the same synthetic data of CIFAR-10's shape (uint8 32x32x3 images), alternately in
this one process on the same device: warm-up steps for each first (not timed), then ``rounds``
x (``steps`` baseline steps, ``steps`` fast-path steps), so drifts in clock speed or machine load
hit both alike. Prints images/s, the ratio, peak memory and the projected time of a 25-epoch
CIFAR-10 run (1.25 M images) for each.

The baseline is written here, the way pytorch/examples' dcgan/main.py trains: PIL images through
torchvision's Resize/ToTensor/Normalize in a DataLoader with worker processes, fp32, eager,
a Sigmoid discriminator with BCELoss run on the real and the fake batch separately (a backward
each), then the G step, and the losses read back with ``.item()`` every step.
The fast path is dcgan_ref's own loop (``setup`` + ``run_step``, what ``train`` runs) with the
speed settings ``train`` would pick for the device, unless overridden by the flags.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import time
from collections.abc import Iterator

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from dcgan_ref.data import ArrayImages
from dcgan_ref.models import count_parameters
from dcgan_ref.train import COMPILE_MODES, METRIC_KEYS, TrainConfig, pick_device, run_step, setup

CIFAR_EPOCHS_IMAGES = 25 * 50_000  # a full 25-epoch CIFAR-10 run


# --- the baseline: pytorch/examples' DCGAN, written out ---------------------------------------


class PILImages(Dataset):
    """uint8 HWC images served as torchvision's CIFAR10 serves them: PIL image -> transform."""

    def __init__(self, data: np.ndarray, transform: transforms.Compose) -> None:
        self.data, self.transform = data, transform

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.data[i])), 0


class NetG(nn.Module):
    def __init__(self, nz: int, ngf: int, nc: int = 3, image_size: int = 64) -> None:
        super().__init__()
        if image_size == 64:  # main.py's generator as written
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
            )  # fmt: skip
        else:  # 32x32: the first block dropped, as dcgan_ref.models does
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
            )  # fmt: skip

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class NetD(nn.Module):
    def __init__(self, ndf: int, nc: int = 3, image_size: int = 64) -> None:
        super().__init__()
        if image_size == 64:
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
            )  # fmt: skip
        else:
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid(),
            )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x)


def weights_init(m: nn.Module) -> None:
    name = m.__class__.__name__
    if name.find("Conv") != -1:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif name.find("BatchNorm") != -1:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Baseline:
    """The canonical loop, one step at a time over an endless sequence of epochs."""

    def __init__(self, data: np.ndarray, args: argparse.Namespace, device: torch.device) -> None:
        self.device, self.nz = device, args.nz
        tf = transforms.Compose([
            transforms.Resize(args.image_size),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ])  # fmt: skip
        self.loader = DataLoader(PILImages(data, tf), batch_size=args.batch_size, shuffle=True,
                                 num_workers=args.workers, drop_last=True)  # fmt: skip
        self.batches = self._endless()
        torch.manual_seed(0)
        self.netG = NetG(args.nz, args.ngf, image_size=args.image_size).to(device)
        self.netG.apply(weights_init)
        self.netD = NetD(args.ndf, image_size=args.image_size).to(device)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def _endless(self) -> Iterator[torch.Tensor]:
        while True:
            self.loader_iter = iter(self.loader)
            for x, _ in self.loader_iter:
                yield x

    def worker_cpu_seconds(self) -> float:
        """CPU time used so far by the DataLoader's worker processes (Linux /proc; 0 elsewhere)."""
        total = 0.0
        for w in getattr(getattr(self, "loader_iter", None), "_workers", []):
            try:
                with open(f"/proc/{w.pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
            except (OSError, ValueError, IndexError):
                pass
        return total

    def step(self) -> None:
        torch.backends.cudnn.benchmark = True  # main.py sets it once; the fast path may have turned it off
        real = next(self.batches).to(self.device)
        b = real.size(0)
        # (1) D: maximize log(D(x)) + log(1 - D(G(z))), real and fake batches separately
        self.netD.zero_grad()
        label = torch.full((b,), 1.0, dtype=real.dtype, device=self.device)
        output = self.netD(real).view(-1)
        errD_real = self.criterion(output, label)
        errD_real.backward()
        D_x = output.mean().item()
        noise = torch.randn(b, self.nz, 1, 1, device=self.device)
        fake = self.netG(noise)
        label.fill_(0.0)
        output = self.netD(fake.detach()).view(-1)
        errD_fake = self.criterion(output, label)
        errD_fake.backward()
        D_G_z1 = output.mean().item()
        errD = errD_real + errD_fake
        self.optD.step()
        # (2) G: maximize log(D(G(z)))
        self.netG.zero_grad()
        label.fill_(1.0)
        output = self.netD(fake).view(-1)
        errG = self.criterion(output, label)
        errG.backward()
        D_G_z2 = output.mean().item()
        self.optG.step()
        self.last = (errD.item(), errG.item(), D_x, D_G_z1, D_G_z2)  # what main.py prints every step


# --- the fast path: dcgan_ref's own loop --------------------------------------------------------


class Fast:
    """``dcgan_ref.train``'s per-step work: ``run_step`` plus the metric sums, read back every 50 steps."""

    def __init__(self, data: np.ndarray, args: argparse.Namespace, device: torch.device) -> None:
        knobs = {
            k: getattr(args, k)
            for k in ("amp", "data_on_device", "channels_last", "compile", "compile_mode", "fused_adam",
                      "cudnn_benchmark")
        }  # fmt: skip
        cfg = TrainConfig(image_size=args.image_size, batch_size=args.batch_size, nz=args.nz, ngf=args.ngf,
                          ndf=args.ndf, num_workers=args.workers, device=str(device), **knobs)  # fmt: skip
        dataset = ArrayImages(data, [0] * len(data), args.image_size, ("x",))
        self.run = setup(cfg, dataset=dataset, device=device)
        self.sums = torch.zeros(len(METRIC_KEYS), device=device)
        self.steps = 0
        self.batches = self._endless()

    def _endless(self) -> Iterator[torch.Tensor]:
        epoch = 0
        while True:
            yield from self.run.batches.epoch(epoch)
            epoch += 1

    def step(self) -> None:
        torch.backends.cudnn.benchmark = self.run.speed.cudnn_benchmark  # a global switch: set per path
        logs = run_step(self.run, next(self.batches), self.steps)
        self.sums += torch.stack([logs[k].float() for k in METRIC_KEYS])
        self.steps += 1
        if self.steps % self.run.cfg.log_every == 0:
            self.last = [float(logs[k]) for k in METRIC_KEYS]

    def finish(self) -> None:
        self.sums.tolist()  # what the timed chunk computed is done before the clock stops


# --- measuring ----------------------------------------------------------------------------------


def timed_chunk(path: Baseline | Fast, steps: int, device: torch.device) -> tuple[float, int, float]:
    """Seconds for ``steps`` steps, all queued work finished; peak device memory in bytes (CUDA);
    CPU seconds spent meanwhile by this process and the baseline's DataLoader workers."""
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    workers = path.worker_cpu_seconds if isinstance(path, Baseline) else lambda: 0.0
    c0 = time.process_time() + workers()
    t0 = time.perf_counter()
    for _ in range(steps):
        path.step()
    if isinstance(path, Fast):
        path.finish()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    cpu = time.process_time() + workers() - c0
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else 0
    return seconds, peak, cpu


def profile(fast: Fast, steps: int, device: torch.device) -> None:
    """Where the fast path's time goes: the top operators, and on CUDA the share of each step's
    wall time in which kernels run (far below 100%: the GPU waits for Python to launch them, the
    case CUDA graphs, ``--compile --compile-mode reduce-overhead``, are for)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    cuda = device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    fast.finish()
    if cuda:
        torch.cuda.synchronize()
    with torch_profile(activities=activities) as prof:
        t0 = time.perf_counter()
        for _ in range(steps):
            fast.step()
        fast.finish()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - t0
    table = prof.key_averages()
    sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(f"\nprofile of {steps} fast-path steps ({wall / steps * 1e3:.2f} ms per step under the profiler):")
    print(table.table(sort_by=sort, row_limit=15))
    if cuda:
        kernel_us = sum(getattr(e, "self_device_time_total", getattr(e, "self_cuda_time_total", 0)) for e in table)
        print(f"GPU kernels: {kernel_us / steps / 1e3:.2f} ms per step, {kernel_us / 1e6 / wall:.0%} of the wall time")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "cpu"


def fmt_duration(s: float) -> str:
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min" if s < 7200 else f"{s / 3600:.1f} h"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | mps")
    p.add_argument("--image-size", type=int, choices=[32, 64], default=64,
                   help="64: pytorch/examples' DCGAN; 32: one block less on each side")  # fmt: skip
    p.add_argument("--steps", type=int, default=None,
                   help="timed steps per path per round (default: GPU 50; CPU 3 at 64x64, 10 at 32x32)")  # fmt: skip
    p.add_argument("--rounds", type=int, default=3, help="alternations baseline / fast path")
    p.add_argument("--warmup", type=int, default=None,
                   help="untimed steps per path first (default: GPU 10; CPU 1 at 64x64, 2 at 32x32)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=128, help="images per step")
    p.add_argument("--nz", type=int, default=100, help="length of z")
    p.add_argument("--ngf", type=int, default=64, help="width of G")
    p.add_argument("--ndf", type=int, default=64, help="width of D")
    p.add_argument("--n-images", type=int, default=None,
                   help="synthetic images of CIFAR-10's shape (default: GPU 50000, CPU 10000)")  # fmt: skip
    p.add_argument("--workers", type=int, default=2, help="the baseline's DataLoader workers (main.py's default)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--amp", default="auto", choices=["auto", "off", "bf16", "fp16"], help="fast path")
    p.add_argument("--compile-mode", default="default", choices=COMPILE_MODES,
                   help="fast path, with --compile: torch.compile's mode (reduce-overhead: CUDA graphs)")  # fmt: skip
    p.add_argument("--profile", type=int, default=0, metavar="STEPS",
                   help="after the timing, profile this many fast-path steps: the top operators, and on a "
                   "GPU how much of a step's wall time its kernels fill")  # fmt: skip
    for knob in ("data-on-device", "channels-last", "compile", "fused-adam", "cudnn-benchmark"):
        p.add_argument(f"--{knob}", action=argparse.BooleanOptionalAction, default=None,
                       help="fast path (default: what train picks for the device)")  # fmt: skip
    args = p.parse_args()

    device = pick_device(args.device)
    gpu, small = device.type == "cuda", args.image_size == 32
    if args.steps is None:
        args.steps = 50 if gpu else 10 if small else 3
    if args.warmup is None:
        args.warmup = 10 if gpu else 2 if small else 1
    if args.n_images is None:
        args.n_images = 50_000 if gpu else 10_000
    if args.threads:
        torch.set_num_threads(args.threads)
    data = np.random.default_rng(0).integers(0, 256, (args.n_images, 32, 32, 3), dtype=np.uint8)
    baseline, fast = Baseline(data, args, device), Fast(data, args, device)
    n_base = count_parameters(baseline.netG) + count_parameters(baseline.netD)
    n_fast = count_parameters(fast.run.G) + count_parameters(fast.run.D)
    assert n_base == n_fast, f"not the same model: {n_base} vs {n_fast} parameters"

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name()
    threads = f", {torch.get_num_threads()} threads" if device.type == "cpu" else ""
    print(f"device: {device} ({name}{threads}); torch {torch.__version__}")
    print(f"model: DCGAN {args.image_size}x{args.image_size}, nz {args.nz}, ngf {args.ngf}, ndf {args.ndf}, "
          f"{n_fast / 1e6:.2f} M parameters; batch {args.batch_size}; {args.n_images} synthetic 32x32 "
          "images")  # fmt: skip
    print(f"baseline: DataLoader + PIL transforms, {args.workers} workers, fp32, eager, Sigmoid + BCELoss")
    print("fast path: " + ", ".join(f"{k}={v}" for k, v in vars(fast.run.speed).items()))
    print(f"timing: {args.warmup} warm-up steps each, then {args.rounds} rounds x {args.steps} steps each, alternating",
          flush=True)  # fmt: skip

    for _ in range(args.warmup):
        baseline.step()
    for _ in range(args.warmup):
        fast.step()
    fast.finish()

    totals = {"baseline": [0.0, 0, 0.0], "fast": [0.0, 0, 0.0]}  # seconds, peak memory, CPU seconds
    for r in range(args.rounds):
        line = []
        for key, path in (("baseline", baseline), ("fast", fast)):
            seconds, peak, cpu = timed_chunk(path, args.steps, device)
            totals[key][0] += seconds
            totals[key][1] = max(totals[key][1], peak)
            totals[key][2] += cpu
            line.append(f"{key} {args.steps * args.batch_size / seconds:8.1f} img/s")
        print(f"  round {r + 1}: " + "   ".join(line), flush=True)

    images = args.rounds * args.steps * args.batch_size
    rate = {k: images / v[0] for k, v in totals.items()}
    print()
    print(f"{'path':<34}{'images/s':>10}{'peak memory':>14}{'25 CIFAR-10 epochs':>21}")
    for key, label in (("baseline", "baseline (pytorch/examples style)"), ("fast", "dcgan_ref fast path")):
        mem = f"{totals[key][1] / 2**30:.2f} GiB" if device.type == "cuda" else "n/a"
        print(f"{label:<34}{rate[key]:>10.1f}{mem:>14}{fmt_duration(CIFAR_EPOCHS_IMAGES / rate[key]):>21}")
    print(f"ratio fast / baseline: {rate['fast'] / rate['baseline']:.2f}x")
    if device.type == "cpu":
        # On a shared machine wall-clock rates depend on everyone else's load; the CPU time each
        # path burns per step (all its threads and worker processes) does not.
        cpu = {k: v[2] / (args.rounds * args.steps) for k, v in totals.items()}
        print(f"CPU seconds per step: baseline {cpu['baseline']:.2f} (workers included), fast path "
              f"{cpu['fast']:.2f}; ratio by CPU time: {cpu['baseline'] / cpu['fast']:.2f}x")  # fmt: skip
    if device.type != "cuda":
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
        print(f"peak memory (CPU): process max RSS {rss:.2f} GiB, both paths together (per path: CUDA only)")
    if args.profile:
        profile(fast, args.profile, device)


if __name__ == "__main__":
    main()
