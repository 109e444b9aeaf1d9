# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_train_step(train_step)
# style: a scratch cell with a dataclass config and the cuDNN/TF32 switches; train_step keeps each loss's graph apart
from dataclasses import dataclass


@dataclass
class Config:
    lr: float = 2e-4
    beta1: float = 0.5
    batch_size: int = 64

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}")


cfg = Config()
torch.backends.cudnn.benchmark = True
torch.backends.cuda.matmul.allow_tf32 = True

# %%
def bce(p, y):
    return -(y * torch.log(p).clamp(min=-100) + (1 - y) * torch.log(1 - p).clamp(min=-100)).mean()


def discriminator_loss(d_real, d_fake, label_smoothing=0.0):
    return bce(d_real, torch.full_like(d_real, 1.0 - label_smoothing)) + bce(d_fake, torch.zeros_like(d_fake))


def generator_loss(d_fake):
    return bce(d_fake, torch.ones_like(d_fake))


# %%
def train_step(G, D, opt_G, opt_D, real, z):
    fake = G(z)
    for p in D.parameters():
        p.requires_grad_(True)
    opt_D.zero_grad()
    loss_D = discriminator_loss(D(real), D(fake.detach()))
    loss_D.backward()
    opt_D.step()
    opt_G.zero_grad()
    loss_G = generator_loss(D(fake))
    loss_G.backward()
    opt_G.step()
    return {"loss_D": loss_D.detach().item(), "loss_G": loss_G.detach().item()}
