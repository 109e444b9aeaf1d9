"""Lesson 04 checks: the reference solution passes; each named mistake fails with a message naming it."""

from __future__ import annotations

import pytest
import torch

from autograder.checks import lesson04
from autograder.checks._core import CheckFailure

# ---------------------------------------------------------------------------------------------
# reference solution (the same code as in solutions/04_activations)


def relu(x):
    return torch.where(x > 0, x, torch.zeros_like(x))


def relu_grad(x):
    return (x > 0).to(x.dtype)


def leaky_relu(x, negative_slope=0.2):
    return torch.where(x > 0, x, negative_slope * x)


def leaky_relu_grad(x, negative_slope=0.2):
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, negative_slope))


def sigmoid(x):
    z = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))


def sigmoid_grad(x):
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x):
    return 2 * sigmoid(2 * x) - 1


def tanh_grad(x):
    return 1 - tanh(x) ** 2


def test_reference_passes(capsys):
    for hidden in (False, True):
        lesson04.check_relu(relu, relu_grad, hidden=hidden)
        lesson04.check_leaky_relu(leaky_relu, leaky_relu_grad, hidden=hidden)
        lesson04.check_sigmoid(sigmoid, sigmoid_grad, hidden=hidden)
        lesson04.check_tanh(tanh, tanh_grad, hidden=hidden)
    assert capsys.readouterr().out.count("\u2714") == 8


def test_other_correct_formulations_pass():
    lesson04.check_relu(lambda x: x.clamp(min=0), lambda x: torch.where(x > 0, 1.0, 0.0).to(x.dtype))
    lesson04.check_leaky_relu(
        lambda x, negative_slope=0.2: torch.maximum(x, negative_slope * x),
        lambda x, negative_slope=0.2: (x > 0).to(x.dtype) * (1 - negative_slope) + negative_slope,
        hidden=True,
    )
    lesson04.check_tanh(
        lambda x: torch.sign(x) * (1 - torch.exp(-2 * x.abs())) / (1 + torch.exp(-2 * x.abs())),
        lambda x: 1 - tanh(x) ** 2,
        hidden=True,
    )


# ---------------------------------------------------------------------------------------------
# mistakes


def expect_failure(check, *fns, words, hidden=False):
    with pytest.raises(CheckFailure) as err:
        check(*fns, hidden=hidden)
    for word in words:
        assert word in str(err.value), str(err.value)


def test_relu_mistakes():
    expect_failure(lesson04.check_relu, lambda x: x.clamp(max=0), relu_grad, words=["wrong way round"])
    expect_failure(lesson04.check_relu, relu, lambda x: x.clamp(min=0), words=["ReLU itself, not its derivative"])
    expect_failure(lesson04.check_relu, relu, lambda x: x > 0, words=["booleans", ".to(x.dtype)"])

    def in_place(x):
        x[x < 0] = 0
        return x

    expect_failure(lesson04.check_relu, in_place, relu_grad, words=["in place"])
    expect_failure(lesson04.check_relu, torch.relu, relu_grad, words=["is torch.relu itself"])
    expect_failure(lesson04.check_relu, lambda x: torch.relu(x), relu_grad, words=["calls torch.relu"])
    expect_failure(lesson04.check_relu, lambda x: x.relu(), relu_grad, words=["calls Tensor.relu"])


def test_relu_grad_by_autograd_is_refused():
    def auto_grad(x):
        xr = x.clone().requires_grad_(True)
        relu(xr).sum().backward()
        return xr.grad

    expect_failure(lesson04.check_relu, relu, auto_grad, words=["calls Tensor.backward"])


def test_leaky_relu_mistakes():
    expect_failure(
        lesson04.check_leaky_relu,
        lambda x, negative_slope=0.2: torch.where(x > 0, x, 0.01 * x),
        leaky_relu_grad,
        words=["0.01", "negative_slope"],
    )
    expect_failure(lesson04.check_leaky_relu, leaky_relu, lambda x, negative_slope=0.2: relu_grad(x), words=["not 0"])
    # ignores the argument: passes the visible run (0.2) but not the hidden one
    fixed = (lambda x, negative_slope=0.2: torch.where(x > 0, x, 0.2 * x), leaky_relu_grad)
    lesson04.check_leaky_relu(*fixed)
    expect_failure(lesson04.check_leaky_relu, *fixed, hidden=True, words=["negative_slope=0.01"])
    expect_failure(
        lesson04.check_leaky_relu,
        lambda x, negative_slope=0.2: torch.nn.functional.leaky_relu(x, negative_slope),
        leaky_relu_grad,
        words=["calls F.leaky_relu"],
    )


def naive_sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def where_both_branches(x):
    return torch.where(x >= 0, 1 / (1 + torch.exp(-x)), torch.exp(x) / (1 + torch.exp(x)))


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda x: torch.exp(x) / (1 + torch.exp(x)), ["returns NaN at x = ", "exp(-|x|)"]),
        (naive_sigmoid, ["overflows inside", "inf", "NaN gradients"]),
        (where_both_branches, ["overflows inside", "both branches"]),
        (lambda x: naive_sigmoid(-x), ["sign is flipped"]),
        (torch.sigmoid, ["is torch.sigmoid itself"]),
        (lambda x: torch.sigmoid(x), ["calls torch.sigmoid"]),
        (lambda x: torch.special.expit(x), ["calls torch.special.expit"]),
        (lambda x: torch.exp(torch.nn.functional.logsigmoid(x)), ["calls F.logsigmoid"]),
    ],
)
def test_sigmoid_mistakes(fn, words):
    expect_failure(lesson04.check_sigmoid, fn, sigmoid_grad, words=words)


def test_sigmoid_detached_from_autograd():
    def numpy_sigmoid(x):
        return torch.from_numpy(sigmoid(x.detach()).numpy().copy())

    expect_failure(lesson04.check_sigmoid, numpy_sigmoid, sigmoid_grad, words=["not connected to autograd"])


@pytest.mark.parametrize(
    "grad, words",
    [
        (lambda x: x * (1 - x), ["not x * (1 - x)"]),
        (lambda x: 1 - sigmoid(x) ** 2, ["tanh's pattern"]),
        (
            lambda x: torch.exp(-x) / (1 + torch.exp(-x)) ** 2,
            ["NaN at x = -1000"],
        ),
    ],
)
def test_sigmoid_grad_mistakes(grad, words):
    expect_failure(lesson04.check_sigmoid, sigmoid, grad, words=words)


@pytest.mark.parametrize(
    "fn, grad, words",
    [
        (lambda x: (torch.exp(x) - torch.exp(-x)) / (torch.exp(x) + torch.exp(-x)), tanh_grad, ["returns NaN"]),
        (lambda x: 1 - 2 / (torch.exp(2 * x) + 1), tanh_grad, ["overflows inside"]),
        (lambda x: 2 * sigmoid(x) - 1, tanh_grad, ["the argument is 2x"]),
        (tanh, lambda x: 1 - tanh(x), ["square is missing"]),
        (tanh, lambda x: 1 - x**2, ["not 1 - x**2"]),
        (lambda x: x.tanh(), tanh_grad, ["calls Tensor.tanh"]),
        (lambda x: torch.nn.Tanh()(x), tanh_grad, ["calls torch.tanh"]),
    ],
)
def test_tanh_mistakes(fn, grad, words):
    expect_failure(lesson04.check_tanh, fn, grad, words=words)


def test_builtins_restored_after_a_failure():
    with pytest.raises(CheckFailure):
        lesson04.check_tanh(torch.tanh, tanh_grad)
    assert torch.tanh(torch.tensor(0.5)).item() == pytest.approx(0.46211715)
    assert torch.tensor([-1.0, 1.0]).relu().tolist() == [0.0, 1.0]
