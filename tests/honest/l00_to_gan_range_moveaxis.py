# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 00
# check: check_to_gan_range(to_gan_range)
# style: np.moveaxis on a float32 copy, torch.tensor at the end
def to_gan_range(img):
    a = np.asarray(img, dtype=np.float32)
    a = np.moveaxis(a, -1, -3)
    return torch.tensor(a / 127.5 - 1.0, dtype=torch.float32)
