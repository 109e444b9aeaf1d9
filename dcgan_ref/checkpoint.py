"""Checkpoints that resume a run exactly, and the stand-alone generator file.

A checkpoint holds both networks, both optimizers, the grad scaler, every RNG state, and
whatever the trainer adds (epoch, step, history). Files are written to a temporary name and
renamed, so a run killed while saving never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .models import Generator


def _atomic_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch CPU and (if present) CUDA RNG states."""
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(
    path: str | Path,
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    **extra: Any,
) -> None:
    """Write everything needed to continue training as if never stopped."""
    state = {
        "G": G.state_dict(),
        "D": D.state_dict(),
        "opt_G": opt_G.state_dict(),
        "opt_D": opt_D.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_states(),
        **extra,
    }
    _atomic_save(state, path)


def load_checkpoint(
    path: str | Path,
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    map_location: str | torch.device | None = None,
) -> dict[str, Any]:
    """Load a checkpoint into the given objects, restore RNG states; return the extra fields."""
    state = torch.load(path, map_location=map_location, weights_only=False)
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    opt_G.load_state_dict(state["opt_G"])
    opt_D.load_state_dict(state["opt_D"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    set_rng_states(state["rng"])
    known = {"G", "D", "opt_G", "opt_D", "scaler", "rng"}
    return {k: v for k, v in state.items() if k not in known}


def save_generator(path: str | Path, G: Generator) -> None:
    """The final generator on its own: weights plus what it takes to rebuild it."""
    config = {"nz": G.nz, "ngf": G.ngf, "nc": G.nc, "image_size": G.image_size}
    _atomic_save({"state_dict": G.state_dict(), "config": config}, path)


def generator_config_from_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, int]:
    """Infer nz, ngf, nc and image size from a generator state_dict (e.g. pytorch/examples' netG.pth)."""
    convs = sorted(
        (int(k.split(".")[1]), v) for k, v in sd.items() if k.startswith("main.") and v.dim() == 4
    )
    if len(convs) not in (4, 5):
        raise ValueError("not a DCGAN generator state_dict (expected 4 or 5 transposed convolutions)")
    first, last = convs[0][1], convs[-1][1]
    mult = 8 if len(convs) == 5 else 4
    return {"nz": first.shape[0], "ngf": first.shape[1] // mult, "nc": last.shape[1],
            "image_size": 64 if len(convs) == 5 else 32}  # fmt: skip


def load_generator(path: str | Path, map_location: str | torch.device | None = "cpu") -> Generator:
    """A Generator from ``generator.pt``, a training checkpoint, or a bare netG.pth state_dict."""
    obj = torch.load(path, map_location=map_location, weights_only=False)
    if isinstance(obj, dict) and "state_dict" in obj:
        sd = obj["state_dict"]
    elif isinstance(obj, dict) and "G" in obj:
        sd = obj["G"]
    elif isinstance(obj, dict):
        sd = obj
    else:
        raise ValueError(f"{path} holds a {type(obj).__name__}, not a generator")
    G = Generator(**generator_config_from_state_dict(sd))
    G.load_state_dict(sd)
    return G.eval()
