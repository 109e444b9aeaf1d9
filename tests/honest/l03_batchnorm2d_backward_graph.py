# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 03
# check: check_batchnorm2d_backward(batchnorm2d_backward)
# style: the computational graph walked back node by node (the staged derivation)
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    axes = (0, 2, 3)
    m = x.numel() // x.shape[1]
    g = gamma.reshape(1, -1, 1, 1)
    mu = x.mean(axes, keepdim=True)
    xmu = x - mu
    var = (xmu ** 2).mean(axes, keepdim=True)
    sqrtvar = torch.sqrt(var + eps)
    ivar = 1.0 / sqrtvar
    xhat = xmu * ivar
    dbeta = dout.sum(axes)
    dgamma = (dout * xhat).sum(axes)
    dxhat = dout * g
    divar = (dxhat * xmu).sum(axes, keepdim=True)
    dxmu1 = dxhat * ivar
    dsqrtvar = -divar / sqrtvar ** 2
    dvar = 0.5 * dsqrtvar / sqrtvar
    dsq = dvar.expand_as(x) / m
    dxmu2 = 2 * xmu * dsq
    dx1 = dxmu1 + dxmu2
    dmu = -dx1.sum(axes, keepdim=True)
    dx2 = dmu.expand_as(x) / m
    return dx1 + dx2, dgamma, dbeta
