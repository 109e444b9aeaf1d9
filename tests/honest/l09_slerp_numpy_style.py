# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 09
# check: check_slerp(slerp)
# style: the well-known NumPy slerp translated: per-row loop for batches, scalars for one pair
import math


def _slerp_one(v0, v1, t):
    dot = float((v0 / v0.norm()) @ (v1 / v1.norm()))
    dot = max(-1.0, min(1.0, dot))
    omega = math.acos(dot)
    so = math.sin(omega)
    if abs(so) < 1e-6:
        return (1.0 - t) * v0 + t * v1
    return math.sin((1.0 - t) * omega) / so * v0 + math.sin(t * omega) / so * v1


def slerp(z0, z1, t):
    if z0.dim() == 1:
        return _slerp_one(z0, z1, t)
    return torch.stack([_slerp_one(a, b, t) for a, b in zip(z0, z1)])
