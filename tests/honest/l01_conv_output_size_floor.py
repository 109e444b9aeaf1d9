# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_conv_output_size(conv_output_size)
# style: math.floor of the real quotient, effective kernel named
import math


def conv_output_size(h: int, k: int, s: int, p: int, d: int = 1) -> int:
    effective_k = d * (k - 1) + 1
    return math.floor((h + 2 * p - effective_k) / s) + 1
