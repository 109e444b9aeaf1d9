# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_down_block(down_block)
# style: layer classes looked up by name with getattr, a typed dataclass for the settings
from dataclasses import dataclass


@dataclass
class BlockSpec:
    kernel: int = 4
    stride: int = 2
    padding: int = 1
    slope: float = 0.2


def down_block(in_ch: int, out_ch: int, batchnorm: bool = True) -> nn.Sequential:
    spec = BlockSpec()
    conv = getattr(nn, "Conv2d")(in_ch, out_ch, spec.kernel, spec.stride, spec.padding, bias=False)
    norm = [getattr(nn, "BatchNorm2d")(out_ch)] if batchnorm else []
    act = getattr(nn, "LeakyReLU")(spec.slope, inplace=True)
    return nn.Sequential(conv, *norm, act)
