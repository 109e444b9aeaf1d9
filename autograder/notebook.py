"""What a lesson's setup cell calls: find out where we run, pick the device, fix the seeds."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

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
