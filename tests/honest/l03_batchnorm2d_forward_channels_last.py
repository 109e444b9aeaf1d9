# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 03
# check: check_batchnorm2d_forward(batchnorm2d_forward)
# style: channels moved to the front and flattened, as in CS231n's spatial batchnorm
def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    N, C, H, W = x.shape
    flat = x.transpose(0, 1).reshape(C, -1)  # (C, N*H*W)
    if training:
        mean = flat.mean(dim=1)
        var = flat.var(dim=1, unbiased=False)
        with torch.no_grad():
            new_mean = running_mean * (1 - momentum) + mean * momentum
            new_var = running_var * (1 - momentum) + flat.var(dim=1, unbiased=True) * momentum
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean.clone(), running_var.clone()
    x_hat = (flat - mean[:, None]) / (var[:, None] + eps).sqrt()
    y = gamma[:, None] * x_hat + beta[:, None]
    return y.reshape(C, N, H, W).transpose(0, 1), new_mean, new_var
