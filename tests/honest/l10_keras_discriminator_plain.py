# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 10
# check: check_keras_discriminator(KerasDiscriminator)
# style: four 3x3 convolutions, Flatten, Dropout, Linear, as the Keras tutorial's layers
class KerasDiscriminator(nn.Module):
    def __init__(self, nc=3, ndf=64, dropout=0.4):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf, ndf * 2, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf * 2, ndf * 2, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ndf * 2, ndf * 4, 3, 2, 1), nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(ndf * 4 * 4 * 4, 1),
        )

    def forward(self, x):
        return self.main(x).squeeze(1)
