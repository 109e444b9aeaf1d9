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


def size_no_minus_one(h, k, s, p, d=1):
    return (h + 2 * p - d * (k - 1)) // s + 1


def size_span_dk(h, k, s, p, d=1):
    return (h + 2 * p - d * k) // s + 1


def size_probes_a_layer(h, k, s, p, d=1):
    """Reads the size off a real layer instead of computing it."""
    return nn.Conv2d(1, 1, k, s, p, d)(torch.zeros(1, 1, h, h)).shape[-1]


def size_probes_meta(h, k, s, p, d=1):
    x = torch.empty(1, 1, h, h, device="meta")
    return int(F.conv2d(x, torch.empty(1, 1, k, k, device="meta"), stride=s, padding=p, dilation=d).shape[-1])


def size_torch_arith(h, k, s, p, d=1):
    return int(torch.div(torch.tensor(h + 2 * p - d * (k - 1) - 1), s, rounding_mode="floor")) + 1


def size_reference_helper(h, k, s, p, d=1):
    from autograder.checks.lesson01 import _reference_size

    return _reference_size(h, k, s, p, d)


def size_numpy_int(h, k, s, p, d=1):
    import numpy as np

    return np.int64((h + 2 * p - d * (k - 1) - 1) // s + 1)


def size_ok_math(h, k, s, p, d=1):
    """Correct, written another way: floor of a true division."""
    return math.floor((h + 2 * p - d * (k - 1) - 1) / s) + 1


def test_conv_output_size_reference_passes(capsys):
    checks.check_conv_output_size(size_ok_math, hidden=True)
    checks.check_conv_output_size(size_ok)
    checks.check_conv_output_size(size_ok, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 3


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
        (size_no_minus_one, "the -1 is missing"),
        (size_span_dk, "not d\\*k"),
        (size_probes_a_layer, "calls a tensor operation"),
        (size_probes_meta, "calls a tensor operation"),
        (size_torch_arith, "calls a tensor operation"),
        (size_reference_helper, "calls a tensor operation"),
        (size_numpy_int, "returned a numpy.int64, expected the int"),
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


def conv_aten(x, w, b, stride, padding):
    return torch.ops.aten.conv2d(x, w, b, [stride, stride], [padding, padding])


def conv_aten_convolution(x, w, b, stride, padding):
    return torch.ops.aten.convolution(x, w, b, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1)


def conv_mkldnn(x, w, b, stride, padding):
    return torch.ops.aten._convolution(x, w, b, [stride] * 2, [padding] * 2, [1, 1], False, [0, 0], 1,
                                       False, False, True, True)


def conv_via_conv1d(x, w, b, stride, padding):
    """A 2-D convolution as a sum of 1-D convolutions over the kernel rows: still a built-in convolution."""
    xp = F.pad(x, (padding,) * 4)
    k = w.shape[-1]
    H_out = (xp.shape[2] - k) // stride + 1
    rows = [sum(F.conv1d(xp[:, :, i * stride + u], w[:, :, u], stride=stride) for u in range(k)) for i in range(H_out)]
    out = torch.stack(rows, 2)
    return out if b is None else out + b.view(1, -1, 1, 1)


def conv_via_transpose_adjoint(x, w, b, stride, padding):
    """The forward convolution read off the gradient of a transposed one: a convolution kernel all the same."""
    H_out = (x.shape[2] + 2 * padding - w.shape[-1]) // stride + 1
    W_out = (x.shape[3] + 2 * padding - w.shape[-1]) // stride + 1
    y = torch.zeros(x.shape[0], w.shape[0], H_out, W_out, requires_grad=True)
    back = F.conv_transpose2d(y, w, stride=stride, padding=padding)
    (g,) = torch.autograd.grad(back, y, grad_outputs=x[:, :, :back.shape[2], :back.shape[3]])
    return g if b is None else g + b.view(1, -1, 1, 1)


def conv_nn_grad(x, w, b, stride, padding):
    import torch.nn.grad

    H_out = (x.shape[2] + 2 * padding - w.shape[-1]) // stride + 1
    W_out = (x.shape[3] + 2 * padding - w.shape[-1]) // stride + 1
    return torch.nn.grad.conv2d_weight(x, w.shape, torch.zeros(x.shape[0], w.shape[0], H_out, W_out),
                                       stride=stride, padding=padding)


def conv_pads_in_place(x, w, b, stride, padding):
    x.mul_(1.0)
    x[:, :, 0, 0] += 0.0
    x.add_(0.0)
    x[:, 0, 0, 0] = 0.0
    return conv_ok(x, w, b, stride, padding)


def conv_bias_twice(x, w, b, stride, padding):
    return conv_ok(x, w, None if b is None else 2 * b, stride, padding)


def conv_rows_cols_swapped(x, w, b, stride, padding):
    return conv_ok(x, w.transpose(-1, -2), b, stride, padding)


def conv_filters_transposed(x, w, b, stride, padding):
    """The flattened filter matrix built in the wrong order (kernel-major instead of channel-major)."""
    C_out, C_in, k, _ = w.shape
    return conv_ok(x, w.permute(0, 2, 3, 1).reshape(C_out, C_in, k, k), b, stride, padding)


def conv_numpy(x, w, b, stride, padding):
    return conv_ok(x, w, b, stride, padding).numpy()


def conv_list(x, w, b, stride, padding):
    return conv_ok(x, w, b, stride, padding).tolist()


def conv_wrong_channels(x, w, b, stride, padding):
    return conv_ok(x, w, b, stride, padding)[:, :1]


def conv_bias_always(x, w, b, stride, padding):
    out = conv_ok(x, w, None, stride, padding)
    return out + b.view(1, -1, 1, 1)


def conv_size_without_padding(x, w, b, stride, padding):
    N, _, H, W = x.shape
    C_out, _, k, _ = w.shape
    out = w.reshape(C_out, -1) @ F.unfold(x, k, padding=padding, stride=stride)
    return out.reshape(N, C_out, (H - k) // stride + 1, (W - k) // stride + 1)


def conv_w_in_place(x, w, b, stride, padding):
    out = conv_ok(x, w, b, stride, padding)
    w.mul_(2)
    return out


def conv_tensor_unfold(x, w, b, stride, padding):
    """A third correct answer: Tensor.unfold (a strided view of the windows) and einsum."""
    k = w.shape[-1]
    windows = F.pad(x, (padding,) * 4).unfold(2, k, stride).unfold(3, k, stride)  # (N, C, H_out, W_out, k, k)
    out = torch.einsum("nchwuv,ocuv->nohw", windows, w)
    return out if b is None else out + b.view(1, -1, 1, 1)


def conv_float64_inside(x, w, b, stride, padding):
    """Correct: computes in float64 and returns float32."""
    return conv_ok(x.double(), w.double(), None if b is None else b.double(), stride, padding).float()


def test_conv2d_scratch_reference_passes(capsys):
    for fn in (conv_ok, conv_loops, conv_tensor_unfold, conv_float64_inside):
        checks.check_conv2d_scratch(fn)
        checks.check_conv2d_scratch(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 8


def test_builtins_work_after_the_check():
    with pytest.raises(CheckFailure):
        checks.check_conv2d_scratch(conv_delegates)
    x = torch.zeros(1, 1, 2, 2)
    assert F.conv2d(x, torch.ones(1, 1, 1, 1)).shape == (1, 1, 2, 2)
    assert nn.Conv2d(1, 1, 1)(x).shape == (1, 1, 2, 2)


REFUSED = "calls a built-in convolution"


@pytest.mark.parametrize(
    "wrong, message",
    [
        (conv_pad_plus_one, r"padding=2: add exactly `padding` zeros"),
        (conv_no_padding, r"padding=0: add exactly `padding` zeros"),
        (conv_flipped, "kernel is flipped.*cross-correlation"),
        (conv_no_bias, "bias is missing"),
        (conv_bias_twice, "bias is added twice"),
        (conv_rows_cols_swapped, "rows and columns are swapped"),
        (conv_filters_transposed, "flattened filter order does not match F.unfold's"),
        (conv_ignores_stride, "stride is ignored"),
        (conv_wrong_channels, "one channel per filter"),
        (conv_numpy, "returned a numpy.ndarray, expected a torch.Tensor"),
        (conv_list, "returned a list, expected a torch.Tensor"),
        (conv_delegates, REFUSED),
        (conv_delegates_module, REFUSED),
        (conv_delegates_quietly, REFUSED),
        (conv_aten, REFUSED),
        (conv_aten_convolution, REFUSED),
        (conv_mkldnn, REFUSED),
        (conv_via_conv1d, REFUSED),
        (conv_via_transpose_adjoint, REFUSED),
        (conv_nn_grad, REFUSED),
        (conv_pads_in_place, "changed its input x in place"),
        (conv_w_in_place, "changed its input w in place"),
        (conv_bias_always, "b can be None"),
        (conv_size_without_padding, r"reshape cannot work: H_out = \(H \+ 2\*padding - k\) // stride \+ 1"),
    ],
)
def test_conv2d_scratch_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_conv2d_scratch(wrong)


def test_conv2d_scratch_refused_even_when_the_error_is_caught():
    with pytest.raises(CheckFailure, match=r"calls a built-in convolution.*\[aten.convolution\]"):
        checks.check_conv2d_scratch(conv_delegates_quietly)


def test_conv2d_scratch_catches_a_from_import():
    """`from torch.nn.functional import conv2d` in the student's namespace: refused at the dispatcher."""
    namespace: dict = {}
    exec(
        "from torch.nn.functional import conv2d\n"
        "def conv2d_scratch(x, w, b, stride, padding):\n"
        "    return conv2d(x, w, b, stride=stride, padding=padding)\n",
        namespace,
    )
    with pytest.raises(CheckFailure, match=REFUSED):
        checks.check_conv2d_scratch(namespace["conv2d_scratch"])
    assert namespace["conv2d"] is F.conv2d


def test_conv2d_scratch_probe_returns_plain_data():
    ex = checks.check_conv2d_scratch.exercise
    cases = ex.cases(False)
    data = ex.run_probe([conv_ok], cases)
    assert [type(d["out"]["value"]) for d in data] == [torch.Tensor] * len(cases)


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


def down_named(in_ch, out_ch, batchnorm=True):
    """Correct, written another way: named layers in an OrderedDict."""
    from collections import OrderedDict

    layers = OrderedDict(conv=nn.Conv2d(in_ch, out_ch, kernel_size=(4, 4), stride=(2, 2), padding=(1, 1), bias=False))
    if batchnorm:
        layers["bn"] = nn.BatchNorm2d(out_ch)
    layers["act"] = nn.LeakyReLU(negative_slope=0.2)
    return nn.Sequential(layers)


class DownModule(nn.Module):
    """Correct, written another way: a module of its own with an explicit forward."""

    def __init__(self, in_ch, out_ch, batchnorm=True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)
        self.norm = nn.BatchNorm2d(out_ch) if batchnorm else nn.Identity()
        self.act = nn.LeakyReLU(0.2, inplace=True)

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


def down_reference_wrapper(in_ch, out_ch, batchnorm=True):
    from dcgan_ref.models import down_block

    return down_block(in_ch, out_ch, batchnorm)


def down_reference_layers(in_ch, out_ch, batchnorm=True):
    import dcgan_ref.models

    return nn.Sequential(*dcgan_ref.models.down_block(in_ch, out_ch, batchnorm=batchnorm))


def down_reference_discriminator(in_ch, out_ch, batchnorm=True):
    from dcgan_ref.models import Discriminator

    return Discriminator()


def test_down_block_reference_passes(capsys):
    for fn in (down_ok, down_named, DownModule):
        checks.check_down_block(fn)
        checks.check_down_block(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 6


@pytest.mark.parametrize("wrong", [down_reference_wrapper, down_reference_layers, down_reference_discriminator])
def test_down_block_refuses_the_reference(wrong):
    with pytest.raises(CheckFailure, match="the reference it is compared with"):
        checks.check_down_block(wrong)


def test_down_block_refuses_the_reference_itself():
    from dcgan_ref.models import down_block

    with pytest.raises(CheckFailure, match="is dcgan_ref.models.down_block, the reference"):
        checks.check_down_block(down_block)


def down_bn_momentum(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(out_ch, momentum=0.9),
                         nn.LeakyReLU(0.2))


def down_bn_wrong_features(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False), nn.BatchNorm2d(in_ch), nn.LeakyReLU(0.2))


def down_instance_norm(in_ch, out_ch, batchnorm=True):
    layers = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)]
    if batchnorm:
        layers.append(nn.InstanceNorm2d(out_ch))
    return nn.Sequential(*layers, nn.LeakyReLU(0.2))


def down_wrong_channels(in_ch, out_ch, batchnorm=True):
    return down_ok(out_ch, in_ch, batchnorm) if in_ch != out_ch else down_ok(in_ch, out_ch + 1, batchnorm)


def down_no_activation(in_ch, out_ch, batchnorm=True):
    layers = [nn.Conv2d(in_ch, out_ch, 4, 2, 1, bias=False)]
    return nn.Sequential(*layers, *([nn.BatchNorm2d(out_ch)] if batchnorm else []))


def down_two_convs(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False), down_ok(out_ch, out_ch, batchnorm))


def down_stride1(in_ch, out_ch, batchnorm=True):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, 1, 1, bias=False), nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def down_raises(in_ch, out_ch, batchnorm=True):
    raise NotImplementedError()


class DownWrongForward(DownModule):
    """Right layers, wrong forward: the activation before the normalisation."""

    def forward(self, x):
        return self.norm(self.act(self.conv(x)))


class DownFreshWeights(DownModule):
    """Right layers, but forward uses a weight it recreates each time."""

    def forward(self, x):
        return self.act(self.norm(F.conv2d(x, torch.ones_like(self.conv.weight), stride=2, padding=1)))


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
        (down_bn_momentum, "momentum=0.9, expected the default 0.1"),
        (down_bn_wrong_features, "BatchNorm2d has 3 features, expected out_ch = 8"),
        (down_instance_norm, "uses InstanceNorm2d, expected nn.BatchNorm2d"),
        (down_wrong_channels, "maps 8 -> 3 channels, expected 3 -> 8"),
        (down_no_activation, "activation is missing"),
        (down_two_convs, "expected exactly one nn.Conv2d"),
        (down_stride1, "expected 4, 2, 1"),
        (down_raises, "not implemented yet"),
        (lambda i, o, batchnorm=True: DownWrongForward(i, o, batchnorm), "differs from the reference"),
        (lambda i, o, batchnorm=True: DownFreshWeights(i, o, batchnorm), "differs from the reference"),
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


# ------------------------------------------------------------------ the source notebook's answers


def notebook_answers(lesson: str) -> dict:
    """The answer cells of ``solutions/<lesson>`` executed in one namespace: the solutions as written there."""
    import nbformat

    from autograder import course

    nb = nbformat.read(course.source_notebook(lesson), as_version=4)
    namespace: dict = {}
    exec("import numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n", namespace)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("solution"):
            exec(c.source, namespace)  # noqa: S102 - our own source notebook
    return namespace


def graded_calls(lesson: str) -> list[tuple[str, list[str], bool]]:
    """(check name, argument names, hidden) of every check call in the source notebook's test cells."""
    import ast

    import nbformat

    from autograder import course

    nb = nbformat.read(course.source_notebook(lesson), as_version=4)
    calls = []
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade"):
            for node in ast.walk(ast.parse(c.source)):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                        node.func.attr.startswith("check_"):
                    hidden = any(k.arg == "hidden" for k in node.keywords)
                    calls.append((node.func.attr, [a.id for a in node.args], hidden))
    return calls


def judge_across_the_boundary(module, lesson: str) -> list[str]:
    """Each check of the notebook as the trusted grader splits it: cases, probe on the answer, plain
    data through the serialisation, judge without any student object. Returns the success lines."""
    from autograder.checks._plain import dumps, loads

    answers = notebook_answers(lesson)
    lines = []
    for name, args, hidden in graded_calls(lesson):
        ex = getattr(module, name).exercise
        cases = ex.cases(hidden)
        data = loads(dumps(ex.run_probe([answers[a] for a in args], loads(dumps(cases)))))
        lines.append(ex.judge(cases, data))
    return lines


def test_notebook_solutions_pass_across_the_boundary():
    lines = judge_across_the_boundary(checks, "01_strided_convolution")
    assert len(lines) == 6 and all(type(line) is str for line in lines)
