"""An exponential moving average of G's weights (StudioGAN's and StyleGAN's trick)."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn


class EMA:
    """After each G step, w_ema <- d * w_ema + (1 - d) * w, with d = min(decay, (1 + t) / (10 + t))
    at update t so the average does not drag the untrained initial weights along in a short run
    (TensorFlow's ``ExponentialMovingAverage(num_updates)`` warm-up). Buffers (BatchNorm's running
    statistics) are copied. Samples, generator.pt and FID come from ``model`` when an EMA is on.

    ``G`` is the plain generator (``Run.G``), not a compiled or DistributedDataParallel wrapper.
    """

    def __init__(self, G: nn.Module, decay: float) -> None:
        self.decay = decay
        self.model = copy.deepcopy(G).requires_grad_(False)
        self.updates = 0

    @torch.no_grad()
    def update(self, G: nn.Module) -> None:
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(list(self.model.parameters()), list(G.parameters()), 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), G.buffers(), strict=True):
            b_ema.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])
