# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 02
# check: check_up_block(up_block)
# style: layer classes in a tuple, instantiated in a loop with their arguments
def up_block(in_ch, out_ch, stride=2, padding=1):
    recipe = (
        (nn.ConvTranspose2d, (in_ch, out_ch, 4, stride, padding), {"bias": False}),
        (nn.BatchNorm2d, (out_ch,), {}),
        (nn.ReLU, (), {"inplace": True}),
    )
    return nn.Sequential(*(cls(*args, **kwargs) for cls, args, kwargs in recipe))
