# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 00
# check: check_to_gan_range(to_gan_range)
# style: NumPy first, then one conversion to torch
import numpy as np


def to_gan_range(img):
    arr = np.asarray(img)
    if arr.ndim == 3:
        arr = arr.transpose(2, 0, 1)
    else:
        arr = arr.transpose(0, 3, 1, 2)
    t = torch.from_numpy(np.ascontiguousarray(arr)).to(torch.float32)
    return t / 127.5 - 1.0
