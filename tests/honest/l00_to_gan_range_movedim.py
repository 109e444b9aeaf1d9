# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 00
# check: check_to_gan_range(to_gan_range)
# style: movedim, arithmetic in float32
def to_gan_range(img) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(img), dtype=torch.float32)
    x = torch.movedim(x, -1, -3)
    return (x - 127.5) / 127.5
