# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_up_block(up_block)
# style: d2l-style helper returning the layers, unpacked
def _layers(cin, cout, s, p):
    return [nn.ConvTranspose2d(cin, cout, 4, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


def up_block(in_ch: int, out_ch: int, stride: int = 2, padding: int = 1) -> nn.Sequential:
    return nn.Sequential(*_layers(in_ch, out_ch, stride, padding))
