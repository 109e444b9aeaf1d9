# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_leaky_relu(leaky_relu, leaky_relu_grad)
# style: positive part plus scaled negative part
def leaky_relu(x, negative_slope: float = 0.2):
    return x.clamp(min=0) + negative_slope * x.clamp(max=0)


def leaky_relu_grad(x, negative_slope: float = 0.2):
    pos = (x > 0).to(x.dtype)
    return pos + negative_slope * (1 - pos)
