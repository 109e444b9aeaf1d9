# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_down_block(down_block)
# style: a list of layers, appended conditionally
def down_block(in_ch, out_ch, batchnorm=True):
    layers = []
    layers.append(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False))
    if batchnorm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)
