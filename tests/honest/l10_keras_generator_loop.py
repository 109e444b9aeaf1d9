# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 10
# check: check_keras_generator(KerasGenerator)
# style: the three ConvTranspose2d blocks from a loop, flatten(1) on the noise
class KerasGenerator(nn.Module):
    def __init__(self, nz: int = 100, ngf: int = 128, nc: int = 3) -> None:
        super().__init__()
        self.ngf = ngf
        self.project = nn.Linear(nz, 2 * ngf * 16)
        layers: list[nn.Module] = [nn.BatchNorm2d(2 * ngf), nn.LeakyReLU(0.2)]
        in_ch = 2 * ngf
        for _ in range(3):
            layers += [nn.ConvTranspose2d(in_ch, ngf, kernel_size=4, stride=2, padding=1),
                       nn.BatchNorm2d(ngf), nn.LeakyReLU(negative_slope=0.2)]
            in_ch = ngf
        layers += [nn.Conv2d(ngf, nc, kernel_size=3, padding=1), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.project(torch.flatten(z, 1))
        return self.main(x.reshape(len(x), 2 * self.ngf, 4, 4))
