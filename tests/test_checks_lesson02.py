"""Lesson 02 checks: a correct answer passes; each named mistake fails with a message that names it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks import lesson02 as checks
from autograder.checks._core import CheckFailure

# ------------------------------------------------------------------ conv_transpose_output_size


def tsize_ok(h, k, s, p, output_padding=0):
    return (h - 1) * s - 2 * p + k + output_padding


def tsize_forward(h, k, s, p, output_padding=0):
    return (h + 2 * p - k) // s + 1


def tsize_no_op(h, k, s, p, output_padding=0):
    return (h - 1) * s - 2 * p + k


def tsize_h_times_s(h, k, s, p, output_padding=0):
    return h * s - 2 * p + k + output_padding


def tsize_pad_once(h, k, s, p, output_padding=0):
    return (h - 1) * s - p + k + output_padding


def tsize_plus_pad(h, k, s, p, output_padding=0):
    return (h - 1) * s + 2 * p + k + output_padding


def tsize_float(h, k, s, p, output_padding=0):
    return float((h - 1) * s - 2 * p + k + output_padding)


def tsize_no_default(h, k, s, p, output_padding):
    return (h - 1) * s - 2 * p + k + output_padding


def test_conv_transpose_output_size_reference_passes(capsys):
    checks.check_conv_transpose_output_size(tsize_ok)
    checks.check_conv_transpose_output_size(tsize_ok, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 2


@pytest.mark.parametrize(
    "wrong, message",
    [
        (tsize_forward, "size of a forward convolution"),
        (tsize_no_op, "output_padding is ignored"),
        (tsize_h_times_s, r"use \(h - 1\)\*s, not h\*s"),
        (tsize_pad_once, "BOTH sides: subtract 2\\*p"),
        (tsize_plus_pad, "padding REMOVES pixels"),
        (tsize_float, "returned the float"),
        (tsize_no_default, "Is output_padding=0 the default"),
    ],
)
def test_conv_transpose_output_size_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_conv_transpose_output_size(wrong)


# ------------------------------------------------------------------ conv_transpose2d_scratch


def zero_insert(x, stride, trailing=False, gap=None):
    N, C, H, W = x.shape
    gap = stride if gap is None else gap
    hz = H * gap if trailing else (H - 1) * gap + 1
    wz = W * gap if trailing else (W - 1) * gap + 1
    xz = x.new_zeros(N, C, hz, wz)
    xz[:, :, ::gap, ::gap] = x
    return xz


def ct_ok(x, w, b, stride, padding):
    """Zero insertion, pad k-1-padding, convolve with the flipped, channel-swapped kernel."""
    k = w.shape[-1]
    xz = F.pad(zero_insert(x, stride), (k - 1 - padding,) * 4)
    return F.conv2d(xz, w.flip(-1, -2).transpose(0, 1), b)


def ct_scatter(x, w, b, stride, padding, crop=True):
    """Second correct answer: every input pixel adds x[n, c, i, j] * w[c] at (i*stride, j*stride)."""
    N, C_in, H, W = x.shape
    _, C_out, k, _ = w.shape
    full = torch.zeros(N, C_out, (H - 1) * stride + k, (W - 1) * stride + k)
    for i in range(H):
        for j in range(W):
            full[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += torch.einsum(
                "nc,cokl->nokl", x[:, :, i, j], w)
    out = full[:, :, padding:full.shape[2] - padding, padding:full.shape[3] - padding] if crop else full
    return out if b is None else out + b.view(1, -1, 1, 1)


def ct_no_crop(x, w, b, stride, padding):
    return ct_scatter(x, w, b, stride, padding, crop=False)


def ct_trailing_zeros(x, w, b, stride, padding):
    k = w.shape[-1]
    xz = F.pad(zero_insert(x, stride, trailing=True), (k - 1 - padding,) * 4)
    return F.conv2d(xz, w.flip(-1, -2).transpose(0, 1), b)


def ct_stride_zeros(x, w, b, stride, padding):
    k = w.shape[-1]
    xz = F.pad(zero_insert(x, stride, gap=stride + 1), (k - 1 - padding,) * 4)
    return F.conv2d(xz, w.flip(-1, -2).transpose(0, 1), b)


def ct_no_flip(x, w, b, stride, padding):
    k = w.shape[-1]
    xz = F.pad(zero_insert(x, stride), (k - 1 - padding,) * 4)
    return F.conv2d(xz, w.transpose(0, 1), b)


def ct_no_channel_swap(x, w, b, stride, padding):
    k = w.shape[-1]
    xz = F.pad(zero_insert(x, stride), (k - 1 - padding,) * 4)
    return F.conv2d(xz, w.flip(-1, -2), b)


def ct_no_bias(x, w, b, stride, padding):
    return ct_ok(x, w, None, stride, padding)


def ct_delegates(x, w, b, stride, padding):
    return F.conv_transpose2d(x, w, b, stride=stride, padding=padding)


def ct_delegates_module(x, w, b, stride, padding):
    layer = nn.ConvTranspose2d(w.shape[0], w.shape[1], w.shape[-1], stride, padding, bias=b is not None)
    with torch.no_grad():
        layer.weight.copy_(w)
        if b is not None:
            layer.bias.copy_(b)
        return layer(x)


def ct_delegates_grad(x, w, b, stride, padding):
    size = [x.shape[0], w.shape[1], (x.shape[2] - 1) * stride - 2 * padding + w.shape[-1],
            (x.shape[3] - 1) * stride - 2 * padding + w.shape[-1]]
    out = torch.nn.grad.conv2d_input(size, w, x, stride=stride, padding=padding)
    return out if b is None else out + b.view(1, -1, 1, 1)


def test_conv_transpose2d_scratch_reference_passes(capsys):
    for fn in (ct_ok, ct_scatter):
        checks.check_conv_transpose2d_scratch(fn)
        checks.check_conv_transpose2d_scratch(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 4


@pytest.mark.parametrize(
    "wrong, message",
    [
        (ct_no_crop, "the padding is not cropped"),
        (ct_trailing_zeros, "zeros are inserted after the last pixel too"),
        (ct_stride_zeros, "`stride` zeros are inserted between neighbours; it should be stride - 1"),
        (ct_no_flip, "the kernel is not flipped"),
        (ct_no_channel_swap, r"swap its first two axes: w.transpose\(0, 1\)"),
        (ct_no_bias, "the bias is missing"),
        (ct_delegates, "calls F.conv_transpose2d"),
        (ct_delegates_module, "calls nn.ConvTranspose2d.forward"),
        (ct_delegates_grad, "calls torch.nn.grad.conv2d_input"),
    ],
)
def test_conv_transpose2d_scratch_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_conv_transpose2d_scratch(wrong)


def test_transpose_builtins_are_restored():
    original = F.conv_transpose2d
    with pytest.raises(CheckFailure):
        checks.check_conv_transpose2d_scratch(ct_delegates)
    assert F.conv_transpose2d is original and torch.conv_transpose2d is original
    assert nn.ConvTranspose2d(1, 1, 2, 2)(torch.zeros(1, 1, 2, 2)).shape == (1, 1, 4, 4)


# ------------------------------------------------------------------ up_block


def up_ok(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU(True))


def up_no_bn(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False), nn.ReLU())


def up_two_bn(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False),
                         nn.BatchNorm2d(out_ch), nn.BatchNorm2d(out_ch), nn.ReLU())


def up_leaky(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False),
                         nn.BatchNorm2d(out_ch), nn.LeakyReLU(0.2))


def up_tanh(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False),
                         nn.BatchNorm2d(out_ch), nn.Tanh())


def up_bias(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding),
                         nn.BatchNorm2d(out_ch), nn.ReLU())


def up_upsample(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(in_ch, out_ch, 3, 1, 1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU())


def up_fixed_stride(in_ch, out_ch, stride=2, padding=1):
    return up_ok(in_ch, out_ch)


def up_k3(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 3, stride, padding, output_padding=stride - 1,
                                            bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())


def test_up_block_reference_passes(capsys):
    from dcgan_ref.models import up_block

    checks.check_up_block(up_ok)
    checks.check_up_block(up_ok, hidden=True)
    checks.check_up_block(up_block, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 3


@pytest.mark.parametrize(
    "wrong, message",
    [
        (up_no_bn, "BatchNorm2d is missing"),
        (up_two_bn, "2 normalisation layers"),
        (up_leaky, "LeakyReLU belongs to the discriminator"),
        (up_tanh, "Tanh is only G's very last activation"),
        (up_bias, "bias=False"),
        (up_upsample, "remove the Upsample"),
        (up_fixed_stride, r"expected 4, 1, 0"),
        (up_k3, r"expected 4, 2, 1"),
    ],
)
def test_up_block_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_up_block(wrong)


# ------------------------------------------------------------------ adjoint_sides


def adj_ok(x, y, w, stride, padding):
    op = tuple((n + 2 * padding - w.shape[-1]) % stride for n in x.shape[2:])
    lhs = (F.conv2d(x, w, stride=stride, padding=padding) * y).sum()
    rhs = (x * F.conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=op)).sum()
    return lhs, rhs


def adj_autograd(x, y, w, stride, padding):
    """Second correct answer: the transposed convolution is the gradient of the convolution."""
    xg = x.clone().requires_grad_(True)
    out = F.conv2d(xg, w, stride=stride, padding=padding)
    (g,) = torch.autograd.grad(out, xg, grad_outputs=y)
    return float((out * y).sum()), float((x * g).sum())


def adj_no_output_padding(x, y, w, stride, padding):
    lhs = (F.conv2d(x, w, stride=stride, padding=padding) * y).sum()
    rhs = (x * F.conv_transpose2d(y, w, stride=stride, padding=padding)).sum()
    return lhs, rhs


def adj_flipped(x, y, w, stride, padding):
    op = tuple((n + 2 * padding - w.shape[-1]) % stride for n in x.shape[2:])
    lhs = (F.conv2d(x, w, stride=stride, padding=padding) * y).sum()
    rhs = (x * F.conv_transpose2d(y, w.flip(-1, -2), stride=stride, padding=padding, output_padding=op)).sum()
    return lhs, rhs


def adj_swapped(x, y, w, stride, padding):
    op = tuple((n + 2 * padding - w.shape[-1]) % stride for n in x.shape[2:])
    lhs = (F.conv2d(x, w, stride=stride, padding=padding) * y).sum()
    rhs = (x * F.conv_transpose2d(y, w.transpose(0, 1), stride=stride, padding=padding, output_padding=op)).sum()
    return lhs, rhs


def adj_no_sum(x, y, w, stride, padding):
    lhs, rhs = adj_ok(x, y, w, stride, padding)
    return F.conv2d(x, w, stride=stride, padding=padding) * y, rhs


def test_adjoint_sides_reference_passes(capsys):
    for fn in (adj_ok, adj_autograd):
        checks.check_adjoint_sides(fn)
        checks.check_adjoint_sides(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 4


@pytest.mark.parametrize(
    "wrong, message",
    [
        (adj_no_output_padding, "pass output_padding"),
        (adj_flipped, "the kernel is flipped"),
        (adj_swapped, "pass the SAME w"),
        (adj_no_sum, r"SUMS over every element"),
    ],
)
def test_adjoint_sides_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_adjoint_sides(wrong)
