# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 03
# check: check_batchnorm2d_backward(batchnorm2d_backward)
# style: CS231n's batchnorm_backward_alt on the (N*H*W, C) view
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    N, C, H, W = x.shape
    x2 = x.permute(0, 2, 3, 1).reshape(-1, C)
    d2 = dout.permute(0, 2, 3, 1).reshape(-1, C)
    m = x2.shape[0]
    mu = x2.mean(0)
    var = x2.var(0, unbiased=False)
    inv_std = 1.0 / torch.sqrt(var + eps)
    xhat = (x2 - mu) * inv_std
    dbeta = d2.sum(0)
    dgamma = (d2 * xhat).sum(0)
    dxhat = d2 * gamma
    dx = inv_std / m * (m * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0))
    dx = dx.reshape(N, H, W, C).permute(0, 3, 1, 2)
    return dx, dgamma, dbeta
