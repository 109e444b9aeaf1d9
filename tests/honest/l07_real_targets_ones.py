# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_real_targets(real_targets)
# style: ones scaled, as the tutorial's real_label constant becomes a smoothed one
def real_targets(like: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    real_label = 1.0 - label_smoothing
    return torch.ones_like(like) * real_label
