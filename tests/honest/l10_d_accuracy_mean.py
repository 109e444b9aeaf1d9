# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 10
# check: check_d_accuracy(d_accuracy)
# style: logits compared with 0 (sigmoid > 0.5), mean of a float mask
def d_accuracy(real_logits, fake_logits):
    acc_real = (real_logits > 0).float().mean().item()
    acc_fake = (fake_logits < 0).float().mean().item()
    return acc_real, acc_fake
