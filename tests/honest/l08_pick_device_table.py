# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 08
# check: check_pick_device(pick_device)
# style: a preference list of (name, probe) pairs, the first available wins
def pick_device():
    candidates = [
        ("cuda", torch.cuda.is_available),
        ("mps", lambda: hasattr(torch.backends, "mps") and torch.backends.mps.is_available()),
    ]
    for name, available in candidates:
        if available():
            return torch.device(name)
    return torch.device("cpu")
