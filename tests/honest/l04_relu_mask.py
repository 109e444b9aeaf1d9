# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_relu(relu, relu_grad)
# style: multiplying by a mask
def relu(x: torch.Tensor) -> torch.Tensor:
    return x * (x > 0)


def relu_grad(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, torch.ones_like(x), torch.zeros_like(x))
