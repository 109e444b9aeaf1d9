# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_relu(relu, relu_grad)
# style: clamp, and a comparison cast to x's dtype
def relu(x):
    return x.clamp(min=0)


def relu_grad(x):
    return (x > 0).type_as(x)
