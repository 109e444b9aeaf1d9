# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 10
# check: check_d_accuracy(d_accuracy)
# style: NumPy on detached logits, np.mean of booleans
def d_accuracy(real_logits, fake_logits):
    r = real_logits.detach().cpu().numpy()
    f = fake_logits.detach().cpu().numpy()
    return float(np.mean(r > 0)), float(np.mean(f < 0))
