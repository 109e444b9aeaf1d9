# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_add_instance_noise(add_instance_noise)
# style: early return, torch.randn with the generator, x.size()
def add_instance_noise(x, sigma, generator=None):
    if sigma <= 0:
        return x
    return x + sigma * torch.randn(x.size(), generator=generator, dtype=x.dtype, device=x.device)
