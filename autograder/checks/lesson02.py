"""Checks for lesson 02, transposed convolution: output size, a transposed convolution from scratch,
G's upsampling block, the adjoint identity <conv(x), y> = <x, conv_transpose(y)> and the gradient
of a convolution.

Each exercise is cases -> probe -> judge (``_core.exercise``). The probes run the student's code and
return plain data; the judges compute ``F.conv_transpose2d`` / ``nn.ConvTranspose2d``,
``dcgan_ref.models.up_block`` or autograd on the same inputs and name the usual mistakes. Two
watches of this module's own work at the dispatcher beside ``_guard``'s families:
``RefuseTransposed`` refuses a *transposed* convolution while a forward one stays allowed (the
``transposed`` flag of ``aten.convolution`` is an argument, which an ``OpFamily`` cannot see), and
``Recorder`` keeps the intermediate tensors of the student's computation of the adjoint sides,
so that each side is checked against its own reference (the two sides are equal by the identity,
so their values alone cannot show that the transposed side was computed at all).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils._pytree import tree_leaves

from ._compare import POOLING, UPSAMPLING, close, close_number, judge_only, nearest_mistake
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
    Layer,
    Outcome,
    attempt,
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
from ._guard import CONVOLUTION, DelegationError, EagerDispatchMode, OpFamily
from ._plain import type_name

#: every operator run by the autograd engine (``.backward()``, ``torch.autograd.grad``, ``torch.func``'s
#: vjp/grad/jacrev): refused where the exercise is to compute a gradient, or a transposed convolution,
#: by hand (``torch.nn.grad.conv2d_input`` calls ``aten.convolution_backward`` directly: refused as a
#: convolution)
AUTOGRAD = OpFamily(
    "autograd (.backward() / torch.autograd.grad / torch.func)",
    lambda n: torch._C._current_graph_task_id() != -1,
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
     "the -1 is missing: h input pixels are h - 1 strides apart, so use (h - 1)*s, not h*s"),
    (lambda h, k, s, p, op: (h - 1) * s - p + k + op,
     "padding is cropped from BOTH sides: subtract 2*p"),
    (lambda h, k, s, p, op: (h - 1) * s + 2 * p + k + op,
     "in a transposed convolution padding REMOVES pixels: subtract 2*p"),
    (lambda h, k, s, p, op: (h - 1) * s - 2 * p + k - 1 + op,
     "off by one: the last stamp of the kernel covers k pixels, (h - 1)*s - 2*p + k + output_padding"),
    (lambda h, k, s, p, op: h * s - 2 * p + k - 1 + op,
     "h*s - 1 is not (h - 1)*s: the last input pixel stamps at (h - 1)*s and covers k pixels"),
    (lambda h, k, s, p, op: (h - 1) * s - 2 * p + k - op,
     "output_padding ADDS rows/columns at the end: + output_padding"),
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
    out = list(fixed)
    g, i = seeded(2), 0
    while len(out) < len(fixed) + (300 if hidden else 30):
        if hidden:  # each hidden configuration from the instructor's secret: no table can hold them
            g, i = hidden_generator(2, "conv_transpose_output_size", i), i + 1
        h, k, s, p = (int(torch.randint(lo, hi, (1,), generator=g)) for lo, hi in ((1, 40), (1, 8), (1, 5), (0, 4)))
        op = int(torch.randint(0, s, (1,), generator=g))  # output_padding must be smaller than the stride
        if (h - 1) * s - 2 * p + k + op >= 1:
            out.append((h, k, s, p, op))
    return out


def _size_cases(hidden: bool) -> dict[str, Any]:
    return {"configs": _size_configs(hidden), "default": (4, 4, 2, 1)}


class SizeRuns(TypedDict):
    """conv_transpose_output_size on every configuration, and called without output_padding (the default)."""

    results: list[Outcome]  #: one per configuration, in the cases' order
    default: Outcome  #: ``conv_transpose_output_size(4, 4, 2, 1)``


def _probe_conv_transpose_output_size(fn: Callable[..., Any], cases: dict[str, Any]) -> SizeRuns:
    """The student's formula on every configuration, with every tensor operation refused."""
    name = "conv_transpose_output_size"
    return {"results": probe_sizes(fn, name, cases["configs"]), "default": probe_sizes(fn, name, [cases["default"]])[0]}


def _judge_conv_transpose_output_size(cases: dict[str, Any], data: SizeRuns) -> str:
    """``fn(h, k, s, p, output_padding=0)`` must equal nn.ConvTranspose2d's output size."""
    configs = [tuple(c) for c in cases["configs"]]
    judge_size_formula(data["results"], "conv_transpose_output_size", ("h", "k", "s", "p", "output_padding"),
                       configs, _reference_size, "nn.ConvTranspose2d", _SIZE_MISTAKES,
                       "(h - 1)*s - 2*p + k + output_padding")
    outcome = data["default"]
    if "error" in outcome:
        fail(f"{outcome['error']} Is output_padding=0 the default? conv_transpose_output_size(4, 4, 2, 1) must work.")
    got = outcome.get("value")
    expect(type(got) is int and got == 8, f"conv_transpose_output_size(4, 4, 2, 1) returned {got!r}, expected 8: "
           "is output_padding=0 the default?")
    return f"conv_transpose_output_size matches nn.ConvTranspose2d on {len(configs)} configurations."


check_conv_transpose_output_size = exercise("conv_transpose_output_size", _probe_conv_transpose_output_size,
                                            _judge_conv_transpose_output_size, _size_cases)


# ---------------------------------------------------------------------------------------------
# conv_transpose2d_scratch

TRANSPOSED_LABEL = ("a built-in transposed convolution (F.conv_transpose2d / nn.ConvTranspose2d / "
                    "torch.nn.grad.conv2d_input / the gradient of a convolution: aten.convolution with "
                    "transposed=True, aten.convolution_backward)")


def is_transposed_convolution(name: str, args: tuple, kwargs: dict) -> bool:
    """Whether ATen operator ``name`` called with these arguments computes a transposed convolution
    (or a convolution's backward, which is one)."""
    if "conv" not in name or "convert" in name:
        return False
    if "transpose" in name or "backward" in name:
        return True
    if name in ("convolution", "_convolution", "convolution_overrideable"):
        flag = args[6] if len(args) > 6 else kwargs.get("transposed", False)
        return bool(flag)
    return False


class RefuseTransposed(EagerDispatchMode):
    """Refuse every transposed convolution while active, let forward convolutions through; ``hits``
    records the attempts, so a student who catches the error is still caught."""

    def __init__(self, instead: str) -> None:
        super().__init__()
        self.instead = instead
        self.hits: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        name = func._overloadpacket.__name__
        if is_transposed_convolution(name, args, kwargs):
            self.hits.append(f"{TRANSPOSED_LABEL} [aten.{name}]")
            raise DelegationError(f"it calls {TRANSPOSED_LABEL}, which this exercise re-implements. {self.instead}")
        return func(*args, **kwargs)


def attempt_without_transposed(fn: Callable[..., Any], *args: Any, what: str, instead: str,
                               **call_kwargs: Any) -> Outcome:
    """``attempt`` with every transposed convolution refused (forward convolutions allowed)."""
    mode = RefuseTransposed(instead)
    with mode:
        outcome = attempt(fn, *args, what=what, instead=instead, **call_kwargs)
    if mode.hits:
        return {"error": f"{what} calls {mode.hits[0]}, which this exercise re-implements. {instead}"}
    return outcome


TRANSPOSE_INSTEAD = (
    "Insert stride-1 zeros between the input pixels, pad, and convolve with the flipped kernel "
    "(F.conv2d is allowed), or add x[i, j] * w at stride steps and crop the padding."
)


def _transpose_cases(hidden: bool) -> list[dict[str, Any]]:
    """Plain inputs: x, w (C_in, C_out, k, k), b (or None), stride, padding, from fixed seeds."""
    shapes = [
        ((2, 3, 4, 4), (3, 5, 4, 4), True, 2, 1),  # G's hidden layer: doubles the size
        ((1, 4, 1, 1), (4, 2, 4, 4), True, 1, 0),  # G's first layer: 1x1 -> 4x4
        ((2, 2, 5, 3), (2, 3, 3, 3), False, 2, 1),  # H != W, kernel 3, no bias
        ((1, 1, 3, 3), (1, 1, 3, 3), True, 2, 0),  # no padding: nothing to crop
    ]
    if hidden:
        shapes += [
            ((2, 6, 8, 8), (6, 4, 4, 4), True, 2, 1),
            ((1, 3, 4, 6), (3, 3, 5, 5), True, 3, 2),  # C_in == C_out: axis swaps show in values only
            ((3, 2, 2, 2), (2, 2, 2, 2), False, 2, 0),
            ((1, 2, 6, 6), (2, 3, 3, 3), True, 1, 1),  # stride 1: plain "full" convolution
            ((2, 4, 3, 3), (4, 1, 4, 4), True, 2, 3),  # padding = k - 1: no border around the zeros
        ]
    cases = []
    for i, (xs, ws, with_bias, stride, padding) in enumerate(shapes):
        if i < 4:  # the visible cases: fixed seeds
            x, w, b = randn(*xs, seed=50 + i), randn(*ws, seed=60 + i), randn(ws[1], seed=70 + i)
        else:  # hidden: the values from the instructor's secret
            g = hidden_generator(2, "conv_transpose2d_scratch", i)
            x, w, b = torch.randn(xs, generator=g), torch.randn(ws, generator=g), torch.randn(ws[1], generator=g)
        cases.append({"x": x, "w": w, "b": b if with_bias else None, "stride": stride, "padding": padding})
    return cases


def _probe_conv_transpose2d_scratch(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[TensorFnRun]:
    """The student's transposed convolution on every case: transposed convolutions (and autograd,
    whose gradient of a convolution is one) refused, F.conv2d and F.fold allowed."""
    out: list[TensorFnRun] = []
    for case in cases:
        args = [None if case[n] is None else case[n].clone() for n in ("x", "w", "b")]
        outcome = attempt_without_transposed(fn, *args, case["stride"], case["padding"],
                                             what="conv_transpose2d_scratch", instead=TRANSPOSE_INSTEAD,
                                             refuse=[AUTOGRAD])
        out.append({"out": outcome, "inputs_after": args})
    return out


# Usual mistakes in the output size, as the size (per axis: h input pixels, k, s, p) they produce.
_SHAPE_MISTAKES: list[tuple[Callable[[int, int, int, int], int], str]] = [
    (lambda h, k, s, p: (h - 1) * s + k, "the padding is not cropped: remove `padding` rows and columns "
     "from each side of the result (or pad the zero-inserted input by k - 1 - padding, not k - 1)"),
    (lambda h, k, s, p: (h - 1) * s + 2 * p - k + 2, "the zero-inserted input is padded by `padding`; "
     "pad it by k - 1 - padding on each side (padding in a transposed convolution crops the output)"),
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


def _transpose_shape_hint(runs: list[tuple[dict[str, Any], tuple[int, ...]]]) -> str:
    """Name the mistake whose sizes match the student's outputs on every run (case, shape)."""
    case, got = runs[0]
    if len(got) != 4:
        return "the output is 4-D: (N, C_out, H_out, W_out)"
    if got[1] != case["w"].shape[1]:
        return "for a transposed convolution w is (C_in, C_out, k, k): C_out = w.shape[1]"

    def sizes(c: dict[str, Any], f: Callable[[int, int, int, int], int]) -> tuple[int, int]:
        k = c["w"].shape[-1]
        return f(c["x"].shape[2], k, c["stride"], c["padding"]), f(c["x"].shape[3], k, c["stride"], c["padding"])

    for f, hint in _SHAPE_MISTAKES:
        if all(len(g) == 4 and tuple(g[2:]) == sizes(c, f) for c, g in runs):
            return hint
    return "H_out = (H - 1)*stride - 2*padding + k, and the same for W"


def _zero_insert_conv(x: torch.Tensor, w_conv: torch.Tensor, b: torch.Tensor | None, s: int, p: int) -> torch.Tensor:
    """The zero-insertion construction with a given (C_out, C_in, k, k) kernel (no flip, no swap)."""
    N, C, H, W = x.shape
    k = w_conv.shape[-1]
    xz = x.new_zeros(N, C, (H - 1) * s + 1, (W - 1) * s + 1)
    xz[:, :, ::s, ::s] = x
    return F.conv2d(F.pad(xz, (k - 1 - p,) * 4), w_conv, b)


@judge_only
def _transpose_value_hint(out: torch.Tensor, x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                          s: int, p: int) -> str:
    """Name the mistake whose result matches the student's values."""

    def ct(wt: torch.Tensor = w, bias: torch.Tensor | None = b) -> Callable[[], torch.Tensor]:
        return lambda: F.conv_transpose2d(x, wt, bias, stride=s, padding=p)

    C_in, C_out, k, _ = w.shape
    candidates: list[tuple[str | None, Any]] = [
        ("the kernel is not flipped: after zero insertion, convolve with w rotated by 180 degrees "
         "(w.flip(-1, -2)), with its first two axes swapped", ct(w.flip(-1, -2))),
    ]
    if b is not None:
        candidates += [("the bias is missing: add b[c_out] to every pixel of output channel c_out", ct(bias=None)),
                       ("the bias is added twice", ct(bias=2 * b))]
    if C_in != C_out or C_in > 1:
        candidates += [("w.reshape / w.view keeps the memory order, so it mixes up the channels instead of "
                        "swapping the axes: use w.transpose(0, 1) (or permute(1, 0, 2, 3))",
                        lambda wc=wc: _zero_insert_conv(x, wc, b, s, p))
                       for wc in (w.flip(-1, -2).reshape(C_out, C_in, k, k), w.reshape(C_out, C_in, k, k))]
    if C_in == C_out:
        for wt, what in ((w.transpose(0, 1), "the input and output channel axes of w are swapped: "
                          "for a transposed convolution w is (C_in, C_out, k, k)"),
                         (w.transpose(-1, -2), "the kernel's rows and columns are swapped")):
            candidates += [(what, ct(wt)), (what + " (and the kernel is not flipped)", ct(wt.flip(-1, -2)))]
    else:
        candidates.append(("the kernel's rows and columns are swapped", ct(w.transpose(-1, -2))))
    return nearest_mistake(out, candidates, rtol=1e-4, atol=1e-4) or (
        "check the zero insertion (x lands on every stride-th pixel, starting at 0) and the "
        "padding k - 1 - padding around it")


def _transpose_error_hint(message: str) -> str:
    """A hint for the errors the usual mistakes raise inside F.conv2d."""
    if "calls" in message:
        return ""
    general = tensor_error_hint(message, "H_out = (H - 1)*stride - 2*padding + k (and the same for W)")
    if general:
        return general
    if "Kernel size can't be greater" in message or "smaller than kernel" in message:
        return (" Hint: the zero-inserted input is smaller than the kernel: pad it by k - 1 - padding on each "
                "side (not by padding), so that every stamp of the kernel fits.")
    if "channels" in message:
        return (" Hint: a transposed convolution's w is (C_in, C_out, k, k); to use it in F.conv2d swap its "
                "first two axes: w.transpose(0, 1).")
    if "negative" in message or "must match the size" in message or "size of tensor" in message:
        return (" Hint: the stamps land at (i*stride, j*stride) in an output of (H - 1)*stride + k pixels, "
                "cropped by `padding` on each side.")
    return ""


def _judge_conv_transpose2d_scratch(cases: list[dict[str, Any]], data: list[TensorFnRun]) -> str:
    """``fn(x, w, b, stride, padding)`` must equal F.conv_transpose2d, computed here, on every case."""
    runs = []
    for case, result in zip(cases, data, strict=True):
        what = f"conv_transpose2d_scratch({inputs_text(case)})"
        outcome = result["out"]
        if "error" in outcome:
            err = str(outcome["error"])
            hint = _transpose_error_hint(err)
            fail((err.rstrip(".") + "." + hint) if hint else err)
        out = expect_plain_tensor(unwrap(outcome), what)
        judge_inputs_untouched(case, result["inputs_after"], ("x", "w", "b"), what, "work on a new tensor.")
        runs.append((case, out, what))
    # all runs first: the sizes on every input together tell the mistakes apart
    shapes = [(case, tuple(out.shape)) for case, out, _ in runs]
    for case, out, what in runs:
        x, w, b, stride, padding = case["x"], case["w"], case["b"], case["stride"], case["padding"]
        expected = F.conv_transpose2d(x, w, b, stride=stride, padding=padding)
        if out.shape != expected.shape:
            expect_shape(out, expected.shape, what, hint=_transpose_shape_hint(shapes))
        # float32 sums taken in another order differ by ~1e-6 relative; real mistakes are off by O(1)
        if not close(out, expected, rtol=1e-4, atol=1e-4):
            expect_close(out, expected, what, rtol=1e-4, atol=1e-4,
                         hint=_transpose_value_hint(out, x, w, b, stride, padding))
    return f"conv_transpose2d_scratch equals F.conv_transpose2d on {len(cases)} inputs without calling it."


check_conv_transpose2d_scratch = exercise("conv_transpose2d_scratch", _probe_conv_transpose2d_scratch,
                                          _judge_conv_transpose2d_scratch, _transpose_cases)


# ---------------------------------------------------------------------------------------------
# up_block

def _relu_hint(m: Layer) -> str:
    if m.isa(nn.LeakyReLU):
        return "LeakyReLU belongs to the discriminator; DCGAN's generator uses plain nn.ReLU()."
    if m.isa(nn.Tanh):
        return ("Tanh is only G's very last activation (it maps to the image range [-1, 1]); "
                "the hidden blocks use nn.ReLU().")
    return "the generator's hidden blocks use nn.ReLU()."


def _up_cases(hidden: bool) -> list[dict[str, Any]]:
    """(in_ch, out_ch), keyword arguments, the input x and the parameter seed of each configuration."""
    configs = [((3, 8), {}, (2, 3, 4, 4)), ((16, 8), {"stride": 1, "padding": 0}, (2, 16, 1, 1))]
    if hidden:
        configs += [((8, 4), {}, (4, 8, 8, 8)), ((5, 7), {"stride": 2, "padding": 1}, (3, 5, 3, 5)),
                    ((10, 6), {"stride": 1, "padding": 0}, (2, 10, 1, 1))]
    out = []
    for i, (args, kwargs, xs) in enumerate(configs):
        if i < 2:  # the visible configurations: fixed seeds
            values = {"x": randn(*xs, seed=80 + i), "seed": 17 + i}
        else:  # hidden: the input and the parameters from the instructor's secret
            g = hidden_generator(2, "up_block", i)
            values = {"x": torch.randn(xs, generator=g), "seed": int(torch.randint(0, 2**62, (1,), generator=g))}
        out.append({"args": list(args), "kwargs": kwargs, **values})
    return out


def _probe_up_block(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[BlockRun]:
    """Build, describe and run the student's block for every configuration."""
    return probe_blocks(fn, "up_block", cases)


def _judge_up_block(cases: list[dict[str, Any]], data: list[BlockRun]) -> str:
    """ConvTranspose 4x4 (the block's stride and padding) without bias, BatchNorm2d, ReLU; outputs
    equal dcgan_ref.models.up_block's with the same parameters."""
    from dcgan_ref.models import up_block as ref_block

    for config, result in zip(cases, data, strict=True):
        in_ch, out_ch = config["args"]
        kwargs = config["kwargs"]
        what = block_call_text("up_block", config)
        stride, padding = kwargs.get("stride", 2), kwargs.get("padding", 1)
        layers = judge_built_block(result, what)
        pattern = pattern_text(layers)
        ups = [m for m in layers if m.isa(*UPSAMPLING)]
        if ups:
            fail(f"{what} has layers {pattern}: DCGAN upsamples with a learned fractional-strided "
                 f"convolution, so remove the {ups[0].type_name} and use nn.ConvTranspose2d with stride=2.")
        if any(m.isa(*POOLING) for m in layers):
            fail(f"{what} has layers {pattern}: the generator has no pooling; use nn.ConvTranspose2d alone.")
        if any(m.isa(nn.Conv2d) for m in layers):
            fail(f"{what} has layers {pattern}: use nn.ConvTranspose2d (it upsamples), not nn.Conv2d.")
        convs = [m for m in layers if m.isa(nn.ConvTranspose2d)]
        expect(len(convs) == 1, f"{what} has layers {pattern}: expected exactly one nn.ConvTranspose2d.")
        conv = convs[0]
        channels = (conv.attrs.get("in_channels"), conv.attrs.get("out_channels"))
        expect(channels == (in_ch, out_ch),
               f"{what}: the ConvTranspose2d maps {channels[0]} -> {channels[1]} channels, "
               f"expected {in_ch} -> {out_ch}.")
        settings = (conv.attrs.get("kernel_size"), conv.attrs.get("stride"), conv.attrs.get("padding"))
        if settings != ((4, 4), (stride, stride), (padding, padding)) or conv.attrs.get("dilation") != (1, 1):
            fail(f"{what}: the ConvTranspose2d has kernel_size={settings[0]}, stride={settings[1]}, "
                 f"padding={settings[2]}, expected 4, {stride}, {padding}: kernel 4 always, and the "
                 "block's own stride and padding arguments (2, 1 doubles H and W; 1, 0 maps 1x1 to 4x4).")
        expect(conv.attrs.get("output_padding") == (0, 0),
               f"{what}: output_padding={conv.attrs.get('output_padding')}; with kernel 4 none is needed.")
        expect(conv.params.get("bias") is None,
               f"{what}: the ConvTranspose2d has a bias; create it with bias=False. The BatchNorm right "
               "after it subtracts each channel's mean, which cancels any bias.")
        check_norm_and_order(layers, nn.ConvTranspose2d, True, out_ch,
                             lambda m: m.type_name == "ReLU" and m.isa(nn.ReLU), "nn.ReLU()", _relu_hint, what,
                             ran=result.get("ran"))
        compare_with_reference(result, ref_block(in_ch, out_ch, **kwargs), config, what)
    return f"up_block matches dcgan_ref.models.up_block in {len(cases)} configurations."


check_up_block = exercise("up_block", _probe_up_block, _judge_up_block, _up_cases)


# ---------------------------------------------------------------------------------------------
# adjoint_sides


class Recorder(EagerDispatchMode):
    """Keep copies of the intermediate tensors of the student's computation that could be one side's
    operand: shaped like ``conv2d(x)`` (y's shape, or its number of elements) or like
    ``conv_transpose2d(y)`` (x's shape, or its number of elements). Only the last ``keep`` of each
    kind are kept: the final results come last."""

    def __init__(self, x_shape: tuple[int, ...], y_shape: tuple[int, ...], keep: int = 32) -> None:
        super().__init__()
        self.x_shape, self.y_shape = tuple(x_shape), tuple(y_shape)
        self.x_numel, self.y_numel = int(torch.Size(self.x_shape).numel()), int(torch.Size(self.y_shape).numel())
        self.forward: deque[torch.Tensor] = deque(maxlen=keep)
        self.transposed: deque[torch.Tensor] = deque(maxlen=keep)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        result = func(*args, **(kwargs or {}))
        for t in tree_leaves(result):
            if type(t) is torch.Tensor and t.is_floating_point() and t.device.type != "meta" and t.dim() >= 2:
                if t.numel() == self.y_numel:
                    self.forward.append(t.detach().clone())
                if t.numel() == self.x_numel:
                    self.transposed.append(t.detach().clone())
        return result


def _adjoint_cases(hidden: bool) -> list[dict[str, Any]]:
    """x, y, w (C_out, C_in, k, k), stride, padding, in float64 (both sides then agree to ~1e-15)."""
    shapes = [
        ((2, 3, 8, 8), (4, 3, 4, 4), 2, 1),  # DCGAN's layer: stride divides evenly
        ((1, 2, 8, 8), (3, 2, 3, 3), 2, 1),  # (8 + 2 - 3) % 2 = 1: conv_transpose needs output_padding
    ]
    if hidden:
        shapes += [((2, 2, 9, 7), (2, 2, 3, 3), 2, 0), ((1, 3, 11, 11), (5, 3, 5, 5), 3, 2),
                   ((3, 1, 6, 6), (1, 1, 2, 2), 1, 0)]
    cases = []
    for i, (xs, ws, stride, padding) in enumerate(shapes):
        ys = tuple(F.conv2d(torch.empty(xs, device="meta"), torch.empty(ws, device="meta"), stride=stride,
                            padding=padding).shape)
        if i < 2:  # the visible cases: fixed seeds
            x = randn(*xs, seed=90 + i, dtype=torch.float64)
            w = randn(*ws, seed=100 + i, dtype=torch.float64)
            y = randn(*ys, seed=110 + i, dtype=torch.float64)
        else:  # hidden: the values from the instructor's secret
            g = hidden_generator(2, "adjoint_sides", i)
            x, w, y = (torch.randn(shape, generator=g, dtype=torch.float64) for shape in (xs, ws, ys))
        cases.append({"x": x, "y": y, "w": w, "stride": stride, "padding": padding})
    return cases


class AdjointRun(TypedDict):
    """One call of the student's adjoint_sides: its outcome and the tensors its computation went through."""

    out: Outcome
    forward: list[torch.Tensor]  #: the last intermediates with as many elements as conv2d(x) (``Recorder``)
    transposed: list[torch.Tensor]  #: the last intermediates with as many elements as conv_transpose2d(y)


def _probe_adjoint_sides(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[AdjointRun]:
    """The student's pair on every case, and the tensors their computation went through."""
    out: list[AdjointRun] = []
    for case in cases:
        rec = Recorder(tuple(case["x"].shape), tuple(case["y"].shape))
        with rec:
            outcome = attempt(fn, case["x"].clone(), case["y"].clone(), case["w"].clone(), case["stride"],
                              case["padding"], what="adjoint_sides")
        out.append({"out": outcome, "forward": list(rec.forward), "transposed": list(rec.transposed)})
    return out


def _as_number(value: Any, what: str) -> float:
    if type(value) is torch.Tensor:
        if value.numel() != 1:
            fail(f"{what} is a tensor of shape {tuple(value.shape)}, expected one number: an inner "
                 "product multiplies elementwise and then SUMS over every element (.sum()).")
        return float(value.detach().to("cpu", torch.float64).item())
    if type(value) in (int, float):
        return float(value)
    fail(f"{what} is a {type_name(value)}, expected a number (a float or a 0-d tensor).")


def _found(candidates: list[Any], expected: torch.Tensor, tol: float) -> bool:
    """Whether one of the recorded tensors is ``expected`` (in any shape with as many elements)."""
    return any(type(t) is torch.Tensor and t.numel() == expected.numel()
               and close(t.to(torch.float64).reshape(expected.shape), expected, rtol=tol, atol=tol)
               for t in candidates)


def _judge_adjoint_sides(cases: list[dict[str, Any]], data: list[AdjointRun]) -> str:
    """Both numbers against their own reference, and each side computed from its own operator: a
    conv2d(x) and a conv_transpose2d(y) must appear in the student's computation."""
    for case, result in zip(cases, data, strict=True):
        x, y, w, stride, padding = case["x"], case["y"], case["w"], case["stride"], case["padding"]
        what = f"adjoint_sides(x {tuple(x.shape)}, y {tuple(y.shape)}, w {tuple(w.shape)}, stride={stride}, " \
               f"padding={padding})"
        outcome = result["out"]
        if "error" in outcome:
            err = str(outcome["error"])
            if "must match the size" in err or "size of tensor" in err:
                fail(f"{err} Hint: conv_transpose2d(y) comes out smaller than x when (H + 2*padding - k) is "
                     "not a multiple of stride (conv2d dropped those pixels); pass "
                     "output_padding=(H + 2*padding - k) % stride.")
            if "channels" in err:
                fail(f"{err} Hint: pass the SAME w to F.conv_transpose2d: its (C_out, C_in, k, k) layout is "
                     "exactly what conv_transpose2d expects for going back from C_out to C_in.")
            fail(err)
        pair = unwrap(outcome)
        if type(pair) not in (tuple, list) or len(pair) != 2:
            fail(f"{what} returned a {type_name(pair)}, expected a pair (lhs, rhs).")
        lhs = _as_number(pair[0], f"{what}[0] (lhs)")
        rhs = _as_number(pair[1], f"{what}[1] (rhs)")
        conv = F.conv2d(x, w, stride=stride, padding=padding)
        op = tuple((n + 2 * padding - w.shape[-1]) % stride for n in x.shape[2:])
        back = F.conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=op)
        lhs_ref, rhs_ref = float((conv * y).sum()), float((x * back).sum())
        # float64 sums over a few hundred terms: relative error ~1e-15, 1e-9 is a wide margin
        tol = 1e-9 * max(1.0, abs(lhs_ref))
        if not close_number(lhs, lhs_ref, atol=tol):
            fail(f"{what}: lhs = {lhs:.10g}, expected <conv2d(x, w), y> = {lhs_ref:.10g}: multiply "
                 "F.conv2d(x, w, stride=stride, padding=padding) by y elementwise and sum everything.")
        if not close_number(rhs, rhs_ref, atol=tol):
            flipped = float((x * F.conv_transpose2d(y, w.flip(-1, -2), stride=stride, padding=padding,
                                                    output_padding=op)).sum())
            hint = ("the kernel is flipped: F.conv_transpose2d with the very same w is the adjoint, "
                    "no flip needed" if close_number(rhs, flipped, atol=tol) else
                    "use F.conv_transpose2d(y, w, stride=stride, padding=padding, output_padding=...) with "
                    "the same w, multiply by x elementwise and sum")
            fail(f"{what}: rhs = {rhs:.10g}, expected <x, conv_transpose2d(y, w)> = {rhs_ref:.10g}: {hint}.")
        if not _found(result["forward"], conv, 1e-9):
            fail(f"{what}: lhs has the right value, but conv2d(x, w) never appears in its computation: compute "
                 "the left side as (F.conv2d(x, w, stride=stride, padding=padding) * y).sum(), not from the "
                 "right side (the identity is what the two sides should show, not how one is made).")
        if not _found(result["transposed"], back, 1e-9):
            fail(f"{what}: rhs has the right value, but conv_transpose2d(y, w) never appears in its computation: "
                 "compute the right side as (x * F.conv_transpose2d(y, w, ...)).sum(); returning lhs twice "
                 "proves nothing.")
    return ("both sides of <conv2d(x), y> = <x, conv_transpose2d(y)> match, each from its own operator: the "
            "transposed convolution is the adjoint of the convolution.")


check_adjoint_sides = exercise("adjoint_sides", _probe_adjoint_sides, _judge_adjoint_sides, _adjoint_cases)


# ---------------------------------------------------------------------------------------------
# conv2d_backward

BACKWARD_INSTEAD = (
    "Write both gradients with F.unfold / F.fold (or slicing and loops) and torch.einsum or matrix "
    "products: no built-in convolution and no autograd."
)


def _backward_cases(hidden: bool) -> list[dict[str, Any]]:
    """x, w (C_out, C_in, k, k), grad_out (shaped like conv2d(x, w)), stride, padding."""
    shapes = [
        ((2, 3, 8, 8), (4, 3, 4, 4), 2, 1),  # a DCGAN discriminator layer
        ((1, 2, 8, 8), (3, 2, 3, 3), 2, 1),  # (8 + 2 - 3) % 2 = 1: the last row is never read
        ((2, 2, 5, 6), (2, 2, 3, 3), 1, 0),  # stride 1, no padding, C_in == C_out, H != W
    ]
    if hidden:
        shapes += [
            ((3, 4, 11, 13), (6, 4, 5, 5), 3, 2),
            ((2, 8, 16, 16), (16, 8, 4, 4), 2, 1),
            ((1, 3, 5, 5), (2, 3, 1, 1), 1, 0),  # 1x1 convolution
            ((2, 2, 4, 4), (3, 2, 4, 4), 1, 0),  # one output pixel per image
            ((1, 3, 10, 6), (4, 3, 3, 3), 2, 2),
            ((4, 1, 9, 9), (1, 1, 2, 2), 3, 0),  # (9 - 2) % 3 = 1: rows never read again
        ]
    cases = []
    for i, (xs, ws, stride, padding) in enumerate(shapes):
        gs = tuple(F.conv2d(torch.empty(xs, device="meta"), torch.empty(ws, device="meta"), stride=stride,
                            padding=padding).shape)
        if i < 3:  # the visible cases: fixed seeds
            x, w, grad_out = randn(*xs, seed=120 + i), randn(*ws, seed=130 + i), randn(*gs, seed=140 + i)
        else:  # hidden: the values from the instructor's secret
            g = hidden_generator(2, "conv2d_backward", i)
            x, w, grad_out = (torch.randn(shape, generator=g) for shape in (xs, ws, gs))
        cases.append({"x": x, "w": w, "grad_out": grad_out, "stride": stride, "padding": padding})
    return cases


class BackwardRun(TypedDict):
    """One call of the student's conv2d_backward (``_conv.probe_tensor_fn``): outcome and inputs afterwards."""

    out: Outcome
    inputs_after: list[torch.Tensor | None]  #: the copies of x, w, grad_out handed over, as the call left them


def _probe_conv2d_backward(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[BackwardRun]:
    """The student's gradients on every case, every built-in convolution and autograd refused."""
    return probe_tensor_fn(fn, "conv2d_backward", cases, ("x", "w", "grad_out"),
                           refuse=[CONVOLUTION, AUTOGRAD], instead=BACKWARD_INSTEAD)


@judge_only
def _autograd_grads(x: torch.Tensor, w: torch.Tensor, g: torch.Tensor, s: int, p: int) -> tuple[torch.Tensor, ...]:
    """The reference: autograd through F.conv2d, in float64."""
    xr = x.detach().double().requires_grad_(True)
    wr = w.detach().double().requires_grad_(True)
    gx, gw = torch.autograd.grad(F.conv2d(xr, wr, stride=s, padding=p), (xr, wr), grad_outputs=g.double())
    return gx, gw


def _grad_x_shape_hint(got: tuple[int, ...], case: dict[str, Any]) -> str:
    x, w, s, p = case["x"], case["w"], case["stride"], case["padding"]
    k = w.shape[-1]
    ho, wo = case["grad_out"].shape[2:]
    if len(got) != 4:
        return "grad_x has x's shape (N, C_in, H, W)"
    if got[1] != x.shape[1]:
        return ("grad_x has x's C_in channels: sum over the output channels o of grad_out[:, o] times "
                "w[o, c] (w is (C_out, C_in, k, k))")
    if got[2:] == ((ho - 1) * s + k, (wo - 1) * s + k):
        return "the padding is not cropped: remove `padding` rows and columns from each side of the result"
    if got[2:] == ((ho - 1) * s + k - 2 * p, (wo - 1) * s + k - 2 * p):
        return ("grad_x has x's shape, but here (H + 2*padding - k) is not a multiple of stride: the stamps cover "
                "(H_out - 1)*stride + k rows of the PADDED input, which has H + 2*padding; put them into a "
                "zero canvas of the padded size (the rows no window read get 0), then crop `padding` from each "
                "side (F.fold with output_size=(H, W) and padding=padding does exactly this)")
    if got[2:] == (ho + k - 1 - 2 * p, wo + k - 1 - 2 * p):
        return ("the stride is ignored: grad_out[i, j] goes back to the window that starts at "
                "(i*stride, j*stride), so insert stride - 1 zeros between its pixels (or stamp at stride steps)")
    if got[2:] == ((ho - 1) * s + 2 * p - k + 2, (wo - 1) * s + 2 * p - k + 2):
        return ("the zero-inserted grad_out is padded by `padding`; pad it by k - 1 - padding on each side "
                "(the gradient of a convolution is the TRANSPOSED convolution of grad_out)")
    return "grad_x has x's shape: every input pixel gets the sum of what the windows that read it send back"


def _grad_w_shape_hint(got: tuple[int, ...], case: dict[str, Any]) -> str:
    x, w = case["x"], case["w"]
    if got == (x.shape[0], *w.shape):
        return ("it is not summed over the batch: every image uses the same weights, so their contributions "
                "add up: sum over n")
    if got == (w.shape[1], w.shape[0], *w.shape[2:]):
        return "grad_w has w's layout (C_out, C_in, k, k): the output channel comes first"
    return "grad_w has w's shape (C_out, C_in, k, k)"


@judge_only
def _grad_x_value_hint(gx: torch.Tensor, case: dict[str, Any], ref: torch.Tensor) -> str:
    """Name the mistake behind a wrong grad_x."""
    x, w, g, s, p = case["x"], case["w"], case["grad_out"], case["stride"], case["padding"]
    wf = w.double()
    candidates: list[tuple[str | None, Any]] = [
        ("the kernel is flipped: in the stamp view every grad_out[n, o, i, j] adds grad_out[n, o, i, j] * "
         "w[o] (w itself) at (i*stride - padding, j*stride - padding); in the zero-insertion view it is the "
         "correlation with w rotated by 180 degrees: rotate once, not twice or never",
         lambda: _autograd_grads(x, wf.flip(-1, -2), g, s, p)[0]),
    ]
    if w.shape[0] == w.shape[1]:
        candidates.append(("the channel axes of w are swapped: grad_x[:, c] sums grad_out[:, o] * w[o, c] over o",
                           lambda: _autograd_grads(x, wf.transpose(0, 1), g, s, p)[0]))
    candidates.append(("it is divided by the batch size: each image's gradient depends on its own grad_out only",
                       ref / x.shape[0]))
    return nearest_mistake(gx, candidates, rtol=1e-4, atol=1e-4) or (
        "grad_x[n, c, a, b] is the sum, over every window that read x[n, c, a, b], of grad_out at that "
        "window times the kernel weight that multiplied it: F.fold(w.reshape(C_out, -1).T @ "
        "grad_out.reshape(N, C_out, -1), (H, W), k, padding=padding, stride=stride)")


@judge_only
def _grad_w_value_hint(gw: torch.Tensor, case: dict[str, Any], ref: torch.Tensor) -> str:
    """Name the mistake behind a wrong grad_w."""
    x, w, g, s, p = case["x"], case["w"], case["grad_out"], case["stride"], case["padding"]
    candidates: list[tuple[str | None, Any]] = [
        ("the kernel gradient is flipped: grad_w[o, c, u, v] = sum over n, i, j of grad_out[n, o, i, j] * "
         "x_pad[n, c, i*stride + u, j*stride + v], a correlation, no flip", ref.flip(-1, -2)),
        ("it is averaged over the batch: the gradient SUMS the contributions of every image (sum, not mean)",
         ref / x.shape[0]),
    ]
    if x.shape[0] > 1:
        candidates.append(("only the first image counts: sum the contributions of every image of the batch",
                           lambda: _autograd_grads(x[:1], w, g[:1], s, p)[1]))
    if w.shape[0] == w.shape[1]:
        candidates.append(("the channel axes are swapped: grad_w[o, c] pairs grad_out's channel o with x's "
                           "channel c", ref.transpose(0, 1)))
    candidates.append(("the kernel's rows and columns are swapped", ref.transpose(-1, -2)))
    return nearest_mistake(gw, candidates, rtol=1e-4, atol=1e-4) or (
        "grad_w[o, c, u, v] = sum over n, i, j of grad_out[n, o, i, j] * x_pad[n, c, i*stride + u, j*stride + v]: "
        "the windows of x (F.unfold(x, k, padding=padding, stride=stride)) times grad_out, summed over the "
        "batch and the positions")


def _backward_error_hint(message: str) -> str:
    if "calls" in message:
        return ""
    if "size" in message or "shape" in message or "dimension" in message:
        return (" Hint: the forward convolution's windows start every `stride` pixels of the padded x: "
                "F.unfold(x, k, padding=padding, stride=stride) gives exactly grad_out's H_out*W_out windows, "
                "in the same order as grad_out.reshape(N, C_out, -1).")
    return ""


def _judge_conv2d_backward(cases: list[dict[str, Any]], data: list[BackwardRun]) -> str:
    """(grad_x, grad_w) must equal autograd's gradients of F.conv2d, computed here, on every case."""
    for case, result in zip(cases, data, strict=True):
        what = f"conv2d_backward({inputs_text(case, ('x', 'w', 'grad_out'))})"
        outcome = result["out"]
        if "error" in outcome:
            err = str(outcome["error"])
            hint = _backward_error_hint(err)
            fail((err.rstrip(".") + "." + hint) if hint else err)
        pair = unwrap(outcome)
        if type(pair) not in (tuple, list) or len(pair) != 2:
            fail(f"{what} returned a {type_name(pair)}, expected a pair (grad_x, grad_w).")
        gx = expect_plain_tensor(pair[0], f"{what}[0] (grad_x)")
        gw = expect_plain_tensor(pair[1], f"{what}[1] (grad_w)")
        x, w = case["x"], case["w"]
        if gx.shape == w.shape and gw.shape == x.shape and x.shape != w.shape:
            fail(f"{what}: the pair is in the wrong order: return (grad_x, grad_w), grad_x shaped like x.")
        judge_inputs_untouched(case, result["inputs_after"], ("x", "w", "grad_out"), what,
                               "compute new tensors instead.")
        ref_x, ref_w = _autograd_grads(x, w, case["grad_out"], case["stride"], case["padding"])
        if gx.shape != ref_x.shape:
            expect_shape(gx, ref_x.shape, f"{what}: grad_x", hint=_grad_x_shape_hint(tuple(gx.shape), case))
        if gw.shape != ref_w.shape:
            expect_shape(gw, ref_w.shape, f"{what}: grad_w", hint=_grad_w_shape_hint(tuple(gw.shape), case))
        # float32 sums of a few hundred products, in another order than autograd's: ~1e-6 relative
        if not close(gx, ref_x, rtol=1e-4, atol=1e-4):
            expect_close(gx, ref_x, f"{what}: grad_x", rtol=1e-4, atol=1e-4, hint=_grad_x_value_hint(gx, case, ref_x))
        if not close(gw, ref_w, rtol=1e-4, atol=1e-4):
            expect_close(gw, ref_w, f"{what}: grad_w", rtol=1e-4, atol=1e-4, hint=_grad_w_value_hint(gw, case, ref_w))
    return (f"conv2d_backward equals autograd's gradients of F.conv2d on {len(cases)} inputs, without autograd "
            "or a built-in convolution.")


check_conv2d_backward = exercise("conv2d_backward", _probe_conv2d_backward, _judge_conv2d_backward, _backward_cases)
