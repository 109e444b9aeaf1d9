# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_sigmoid(sigmoid, sigmoid_grad)
# style: CS231n-style masks filling an empty tensor; the gradient from exp(-|x|) directly
def sigmoid(x):
    out = torch.zeros_like(x)
    pos = x >= 0
    neg = ~pos
    out[pos] = 1 / (1 + torch.exp(-x[pos]))
    z = torch.exp(x[neg])
    out[neg] = z / (1 + z)
    return out


def sigmoid_grad(x):
    e = torch.exp(-x.abs())
    return e / (1 + e) ** 2
