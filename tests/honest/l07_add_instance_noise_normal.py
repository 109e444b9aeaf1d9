# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_add_instance_noise(add_instance_noise)
# style: the noise scaled in place before adding
def add_instance_noise(x: torch.Tensor, sigma: float, generator=None) -> torch.Tensor:
    if not sigma > 0:
        return x
    noise = torch.randn(*x.shape, generator=generator, dtype=x.dtype, device=x.device)
    noise.mul_(sigma)
    return x + noise
