# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_down_block(down_block)
# style: an empty Sequential filled with add_module and f-string names
def down_block(in_ch, out_ch, batchnorm=True):
    block = nn.Sequential()
    block.add_module("0", nn.Conv2d(in_ch, out_ch, kernel_size=4, stride=2, padding=1, bias=False))
    if batchnorm:
        block.add_module(f"{len(block)}", nn.BatchNorm2d(out_ch))
    block.add_module(str(len(block)), nn.LeakyReLU(0.2, inplace=True))
    return block
