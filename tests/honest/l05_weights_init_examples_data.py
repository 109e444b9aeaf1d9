# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 05
# check: check_dcgan_weights_init(dcgan_weights_init)
# style: pytorch/examples' dcgan: in-place normal_ and fill_ on .data
def dcgan_weights_init(m):
    classname = m.__class__.__name__
    if 'Conv' in classname:
        m.weight.data.normal_(0.0, 0.02)
        if m.bias is not None:
            m.bias.data.fill_(0)
    elif 'BatchNorm' in classname:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)
