# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 03
# check: check_batchnorm2d_forward(batchnorm2d_forward)
# style: torch.var_mean in one call, the running update under no_grad
def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    g, b = gamma[None, :, None, None], beta[None, :, None, None]
    if training:
        var, mean = torch.var_mean(x, dim=(0, 2, 3), unbiased=False)
        n = x.shape[0] * x.shape[2] * x.shape[3]
        with torch.no_grad():
            new_mean = torch.lerp(running_mean, mean, momentum)
            new_var = torch.lerp(running_var, var * (n / (n - 1)), momentum)
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean, running_var
    out = g * (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + eps) + b
    return out, new_mean, new_var
