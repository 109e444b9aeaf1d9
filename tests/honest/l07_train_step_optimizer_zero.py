# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_train_step(train_step)
# style: opt.zero_grad(set_to_none=True), losses as floats via float()
def bce(p, y):
    return -(y * torch.log(p).clamp(min=-100) + (1 - y) * torch.log(1 - p).clamp(min=-100)).mean()


def discriminator_loss(d_real, d_fake, label_smoothing=0.0):
    return bce(d_real, torch.full_like(d_real, 1.0 - label_smoothing)) + bce(d_fake, torch.zeros_like(d_fake))


def generator_loss(d_fake):
    return bce(d_fake, torch.ones_like(d_fake))


# %%
def train_step(G: nn.Module, D: nn.Module, opt_G, opt_D, real: torch.Tensor, z: torch.Tensor) -> dict:
    fake = G(z)
    opt_D.zero_grad(set_to_none=True)
    loss_D = discriminator_loss(D(real), D(fake.detach()))
    loss_D.backward()
    opt_D.step()

    opt_G.zero_grad(set_to_none=True)
    loss_G = generator_loss(D(fake))
    loss_G.backward()
    opt_G.step()
    return dict(loss_D=float(loss_D), loss_G=float(loss_G))
