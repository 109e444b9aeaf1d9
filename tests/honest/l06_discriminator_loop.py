# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 06
# check: check_discriminator(Discriminator)
# style: a loop over doubling widths, BatchNorm from the second block on, flatten at the end
class Discriminator(nn.Module):
    def __init__(self, nc: int = 3, ndf: int = 64):
        super().__init__()
        layers = []
        widths = [nc, ndf, ndf * 2, ndf * 4, ndf * 8]
        for i, (cin, cout) in enumerate(zip(widths[:-1], widths[1:])):
            layers.append(nn.Conv2d(cin, cout, 4, 2, 1, bias=False))
            if i > 0:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        layers += [nn.Conv2d(widths[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.main(x))


# %%
# scratch: the same stack as named attributes, set and read back with setattr/getattr
class Probe(nn.Module):
    def __init__(self, widths=(3, 8, 16)):
        super().__init__()
        self.n = len(widths) - 1
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            setattr(self, f"conv{i}", nn.Conv2d(a, b, 4, 2, 1, bias=False))

    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"conv{i}")(x)
        return x

    def __repr__(self):
        return f"{type(self).__name__}(n={self.n!r})"


print(Probe()(torch.randn(1, 3, 16, 16)).shape, Probe())
