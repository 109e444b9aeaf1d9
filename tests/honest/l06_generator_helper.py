# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 06
# check: check_generator(Generator)
# style: d2l-style block helper, unsqueeze for flat noise
def g_block(in_ch, out_ch, stride=2, padding=1):
    return [nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(out_ch),
            nn.ReLU(True)]


class Generator(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            *g_block(nz, ngf * 8, stride=1, padding=0),
            *g_block(ngf * 8, ngf * 4),
            *g_block(ngf * 4, ngf * 2),
            *g_block(ngf * 2, ngf),
            nn.ConvTranspose2d(ngf, nc, kernel_size=4, stride=2, padding=1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z):
        while z.dim() < 4:
            z = z.unsqueeze(-1)
        return self.main(z)
