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


def tsize_probes_a_layer(h, k, s, p, output_padding=0):
    layer = nn.ConvTranspose2d(1, 1, k, s, p, output_padding=output_padding)
    return layer(torch.zeros(1, 1, h, h)).shape[-1]


def tsize_probes_meta(h, k, s, p, output_padding=0):
    x, w = torch.empty(1, 1, h, h, device="meta"), torch.empty(1, 1, k, k, device="meta")
    return int(F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=output_padding).shape[-1])


def tsize_minus_op(h, k, s, p, output_padding=0):
    return (h - 1) * s - 2 * p + k - output_padding


def tsize_ok_expanded(h, k, s, p, output_padding=0):
    """Correct, written another way."""
    return h * s - s - p - p + k + output_padding


def test_conv_transpose_output_size_reference_passes(capsys):
    checks.check_conv_transpose_output_size(tsize_ok_expanded, hidden=True)
    checks.check_conv_transpose_output_size(tsize_ok)
    checks.check_conv_transpose_output_size(tsize_ok, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 3


@pytest.mark.parametrize(
    "wrong, message",
    [
        (tsize_forward, "size of a forward convolution"),
        (tsize_no_op, "output_padding is ignored"),
        (tsize_h_times_s, r"the -1 is missing: .*use \(h - 1\)\*s, not h\*s"),
        (tsize_probes_a_layer, "calls a tensor operation"),
        (tsize_probes_meta, "calls a tensor operation"),
        (tsize_minus_op, "output_padding ADDS"),
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


def out_size(x, w, stride, padding):
    return [x.shape[0], w.shape[1], (x.shape[2] - 1) * stride - 2 * padding + w.shape[-1],
            (x.shape[3] - 1) * stride - 2 * padding + w.shape[-1]]


def ct_delegates_grad(x, w, b, stride, padding):
    out = torch.nn.grad.conv2d_input(out_size(x, w, stride, padding), w, x, stride=stride, padding=padding)
    return out if b is None else out + b.view(1, -1, 1, 1)


def ct_autograd_of_conv2d(x, w, b, stride, padding):
    """The transposed convolution as autograd's gradient of F.conv2d with respect to its input."""
    z = torch.zeros(out_size(x, w, stride, padding), requires_grad=True)
    (g,) = torch.autograd.grad(F.conv2d(z, w, stride=stride, padding=padding), z, grad_outputs=x)
    return g if b is None else g + b.view(1, -1, 1, 1)


def ct_func_vjp(x, w, b, stride, padding):
    z = torch.zeros(out_size(x, w, stride, padding))
    _, pullback = torch.func.vjp(lambda t: F.conv2d(t, w, stride=stride, padding=padding), z)
    (g,) = pullback(x)
    return g if b is None else g + b.view(1, -1, 1, 1)


def ct_aten(x, w, b, stride, padding):
    return torch.ops.aten.conv_transpose2d(x, w, b, [stride] * 2, [padding] * 2)


def ct_aten_convolution(x, w, b, stride, padding):
    return torch.ops.aten.convolution(x, w, b, [stride] * 2, [padding] * 2, [1, 1], True, [0, 0], 1)


def ct_slow_kernel(x, w, b, stride, padding):
    return torch.ops.aten.slow_conv_transpose2d(x, w, [w.shape[-1]] * 2, b, [stride] * 2, [padding] * 2)


def ct_delegates_quietly(x, w, b, stride, padding):
    try:
        return F.conv_transpose2d(x, w, b, stride=stride, padding=padding)
    except Exception:  # hides the error and falls back to a wrong answer
        return ct_ok(x, w, None, stride, padding)


def ct_reshape_not_transpose(x, w, b, stride, padding):
    """w.reshape(C_out, C_in, k, k) instead of w.transpose(0, 1): the right shape, scrambled channels."""
    C_in, C_out, k, _ = w.shape
    xz = F.pad(zero_insert(x, stride), (k - 1 - padding,) * 4)
    return F.conv2d(xz, w.flip(-1, -2).reshape(C_out, C_in, k, k), b)


def ct_pad_p(x, w, b, stride, padding):
    """The zero-inserted input padded by `padding` instead of k - 1 - padding."""
    xz = F.pad(zero_insert(x, stride), (padding,) * 4)
    return F.conv2d(xz, w.flip(-1, -2).transpose(0, 1), b)


def ct_fold(x, w, b, stride, padding):
    """Third correct answer: the stamps as columns, summed into place by F.fold (col2im)."""
    N, C_in, H, W = x.shape
    _, C_out, k, _ = w.shape
    cols = torch.einsum("ncl,cm->nml", x.reshape(N, C_in, H * W), w.reshape(C_in, C_out * k * k))
    Ho, Wo = (H - 1) * stride - 2 * padding + k, (W - 1) * stride - 2 * padding + k
    out = F.fold(cols, (Ho, Wo), k, padding=padding, stride=stride)
    return out if b is None else out + b.view(1, -1, 1, 1)


def ct_one_side_crop(x, w, b, stride, padding):
    full = ct_scatter(x, w, None, stride, 0, crop=False)
    out = full[:, :, padding:, padding:]
    return out if b is None else out + b.view(1, -1, 1, 1)


def ct_bias_twice(x, w, b, stride, padding):
    return ct_ok(x, w, None if b is None else 2 * b, stride, padding)


def ct_in_place(x, w, b, stride, padding):
    out = ct_ok(x, w, b, stride, padding)
    x.zero_()
    return out


def ct_bias_always(x, w, b, stride, padding):
    return ct_ok(x, w, None, stride, padding) + b.view(1, -1, 1, 1)


def ct_numpy(x, w, b, stride, padding):
    return ct_ok(x, w, b, stride, padding).numpy()


def test_conv_transpose2d_scratch_reference_passes(capsys):
    for fn in (ct_ok, ct_scatter, ct_fold):
        checks.check_conv_transpose2d_scratch(fn)
        checks.check_conv_transpose2d_scratch(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 6


TRANSPOSED = "calls a built-in transposed convolution"


@pytest.mark.parametrize(
    "wrong, message",
    [
        (ct_no_crop, "the padding is not cropped"),
        (ct_trailing_zeros, "zeros are inserted after the last pixel too"),
        (ct_stride_zeros, "`stride` zeros are inserted between neighbours; it should be stride - 1"),
        (ct_no_flip, "the kernel is not flipped"),
        (ct_no_channel_swap, r"swap its first two axes: w.transpose\(0, 1\)"),
        (ct_reshape_not_transpose, r"w.reshape / w.view keeps the memory order.*w.transpose\(0, 1\)"),
        (ct_pad_p, r"pad it by k - 1 - padding on each side \(not by padding\)"),
        (ct_one_side_crop, "cropped from one side only"),
        (ct_no_bias, "the bias is missing"),
        (ct_bias_twice, "the bias is added twice"),
        (ct_in_place, "changed its input x in place"),
        (ct_numpy, "returned a numpy.ndarray, expected a torch.Tensor"),
        (ct_bias_always, "b can be None"),
        (ct_delegates, TRANSPOSED),
        (ct_delegates_module, TRANSPOSED),
        (ct_delegates_grad, TRANSPOSED),
        (ct_autograd_of_conv2d, "calls autograd|" + TRANSPOSED),
        (ct_func_vjp, "calls autograd|" + TRANSPOSED),
        (ct_aten, TRANSPOSED),
        (ct_aten_convolution, TRANSPOSED),
        (ct_slow_kernel, TRANSPOSED),
        (ct_delegates_quietly, TRANSPOSED + r".*\[aten.convolution\]"),
    ],
)
def test_conv_transpose2d_scratch_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_conv_transpose2d_scratch(wrong)


def test_transpose_builtins_work_after_the_check():
    with pytest.raises(CheckFailure):
        checks.check_conv_transpose2d_scratch(ct_delegates)
    assert nn.ConvTranspose2d(1, 1, 2, 2)(torch.zeros(1, 1, 2, 2)).shape == (1, 1, 4, 4)


def test_forward_convolution_stays_allowed():
    """F.conv2d on the zero-inserted input is the construction the lesson teaches: not refused."""
    mode = checks.RefuseTransposed("")
    with mode:
        F.conv2d(torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 2, 2))
    assert mode.hits == []


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


def up_named(in_ch, out_ch, stride=2, padding=1):
    """Correct, written another way: named layers."""
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(
        up=nn.ConvTranspose2d(in_ch, out_ch, kernel_size=(4, 4), stride=stride, padding=padding, bias=False),
        bn=nn.BatchNorm2d(out_ch), act=nn.ReLU()))


class UpModule(nn.Module):
    """Correct, written another way: a module with its own forward."""

    def __init__(self, in_ch, out_ch, stride=2, padding=1):
        super().__init__()
        self.conv = nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def up_reference_wrapper(in_ch, out_ch, stride=2, padding=1):
    import dcgan_ref.models

    return dcgan_ref.models.up_block(in_ch, out_ch, stride, padding)


def up_reference_generator_slice(in_ch, out_ch, stride=2, padding=1):
    from dcgan_ref.models import Generator

    return Generator().main[:3]


def test_up_block_reference_passes(capsys):
    for fn in (up_ok, up_named, UpModule):
        checks.check_up_block(fn)
        checks.check_up_block(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 6


@pytest.mark.parametrize("wrong", [up_reference_wrapper, up_reference_generator_slice])
def test_up_block_refuses_the_reference(wrong):
    with pytest.raises(CheckFailure, match="the reference it is compared with"):
        checks.check_up_block(wrong)


def test_up_block_refuses_the_reference_itself():
    from dcgan_ref.models import up_block

    with pytest.raises(CheckFailure, match="is dcgan_ref.models.up_block, the reference"):
        checks.check_up_block(up_block)


def up_conv2d(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.Conv2d(in_ch, out_ch, 4, stride, padding, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU())


def up_output_padding(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, output_padding=stride - 1, bias=False),
                         nn.BatchNorm2d(out_ch), nn.ReLU())


def up_swapped_channels(in_ch, out_ch, stride=2, padding=1):
    return up_ok(out_ch, in_ch, stride, padding)


def up_relu_first(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch, 4, stride, padding, bias=False), nn.ReLU(),
                         nn.BatchNorm2d(out_ch))


def up_pixel_shuffle(in_ch, out_ch, stride=2, padding=1):
    return nn.Sequential(nn.ConvTranspose2d(in_ch, out_ch * 4, 4, 1, padding, bias=False), nn.PixelShuffle(2),
                         nn.BatchNorm2d(out_ch), nn.ReLU())


class UpWrongForward(UpModule):
    """Right layers, but forward skips the BatchNorm."""

    def forward(self, x):
        return self.relu(self.conv(x))


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
        (up_conv2d, "not nn.Conv2d"),
        (up_output_padding, "output_padding=\\(1, 1\\)"),
        (up_swapped_channels, "maps 8 -> 3 channels, expected 3 -> 8"),
        (up_relu_first, r"expected the order \[ConvTranspose2d, BatchNorm2d, ReLU\]"),
        (up_pixel_shuffle, "remove the PixelShuffle"),
        (lambda i, o, stride=2, padding=1: UpWrongForward(i, o, stride, padding), "differs from the reference"),
        (lambda i, o: up_ok(i, o), "unexpected keyword argument 'stride'"),
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


def adj_zero_insertion(x, y, w, stride, padding):
    """Third correct answer: the transposed side built by hand with zero insertion and F.conv2d."""
    k = w.shape[-1]
    lhs = (F.conv2d(x, w, stride=stride, padding=padding) * y).sum()
    oh, ow = ((n + 2 * padding - k) % stride for n in x.shape[2:])  # output_padding: more zeros at the end
    q = k - 1 - padding
    back = F.conv2d(F.pad(zero_insert(y, stride), (q, q + ow, q, q + oh)), w.flip(-1, -2).transpose(0, 1))
    return lhs, (x * back).sum()


def adj_floats(x, y, w, stride, padding):
    """Correct, returning Python floats."""
    lhs, rhs = adj_ok(x, y, w, stride, padding)
    return lhs.item(), rhs.item()


def adj_lhs_twice(x, y, w, stride, padding):
    lhs = (F.conv2d(x, w, stride=stride, padding=padding) * y).sum()
    return lhs, lhs.clone()


def adj_rhs_twice(x, y, w, stride, padding):
    op = tuple((n + 2 * padding - w.shape[-1]) % stride for n in x.shape[2:])
    rhs = (x * F.conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=op)).sum()
    return rhs.clone(), rhs


def adj_lhs_float_twice(x, y, w, stride, padding):
    lhs = float((F.conv2d(x, w, stride=stride, padding=padding) * y).sum())
    return lhs, lhs


def adj_numpy(x, y, w, stride, padding):
    lhs, rhs = adj_ok(x, y, w, stride, padding)
    return lhs.numpy(), rhs.numpy()


def adj_single(x, y, w, stride, padding):
    return adj_ok(x, y, w, stride, padding)[0]


def adj_no_padding(x, y, w, stride, padding):
    lhs = (F.conv2d(x, w, stride=stride, padding=padding) * y).sum()
    op = tuple((n + 2 * padding - w.shape[-1]) % stride for n in x.shape[2:])
    back = F.conv_transpose2d(y, w, stride=stride, padding=0, output_padding=op)
    return lhs, (x * back[:, :, :x.shape[2], :x.shape[3]]).sum()


def test_adjoint_sides_reference_passes(capsys):
    for fn in (adj_ok, adj_autograd, adj_zero_insertion, adj_floats):
        checks.check_adjoint_sides(fn)
        checks.check_adjoint_sides(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 8


@pytest.mark.parametrize(
    "wrong, message",
    [
        (adj_no_output_padding, "pass output_padding"),
        (adj_flipped, "the kernel is flipped"),
        (adj_swapped, "pass the SAME w"),
        (adj_no_sum, r"SUMS over every element"),
        (adj_lhs_twice, "conv_transpose2d\\(y, w\\) never appears"),
        (adj_lhs_float_twice, "conv_transpose2d\\(y, w\\) never appears"),
        (adj_rhs_twice, "conv2d\\(x, w\\) never appears"),
        (adj_numpy, "is a numpy.ndarray, expected a number"),
        (adj_single, "expected a pair"),
        (adj_no_padding, "rhs = .*expected <x, conv_transpose2d"),
    ],
)
def test_adjoint_sides_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_adjoint_sides(wrong)


# ------------------------------------------------------------------ conv2d_backward


def bwd_ok(x, w, grad_out, stride, padding):
    """unfold for the weight gradient, fold (the stamps) for the input gradient."""
    N, C_in, H, W = x.shape
    C_out, _, k, _ = w.shape
    g = grad_out.reshape(N, C_out, -1)
    cols = F.unfold(x, k, padding=padding, stride=stride)
    grad_w = torch.einsum("nol,nkl->ok", g, cols).reshape(w.shape)
    grad_x = F.fold(torch.einsum("ok,nol->nkl", w.reshape(C_out, -1), g), (H, W), k, padding=padding, stride=stride)
    return grad_x, grad_w


def bwd_loops(x, w, grad_out, stride, padding):
    """Second correct answer: loops over output pixels, with slicing, no unfold/fold."""
    k = w.shape[-1]
    xp = F.pad(x, (padding,) * 4)
    gxp = torch.zeros_like(xp)
    grad_w = torch.zeros_like(w)
    for i in range(grad_out.shape[2]):
        for j in range(grad_out.shape[3]):
            win = xp[:, :, i * stride:i * stride + k, j * stride:j * stride + k]
            g = grad_out[:, :, i, j]
            grad_w += torch.einsum("no,nchw->ochw", g, win)
            gxp[:, :, i * stride:i * stride + k, j * stride:j * stride + k] += torch.einsum("no,ochw->nchw", g, w)
    H, W = x.shape[2:]
    return gxp[:, :, padding:padding + H, padding:padding + W], grad_w


def bwd_flipped_x(x, w, grad_out, stride, padding):
    return bwd_ok(x, w.flip(-1, -2), grad_out, stride, padding)[0], bwd_ok(x, w, grad_out, stride, padding)[1]


def bwd_flipped_w(x, w, grad_out, stride, padding):
    gx, gw = bwd_ok(x, w, grad_out, stride, padding)
    return gx, gw.flip(-1, -2)


def bwd_not_summed(x, w, grad_out, stride, padding):
    N, C_out, k = x.shape[0], w.shape[0], w.shape[-1]
    cols = F.unfold(x, k, padding=padding, stride=stride)
    gw = torch.einsum("nol,nkl->nok", grad_out.reshape(N, C_out, -1), cols).reshape(N, *w.shape)
    return bwd_ok(x, w, grad_out, stride, padding)[0], gw


def bwd_mean(x, w, grad_out, stride, padding):
    gx, gw = bwd_ok(x, w, grad_out, stride, padding)
    return gx, gw / x.shape[0]


def bwd_first_image(x, w, grad_out, stride, padding):
    gx, _ = bwd_ok(x, w, grad_out, stride, padding)
    return gx, bwd_ok(x[:1], w, grad_out[:1], stride, padding)[1]


def bwd_no_stride(x, w, grad_out, stride, padding):
    """The stamps placed at stride 1 (grad_x), and the windows taken at stride 1 (grad_w)."""
    k = w.shape[-1]
    C_out = w.shape[0]
    N = x.shape[0]
    Ho, Wo = grad_out.shape[2:]
    cols = torch.einsum("ok,nol->nkl", w.reshape(C_out, -1), grad_out.reshape(N, C_out, -1))
    gx = F.fold(cols, (Ho + k - 1 - 2 * padding, Wo + k - 1 - 2 * padding), k, padding=padding)
    return gx, bwd_ok(x, w, grad_out, stride, padding)[1]


def bwd_no_crop(x, w, grad_out, stride, padding):
    """The stamps summed, but the padding never cropped."""
    k = w.shape[-1]
    C_out, N = w.shape[0], x.shape[0]
    Ho, Wo = grad_out.shape[2:]
    cols = torch.einsum("ok,nol->nkl", w.reshape(C_out, -1), grad_out.reshape(N, C_out, -1))
    gx = F.fold(cols, ((Ho - 1) * stride + k, (Wo - 1) * stride + k), k, stride=stride)
    return gx, bwd_ok(x, w, grad_out, stride, padding)[1]


def bwd_no_output_padding(x, w, grad_out, stride, padding):
    """The rows the forward pass never read are dropped from grad_x."""
    k = w.shape[-1]
    C_out, N = w.shape[0], x.shape[0]
    Ho, Wo = grad_out.shape[2:]
    cols = torch.einsum("ok,nol->nkl", w.reshape(C_out, -1), grad_out.reshape(N, C_out, -1))
    size = ((Ho - 1) * stride + k - 2 * padding, (Wo - 1) * stride + k - 2 * padding)
    return F.fold(cols, size, k, padding=padding, stride=stride), bwd_ok(x, w, grad_out, stride, padding)[1]


def bwd_zero_insertion_pad_p(x, w, grad_out, stride, padding):
    """grad_x the zero-insertion way, with the padding `padding` instead of k - 1 - padding (loops, no conv)."""
    k = w.shape[-1]
    gz = F.pad(zero_insert(grad_out, stride), (padding,) * 4)
    wt = w.flip(-1, -2).transpose(0, 1)  # (C_in, C_out, k, k)
    cols = F.unfold(gz, k)  # (N, C_out*k*k, L)
    Ho = gz.shape[2] - k + 1
    Wo = gz.shape[3] - k + 1
    gx = (wt.reshape(wt.shape[0], -1) @ cols).reshape(x.shape[0], wt.shape[0], Ho, Wo)
    return gx, bwd_ok(x, w, grad_out, stride, padding)[1]


def bwd_swapped_pair(x, w, grad_out, stride, padding):
    gx, gw = bwd_ok(x, w, grad_out, stride, padding)
    return gw, gx


def bwd_transposed_w(x, w, grad_out, stride, padding):
    gx, gw = bwd_ok(x, w, grad_out, stride, padding)
    return gx, gw.transpose(0, 1).contiguous()


def bwd_autograd(x, w, grad_out, stride, padding):
    """Autograd through a hand-written (unfold) convolution: refused all the same."""
    xr, wr = x.clone().requires_grad_(True), w.clone().requires_grad_(True)
    N, C_out, k = x.shape[0], w.shape[0], w.shape[-1]
    out = wr.reshape(C_out, -1) @ F.unfold(xr, k, padding=padding, stride=stride)
    return torch.autograd.grad(out, (xr, wr), grad_outputs=grad_out.reshape(N, C_out, -1))


def bwd_builtin_grad(x, w, grad_out, stride, padding):
    import torch.nn.grad

    return (torch.nn.grad.conv2d_input(x.shape, w, grad_out, stride=stride, padding=padding),
            torch.nn.grad.conv2d_weight(x, w.shape, grad_out, stride=stride, padding=padding))


def bwd_conv_transpose(x, w, grad_out, stride, padding):
    op = tuple((n + 2 * padding - w.shape[-1]) % stride for n in x.shape[2:])
    gx = F.conv_transpose2d(grad_out, w, stride=stride, padding=padding, output_padding=op)
    return gx, bwd_ok(x, w, grad_out, stride, padding)[1]


def bwd_aten_backward(x, w, grad_out, stride, padding):
    gx, gw, _ = torch.ops.aten.convolution_backward(grad_out, x, w, None, [stride] * 2, [padding] * 2, [1, 1],
                                                    False, [0, 0], 1, [True, True, False])
    return gx, gw


def bwd_in_place(x, w, grad_out, stride, padding):
    out = bwd_ok(x, w, grad_out, stride, padding)
    grad_out.zero_()
    return out


def bwd_unfold_no_stride(x, w, grad_out, stride, padding):
    """The weight gradient from windows taken at stride 1: their number no longer matches grad_out's."""
    N, C_out, k = x.shape[0], w.shape[0], w.shape[-1]
    cols = F.unfold(x, k, padding=padding)
    gw = torch.einsum("nol,nkl->ok", grad_out.reshape(N, C_out, -1), cols).reshape(w.shape)
    return bwd_ok(x, w, grad_out, stride, padding)[0], gw


def test_conv2d_backward_reference_passes(capsys):
    for fn in (bwd_ok, bwd_loops):
        checks.check_conv2d_backward(fn)
        checks.check_conv2d_backward(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 4


@pytest.mark.parametrize(
    "wrong, message",
    [
        (bwd_flipped_x, "grad_x differs.*the kernel is flipped"),
        (bwd_flipped_w, "grad_w differs.*kernel gradient is flipped"),
        (bwd_not_summed, "grad_w has shape .*not summed over the batch"),
        (bwd_mean, "averaged over the batch"),
        (bwd_first_image, "only the first image counts"),
        (bwd_no_stride, "grad_x has shape.*the stride is ignored"),
        (bwd_no_crop, "grad_x has shape.*the padding is not cropped"),
        (bwd_no_output_padding, "not a multiple of stride: the stamps cover"),
        (bwd_zero_insertion_pad_p, "pad it by k - 1 - padding"),
        (bwd_swapped_pair, "the pair is in the wrong order"),
        (bwd_transposed_w, "grad_w has w's layout \\(C_out, C_in, k, k\\)"),
        (bwd_unfold_no_stride, "windows start every `stride` pixels"),
        (bwd_in_place, "changed its input grad_out in place"),
        (bwd_autograd, "calls autograd"),
        (bwd_builtin_grad, "calls a built-in convolution"),
        (bwd_conv_transpose, "calls a built-in convolution"),
        (bwd_aten_backward, "calls a built-in convolution"),
    ],
)
def test_conv2d_backward_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_conv2d_backward(wrong)


def test_notebook_solutions_pass_across_the_boundary():
    from test_checks_lesson01 import judge_across_the_boundary

    lines = judge_across_the_boundary(checks, "02_transposed_convolution")
    assert len(lines) == 10 and all(type(line) is str for line in lines)


def adj_nan(x, y, w, stride, padding):
    """Computes both sides from their own operators, then returns NaN: `abs(nan - ref) > tol` is False."""
    lhs, rhs = adj_ok(x, y, w, stride, padding)
    return lhs * float("nan"), rhs * float("nan")


def adj_inf(x, y, w, stride, padding):
    lhs, rhs = adj_ok(x, y, w, stride, padding)
    return lhs, rhs * float("inf")


@pytest.mark.parametrize("fn, side", [(adj_nan, "lhs = nan"), (adj_inf, "rhs = -?inf")])
def test_adjoint_sides_nan_or_inf_fails(fn, side):
    with pytest.raises(CheckFailure, match=side):
        checks.check_adjoint_sides(fn)


def scratch_nan(x, w, b, stride, padding):
    out = ct_ok(x, w, b, stride, padding)
    return out.masked_fill(torch.zeros_like(out, dtype=torch.bool).index_fill_(-1, torch.tensor([0]), True),
                           float("nan"))


def test_transposed_convolution_nan_fails():
    with pytest.raises(CheckFailure, match="NaN"):
        checks.check_conv_transpose2d_scratch(scratch_nan)
