# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_leaky_relu(leaky_relu, leaky_relu_grad)
# style: torch.where both ways
def leaky_relu(x, negative_slope=0.2):
    return torch.where(x > 0, x, x * negative_slope)


def leaky_relu_grad(x, negative_slope=0.2):
    return torch.where(x > 0, torch.tensor(1.0, dtype=x.dtype), torch.tensor(negative_slope, dtype=x.dtype))
