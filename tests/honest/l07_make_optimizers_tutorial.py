# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 07
# check: check_make_optimizers(make_optimizers)
# style: the tutorial's optim.Adam(netD.parameters(), lr=lr, betas=(beta1, 0.999))
import torch.optim as optim


def make_optimizers(G, D, lr=2e-4, betas=(0.5, 0.999)):
    optimizerG = optim.Adam(G.parameters(), lr=lr, betas=betas)
    optimizerD = optim.Adam(D.parameters(), lr=lr, betas=betas)
    return optimizerG, optimizerD
