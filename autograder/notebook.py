"""What a lesson's setup cell calls: find out where we run, pick the device, fix the seeds; and
the profile the training lessons (07-10) run in."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any

import torch

from autograder.distribution import too_old, upgrade_hint


def in_colab() -> bool:
    """True inside Google Colab."""
    return "google.colab" in sys.modules


def grading() -> bool:
    """True while nbgrader (or ``python -m autograder check``) executes the notebook.

    Lessons skip long work (training, downloads) then, so grading needs seconds and no GPU.
    """
    return bool(os.environ.get("NBGRADER_EXECUTION"))


def pick_device(verbose: bool = False) -> torch.device:
    """CUDA if there is a GPU, else Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        device = torch.device("cuda")
        why = f"GPU found: {torch.cuda.get_device_name(0)}. Training runs here, tens of times faster."
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        device = torch.device("mps")
        why = "Apple GPU (MPS) found."
    else:
        device = torch.device("cpu")
        why = (
            "No GPU: everything runs on the CPU. Fine for the exercises; for the training "
            "lessons in Colab choose Runtime > Change runtime type > GPU."
        )
    if verbose:
        print(f"device: {device} ({why})")
    return device


def _installed(dist: str) -> str | None:
    """The installed version of distribution ``dist``, None if it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def setup(seed: int = 0) -> torch.device:
    """Print where the notebook runs, seed torch, and return the device to use.

    Says in one line what to upgrade when torch or torchvision is older than the course needs.
    """
    where = "Google Colab" if in_colab() else f"local Python {platform.python_version()}"
    if grading():
        where += " (autograding: long cells are skipped)"
    print(f"running in: {where}; torch {torch.__version__}")
    old = too_old({"torch": torch.__version__, "torchvision": _installed("torchvision")})
    if old:
        print(upgrade_hint(old))  # stdout: nbgrader zeroes a cell that writes to stderr
    torch.manual_seed(seed)
    return pick_device(verbose=True)


#: ``DCGAN_LESSON_PROFILE=gpu`` or ``cpu``: the profile the training lessons run in, whatever the device
PROFILE_ENV = "DCGAN_LESSON_PROFILE"
PROFILES = ("gpu", "cpu")
#: images of the synthetic CIFAR-shaped set a rehearsal trains on in place of CIFAR-10
REHEARSAL_IMAGES = 256


@dataclass(frozen=True)
class Profile:
    """What lessons 07-10 train: ``gpu``, CIFAR-10 with the full-size networks; ``cpu``, the 1,797
    digits with small ones. A lesson has one code path; only its data set and settings differ.

    ``rehearsal``: the gpu profile chosen with ``DCGAN_LESSON_PROFILE=gpu``, so that CI runs every
    line of it on a CPU: ``REHEARSAL_IMAGES`` synthetic CIFAR-shaped images replace CIFAR-10 and
    each lesson's rehearsal settings (a few steps) apply on top of its gpu ones.
    """

    name: str
    rehearsal: bool = False

    @property
    def dataset(self) -> str:
        """The trainer's name of the data set: cifar10, synthetic (rehearsal) or digits."""
        if self.name == "cpu":
            return "digits"
        return "synthetic" if self.rehearsal else "cifar10"

    @property
    def data_name(self) -> str:
        """The data set as the lesson's text names it."""
        return {"cifar10": "CIFAR-10", "synthetic": "synthetic CIFAR-shaped images", "digits": "digits"}[self.dataset]

    def settings(self, gpu: Any, cpu: Any, rehearsal: Any = None) -> Any:
        """This profile's value of one of a lesson's settings: ``gpu`` or ``cpu``; in a rehearsal
        ``rehearsal`` (for dicts: its keys over the gpu ones), else the gpu value."""
        if self.name == "cpu":
            return cpu
        if not self.rehearsal or rehearsal is None:
            return gpu
        return {**gpu, **rehearsal} if isinstance(gpu, dict) else rehearsal

    def train_data(self, data_root: str) -> dict[str, Any]:
        """The data set as ``dcgan_ref.train.TrainConfig`` fields."""
        extra = {"synthetic_size": REHEARSAL_IMAGES} if self.dataset == "synthetic" else {}
        return {"dataset": self.dataset, "data_root": data_root, **extra}

    def images(self, data_root: str) -> torch.Tensor:
        """The whole data set as float (N, nc, 32, 32) in [-1, 1] on the CPU (nc: 1 digits, 3 else);
        CIFAR-10 is downloaded into ``data_root`` on first use."""
        from dcgan_ref.data import make_dataset, to_gan_range

        return to_gan_range(make_dataset(self.dataset, data_root, image_size=32, n_synthetic=REHEARSAL_IMAGES).data)

    def describe(self) -> str:
        """One line for the lesson's output."""
        what = {"gpu": "CIFAR-10, full-size networks", "cpu": "the digits, small networks"}[self.name]
        if self.rehearsal:
            what = f"{REHEARSAL_IMAGES} synthetic CIFAR-shaped images in place of CIFAR-10, a few steps"
        return f"profile: {self.name} ({what})"


def lesson_profile(device: torch.device, name: str | None = None) -> Profile:
    """The profile of a training lesson: ``name``, else ``DCGAN_LESSON_PROFILE``, else gpu on a CUDA
    device and cpu elsewhere. gpu chosen through the variable is a rehearsal (see ``Profile``)."""
    forced = name or os.environ.get(PROFILE_ENV, "").strip().lower() or None
    if forced is not None and forced not in PROFILES:
        print(f"{PROFILE_ENV}={forced!r} is neither gpu nor cpu: ignored")  # stdout, one line
        forced = None
    chosen = forced or ("gpu" if device.type == "cuda" else "cpu")
    return Profile(chosen, rehearsal=name is None and forced == "gpu")
