# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_discriminator_loss(discriminator_loss)
# style: the two halves named, with the lesson's own bce and real_targets
def bce(p, y):
    return -(y * torch.log(p).clamp(min=-100) + (1 - y) * torch.log(1 - p).clamp(min=-100)).mean()


def real_targets(like, label_smoothing=0.0):
    return torch.full_like(like, 1.0 - label_smoothing)


# %%
def discriminator_loss(d_real, d_fake, label_smoothing=0.0):
    err_real = bce(d_real, real_targets(d_real, label_smoothing))
    err_fake = bce(d_fake, torch.zeros_like(d_fake))
    return err_real + err_fake
