"""Lesson 04 checks: the solution passes, answers written another way pass, and each named mistake
(aliases of the built-ins and autograd included) fails with a message naming it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import check_fails

from autograder.checks import lesson04
from autograder.checks._core import CheckFailure

# ---------------------------------------------------------------------------------------------
# the solution (the same code as in solutions/04_activations)


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


def test_solution_passes(capsys):
    for hidden in (False, True):
        lesson04.check_relu(relu, relu_grad, hidden=hidden)
        lesson04.check_leaky_relu(leaky_relu, leaky_relu_grad, hidden=hidden)
        lesson04.check_sigmoid(sigmoid, sigmoid_grad, hidden=hidden)
        lesson04.check_tanh(tanh, tanh_grad, hidden=hidden)
    out = capsys.readouterr().out
    assert out.count("\u2714") == 8
    assert "fix exercise" not in out


def test_other_correct_formulations_pass(capsys):
    lesson04.check_relu(lambda x: x.clamp(min=0), lambda x: torch.where(x > 0, 1.0, 0.0).to(x.dtype), hidden=True)
    lesson04.check_relu(lambda x: x * (x > 0), lambda x: (x > 0).type_as(x), hidden=True)
    lesson04.check_leaky_relu(
        lambda x, negative_slope=0.2: x * torch.where(x > 0, 1.0, negative_slope).to(x.dtype),
        lambda x, negative_slope=0.2: (x > 0).to(x.dtype) * (1 - negative_slope) + negative_slope,
        hidden=True,
    )
    lesson04.check_leaky_relu(
        lambda x, negative_slope=0.2: x.clamp(min=0) + negative_slope * x.clamp(max=0),
        leaky_relu_grad,
        hidden=True,
    )
    lesson04.check_sigmoid(
        lambda x: torch.where(x >= 0, 1 / (1 + torch.exp(-x.abs())),
                              torch.exp(-x.abs()) / (1 + torch.exp(-x.abs()))),
        lambda x: sigmoid(x) - sigmoid(x) ** 2,
        hidden=True,
    )
    lesson04.check_tanh(
        lambda x: torch.sign(x) * (1 - torch.exp(-2 * x.abs())) / (1 + torch.exp(-2 * x.abs())),
        lambda x: 1 - tanh(x) ** 2,
        hidden=True,
    )
    # tanh written on its own, without the student's sigmoid: no substitution needed, no note
    lesson04.check_tanh(lambda x: torch.sign(x) * -torch.expm1(-2 * x.abs()) / (1 + torch.exp(-2 * x.abs())),
                        lambda x: 4 * torch.exp(-2 * x.abs()) / (1 + torch.exp(-2 * x.abs())) ** 2, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 7


# ---------------------------------------------------------------------------------------------
# mistakes


def expect_failure(check, *fns, words, hidden=False):
    """The check fails, naming every one of ``words`` (conftest's one ``check_fails``)."""
    check_fails(check, *fns, words=words, hidden=hidden)


def test_relu_mistakes():
    expect_failure(lesson04.check_relu, lambda x: x.clamp(max=0), relu_grad, words=["wrong way round"])
    expect_failure(lesson04.check_relu, lambda x: x.abs(), relu_grad, words=["not their absolute value"])
    expect_failure(lesson04.check_relu, relu, lambda x: x.clamp(min=0), words=["ReLU itself, not its derivative"])
    expect_failure(lesson04.check_relu, relu, lambda x: (x < 0).to(x.dtype), words=["slope is 1 for x > 0"])
    expect_failure(lesson04.check_relu, relu, lambda x: x > 0, words=["booleans", ".to(x.dtype)"])
    expect_failure(lesson04.check_relu, lambda x: x.float().clamp(min=0), relu_grad, hidden=True,
                   words=["dtype torch.float32 for a torch.float64 input"])
    expect_failure(lesson04.check_relu, lambda x: x.clamp(min=0).tolist(), relu_grad, words=["torch.Tensor", "list"])
    expect_failure(lesson04.check_relu, lambda x: x.clamp(min=0).flatten(), relu_grad, words=["shape stays the same"])

    def in_place(x):
        x[x < 0] = 0
        return x

    expect_failure(lesson04.check_relu, in_place, relu_grad, words=["in place"])

    def todo(x):
        raise NotImplementedError()

    expect_failure(lesson04.check_relu, todo, relu_grad, words=["not implemented yet"])


@pytest.mark.parametrize(
    "fn",
    [
        torch.relu,
        lambda x: torch.relu(x),
        lambda x: x.relu(),
        lambda x: F.relu(x),
        lambda x: torch.nn.ReLU()(x),
        lambda x: torch.ops.aten.relu(x),  # an alias no Python-name patch sees
        lambda x: F.threshold(x, 0.0, 0.0),  # threshold(x, 0, 0) is ReLU
        lambda x: torch.threshold(x, 0.0, 0.0),
        lambda x: F.leaky_relu(x, 0.0),
        lambda x: F.hardtanh(torch.prelu(x, torch.zeros(1, dtype=x.dtype)), -1e30, 1e30),
    ],
)
def test_relu_builtins_and_aliases_are_refused(fn):
    expect_failure(lesson04.check_relu, fn, relu_grad, words=["ReLU"])


def test_relu_builtin_caught_even_when_the_error_is_swallowed():
    def sneaky(x):
        try:
            return torch.relu(x)
        except Exception:  # noqa: BLE001
            return x.clamp(min=0)

    expect_failure(lesson04.check_relu, sneaky, relu_grad, words=["calls a built-in ReLU", "aten.relu"])


@pytest.mark.parametrize(
    "grad",
    [
        lambda x: torch.autograd.grad(relu(x.clone().requires_grad_(True)).sum(), x)[0],
        lambda x: torch.func.grad(lambda t: relu(t).sum())(x),
        lambda x: torch.autograd.functional.vjp(relu, x, torch.ones_like(x))[1],
    ],
)
def test_relu_grad_by_autograd_is_refused(grad):
    def backward_call(x):
        xr = x.clone().requires_grad_(True)
        relu(xr).sum().backward()
        return xr.grad

    expect_failure(lesson04.check_relu, relu, backward_call, words=["calls Tensor.backward", "autograd"])
    expect_failure(lesson04.check_relu, relu, grad, words=["autograd"])


def test_relu_grad_by_threshold_backward_is_refused():
    expect_failure(lesson04.check_relu, relu,
                   lambda x: torch.ops.aten.threshold_backward(torch.ones_like(x), x, 0.0), words=["ReLU"])


def test_leaky_relu_mistakes():
    expect_failure(
        lesson04.check_leaky_relu,
        lambda x, negative_slope=0.2: torch.where(x > 0, x, 0.01 * x),
        leaky_relu_grad,
        words=["0.01", "negative_slope"],
    )
    expect_failure(lesson04.check_leaky_relu, leaky_relu, lambda x, negative_slope=0.2: relu_grad(x), words=["not 0"])
    expect_failure(lesson04.check_leaky_relu, lambda x, negative_slope=0.2: x.clamp(min=0), leaky_relu_grad,
                   words=["that is ReLU"])
    expect_failure(lesson04.check_leaky_relu, lambda x, negative_slope=0.2: torch.where(x > 0, negative_slope * x, x),
                   leaky_relu_grad, words=["wrong side"])
    expect_failure(lesson04.check_leaky_relu, leaky_relu, lambda x, negative_slope=0.2: leaky_relu(x, negative_slope),
                   words=["LeakyReLU itself"])
    # the slope ignored: the visible run already tries other slopes
    expect_failure(lesson04.check_leaky_relu, lambda x, negative_slope=0.2: torch.where(x > 0, x, 0.2 * x),
                   leaky_relu_grad, words=["hard-coded to 0.2", "negative_slope"])
    expect_failure(lesson04.check_leaky_relu, leaky_relu,
                   lambda x, negative_slope=0.2: torch.where(x > 0, 1.0, 0.2).to(x.dtype),
                   words=["hard-coded to 0.2"])


def test_leaky_relu_as_max_is_wrong_for_slopes_outside_0_1():
    # max(x, a*x) equals LeakyReLU for 0 <= a <= 1 only: a slope of 1.5 (visible) shows it
    expect_failure(lesson04.check_leaky_relu, lambda x, negative_slope=0.2: torch.maximum(x, negative_slope * x),
                   leaky_relu_grad, words=["max(x, negative_slope * x)", "slopes up to 1", "torch.where"])
    expect_failure(lesson04.check_leaky_relu, leaky_relu,
                   lambda x, negative_slope=0.2: torch.where(x > negative_slope * x, 1.0, negative_slope).to(x.dtype),
                   words=["follows max(x, negative_slope * x)"])
    # max is right for every slope up to 1, negative ones included: only a slope above 1 exposes it
    lesson04.check_leaky_relu(lambda x, negative_slope=0.2: torch.maximum(x, negative_slope * x)
                              if negative_slope <= 1 else leaky_relu(x, negative_slope), leaky_relu_grad, hidden=True)
    expect_failure(
        lesson04.check_leaky_relu,
        lambda x, negative_slope=0.2: torch.maximum(x, negative_slope * x) if negative_slope != 1.5 else leaky_relu(
            x, negative_slope),
        leaky_relu_grad, hidden=True, words=["max(x, negative_slope * x)", "negative_slope=3.0"])


@pytest.mark.parametrize(
    "fn",
    [
        lambda x, negative_slope=0.2: F.leaky_relu(x, negative_slope),
        lambda x, negative_slope=0.2: torch.nn.LeakyReLU(negative_slope)(x),
        lambda x, negative_slope=0.2: torch.ops.aten.leaky_relu(x, negative_slope),
        lambda x, negative_slope=0.2: torch.prelu(x, torch.tensor([negative_slope], dtype=x.dtype)),
        lambda x, negative_slope=0.2: F.rrelu(x, negative_slope, negative_slope, training=False),
        lambda x, negative_slope=0.2: F.rrelu(x, negative_slope, negative_slope, training=True),
        lambda x, negative_slope=0.2: x - (1 - negative_slope) * F.threshold(-x, 0.0, 0.0) * -1 * -1,
    ],
)
def test_leaky_relu_builtins_and_aliases_are_refused(fn):
    expect_failure(lesson04.check_leaky_relu, fn, leaky_relu_grad, words=["ReLU"])


def naive_sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def where_both_branches(x):
    return torch.where(x >= 0, 1 / (1 + torch.exp(-x)), torch.exp(x) / (1 + torch.exp(x)))


def one_minus_s(x):
    """Stable for x >= 0, but 1 - sigmoid(-x) for x < 0: exactly 0 once x <= -17 in float32."""
    z = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + z), 1 - 1 / (1 + z))


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda x: torch.exp(x) / (1 + torch.exp(x)), ["returns NaN at x = ", "exp(-|x|)"]),
        (naive_sigmoid, ["overflows inside", "inf", "NaN gradients"]),
        (where_both_branches, ["overflows inside", "both branches"]),
        (lambda x: naive_sigmoid(-x), ["sign is flipped"]),
        (one_minus_s, ["in the tail", "1 - 1 / (1 + z)", "z / (1 + z)"]),
        (lambda x: torch.exp(-x.abs()) / (1 + torch.exp(-x.abs())), ["not z / (1 + z)"]),
        (lambda x: 1 / (1 + torch.exp(-x.abs())), ["1 / (1 + z) is sigmoid(|x|)"]),
        (torch.sigmoid, ["built-in sigmoid or tanh"]),
        (lambda x: torch.sigmoid(x), ["calls a built-in sigmoid or tanh"]),
        (lambda x: torch.ops.aten.sigmoid(x), ["built-in sigmoid or tanh"]),
        (lambda x: torch.special.expit(x), ["built-in sigmoid or tanh"]),
        (lambda x: torch.exp(F.logsigmoid(x)), ["built-in sigmoid"]),
        (lambda x: F.softmax(torch.stack([x, torch.zeros_like(x)]), dim=0)[0], ["softmax"]),
        (lambda x: torch.where(x == 0, 0.5, F.silu(x) / torch.where(x == 0, 1.0, x)).to(x.dtype), ["silu"]),
        (lambda x: torch.exp(-F.softplus(-x)), ["softplus"]),
        (lambda x: torch.exp(-torch.logaddexp(torch.zeros_like(x), -x)), ["logaddexp"]),
        (lambda x: 0.5 * (1 + torch.tanh(x / 2)), ["tanh"]),
    ],
)
def test_sigmoid_mistakes(fn, words):
    expect_failure(lesson04.check_sigmoid, fn, sigmoid_grad, words=words)


def test_sigmoid_as_softplus_gradient_is_refused():
    def via_softplus_grad(x):
        xr = x.detach().clone().requires_grad_(True)
        (g,) = torch.autograd.grad(F.softplus(xr).sum(), xr)
        return g

    expect_failure(lesson04.check_sigmoid, via_softplus_grad, sigmoid_grad, words=["softplus"])


def test_one_minus_s_hidden_by_absolute_tolerance_only():
    """The tail check is what catches it: within atol 1e-6 everywhere."""
    x = torch.tensor(lesson04.EXTREMES)
    assert torch.allclose(one_minus_s(x), torch.sigmoid(x), rtol=1e-5, atol=1e-6)


def test_sigmoid_detached_from_autograd():
    def numpy_sigmoid(x):
        return torch.from_numpy(sigmoid(x.detach()).numpy().copy())

    expect_failure(lesson04.check_sigmoid, numpy_sigmoid, sigmoid_grad, words=["not connected to autograd"])


@pytest.mark.parametrize(
    "grad, words",
    [
        (lambda x: x * (1 - x), ["not x * (1 - x)"]),
        (lambda x: 1 - sigmoid(x) ** 2, ["tanh's pattern"]),
        (sigmoid, ["sigmoid itself"]),
        (lambda x: torch.exp(-x) / (1 + torch.exp(-x)) ** 2, ["NaN at x = -1000"]),
        (lambda x: torch.ops.aten.sigmoid_backward(torch.ones_like(x), sigmoid(x)), ["built-in sigmoid or tanh"]),
        (lambda x: torch.func.grad(lambda t: sigmoid(t).sum())(x), ["autograd"]),
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
        (lambda x: sigmoid(2 * x), tanh_grad, ["scale by 2 and shift by -1"]),
        (lambda x: 2 * sigmoid(2 * x) + 1, tanh_grad, ["subtract 1"]),
        (tanh, lambda x: 1 - tanh(x), ["square is missing"]),
        (tanh, lambda x: 1 - x**2, ["not 1 - x**2"]),
        (tanh, lambda x: tanh(x) ** 2, ["not tanh(x)**2"]),
        (tanh, lambda x: 2 * sigmoid(2 * x) * (1 - sigmoid(2 * x)), ["inner 2 is missing"]),
        (lambda x: x.tanh(), tanh_grad, ["built-in sigmoid or tanh"]),
        (lambda x: torch.nn.Tanh()(x), tanh_grad, ["built-in sigmoid or tanh"]),
        (lambda x: torch.ops.aten.tanh(x), tanh_grad, ["built-in sigmoid or tanh"]),
        (lambda x: 2 * torch.sigmoid(2 * x) - 1, tanh_grad, ["built-in sigmoid or tanh"]),
        (lambda x: x - F.tanhshrink(x), tanh_grad, ["tanh"]),
        (tanh, lambda x: torch.ops.aten.tanh_backward(torch.ones_like(x), tanh(x)), ["built-in sigmoid or tanh"]),
    ],
)
def test_tanh_mistakes(fn, grad, words):
    expect_failure(lesson04.check_tanh, fn, grad, words=words)


def student_namespace(sigmoid_source: str) -> dict:
    """A notebook's globals: the student's sigmoid, and tanh written on it as the lesson suggests."""
    namespace = {"torch": torch}
    exec(
        sigmoid_source
        + "def tanh(x):\n    return 2 * sigmoid(2 * x) - 1\n"
        + "def tanh_grad(x):\n    return 1 - tanh(x) ** 2\n",
        namespace,
    )
    return namespace


@pytest.mark.parametrize(
    "sigmoid_source",
    [
        "def sigmoid(x):\n    return 1 / (1 + torch.exp(-x))\n",  # overflows inside
        "def sigmoid(x):\n    return torch.sigmoid(x)\n",  # the built-in, refused
        "def sigmoid(x):\n    raise NotImplementedError()\n",  # exercise 3 not done yet
        "def sigmoid(x):\n    return 1 / (1 + torch.exp(x.abs()))\n",  # plain wrong
    ],
)
def test_tanh_on_a_broken_sigmoid_keeps_its_points(sigmoid_source, capsys):
    namespace = student_namespace(sigmoid_source)
    broken = namespace["sigmoid"]
    lesson04.check_tanh(namespace["tanh"], namespace["tanh_grad"])
    out = capsys.readouterr().out
    assert "\u2714" in out and "fix exercise 3 first" in out, out
    assert namespace["sigmoid"] is broken  # the student's namespace is restored


def test_tanh_mistake_on_a_broken_sigmoid_is_still_tanh_s():
    namespace = student_namespace("def sigmoid(x):\n    return 1 / (1 + torch.exp(-x))\n")
    exec("def tanh(x):\n    return 2 * sigmoid(x) - 1\n", namespace)
    expect_failure(lesson04.check_tanh, namespace["tanh"], namespace["tanh_grad"], words=["the argument is 2x"])


def test_builtins_work_after_a_failure():
    with pytest.raises(CheckFailure):
        lesson04.check_tanh(lambda x: torch.tanh(x), tanh_grad)
    assert torch.tanh(torch.tensor(0.5)).item() == pytest.approx(0.46211715)
    assert torch.tensor([-1.0, 1.0]).relu().tolist() == [0.0, 1.0]
    x = torch.ones(2, requires_grad=True)
    (x * 2).sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    "check, objects",
    [
        (lesson04.check_relu, (relu, relu_grad)),
        (lesson04.check_leaky_relu, (leaky_relu, leaky_relu_grad)),
        (lesson04.check_sigmoid, (sigmoid, sigmoid_grad)),
        (lesson04.check_tanh, (tanh, tanh_grad)),
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
# gradients: an activation feeds a backward pass, so it is judged through autograd too


@pytest.mark.parametrize("check, fn, grad, name", [
    ("check_relu", lambda x: relu(x.detach()), relu_grad, "relu"),
    ("check_leaky_relu", lambda x, negative_slope=0.2: leaky_relu(x, negative_slope).detach(), leaky_relu_grad,
     "leaky_relu"),
    ("check_sigmoid", lambda x: sigmoid(x).detach(), sigmoid_grad, "sigmoid"),
    ("check_tanh", lambda x: tanh(x.detach()), tanh_grad, "tanh"),
])
def test_a_detached_activation_fails(check, fn, grad, name):
    with pytest.raises(CheckFailure, match=rf"{name}\(x.*not connected to autograd"):
        getattr(lesson04, check)(fn, grad)


def test_an_activation_whose_gradient_is_wrong_fails():
    """Right values, wrong slope: x * (x > 0) computed as the value plus a term whose gradient is not 0."""
    def relu_bad_grad(x):
        return torch.where(x > 0, x, torch.zeros_like(x)) + (x - x.detach()) * (x < 0)

    with pytest.raises(CheckFailure, match=r"gradient of relu\(x\) by autograd differs"):
        lesson04.check_relu(relu_bad_grad, relu_grad)


def test_leaky_relu_gradient_is_checked_at_every_slope():
    def leaky(x, negative_slope=0.2):  # the slope's gradient path is cut for slopes other than 0.2
        value = torch.where(x > 0, x, negative_slope * x)
        return value if negative_slope == 0.2 else value.detach() + (x - x.detach()) * (x > 0)

    with pytest.raises(CheckFailure, match=r"gradient of leaky_relu\(x, negative_slope=0.5\) by autograd differs"):
        lesson04.check_leaky_relu(leaky, leaky_relu_grad)


# ---------------------------------------------------------------------------------------------
# the cascade rule: tanh is graded on its own code, whatever sigmoid did


def _tanh_namespace(sigmoid_fn=None):
    space = {"torch": torch}
    if sigmoid_fn is not None:
        space["sigmoid"] = sigmoid_fn
    exec("def tanh(x):\n    return 2 * sigmoid(2 * x) - 1\n"
         "def tanh_grad(x):\n    return 1 - tanh(x) ** 2\n", space)
    return space


def test_tanh_is_graded_when_sigmoid_never_ran(capsys):
    space = _tanh_namespace()  # sigmoid's cell was refused by the screen: the name is undefined
    lesson04.check_tanh(space["tanh"], space["tanh_grad"], hidden=True)
    out = capsys.readouterr().out
    assert "\u2714" in out and "not defined" in out and "fix exercise 3 first" in out, out
    assert "sigmoid" not in space


@pytest.mark.parametrize("bad_sigmoid", [
    lambda x: sigmoid(x).double(),  # wrong dtype
    lambda x: (sigmoid(x) * 1000).long(),  # integer dtype
    lambda x: 1 / (1 + torch.exp(-x)),  # unstable: NaN gradients at -1000
    lambda x: (_ for _ in ()).throw(NotImplementedError()),  # raises
])
def test_tanh_is_graded_whatever_sigmoid_did(bad_sigmoid, capsys):
    space = _tanh_namespace(bad_sigmoid)
    lesson04.check_tanh(space["tanh"], space["tanh_grad"])
    out = capsys.readouterr().out
    assert "\u2714" in out and "fix exercise 3 first" in out, out
    assert space["sigmoid"] is bad_sigmoid


# ---------------------------------------------------------------------------------------------
# NaN answers fail every comparison


@pytest.mark.parametrize("check, fn, grad", [
    ("check_relu", lambda x: relu(x) * float("nan"), relu_grad),
    ("check_relu", relu, lambda x: relu_grad(x) + float("nan")),
    ("check_sigmoid", sigmoid, lambda x: torch.full_like(x, float("nan"))),
    ("check_tanh", lambda x: torch.where(x.abs() > 500, x * float("nan"), tanh(x)), tanh_grad),
])
def test_nan_answers_fail(check, fn, grad):
    with pytest.raises(CheckFailure, match="NaN"):
        getattr(lesson04, check)(fn, grad, hidden=True)
