# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 03
# check: check_batchnorm2d_scratch(BatchNorm2dScratch)
# style: parameters and buffers like nn.BatchNorm2d's, forward through the function of the first exercise
def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
    shape = (1, -1, 1, 1)
    if training:
        mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
        m = x.numel() // x.shape[1]
        with torch.no_grad():
            new_mean = (1 - momentum) * running_mean + momentum * mean
            new_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    else:
        mean, var, new_mean, new_var = running_mean, running_var, running_mean, running_var
    y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    return gamma.view(shape) * y + beta.view(shape), new_mean, new_var


# %%
class BatchNorm2dScratch(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        y, mean, var = batchnorm2d_forward(x, self.weight, self.bias, self.running_mean, self.running_var,
                                           self.training, self.momentum, self.eps)
        if self.training:
            self.running_mean.copy_(mean)
            self.running_var.copy_(var)
            self.num_batches_tracked.add_(1)
        return y

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps!r}, momentum={self.momentum!r}"

    def __repr__(self):
        return f"{self.__class__.__name__}({self.extra_repr()})"
