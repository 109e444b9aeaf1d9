"""Lesson 05 checks: the reference solution passes; each named mistake fails with a message naming it."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from autograder.checks import lesson05
from autograder.checks._core import CheckFailure
from dcgan_ref.models import weights_init

# ---------------------------------------------------------------------------------------------
# reference solution (the same code as in solutions/05_weight_init)


def dcgan_weights_init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def pytorch_examples_init(m):
    """pytorch/examples' version: class names, .data, no conv-bias handling needed there."""
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
        m.weight.data.normal_(0.0, 0.02)
        if m.bias is not None:
            m.bias.data.fill_(0)
    elif classname.find("BatchNorm") != -1:
        m.weight.data.normal_(1.0, 0.02)
        m.bias.data.fill_(0)


def test_reference_passes(capsys):
    lesson05.check_dcgan_weights_init(dcgan_weights_init)
    lesson05.check_dcgan_weights_init(dcgan_weights_init, hidden=True)
    lesson05.check_dcgan_weights_init(pytorch_examples_init, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 3


def test_check_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    lesson05.check_dcgan_weights_init(dcgan_weights_init)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------------------------------------
# mistakes


def make_init(
    conv_std=0.02,
    bn_mean=1.0,
    bn_std=0.02,
    zero_bias=True,
    conv_types=(nn.Conv2d, nn.ConvTranspose2d),
    bias_random_then_zero=False,
):
    def init(m):
        if isinstance(m, conv_types):
            nn.init.normal_(m.weight, 0.0, conv_std)
            if m.bias is not None and zero_bias:
                if bias_random_then_zero:
                    m.bias.data.normal_(0.0, 0.02)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, bn_mean, bn_std)
            nn.init.zeros_(m.bias)

    return init


def test_make_init_defaults_are_correct():
    lesson05.check_dcgan_weights_init(make_init(), hidden=True)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"conv_std": 0.2}, ["0.2 instead of 0.02"]),
        ({"conv_std": 0.02**0.5}, ["as the variance", "standard deviation"]),
        ({"conv_std": 0.002}, ["a tenth of 0.02"]),
        ({"bn_mean": 0.0}, ["BatchNorm2d weight", "mean", "expected 1"]),
        ({"bn_std": 0.2}, ["BatchNorm2d weight", "0.2 instead of 0.02"]),
        ({"zero_bias": False}, ["bias", "not zeroed", "nn.init.zeros_"]),
        ({"conv_types": (nn.Conv2d,)}, ["ConvTranspose2d weight", "isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))"]),
        ({"bias_random_then_zero": True}, ["random numbers were drawn differently", "model.apply"]),
    ],
)
def test_mistakes_are_named(kwargs, words):
    with pytest.raises(CheckFailure) as err:
        lesson05.check_dcgan_weights_init(make_init(**kwargs))
    for word in words:
        assert word in str(err.value), str(err.value)


def test_bn_weight_constant_one_is_caught():
    def init(m):
        make_init()(m)
        if isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)

    with pytest.raises(CheckFailure, match=r"BatchNorm2d weight .* is exactly 1 everywhere.*N\(1, 0.02\)"):
        lesson05.check_dcgan_weights_init(init)

    def untouched_bn(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            make_init()(m)

    with pytest.raises(CheckFailure, match="exactly 1 everywhere, PyTorch's default"):
        lesson05.check_dcgan_weights_init(untouched_bn)


def test_uniform_with_the_right_std_is_caught_by_the_exact_test():
    def init(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.uniform_(m.weight, -0.02 * 3**0.5, 0.02 * 3**0.5)  # std 0.02, but not normal
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

    with pytest.raises(CheckFailure, match="drawn differently"):
        lesson05.check_dcgan_weights_init(init)


def test_running_stats_touched_and_crashes():
    def touches_buffers(m):
        make_init()(m)
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.fill_(2.0)

    with pytest.raises(CheckFailure, match="running statistics"):
        lesson05.check_dcgan_weights_init(touches_buffers)

    def crashes_on_no_bias(m):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)  # fails for bias=False

    with pytest.raises(CheckFailure, match="raised"):
        lesson05.check_dcgan_weights_init(crashes_on_no_bias)
    with pytest.raises(CheckFailure, match="is dcgan_ref.models.weights_init, the reference"):
        lesson05.check_dcgan_weights_init(weights_init)


@pytest.mark.parametrize(
    "wrapper",
    [
        lambda m: weights_init(m),
        functools.partial(weights_init),
    ],
)
def test_the_reference_is_refused(wrapper):
    with pytest.raises(CheckFailure, match="reference"):
        lesson05.check_dcgan_weights_init(wrapper)


def test_the_reference_imported_in_the_notebook_is_refused():
    namespace = {}
    exec(
        "from dcgan_ref.models import weights_init as w\n"
        "def dcgan_weights_init(m):\n"
        "    w(m)\n",
        namespace,
    )
    with pytest.raises(CheckFailure, match="calls dcgan_ref.models.weights_init, the reference"):
        lesson05.check_dcgan_weights_init(namespace["dcgan_weights_init"])


def test_a_wrapper_that_swallows_the_refusal_is_still_caught():
    def sneaky(m):
        try:
            weights_init(m)
        except Exception:  # noqa: BLE001
            dcgan_weights_init(m)

    with pytest.raises(CheckFailure, match="the reference"):
        lesson05.check_dcgan_weights_init(sneaky)


@pytest.mark.parametrize(
    "init",
    [
        # every module with a weight: Linear included
        lambda m: (nn.init.normal_(m.weight, 1.0 if isinstance(m, nn.BatchNorm2d) else 0.0, 0.02),
                   getattr(m, "bias", None) is not None and nn.init.zeros_(m.bias))
        if getattr(m, "weight", None) is not None else None,
        # DCGAN's rule, and Linear layers N(0, 0.02) too
        lambda m: (dcgan_weights_init(m), isinstance(m, nn.Linear) and nn.init.normal_(m.weight, 0.0, 0.02)),
        # Linear bias zeroed only
        lambda m: (dcgan_weights_init(m), isinstance(m, nn.Linear) and nn.init.zeros_(m.bias)),
    ],
)
def test_touching_linear_layers_is_named(init):
    with pytest.raises(CheckFailure, match=r"Linear.*(was changed).*convolutions and BatchNorm only"):
        lesson05.check_dcgan_weights_init(init)


def test_linear_touched_only_in_the_small_models_is_caught_by_the_exact_test():
    def init(m):
        dcgan_weights_init(m)
        if isinstance(m, nn.Linear) and m.in_features == 16:
            nn.init.zeros_(m.bias)

    with pytest.raises(CheckFailure, match="an nn.Linear.*was changed"):
        lesson05.check_dcgan_weights_init(init)


@pytest.mark.parametrize(
    "init",
    [
        # the weight replaced by a new Parameter of the right values: same state_dict
        lambda m: _assign_init(m),
        # torch.no_grad() and in-place tensor methods instead of nn.init
        lambda m: _inplace_init(m),
    ],
)
def test_correct_variants_pass(init, capsys):
    lesson05.check_dcgan_weights_init(init, hidden=True)
    assert "\u2714" in capsys.readouterr().out


def _assign_init(m):
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        m.weight.data = torch.randn(m.weight.shape) * 0.02
        if m.bias is not None:
            m.bias.data.zero_()
    elif isinstance(m, nn.BatchNorm2d):
        m.weight.data = 1.0 + 0.02 * torch.randn(m.weight.shape)
        m.bias.data.zero_()


def _inplace_init(m):
    with torch.no_grad():
        if type(m) in (nn.Conv2d, nn.ConvTranspose2d):
            m.weight.normal_(mean=0.0, std=0.02)
            if m.bias is not None:
                m.bias.fill_(0.0)
        elif type(m) is nn.BatchNorm2d:
            m.weight.normal_(1.0, 0.02)
            m.bias.zero_()


def test_std_squared_and_the_variance_are_named():
    with pytest.raises(CheckFailure, match="not its square"):
        lesson05.check_dcgan_weights_init(make_init(conv_std=0.02**2))


def test_probe_returns_plain_data_only():
    from autograder.checks._plain import dumps, loads

    ex = lesson05.check_dcgan_weights_init.exercise
    data = loads(dumps(ex.run_probe((dcgan_weights_init,), loads(dumps(ex.cases(True))))))
    assert "__opaque__" not in repr(data) and "error" not in data
    assert ex.judge(ex.cases(True), data)


def test_nan_weights_fail():
    """NaN weights have a NaN mean and std: `abs(std - 0.02) > tol` is False for them."""
    def nan_init(m):
        dcgan_weights_init(m)
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            with torch.no_grad():
                m.weight.fill_(float("nan"))

    with pytest.raises(CheckFailure, match="std is nan"):
        lesson05.check_dcgan_weights_init(nan_init)
