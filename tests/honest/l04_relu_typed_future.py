# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_relu(relu, relu_grad)
# style: from __future__ import annotations in the same cell, typing.Union hints, torch.relu-free where
from __future__ import annotations

from typing import Union

Number = Union[int, float]


def relu(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, torch.zeros((), dtype=x.dtype))


def relu_grad(x: torch.Tensor) -> torch.Tensor:
    return torch.gt(x, 0).to(dtype=x.dtype)
