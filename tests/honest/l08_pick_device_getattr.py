# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 08
# check: check_pick_device(pick_device)
# style: getattr with a default, for torch builds without an mps backend
def pick_device() -> torch.device:
    mps = getattr(torch.backends, "mps", None)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")
