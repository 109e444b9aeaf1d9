# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_generator_loss(generator_loss)
# style: BCE against all-ones targets (the non-saturating trick as the tutorial writes it)
def bce(p, y):
    return -(y * torch.log(p).clamp(min=-100) + (1 - y) * torch.log(1 - p).clamp(min=-100)).mean()


# %%
def generator_loss(d_fake):
    return bce(d_fake, torch.ones_like(d_fake))
