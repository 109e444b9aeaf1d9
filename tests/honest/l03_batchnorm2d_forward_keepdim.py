# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 03
# check: check_batchnorm2d_forward(batchnorm2d_forward)
# style: keepdim statistics, unbiased variance for the running estimate
def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    if training:
        mu = x.mean(dim=(0, 2, 3), keepdim=True)
        var = ((x - mu) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        n = x.shape[0] * x.shape[2] * x.shape[3]
        new_mean = (1 - momentum) * running_mean + momentum * mu.flatten().detach()
        new_var = (1 - momentum) * running_var + momentum * var.flatten().detach() * n / (n - 1)
    else:
        mu = running_mean.view(1, -1, 1, 1)
        var = running_var.view(1, -1, 1, 1)
        new_mean, new_var = running_mean, running_var
    out = (x - mu) / torch.sqrt(var + eps)
    return out * gamma.view(1, -1, 1, 1) + beta.view(1, -1, 1, 1), new_mean, new_var
