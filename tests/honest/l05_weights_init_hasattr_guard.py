# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 05
# check: check_dcgan_weights_init(dcgan_weights_init)
# style: a module-type test plus hasattr guards, as many blog posts write it
def dcgan_weights_init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if hasattr(m, "bias") and m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        if hasattr(m, "weight"):
            nn.init.normal_(m.weight, 1.0, 0.02)
        if hasattr(m, "bias"):
            nn.init.zeros_(m.bias)
