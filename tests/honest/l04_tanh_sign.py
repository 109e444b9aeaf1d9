# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 04
# check: check_tanh(tanh, tanh_grad)
# style: odd symmetry: sign(x) (1 - e) / (1 + e), e = exp(-2|x|)
def tanh(x: torch.Tensor) -> torch.Tensor:
    e = torch.exp(-2 * x.abs())
    return torch.sign(x) * (1 - e) / (1 + e)


def tanh_grad(x: torch.Tensor) -> torch.Tensor:
    e = torch.exp(-2 * x.abs())
    return 4 * e / (1 + e) ** 2
