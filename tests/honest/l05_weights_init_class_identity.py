# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 05
# check: check_dcgan_weights_init(dcgan_weights_init)
# style: m.__class__ compared with the classes themselves, a table of (mean, std)
INIT = {nn.Conv2d: 0.0, nn.ConvTranspose2d: 0.0, nn.BatchNorm2d: 1.0}


def dcgan_weights_init(m):
    if m.__class__ in INIT:
        nn.init.normal_(m.weight, INIT[m.__class__], 0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias, 0.0)
