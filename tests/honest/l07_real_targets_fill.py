# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_real_targets(real_targets)
# style: pytorch/examples' label.fill_(real_label) on a fresh tensor of the same shape and dtype
def real_targets(like, label_smoothing=0.0):
    label = torch.empty(like.shape, dtype=like.dtype, device=like.device)
    return label.fill_(1 - label_smoothing)
