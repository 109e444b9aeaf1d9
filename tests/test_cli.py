"""The CLI end to end: artifacts, sampling, help, and one-line errors."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import dcgan_ref_main
from PIL import Image

from dcgan_ref.checkpoint import load_generator
from dcgan_ref.cli import build_parser, main
from dcgan_ref.keras_gan import KerasGenerator
from dcgan_ref.models import Generator

ROOT = Path(__file__).resolve().parents[1]


def run(*args, check=False):
    return subprocess.run([sys.executable, "-m", "dcgan_ref", *args], capture_output=True, text=True,
                          cwd=ROOT, check=check)  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["dcgan", "keras-cifar"])
def test_train_then_sample_writes_every_artifact(tmp_path, arch):
    out = tmp_path / "run"
    res = run("train", "--arch", arch, "--dataset", "synthetic", "--image-size", "32", "--max-steps", "12",
              "--out", str(out), "--synthetic-size", "320", "--batch-size", "32", "--ngf", "16", "--ndf", "16",
              "--no-progress", "--log-every", "5")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert (out / "checkpoints" / "last.pt").is_file()
    assert (out / "samples" / "epoch_001.png").is_file(), "one grid per completed epoch"
    assert (out / "samples" / "final.png").is_file()
    header, *rows = (out / "metrics.csv").read_text().splitlines()
    assert header.split(",") == ["epoch", "step", "batches", "loss_D", "loss_G", "D_x", "D_G_z1", "D_G_z2",
                                 "acc_real", "acc_fake"]  # fmt: skip
    assert len(rows) == 2, "epoch 1 complete (10 steps) and the partial epoch 2"
    for name in ("losses.png", "progress.gif", "generator.pt"):
        assert (out / name).is_file(), name
    gif = Image.open(out / "progress.gif")
    assert gif.n_frames == 2

    # the rest in this process (the same cli.main; the run above is the command as a user types it)
    grid = tmp_path / "grid.png"
    res = dcgan_ref_main("sample", "--checkpoint", out / "generator.pt", "--n", "16", "--out", grid)
    assert res.returncode == 0, res.stderr
    assert Image.open(grid).size == (4 * 32 + 5 * 2, 4 * 32 + 5 * 2)  # 4x4 grid, 2-pixel padding
    res = dcgan_ref_main("sample", "--checkpoint", out / "checkpoints" / "last.pt", "--n", "4", "--out", grid)
    assert res.returncode == 0, "a full training checkpoint works too"

    # the architecture travels with the files: generator.pt and the checkpoint rebuild the right nets
    assert torch.load(out / "generator.pt", weights_only=True)["config"]["arch"] == arch
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["config"]["arch"] == arch
    G = load_generator(out / "generator.pt")
    assert type(G) is {"dcgan": Generator, "keras-cifar": KerasGenerator}[arch]
    res = dcgan_ref_main("train", "--arch", arch, "--dataset", "synthetic", "--image-size", "32", "--max-steps", "14",
                         "--out", out, "--synthetic-size", "320", "--batch-size", "32", "--ngf", "16", "--ndf", "16",
                         "--no-progress", "--log-every", "5", "--resume")  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "resumed from" in res.stdout and "done: 14 steps" in res.stdout


def test_every_flag_has_help():
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.option_strings} has no help"


def test_bad_flags_and_paths_give_one_clear_line(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit) as e:
        main(["train", "--image-size", "48"])
    assert e.value.code == 2
    assert "invalid choice: 48" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--epochs", "0"])
    assert "must be a positive integer" in capsys.readouterr().err

    assert main(["sample", "--checkpoint", str(tmp_path / "nope.pt")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"error: no checkpoint at {tmp_path / 'nope.pt'}"

    from dcgan_ref import data

    def offline_download(root, *args, **kwargs):  # as torchvision does offline: folder made, then no network
        Path(root).mkdir(parents=True, exist_ok=True)
        raise OSError("<urlopen error [Errno -3] Temporary failure in name resolution>")

    monkeypatch.setattr(data.datasets, "CIFAR10", offline_download)
    code = main(["train", "--dataset", "cifar10", "--data-root", str(tmp_path / "nodata"), "--out",
                 str(tmp_path / "run"), "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and err[0].startswith("error: CIFAR-10 is not in")
    assert "--dataset synthetic" in err[0] and "--dataset digits" in err[0]
    assert not (tmp_path / "run").exists(), "a run that could not start left an empty output folder behind"
    assert not (tmp_path / "nodata").exists(), "the failed download left an empty --data-root behind"


@pytest.mark.parametrize(
    ("flag", "text", "words"),
    [("--epochs", "0", "must be a positive integer"), ("--workers", "-1", "must be an integer >= 0"),
     ("--lr-d", "0", "must be > 0"), ("--beta1", "1", "must be in [0, 1)"), ("--ema-decay", "1", "must be in (0, 1)"),
     ("--instance-noise", "-0.5", "must be >= 0"), ("--amp", "fp8", "invalid choice")],
)  # fmt: skip
def test_the_train_flags_are_trainconfig_settings(capsys, flag, text, words):
    # One source: no flags give TrainConfig's defaults; every setting but two has a flag; a flag's
    # bound is the setting's, refused by the parser and by TrainConfig in the same words.
    from dataclasses import asdict, fields

    from dcgan_ref.cli import _train_config
    from dcgan_ref.config import TrainConfig

    parser = build_parser()
    assert asdict(_train_config(parser.parse_args(["train"]))) == asdict(TrainConfig())
    train_parser = next(a for a in parser._actions if a.dest == "command").choices["train"]
    dests = {a.dest: a for a in train_parser._actions}
    assert {f.name for f in fields(TrainConfig)} - set(dests) == {"n_samples", "extra"}
    assert dests["epochs"].help.endswith(f"(default: {TrainConfig.epochs})")
    with pytest.raises(SystemExit):
        main(["train", flag, text])
    assert words in capsys.readouterr().err
    dest = next(a.dest for a in train_parser._actions if flag in a.option_strings)
    value = {"--amp": text}.get(flag) or float(text)
    if words != "invalid choice":
        with pytest.raises(ValueError, match=words.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
            TrainConfig(**{dest: value})
