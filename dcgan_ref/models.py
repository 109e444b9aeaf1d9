"""The DCGAN of Radford et al. (2016): generator, discriminator and their initialisation.

The 64x64 networks keep pytorch/examples' layer layout (one ``nn.Sequential`` called ``main``),
so a ``netG.pth`` / ``netD.pth`` saved by that script loads with ``load_state_dict`` as is.
The 32x32 variants drop one block on each side.
"""

from __future__ import annotations

import torch
from torch import nn

SUPPORTED_SIZES = (32, 64)


def _check_size(image_size: int) -> None:
    if image_size not in SUPPORTED_SIZES:
        raise ValueError(f"image_size must be one of {SUPPORTED_SIZES}, got {image_size}")


def up_block(in_ch: int, out_ch: int, stride: int = 2, padding: int = 1) -> nn.Sequential:
    """G's block: ConvTranspose 4x4 (doubles H and W at stride 2, pad 1), BatchNorm, ReLU.

    (N, in_ch, H, W) -> (N, out_ch, 2H, 2W); with stride 1, pad 0 it maps 1x1 to 4x4.
    """
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(True),
    )


def down_block(in_ch: int, out_ch: int, batchnorm: bool = True) -> nn.Sequential:
    """D's block: Conv 4x4 stride 2 pad 1, BatchNorm (not on D's input layer), LeakyReLU(0.2).

    (N, in_ch, H, W) -> (N, out_ch, H/2, W/2): a learned downsampling instead of pooling.
    """
    layers: list[nn.Module] = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


# The networks unpack their blocks into one flat nn.Sequential so that parameter names match
# pytorch/examples' (main.0.weight, main.1.weight, ...).


class Generator(nn.Module):
    """Noise ``z`` of shape (N, nz) or (N, nz, 1, 1) -> images (N, nc, S, S) in [-1, 1]."""

    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3, image_size: int = 64) -> None:
        super().__init__()
        _check_size(image_size)
        self.nz, self.ngf, self.nc, self.image_size = nz, ngf, nc, image_size
        if image_size == 64:
            self.main = nn.Sequential(
                *up_block(nz, ngf * 8, stride=1, padding=0),  # state size: (ngf*8) x 4 x 4
                *up_block(ngf * 8, ngf * 4),  # state size: (ngf*4) x 8 x 8
                *up_block(ngf * 4, ngf * 2),  # state size: (ngf*2) x 16 x 16
                *up_block(ngf * 2, ngf),  # state size: ngf x 32 x 32
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),  # state size: nc x 64 x 64
                nn.Tanh(),
            )
        else:
            self.main = nn.Sequential(
                *up_block(nz, ngf * 4, stride=1, padding=0),  # state size: (ngf*4) x 4 x 4
                *up_block(ngf * 4, ngf * 2),  # state size: (ngf*2) x 8 x 8
                *up_block(ngf * 2, ngf),  # state size: ngf x 16 x 16
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),  # state size: nc x 32 x 32
                nn.Tanh(),
            )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.main(z)


class Discriminator(nn.Module):
    """Images (N, nc, S, S) -> one real-vs-fake **logit** per image, shape (N,).

    Pair it with ``BCEWithLogitsLoss`` (numerically stable, allowed under autocast).
    ``SigmoidDiscriminator`` is the same network returning probabilities.
    """

    returns_logits = True

    def __init__(self, nc: int = 3, ndf: int = 64, image_size: int = 64) -> None:
        super().__init__()
        _check_size(image_size)
        self.nc, self.ndf, self.image_size = nc, ndf, image_size
        if image_size == 64:
            self.main = nn.Sequential(
                *down_block(nc, ndf, batchnorm=False),  # state size: ndf x 32 x 32
                *down_block(ndf, ndf * 2),  # state size: (ndf*2) x 16 x 16
                *down_block(ndf * 2, ndf * 4),  # state size: (ndf*4) x 8 x 8
                *down_block(ndf * 4, ndf * 8),  # state size: (ndf*8) x 4 x 4
                nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),  # state size: 1 x 1 x 1
            )
        else:
            self.main = nn.Sequential(
                *down_block(nc, ndf, batchnorm=False),  # state size: ndf x 16 x 16
                *down_block(ndf, ndf * 2),  # state size: (ndf*2) x 8 x 8
                *down_block(ndf * 2, ndf * 4),  # state size: (ndf*4) x 4 x 4
                nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False),  # state size: 1 x 1 x 1
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


class SigmoidDiscriminator(Discriminator):
    """The classic DCGAN discriminator: a Sigmoid on top, returns **probabilities** (N,).

    Pair it with ``BCELoss``, as the lessons do. Same parameters as ``Discriminator``.
    """

    returns_logits = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x))


def weights_init(m: nn.Module) -> None:
    """DCGAN init, for ``model.apply(weights_init)``: conv N(0, 0.02), BatchNorm N(1, 0.02), bias 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
