# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 03
# check: check_batchnorm2d_forward(batchnorm2d_forward)
# style: a small helper to broadcast per-channel vectors, rsqrt
def _c(v):
    return v[None, :, None, None]


def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    dims = [0, 2, 3]
    if not training:
        return _c(gamma) * (x - _c(running_mean)) * torch.rsqrt(_c(running_var) + eps) + _c(beta), \
            running_mean, running_var
    mean = x.mean(dims)
    var = x.var(dims, unbiased=False)
    count = x.numel() / x.size(1)
    unbiased = var.detach() * (count / (count - 1))
    running = ((1 - momentum) * running_mean + momentum * mean.detach(),
               (1 - momentum) * running_var + momentum * unbiased)
    y = _c(gamma) * (x - _c(mean)) * torch.rsqrt(_c(var) + eps) + _c(beta)
    return (y, *running)
