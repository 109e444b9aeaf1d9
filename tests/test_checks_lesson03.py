"""Lesson 03 checks: the solution passes, answers written another way pass, and each named mistake (the
built-ins and their aliases, autograd in the backward pass, a broken exercise 1 under the module) fails
with a message naming it, or, for the cascade, costs exercise 1 only."""

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


def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    dims, shape = (0, 2, 3), (1, -1, 1, 1)
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    std = torch.sqrt(var + eps)
    x_hat = (x - mean) / std
    dx_hat = dout * gamma.view(shape)
    dx = (dx_hat - dx_hat.mean(dim=dims, keepdim=True) - x_hat * (dx_hat * x_hat).mean(dim=dims, keepdim=True)) / std
    return dx, (dout * x_hat).sum(dim=dims), dout.sum(dim=dims)


def test_solution_passes(capsys):
    for hidden in (False, True):
        lesson03.check_batchnorm2d_forward(batchnorm2d_forward, hidden=hidden)
        lesson03.check_batchnorm2d_scratch(BatchNorm2dScratch, hidden=hidden)
        lesson03.check_batchnorm2d_backward(batchnorm2d_backward, hidden=hidden)
    out = capsys.readouterr().out
    assert out.count("\u2714") == 6
    assert "fix exercise" not in out


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
    "delegate",
    [
        lambda x, g, b, rm, rv, t, m, e: F.batch_norm(x, rm, rv, g, b, t, m, e),
        lambda x, g, b, rm, rv, t, m, e: torch.batch_norm(x, g, b, rm, rv, t, m, e, False),
        lambda x, g, b, rm, rv, t, m, e: nn.functional.batch_norm(x, rm, rv, g, b, t, m, e),
        lambda x, g, b, rm, rv, t, m, e: torch.ops.aten.batch_norm(x, g, b, rm, rv, t, m, e, False),
        lambda x, g, b, rm, rv, t, m, e: torch.ops.aten.native_batch_norm(x, g, b, rm, rv, t, m, e)[0],
        lambda x, g, b, rm, rv, t, m, e: torch.native_batch_norm(x, g, b, rm, rv, t, m, e)[0],
        lambda x, g, b, rm, rv, t, m, e: torch.ops.aten._native_batch_norm_legit(x, g, b, rm, rv, t, m, e)[0],
        # layer norm over the channel's (N, H, W) values: a batch norm in disguise
        lambda x, g, b, rm, rv, t, m, e: (
            F.layer_norm(x.transpose(0, 1).reshape(x.shape[1], -1), (x[:, 0].numel(),), eps=e)
            .reshape(x.shape[1], x.shape[0], *x.shape[2:]).transpose(0, 1) * g.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)),
        # instance norm with the batch folded into the spatial axes
        lambda x, g, b, rm, rv, t, m, e: F.instance_norm(
            x.transpose(0, 1).reshape(1, x.shape[1], -1), weight=g, bias=b, eps=e)
            .reshape(x.shape[1], x.shape[0], *x.shape[2:]).transpose(0, 1),
        lambda x, g, b, rm, rv, t, m, e: F.group_norm(x.transpose(0, 1).reshape(1, x.shape[1], -1), x.shape[1],
                                                      g, b, e).reshape(x.shape[1], x.shape[0], *x.shape[2:])
        .transpose(0, 1),
        lambda x, g, b, rm, rv, t, m, e: nn.BatchNorm2d(x.shape[1], eps=e, momentum=m)(x),
    ],
)
def test_forward_delegation_is_caught(delegate):
    def fwd(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        rm, rv = running_mean.clone(), running_var.clone()
        out = delegate(x, gamma, beta, rm, rv, training, momentum, eps)
        return out, rm, rv

    with pytest.raises(CheckFailure, match="calls a built-in normalisation"):
        lesson03.check_batchnorm2d_forward(fwd)


def test_delegation_caught_even_when_the_error_is_swallowed():
    def sneaky(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        try:
            F.batch_norm(x, running_mean.clone(), running_var.clone(), gamma, beta, training, momentum, eps)
        except Exception:  # noqa: BLE001
            pass
        return batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)

    with pytest.raises(CheckFailure, match=r"calls a built-in normalisation.*aten\.batch_norm|native_batch_norm"):
        lesson03.check_batchnorm2d_forward(sneaky)


def test_forward_delegation_via_imported_name_is_caught():
    namespace = {"torch": torch}
    exec(
        "from torch.nn.functional import batch_norm as bn\n"
        "def fwd(x, g, b, rm, rv, t, m, e):\n"
        "    rm, rv = rm.clone(), rv.clone()\n"
        "    return bn(x, rm, rv, g, b, t, m, e), rm, rv\n",
        namespace,
    )
    with pytest.raises(CheckFailure, match="calls a built-in normalisation"):
        lesson03.check_batchnorm2d_forward(namespace["fwd"])
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

    with pytest.raises(CheckFailure, match="calls a built-in normalisation"):
        lesson03.check_batchnorm2d_scratch(Delegates)


def test_module_delegating_through_aten_is_caught():
    class Delegates(BatchNorm2dScratch):
        def forward(self, x):
            if self.training:
                self.num_batches_tracked += 1
            return torch.ops.aten.native_batch_norm(x, self.weight, self.bias, self.running_mean, self.running_var,
                                                    self.training, self.momentum, self.eps)[0]

    with pytest.raises(CheckFailure, match="calls a built-in normalisation"):
        lesson03.check_batchnorm2d_scratch(Delegates)


# ---------------------------------------------------------------------------------------------
# batchnorm2d_forward: contracts and messages issue 12 found missing


def test_forward_mutating_the_callers_running_stats_is_named():
    def in_place(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        out, rm, rv = batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
        if training:
            running_mean.copy_(rm)
            running_var.copy_(rv)
        return out, running_mean, running_var

    with pytest.raises(CheckFailure, match="changed the running_mean tensor passed in.*in place"):
        lesson03.check_batchnorm2d_forward(in_place)

    def in_place_x(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        out, rm, rv = batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
        x.sub_(x.mean(dim=(0, 2, 3), keepdim=True))
        return out, rm, rv

    with pytest.raises(CheckFailure, match="changed the x tensor passed in"):
        lesson03.check_batchnorm2d_forward(in_place_x)


def per_image_variance(unbiased_running: bool):
    def fwd(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        shape = (1, -1, 1, 1)
        if not training:
            return batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(2, 3), unbiased=False).mean(dim=0)  # each image's own variance, averaged
        with torch.no_grad():
            run_var = x.var(dim=(2, 3), unbiased=unbiased_running).mean(dim=0)
            new_mean = (1 - momentum) * running_mean + momentum * mean
            new_var = (1 - momentum) * running_var + momentum * run_var
        x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
        return gamma.view(shape) * x_hat + beta.view(shape), new_mean, new_var

    return fwd


@pytest.mark.parametrize("unbiased_running", [True, False])
def test_forward_per_image_variance_is_named(unbiased_running):
    with pytest.raises(CheckFailure, match="average of each image's own variance"):
        lesson03.check_batchnorm2d_forward(per_image_variance(unbiased_running))


def test_forward_running_variance_from_per_image_variances_is_named():
    def fwd(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        out, new_mean, _ = batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
        if not training:
            return out, running_mean, running_var
        with torch.no_grad():
            new_var = (1 - momentum) * running_var + momentum * x.var(dim=(2, 3)).mean(dim=0)
        return out, new_mean, new_var

    with pytest.raises(CheckFailure, match="running variance is updated with the average of each image"):
        lesson03.check_batchnorm2d_forward(fwd)


def test_forward_hard_coded_momentum_and_eps_are_named():
    def fixed_momentum(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        return batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, 0.1, eps)

    with pytest.raises(CheckFailure, match="momentum is hard-coded to 0.1.*here 0.3"):
        lesson03.check_batchnorm2d_forward(fixed_momentum)

    def fixed_eps(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        return batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, 1e-5)

    with pytest.raises(CheckFailure, match="eps is hard-coded to 1e-5.*here 0.1"):
        lesson03.check_batchnorm2d_forward(fixed_eps)


def test_forward_hard_coded_float32_fails_the_hidden_run():
    def float32(x, gamma, beta, running_mean, running_var, training, momentum, eps):
        out, rm, rv = batchnorm2d_forward(x.float(), gamma.float(), beta.float(), running_mean.float(),
                                          running_var.float(), training, momentum, eps)
        return out, rm.to(x.dtype), rv.to(x.dtype)

    lesson03.check_batchnorm2d_forward(float32)
    with pytest.raises(CheckFailure, match="float64 input"):
        lesson03.check_batchnorm2d_forward(float32, hidden=True)


def test_forward_variants_pass(capsys):
    def by_hand(x, gamma, beta, running_mean, running_var, training, momentum=0.1, eps=1e-5):
        c = x.shape[1]
        flat = x.transpose(0, 1).reshape(c, -1)
        if training:
            mean = flat.sum(1) / flat.shape[1]
            var = ((flat - mean[:, None]) ** 2).sum(1) / flat.shape[1]
            with torch.no_grad():
                rm = running_mean * (1 - momentum) + mean.detach() * momentum
                rv = running_var * (1 - momentum) + momentum * ((flat - mean[:, None]) ** 2).sum(1).detach() / (
                    flat.shape[1] - 1)
        else:
            mean, var, rm, rv = running_mean, running_var, running_mean.clone(), running_var.clone()
        y = (flat - mean[:, None]) * torch.rsqrt(var[:, None] + eps) * gamma[:, None] + beta[:, None]
        return y.reshape(c, x.shape[0], *x.shape[2:]).transpose(0, 1), rm, rv

    lesson03.check_batchnorm2d_forward(by_hand, hidden=True)
    assert "\u2714" in capsys.readouterr().out


# ---------------------------------------------------------------------------------------------
# BatchNorm2dScratch: graded with a reference batchnorm2d_forward when the student's is broken

MODULE_SOURCE = """
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
            x, self.weight, self.bias, self.running_mean, self.running_var, self.training, MOMENTUM, self.eps
        )
        if self.training:
            self.running_mean.copy_(rm)
            self.running_var.copy_(rv)
            self.num_batches_tracked += 1
        return out
"""


def notebook(forward, momentum="self.momentum"):
    """A notebook's globals: the student's batchnorm2d_forward and the module written on it."""
    namespace = {"torch": torch, "nn": nn, "batchnorm2d_forward": forward}
    exec(MODULE_SOURCE.replace("MOMENTUM", momentum), namespace)
    return namespace


@pytest.mark.parametrize(
    "broken",
    [
        make_forward(dims=(2, 3)),
        make_forward(running_unbiased=False),
        make_forward(inverted_momentum=True),
        lambda *args: (_ for _ in ()).throw(NotImplementedError()),
        lambda x, g, b, rm, rv, t, m, e: F.batch_norm(x, rm.clone(), rv.clone(), g, b, t, m, e),
    ],
)
def test_module_on_a_broken_forward_keeps_its_points(broken, capsys):
    namespace = notebook(broken)
    lesson03.check_batchnorm2d_scratch(namespace["BatchNorm2dScratch"])
    out = capsys.readouterr().out
    assert "\u2714" in out and "fix exercise 1 first" in out, out
    assert namespace["batchnorm2d_forward"] is broken  # restored


def test_module_mistake_on_a_broken_forward_is_still_the_module_s():
    namespace = notebook(make_forward(dims=(2, 3)), momentum="0.1")
    with pytest.raises(CheckFailure, match="not a fixed 0.1"):
        lesson03.check_batchnorm2d_scratch(namespace["BatchNorm2dScratch"])


def test_module_hard_coded_momentum_is_named():
    namespace = notebook(batchnorm2d_forward, momentum="0.1")
    with pytest.raises(CheckFailure, match=r"Pass self.momentum \(here 0.3\), not a fixed 0.1"):
        lesson03.check_batchnorm2d_scratch(namespace["BatchNorm2dScratch"])


def test_module_hard_coded_eps_is_named():
    class FixedEps(BatchNorm2dScratch):
        def forward(self, x):
            eps, self.eps = self.eps, 1e-5
            try:
                return super().forward(x)
            finally:
                self.eps = eps

    with pytest.raises(CheckFailure, match="eps is hard-coded to 1e-5"):
        lesson03.check_batchnorm2d_scratch(FixedEps)


def test_module_not_a_class_and_not_implemented():
    with pytest.raises(CheckFailure, match="class derived from nn.Module"):
        lesson03.check_batchnorm2d_scratch(batchnorm2d_forward)

    class Todo(nn.Module):
        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__()
            raise NotImplementedError()

    with pytest.raises(CheckFailure, match="not implemented yet"):
        lesson03.check_batchnorm2d_scratch(Todo)


def test_module_written_without_the_function_passes(capsys):
    class Standalone(nn.Module):
        def __init__(self, num_features, eps=1e-5, momentum=0.1):
            super().__init__()
            self.eps, self.momentum = eps, momentum
            self.weight = nn.Parameter(torch.ones(num_features))
            self.bias = nn.Parameter(torch.zeros(num_features))
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

        def forward(self, x):
            if self.training:
                mean, var = x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)
                with torch.no_grad():
                    self.running_mean.lerp_(mean, self.momentum)
                    self.running_var.lerp_(x.var(dim=(0, 2, 3)), self.momentum)
                    self.num_batches_tracked.add_(1)
            else:
                mean, var = self.running_mean, self.running_var
            return ((x - mean[:, None, None]) / (var[:, None, None] + self.eps).sqrt() * self.weight[:, None, None]
                    + self.bias[:, None, None])

    lesson03.check_batchnorm2d_scratch(Standalone, hidden=True)
    out = capsys.readouterr().out
    assert "\u2714" in out and "fix exercise" not in out


# ---------------------------------------------------------------------------------------------
# batchnorm2d_backward


def make_backward(mean_term=True, var_term=True, unbiased=False, count="m", dgamma="sum", dbeta="sum",
                  keep_gamma=True, eps_in=True, swap=False, sum_dims=(0, 2, 3), use_x=False):
    def bwd(dout, x, gamma, eps=1e-5):
        dims, shape = (0, 2, 3), (1, -1, 1, 1)
        m = x.numel() // x.shape[1] if count == "m" else x.shape[0]
        mean = x.mean(dim=dims, keepdim=True)
        var = x.var(dim=dims, unbiased=unbiased, keepdim=True)
        std = torch.sqrt(var + eps) if eps_in else torch.sqrt(var)
        x_hat = (x - mean) / std
        dx_hat = dout * gamma.view(shape) if keep_gamma else dout
        dx = dx_hat
        if mean_term:
            dx = dx - dx_hat.sum(dim=dims, keepdim=True) / m
        if var_term:
            dx = dx - x_hat * (dx_hat * x_hat).sum(dim=dims, keepdim=True) / m
        dx = dx / std
        reduce = torch.sum if dgamma == "sum" else torch.mean
        dg = reduce(dout * (x if use_x else x_hat), dim=sum_dims) if sum_dims else dout * x_hat
        db = (torch.sum if dbeta == "sum" else torch.mean)(dout, dim=sum_dims) if sum_dims else dout
        return (dx, db, dg) if swap else (dx, dg, db)

    return bwd


def test_make_backward_defaults_are_correct():
    lesson03.check_batchnorm2d_backward(make_backward(), hidden=True)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"mean_term": False, "var_term": False}, ["treats the batch mean and variance as constants"]),
        ({"mean_term": False}, ["the mean term is missing"]),
        ({"var_term": False}, ["the variance term is missing"]),
        ({"unbiased": True}, ["unbiased variance", "biased one"]),
        ({"count": "n"}, ["divide by N", "divide by m"]),
        ({"keep_gamma": False}, ["gamma is missing from dx"]),
        ({"eps_in": False}, ["eps is missing"]),
        ({"dgamma": "mean"}, ["dgamma is the mean", "SUM"]),
        ({"dbeta": "mean"}, ["dbeta is the mean", "SUM"]),
        ({"swap": True}, ["dgamma and dbeta are swapped"]),
        ({"use_x": True}, ["not x"]),
        ({"sum_dims": None}, ["dgamma has shape (4, 3, 5, 5), expected (3,)", "dim=(0, 2, 3)"]),
        ({"sum_dims": (0,)}, ["dgamma has shape (3, 5, 5), expected (3,)", "dim=(0, 2, 3)"]),
    ],
)
def test_backward_mistakes_are_named(kwargs, words):
    with pytest.raises(CheckFailure) as err:
        lesson03.check_batchnorm2d_backward(make_backward(**kwargs))
    for word in words:
        assert word in str(err.value), str(err.value)


def test_backward_keepdim_shape_is_named():
    def keepdim(dout, x, gamma, eps=1e-5):
        dx, dg, db = batchnorm2d_backward(dout, x, gamma, eps)
        return dx, dg.view(1, -1, 1, 1), db

    with pytest.raises(CheckFailure, match=r"\(1, 3, 1, 1\), expected \(3,\).*without keepdim"):
        lesson03.check_batchnorm2d_backward(keepdim)


def test_backward_step_by_step_variant_passes(capsys):
    def staged(dout, x, gamma, eps=1e-5):
        """CS231n's staged graph: every intermediate's gradient in turn."""
        n = x.numel() // x.shape[1]
        mu = x.mean(dim=(0, 2, 3), keepdim=True)
        xc = x - mu
        var = (xc**2).mean(dim=(0, 2, 3), keepdim=True)
        ivar = 1 / torch.sqrt(var + eps)
        x_hat = xc * ivar
        dbeta = dout.sum(dim=(0, 2, 3))
        dgamma = (dout * x_hat).sum(dim=(0, 2, 3))
        dx_hat = dout * gamma.view(1, -1, 1, 1)
        divar = (dx_hat * xc).sum(dim=(0, 2, 3), keepdim=True)
        dxc = dx_hat * ivar
        dvar = divar * -0.5 * (var + eps) ** -1.5
        dxc = dxc + 2 * xc * dvar / n
        dmu = -dxc.sum(dim=(0, 2, 3), keepdim=True)
        return dxc + dmu / n, dgamma, dbeta

    lesson03.check_batchnorm2d_backward(staged, hidden=True)
    assert "\u2714" in capsys.readouterr().out


@pytest.mark.parametrize(
    "cheat, words",
    [
        ("autograd", ["calls Tensor.backward", "autograd"]),
        ("autograd.grad", ["torch.autograd.grad"]),
        ("builtin", ["calls a built-in normalisation"]),
        ("aten_backward", ["calls a built-in normalisation"]),
    ],
)
def test_backward_by_autograd_or_builtin_is_refused(cheat, words):
    def bwd(dout, x, gamma, eps=1e-5):
        xr, gr = x.clone().requires_grad_(True), gamma.clone().requires_grad_(True)
        br = torch.zeros_like(gamma, requires_grad=True)
        if cheat == "aten_backward":
            mean = x.mean(dim=(0, 2, 3))
            invstd = 1 / torch.sqrt(x.var(dim=(0, 2, 3), unbiased=False) + eps)
            return torch.ops.aten.native_batch_norm_backward(dout, x, gamma, None, None, mean, invstd, True, eps,
                                                             [True, True, True])
        if cheat == "builtin":
            out = F.batch_norm(xr, None, None, gr, br, True, 0.1, eps)
        else:
            out = batchnorm2d_forward(xr, gr, br, torch.zeros_like(gamma), torch.ones_like(gamma), True, 0.1, eps)[0]
        if cheat == "autograd.grad":
            return torch.autograd.grad(out, (xr, gr, br), dout)
        out.backward(dout)
        return xr.grad, gr.grad, br.grad

    with pytest.raises(CheckFailure) as err:
        lesson03.check_batchnorm2d_backward(bwd)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_backward_wrong_return_and_in_place():
    with pytest.raises(CheckFailure, match="should return a tuple"):
        lesson03.check_batchnorm2d_backward(lambda dout, x, gamma, eps=1e-5: batchnorm2d_backward(dout, x, gamma)[0])

    def in_place(dout, x, gamma, eps=1e-5):
        result = batchnorm2d_backward(dout, x, gamma, eps)
        dout.mul_(gamma.view(1, -1, 1, 1))
        return result

    with pytest.raises(CheckFailure, match="changed the dout tensor"):
        lesson03.check_batchnorm2d_backward(in_place)


@pytest.mark.parametrize(
    "check, objects",
    [
        (lesson03.check_batchnorm2d_forward, (batchnorm2d_forward,)),
        (lesson03.check_batchnorm2d_scratch, (BatchNorm2dScratch,)),
        (lesson03.check_batchnorm2d_backward, (batchnorm2d_backward,)),
    ],
)
def test_probes_return_plain_data_only(check, objects):
    """What crosses to the judge survives the trusted grader's serialisation, with no opaque markers."""
    from autograder.checks._plain import dumps, loads

    ex = check.exercise
    data = loads(dumps(ex.run_probe(objects, loads(dumps(ex.cases(True))))))
    assert "__opaque__" not in repr(data)
    assert ex.judge(ex.cases(True), data)


# ---------------------------------------------------------------------------------------------
# the cascade rule: the module is graded on its own code, whatever exercise 1 did


def test_module_is_graded_when_exercise_1_never_ran(capsys):
    """batchnorm2d_forward screened (its cell refused, so the name is undefined): the module still
    earns its points, with the reference in its place, and the message says so."""
    namespace = notebook(batchnorm2d_forward)
    del namespace["batchnorm2d_forward"]
    lesson03.check_batchnorm2d_scratch(namespace["BatchNorm2dScratch"], hidden=True)
    out = capsys.readouterr().out
    assert "\u2714" in out and "not defined" in out and "fix exercise 1 first" in out, out
    assert "batchnorm2d_forward" not in namespace  # nothing left behind


@pytest.mark.parametrize("broken", [
    lambda *args: tuple(t.half() for t in batchnorm2d_forward(*args)),  # wrong dtype
    lambda *args: tuple(t.long() for t in batchnorm2d_forward(*args)),  # an integer dtype
    lambda *args: batchnorm2d_forward(*args)[0],  # wrong type: one tensor, not a tuple
    lambda *args: (_ for _ in ()).throw(RuntimeError("boom")),  # raises
])
def test_module_is_graded_whatever_exercise_1_returns(broken, capsys):
    namespace = notebook(broken)
    lesson03.check_batchnorm2d_scratch(namespace["BatchNorm2dScratch"])
    out = capsys.readouterr().out
    assert "\u2714" in out and "fix exercise 1 first" in out, out


def test_module_own_mistake_fails_even_when_exercise_1_never_ran():
    namespace = notebook(batchnorm2d_forward, momentum="0.1")
    del namespace["batchnorm2d_forward"]
    with pytest.raises(CheckFailure, match="not a fixed 0.1"):
        lesson03.check_batchnorm2d_scratch(namespace["BatchNorm2dScratch"])


# ---------------------------------------------------------------------------------------------
# gradients: an answer that feeds a backward pass is judged on them


def forward_detached_stats(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    """Right values, but the batch mean and variance are detached: x's gradient misses their paths."""
    if not training:
        return batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)
    out, rm, rv = batchnorm2d_forward(x.detach(), gamma, beta, running_mean, running_var, training, momentum, eps)
    mean = x.detach().mean(dim=(0, 2, 3), keepdim=True)
    var = x.detach().var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    x_hat = (x - mean) / torch.sqrt(var + eps)
    return gamma.view(1, -1, 1, 1) * x_hat + beta.view(1, -1, 1, 1), rm, rv


def forward_detached_x(x, gamma, beta, running_mean, running_var, training, momentum, eps):
    """Right values, but x is detached: no gradient reaches x at all."""
    return batchnorm2d_forward(x.detach(), gamma, beta, running_mean, running_var, training, momentum, eps)


def test_forward_with_detached_statistics_fails_on_its_gradient():
    with pytest.raises(CheckFailure, match=r"x.grad differs.*flow through the batch mean and variance"):
        lesson03.check_batchnorm2d_forward(forward_detached_stats)


def test_forward_with_a_detached_input_names_it():
    with pytest.raises(CheckFailure, match="x.grad is None: out does not depend on x"):
        lesson03.check_batchnorm2d_forward(forward_detached_x)


def test_module_with_detached_statistics_fails_on_the_gradient_of_x():
    class Detached(BatchNorm2dScratch):
        def forward(self, x):
            out, rm, rv = forward_detached_stats(x, self.weight, self.bias, self.running_mean, self.running_var,
                                                 self.training, self.momentum, self.eps)
            if self.training:
                self.running_mean.copy_(rm)
                self.running_var.copy_(rv)
                self.num_batches_tracked += 1
            return out

    with pytest.raises(CheckFailure, match=r"x.grad differs.*batch mean and variance"):
        lesson03.check_batchnorm2d_scratch(Detached)


def test_module_with_a_detached_input_names_it():
    class DetachedInput(BatchNorm2dScratch):
        def forward(self, x):
            return super().forward(x.detach())

    with pytest.raises(CheckFailure, match=r"no gradient reaches x: did you \.detach\(\) it"):
        lesson03.check_batchnorm2d_scratch(DetachedInput)


# ---------------------------------------------------------------------------------------------
# NaN answers fail every comparison


def test_nan_answers_fail():
    def nan_forward(*args):
        out, rm, rv = batchnorm2d_forward(*args)
        return out * float("nan"), rm, rv

    with pytest.raises(CheckFailure, match="NaN"):
        lesson03.check_batchnorm2d_forward(nan_forward)

    def nan_backward(dout, x, gamma, eps=1e-5):
        dx, dgamma, dbeta = batchnorm2d_backward(dout, x, gamma, eps)
        return dx, dgamma, dbeta * float("nan")

    with pytest.raises(CheckFailure, match="NaN"):
        lesson03.check_batchnorm2d_backward(nan_backward)
