# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 00
# check: check_from_gan_range(from_gan_range)
# style: torch.clamp of an affine map
def from_gan_range(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp(x * 0.5 + 0.5, min=0.0, max=1.0)
