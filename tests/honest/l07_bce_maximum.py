# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_bce(bce)
# style: torch.maximum against a constant floor, mean over all elements
LOG_FLOOR = -100.0


def bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    floor = torch.tensor(LOG_FLOOR, dtype=p.dtype)
    loss = -(y * torch.maximum(torch.log(p), floor) + (1 - y) * torch.maximum(torch.log1p(-p), floor))
    return loss.sum() / loss.numel()
