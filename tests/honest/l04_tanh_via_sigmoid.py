# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_tanh(tanh, tanh_grad)
# style: tanh(x) = 2 sigmoid(2x) - 1, with its own stable sigmoid
def _sigmoid(x):
    z = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))


def tanh(x):
    return 2 * _sigmoid(2 * x) - 1


def tanh_grad(x):
    t = tanh(x)
    return 1 - t * t
