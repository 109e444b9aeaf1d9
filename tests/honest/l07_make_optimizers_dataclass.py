# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_make_optimizers(make_optimizers)
# style: settings in a frozen dataclass, a tuple built from a generator expression
from dataclasses import dataclass, field


@dataclass(frozen=True)
class AdamSettings:
    lr: float = 2e-4
    betas: tuple = field(default=(0.5, 0.999))


def make_optimizers(G, D, lr=2e-4, betas=(0.5, 0.999)):
    s = AdamSettings(lr=lr, betas=tuple(betas))
    return tuple(torch.optim.Adam(net.parameters(), lr=s.lr, betas=s.betas) for net in (G, D))
