"""Lesson 01 checks: a correct answer passes; each named mistake fails with a message that names it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import lesson01 as checks
from autograder.checks._core import CheckFailure

# ------------------------------------------------------------------ conv_output_size


def size_ok(h, k, s, p, d=1):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


def size_no_dilation(h, k, s, p, d=1):
    return (h + 2 * p - k) // s + 1


def size_round(h, k, s, p, d=1):
    return round((h + 2 * p - d * (k - 1) - 1) / s) + 1


def size_ceil(h, k, s, p, d=1):
    return math.ceil((h + 2 * p - d * (k - 1) - 1) / s) + 1


def size_float(h, k, s, p, d=1):
    return (h + 2 * p - d * (k - 1) - 1) / s + 1


def size_pad_once(h, k, s, p, d=1):
    return (h + p - d * (k - 1) - 1) // s + 1


def size_no_plus_one(h, k, s, p, d=1):
    return (h + 2 * p - d * (k - 1) - 1) // s


def size_no_default(h, k, s, p, d):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


def test_conv_output_size_reference_passes(capsys):
    checks.check_conv_output_size(size_ok)
    checks.check_conv_output_size(size_ok, hidden=True)
    assert "\u2714" in capsys.readouterr().out


@pytest.mark.parametrize(
    "wrong, message",
    [
        (size_no_dilation, "dilation is ignored"),
        (size_round, "floor division //"),
        (size_ceil, "floor division //"),
        (size_float, "returned the float"),
        (size_pad_once, "BOTH sides"),
        (size_no_plus_one, "add 1"),
        (size_no_default, "Is d=1 the default"),
    ],
)
def test_conv_output_size_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_conv_output_size(wrong)


def test_conv_output_size_not_implemented():
    def todo(h, k, s, p, d=1):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="not implemented yet"):
        checks.check_conv_output_size(todo)


# ------------------------------------------------------------------ conv2d_scratch


def conv_ok(x, w, b, stride, padding):
    N, _, H, W = x.shape
    C_out, _, k, _ = w.shape
    H_out = (H + 2 * padding - k) // stride + 1
    W_out = (W + 2 * padding - k) // stride + 1
    cols = F.unfold(x, k, padding=padding, stride=stride)  # (N, C_in*k*k, L)
    out = w.reshape(C_out, -1) @ cols  # (N, C_out, L)
    if b is not None:
        out = out + b[:, None]
    return out.reshape(N, C_out, H_out, W_out)


def conv_loops(x, w, b, stride, padding):
    """A second, independent correct answer: explicit loops over output pixels with slicing."""
    xp = F.pad(x, (padding,) * 4)
    N, _, H, W = xp.shape
    C_out, _, k, _ = w.shape
    H_out, W_out = (H - k) // stride + 1, (W - k) // stride + 1
    out = torch.zeros(N, C_out, H_out, W_out)
    for i in range(H_out):
        for j in range(W_out):
            patch = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            out[:, :, i, j] = torch.einsum("nchw,ochw->no", patch, w)
    return out if b is None else out + b.view(1, -1, 1, 1)


def conv_pad_plus_one(x, w, b, stride, padding):
    return conv_ok(F.pad(x, (1, 1, 1, 1)), w, b, stride, padding)


def conv_no_padding(x, w, b, stride, padding):
    return conv_ok(x, w, b, stride, 0)


def conv_flipped(x, w, b, stride, padding):
    return conv_ok(x, w.flip(-1, -2), b, stride, padding)


def conv_no_bias(x, w, b, stride, padding):
    return conv_ok(x, w, None, stride, padding)


def conv_ignores_stride(x, w, b, stride, padding):
    return conv_ok(x, w, b, 1, padding)


def conv_delegates(x, w, b, stride, padding):
    return F.conv2d(x, w, b, stride=stride, padding=padding)


def conv_delegates_module(x, w, b, stride, padding):
    layer = nn.Conv2d(w.shape[1], w.shape[0], w.shape[-1], stride, padding, bias=b is not None)
    with torch.no_grad():
        layer.weight.copy_(w)
        if b is not None:
            layer.bias.copy_(b)
        return layer(x)


def conv_delegates_quietly(x, w, b, stride, padding):
    try:
        return torch.conv2d(x, w, b, stride, padding)
    except Exception:  # hides the error and falls back to a wrong answer
        return conv_no_bias(x, w, b, stride, padding)


def conv_pads_in_place(x, w, b, stride, padding):
    x.mul_(1.0)
    x[:, :, 0, 0] += 0.0
    x.add_(0.0)
    x[:, 0, 0, 0] = 0.0
    return conv_ok(x, w, b, stride, padding)


def test_conv2d_scratch_reference_passes(capsys):
    for fn in (conv_ok, conv_loops):
        checks.check_conv2d_scratch(fn)
        checks.check_conv2d_scratch(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 4


def test_builtins_are_restored_after_the_check():
    original = F.conv2d
    with pytest.raises(CheckFailure):
        checks.check_conv2d_scratch(conv_delegates)
    assert F.conv2d is original and torch.conv2d is original
    assert nn.Conv2d.forward is not None and nn.Conv2d(1, 1, 1)(torch.zeros(1, 1, 2, 2)).shape == (1, 1, 2, 2)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (conv_pad_plus_one, r"padding=2: add exactly `padding` zeros"),
        (conv_no_padding, r"padding=0: add exactly `padding` zeros"),
        (conv_flipped, "kernel is flipped.*cross-correlation"),
        (conv_no_bias, "bias is missing"),
        (conv_ignores_stride, "stride is ignored"),
        (conv_delegates, "calls F.conv2d, the built-in this exercise re-implements"),
        (conv_delegates_module, "calls nn.Conv2d.forward"),
        (conv_delegates_quietly, "calls torch.conv2d"),
        (conv_pads_in_place, "changed its input x in place"),
    ],
)
def test_conv2d_scratch_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_conv2d_scratch(wrong)


def test_conv2d_scratch_catches_a_from_import():
    """`from torch.nn.functional import conv2d` in the student's namespace is patched too."""
    namespace: dict = {}
    exec(
        "from torch.nn.functional import conv2d\n"
        "def conv2d_scratch(x, w, b, stride, padding):\n"
        "    return conv2d(x, w, b, stride=stride, padding=padding)\n",
        namespace,
    )
    with pytest.raises(CheckFailure, match="calls F.conv2d|calls torch.conv2d"):
        checks.check_conv2d_scratch(namespace["conv2d_scratch"])
    assert namespace["conv2d"] is F.conv2d


# ------------------------------------------------------------------ down_block


def down_ok(in_ch, out_ch, batchnorm=True):
    layers = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(out_ch))
    layers.append(nn.LeakyReLU(0.2))
    return nn.Sequential(*layers)


def down_no_bn(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2))


def down_bn_always(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def down_two_bn(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch),
                         nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def down_relu(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())


def down_default_slope(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch), nn.LeakyReLU())


def down_bias(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def down_pool(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), nn.MaxPool2d(2),
                         nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def down_k3(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 2, 1, bias=False), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def down_bn_after(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2), nn.BatchNorm2d(out_ch))


def down_no_flag(in_ch, out_ch):
    return down_ok(in_ch, out_ch)


def down_list(in_ch, out_ch, batchnorm=True):
    return [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2)]


def test_down_block_reference_passes(capsys):
    checks.check_down_block(down_ok)
    checks.check_down_block(down_ok, hidden=True)
    from dcgan_ref.models import down_block

    checks.check_down_block(down_block, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 3


@pytest.mark.parametrize(
    "wrong, message",
    [
        (down_no_bn, "BatchNorm2d is missing"),
        (down_bn_always, "batchnorm=False there must be no normalisation"),
        (down_two_bn, "2 normalisation layers"),
        (down_relu, "expected nn.LeakyReLU\\(0.2\\): ReLU zeroes"),
        (down_default_slope, "negative_slope is 0.01"),
        (down_bias, "bias=False"),
        (down_pool, "replaces pooling with a strided convolution"),
        (down_k3, "expected 4, 2, 1"),
        (down_bn_after, "expected the order \\[Conv2d, BatchNorm2d, LeakyReLU\\]"),
        (down_no_flag, "unexpected keyword argument 'batchnorm'"),
        (down_list, "expected an nn.Module"),
    ],
)
def test_down_block_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_down_block(wrong)


def test_down_block_catches_swapped_parameters():
    """Right layers, but the BatchNorm's weight and bias are registered in the other order."""

    class Swapped(nn.Module):
        def __init__(self, in_ch, out_ch):
            super().__init__()
            self.conv = nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)
            self.bn = nn.BatchNorm2d(out_ch)
            self.act = nn.LeakyReLU(0.2)

        def forward(self, x):
            y = self.conv(x)
            y = (y - y.mean((0, 2, 3), keepdim=True)) / (y.var((0, 2, 3), keepdim=True, unbiased=False) + 1e-5).sqrt()
            return self.act(y * self.bn.bias[None, :, None, None] + self.bn.weight[None, :, None, None])

    with pytest.raises(CheckFailure, match="differs from the reference"):
        checks.check_down_block(lambda i, o, batchnorm=True: Swapped(i, o))
