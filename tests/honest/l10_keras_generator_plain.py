# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 10
# check: check_keras_generator(KerasGenerator)
# style: Dense projection, reshape in forward, three up-sampling blocks written out
class KerasGenerator(nn.Module):
    def __init__(self, nz=100, ngf=128, nc=3):
        super().__init__()
        self.ngf = ngf
        self.project = nn.Linear(nz, ngf * 2 * 4 * 4)
        self.main = nn.Sequential(
            nn.BatchNorm2d(ngf * 2), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2),
            nn.ConvTranspose2d(ngf, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2),
            nn.Conv2d(ngf, nc, 3, 1, 1), nn.Tanh(),
        )

    def forward(self, z):
        h = self.project(z.view(z.size(0), -1))
        return self.main(h.view(-1, self.ngf * 2, 4, 4))
