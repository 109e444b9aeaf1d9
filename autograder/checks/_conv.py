"""Helpers shared by the convolution lessons (01 and 02): size formulas, tensor functions probed on
copies of their inputs, and the DCGAN blocks (built, described, traced and run by the probe; judged
from what they list, what they ran and what they compute).

Probe side: ``probe_sizes``, ``probe_tensor_fn``, ``probe_blocks``. Judge side: ``judge_size_formula``,
``judge_inputs_untouched``, ``judge_built_block``, ``check_norm_and_order``, ``compare_with_reference``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import torch
from torch import nn

from ._compare import tracing
from ._core import (
    CheckFailure,
    Layer,
    Outcome,
    attempt,
    call,
    describe_module,
    expect,
    expect_close,
    expect_plain_tensor,
    fail,
    leaf_layers,
    seeded,
    unwrap,
)
from ._guard import ANY_TENSOR_OP, judge_only
from ._plain import to_plain, type_name


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




def inputs_text(case: dict[str, Any], names: tuple[str, ...] = ("x", "w", "b")) -> str:
    """'x (2, 3, 8, 8), w (5, 3, 4, 4), b (5,), stride=2, padding=1' for a message."""
    parts = [f"{n} {tuple(case[n].shape)}" if case.get(n) is not None else f"{n} None" for n in names]
    return ", ".join(parts + [f"stride={case['stride']}", f"padding={case['padding']}"])


class TensorFnRun(TypedDict):
    """One call of a student's tensor function (``probe_tensor_fn``): its outcome and its inputs afterwards."""

    out: Outcome
    inputs_after: list[torch.Tensor | None]  #: the copies of the tensor arguments, as the call left them


def probe_tensor_fn(fn: Callable[..., Any], name: str, cases: list[dict[str, Any]], arg_names: tuple[str, ...],
                    **call_kwargs: Any) -> list[TensorFnRun]:
    """Probe side: ``fn(*case[arg_names], stride, padding)`` on fresh copies; the outcome and the
    inputs as the call left them (so the judge can see an in-place change)."""
    out: list[TensorFnRun] = []
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


class BlockRun(TypedDict, total=False):
    """One configuration of the student's block (``probe_blocks``): built, described, run."""

    built: Outcome  #: always: ``{"value": {"returned": "module" or a type name}}`` or the error
    loaded: Outcome  #: the rest only for a module: setting its parameters to the seeded values
    layers: list[dict[str, Any]]  #: ``_core.describe_module`` of the block
    outputs: dict[str, Outcome]  #: the forward pass on x, by mode ("train", "eval")
    ran: list[str]  #: the leaf layers the train-mode forward pass ran, in order


def probe_blocks(fn: Callable[..., Any], name: str, configs: list[dict[str, Any]]) -> list[BlockRun]:
    """Probe side, for each config: build the block, describe it (after setting its parameters to
    the seeded values) and run it on x in train mode, then in eval mode."""
    results: list[BlockRun] = []
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
            with torch.no_grad(), tracing(block) as records:
                entry["outputs"][mode] = attempt(block, config["x"].clone(), what=f"{what} (forward, {mode} mode)")
            if mode == "train":
                entry["ran"] = [r["name"] for r in records]  # the leaf layers the forward pass ran, in order
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
    ran: list[str] | None = None,
) -> None:
    """Exactly one ``conv_type``, one BatchNorm2d(out_ch) if ``batchnorm``, one activation, in that order
    (the order the forward pass ``ran`` them in, from the probe's hooks, when it ran them all)."""
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
    # listed in another order but run in the right one (forward hooks): the structure is what it computes
    # (a forward pass that runs them in the wrong order fails the comparison of outputs)
    by_name = {m.name: m for m in layers}
    executed = list(dict.fromkeys(n for n in (ran or []) if n in by_name))
    if sorted(executed) == sorted(by_name) and [by_name[n].type_name for n in executed] == expected_order:
        return
    if [m.type_name for m in layers] != expected_order:
        fail(f"{what} has layers {pattern}, expected the order [{', '.join(expected_order)}]: convolution, "
             + ("then BatchNorm, " if batchnorm else "") + "then the activation.")


@judge_only
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


