"""Data-parallel helpers for ``torchrun --nproc_per_node=N -m dcgan_ref train``.

torchrun starts N copies of the trainer and tells each its place through environment variables
(RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Each copy trains on its slice of every
global batch; DistributedDataParallel averages the gradients, so the N copies take the same
optimizer step one process would take on the whole batch. Without torchrun nothing here does
anything: a single process is a world of size 1.

BatchNorm is the one place where slicing the batch changes the maths: each copy would normalise
with the statistics of its own slice. ``sync_batchnorm`` makes every BatchNorm use the statistics
of the global batch instead (still one real and one fake batch, as in a single process).
"""

from __future__ import annotations

import copy
import inspect
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: rank r of world_size (1 = not distributed)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, samples, metrics and prints; the others only train."""
        return self.rank == 0

    def say(self, msg: str) -> None:
        """Print ``msg`` once for the whole job: on rank 0."""
        if self.is_main:
            print(msg, flush=True)


def init(device_type: str) -> DistInfo:
    """Join the process group torchrun set up (nccl for CUDA, gloo for the CPU), if there is one."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0")), world_size)
    if device_type == "cuda":
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return info


def cleanup(info: DistInfo, barrier: bool = True) -> None:
    """Wait for every rank (unless ``barrier=False``: after an error, the others may never come),
    then leave the process group."""
    if info.enabled and dist.is_initialized():
        if barrier:
            dist.barrier()
        dist.destroy_process_group()


def mean_over_ranks(t: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """The mean of ``t`` over all ranks (a copy; ``t`` itself when not distributed)."""
    if not info.enabled:
        return t
    t = t.detach().clone()
    dist.all_reduce(t)
    return t / info.world_size


def wrap(model: nn.Module, device: torch.device) -> DistributedDataParallel:
    """``model`` in DistributedDataParallel: gradients averaged over ranks during backward.

    Buffers are not re-broadcast before each forward: synchronised BatchNorm keeps the running
    statistics equal on every rank already (and the broadcast would overwrite them in place).
    """
    params = inspect.signature(DistributedDataParallel.__init__).parameters
    no_sync = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"  # torch >= 2.12
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, **{no_sync: False})


class _SumOverRanks(torch.autograd.Function):
    """all_reduce (sum) with a gradient: d(sum over ranks)/d(this rank's input) = the summed grads."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch, on any backend.

    ``nn.SyncBatchNorm`` does this with CUDA kernels only (it refuses CPU tensors), so the gloo/CPU
    path uses this: sum and sum of squares per channel, all-reduced (with gradient), then the usual
    normalisation. Same parameters and buffers as BatchNorm2d, so state_dicts are interchangeable.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        n_local = x.numel() // x.shape[1]
        xf = x.float()
        stats = torch.stack([xf.sum((0, 2, 3)), (xf * xf).sum((0, 2, 3))])
        total = _SumOverRanks.apply(stats)  # differentiable: gradients flow back to every rank
        n = n_local * dist.get_world_size()
        mean = total[0] / n
        var = (total[1] / n - mean * mean).clamp_min(0)  # biased, as BatchNorm normalises with
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), m)
                self.running_var.lerp_(var.detach() * n / max(n - 1, 1), m)  # unbiased, as BatchNorm keeps
        y = (xf - mean[None, :, None, None]) * torch.rsqrt(var + self.eps)[None, :, None, None]
        if self.affine:
            y = y * self.weight[None, :, None, None] + self.bias[None, :, None, None]
        return y.to(x.dtype)


def sync_batchnorm(model: nn.Module, device_type: str) -> nn.Module:
    """Every BatchNorm in ``model`` normalises with global-batch statistics (in place).

    CUDA: PyTorch's ``nn.SyncBatchNorm``; elsewhere ``GlobalBatchNorm2d``. Parameter and buffer
    names do not change, so checkpoints load into plain models.
    """
    if device_type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            new = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats, device=child.weight.device)  # fmt: skip
            new.load_state_dict(child.state_dict())
            new.train(child.training)
            setattr(model, name, new)
        else:
            sync_batchnorm(child, device_type)
    return model


def local_copy(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with plain BatchNorm2d: for one rank alone (sampling) without deadlock.

    A synchronised BatchNorm in training mode waits for every rank; rank 0 drawing samples by
    itself must not use one.
    """
    model = copy.deepcopy(model)
    for parent in model.modules():
        for name, child in parent.named_children():
            if isinstance(child, (nn.SyncBatchNorm, GlobalBatchNorm2d)):
                bn = nn.BatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                    child.track_running_stats, device=child.running_mean.device)  # fmt: skip
                bn.load_state_dict(child.state_dict())
                bn.train(child.training)
                setattr(parent, name, bn)
    return model
