"""Checks for lesson 01, strided convolution: output size, a convolution from scratch, D's block.

Every check compares the student's object with ``torch.nn.functional.conv2d`` / ``nn.Conv2d`` or
``dcgan_ref.models.down_block``, computed here on inputs from fixed seeds. When the answer is
wrong, the check recomputes the reference with the usual mistake built in (padding off by one,
flipped kernel, no bias, ...) and names the mistake whose result matches the student's.
The block helpers (``layer_pattern``, ``compare_with_reference``) are shared with lesson 02.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks._core import (
    CheckFailure,
    attempt,
    call,
    exercise,
    unwrap,
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
from autograder.checks._guard import ANY_TENSOR_OP
from autograder.checks._plain import type_name

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
    g = seeded(101 if hidden else 1)
    out = list(fixed)
    while len(out) < (len(fixed) + (300 if hidden else 30)):
        h, k, s, p, d = (int(torch.randint(lo, hi, (1,), generator=g))
                         for lo, hi in ((1, 80), (1, 8), (1, 5), (0, 4), (1, 4)))
        if h + 2 * p >= d * (k - 1) + 1:  # the kernel must fit at least once
            out.append((h, k, s, p, d))
    return out


def probe_sizes(fn: Callable[..., Any], name: str, configs: list[tuple[int, ...]]) -> list[dict[str, Any]]:
    """Probe side: ``fn(*cfg)`` for every configuration, with no tensor operation allowed.

    A size formula is integer arithmetic: an answer that builds a layer and runs it on a dummy
    input to read the shape reaches a tensor operator and is refused.
    """
    return [attempt(fn, *cfg, what=name, refuse=[ANY_TENSOR_OP],
                    instead="Compute the size with the formula, in Python integer arithmetic.")
            for cfg in configs]


def judge_size_formula(
    outcomes: list[Any],
    name: str,
    arg_names: tuple[str, ...],
    configs: list[tuple[int, ...]],
    reference: Callable[..., int],
    builtin: str,
    mistakes: list[tuple[Callable[..., int], str]],
    formula: str,
) -> None:
    """Judge side: every outcome must be the int ``reference`` gives; on a wrong answer name the
    mistake that explains them all."""
    results: dict[tuple[int, ...], int] = {}
    first_wrong: tuple[tuple[int, ...], int] | None = None
    for cfg, outcome in zip(configs, outcomes, strict=True):
        expected = reference(*cfg)
        got = unwrap(outcome)
        call_text = f"{name}(" + ", ".join(f"{a}={v}" for a, v in zip(arg_names, cfg, strict=True)) + ")"
        if type(got) is not int:
            if type(got) is float and got == expected:
                fail(f"{call_text} returned the float {got!r}, expected the int {expected}: "
                     "use integer arithmetic (//) so the size is an int (layer sizes must be ints).")
            fail(f"{call_text} returned a {type_name(got)}, expected the int {expected}: "
                 "use integer arithmetic (//) and return a Python int.")
        results[cfg] = got
        if got != expected and first_wrong is None:
            first_wrong = (cfg, expected)
    if first_wrong is not None:
        cfg, expected = first_wrong
        hint = next((h for f, h in mistakes if all(f(*c) == g for c, g in results.items())),
                    f"the formula is {formula}")
        call_text = f"{name}(" + ", ".join(f"{a}={v}" for a, v in zip(arg_names, cfg, strict=True)) + ")"
        fail(f"{call_text} returned {results[cfg]}, {builtin} gives {expected}: {hint}.")


def _size_cases(hidden: bool) -> dict[str, Any]:
    return {"configs": _size_configs(hidden), "default": (64, 4, 2, 1)}


def _probe_conv_output_size(fn: Callable[..., Any], cases: dict[str, Any]) -> dict[str, Any]:
    return {"results": probe_sizes(fn, "conv_output_size", cases["configs"]),
            "default": probe_sizes(fn, "conv_output_size", [cases["default"]])[0]}


def _judge_conv_output_size(cases: dict[str, Any], data: dict[str, Any]) -> str:
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


def conv_builtins() -> dict[str, tuple[Any, str]]:
    """Every built-in that computes a convolution (forward or transposed), plus dcgan_ref's blocks."""
    import dcgan_ref.models as ref_models

    return {
        "F.conv2d": (F, "conv2d"),
        "torch.conv2d": (torch, "conv2d"),
        "nn.Conv2d.forward": (nn.Conv2d, "forward"),
        "nn.Conv2d._conv_forward": (nn.Conv2d, "_conv_forward"),
        "F.conv_transpose2d": (F, "conv_transpose2d"),
        "torch.conv_transpose2d": (torch, "conv_transpose2d"),
        "nn.ConvTranspose2d.forward": (nn.ConvTranspose2d, "forward"),
        "torch.convolution": (torch, "convolution"),
        "torch._convolution": (torch, "_convolution"),
        "F.conv1d": (F, "conv1d"),
        "F.conv3d": (F, "conv3d"),
        "dcgan_ref.models.down_block": (ref_models, "down_block"),
        "dcgan_ref.models.up_block": (ref_models, "up_block"),
    }


CONV_INSTEAD = (
    "Build it from F.pad / F.unfold (or slicing) and a matrix product or torch.einsum instead."
)


def _conv_cases(hidden: bool) -> list[tuple[tuple[int, ...], tuple[int, ...], bool, int, int]]:
    """(x shape, w shape, with bias, stride, padding)."""
    cases = [
        ((2, 3, 8, 8), (5, 3, 4, 4), True, 2, 1),  # a DCGAN discriminator layer
        ((1, 2, 7, 7), (4, 2, 3, 3), True, 1, 0),  # no padding, stride 1
        ((2, 3, 9, 7), (2, 3, 3, 3), False, 2, 1),  # H != W, no bias
        ((1, 1, 6, 6), (1, 1, 4, 4), False, 1, 0),  # asymmetric kernel values show a flip
    ]
    if hidden:
        cases += [
            ((3, 4, 11, 13), (6, 4, 5, 5), True, 3, 2),
            ((2, 8, 16, 16), (16, 8, 4, 4), True, 2, 1),
            ((1, 3, 5, 5), (2, 3, 1, 1), True, 1, 0),  # 1x1 convolution
            ((2, 2, 4, 4), (3, 2, 4, 4), True, 1, 0),  # one output pixel per image
            ((1, 3, 10, 6), (4, 3, 3, 3), False, 2, 2),
        ]
    return cases


def matches(out: torch.Tensor, expected: torch.Tensor, *, rtol: float, atol: float) -> bool:
    """Same shape and values within ``atol + rtol * |expected|`` (expect_close's criterion)."""
    if out.shape != expected.shape or out.dtype.is_complex:
        return False
    a, e = out.detach().to("cpu", torch.float64), expected.detach().to("cpu", torch.float64)
    return bool(((a - e).abs() <= atol + rtol * e.abs()).all())


def _conv_shape_hint(x: torch.Tensor, w: torch.Tensor, stride: int, padding: int, got: tuple) -> str:
    """Name the mistake that produces an output of shape ``got``."""

    def shape(s: int, p: int) -> tuple[int, ...]:
        return tuple(F.conv2d(x.to("meta"), w.to("meta"), stride=s, padding=p).shape)

    if len(got) != 4:
        return "the output is 4-D: (N, C_out, H_out, W_out)"
    if got[1] != w.shape[0] and got[2:] == shape(stride, padding)[2:]:
        return "the output has one channel per filter: C_out = w.shape[0]"
    for p in {padding - 1, padding + 1, 0, 2 * padding} - {padding}:
        if p >= 0 and got == shape(stride, p):
            return (f"this is the output for padding={p}: add exactly `padding` zeros on every side, "
                    "e.g. F.pad(x, (padding, padding, padding, padding))")
    if stride != 1 and got == shape(1, padding):
        return "the stride is ignored: the window moves `stride` pixels at a time"
    return "H_out = (H + 2*padding - k) // stride + 1, and the same for W"


def _conv_value_hint(fn_out: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                     stride: int, padding: int) -> str:
    """Name the mistake whose result matches the student's values."""

    def close(ref: torch.Tensor) -> bool:
        return matches(fn_out, ref, rtol=1e-4, atol=1e-4)

    if close(F.conv2d(x, w.flip(-1, -2), b, stride=stride, padding=padding)):
        return ("the kernel is flipped: this is the textbook convolution, but nn.Conv2d computes a "
                "cross-correlation (out = sum of x_window * w, no flip)")
    if b is not None and close(F.conv2d(x, w, None, stride=stride, padding=padding)):
        return "the bias is missing: add b[c_out] to every pixel of output channel c_out"
    if b is not None and close(F.conv2d(x, w, 2 * b, stride=stride, padding=padding)):
        return "the bias is added twice"
    if close(F.conv2d(x, w.transpose(-1, -2), b, stride=stride, padding=padding)):
        return "the kernel's rows and columns are swapped"
    return ("check how windows are laid out: F.unfold returns (N, C_in*k*k, L) with channel-major "
            "order, matching w.reshape(C_out, -1)")


def check_conv2d_scratch(fn: Callable[..., Any], hidden: bool = False) -> None:
    """``fn(x, w, b, stride, padding)`` must equal F.conv2d without calling any built-in convolution."""
    cases = _conv_cases(hidden)
    for i, (xs, ws, with_bias, stride, padding) in enumerate(cases):
        x = randn(*xs, seed=10 + i)
        w = randn(*ws, seed=20 + i)
        b = randn(ws[0], seed=30 + i) if with_bias else None
        expected = F.conv2d(x, w, b, stride=stride, padding=padding)  # before the built-ins are patched
        x_before = x.clone()
        b_text = f"({ws[0]},)" if with_bias else "None"
        args = f"x {xs}, w {ws}, b {b_text}, stride={stride}, padding={padding}"
        with forbid(conv_builtins(), "conv2d_scratch", CONV_INSTEAD, student_globals(fn)):
            out = call(fn, x, w, b, stride, padding, what="conv2d_scratch")
        what = f"conv2d_scratch({args})"
        out = expect_tensor(out, what)
        if out.shape != expected.shape:
            expect_shape(out, expected.shape, what, hint=_conv_shape_hint(x, w, stride, padding, tuple(out.shape)))
        expect(torch.equal(x, x_before), f"{what} changed its input x in place: pad a copy (F.pad) instead.")
        # float32 sums taken in another order (unfold + matmul vs the conv kernel) differ by ~1e-6
        # relative; 1e-4 leaves a wide margin while every real mistake is off by O(1).
        if not matches(out, expected, rtol=1e-4, atol=1e-4):
            expect_close(out, expected, what, rtol=1e-4, atol=1e-4,
                         hint=_conv_value_hint(out, x, w, b, stride, padding))
    passed(f"conv2d_scratch equals F.conv2d on {len(cases)} inputs without calling it"
           + (" (hidden tests)" if hidden else "") + ".")


# ---------------------------------------------------------------------------------------------
# blocks (shared with lesson 02)

POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d,
           nn.FractionalMaxPool2d)
IGNORED = (nn.Identity, nn.Dropout, nn.Dropout2d)


def build_block(fn: Callable[..., nn.Module], args: tuple, kwargs: dict, what: str) -> nn.Module:
    """Call the student's block factory and make sure it returned a module."""
    block = call(fn, *args, what=what, **kwargs)
    if not isinstance(block, nn.Module):
        fail(f"{what} returned {type(block).__name__}, expected an nn.Module "
             "(e.g. nn.Sequential(conv, norm, activation)).")
    return block


def layer_pattern(block: nn.Module) -> list[nn.Module]:
    """The leaf layers of ``block`` in registration order (Identity/Dropout left out)."""
    return [m for m in block.modules() if not list(m.children()) and not isinstance(m, IGNORED)]


def describe(layers: list[nn.Module]) -> str:
    return "[" + ", ".join(type(m).__name__ for m in layers) + "]"


def check_norm_and_order(
    layers: list[nn.Module],
    conv_type: type,
    batchnorm: bool,
    out_ch: int,
    act_ok: Callable[[nn.Module], bool],
    act_name: str,
    act_hint: Callable[[nn.Module], str],
    what: str,
) -> None:
    """Exactly one ``conv_type``, one BatchNorm2d(out_ch) if ``batchnorm``, one activation, in that order."""
    pattern = describe(layers)
    norms = [m for m in layers if isinstance(m, nn.modules.batchnorm._NormBase)
             or isinstance(m, (nn.GroupNorm, nn.LayerNorm))]
    if batchnorm and not norms:
        fail(f"{what} has layers {pattern}: the BatchNorm2d is missing. Add nn.BatchNorm2d({out_ch}) "
             "between the convolution and the activation.")
    if not batchnorm and norms:
        fail(f"{what} has layers {pattern}: with batchnorm=False there must be no normalisation layer "
             "(DCGAN leaves BatchNorm off D's input layer and G's output layer).")
    if len(norms) > 1:
        fail(f"{what} has layers {pattern}: {len(norms)} normalisation layers, expected one BatchNorm2d.")
    if norms:
        bn = norms[0]
        if not isinstance(bn, nn.BatchNorm2d):
            fail(f"{what} uses {type(bn).__name__}, expected nn.BatchNorm2d({out_ch}) "
                 "(normalises each channel over the batch and the pixels).")
        if bn.num_features != out_ch:
            fail(f"{what}: BatchNorm2d has {bn.num_features} features, expected out_ch = {out_ch} "
                 "(it normalises the convolution's output channels).")
    acts = [m for m in layers if not isinstance(m, (conv_type, nn.modules.batchnorm._NormBase))]
    if not acts:
        fail(f"{what} has layers {pattern}: the activation is missing, "
             f"expected {act_name} as the last layer.")
    if len(acts) > 1:
        fail(f"{what} has layers {pattern}: expected a single activation, {act_name}.")
    if not act_ok(acts[0]):
        fail(f"{what} ends with {acts[0]!r}, expected {act_name}: {act_hint(acts[0])}")
    order = [type(m) for m in layers]
    expected_order = [conv_type] + ([nn.BatchNorm2d] if batchnorm else []) + [type(acts[0])]
    if order != expected_order:
        names = ", ".join(t.__name__ for t in expected_order)
        fail(f"{what} has layers {pattern}, expected the order [{names}]: convolution, "
             + ("then BatchNorm, " if batchnorm else "") + "then the activation.")


def compare_with_reference(block: nn.Module, ref: nn.Module, x: torch.Tensor, what: str) -> None:
    """Copy ``ref``'s (randomised) parameters and buffers into ``block`` by order; outputs must agree."""
    g = seeded(7)
    with torch.no_grad():
        for p in ref.parameters():  # random values so a swapped weight/bias would show
            p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p.dim() == 1 else 0.0))
    ps, rs = list(block.parameters()), list(ref.parameters())
    shapes = [tuple(p.shape) for p in ps]
    ref_shapes = [tuple(p.shape) for p in rs]
    expect(shapes == ref_shapes,
           f"{what} has parameters of shapes {shapes}, expected {ref_shapes} (as in dcgan_ref).")
    with torch.no_grad():
        for p, r in zip(ps, rs, strict=True):
            p.copy_(r)
        for bb, rb in zip(block.buffers(), ref.buffers(), strict=False):
            if bb.shape == rb.shape:
                bb.copy_(rb)
    for mode in ("train", "eval"):
        block.train(mode == "train")
        ref.train(mode == "train")
        with torch.no_grad():
            expected = ref(x.clone())
            out = call(block, x.clone(), what=f"{what} (forward)")
        # same layers and parameters: only float32 summation order can differ (~1e-6)
        expect_close(out, expected, f"{what} output in {mode} mode on x {tuple(x.shape)}",
                     rtol=1e-4, atol=1e-5,
                     hint="with the same parameters the output should equal dcgan_ref's block; "
                          "check the layer settings")


def _leaky_hint(m: nn.Module) -> str:
    if isinstance(m, nn.LeakyReLU):
        return (f"its negative_slope is {m.negative_slope}; DCGAN's discriminator uses 0.2 "
                "(PyTorch's default is 0.01).")
    if isinstance(m, nn.ReLU):
        return ("ReLU zeroes every negative input, so no gradient flows back through it; "
                "D uses nn.LeakyReLU(0.2) so G always gets a gradient.")
    return "the discriminator's hidden layers use nn.LeakyReLU(0.2)."


def check_down_block(fn: Callable[..., nn.Module], hidden: bool = False) -> None:
    """``fn(in_ch, out_ch, batchnorm=True)``: Conv 4x4/2/1 without bias, BatchNorm, LeakyReLU(0.2)."""
    from dcgan_ref.models import down_block as ref_block

    cases = [((3, 8), {}, (2, 3, 16, 16)), ((3, 8), {"batchnorm": False}, (2, 3, 16, 16))]
    if hidden:
        cases += [((16, 32), {}, (4, 16, 32, 32)), ((5, 7), {}, (3, 5, 8, 8)),
                  ((8, 4), {"batchnorm": True}, (2, 8, 4, 4)), ((6, 2), {"batchnorm": False}, (2, 6, 10, 10))]
    for i, ((in_ch, out_ch), kwargs, xshape) in enumerate(cases):
        args = ", ".join([str(in_ch), str(out_ch)] + [f"{k}={v}" for k, v in kwargs.items()])
        what = f"down_block({args})"
        block = build_block(fn, (in_ch, out_ch), kwargs, what)
        layers = layer_pattern(block)
        pattern = describe(layers)
        pools = [m for m in layers if isinstance(m, POOLING)]
        if pools:
            fail(f"{what} has layers {pattern}: DCGAN replaces pooling with a strided convolution, "
                 f"so remove the {type(pools[0]).__name__} and give the Conv2d stride=2.")
        convs = [m for m in layers if isinstance(m, nn.Conv2d)]
        expect(len(convs) == 1, f"{what} has layers {pattern}: expected exactly one nn.Conv2d.")
        conv = convs[0]
        expect((conv.in_channels, conv.out_channels) == (in_ch, out_ch),
               f"{what}: the Conv2d maps {conv.in_channels} -> {conv.out_channels} channels, "
               f"expected {in_ch} -> {out_ch}.")
        settings = (tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.padding))
        expect(settings == ((4, 4), (2, 2), (1, 1)),
               f"{what}: the Conv2d has kernel_size={conv.kernel_size}, stride={conv.stride}, "
               f"padding={conv.padding}, expected 4, 2, 1: a 4x4 kernel at stride 2 with padding 1 "
               "halves H and W exactly.")
        expect(conv.bias is None,
               f"{what}: the Conv2d has a bias; create it with bias=False. "
               + ("The BatchNorm right after it subtracts each channel's mean, which cancels any bias."
                  if kwargs.get("batchnorm", True) else "DCGAN's convolutions carry no bias."))
        check_norm_and_order(layers, nn.Conv2d, kwargs.get("batchnorm", True), out_ch,
                             lambda m: isinstance(m, nn.LeakyReLU) and m.negative_slope == 0.2,
                             "nn.LeakyReLU(0.2)", _leaky_hint, what)
        x = randn(*xshape, seed=40 + i)
        ref = ref_block(in_ch, out_ch, **kwargs)
        compare_with_reference(block, ref, x, what)
    passed(f"down_block matches dcgan_ref.models.down_block in {len(cases)} configurations"
           + (" (hidden tests)" if hidden else "") + ".")
