# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 00
# check: check_from_gan_range(from_gan_range)
# style: method chain
def from_gan_range(x):
    return x.add(1).div(2).clamp(0, 1)
