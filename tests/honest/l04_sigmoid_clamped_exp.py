# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_sigmoid(sigmoid, sigmoid_grad)
# style: exp of a non-positive argument only, picked by the sign
def sigmoid(x):
    z = torch.exp(torch.minimum(x, -x))  # exp(-|x|)
    return torch.where(x < 0, z, torch.ones_like(x)) / (1 + z)


def sigmoid_grad(x):
    return sigmoid(x) * sigmoid(-x)
