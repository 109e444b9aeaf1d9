# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_train_step(train_step)
# style: pytorch/examples' order: D on real, D on detached fake, then G; .item() for the logs
def bce(p, y):
    return -(y * torch.log(p).clamp(min=-100) + (1 - y) * torch.log(1 - p).clamp(min=-100)).mean()


def real_targets(like, label_smoothing=0.0):
    return torch.full_like(like, 1.0 - label_smoothing)


def discriminator_loss(d_real, d_fake, label_smoothing=0.0):
    return bce(d_real, real_targets(d_real, label_smoothing)) + bce(d_fake, torch.zeros_like(d_fake))


def generator_loss(d_fake):
    return bce(d_fake, torch.ones_like(d_fake))


# %%
def train_step(G, D, opt_G, opt_D, real, z):
    # (1) update D: maximize log(D(x)) + log(1 - D(G(z)))
    D.zero_grad()
    fake = G(z)
    errD = discriminator_loss(D(real), D(fake.detach()))
    errD.backward()
    opt_D.step()
    # (2) update G: maximize log(D(G(z)))
    G.zero_grad()
    errG = generator_loss(D(fake))
    errG.backward()
    opt_G.step()
    return {"loss_D": errD.item(), "loss_G": errG.item()}
