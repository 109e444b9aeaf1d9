"""Stopping and resuming: what a checkpoint holds beyond the networks, what must match on --resume,
and Ctrl-C / SIGTERM stopping at a step boundary.

A resumed run is bit-identical to one never stopped: the checkpoint holds G, D, both optimizers,
the GradScaler, every RNG state, the noise generator's state, the loop's position and its record.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from . import distributed
from .artifacts import METRIC_KEYS
from .checkpoint import CheckpointError, load_checkpoint, load_file

if TYPE_CHECKING:
    from .config import TrainConfig
    from .train import Run

# On --resume: settings that define the run must match the checkpoint (else its weights, batch
# order or noise are another run's); the others may change and are applied (and said), except
# those that say nothing about the run (and lr, which is reported as lr_g and lr_d).
RESUME_MUST_MATCH = ("arch", "dataset", "image_size", "nz", "ngf", "ndf", "nc", "dropout", "seed", "batch_size",
                     "synthetic_size", "ema_decay")  # fmt: skip
RESUME_NOT_REPORTED = ("resume", "progress", "out", "extra", "lr")


class ResumeMismatchError(ValueError):
    """--resume with settings that define another run than the checkpoint's."""


def resume_changes(saved: dict[str, Any], cfg: TrainConfig, ckpt: Path) -> list[str]:
    """Compare the checkpoint's config with ``cfg``: raise ``ResumeMismatchError`` naming every
    setting that must match and differs; return 'name old -> new' for the others that differ."""
    now = asdict(cfg)
    relevant = set(RESUME_MUST_MATCH)
    if cfg.dataset != "synthetic":
        relevant.discard("synthetic_size")
    diffs = [f"--{k.replace('_', '-')} {saved[k]} (now {now[k]})" for k in RESUME_MUST_MATCH
             if k in relevant and k in saved and saved[k] != now[k]]  # fmt: skip
    if diffs:
        raise ResumeMismatchError(
            f"--resume: {ckpt} belongs to another run: it was trained with {', '.join(diffs)}; rerun with the "
            "checkpoint's settings, or choose a new --out to start a new run"
        )
    unchanged_or_not_said = (*RESUME_MUST_MATCH, *RESUME_NOT_REPORTED)
    return [f"{k} {saved[k]} -> {now[k]}" for k in now
            if k not in unchanged_or_not_said and k in saved and saved[k] != now[k]]  # fmt: skip


@dataclass
class Position:
    """Where the loop is and what it has recorded: with the networks, optimizers and RNG states,
    what a checkpoint holds. ``epoch_sums``: the current epoch's metric sums (on the device)."""

    epoch_sums: torch.Tensor
    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)  # every step's metrics
    epoch_rows: list[dict[str, float]] = field(default_factory=list)  # one per completed epoch

    def entries(self) -> dict[str, Any]:
        """The checkpoint's entries for the position (``epoch_sums`` is saved apart: averaged over ranks)."""
        return {"step": self.step, "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
                "history": self.history, "epoch_rows": self.epoch_rows}  # fmt: skip


def start_or_resume(run: Run, ckpt_path: Path) -> tuple[Position, list[str]]:
    """The loop's starting position: step 0, or with ``--resume`` the checkpoint's, loaded into the
    run (networks, optimizers, scaler, RNG states, noise generator, EMA). Also the settings changed
    since the checkpoint ('name old -> new'), which are put in force."""
    cfg, info = run.cfg, run.dist
    fresh = Position(epoch_sums=torch.zeros(len(METRIC_KEYS), device=run.device))
    if not (cfg.resume and ckpt_path.exists()):
        if cfg.resume:
            info.say(f"--resume: no checkpoint at {ckpt_path} yet, starting fresh")
        elif ckpt_path.exists():
            info.say(f"note: {ckpt_path} exists; this new run replaces it (pass --resume to continue it instead)")
        return fresh, []
    state = load_file(ckpt_path, map_location=run.device)  # every rank loads the file rank 0 wrote
    saved_cfg = state.get("config") if isinstance(state, dict) else None
    changes = resume_changes(saved_cfg, cfg, ckpt_path) if isinstance(saved_cfg, dict) else []
    try:
        saved = load_checkpoint(ckpt_path, run.G, run.D, run.opt_G, run.opt_D, run.scaler, state=state)
        if run.ema is not None:
            run.ema.load_state_dict(saved["G_ema_state"])
    except (RuntimeError, KeyError) as err:  # a checkpoint without a config: shapes tell
        why = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"--resume: {ckpt_path} does not fit this run's networks ({why}); rerun with "
                              "the checkpoint's settings or choose a new --out") from err  # fmt: skip
    apply_optimizer_settings(run)
    run.noise_gen.set_state(saved["noise_gen"].to(run.noise_gen.get_state().device))
    pos = Position(
        epoch_sums=saved["epoch_sums"].to(run.device),  # the mean over ranks: their mean stays right
        step=saved["step"], epoch=saved["epoch"], step_in_epoch=saved["step_in_epoch"],
        history=list(saved["history"]), epoch_rows=list(saved["epoch_rows"]),
    )  # fmt: skip
    info.say(f"resumed from {ckpt_path}: epoch {pos.epoch}, step {pos.step}")
    if changes:
        info.say("resume: settings changed and applied: " + "; ".join(changes))
    return pos, changes


def apply_optimizer_settings(run: Run) -> None:
    """After loading the optimizers' state (which brings the old hyperparameters along), put the
    configured learning rates, betas and kernel choice back in force."""
    for opt, lr in ((run.opt_G, run.cfg.lr_g), (run.opt_D, run.cfg.lr_d)):
        for group in opt.param_groups:
            group["lr"] = lr
            group["betas"] = (run.cfg.beta1, run.cfg.beta2)
            group["fused"] = True if run.speed.fused_adam else None
            if run.speed.fused_adam:
                group["foreach"] = None


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C / SIGTERM: training stopped at a step boundary after writing a checkpoint."""


class StopRequest:
    """SIGINT / SIGTERM set a flag the loop checks after every step; a second signal interrupts at once."""

    def __init__(self) -> None:
        self.requested = False

    def agreed(self, info: distributed.DistInfo, device: torch.device) -> bool:
        """Whether any rank was asked to stop (every rank must stop at the same step): a collective,
        called by all ranks at the same step."""
        flag = torch.tensor([float(self.requested)], device=device)
        return bool(distributed.mean_over_ranks(flag, info).item() > 0)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        # a signal the parent made us ignore (nohup, a background job) stays ignored
        sigs = tuple(s for s in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(s) is not signal.SIG_IGN)
        old = {s: signal.getsignal(s) for s in sigs}

        def handler(signum: int, frame: object) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        for s in sigs:
            signal.signal(s, handler)
        try:
            yield
        finally:
            for s in sigs:
                signal.signal(s, old[s])
