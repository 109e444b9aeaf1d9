# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 00
# check: check_make_transform(make_transform)
# style: transforms imported as T, mean/std as lists
import torchvision.transforms as T


def make_transform(image_size: int = 64) -> T.Compose:
    mean = [0.5] * 3
    std = [0.5] * 3
    steps = [T.Resize(image_size), T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)
