# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_discriminator_loss(discriminator_loss)
# style: the formula written out, no helper
def discriminator_loss(d_real, d_fake, label_smoothing: float = 0.0):
    target = 1.0 - label_smoothing
    real_term = -(target * torch.log(d_real).clamp(min=-100)
                  + (1 - target) * torch.log(1 - d_real).clamp(min=-100)).mean()
    fake_term = -torch.log(1 - d_fake).clamp(min=-100).mean()
    return real_term + fake_term
