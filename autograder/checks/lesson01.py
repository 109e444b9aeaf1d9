"""Checks for lesson 01, strided convolution: output size, a convolution from scratch, D's block.

Each exercise is cases -> probe -> judge (``_core.exercise``). The probes run the student's code
(built-in convolutions refused at the dispatcher where the exercise re-implements one, dcgan_ref
refused everywhere) and return plain data; the judges compute ``F.conv2d`` / ``nn.Conv2d`` or
``dcgan_ref.models.down_block`` on the same inputs and, when the answer is wrong, recompute the
reference with the usual mistake built in (padding off by one, flipped kernel, no bias, ...) to
name the mistake whose result matches. The helpers shared with lesson 02 live in ``_conv``; the
hidden cases' values come from the instructor's secret (``_core.hidden_generator``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from ._compare import POOLING, close, judge_only, nearest_mistake
from ._conv import (
    BlockRun,
    TensorFnRun,
    block_call_text,
    check_norm_and_order,
    compare_with_reference,
    inputs_text,
    judge_built_block,
    judge_inputs_untouched,
    judge_size_formula,
    pattern_text,
    probe_blocks,
    probe_sizes,
    probe_tensor_fn,
    tensor_error_hint,
)
from ._core import (
    CheckFailure,
    Layer,
    Outcome,
    exercise,
    expect,
    expect_close,
    expect_plain_tensor,
    expect_shape,
    fail,
    hidden_generator,
    randn,
    seeded,
    unwrap,
)
from ._guard import CONVOLUTION

# ---------------------------------------------------------------------------------------------
# conv_output_size


def _reference_size(h: int, k: int, s: int, p: int, d: int = 1) -> int:
    """Output height of nn.Conv2d on an h x h input, measured on shape-only (meta) tensors."""
    x = torch.empty(1, 1, h, h, device="meta")
    w = torch.empty(1, 1, k, k, device="meta")
    return int(F.conv2d(x, w, stride=s, padding=p, dilation=d).shape[-1])


def _span(k: int, d: int) -> int:
    return d * (k - 1) + 1


# The usual mistakes in the size formula, each as the formula it computes instead.
_SIZE_MISTAKES: list[tuple[Callable[[int, int, int, int, int], int], str]] = [
    (lambda h, k, s, p, d: (h + 2 * p - k) // s + 1,
     "the dilation is ignored: a kernel of size k with dilation d spans d*(k-1)+1 input pixels"),
    (lambda h, k, s, p, d: math.ceil((h + 2 * p - _span(k, d)) / s) + 1,
     "it rounds up instead of down: a window that does not fit completely is dropped, so use "
     "floor division //"),
    (lambda h, k, s, p, d: round((h + 2 * p - _span(k, d)) / s) + 1,
     "it rounds to nearest instead of down: a window that does not fit completely is dropped, so "
     "use floor division //"),
    (lambda h, k, s, p, d: int((h + 2 * p - _span(k, d)) / s + 0.5) + 1,
     "it rounds to nearest instead of down: a window that does not fit completely is dropped, so "
     "use floor division //"),
    (lambda h, k, s, p, d: (h + p - _span(k, d)) // s + 1, "padding is added on BOTH sides: use 2*p"),
    (lambda h, k, s, p, d: (h + 2 * p - _span(k, d)) // s, "the first window counts too: add 1"),
    (lambda h, k, s, p, d: (h + 2 * p - d * (k - 1)) // s + 1,
     "the -1 is missing: a kernel of size k with dilation d spans d*(k-1) + 1 pixels, so subtract "
     "d*(k-1) + 1 (for d=1: subtract k), not d*(k-1)"),
    (lambda h, k, s, p, d: (h + 2 * p - d * k) // s + 1,
     "a dilated kernel spans d*(k-1) + 1 pixels, not d*k: subtract d*(k-1) + 1"),
    (lambda h, k, s, p, d: (h + 2 * p - d * (k - 1) - 1) // s + 2,
     "the +1 counts the first window once: floor((h + 2*p - d*(k-1) - 1) / s) + 1"),
    (lambda h, k, s, p, d: h + 2 * p - _span(k, d) + 1, "the stride is missing: divide by s"),
]


def _size_configs(hidden: bool) -> list[tuple[int, int, int, int, int]]:
    """(h, k, s, p, d): DCGAN's layers, cases that separate floor from round, dilation, random ones."""
    fixed = [
        (64, 4, 2, 1, 1),  # DCGAN discriminator layer: 64 -> 32
        (4, 4, 1, 0, 1),  # D's last layer: 4 -> 1
        (32, 3, 1, 1, 1),  # "same" convolution
        (6, 4, 3, 0, 1),  # 2/3 of a step left over: floor and round differ
        (9, 2, 2, 0, 1),  # 3.5 steps: floor and round differ
        (10, 3, 1, 0, 2),  # dilation 2: the kernel spans 5 pixels
        (7, 3, 2, 2, 3),  # dilation, stride and padding together
    ]
    out = list(fixed)
    g, i = seeded(1), 0
    while len(out) < (len(fixed) + (300 if hidden else 30)):
        if hidden:  # each hidden configuration from the instructor's secret: no table can hold them
            g, i = hidden_generator(1, "conv_output_size", i), i + 1
        h, k, s, p, d = (int(torch.randint(lo, hi, (1,), generator=g))
                         for lo, hi in ((1, 80), (1, 8), (1, 5), (0, 4), (1, 4)))
        if h + 2 * p >= d * (k - 1) + 1:  # the kernel must fit at least once
            out.append((h, k, s, p, d))
    return out


def _size_cases(hidden: bool) -> dict[str, Any]:
    return {"configs": _size_configs(hidden), "default": (64, 4, 2, 1)}


class SizeRuns(TypedDict):
    """conv_output_size on every configuration, and called without d (is d=1 the default?)."""

    results: list[Outcome]  #: one per configuration, in the cases' order
    default: Outcome  #: ``conv_output_size(64, 4, 2, 1)``


def _probe_conv_output_size(fn: Callable[..., Any], cases: dict[str, Any]) -> SizeRuns:
    return {"results": probe_sizes(fn, "conv_output_size", cases["configs"]),
            "default": probe_sizes(fn, "conv_output_size", [cases["default"]])[0]}


def _judge_conv_output_size(cases: dict[str, Any], data: SizeRuns) -> str:
    """``fn(h, k, s, p, d=1)`` must equal nn.Conv2d's output size on every configuration."""
    configs = [tuple(c) for c in cases["configs"]]
    judge_size_formula(data["results"], "conv_output_size", ("h", "k", "s", "p", "d"), configs, _reference_size,
                       "nn.Conv2d", _SIZE_MISTAKES, "floor((h + 2*p - d*(k-1) - 1) / s) + 1")
    # d=1 must be the default: D and G only ever use undilated kernels
    try:
        got = unwrap(data["default"])
    except CheckFailure as err:
        fail(f"{err} Is d=1 the default? conv_output_size(64, 4, 2, 1) must work.")
    expect(type(got) is int and got == 32,
           f"conv_output_size(64, 4, 2, 1) returned {got!r}, expected 32: is d=1 the default?")
    return f"conv_output_size matches nn.Conv2d on {len(configs)} configurations."


check_conv_output_size = exercise("conv_output_size", _probe_conv_output_size, _judge_conv_output_size, _size_cases)


# ---------------------------------------------------------------------------------------------
# conv2d_scratch

CONV_INSTEAD = (
    "Build it from F.pad / F.unfold (or slicing) and a matrix product or torch.einsum instead."
)


def _conv_cases(hidden: bool) -> list[dict[str, Any]]:
    """Plain inputs: x, w, b (or None), stride, padding, drawn from fixed seeds."""
    shapes = [
        ((2, 3, 8, 8), (5, 3, 4, 4), True, 2, 1),  # a DCGAN discriminator layer
        ((1, 2, 7, 7), (4, 2, 3, 3), True, 1, 0),  # no padding, stride 1
        ((2, 3, 9, 7), (2, 3, 3, 3), False, 2, 1),  # H != W, no bias
        ((1, 1, 6, 6), (1, 1, 4, 4), False, 1, 0),  # asymmetric kernel values show a flip
    ]
    if hidden:
        shapes += [
            ((3, 4, 11, 13), (6, 4, 5, 5), True, 3, 2),
            ((2, 8, 16, 16), (16, 8, 4, 4), True, 2, 1),
            ((1, 3, 5, 5), (2, 3, 1, 1), True, 1, 0),  # 1x1 convolution
            ((2, 2, 4, 4), (3, 2, 4, 4), True, 1, 0),  # one output pixel per image
            ((1, 3, 10, 6), (4, 3, 3, 3), False, 2, 2),
        ]
    cases = []
    for i, (xs, ws, with_bias, stride, padding) in enumerate(shapes):
        if i < 4:  # the visible cases: fixed seeds
            x, w, b = randn(*xs, seed=10 + i), randn(*ws, seed=20 + i), randn(ws[0], seed=30 + i)
        else:  # hidden: the values from the instructor's secret
            g = hidden_generator(1, "conv2d_scratch", i)
            x, w, b = torch.randn(xs, generator=g), torch.randn(ws, generator=g), torch.randn(ws[0], generator=g)
        cases.append({"x": x, "w": w, "b": b if with_bias else None, "stride": stride, "padding": padding})
    return cases


def _probe_conv2d_scratch(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[TensorFnRun]:
    """Run the student's convolution on every case with every built-in convolution refused
    (F.unfold / F.fold stay allowed: im2col is the construction the lesson teaches)."""
    return probe_tensor_fn(fn, "conv2d_scratch", cases, ("x", "w", "b"), refuse=[CONVOLUTION],
                           instead=CONV_INSTEAD)


def _conv_shape_hint(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, got: tuple) -> str:
    """Name the mistake that produces an output of shape ``got``."""

    def shape(s: int, p: int) -> tuple[int, ...]:
        return tuple(F.conv2d(x.to("meta"), w.to("meta"), stride=s, padding=p).shape)

    if len(got) != 4:
        return "the output is 4-D: (N, C_out, H_out, W_out)"
    if got[1] != w.shape[0] and got[2:] == shape(stride, padding)[2:]:
        return "the output has one channel per filter: C_out = w.shape[0]"
    for p in sorted({padding - 1, padding + 1, 0, 2 * padding} - {padding}):
        if p >= 0 and got == shape(stride, p):
            return (f"this is the output for padding={p}: add exactly `padding` zeros on every side, "
                    "e.g. F.pad(x, (padding, padding, padding, padding))")
    if stride != 1 and got == shape(1, padding):
        return "the stride is ignored: the window moves `stride` pixels at a time"
    return "H_out = (H + 2*padding - k) // stride + 1, and the same for W"


@judge_only
def _conv_value_hint(out: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                     stride: int, padding: int) -> str:
    """Name the mistake whose result matches the student's values."""

    def conv(x: torch.Tensor = x, w: torch.Tensor = w, b: torch.Tensor | None = b) -> Callable[[], torch.Tensor]:
        return lambda: F.conv2d(x, w, b, stride=stride, padding=padding)

    swapped = "the kernel's rows and columns are swapped"
    C_out, k = w.shape[0], w.shape[-1]
    candidates: list[tuple[str | None, Any]] = [
        ("the kernel is flipped: this is the textbook convolution, but nn.Conv2d computes a "
         "cross-correlation (out = sum of x_window * w, no flip)", conv(w=w.flip(-1, -2))),
    ]
    if b is not None:
        candidates += [("the bias is missing: add b[c_out] to every pixel of output channel c_out", conv(b=None)),
                       ("the bias is added twice", conv(b=2 * b))]
    candidates.append((swapped, conv(w=w.transpose(-1, -2))))
    if x.shape[-1] == x.shape[-2]:
        candidates.append((swapped, lambda: F.conv2d(x.transpose(-1, -2), w, b, stride=stride,
                                                     padding=padding).transpose(-1, -2)))
    candidates.append(("the flattened filters are laid out in the wrong order: w.reshape(C_out, -1) already has "
                       "F.unfold's order (channel, then kernel row, then column); don't transpose it",
                       conv(w=w.reshape(-1, C_out).t().reshape(w.shape))))
    if k > 1:
        candidates.append(("the flattened filter order does not match F.unfold's, which is channel-major: "
                           "use w.reshape(C_out, -1) as it is", conv(w=w.permute(0, 2, 3, 1).reshape(w.shape))))
    return nearest_mistake(out, candidates, rtol=1e-4, atol=1e-4) or (
        "check how windows are laid out: F.unfold returns (N, C_in*k*k, L) with channel-major "
        "order, matching w.reshape(C_out, -1)")


def _judge_conv2d_scratch(cases: list[dict[str, Any]], data: list[TensorFnRun]) -> str:
    """``fn(x, w, b, stride, padding)`` must equal F.conv2d, computed here, on every case."""
    for case, result in zip(cases, data, strict=True):
        x, w, b, stride, padding = case["x"], case["w"], case["b"], case["stride"], case["padding"]
        what = f"conv2d_scratch({inputs_text(case)})"
        if "error" in result["out"]:
            err = str(result["out"]["error"])
            hint = tensor_error_hint(err, "H_out = (H + 2*padding - k) // stride + 1 (and the same for W)")
            fail((err.rstrip(".") + f" ({what})." + hint) if hint else err)
        out = unwrap(result["out"])
        expected = F.conv2d(x, w, b, stride=stride, padding=padding)
        out = expect_plain_tensor(out, what)
        if out.shape != expected.shape:
            expect_shape(out, expected.shape, what, hint=_conv_shape_hint(x, w, stride, padding, tuple(out.shape)))
        judge_inputs_untouched(case, result["inputs_after"], ("x", "w", "b"), what,
                               "compute new tensors instead (F.pad returns a new, padded tensor).")
        # float32 sums taken in another order (unfold + matmul vs the conv kernel) differ by ~1e-6
        # relative; 1e-4 leaves a wide margin while every real mistake is off by O(1).
        if not close(out, expected, rtol=1e-4, atol=1e-4):
            expect_close(out, expected, what, rtol=1e-4, atol=1e-4,
                         hint=_conv_value_hint(out, x, w, b, stride, padding))
    return f"conv2d_scratch equals F.conv2d on {len(cases)} inputs without calling it."


check_conv2d_scratch = exercise("conv2d_scratch", _probe_conv2d_scratch, _judge_conv2d_scratch, _conv_cases)


# ---------------------------------------------------------------------------------------------
# blocks (shared with lesson 02): the probe builds the block, sets its parameters to seeded values
# and runs it; the judge inspects the description and compares with dcgan_ref's block.

def _leaky_hint(m: Layer) -> str:
    if m.isa(nn.LeakyReLU):
        return (f"its negative_slope is {m.attrs.get('negative_slope')}; DCGAN's discriminator uses 0.2 "
                "(PyTorch's default is 0.01).")
    if m.isa(nn.ReLU):
        return ("ReLU zeroes every negative input, so no gradient flows back through it; "
                "D uses nn.LeakyReLU(0.2) so G always gets a gradient.")
    return "the discriminator's hidden layers use nn.LeakyReLU(0.2)."


def _down_cases(hidden: bool) -> list[dict[str, Any]]:
    """(in_ch, out_ch), keyword arguments, the input x and the parameter seed of each configuration."""
    configs = [((3, 8), {}, (2, 3, 16, 16)), ((3, 8), {"batchnorm": False}, (2, 3, 16, 16))]
    if hidden:
        configs += [((16, 32), {}, (4, 16, 32, 32)), ((5, 7), {}, (3, 5, 8, 8)),
                    ((8, 4), {"batchnorm": True}, (2, 8, 4, 4)), ((6, 2), {"batchnorm": False}, (2, 6, 10, 10))]
    return [{"args": list(args), "kwargs": kwargs, **_block_values(1, "down_block", i, xs, 40, 7)}
            for i, (args, kwargs, xs) in enumerate(configs)]


def _block_values(lesson: int, name: str, i: int, xs: tuple[int, ...], x_seed: int, p_seed: int) -> dict[str, Any]:
    """x and the parameter seed of block configuration ``i``: fixed for the two visible ones, from the
    instructor's secret for the hidden ones."""
    if i < 2:
        return {"x": randn(*xs, seed=x_seed + i), "seed": p_seed + i}
    g = hidden_generator(lesson, name, i)
    return {"x": torch.randn(xs, generator=g), "seed": int(torch.randint(0, 2**62, (1,), generator=g))}


def _probe_down_block(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[BlockRun]:
    """Build, describe and run the student's block for every configuration."""
    return probe_blocks(fn, "down_block", cases)


def _judge_down_block(cases: list[dict[str, Any]], data: list[BlockRun]) -> str:
    """Conv 4x4/2/1 without bias, BatchNorm2d (if batchnorm), LeakyReLU(0.2); outputs equal
    dcgan_ref.models.down_block's with the same parameters."""
    from dcgan_ref.models import down_block as ref_block

    for config, result in zip(cases, data, strict=True):
        in_ch, out_ch = config["args"]
        kwargs = config["kwargs"]
        what = block_call_text("down_block", config)
        layers = judge_built_block(result, what)
        pattern = pattern_text(layers)
        pools = [m for m in layers if m.isa(*POOLING)]
        if pools:
            fail(f"{what} has layers {pattern}: DCGAN replaces pooling with a strided convolution, "
                 f"so remove the {pools[0].type_name} and give the Conv2d stride=2.")
        convs = [m for m in layers if m.isa(nn.Conv2d)]
        expect(len(convs) == 1, f"{what} has layers {pattern}: expected exactly one nn.Conv2d.")
        conv = convs[0]
        channels = (conv.attrs.get("in_channels"), conv.attrs.get("out_channels"))
        expect(channels == (in_ch, out_ch),
               f"{what}: the Conv2d maps {channels[0]} -> {channels[1]} channels, expected {in_ch} -> {out_ch}.")
        settings = (conv.attrs.get("kernel_size"), conv.attrs.get("stride"), conv.attrs.get("padding"))
        expect(settings == ((4, 4), (2, 2), (1, 1)) and conv.attrs.get("dilation") == (1, 1),
               f"{what}: the Conv2d has kernel_size={settings[0]}, stride={settings[1]}, "
               f"padding={settings[2]}, expected 4, 2, 1: a 4x4 kernel at stride 2 with padding 1 "
               "halves H and W exactly.")
        expect(conv.params.get("bias") is None,
               f"{what}: the Conv2d has a bias; create it with bias=False. "
               + ("The BatchNorm right after it subtracts each channel's mean, which cancels any bias."
                  if kwargs.get("batchnorm", True) else "DCGAN's convolutions carry no bias."))
        check_norm_and_order(layers, nn.Conv2d, kwargs.get("batchnorm", True), out_ch,
                             lambda m: m.isa(nn.LeakyReLU) and m.attrs.get("negative_slope") == 0.2,
                             "nn.LeakyReLU(0.2)", _leaky_hint, what, ran=result.get("ran"))
        compare_with_reference(result, ref_block(in_ch, out_ch, **kwargs), config, what)
    return f"down_block matches dcgan_ref.models.down_block in {len(cases)} configurations."


check_down_block = exercise("down_block", _probe_down_block, _judge_down_block, _down_cases)
