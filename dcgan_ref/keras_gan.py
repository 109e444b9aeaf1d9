"""The Keras-style CIFAR-10 GAN of the course's source notes, 32x32, beside the DCGAN of models.py.

This is the design most Keras CIFAR-10 GAN tutorials train (e.g. J. Brownlee, "How to Develop a
GAN to Generate CIFAR10 Small Color Photographs", 2019) and not the all-convolutional DCGAN:

- **Generator**: a fully connected (Dense) projection of the noise to a 4x4 map, reshaped, three
  ``ConvTranspose2d`` 4x4 stride 2 up to 32x32, then a Conv 3x3 with tanh. BatchNorm after the
  projection and after each transposed convolution, LeakyReLU(0.2) everywhere (not ReLU).
- **Discriminator**: Conv 3x3 64 (stride 1), Conv 3x3 128 stride 2, Conv 3x3 128 stride 2,
  Conv 3x3 256 stride 2, LeakyReLU(0.2) after each, Flatten, Dropout, one Linear unit. No
  BatchNorm. It returns **logits** (N,) like ``models.Discriminator``;
  ``KerasSigmoidDiscriminator`` is the same network returning probabilities (the notes' sigmoid).

What the notes fix: the layer list, kernel sizes and strides, the 4x4 projection, tanh out,
LeakyReLU, BatchNorm in G, Dropout in D, Adam lr 2e-4, batch 128, nz 100. What they leave open
and is chosen here (from the common Keras CIFAR-10 GAN):

- widths: G projects to 256 x 4 x 4 and its transposed convolutions have 128 channels
  (``ngf=128``: projection 2*ngf, then ngf, ngf, ngf); D has 64, 128, 128, 256 (``ndf=64``:
  ndf, 2ndf, 2ndf, 4ndf);
- LeakyReLU slope 0.2; Dropout 0.4; 'same' padding (Conv 3x3: padding 1; ConvTranspose 4x4
  stride 2: padding 1, which doubles H and W as Keras' 'same' does);
- biases on every layer (Keras' ``use_bias=True`` default), BatchNorm after the projection as
  well as after each transposed convolution (``batchnorm=False`` removes all of them: the
  tutorial's generator exactly);
- Keras' default initialisation (Glorot-uniform weights, zero biases, BatchNorm weight 1 and
  bias 0), applied by ``keras_init`` in the constructors, not DCGAN's N(0, 0.02).

Parameter counts (nz 100, nc 3, defaults): generator 1,467,395 (1,466,115 with
``batchnorm=False``: the tutorial's Keras summary), discriminator 522,497 (the tutorial's Keras
summary). Most sit in fully connected layers: the projection holds 413,696 of G's, the whole
DCGAN 32x32 generator of models.py (ngf 64) has 1,068,928 and no fully connected layer at all.
"""

from __future__ import annotations

import torch
from torch import nn

KERAS_IMAGE_SIZE = 32


def keras_init(m: nn.Module) -> None:
    """Keras' default initialisation, for ``model.apply(keras_init)``: Glorot-uniform weights and
    zero biases for Dense / Conv / ConvTranspose, weight 1 and bias 0 for BatchNorm."""
    if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)


def _check_size(image_size: int) -> None:
    if image_size != KERAS_IMAGE_SIZE:
        raise ValueError(f"the Keras CIFAR GAN is 32x32 only (image_size 32), got {image_size}")


class KerasGenerator(nn.Module):
    """Noise ``z`` of shape (N, nz) or (N, nz, 1, 1) -> images (N, nc, 32, 32) in [-1, 1].

    Dense projection to (2*ngf) x 4 x 4, three ConvTranspose 4x4 stride 2, Conv 3x3, tanh.
    """

    arch = "keras-cifar"

    def __init__(
        self,
        nz: int = 100,
        ngf: int = 128,
        nc: int = 3,
        image_size: int = 32,
        slope: float = 0.2,
        batchnorm: bool = True,
    ) -> None:
        super().__init__()
        _check_size(image_size)
        self.nz, self.ngf, self.nc, self.image_size = nz, ngf, nc, image_size
        self.batchnorm = batchnorm
        c0 = ngf * 2

        def bn(ch: int) -> list[nn.Module]:
            return [nn.BatchNorm2d(ch)] if batchnorm else []

        # state size: nz -> (ngf*2*4*4), reshaped in forward to (ngf*2) x 4 x 4
        self.project = nn.Linear(nz, c0 * 4 * 4)
        self.main = nn.Sequential(
            *bn(c0),
            nn.LeakyReLU(slope, inplace=True),  # state size: (ngf*2) x 4 x 4
            nn.ConvTranspose2d(c0, ngf, 4, 2, 1),
            *bn(ngf),
            nn.LeakyReLU(slope, inplace=True),  # state size: ngf x 8 x 8
            nn.ConvTranspose2d(ngf, ngf, 4, 2, 1),
            *bn(ngf),
            nn.LeakyReLU(slope, inplace=True),  # state size: ngf x 16 x 16
            nn.ConvTranspose2d(ngf, ngf, 4, 2, 1),
            *bn(ngf),
            nn.LeakyReLU(slope, inplace=True),  # state size: ngf x 32 x 32
            nn.Conv2d(ngf, nc, 3, 1, 1),  # state size: nc x 32 x 32
            nn.Tanh(),
        )
        self.apply(keras_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(z.flatten(1))
        return self.main(x.view(x.shape[0], self.ngf * 2, 4, 4))


class KerasDiscriminator(nn.Module):
    """Images (N, nc, 32, 32) -> one real-vs-fake **logit** per image, shape (N,).

    Four Conv 3x3 (64 s1, 128 s2, 128 s2, 256 s2) with LeakyReLU, Flatten, Dropout, Linear(4096, 1).
    Pair it with ``BCEWithLogitsLoss``; ``KerasSigmoidDiscriminator`` returns probabilities.
    """

    arch = "keras-cifar"
    returns_logits = True

    def __init__(
        self,
        nc: int = 3,
        ndf: int = 64,
        image_size: int = 32,
        slope: float = 0.2,
        dropout: float = 0.4,
    ) -> None:
        super().__init__()
        _check_size(image_size)
        self.nc, self.ndf, self.image_size, self.dropout = nc, ndf, image_size, dropout
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 3, 1, 1),
            nn.LeakyReLU(slope, inplace=True),  # state size: ndf x 32 x 32
            nn.Conv2d(ndf, ndf * 2, 3, 2, 1),
            nn.LeakyReLU(slope, inplace=True),  # state size: (ndf*2) x 16 x 16
            nn.Conv2d(ndf * 2, ndf * 2, 3, 2, 1),
            nn.LeakyReLU(slope, inplace=True),  # state size: (ndf*2) x 8 x 8
            nn.Conv2d(ndf * 2, ndf * 4, 3, 2, 1),
            nn.LeakyReLU(slope, inplace=True),  # state size: (ndf*4) x 4 x 4
            nn.Flatten(),  # state size: (ndf*4*4*4)
            nn.Dropout(dropout),
            nn.Linear(ndf * 4 * 4 * 4, 1),  # state size: 1
        )
        self.apply(keras_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).flatten()


class KerasSigmoidDiscriminator(KerasDiscriminator):
    """The notes' discriminator as written: a sigmoid on top, returns **probabilities** (N,)."""

    returns_logits = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x))
