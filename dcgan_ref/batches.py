"""The training batches: every epoch in a seeded order, from any position (mid-epoch resume)."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset

from .config import TrainConfig
from .data import gpu_batch_transform, uint8_images


def _ignore_sigint(worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops at a step boundary."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Batches:
    """This rank's batches for one epoch in a seeded order, from position ``start`` (mid-epoch resume).

    Either the whole data set as one uint8 tensor on the device (indexed, resized and normalised
    there), or a DataLoader over the canonical PIL transforms. ``cfg.batch_size`` is the global
    batch: with ``world_size`` ranks, rank r gets rows [r * b, (r + 1) * b) of every global batch
    (b = batch_size / world_size), so together the ranks see exactly the batches one process would.
    """

    def __init__(
        self,
        dataset: Dataset,
        cfg: TrainConfig,
        device: torch.device,
        on_device: bool,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.dataset, self.cfg, self.device = dataset, cfg, device
        self.rank, self.world_size = rank, world_size
        if cfg.batch_size % world_size:
            raise ValueError(f"--batch-size {cfg.batch_size} does not split evenly over {world_size} processes")
        self.local_batch = cfg.batch_size // world_size
        images = uint8_images(dataset) if on_device else None
        self.images = images.to(device) if images is not None else None
        self.n = len(dataset)
        self.steps_per_epoch = self.n // cfg.batch_size
        if self.steps_per_epoch == 0:
            raise ValueError(f"--batch-size {cfg.batch_size} is larger than the data set ({self.n} images)")

    def order(self, epoch: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(self.cfg.seed * 100_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def epoch(self, epoch: int, start: int = 0) -> Iterator[torch.Tensor]:
        bs, lb = self.cfg.batch_size, self.local_batch
        perm = self.order(epoch)[: self.steps_per_epoch * bs]  # drop the ragged last batch
        mine = perm.view(self.steps_per_epoch, bs)[:, self.rank * lb : (self.rank + 1) * lb]
        if self.images is not None:
            mine = mine.to(self.device)
            for i in range(start, self.steps_per_epoch):
                yield gpu_batch_transform(self.images[mine[i]], self.cfg.image_size)
            return
        workers = self.cfg.num_workers
        loader = DataLoader(
            self.dataset,
            batch_size=lb,
            sampler=mine[start:].flatten().tolist(),
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            worker_init_fn=_ignore_sigint if workers else None,
        )
        for x, _ in loader:
            yield x.to(self.device, non_blocking=True)
