"""What a training run writes, and the run log that writes it from the loop.

At the start: ``config.json`` (the resolved config, speed settings, device, versions; one session
per (re)start). Every epoch: a checkpoint (resumable exactly; fsynced, atomic), then
``metrics.csv`` (never ahead of the checkpoint), a sample grid from one fixed noise batch,
optionally FID. At the end: generator.pt, losses.png (every step's losses) and progress.gif.
A run that fails before its first checkpoint removes what it wrote (``OutputGuard``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import platform
import shutil
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from . import distributed
from ._version import __version__
from .checkpoint import atomic_write, save_checkpoint, save_generator
from .config import TrainConfig
from .models import count_parameters
from .speed import cpu_has_bf16_units, cpu_name

if TYPE_CHECKING:
    from torch import nn

    from .resume import Position
    from .train import Run

# what train_step logs, in the order of metrics.csv's columns and of the history's entries
METRIC_KEYS = ("loss_D", "loss_G", "D_x", "D_G_z1", "D_G_z2", "acc_real", "acc_fake")
CHECKPOINT = Path("checkpoints") / "last.pt"


# ---------------------------------------------------------------------------------------------
# The run log: what the loop records and writes


class RunLog:
    """The loop's record and its files: every step's metrics (read back from the device every
    ``log_every`` steps: the loop's only host syncs), checkpoints, metrics.csv, sample grids, FID,
    TensorBoard and the progress bar. Every rank calls every method (the averages are
    collectives); rank 0 alone writes. ``sample``: the sampler of the grids (train.sample_images).
    """

    def __init__(self, run: Run, out: Path, pos: Position, sample: Callable[[nn.Module, torch.Tensor], torch.Tensor]
                 ) -> None:  # fmt: skip
        self.run, self.out, self.pos, self.sample = run, out, pos, sample
        self.info = run.dist
        self.guard = OutputGuard(out)
        self.pending: list[tuple[int, int, torch.Tensor]] = []  # (step, epoch, logs) not read back yet
        self.writer: Any = None  # TensorBoard's SummaryWriter
        self.inception: Any = None  # FID's feature extractor
        self.bar: Any = None

    def open(self, changes: list[str]) -> None:
        """The output folders, config.json, TensorBoard, FID's network (a missing one stops the run
        now), the progress bar."""
        cfg, out = self.run.cfg, self.out
        if self.info.is_main:
            self.guard.mkdir(out / "checkpoints")
            self.guard.mkdir(out / "samples")
            self.guard.will_write(out / "config.json")
            write_config_json(out / "config.json", self.run, self.pos.step, changes)
            if cfg.tensorboard:
                from torch.utils.tensorboard import SummaryWriter

                self.guard.mkdir(out / "tensorboard")
                self.writer = SummaryWriter(str(out / "tensorboard"))
        if cfg.fid_every and self.info.is_main:
            from . import fid

            self.inception = fid.load_inception(cfg.fid_backend, self.run.device)
        n_steps = self.run.total_steps
        self.bar = tqdm(total=n_steps, initial=min(self.pos.step, n_steps),
                        disable=not (cfg.progress and self.info.is_main), desc="train", unit="step")  # fmt: skip

    def record(self, logs: dict[str, torch.Tensor]) -> None:
        """One step's logs (still on the device) into the epoch's sums; the position moves on."""
        pos = self.pos
        stacked = torch.stack([logs[k].float() for k in METRIC_KEYS])
        pos.epoch_sums += stacked
        pos.step += 1
        pos.step_in_epoch += 1
        self.pending.append((pos.step, pos.epoch, stacked.detach()))
        self.bar.update(1)

    def read_back(self) -> None:
        """The host sync: every step's logs since the last one, into the history (and TensorBoard)."""
        if not self.pending:
            return
        history = self.pos.history
        block = distributed.mean_over_ranks(torch.stack([p[2] for p in self.pending]), self.info).tolist()
        for (s, e, _), values in zip(self.pending, block, strict=True):
            history.append({"step": s, "epoch": e, **dict(zip(METRIC_KEYS, values, strict=True))})
        if self.writer is not None:
            for row in history[-len(self.pending) :]:
                for k in METRIC_KEYS:
                    self.writer.add_scalar(f"train/{k}", row[k], row["step"])
        self.pending.clear()
        last = history[-1]
        self.bar.set_postfix(loss_D=f"{last['loss_D']:.3f}", loss_G=f"{last['loss_G']:.3f}",
                             D_x=f"{last['D_x']:.2f}", D_G_z=f"{last['D_G_z1']:.2f}")  # fmt: skip

    def checkpoint(self) -> None:
        """last.pt: the run at this step (the metric sums averaged over ranks); from here on the
        run's files stay even if it fails."""
        self.read_back()
        run = self.run
        epoch_sums = distributed.mean_over_ranks(self.pos.epoch_sums, self.info).cpu()
        if self.info.is_main:
            ema_entries = {} if run.ema is None else {"G_ema": run.ema.model.state_dict(),
                                                      "G_ema_state": run.ema.state_dict()}  # fmt: skip
            save_checkpoint(self.out / CHECKPOINT, run.G, run.D, run.opt_G, run.opt_D, run.scaler,
                            **self.pos.entries(), noise_gen=run.noise_gen.get_state(), epoch_sums=epoch_sums,
                            config=asdict(run.cfg), **ema_entries)  # fmt: skip
            self.guard.armed = False

    def end_epoch(self) -> None:
        """The epoch's row (and FID), then the checkpoint, metrics.csv and the epoch's sample grid."""
        pos, cfg = self.pos, self.run.cfg
        row = epoch_row(pos.epoch, pos.step, distributed.mean_over_ranks(pos.epoch_sums, self.info),
                        pos.step_in_epoch)  # fmt: skip
        if cfg.fid_every and (pos.epoch + 1) % cfg.fid_every == 0:
            row["fid"] = self.fid()
            if self.writer is not None:
                self.writer.add_scalar("fid", row["fid"], pos.step)
        pos.epoch_rows.append(row)
        pos.epoch, pos.step_in_epoch = pos.epoch + 1, 0
        pos.epoch_sums.zero_()
        self.checkpoint()
        self.write_metrics(pos.epoch_rows)
        self.save_samples(f"epoch_{pos.epoch:03d}.png")

    def interrupted(self) -> None:
        """Ctrl-C: a checkpoint and the metrics of the completed epochs."""
        self.checkpoint()
        self.write_metrics(self.pos.epoch_rows)
        self.bar.close()

    def finish(self) -> None:
        """The final checkpoint, metrics.csv (with a partial last epoch), grid, generator.pt, plot and GIF."""
        self.checkpoint()
        pos, run, out = self.pos, self.run, self.out
        rows = list(pos.epoch_rows)
        if pos.step_in_epoch:  # a run stopped mid-epoch (--max-steps) still reports what it did
            rows.append(epoch_row(pos.epoch, pos.step, distributed.mean_over_ranks(pos.epoch_sums, self.info),
                                  pos.step_in_epoch))  # fmt: skip
        if self.info.is_main:
            self.write_metrics(rows)
            self.save_samples("final.png")
            meta = {"ema": True, "ema_decay": run.cfg.ema_decay} if run.ema is not None else {"ema": False}
            save_generator(out / "generator.pt", run.G_sample, meta)
            atomic_write(out / "losses.png", lambda tmp: plot_losses(pos.history, tmp), "loss plot")
            atomic_write(out / "progress.gif", lambda tmp: make_gif(out / "samples", tmp), "progress GIF")

    def write_metrics(self, rows: list[dict[str, float]]) -> None:
        if self.info.is_main:
            self.guard.will_write(self.out / "metrics.csv")
            write_metrics(self.out / "metrics.csv", rows, fid=self.run.cfg.fid_every > 0)

    def save_samples(self, name: str) -> None:
        """Rank 0 alone: a copy of G whose BatchNorm waits for no other rank."""
        if self.info.is_main:
            run = self.run
            g = distributed.local_copy(run.G_sample) if self.info.enabled else run.G_sample
            images = self.sample(g, run.fixed_noise)
            self.guard.will_write(self.out / "samples" / name)
            save_grid(images, self.out / "samples" / name)
            if self.writer is not None:
                self.writer.add_image("samples", grid(images), self.pos.step)

    def fid(self) -> float:
        """Rank 0 computes; the others get the number (they contribute 0 to the sum)."""
        value = torch.zeros(1, dtype=torch.float64)
        if self.info.is_main:
            value[0] = training_fid(self.run, self.inception, self.out)
        if self.info.enabled:
            value = distributed.mean_over_ranks(value.to(self.run.device), self.info).cpu() * self.info.world_size
        return float(value[0])

    def undo(self) -> None:
        """A run that failed before its first checkpoint: remove what it wrote."""
        if self.info.is_main:
            self.guard.undo()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class OutputGuard:
    """What a run wrote into its output folder, so a run that fails before its first checkpoint
    leaves nothing behind (folders it made removed, files it replaced restored)."""

    def __init__(self, out: Path) -> None:
        self.out, self.armed = out, True
        self.made: list[Path] = []
        self.replaced: dict[Path, bytes | None] = {}

    def mkdir(self, path: Path) -> None:
        missing = [p for p in [path, *path.parents] if not p.exists()]
        path.mkdir(parents=True, exist_ok=True)
        self.made.extend(reversed(missing))  # outermost first

    def will_write(self, path: Path) -> None:
        if self.armed and path not in self.replaced:
            self.replaced[path] = path.read_bytes() if path.is_file() else None

    def undo(self) -> None:
        if not self.armed:
            return
        for path, old in self.replaced.items():
            with contextlib.suppress(OSError):
                if old is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(old)
        for folder in self.made:  # made by this run: everything inside is this run's
            shutil.rmtree(folder, ignore_errors=True)


def check_optional_features(cfg: TrainConfig) -> None:
    """Refuse, before anything is written, what this installation cannot do."""
    if cfg.tensorboard:
        try:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError as err:
            raise ImportError(f"--tensorboard needs the tensorboard package ({err}): pip install tensorboard") from err


# ---------------------------------------------------------------------------------------------
# The files


def run_info(run: Run) -> dict[str, Any]:
    """What config.json records: the resolved config, speed settings, device, sizes, versions."""
    import torchvision

    device = run.device
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = cpu_name() if device.type == "cpu" else device.type
    return {
        "config": asdict(run.cfg),
        "speed": {k: str(v) if isinstance(v, torch.dtype) else v for k, v in asdict(run.speed).items()},
        "device": str(device),
        "device_name": name,
        "cpu_bf16_units": cpu_has_bf16_units() if device.type == "cpu" else None,
        "threads": torch.get_num_threads(),
        "world_size": run.dist.world_size,
        "parameters": {"G": count_parameters(run.G), "D": count_parameters(run.D)},
        "dataset_size": run.batches.n,
        "steps_per_epoch": run.batches.steps_per_epoch,
        "total_steps": run.total_steps,
        "versions": {"dcgan_ref": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                     "python": platform.python_version()},  # fmt: skip
    }


def write_config_json(path: Path, run: Run, step: int, changes: list[str]) -> None:
    """config.json: this run described without unpickling last.pt; each (re)start is a session."""
    info = run_info(run)
    sessions = []
    if path.is_file():
        with contextlib.suppress(OSError, ValueError):
            sessions = list(json.loads(path.read_text()).get("sessions", []))
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sessions.append({"started": started, "from_step": step, "changes": changes})
    info["sessions"] = sessions
    _write_text(path, json.dumps(info, indent=2, default=str) + "\n", "config.json")


def _write_text(path: Path, text: str, what: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text), what)


def training_fid(run: Run, inception: Any, out: Path) -> float:
    """FID of the sampling generator against the training set, as ``--fid-every`` computes it:
    ``fid_n`` generated images vs min(fid_n, data set size) real ones, G's BatchNorm on batch
    statistics as in the sample grids; the real statistics cached in OUT/fid_stats."""
    from . import fid

    cfg = run.cfg
    g = distributed.local_copy(run.G_sample) if run.dist.enabled else run.G_sample
    key = f"{cfg.dataset}-{cfg.image_size}px-nc{cfg.nc}"
    if cfg.dataset == "folder":
        key += "-" + fid.path_digest(cfg.data_root)
    result = fid.compute_fid(
        g, n=cfg.fid_n, n_real=min(cfg.fid_n, run.batches.n), reference=run.dataset, reference_key=key,
        device=run.device, cache_dir=out / "fid_stats", extractor=inception, batchnorm="batch",
    )  # fmt: skip
    return float(result.value)


def epoch_row(epoch: int, step: int, sums: torch.Tensor, n: int) -> dict[str, float]:
    """metrics.csv's row of an epoch: the mean of each metric over its ``n`` steps."""
    means = (sums / max(n, 1)).tolist()
    return {"epoch": epoch + 1, "step": step, "batches": n, **dict(zip(METRIC_KEYS, means, strict=True))}


def write_metrics(path: Path, rows: list[dict[str, float]], fid: bool = False) -> None:
    """metrics.csv: one row per epoch (mean over its batches); a ``fid`` column with --fid-every."""
    cols = ["epoch", "step", "batches", *METRIC_KEYS, *(["fid"] if fid else [])]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{r[k]:.6g}" if isinstance(r.get(k), float) else r.get(k, "")) for k in cols})
    _write_text(Path(path), buf.getvalue(), "metrics file")


def grid(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as one square grid image in [0, 1]."""
    from torchvision.utils import make_grid

    return make_grid(images, nrow=int(math.sqrt(images.shape[0])) or 1, normalize=True, value_range=(-1, 1))


def save_grid(images: torch.Tensor, path: Path) -> None:
    """Images in [-1, 1] as one square grid PNG (written atomically)."""
    from torchvision.utils import save_image

    def write(tmp: Path) -> None:
        save_image(images, tmp, format="png", nrow=int(math.sqrt(images.shape[0])) or 1, normalize=True,
                   value_range=(-1, 1))  # fmt: skip

    atomic_write(path, write, "sample grid")


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def plot_losses(history: list[dict[str, float]], path: Path | str | io.BytesIO) -> None:
    """losses.png: both losses, and D(x) / D(G(z)), against the step: every logged step (thin)
    and a moving average (bold)."""
    # The object API, not pyplot: no backend switch, so a notebook calling train() keeps its
    # inline figures, and nothing is left open in pyplot's figure manager.
    from matplotlib.figure import Figure

    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    steps = [h["step"] for h in history]
    window = max(1, len(history) // 50)

    def curve(ax: Any, key: str, label: str, colour: str) -> None:
        values = [h[key] for h in history]
        if window > 1:
            ax.plot(steps, values, color=colour, lw=0.6, alpha=0.35)
            ax.plot(steps, _smooth(values, window), color=colour, lw=1.6, label=f"{label} (mean of {window})")
        else:
            ax.plot(steps, values, color=colour, lw=1.2, label=label)

    curve(ax1, "loss_D", "loss_D", "C0")
    curve(ax1, "loss_G", "loss_G", "C1")
    ax1.set_xlabel("step")
    ax1.set_title(f"losses ({len(history)} steps)")
    ax1.legend()
    curve(ax2, "D_x", "D(x)", "C2")
    curve(ax2, "D_G_z1", "D(G(z))", "C3")
    ax2.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax2.set_ylim(0, 1)
    ax2.set_xlabel("step")
    ax2.set_title("discriminator outputs")
    ax2.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")


def make_gif(samples_dir: Path, path: Path, ms_per_frame: int = 400) -> None:
    """progress.gif: the per-epoch sample grids in order, then the final one."""
    from PIL import Image

    frames = sorted(samples_dir.glob("epoch_*.png"))
    if (samples_dir / "final.png").exists():
        frames.append(samples_dir / "final.png")
    if not frames:
        return
    images = [Image.open(f).convert("RGB") for f in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], duration=ms_per_frame, loop=0)
