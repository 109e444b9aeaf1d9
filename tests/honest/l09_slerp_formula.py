# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 09
# check: check_slerp(slerp)
# style: the textbook formula with a linear fallback for (nearly) parallel vectors
def slerp(z0, z1, t):
    a = z0 / z0.norm(dim=-1, keepdim=True)
    b = z1 / z1.norm(dim=-1, keepdim=True)
    dot = (a * b).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    small = sin_omega.abs() < 1e-6
    denom = torch.where(small, torch.ones_like(sin_omega), sin_omega)
    curved = (torch.sin((1.0 - t) * omega) * z0 + torch.sin(t * omega) * z1) / denom
    straight = (1.0 - t) * z0 + t * z1
    return torch.where(small, straight, curved)
