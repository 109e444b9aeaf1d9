"""Every bad input to ``python -m dcgan_ref`` ends in one line on stderr, no traceback, nothing
left behind. Each case runs ``dcgan_ref.cli.main``, what ``python -m dcgan_ref`` runs, in this
process (a traceback would fail the test itself); the full disk runs the command as a subprocess, as
a user would, since its file-size limit must apply to the trainer's process only.

Cases: a truncated JPEG in a folder data set, a truncated checkpoint with --resume, sample on a
text file / on a discriminator (ours and pytorch/examples' layout) / on a pickle that would run
code, a full disk (a per-process file-size limit makes the checkpoint write fail, as a full disk
does), resuming with other defining settings, and flag combinations that cannot be honoured.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import dcgan_ref_main
from PIL import Image

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--dataset", "synthetic", "--synthetic-size", "64", "--image-size", "32", "--ngf", "8", "--ndf", "8",
        "--batch-size", "16", "--no-progress", "--device", "cpu", "--log-every", "2"]  # fmt: skip


def cli(*args, preexec_fn=None) -> subprocess.CompletedProcess:
    """``python -m dcgan_ref ARGS``: a subprocess when ``preexec_fn`` must shape its process, else
    ``cli.main(ARGS)`` here (conftest.dcgan_ref_main)."""
    if preexec_fn is None:
        return dcgan_ref_main(*args)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env.pop("DCGAN_REF_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "dcgan_ref", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=300, preexec_fn=preexec_fn)  # fmt: skip


def one_line(res: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The run failed with ``code`` and said why in exactly one line containing every needle."""
    lines = res.stderr.strip().splitlines()
    assert res.returncode == code, f"exit {res.returncode}, expected {code}:\n{res.stderr[-3000:]}"
    assert "Traceback" not in res.stderr, res.stderr[-3000:]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{res.stderr[-3000:]}"
    for needle in needles:
        assert needle in lines[0], f"{needle!r} missing from: {lines[0]}"
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    res = cli("train", *TINY, "--epochs", "1", "--out", out)
    assert res.returncode == 0, res.stderr
    return out


def test_truncated_jpeg_in_a_folder_names_the_file_and_leaves_nothing(tmp_path):
    folder = tmp_path / "images" / "cls"
    folder.mkdir(parents=True)
    for i in range(6):
        pixels = np.random.default_rng(i).integers(0, 256, (40, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.jpg")
    bad = folder / "3.jpg"
    bad.write_bytes(bad.read_bytes()[:400])
    out = tmp_path / "run"
    for workers in ("1", "0"):  # the error raised in a DataLoader worker and in the main process
        res = cli("train", "--dataset", "folder", "--data-root", tmp_path / "images", "--image-size", "32",
                  "--ngf", "8", "--ndf", "8", "--batch-size", "2", "--no-progress", "--device", "cpu",
                  "--workers", workers, "--out", out)  # fmt: skip
        one_line(res, 1, str(bad), "cannot be read", "remove or replace it")
        assert not out.exists(), f"a run that could not train left {sorted(p.name for p in out.rglob('*'))}"


def test_truncated_checkpoint_on_resume_says_it_is_damaged(trained, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    data = (trained / "checkpoints" / "last.pt").read_bytes()
    (out / "checkpoints" / "last.pt").write_bytes(data[: len(data) // 3])
    res = cli("train", *TINY, "--epochs", "1", "--out", out, "--resume")
    one_line(res, 1, str(out / "checkpoints" / "last.pt"), "damaged or truncated")
    assert sorted(p.name for p in out.rglob("*")) == ["checkpoints", "last.pt"], "nothing may be added"


def test_sample_refuses_what_is_not_a_generator(trained, tmp_path):
    for content in ("not a checkpoint\n", "hello\n"):
        text = tmp_path / "notes.pt"
        text.write_text(content)
        res = cli("sample", "--checkpoint", text, "--out", tmp_path / "g.png")
        one_line(res, 1, str(text), "not a PyTorch checkpoint")

    ours = tmp_path / "netD.pth"
    torch.save(torch.load(trained / "checkpoints" / "last.pt", weights_only=True)["D"], ours)
    from test_models import CanonicalD  # pytorch/examples' netD layout

    theirs = tmp_path / "netD_epoch_0.pth"
    torch.save(CanonicalD().state_dict(), theirs)
    from dcgan_ref.keras_gan import KerasDiscriminator

    keras = tmp_path / "keras_D.pth"
    torch.save(KerasDiscriminator().state_dict(), keras)
    for path in (ours, theirs, keras):
        res = cli("sample", "--checkpoint", path, "--out", tmp_path / "g.png")
        one_line(res, 1, str(path), "holds a discriminator")
    assert not (tmp_path / "g.png").exists()


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {MARKER}",))


MARKER = Path("/tmp") / f"dcgan_ref_pwned_{os.getpid()}"


def test_loading_never_runs_code_from_a_pickle(tmp_path):
    MARKER.unlink(missing_ok=True)
    for name, obj in [("netG.pth", _RunsCode()), ("generator.pt", {"state_dict": _RunsCode(), "config": {}})]:
        path = tmp_path / name
        torch.save(obj, path)
        one_line(cli("sample", "--checkpoint", path, "--out", tmp_path / "g.png"), 1, str(path), "refusing to load")
        assert not MARKER.exists(), "unpickling ran the file's code"
    # the same file with weights_only=False would have run it: the test can tell
    torch.load(tmp_path / "netG.pth", weights_only=False)
    assert MARKER.exists()
    MARKER.unlink()


def _file_size_limit(nbytes: int):
    def limit() -> None:  # in the child: writes past nbytes fail with EFBIG, as a full disk fails them
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))

    return limit


def test_full_disk_at_the_first_checkpoint_is_one_line_and_leaves_nothing(trained, tmp_path):
    size = (trained / "checkpoints" / "last.pt").stat().st_size
    out = tmp_path / "run"
    res = cli("train", *TINY, "--epochs", "1", "--out", out, preexec_fn=_file_size_limit(size // 2))
    one_line(res, 1, "could not write the checkpoint", str(out / "checkpoints" / "last.pt"))
    assert not out.exists(), f"left behind: {sorted(str(p) for p in out.rglob('*'))}"


def test_resume_with_other_defining_settings_names_each(trained, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "last.pt").write_bytes((trained / "checkpoints" / "last.pt").read_bytes())
    args = [a if a != "8" else "16" for a in TINY]  # --ngf 16 --ndf 16
    args[args.index("--image-size") + 1] = "64"
    res = cli("train", *args, "--epochs", "2", "--out", out, "--resume")
    one_line(res, 1, "belongs to another run", "--image-size 32 (now 64)", "--ngf 8 (now 16)", "--ndf 8 (now 16)")
    assert sorted(p.name for p in out.rglob("*")) == ["checkpoints", "last.pt"]


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--ema-decay", "1.5"], ["--ema-decay", "(0, 1)"]),
        (["--dropout", "0.3"], ["--dropout applies to --arch keras-cifar only"]),
        (["--arch", "keras-cifar", "--image-size", "64"], ["32x32 only"]),
        (["--compile-mode", "reduce-overhead"], ["without --compile"]),
        (["--noise-anneal-steps", "10"], ["needs --instance-noise"]),
        (["--fid-n", "100"], ["need --fid-every"]),
        (["--lr-g", "0"], ["--lr-g", "must be > 0"]),
        (["--nc", "2"], ["--nc", "invalid choice"]),
        (["--dataset", "imagenet"], ["--dataset", "invalid choice"]),
    ],
)
def test_flags_that_cannot_be_honoured_are_refused(tmp_path, args, needles):
    out = tmp_path / "run"
    one_line(cli("train", *TINY, *args, "--out", out), 2, *needles)
    assert not out.exists()


def test_synthetic_size_with_another_data_set_is_refused(tmp_path):
    res = cli("train", "--dataset", "digits", "--synthetic-size", "100", "--out", tmp_path / "run")
    one_line(res, 2, "--synthetic-size applies to --dataset synthetic only")
