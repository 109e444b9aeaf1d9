"""Lesson 05 checks: the reference solution passes; each named mistake fails with a message naming it."""

from __future__ import annotations

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

    with pytest.raises(CheckFailure, match="BatchNorm2d weight.*still holds PyTorch's default"):
        lesson05.check_dcgan_weights_init(init)


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
    with pytest.raises(CheckFailure, match="weights_init itself"):
        lesson05.check_dcgan_weights_init(weights_init)
