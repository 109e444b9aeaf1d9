# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_conv_output_size(conv_output_size)
# style: from __future__ import annotations in its own cell, then the formula with named parts
from __future__ import annotations

# %%
from typing import Optional


def conv_output_size(h: int, k: int, s: int, p: int, d: Optional[int] = 1) -> int:
    d = 1 if d is None else d
    numerator = h + 2 * p - d * (k - 1) - 1
    return numerator // s + 1
