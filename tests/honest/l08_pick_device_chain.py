# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 08
# check: check_pick_device(pick_device)
# style: if/elif chain on the availability checks
def pick_device():
    if torch.cuda.is_available():
        device = torch.device("cuda")
    elif torch.backends.mps.is_available():
        device = torch.device("mps")
    else:
        device = torch.device("cpu")
    return device
