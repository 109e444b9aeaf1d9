# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 06
# check: check_discriminator32(Discriminator32)
# style: a d_block helper with an optional norm, squeeze of the 1x1 map
def d_block(cin, cout, norm=True):
    layers = [nn.Conv2d(cin, cout, 4, 2, 1, bias=False)]
    if norm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.LeakyReLU(0.2, True))
    return layers


class Discriminator32(nn.Module):
    def __init__(self, nc=3, ndf=64):
        super().__init__()
        self.main = nn.Sequential(*d_block(nc, ndf, norm=False), *d_block(ndf, ndf * 2), *d_block(ndf * 2, ndf * 4),
                                  nn.Conv2d(ndf * 4, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x).squeeze(3).squeeze(2).squeeze(1)
