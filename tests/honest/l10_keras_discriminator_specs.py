# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 10
# check: check_keras_discriminator(KerasDiscriminator)
# style: (out_channels, stride) specs in a loop, view(-1) at the end
class KerasDiscriminator(nn.Module):
    def __init__(self, nc: int = 3, ndf: int = 64, dropout: float = 0.4):
        super().__init__()
        specs = [(ndf, 1), (ndf * 2, 2), (ndf * 2, 2), (ndf * 4, 2)]
        layers, cin = [], nc
        for cout, stride in specs:
            layers += [nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2)]
            cin = cout
        layers += [nn.Flatten(), nn.Dropout(p=dropout), nn.Linear(cin * 4 * 4, 1)]
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x).view(-1)
