# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 05
# check: check_dcgan_weights_init(dcgan_weights_init)
# style: the PyTorch DCGAN tutorial's classname = m.__class__.__name__ and classname.find('Conv')
def dcgan_weights_init(m):
    classname = m.__class__.__name__
    if classname.find('Conv') != -1:
        nn.init.normal_(m.weight.data, 0.0, 0.02)
        if m.bias is not None:
            nn.init.constant_(m.bias.data, 0)
    elif classname.find('BatchNorm') != -1:
        nn.init.normal_(m.weight.data, 1.0, 0.02)
        nn.init.constant_(m.bias.data, 0)
