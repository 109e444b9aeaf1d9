# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 06
# check: check_generator(Generator)
# style: channel multipliers in a list, blocks built in a loop
class Generator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 64, nc: int = 3):
        super().__init__()
        mults = [8, 4, 2, 1]
        layers: list[nn.Module] = []
        in_ch = nz
        for i, mult in enumerate(mults):
            out_ch = ngf * mult
            stride, padding = (1, 0) if i == 0 else (2, 1)
            layers += [nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False),
                       nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]
            in_ch = out_ch
        layers += [nn.ConvTranspose2d(in_ch, nc, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z):
        return self.main(z.reshape(z.shape[0], -1, 1, 1))
