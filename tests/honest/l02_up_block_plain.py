# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_up_block(up_block)
# style: keyword arguments, ReLU(True) as in the DCGAN tutorial
def up_block(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(
        nn.ConvTranspose2d(in_ch, out_ch, kernel_size=4, stride=stride, padding=padding, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(True),
    )
