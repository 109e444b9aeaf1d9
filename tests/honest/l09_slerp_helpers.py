# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 09
# check: check_slerp(slerp)
# style: unit vectors and the angle from small helpers, arccos of a clamped cosine
def _unit(v):
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


def slerp(z0, z1, t):
    cos = torch.clamp((_unit(z0) * _unit(z1)).sum(dim=-1, keepdim=True), -1.0, 1.0)
    omega = torch.arccos(cos)
    s = torch.sin(omega)
    near = s.abs() < 1e-6
    s_safe = torch.where(near, torch.ones_like(s), s)
    w0 = torch.where(near, torch.full_like(s, 1.0 - t), torch.sin((1.0 - t) * omega) / s_safe)
    w1 = torch.where(near, torch.full_like(s, float(t)), torch.sin(t * omega) / s_safe)
    return w0 * z0 + w1 * z1
