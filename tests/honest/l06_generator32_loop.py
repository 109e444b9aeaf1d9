# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 06
# check: check_generator32(Generator32)
# style: widths from a comprehension, ModuleList-free Sequential
class Generator32(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        widths = [ngf * m for m in (4, 2, 1)]
        blocks = [nn.ConvTranspose2d(nz, widths[0], 4, 1, 0, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU(True)]
        for a, b in zip(widths, widths[1:]):
            blocks += [nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU(True)]
        blocks += [nn.ConvTranspose2d(widths[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*blocks)

    def forward(self, z):
        return self.main(z.view(len(z), -1, 1, 1))
