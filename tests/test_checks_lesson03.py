"""Lesson 03 checks: the reference solution passes; each named mistake fails with a message naming it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import lesson03
from autograder.checks._core import CheckFailure

# ---------------------------------------------------------------------------------------------
# reference solution (the same code as in solutions/03_batchnorm)


def batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    shape = (1, -1, 1, 1)
    if training:
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        n = x.numel() // x.shape[1]
        with torch.no_grad():
            new_mean = (1 - momentum) * running_mean + momentum * mean
            new_var = (1 - momentum) * running_var + momentum * var * n / (n - 1)
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean, running_var
    x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    return gamma.view(shape) * x_hat + beta.view(shape), new_mean, new_var


class BatchNorm2dScratch(nn.Module):
    def __init__(self, num_features, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        out, rm, rv = batchnorm2d_forward(
            x, self.weight, self.bias, self.running_mean, self.running_var, self.training, self.momentum, self.eps
        )
        if self.training:
            self.running_mean.copy_(rm)
            self.running_var.copy_(rv)
            self.num_batches_tracked += 1
        return out


def test_reference_passes(capsys):
    lesson03.check_batchnorm2d_forward(batchnorm2d_forward)
    lesson03.check_batchnorm2d_forward(batchnorm2d_forward, hidden=True)
    lesson03.check_batchnorm2d_scratch(BatchNorm2dScratch)
    lesson03.check_batchnorm2d_scratch(BatchNorm2dScratch, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 4


# ---------------------------------------------------------------------------------------------
# batchnorm2d_forward: one deliberately wrong implementation per named mistake


def make_forward(
    dims=(0, 2, 3),
    running_unbiased=True,
    update_in_eval=False,
    eps_mode="inside",
    inverted_momentum=False,
    detach_stats=False,
    eval_uses_batch=False,
    norm_unbiased=False,
):
    def fwd(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        shape = (1, -1, 1, 1)
        bmean = x.mean(dim=(0, 2, 3))
        bvar = x.var(dim=(0, 2, 3), unbiased=False)
        n = x.numel() // x.shape[1]
        w = 1 - momentum if inverted_momentum else momentum
        with torch.no_grad():
            upd_mean = (1 - w) * running_mean + w * bmean
            upd_var = (1 - w) * running_var + w * (bvar * n / (n - 1) if running_unbiased else bvar)
        if training or eval_uses_batch:
            mean = x.mean(dim=dims, keepdim=True)
            var = x.var(dim=dims, unbiased=norm_unbiased, keepdim=True)
            if detach_stats:
                mean, var = mean.detach(), var.detach()
        else:
            mean, var = running_mean.view(shape), running_var.view(shape)
        if training or update_in_eval:
            new_mean, new_var = upd_mean, upd_var
        else:
            new_mean, new_var = running_mean, running_var
        if eps_mode == "inside":
            x_hat = (x - mean) / torch.sqrt(var + eps)
        elif eps_mode == "outside":
            x_hat = (x - mean) / (torch.sqrt(var) + eps)
        else:
            x_hat = (x - mean) / torch.sqrt(var)
        return gamma.view(shape) * x_hat + beta.view(shape), new_mean, new_var

    return fwd


def test_make_forward_defaults_are_correct():
    lesson03.check_batchnorm2d_forward(make_forward(), hidden=True)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"dims": (2, 3)}, ["instance norm", "dim=(0, 2, 3)"]),
        ({"dims": (0,)}, ["over the batch only", "dim=(0, 2, 3)"]),
        ({"dims": (1, 2, 3)}, ["layer norm", "dim=(0, 2, 3)"]),
        ({"running_unbiased": False}, ["running variance uses the biased", "unbiased"]),
        ({"update_in_eval": True}, ["changed in eval mode", "never updated"]),
        ({"eval_uses_batch": True}, ["in eval mode you normalised with the batch statistics"]),
        ({"eps_mode": "none"}, ["eps is missing", "sqrt(var + eps)"]),
        ({"eps_mode": "outside"}, ["eps is in the wrong place", "inside the square root"]),
        ({"inverted_momentum": True}, ["momentum is inverted", "(1 - momentum) * running + momentum * batch"]),
        ({"norm_unbiased": True}, ["normalised with the unbiased variance"]),
        ({"detach_stats": True}, ["x.grad", "do not .detach()"]),
    ],
)
def test_forward_mistakes_are_named(kwargs, words):
    with pytest.raises(CheckFailure) as err:
        lesson03.check_batchnorm2d_forward(make_forward(**kwargs))
    for word in words:
        assert word in str(err.value), str(err.value)


def test_forward_gamma_beta_swapped():
    ok = make_forward()

    def swapped(x, gamma, beta, *rest):
        return ok(x, beta, gamma, *rest)

    with pytest.raises(CheckFailure, match="gamma and beta are swapped"):
        lesson03.check_batchnorm2d_forward(swapped)


def test_forward_running_stats_with_grad():
    def leaky(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        out, _, _ = batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
        mean = x.mean(dim=(0, 2, 3))  # not detached: the buffer would keep the graph alive
        n = x.numel() // x.shape[1]
        var = x.var(dim=(0, 2, 3), unbiased=False) * n / (n - 1)
        if training:
            return out, (1 - momentum) * running_mean + momentum * mean, (1 - momentum) * running_var + momentum * var
        return out, running_mean, running_var

    with pytest.raises(CheckFailure, match="new_running_mean requires grad"):
        lesson03.check_batchnorm2d_forward(leaky)


@pytest.mark.parametrize(
    "delegate, label",
    [
        (lambda x, g, b, rm, rv, t, m, e: F.batch_norm(x, rm, rv, g, b, t, m, e), "F.batch_norm"),
        (lambda x, g, b, rm, rv, t, m, e: torch.batch_norm(x, g, b, rm, rv, t, m, e, False), "torch.batch_norm"),
    ],
)
def test_forward_delegation_is_caught(delegate, label):
    def fwd(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        rm, rv = running_mean.clone(), running_var.clone()
        return delegate(x, gamma, beta, rm, rv, training, momentum, eps), rm, rv

    with pytest.raises(CheckFailure, match=f"calls {label}"):
        lesson03.check_batchnorm2d_forward(fwd)


def test_forward_delegation_via_imported_name_is_caught():
    namespace = {"torch": torch}
    exec(
        "from torch.nn.functional import batch_norm as bn\n"
        "def fwd(x, g, b, rm, rv, t, m, e):\n"
        "    rm, rv = rm.clone(), rv.clone()\n"
        "    return bn(x, rm, rv, g, b, t, m, e), rm, rv\n",
        namespace,
    )
    with pytest.raises(CheckFailure, match="calls F.batch_norm"):
        lesson03.check_batchnorm2d_forward(namespace["fwd"])
    # the student's namespace is restored afterwards
    assert namespace["bn"] is F.batch_norm


def test_forward_not_implemented_and_wrong_return():
    def todo(*args):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="not implemented yet"):
        lesson03.check_batchnorm2d_forward(todo)
    with pytest.raises(CheckFailure, match="should return a tuple"):
        lesson03.check_batchnorm2d_forward(lambda *a: make_forward()(*a)[0])


# ---------------------------------------------------------------------------------------------
# BatchNorm2dScratch


def test_scratch_plain_attributes_are_not_buffers():
    class NoBuffers(BatchNorm2dScratch):
        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            nn.Module.__init__(self)
            self.eps, self.momentum = eps, momentum
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.running_mean = torch.zeros(num_features)
            self.running_var = torch.ones(num_features)
            self.num_batches_tracked = torch.tensor(0)

    with pytest.raises(CheckFailure, match="register_buffer"):
        lesson03.check_batchnorm2d_scratch(NoBuffers)


def test_scratch_stats_as_parameters():
    class StatsAsParams(BatchNorm2dScratch):
        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__(num_features, eps, momentum)
            del self.running_mean
            self.running_mean = nn.Parameter(torch.zeros(num_features), requires_grad=False)

    with pytest.raises(CheckFailure, match="buffers, not nn.Parameter"):
        lesson03.check_batchnorm2d_scratch(StatsAsParams)


def test_scratch_ignores_training_flag():
    class AlwaysTrain(BatchNorm2dScratch):
        def forward(self, x):
            out, rm, rv = batchnorm2d_forward(
                x, self.weight, self.bias, self.running_mean, self.running_var, True, self.momentum, self.eps
            )
            self.running_mean.copy_(rm)
            self.running_var.copy_(rv)
            self.num_batches_tracked += 1
            return out

    with pytest.raises(CheckFailure, match="eval mode"):
        lesson03.check_batchnorm2d_scratch(AlwaysTrain)


def test_scratch_forgets_counter():
    class NoCount(BatchNorm2dScratch):
        def forward(self, x):
            self.num_batches_tracked -= 1 if self.training else 0
            return super().forward(x)

    with pytest.raises(CheckFailure, match="num_batches_tracked"):
        lesson03.check_batchnorm2d_scratch(NoCount)


def test_scratch_float_counter():
    class FloatCount(BatchNorm2dScratch):
        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__(num_features, eps, momentum)
            self.num_batches_tracked = torch.tensor(0.0)

    with pytest.raises(CheckFailure, match="integer count"):
        lesson03.check_batchnorm2d_scratch(FloatCount)


def test_scratch_subclassing_builtin_is_refused():
    class Cheat(nn.BatchNorm2d):
        pass

    with pytest.raises(CheckFailure, match="derive from nn.Module"):
        lesson03.check_batchnorm2d_scratch(Cheat)


def test_scratch_delegating_to_builtin_is_caught():
    class Delegates(BatchNorm2dScratch):
        def forward(self, x):
            if self.training:
                self.num_batches_tracked += 1
            return F.batch_norm(
                x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps
            )

    with pytest.raises(CheckFailure, match="calls F.batch_norm"):
        lesson03.check_batchnorm2d_scratch(Delegates)
