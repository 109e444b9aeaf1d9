# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 01
# check: check_down_block(down_block)
# style: optional layer as None, filtered out
def down_block(in_ch, out_ch, batchnorm=True):
    parts = (
        nn.Conv2d(in_channels=in_ch, out_channels=out_ch, kernel_size=4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(out_ch) if batchnorm else None,
        nn.LeakyReLU(negative_slope=0.2, inplace=True),
    )
    return nn.Sequential(*[p for p in parts if p is not None])


# %%
# a scratch cell: look at the block
block = down_block(3, 8)
for layer in block:
    print(type(layer).__name__, layer.__class__.__qualname__)
print(f"{block!r}")
