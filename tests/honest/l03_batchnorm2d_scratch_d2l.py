# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 03
# check: check_batchnorm2d_scratch(BatchNorm2dScratch)
# style: d2l's BatchNorm, self-contained, statistics computed in forward, reset_parameters
class BatchNorm2dScratch(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super(BatchNorm2dScratch, self).__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.empty(num_features))
        self.bias = nn.Parameter(torch.empty(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.zeros((), dtype=torch.long))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)
        nn.init.zeros_(self.bias)

    def forward(self, X):
        if self.training:
            mean = X.mean(dim=(0, 2, 3), keepdim=True)
            var = ((X - mean) ** 2).mean(dim=(0, 2, 3), keepdim=True)
            n = X.numel() / X.shape[1]
            with torch.no_grad():
                self.running_mean.mul_(1 - self.momentum).add_(self.momentum * mean.view(-1))
                self.running_var.mul_(1 - self.momentum).add_(self.momentum * var.view(-1) * n / (n - 1))
                self.num_batches_tracked += 1
        else:
            mean = self.running_mean.view(1, -1, 1, 1)
            var = self.running_var.view(1, -1, 1, 1)
        X_hat = (X - mean) / torch.sqrt(var + self.eps)
        return self.weight.view(1, -1, 1, 1) * X_hat + self.bias.view(1, -1, 1, 1)
