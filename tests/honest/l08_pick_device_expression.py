# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 08
# check: check_pick_device(pick_device)
# style: one conditional expression
def pick_device():
    return torch.device("cuda" if torch.cuda.is_available()
                        else "mps" if torch.backends.mps.is_available()
                        else "cpu")
