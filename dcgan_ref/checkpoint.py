"""Checkpoints that resume a run exactly, and the stand-alone generator file.

A checkpoint holds both networks, both optimizers, the grad scaler, every RNG state, and
whatever the trainer adds (epoch, step, history, config). Every file is written to a temporary
name, flushed to disk (fsync) and renamed, so a run killed or out of disk space while saving
never leaves a truncated checkpoint behind; a failed write removes its temporary file.

Every file is read with ``torch.load(weights_only=True)``: tensors, numbers, strings, lists and
dicts only, so loading a downloaded ``netG.pth`` cannot run code hidden in its pickle. RNG states
are stored as tensors and tuples for that reason (NumPy's state as a tensor, not an ndarray).
"""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .keras_gan import KerasGenerator
from .models import Generator


class CheckpointError(ValueError):
    """A checkpoint or generator file that cannot be used: missing, damaged, unsafe or of the
    wrong kind. The message names the file, the cause and what to do."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Any, what: str = "file") -> None:
    """Write ``path`` through ``write(tmp_path)``, fsync it, rename it into place.

    On any failure (a full disk, a Ctrl-C) the temporary file is removed and the old ``path``,
    if any, is left as it was; an ``OSError`` becomes a one-line ``OSError`` naming the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        write(tmp)
        if not tmp.exists():  # the writer had nothing to write
            return
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, (OSError, RuntimeError)) and not isinstance(err, CheckpointError):
            # torch.save reports a full disk as RuntimeError("[enforce fail at inline_container.cc...")
            reason = err.strerror if isinstance(err, OSError) and err.strerror else _short(err)
            raise OSError(f"could not write the {what} {path}: {reason}; free some space or choose another "
                          "--out (the previous file, if any, is intact)") from err  # fmt: skip
        raise
    _fsync_dir(path.parent)


def _short(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    line = text[0] if text else type(err).__name__
    if "unexpected pos" in line or "file write failed" in line or "No space" in line:
        return "no space left on the device"
    if "central directory" in line:
        return "its zip archive ends early"
    return line[:160]


def _atomic_save(obj: Any, path: str | Path, what: str = "checkpoint") -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp), what)


def rng_states() -> dict[str, Any]:
    """Python, NumPy, torch CPU and (if present) CUDA RNG states, as weights_only-loadable values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    """Restore what ``rng_states`` returned."""
    random.setstate(_as_tuple(states["python"]))
    kind, keys, pos, has_gauss, cached = states["numpy"]
    keys = keys.numpy() if isinstance(keys, torch.Tensor) else np.asarray(keys)
    np.random.set_state((kind, keys.astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _as_tuple(x: Any) -> Any:
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(
    path: str | Path,
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    **loop_state: Any,
) -> None:
    """Write everything needed to continue training as if never stopped (atomically, fsynced):
    the networks, optimizers, scaler and RNG states, and ``loop_state`` (the loop's position and
    record, the config, the EMA: what ``load_checkpoint`` returns)."""
    state = {
        "G": G.state_dict(),
        "D": D.state_dict(),
        "opt_G": opt_G.state_dict(),
        "opt_D": opt_D.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_states(),
        **loop_state,
    }
    _atomic_save(state, path, "checkpoint")


def load_file(path: str | Path, map_location: str | torch.device | None = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one clear ``CheckpointError`` for each way it fails.

    Missing, not a PyTorch file, truncated or damaged, or holding objects other than tensors and
    plain containers (refused: unpickling those could run code).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - every way a file can fail to load gets its one line below
        cause = err
    with open(path, "rb") as f:
        head = f.read(4)
    size = path.stat().st_size
    if not (head.startswith(b"PK") or head.startswith(b"\x80")):  # torch's zip format, or its legacy pickle
        raise CheckpointError(f"{path} is not a PyTorch checkpoint (neither torch's zip format nor a pickle)") \
            from cause
    if isinstance(cause, pickle.UnpicklingError) and "Weights only load failed" in str(cause):
        raise CheckpointError(
            f"{path} holds pickled Python objects besides tensors; refusing to load it (unpickling them could run "
            "code). Load only files saved by dcgan_ref or plain state_dicts (torch.save(model.state_dict()))"
        ) from cause
    raise CheckpointError(
        f"{path} is damaged or truncated ({size} bytes; {_short(cause)}): it cannot be read. "
        "Delete it (or restore a copy); without --resume training starts fresh"
    ) from cause


def load_checkpoint(
    path: str | Path,
    G: nn.Module,
    D: nn.Module,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler | None = None,
    map_location: str | torch.device | None = None,
    state: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load a checkpoint into the given objects, restore RNG states; return the rest (the loop state
    ``save_checkpoint`` was given).

    ``state``: the already loaded file (``load_file(path)``), to avoid reading it twice.
    """
    if state is None:
        state = load_file(path, map_location)
    if not isinstance(state, dict) or not {"G", "D", "opt_G", "opt_D", "rng"} <= set(state):
        raise CheckpointError(f"{path} is not a dcgan_ref training checkpoint (no G, D, optimizers and RNG states)")
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    opt_G.load_state_dict(state["opt_G"])
    opt_D.load_state_dict(state["opt_D"])
    if scaler is not None and state.get("scaler") is not None:
        scaler.load_state_dict(state["scaler"])
    set_rng_states(state["rng"])
    known = {"G", "D", "opt_G", "opt_D", "scaler", "rng"}
    return {k: v for k, v in state.items() if k not in known}


def generator_config(G: nn.Module) -> dict[str, Any]:
    """What it takes to rebuild ``G``: its architecture and sizes."""
    config: dict[str, Any] = {"arch": getattr(G, "arch", "dcgan"), "nz": G.nz, "ngf": G.ngf, "nc": G.nc,
                              "image_size": G.image_size}  # fmt: skip
    if isinstance(G, KerasGenerator):
        config["batchnorm"] = G.batchnorm
    return config


def save_generator(path: str | Path, G: nn.Module, metadata: dict[str, Any] | None = None) -> None:
    """The final generator on its own: weights plus what it takes to rebuild it (and ``metadata``,
    e.g. whether these are EMA weights)."""
    _atomic_save({"state_dict": G.state_dict(), "config": generator_config(G), **(metadata or {})}, path,
                 "generator")  # fmt: skip


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def describe_state_dict(sd: dict[str, torch.Tensor]) -> str:
    """'dcgan-generator', 'keras-generator', 'dcgan-discriminator', 'keras-discriminator' or 'unknown'."""
    if "project.weight" in sd:
        return "keras-generator"
    mains = sorted((int(k.split(".")[1]), v) for k, v in sd.items() if k.startswith("main.") and k.endswith(".weight"))
    if not mains:
        return "unknown"
    if any(v.dim() == 2 for _, v in mains):
        return "keras-discriminator"
    convs = [v for _, v in mains if v.dim() == 4]
    if not convs:
        return "unknown"
    if convs[-1].shape[0] == 1 and "main.1.weight" not in sd:  # ends in 1 channel; no BN on the input layer
        return "dcgan-discriminator"
    return "dcgan-generator"


def generator_config_from_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Infer the architecture, nz, ngf, nc and image size from a generator state_dict (ours, or
    pytorch/examples' netG.pth). Raises ``ValueError`` for anything that is not a generator."""
    kind = describe_state_dict(sd)
    if kind.endswith("discriminator"):
        raise ValueError("it holds a discriminator, not a generator: pass the generator's file "
                         "(generator.pt, checkpoints/last.pt or netG_*.pth)")  # fmt: skip
    if kind == "keras-generator":
        proj = sd["project.weight"]
        convs = sorted((int(k.split(".")[1]), v) for k, v in sd.items() if k.startswith("main.") and v.dim() == 4)
        return {"arch": "keras-cifar", "nz": proj.shape[1], "ngf": proj.shape[0] // 32, "nc": convs[-1][1].shape[0],
                "image_size": 32, "batchnorm": any(k.endswith("running_mean") for k in sd)}  # fmt: skip
    if kind == "unknown":
        raise ValueError("not a DCGAN or Keras-CIFAR generator state_dict")
    convs = sorted((int(k.split(".")[1]), v) for k, v in sd.items() if k.startswith("main.") and v.dim() == 4)
    if len(convs) not in (4, 5):
        raise ValueError("not a DCGAN generator state_dict (expected 4 or 5 transposed convolutions)")
    first, last = convs[0][1], convs[-1][1]
    mult = 8 if len(convs) == 5 else 4
    return {"arch": "dcgan", "nz": first.shape[0], "ngf": first.shape[1] // mult, "nc": last.shape[1],
            "image_size": 64 if len(convs) == 5 else 32}  # fmt: skip


def build_generator(config: dict[str, Any]) -> nn.Module:
    """An untrained generator of the architecture and sizes ``config`` names."""
    arch = config.get("arch", "dcgan")
    sizes = {k: int(config[k]) for k in ("nz", "ngf", "nc", "image_size")}
    if arch == "dcgan":
        return Generator(**sizes)
    if arch == "keras-cifar":
        return KerasGenerator(**sizes, batchnorm=bool(config.get("batchnorm", True)))
    raise ValueError(f"unknown architecture {arch!r}")


def load_generator(path: str | Path, map_location: str | torch.device | None = "cpu", ema: bool = True) -> nn.Module:
    """A generator (DCGAN or Keras-CIFAR) from ``generator.pt``, a training checkpoint, or a bare
    netG.pth state_dict, in eval mode. From a checkpoint of a run with an EMA of G, the EMA
    weights unless ``ema=False``. Raises ``CheckpointError`` with a one-line reason otherwise."""
    obj = load_file(path, map_location)
    if isinstance(obj, dict) and "state_dict" in obj:
        sd = obj["state_dict"]
    elif isinstance(obj, dict) and "G" in obj:
        sd = obj["G_ema"] if ema and obj.get("G_ema") is not None else obj["G"]
    elif _is_tensor_dict(obj):
        sd = obj
    else:
        raise CheckpointError(f"{path} holds a {type(obj).__name__}, not a generator or a training checkpoint")
    if not _is_tensor_dict(sd):
        raise CheckpointError(f"{path} holds no generator weights")
    try:
        G = build_generator(generator_config_from_state_dict(sd))
        G.load_state_dict(sd)
    except (ValueError, RuntimeError, KeyError, IndexError) as err:
        raise CheckpointError(f"{path}: {_short(err)}") from err
    return G.eval()
