# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_real_targets(real_targets)
# style: torch.full_like
def real_targets(like, label_smoothing=0.0):
    return torch.full_like(like, 1.0 - label_smoothing)
