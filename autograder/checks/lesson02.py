"""Checks for lesson 02, transposed convolution: output size, a transposed convolution from scratch,
G's upsampling block and the adjoint identity <conv(x), y> = <x, conv_transpose(y)>.

References are ``F.conv_transpose2d`` / ``nn.ConvTranspose2d`` and ``dcgan_ref.models.up_block``,
computed here on inputs from fixed seeds; wrong answers are matched against the usual mistakes.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks._core import (
    CheckFailure,
    call,
    expect,
    expect_close,
    expect_shape,
    expect_tensor,
    fail,
    forbid,
    passed,
    randn,
    seeded,
    student_globals,
)
from autograder.checks.lesson01 import (
    build_block,
    check_norm_and_order,
    check_size_formula,
    compare_with_reference,
    describe,
    layer_pattern,
    matches,
)

# ---------------------------------------------------------------------------------------------
# conv_transpose_output_size


def _reference_size(h: int, k: int, s: int, p: int, output_padding: int = 0) -> int:
    """Output height of nn.ConvTranspose2d on an h x h input, measured on shape-only (meta) tensors."""
    x = torch.empty(1, 1, h, h, device="meta")
    w = torch.empty(1, 1, k, k, device="meta")
    return int(F.conv_transpose2d(x, w, stride=s, padding=p, output_padding=output_padding).shape[-1])


_SIZE_MISTAKES: list[tuple[Callable[..., int], str]] = [
    (lambda h, k, s, p, op: (h + 2 * p - k) // s + 1,
     "that is the size of a forward convolution; a transposed convolution goes the other way: "
     "(h - 1)*s - 2*p + k + output_padding"),
    (lambda h, k, s, p, op: (h - 1) * s - 2 * p + k,
     "output_padding is ignored: it adds that many rows/columns at the end"),
    (lambda h, k, s, p, op: h * s - 2 * p + k + op,
     "h input pixels are h - 1 strides apart, so use (h - 1)*s, not h*s"),
    (lambda h, k, s, p, op: (h - 1) * s - p + k + op,
     "padding is cropped from BOTH sides: subtract 2*p"),
    (lambda h, k, s, p, op: (h - 1) * s + 2 * p + k + op,
     "in a transposed convolution padding REMOVES pixels: subtract 2*p"),
    (lambda h, k, s, p, op: (h - 1) * s - 2 * p + k - 1 + op,
     "off by one: the last stamp of the kernel covers k pixels, (h - 1)*s - 2*p + k + output_padding"),
]


def _size_configs(hidden: bool) -> list[tuple[int, int, int, int, int]]:
    """(h, k, s, p, output_padding): DCGAN's layers, output_padding cases, random ones."""
    fixed = [
        (1, 4, 1, 0, 0),  # G's first layer: 1x1 noise -> 4x4
        (4, 4, 2, 1, 0),  # G's hidden layers: double the size
        (32, 4, 2, 1, 0),  # G's last layer at 64x64: 32 -> 64
        (5, 3, 2, 1, 1),  # kernel 3 needs output_padding=1 to double
        (7, 3, 2, 1, 0),
        (3, 5, 3, 2, 2),
    ]
    g = seeded(202 if hidden else 2)
    out = list(fixed)
    while len(out) < len(fixed) + (300 if hidden else 30):
        h, k, s, p = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 40), (1, 8), (1, 5), (0, 4)))
        op = int(torch.randint(0, s, (1,), generator=g))  # output_padding must be smaller than the stride
        if (h - 1) * s - 2 * p + k + op >= 1:
            out.append((h, k, s, p, op))
    return out


def check_conv_transpose_output_size(fn: Callable[..., Any], hidden: bool = False) -> None:
    """``fn(h, k, s, p, output_padding=0)`` must equal nn.ConvTranspose2d's output size."""
    configs = _size_configs(hidden)
    check_size_formula(fn, "conv_transpose_output_size", ("h", "k", "s", "p", "output_padding"), configs,
                       _reference_size, "nn.ConvTranspose2d", _SIZE_MISTAKES,
                       "(h - 1)*s - 2*p + k + output_padding")
    try:
        got = call(fn, 4, 4, 2, 1, what="conv_transpose_output_size")
    except CheckFailure as err:
        fail(f"{err} Is output_padding=0 the default? conv_transpose_output_size(4, 4, 2, 1) must work.")
    expect(got == 8, f"conv_transpose_output_size(4, 4, 2, 1) returned {got!r}, expected 8: "
           "is output_padding=0 the default?")
    passed(f"conv_transpose_output_size matches nn.ConvTranspose2d on {len(configs)} configurations"
           + (" (hidden tests)" if hidden else "") + ".")


# ---------------------------------------------------------------------------------------------
# conv_transpose2d_scratch


def transpose_builtins() -> dict[str, tuple[Any, str]]:
    """Every built-in that computes a transposed convolution, plus dcgan_ref's blocks.

    F.conv2d stays allowed: "insert zeros, then convolve" is the construction the lesson teaches.
    """
    import torch.nn.grad

    import dcgan_ref.models as ref_models

    return {
        "F.conv_transpose2d": (F, "conv_transpose2d"),
        "torch.conv_transpose2d": (torch, "conv_transpose2d"),
        "nn.ConvTranspose2d.forward": (nn.ConvTranspose2d, "forward"),
        "torch.convolution": (torch, "convolution"),
        "torch._convolution": (torch, "_convolution"),
        "F.conv_transpose1d": (F, "conv_transpose1d"),
        "F.conv_transpose3d": (F, "conv_transpose3d"),
        "torch.nn.grad.conv2d_input": (torch.nn.grad, "conv2d_input"),
        "dcgan_ref.models.up_block": (ref_models, "up_block"),
        "dcgan_ref.models.down_block": (ref_models, "down_block"),
    }


TRANSPOSE_INSTEAD = (
    "Insert stride-1 zeros between the input pixels, pad, and convolve with the flipped kernel "
    "(F.conv2d is allowed), or add x[i, j] * w at stride steps and crop the padding."
)


def _transpose_cases(hidden: bool) -> list[tuple[tuple[int, ...], tuple[int, ...], bool, int, int]]:
    """(x shape, w shape (C_in, C_out, k, k), with bias, stride, padding)."""
    cases = [
        ((2, 3, 4, 4), (3, 5, 4, 4), True, 2, 1),  # G's hidden layer: doubles the size
        ((1, 4, 1, 1), (4, 2, 4, 4), True, 1, 0),  # G's first layer: 1x1 -> 4x4
        ((2, 2, 5, 3), (2, 3, 3, 3), False, 2, 1),  # H != W, kernel 3, no bias
        ((1, 1, 3, 3), (1, 1, 3, 3), True, 2, 0),  # no padding: nothing to crop
    ]
    if hidden:
        cases += [
            ((2, 6, 8, 8), (6, 4, 4, 4), True, 2, 1),
            ((1, 3, 4, 6), (3, 3, 5, 5), True, 3, 2),  # C_in == C_out: axis swaps show in values only
            ((3, 2, 2, 2), (2, 2, 2, 2), False, 2, 0),
            ((1, 2, 6, 6), (2, 3, 3, 3), True, 1, 1),  # stride 1: plain "full" convolution
            ((2, 4, 3, 3), (4, 1, 4, 4), True, 2, 3),  # padding = k - 1: no border around the zeros
        ]
    return cases


# Usual mistakes in the output size, as the size (per axis: h input pixels, k, s, p) they produce.
_SHAPE_MISTAKES: list[tuple[Callable[[int, int, int, int], int], str]] = [
    (lambda h, k, s, p: (h - 1) * s + k, "the padding is not cropped: remove `padding` rows and columns "
     "from each side of the result (or pad the zero-inserted input by k - 1 - padding, not k - 1)"),
    (lambda h, k, s, p: (h - 1) * s - p + k, "the padding is cropped from one side only: crop both sides"),
    (lambda h, k, s, p: h * s - 2 * p + k - 1, "zeros are inserted after the last pixel too: the "
     "zero-inserted input has (H - 1)*stride + 1 pixels, stride - 1 zeros BETWEEN neighbours only"),
    (lambda h, k, s, p: (h - 1) * (s + 1) - 2 * p + k, "`stride` zeros are inserted between neighbours; "
     "it should be stride - 1 (stride 2 puts ONE zero between two pixels)"),
    (lambda h, k, s, p: h * s - 2 * p + k, "wrong zero insertion: the zero-inserted input has "
     "(H - 1)*stride + 1 pixels"),
    (lambda h, k, s, p: (h + 2 * p - k) // s + 1, "that is the size of a forward convolution"),
    (lambda h, k, s, p: (h - 1) * s + 2 * p + k, "padding is added instead of cropped"),
    (lambda h, k, s, p: h + k - 1 - 2 * p, "the zeros between input pixels are missing (stride ignored)"),
]


def _transpose_shape_hint(runs: list[tuple[torch.Tensor, torch.Tensor, int, int, tuple]]) -> str:
    """Name the mistake whose sizes match the student's outputs on every run (x, w, s, p, shape)."""
    x, w, _, _, got = runs[0]
    if len(got) != 4:
        return "the output is 4-D: (N, C_out, H_out, W_out)"
    if got[1] != w.shape[1]:
        return "for a transposed convolution w is (C_in, C_out, k, k): C_out = w.shape[1]"
    for f, hint in _SHAPE_MISTAKES:
        if all(len(g) == 4 and tuple(g[2:]) == (f(x.shape[2], w.shape[-1], s, p), f(x.shape[3], w.shape[-1], s, p))
               for x, w, s, p, g in runs):
            return hint
    return "H_out = (H - 1)*stride - 2*padding + k, and the same for W"


def _transpose_value_hint(out: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                          s: int, p: int) -> str:
    def close(ref: torch.Tensor) -> bool:
        return matches(out, ref, rtol=1e-4, atol=1e-4)

    if close(F.conv_transpose2d(x, w.flip(-1, -2), b, stride=s, padding=p)):
        return ("the kernel is not flipped: after zero insertion, convolve with w rotated by 180 degrees "
                "(w.flip(-1, -2)), with its first two axes swapped")
    if b is not None and close(F.conv_transpose2d(x, w, None, stride=s, padding=p)):
        return "the bias is missing: add b[c_out] to every pixel of output channel c_out"
    if b is not None and close(F.conv_transpose2d(x, w, 2 * b, stride=s, padding=p)):
        return "the bias is added twice"
    if w.shape[0] == w.shape[1]:
        for wt, what in ((w.transpose(0, 1), "the input and output channel axes of w are swapped: "
                          "for a transposed convolution w is (C_in, C_out, k, k)"),
                         (w.transpose(-1, -2), "the kernel's rows and columns are swapped")):
            if close(F.conv_transpose2d(x, wt, b, stride=s, padding=p)):
                return what
            if close(F.conv_transpose2d(x, wt.flip(-1, -2), b, stride=s, padding=p)):
                return what + " (and the kernel is not flipped)"
    return ("check the zero insertion (x lands on every stride-th pixel, starting at 0) and the "
            "padding k - 1 - padding around it")


def check_conv_transpose2d_scratch(fn: Callable[..., Any], hidden: bool = False) -> None:
    """``fn(x, w, b, stride, padding)`` must equal F.conv_transpose2d without calling it."""
    cases = _transpose_cases(hidden)
    runs: list[tuple[Any, ...]] = []
    for i, (xs, ws, with_bias, stride, padding) in enumerate(cases):
        x = randn(*xs, seed=50 + i)
        w = randn(*ws, seed=60 + i)
        b = randn(ws[1], seed=70 + i) if with_bias else None
        expected = F.conv_transpose2d(x, w, b, stride=stride, padding=padding)  # before patching
        x_before = x.clone()
        b_text = f"({ws[1]},)" if with_bias else "None"
        what = f"conv_transpose2d_scratch(x {xs}, w {ws}, b {b_text}, stride={stride}, padding={padding})"
        try:
            with forbid(transpose_builtins(), "conv_transpose2d_scratch", TRANSPOSE_INSTEAD, student_globals(fn)):
                out = call(fn, x, w, b, stride, padding, what="conv_transpose2d_scratch")
        except CheckFailure as err:
            if "channels" in str(err) and "calls" not in str(err):
                fail(f"{what}: {err} Hint: a transposed convolution's w is (C_in, C_out, k, k); "
                     "to use it in F.conv2d swap its first two axes: w.transpose(0, 1).")
            raise
        runs.append((x, w, b, stride, padding, expect_tensor(out, what), expected, what))
        expect(torch.equal(x, x_before), f"{what} changed its input x in place: work on a new tensor.")
    # all runs first: the sizes on every input together tell the mistakes apart
    shapes = [(x, w, s, p, tuple(out.shape)) for x, w, _, s, p, out, _, _ in runs]
    for x, w, b, stride, padding, out, expected, what in runs:
        if out.shape != expected.shape:
            expect_shape(out, expected.shape, what, hint=_transpose_shape_hint(shapes))
        # float32 sums taken in another order differ by ~1e-6 relative; real mistakes are off by O(1)
        if not matches(out, expected, rtol=1e-4, atol=1e-4):
            expect_close(out, expected, what, rtol=1e-4, atol=1e-4,
                         hint=_transpose_value_hint(out, x, w, b, stride, padding))
    passed(f"conv_transpose2d_scratch equals F.conv_transpose2d on {len(cases)} inputs without calling it"
           + (" (hidden tests)" if hidden else "") + ".")


# ---------------------------------------------------------------------------------------------
# up_block

UPSAMPLING = (nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.PixelShuffle,
              nn.MaxUnpool2d)


def _relu_hint(m: nn.Module) -> str:
    if isinstance(m, nn.LeakyReLU):
        return "LeakyReLU belongs to the discriminator; DCGAN's generator uses plain nn.ReLU()."
    if isinstance(m, nn.Tanh):
        return ("Tanh is only G's very last activation (it maps to the image range [-1, 1]); "
                "the hidden blocks use nn.ReLU().")
    return "the generator's hidden blocks use nn.ReLU()."


def check_up_block(fn: Callable[..., nn.Module], hidden: bool = False) -> None:
    """``fn(in_ch, out_ch, stride=2, padding=1)``: ConvTranspose 4x4 without bias, BatchNorm, ReLU."""
    from dcgan_ref.models import up_block as ref_block

    cases = [((3, 8), {}, (2, 3, 4, 4)), ((16, 8), {"stride": 1, "padding": 0}, (2, 16, 1, 1))]
    if hidden:
        cases += [((8, 4), {}, (4, 8, 8, 8)), ((5, 7), {"stride": 2, "padding": 1}, (3, 5, 3, 5)),
                  ((10, 6), {"stride": 1, "padding": 0}, (2, 10, 1, 1))]
    for i, ((in_ch, out_ch), kwargs, xshape) in enumerate(cases):
        args = ", ".join([str(in_ch), str(out_ch)] + [f"{k}={v}" for k, v in kwargs.items()])
        what = f"up_block({args})"
        stride, padding = kwargs.get("stride", 2), kwargs.get("padding", 1)
        block = build_block(fn, (in_ch, out_ch), kwargs, what)
        layers = layer_pattern(block)
        pattern = describe(layers)
        ups = [m for m in layers if isinstance(m, UPSAMPLING)]
        if ups:
            fail(f"{what} has layers {pattern}: DCGAN upsamples with a learned fractional-strided "
                 f"convolution, so remove the {type(ups[0]).__name__} and use nn.ConvTranspose2d with stride=2.")
        if any(isinstance(m, nn.Conv2d) for m in layers):
            fail(f"{what} has layers {pattern}: use nn.ConvTranspose2d (it upsamples), not nn.Conv2d.")
        convs = [m for m in layers if isinstance(m, nn.ConvTranspose2d)]
        expect(len(convs) == 1, f"{what} has layers {pattern}: expected exactly one nn.ConvTranspose2d.")
        conv = convs[0]
        expect((conv.in_channels, conv.out_channels) == (in_ch, out_ch),
               f"{what}: the ConvTranspose2d maps {conv.in_channels} -> {conv.out_channels} channels, "
               f"expected {in_ch} -> {out_ch}.")
        settings = (tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.padding))
        if settings != ((4, 4), (stride, stride), (padding, padding)):
            fail(f"{what}: the ConvTranspose2d has kernel_size={conv.kernel_size}, stride={conv.stride}, "
                 f"padding={conv.padding}, expected 4, {stride}, {padding}: kernel 4 always, and the "
                 "block's own stride and padding arguments (2, 1 doubles H and W; 1, 0 maps 1x1 to 4x4).")
        expect(tuple(conv.output_padding) == (0, 0),
               f"{what}: output_padding={conv.output_padding}; with kernel 4 none is needed.")
        expect(conv.bias is None,
               f"{what}: the ConvTranspose2d has a bias; create it with bias=False. The BatchNorm right "
               "after it subtracts each channel's mean, which cancels any bias.")
        check_norm_and_order(layers, nn.ConvTranspose2d, True, out_ch,
                             lambda m: type(m) is nn.ReLU, "nn.ReLU()", _relu_hint, what)
        x = randn(*xshape, seed=80 + i)
        compare_with_reference(block, ref_block(in_ch, out_ch, **kwargs), x, what)
    passed(f"up_block matches dcgan_ref.models.up_block in {len(cases)} configurations"
           + (" (hidden tests)" if hidden else "") + ".")


# ---------------------------------------------------------------------------------------------
# adjoint_sides


def _adjoint_cases(hidden: bool) -> list[tuple[tuple[int, ...], tuple[int, ...], int, int]]:
    """(x shape, w shape (C_out, C_in, k, k), stride, padding)."""
    cases = [
        ((2, 3, 8, 8), (4, 3, 4, 4), 2, 1),  # DCGAN's layer: stride divides evenly
        ((1, 2, 8, 8), (3, 2, 3, 3), 2, 1),  # (8 + 2 - 3) % 2 = 1: conv_transpose needs output_padding
    ]
    if hidden:
        cases += [((2, 2, 9, 7), (2, 2, 3, 3), 2, 0), ((1, 3, 11, 11), (5, 3, 5, 5), 3, 2),
                  ((3, 1, 6, 6), (1, 1, 2, 2), 1, 0)]
    return cases


def _as_number(value: Any, what: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            fail(f"{what} is a tensor of shape {tuple(value.shape)}, expected one number: an inner "
                 "product multiplies elementwise and then SUMS over every element (.sum()).")
        return float(value.detach().to("cpu", torch.float64).item())
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    fail(f"{what} is a {type(value).__name__}, expected a number (a float or a 0-d tensor).")


def check_adjoint_sides(fn: Callable[..., Any], hidden: bool = False) -> None:
    """``fn(x, y, w, stride, padding)`` -> (<conv2d(x), y>, <x, conv_transpose2d(y)>) with the same w."""
    for i, (xs, ws, stride, padding) in enumerate(_adjoint_cases(hidden)):
        # float64 so that both sides agree to ~1e-12 and a real mistake cannot hide in rounding
        x = randn(*xs, seed=90 + i, dtype=torch.float64)
        w = randn(*ws, seed=100 + i, dtype=torch.float64)
        conv = F.conv2d(x, w, stride=stride, padding=padding)
        y = randn(*conv.shape, seed=110 + i, dtype=torch.float64)
        op = tuple((n + 2 * padding - ws[-1]) % stride for n in xs[2:])
        lhs_ref = float((conv * y).sum())
        rhs_ref = float((x * F.conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=op)).sum())
        what = (f"adjoint_sides(x {xs}, y {tuple(y.shape)}, w {ws}, stride={stride}, padding={padding})")
        try:
            result = call(fn, x, y, w, stride, padding, what="adjoint_sides")
        except CheckFailure as err:
            if "must match the size" in str(err) or "size of tensor" in str(err):
                fail(f"{what}: {err} Hint: conv_transpose2d(y) comes out smaller than x when "
                     "(H + 2*padding - k) is not a multiple of stride (conv2d dropped those pixels); "
                     "pass output_padding=(H + 2*padding - k) % stride.")
            if "channels" in str(err):
                fail(f"{what}: {err} Hint: pass the SAME w to F.conv_transpose2d: its (C_out, C_in, k, k) "
                     "layout is exactly what conv_transpose2d expects for going back from C_out to C_in.")
            raise
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            fail(f"{what} returned {type(result).__name__}, expected a pair (lhs, rhs).")
        lhs = _as_number(result[0], f"{what}[0] (lhs)")
        rhs = _as_number(result[1], f"{what}[1] (rhs)")
        # float64 sums over a few hundred terms: relative error ~1e-15, 1e-9 is a wide margin
        tol = 1e-9 * max(1.0, abs(lhs_ref))
        if abs(lhs - lhs_ref) > tol:
            fail(f"{what}: lhs = {lhs:.10g}, expected <conv2d(x, w), y> = {lhs_ref:.10g}: multiply "
                 "F.conv2d(x, w, stride=stride, padding=padding) by y elementwise and sum everything.")
        if abs(rhs - rhs_ref) > tol:
            flipped = float((x * F.conv_transpose2d(y, w.flip(-1, -2), stride=stride, padding=padding,
                                                    output_padding=op)).sum())
            hint = ("the kernel is flipped: F.conv_transpose2d with the very same w is the adjoint, "
                    "no flip needed" if abs(rhs - flipped) <= tol else
                    "use F.conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=...) with "
                    "the same w, multiply by x elementwise and sum")
            fail(f"{what}: rhs = {rhs:.10g}, expected <x, conv_transpose2d(y, w)> = {rhs_ref:.10g}: {hint}.")
        expect_close(torch.tensor(lhs), torch.tensor(rhs), f"{what}: lhs - rhs", rtol=1e-9, atol=1e-9)
    passed("both sides of <conv2d(x), y> = <x, conv_transpose2d(y)> match: the transposed convolution "
           "is the adjoint of the convolution" + (" (hidden tests)" if hidden else "") + ".")
