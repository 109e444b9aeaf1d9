"""Checks for lesson 01, strided convolution: output size, a convolution from scratch, D's block.

Each exercise is cases -> probe -> judge (``_core.exercise``). The probes run the student's code
(built-in convolutions refused at the dispatcher where the exercise re-implements one, dcgan_ref
refused everywhere) and return plain data; the judges compute ``F.conv2d`` / ``nn.Conv2d`` or
``dcgan_ref.models.down_block`` on the same inputs and, when the answer is wrong, recompute the
reference with the usual mistake built in (padding off by one, flipped kernel, no bias, ...) to
name the mistake whose result matches. The block helpers (``probe_blocks``,
``check_norm_and_order``, ``compare_with_reference``) are shared with lesson 02.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks._core import (
    CheckFailure,
    Layer,
    attempt,
    call,
    describe_module,
    exercise,
    expect,
    expect_close,
    expect_shape,
    fail,
    leaf_layers,
    randn,
    seeded,
    unwrap,
)
from autograder.checks._guard import ANY_TENSOR_OP, CONVOLUTION
from autograder.checks._plain import to_plain, type_name

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
    return [{"x": randn(*xs, seed=10 + i), "w": randn(*ws, seed=20 + i),
             "b": randn(ws[0], seed=30 + i) if with_bias else None, "stride": stride, "padding": padding}
            for i, (xs, ws, with_bias, stride, padding) in enumerate(shapes)]


def matches(out: Any, expected: torch.Tensor, *, rtol: float, atol: float) -> bool:
    """Same shape and values within ``atol + rtol * |expected|`` (expect_close's criterion)."""
    if type(out) is not torch.Tensor or out.shape != expected.shape or out.dtype.is_complex:
        return False
    a, e = out.detach().to("cpu", torch.float64), expected.detach().to("cpu", torch.float64)
    return bool(((a - e).abs() <= atol + rtol * e.abs()).all())


def expect_plain_tensor(value: Any, what: str) -> torch.Tensor:
    """Judge side: fail unless ``value`` is exactly a ``torch.Tensor`` (a numpy array, a list: named)."""
    if type(value) is not torch.Tensor:
        fail(f"{what} returned a {type_name(value)}, expected a torch.Tensor.")
    return value


def inputs_text(case: dict[str, Any], names: tuple[str, ...] = ("x", "w", "b")) -> str:
    """'x (2, 3, 8, 8), w (5, 3, 4, 4), b (5,), stride=2, padding=1' for a message."""
    parts = [f"{n} {tuple(case[n].shape)}" if case.get(n) is not None else f"{n} None" for n in names]
    return ", ".join(parts + [f"stride={case['stride']}", f"padding={case['padding']}"])


def probe_tensor_fn(fn: Callable[..., Any], name: str, cases: list[dict[str, Any]], arg_names: tuple[str, ...],
                    **call_kwargs: Any) -> list[dict[str, Any]]:
    """Probe side: ``fn(*case[arg_names], stride, padding)`` on fresh copies; the outcome and the
    inputs as the call left them (so the judge can see an in-place change)."""
    out = []
    for case in cases:
        args = [None if case[n] is None else case[n].clone() for n in arg_names]
        outcome = attempt(fn, *args, case["stride"], case["padding"], what=name, **call_kwargs)
        out.append({"out": outcome, "inputs_after": args})
    return out


def tensor_error_hint(message: str, size_formula: str) -> str:
    """A hint for the errors the usual slips raise in tensor code (no bias, a wrong output size)."""
    if "calls" in message and "re-implements" in message:
        return ""
    if "NoneType" in message:
        return " Hint: b can be None (a layer without bias): add the bias only when b is not None."
    if "invalid for input of size" in message:
        return f" Hint: the output size is off, so the reshape cannot work: {size_formula}."
    return ""


def judge_inputs_untouched(case: dict[str, Any], after: list[Any], arg_names: tuple[str, ...], what: str,
                           hint: str) -> None:
    """Judge side: every tensor argument must come back from the call unchanged."""
    for n, a in zip(arg_names, after, strict=True):
        if case[n] is not None and not (type(a) is torch.Tensor and torch.equal(a, case[n])):
            fail(f"{what} changed its input {n} in place: {hint}")


def _probe_conv2d_scratch(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
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


def _conv_value_hint(out: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                     stride: int, padding: int) -> str:
    """Name the mistake whose result matches the student's values."""

    def close(ref: torch.Tensor) -> bool:
        return matches(out, ref, rtol=1e-4, atol=1e-4)

    if close(F.conv2d(x, w.flip(-1, -2), b, stride=stride, padding=padding)):
        return ("the kernel is flipped: this is the textbook convolution, but nn.Conv2d computes a "
                "cross-correlation (out = sum of x_window * w, no flip)")
    if b is not None and close(F.conv2d(x, w, None, stride=stride, padding=padding)):
        return "the bias is missing: add b[c_out] to every pixel of output channel c_out"
    if b is not None and close(F.conv2d(x, w, 2 * b, stride=stride, padding=padding)):
        return "the bias is added twice"
    if close(F.conv2d(x, w.transpose(-1, -2), b, stride=stride, padding=padding)):
        return "the kernel's rows and columns are swapped"
    if x.shape[-1] == x.shape[-2] and close(F.conv2d(x.transpose(-1, -2), w, b, stride=stride,
                                                    padding=padding).transpose(-1, -2)):
        return "the kernel's rows and columns are swapped"
    C_out, k = w.shape[0], w.shape[-1]
    scrambled = F.conv2d(x, w.reshape(-1, C_out).t().reshape(w.shape), b, stride=stride, padding=padding)
    if close(scrambled):
        return ("the flattened filters are laid out in the wrong order: w.reshape(C_out, -1) already has "
                "F.unfold's order (channel, then kernel row, then column); don't transpose it")
    if k > 1 and close(F.conv2d(x, w.permute(0, 2, 3, 1).reshape(w.shape), b, stride=stride, padding=padding)):
        return ("the flattened filter order does not match F.unfold's, which is channel-major: "
                "use w.reshape(C_out, -1) as it is")
    return ("check how windows are laid out: F.unfold returns (N, C_in*k*k, L) with channel-major "
            "order, matching w.reshape(C_out, -1)")


def _judge_conv2d_scratch(cases: list[dict[str, Any]], data: list[dict[str, Any]]) -> str:
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
        if not matches(out, expected, rtol=1e-4, atol=1e-4):
            expect_close(out, expected, what, rtol=1e-4, atol=1e-4,
                         hint=_conv_value_hint(out, x, w, b, stride, padding))
    return f"conv2d_scratch equals F.conv2d on {len(cases)} inputs without calling it."


check_conv2d_scratch = exercise("conv2d_scratch", _probe_conv2d_scratch, _judge_conv2d_scratch, _conv_cases)


# ---------------------------------------------------------------------------------------------
# blocks (shared with lesson 02): the probe builds the block, sets its parameters to seeded values
# and runs it; the judge inspects the description and compares with dcgan_ref's block.

POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d,
           nn.FractionalMaxPool2d)
IGNORED = (nn.Identity, nn.Dropout, nn.Dropout2d)


def block_parameters(shapes: list[tuple[int, ...]], seed: int) -> list[torch.Tensor]:
    """Seeded parameter values for a block with these parameter shapes (both sides draw the same):
    random, so a swapped weight and bias would show, and BatchNorm scales around 1."""
    g = seeded(seed)
    return [torch.randn(s, generator=g) * 0.5 + (1.0 if len(s) == 1 else 0.0) for s in shapes]


def block_call_text(name: str, config: dict[str, Any]) -> str:
    """'down_block(3, 8, batchnorm=False)'."""
    args = [str(a) for a in config["args"]] + [f"{k}={v}" for k, v in config["kwargs"].items()]
    return f"{name}({', '.join(args)})"


def _load_parameters(block: nn.Module, seed: int) -> None:
    params = list(block.parameters())
    with torch.no_grad():
        for p, v in zip(params, block_parameters([tuple(p.shape) for p in params], seed), strict=True):
            p.copy_(v)


def probe_blocks(fn: Callable[..., Any], name: str, configs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Probe side, for each config: build the block, describe it (after setting its parameters to
    the seeded values) and run it on x in train mode, then in eval mode."""
    results: list[dict[str, Any]] = []
    for config in configs:
        what = block_call_text(name, config)
        try:
            block = call(fn, *config["args"], what=what, **config["kwargs"])
        except CheckFailure as err:
            results.append({"built": {"error": str(err)}})
            continue
        if not isinstance(block, nn.Module):
            results.append({"built": {"value": {"returned": type_name(to_plain(block))}}})
            continue
        loaded = attempt(_load_parameters, block, config["seed"], what=f"{what} (setting its parameters)")
        entry: dict[str, Any] = {"built": {"value": {"returned": "module"}}, "loaded": loaded,
                                 "layers": describe_module(block), "outputs": {}}
        for mode in ("train", "eval"):
            block.train(mode == "train")
            with torch.no_grad():
                entry["outputs"][mode] = attempt(block, config["x"].clone(), what=f"{what} (forward, {mode} mode)")
        results.append(entry)
    return results


def pattern_text(layers: list[Layer]) -> str:
    """'[Conv2d, BatchNorm2d, LeakyReLU]'."""
    return "[" + ", ".join(m.type_name for m in layers) + "]"


def judge_built_block(result: dict[str, Any], what: str) -> list[Layer]:
    """Judge side: the block was built and is an nn.Module; its leaf layers (Identity/Dropout left out)."""
    built = unwrap(result["built"])
    if built.get("returned") != "module":
        fail(f"{what} returned {built.get('returned')}, expected an nn.Module "
             "(e.g. nn.Sequential(conv, norm, activation)).")
    return leaf_layers(result["layers"], ignore=IGNORED)


def check_norm_and_order(
    layers: list[Layer],
    conv_type: type,
    batchnorm: bool,
    out_ch: int,
    act_ok: Callable[[Layer], bool],
    act_name: str,
    act_hint: Callable[[Layer], str],
    what: str,
) -> None:
    """Exactly one ``conv_type``, one BatchNorm2d(out_ch) if ``batchnorm``, one activation, in that order."""
    pattern = pattern_text(layers)
    norms = [m for m in layers if m.isa(nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)]
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
        if not bn.isa(nn.BatchNorm2d):
            fail(f"{what} uses {bn.type_name}, expected nn.BatchNorm2d({out_ch}) "
                 "(normalises each channel over the batch and the pixels).")
        if bn.attrs.get("num_features") != out_ch:
            fail(f"{what}: BatchNorm2d has {bn.attrs.get('num_features')} features, expected out_ch = {out_ch} "
                 "(it normalises the convolution's output channels).")
        for key, default in (("eps", 1e-5), ("momentum", 0.1), ("affine", True), ("track_running_stats", True)):
            if bn.attrs.get(key) != default:
                fail(f"{what}: BatchNorm2d has {key}={bn.attrs.get(key)}, expected the default {default}: "
                     f"create it as nn.BatchNorm2d({out_ch}).")
    acts = [m for m in layers if not m.isa(conv_type, nn.modules.batchnorm._NormBase)]
    if not acts:
        fail(f"{what} has layers {pattern}: the activation is missing, "
             f"expected {act_name} as the last layer.")
    if len(acts) > 1:
        fail(f"{what} has layers {pattern}: expected a single activation, {act_name}.")
    if not act_ok(acts[0]):
        fail(f"{what} ends with {acts[0]!r}, expected {act_name}: {act_hint(acts[0])}")
    expected_order = [conv_type.__name__] + (["BatchNorm2d"] if batchnorm else []) + [acts[0].type_name]
    if [m.type_name for m in layers] != expected_order:
        fail(f"{what} has layers {pattern}, expected the order [{', '.join(expected_order)}]: convolution, "
             + ("then BatchNorm, " if batchnorm else "") + "then the activation.")


def compare_with_reference(result: dict[str, Any], ref: nn.Module, config: dict[str, Any], what: str) -> None:
    """Judge side: with the same seeded parameters, the block's outputs (train mode, then eval mode)
    must equal ``ref``'s on the same input."""
    ref_params = list(ref.parameters())
    shapes = [tuple(p.shape) for e in result["layers"] for p in e["params"].values() if p is not None]
    ref_shapes = [tuple(p.shape) for p in ref_params]
    expect(shapes == ref_shapes,
           f"{what} has parameters of shapes {shapes}, expected {ref_shapes} (as in dcgan_ref).")
    unwrap(result["loaded"])
    values = block_parameters(ref_shapes, config["seed"])
    described = [p for e in result["layers"] for p in e["params"].values() if p is not None]
    expect(all(torch.equal(d, v) for d, v in zip(described, values, strict=True)),
           f"{what}: its parameters did not keep the values the check set (are they recreated in forward?).")
    with torch.no_grad():
        for p, v in zip(ref_params, values, strict=True):
            p.copy_(v)
    x = config["x"]
    for mode in ("train", "eval"):
        ref.train(mode == "train")
        with torch.no_grad():
            expected = ref(x.clone())
        out = expect_plain_tensor(unwrap(result["outputs"][mode]), f"{what} (forward)")
        # same layers and parameters: only float32 summation order can differ (~1e-6)
        expect_close(out, expected, f"{what} output in {mode} mode on x {tuple(x.shape)}",
                     rtol=1e-4, atol=1e-5,
                     hint="with the same parameters the output should equal dcgan_ref's block; "
                          "check the layer settings")


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
    return [{"args": list(args), "kwargs": kwargs, "x": randn(*xs, seed=40 + i), "seed": 7 + i}
            for i, (args, kwargs, xs) in enumerate(configs)]


def _probe_down_block(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Build, describe and run the student's block for every configuration."""
    return probe_blocks(fn, "down_block", cases)


def _judge_down_block(cases: list[dict[str, Any]], data: list[dict[str, Any]]) -> str:
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
                             "nn.LeakyReLU(0.2)", _leaky_hint, what)
        compare_with_reference(result, ref_block(in_ch, out_ch, **kwargs), config, what)
    return f"down_block matches dcgan_ref.models.down_block in {len(cases)} configurations."


check_down_block = exercise("down_block", _probe_down_block, _judge_down_block, _down_cases)
