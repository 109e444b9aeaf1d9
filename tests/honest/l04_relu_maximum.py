# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_relu(relu, relu_grad)
# style: torch.maximum against a zero of the same dtype, heaviside for the step
def relu(x):
    return torch.maximum(x, torch.zeros((), dtype=x.dtype))


def relu_grad(x):
    return torch.heaviside(x, torch.zeros((), dtype=x.dtype))
