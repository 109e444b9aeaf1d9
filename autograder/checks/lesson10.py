"""Checks for lesson 10, the capstone: the Keras-style GAN of the tutorials, D's accuracy, one ablation run.

Four exercises, each ``cases -> probe -> judge`` (see ``_core``):

- ``keras_generator`` / ``keras_discriminator``: the student's classes are built, described
  (``describe_module``) and run on the grader's inputs in the probe; the judge builds
  ``dcgan_ref.keras_gan``'s network, loads the *student's* initial weights into it layer by layer
  (in the order the student's forward pass ran them), runs it on the same inputs and compares. A
  mismatch is explained by re-running the reference with the usual mistake built in (ReLU for
  LeakyReLU, a channels-last reshape, a sigmoid on D's logit, dropout left on in eval mode, ...).
  The network must also be *built* by the class: every parameter-holding layer registers its
  parameters while the class is constructed (a deep copy of a network made earlier does not), and a
  second instance built under another seed has fresh parameters of its own (none shared).
- ``d_accuracy``: D's accuracy on real and on fake images from a batch of logits, against the
  formula ``dcgan_ref.train.discriminator_step`` logs.
- ``run_ablation``: one ablation run with the tools the probe hands in (``kit``); judged on the
  structure of its result, its determinism, its use of the seed, and against ``reference_ablation``
  (this module's runner, the protocol the lesson prescribes) on tiny data, with the mistakes named
  by re-running the reference with each one built in.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Iterator
from types import CodeType, FunctionType, ModuleType
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from ._compare import close, close_number, judge_only, traced_forward
from ._core import (
    CheckFailure,
    Layer,
    Outcome,
    attempt,
    call,
    describe_module,
    exercise,
    expect,
    fail,
    randn,
    unwrap,
)
from ._plain import type_name
from ._secret import hidden_seed

# Same float32 operations on the same inputs: the results agree to rounding (summation order only).
RTOL, ATOL = 1e-4, 1e-5
#: the most layers / trace records a reply may describe: a real answer has a dozen, so a larger reply is a
#: stall attempt, refused before anything walks it
MAX_LAYERS, MAX_TRACE = 2_000, 20_000


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed torch's global RNG for a block, then put the caller's RNG state back."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[Any, str | None]:
    """``call`` that returns (result, None) or (None, the failure message) instead of raising."""
    try:
        return call(fn, *args, **kwargs), None
    except CheckFailure as err:
        return None, str(err)


def _close(a: Any, b: torch.Tensor, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """``a`` is a plain tensor of ``b``'s shape whose values agree with ``b`` (``_compare.close``)."""
    return close(a, b, rtol=rtol, atol=atol)


def _first_difference(a: torch.Tensor, b: torch.Tensor) -> str:
    diff = (a.double() - b.double()).abs()
    idx = tuple(int(i) for i in torch.nonzero(diff == diff.max())[0])
    return f"at {idx} got {a[idx].item():.6g}, expected {b[idx].item():.6g} (max difference {diff.max().item():.3g})"


# =============================================================================================
# exercises 1-2: the Keras-style generator and discriminator

PARAM_TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm1d, nn.BatchNorm2d)
NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LayerNorm)
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


def _traced_forward(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, list[str]]:
    """``model(x)`` and the names of the leaf modules it ran, in execution order (``_compare``'s hook tracing)."""
    out, records = traced_forward(model, x)
    return out, [r["name"] for r in records]


class ForwardRun(TypedDict, total=False):
    """One traced forward pass of the student's network (``_run``): its output and layer order, or the error."""

    value: Any  #: the output
    order: list[str]  #: the names of the leaf modules that ran, in execution order
    error: str  #: the pass failed (no other key then)


def _run(model: nn.Module, x: torch.Tensor, what: str, seed: int | None = None) -> ForwardRun:
    """Probe side: one traced forward pass of the student's model, as an outcome with its layer order."""
    with _seeded_global_rng(seed if seed is not None else 0), torch.no_grad():
        value, error = _outcome(_traced_forward, model, x.clone(), what=what)
    if error is not None:
        return {"error": error}
    out, order = value
    return {"value": out, "order": order}


def _build_watched(cls: Any, args: tuple, seed: int, what: str) -> tuple[Any, str | None, list[str]]:
    """Build the student's class under a seeded global RNG; also the names of the parameter-holding layers
    that registered no parameter while it was built: copies of modules made earlier (``copy.deepcopy``
    restores a module's parameters without registering them)."""
    registered: set[int] = set()
    handle = torch.nn.modules.module.register_module_parameter_registration_hook(
        lambda module, name, param: registered.add(id(module)))
    try:
        with _seeded_global_rng(seed):
            model, error = _outcome(cls, *args, what=what)
    finally:
        handle.remove()
    copied: list[str] = []
    if error is None and isinstance(model, nn.Module):
        for name, m in model.named_modules():
            if any(p is not None for p in m._parameters.values()) and id(m) not in registered:
                copied.append(name)
                if len(copied) >= 10:
                    break
    return model, error, copied


class Independence(TypedDict):
    """Whether a second instance of the class has parameters of its own (None: it could not be built)."""

    fresh: bool | None  #: its parameters differ from the first instance's (drawn anew)
    shared: bool | None  #: some parameter tensor is the first instance's


class NetworkReply(TypedDict, total=False):
    """One configuration of the student's Keras-style network: built, described, run in both modes."""

    build: Outcome  #: always: ``{"value": None}`` once the constructor returned, or its error (nothing else then)
    module: bool  #: the constructor returned an nn.Module
    type: str  #: the class name of what it returned, when not a module (nothing else then)
    desc: list[dict[str, Any]]  #: ``_core.describe_module`` before any forward pass
    copied: list[str]  #: parameter-holding layers that registered no parameter while built (``_build_watched``)
    fresh: bool | None  #: ``Independence``
    shared: bool | None  #: ``Independence``
    train: ForwardRun  #: in train mode (dropout seeded)
    after: list[dict[str, Any]]  #: ``_core.describe_module`` after the train-mode pass (running statistics)
    eval: ForwardRun  #: in eval mode
    eval_again: ForwardRun  #: in eval mode again, under another seed (dropout must be off)
    eval_flat: ForwardRun  #: G only: on z of shape (N, nz)
    one: ForwardRun  #: on a batch of one


def _fresh_and_independent(model: nn.Module, cls: Any, args: tuple, seed: int, what: str) -> Independence:
    """A second instance built under another seed: are its parameters drawn anew (fresh), and is none of
    them shared with the first instance (independent)?"""
    twin, error, _ = _build_watched(cls, args, seed + 7919, what)
    if error is not None or not isinstance(twin, nn.Module):
        return {"fresh": None, "shared": None}
    mine, theirs = list(model.parameters()), list(twin.parameters())
    ptrs = {p.data_ptr() for p in mine if p.numel()}
    shared = any(p.data_ptr() in ptrs for p in theirs if p.numel())
    fresh = len(mine) != len(theirs) or any(a.shape != b.shape or not torch.equal(a, b)
                                            for a, b in zip(mine, theirs, strict=False))
    return {"fresh": bool(fresh), "shared": bool(shared)}


def _probe_network(cls: Any, cases: dict[str, Any]) -> list[NetworkReply]:
    """Probe side: for each configuration build the student's class, describe it (weights before any
    forward pass), run it in train mode (dropout seeded), describe it again (running statistics),
    then run it in eval mode on every input the judge looks at."""
    kind = cases["kind"]
    name = getattr(cls, "__name__", "your class")
    replies: list[NetworkReply] = []
    for case in cases["configs"]:
        args = tuple(case["args"])
        what = f"{name}{args}"
        model, error, copied = _build_watched(cls, args, case["seed"], what)
        if error is not None:
            replies.append({"build": {"error": error}})
            continue
        if not isinstance(model, nn.Module):
            replies.append({"build": {"value": None}, "module": False, "type": type(model).__name__})
            continue
        reply: NetworkReply = {"build": {"value": None}, "module": True, "desc": describe_module(model),
                                 "copied": copied, **_fresh_and_independent(model, cls, args, case["seed"], what)}
        x = case["x"]
        x_in = x[:, :, None, None] if kind == "G" else x  # the lessons' noise is (N, nz, 1, 1)
        model.train()
        reply["train"] = _run(model, x_in, f"{what} in train mode", seed=case["seed"] + 1)
        reply["after"] = describe_module(model)
        model.eval()
        reply["eval"] = _run(model, x_in, f"{what} in eval mode")
        reply["eval_again"] = _run(model, x_in, f"{what} in eval mode", seed=case["seed"] + 2)
        if kind == "G":
            reply["eval_flat"] = _run(model, x, f"{what} on z of shape {tuple(x.shape)}")
        reply["one"] = _run(model, x_in[:1], f"{what} on a batch of one")
        replies.append(reply)
    return replies


def _layer_text(m: Layer) -> str:
    a = m.attrs
    if m.isa(nn.Linear):
        return f"Linear({a.get('in_features')}, {a.get('out_features')})"
    if m.isa(nn.Conv2d, nn.ConvTranspose2d):
        k, s, p = (a.get(key, ("?",))[0] for key in ("kernel_size", "stride", "padding"))
        return f"{m.type_name}({a.get('in_channels')}, {a.get('out_channels')}, k={k}, s={s}, p={p})"
    if m.isa(nn.BatchNorm1d, nn.BatchNorm2d):
        return f"{m.type_name}({a.get('num_features')})"
    if m.isa(nn.LeakyReLU):
        return f"LeakyReLU({a.get('negative_slope')})"
    if m.isa(nn.Dropout):
        return f"Dropout({a.get('p')})"
    return m.type_name


@judge_only
def _ref_layers(ref: nn.Module, x: torch.Tensor) -> list[tuple[str, nn.Module]]:
    """The reference's leaf modules in execution order (traced on a copy)."""
    twin = copy.deepcopy(ref)
    with torch.no_grad(), _seeded_global_rng(0):
        _, order = _traced_forward(twin, x)
    modules = dict(ref.named_modules())
    return [(n, modules[n]) for n in dict.fromkeys(order)]


def _expect_sizes(reply: NetworkReply, call_text: str) -> None:
    """Fail at once on a reply that describes more layers than any answer has (it could stall the judge)."""
    desc, order = reply.get("desc"), reply["train"].get("order") if type(reply.get("train")) is dict else None
    if type(desc) is not list or type(order) is not list:
        fail(f"{call_text}: the probe sent no description of the network.")
    if len(desc) > MAX_LAYERS or len(order) > MAX_TRACE:
        fail(f"{call_text} has {len(desc):,} modules and runs {len(order):,} layers in one forward pass: the Keras "
             f"networks have about a dozen (more than {MAX_LAYERS:,} is refused).")
    if type(reply.get("after")) is list and len(reply["after"]) > MAX_LAYERS:
        fail(f"{call_text} has more than {MAX_LAYERS:,} modules after a forward pass.")


def _student_layers(reply: NetworkReply) -> tuple[list[Layer], list[Layer]]:
    """(leaf layers in the order the train-mode forward ran them, leaf layers that hold parameters
    but never ran)."""
    by_name = {e["name"]: Layer(e) for e in reply["desc"] if e["children"] == 0}
    order = [n for n in dict.fromkeys(reply["train"].get("order", [])) if n in by_name]
    ran_names = set(order)  # a set: a reply with a million names must not make this quadratic
    ran = [by_name[n] for n in order]
    unused = [m for n, m in by_name.items() if n not in ran_names and any(v is not None for v in m.params.values())]
    return ran, unused


def _n_params(desc: list[dict[str, Any]]) -> int:
    return sum(int(p.numel()) for e in desc for p in e["params"].values() if type(p) is torch.Tensor)


def _reference(kind: str, args: tuple, seed: int) -> nn.Module:
    from dcgan_ref.keras_gan import KerasDiscriminator, KerasGenerator

    with _seeded_global_rng(seed):
        if kind == "G":
            return KerasGenerator(*args)
        nc, ndf, dropout = args or (3, 64, 0.4)
        return KerasDiscriminator(nc, ndf, dropout=dropout)


def _structure_hint(kind: str, got: list[Layer], want: list[nn.Module], table: str) -> str:
    """The likely mistake when the parameter layers differ from the reference's."""
    types = [m.type_name for m in got]
    if any(m.isa(*POOLING) for m in got):
        return "found a pooling layer: the Keras networks downsample with stride-2 convolutions, as DCGAN does"
    if kind == "G":
        if not any(m.isa(nn.Linear) for m in got):
            return ("there is no Dense projection: the Keras generator starts with nn.Linear(nz, 2*ngf*4*4), "
                    "reshaped to (2*ngf, 4, 4); a ConvTranspose2d from 1x1 is DCGAN's design, not this one")
        if any(m.isa(nn.BatchNorm1d) for m in got):
            return ("the projection is normalised with BatchNorm1d over its 2*ngf*16 features (Keras' "
                    "BatchNormalization after Dense); here it is BatchNorm2d(2*ngf) on the reshaped (2*ngf, 4, 4) "
                    "map, one mean and variance per channel as after every other layer")
        n_bn, n_up = types.count("BatchNorm2d"), types.count("ConvTranspose2d")
        if n_up != 3:
            return f"found {n_up} ConvTranspose2d layers, expected 3 (4x4 stride 2: 4 -> 8 -> 16 -> 32)"
        if n_bn == 0:
            return "there is no BatchNorm: the generator normalises after the projection and after each ConvTranspose2d"
        if n_bn == 3 and len(got) > 1 and got[1].isa(nn.ConvTranspose2d):
            return "the BatchNorm2d after the projection is missing (before the first LeakyReLU)"
        if n_bn > 4 or (got and got[-1].isa(nn.BatchNorm2d)):
            return "BatchNorm after the output Conv2d: the last layer feeds tanh directly"
        if got and not got[-1].isa(nn.Conv2d) or got[-1].isa(nn.ConvTranspose2d):
            return "the generator ends with Conv2d(ngf, nc, 3, 1, 1) (then tanh) after the three ConvTranspose2d"
    else:
        if any(m.isa(*NORMS) for m in got):
            return "found a normalisation layer: the Keras discriminator has no BatchNorm (only the generator has)"
        if not any(m.isa(nn.Linear) for m in got):
            return ("there is no Dense layer: the Keras discriminator ends with Flatten, Dropout, "
                    "nn.Linear(4*ndf*4*4, 1); a 4x4 Conv2d to one value is DCGAN's design, not this one")
        n_conv = types.count("Conv2d")
        if n_conv != 4:
            return f"found {n_conv} Conv2d layers, expected 4 (3x3: ndf stride 1, then 2ndf, 2ndf, 4ndf stride 2)"
    want_t = [type(m).__name__ for m in want]
    i = next((k for k, (a, b) in enumerate(zip(types, want_t, strict=False)) if a != b), min(len(types), len(want_t)))
    found = types[i] if i < len(types) else "the end of the network"
    expected = want_t[i] if i < len(want_t) else "nothing more"
    return (f"parameter layer {i + 1} (in the order forward runs them) is {found}, expected {expected}. "
            f"Your layers: {table}")


_CONV_KEYS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "dilation", "groups")


def _attr(m: nn.Module, key: str) -> Any:
    v = getattr(m, key)
    return tuple(v) if isinstance(v, (tuple, list)) else v


def _compare_layer(k: int, got: Layer, want: nn.Module, kind: str) -> str | None:
    """The first hyper-parameter of layer k that differs from the reference's, as a message."""
    text, want_text = _layer_text(got), _layer_text(Layer(describe_module(want)[0]))
    if isinstance(want, nn.Linear):
        if (got.attrs.get("in_features"), got.attrs.get("out_features")) != (want.in_features, want.out_features):
            hint = ("nz -> 2*ngf*4*4: the projection fills a (2*ngf) x 4 x 4 map" if kind == "G"
                    else "the flattened (4*ndf) x 4 x 4 map -> one logit")
            return f"layer {k + 1} is {text}, expected {want_text}: {hint}."
        if (got.params.get("bias") is None) != (want.bias is None):
            return f"layer {k + 1}, {text}, has no bias: Keras' Dense has one (use_bias=True), so does the reference."
        return None
    if isinstance(want, (nn.Conv2d, nn.ConvTranspose2d)):
        for key in _CONV_KEYS:
            g = got.attrs.get(key)
            g = tuple(g) if isinstance(g, (tuple, list)) else g
            if g != _attr(want, key):
                hints = {
                    "kernel_size": ("the transposed convolutions are 4x4, every Conv2d 3x3" if kind == "G"
                                    else "every convolution is 3x3"),
                    "stride": ("each ConvTranspose2d has stride 2 (4 -> 8 -> 16 -> 32), the output Conv2d stride 1"
                               if kind == "G" else "strides 1, 2, 2, 2: the first layer keeps 32x32"),
                    "padding": ("'same' padding: 1 for a 3x3 convolution and for a 4x4 stride-2 "
                                "ConvTranspose2d (which then exactly doubles H and W)"),
                    "output_padding": "no output_padding: kernel 4, stride 2, padding 1 already doubles H and W",
                    "in_channels": "check the widths against the layer list",
                    "out_channels": ("widths: projection 2*ngf, then ngf, ngf, ngf, then nc" if kind == "G"
                                     else "widths: ndf, 2*ndf, 2*ndf, 4*ndf"),
                }
                return f"layer {k + 1} is {text}, expected {want_text}: {hints.get(key, key + ' differs')}."
        if (got.params.get("bias") is None) != (want.bias is None):
            return (f"layer {k + 1}, {text}, has no bias: Keras layers have one by default (use_bias=True), and so "
                    "do the reference's.")
        return None
    if isinstance(want, nn.BatchNorm2d):
        if got.attrs.get("num_features") != want.num_features:
            return f"layer {k + 1} is {text}, expected {want_text}: it normalises the channels of the layer before."
        if abs(float(got.attrs.get("eps", -1)) - want.eps) > 1e-12:
            hint = " (0.001 is Keras' default epsilon)" if abs(float(got.attrs.get("eps", 0)) - 1e-3) < 1e-12 else ""
            return (f"layer {k + 1}, {text}, has eps={got.attrs.get('eps')}, expected PyTorch's default "
                    f"{want.eps}{hint}.")
        if got.attrs.get("momentum") != want.momentum:
            hint = (" (Keras' momentum=0.99 is PyTorch's momentum=0.01: the weight of the OLD average)"
                    if got.attrs.get("momentum") in (0.01, 0.99) else "")
            return (f"layer {k + 1}, {text}, has momentum={got.attrs.get('momentum')}, expected PyTorch's default "
                    f"{want.momentum}{hint}.")
        if got.attrs.get("affine") is not True or got.attrs.get("track_running_stats") is not True:
            return f"layer {k + 1}, {text}: keep the defaults affine=True, track_running_stats=True."
    return None


def _load_student_weights(ref: nn.Module, pairs: list[tuple[Layer, nn.Module]], call_text: str) -> None:
    """Copy the student's initial parameters and buffers into the matching reference layers."""
    with torch.no_grad():
        for k, (g, w) in enumerate(pairs):
            for key, target in list(w.named_parameters(recurse=False)) + list(w.named_buffers(recurse=False)):
                source = g.params.get(key, g.buffers.get(key))
                if type(source) is not torch.Tensor or tuple(source.shape) != tuple(target.shape):
                    got_shape = tuple(source.shape) if type(source) is torch.Tensor else None
                    fail(f"{call_text}: {key} of layer {k + 1} ({_layer_text(g)}) has shape {got_shape}, "
                         f"expected {tuple(target.shape)}.")
                target.copy_(source.to(target.dtype))


def _g_variant(ref: nn.Module, z: torch.Tensor, slope: float = 0.2, layout: str = "nchw",
               final: str = "tanh") -> torch.Tensor:
    """The reference generator's forward with one mistake built in (on a copy: buffers untouched)."""
    g = copy.deepcopy(ref)
    x = g.project(z.flatten(1))
    n, c = x.shape[0], g.ngf * 2
    x = x.view(n, 4, 4, c).permute(0, 3, 1, 2) if layout == "nhwc" else x.view(n, c, 4, 4)
    for m in g.main:
        if isinstance(m, nn.LeakyReLU):
            x = F.leaky_relu(x, slope)
        elif isinstance(m, nn.Tanh):
            x = {"tanh": torch.tanh, "none": lambda t: t, "sigmoid": torch.sigmoid}[final](x)
        else:
            x = m(x)
    return x


def _d_variant(ref: nn.Module, x: torch.Tensor, slope: float = 0.2, sigmoid: bool = False,
               p: float | None = None, seed: int | None = None) -> torch.Tensor:
    """The reference discriminator's forward with one mistake built in; dropout seeded like the probe's."""
    d = copy.deepcopy(ref)
    with _seeded_global_rng(seed if seed is not None else 0):
        h = x
        for m in d.main:
            if isinstance(m, nn.LeakyReLU):
                h = F.leaky_relu(h, slope)
            elif isinstance(m, nn.Dropout):
                h = F.dropout(h, m.p if p is None else p, training=d.training)
            else:
                h = m(h)
    out = h.flatten()
    return torch.sigmoid(out) if sigmoid else out


def _value(outcome: ForwardRun, what: str) -> torch.Tensor:
    value = unwrap(outcome)
    if type(value) is not torch.Tensor:
        fail(f"{what} returned a {type_name(value)}, expected a torch.Tensor.")
    return value


def _judge_network(cases: dict[str, Any], data: list[NetworkReply]) -> str:
    """Build, structure, parameter count, then outputs with the student's weights in the reference."""
    kind, name = cases["kind"], cases["name"]
    expect(type(data) is list and len(data) == len(cases["configs"]),
           "the probe sent no result for every configuration.")
    for case, reply in zip(cases["configs"], data, strict=True):
        args = tuple(case["args"])
        call_text = f"{name}{args}"
        unwrap(reply["build"])
        if not reply.get("module"):
            fail(f"{call_text} built a {reply.get('type')}, expected an nn.Module: does the class subclass nn.Module "
                 "and call super().__init__()?")
        _judge_provenance(reply, call_text)
        x = case["x"]
        x_in = x[:, :, None, None] if kind == "G" else x
        ref = _reference(kind, args, case["seed"])
        if kind == "G" and "error" in reply["train"] and "error" not in reply.get("eval_flat", {"error": ""}):
            fail(f"{call_text} fails on noise of shape {tuple(x_in.shape)} ({reply['train']['error']}): the "
                 "lessons draw z as (N, nz, 1, 1); accept it as well as (N, nz), e.g. self.project(z.flatten(1)).")
        unwrap(reply["train"])
        _expect_sizes(reply, call_text)
        ran, unused = _student_layers(reply)
        ref_ran = _ref_layers(ref, x_in)
        got_p = [m for m in ran if m.isa(*PARAM_TYPES) or any(v is not None for v in m.params.values())]
        want_p = [m for _, m in ref_ran if isinstance(m, PARAM_TYPES)]
        table = " -> ".join(_layer_text(m) for m in ran)
        if len(got_p) != len(want_p) or not all(m.isa(type(w)) for m, w in zip(got_p, want_p, strict=True)):
            if unused:
                fail(f"{call_text}: layer {unused[0].name!r} ({_layer_text(unused[0])}) holds parameters but never "
                     "runs as a module in forward: call the layer (self.layer(x)) rather than a functional op on its "
                     "parameters, and use every layer you define.")
            if not got_p:
                fail(f"{call_text}: no layer with parameters ran in forward; build the network from nn.Linear, "
                     "nn.Conv2d / nn.ConvTranspose2d and nn.BatchNorm2d modules.")
            fail(f"{call_text}: {_structure_hint(kind, got_p, want_p, table)}")
        for k, (g, w) in enumerate(zip(got_p, want_p, strict=True)):
            msg = _compare_layer(k, g, w, kind)
            if msg:
                fail(f"{call_text}: {msg}")
        n_got, n_want = _n_params(reply["desc"]), sum(p.numel() for p in ref.parameters())
        if n_got != n_want:
            extra = f" (layers that never run in forward: {', '.join(m.name for m in unused)})" if unused else ""
            fail(f"{call_text} has {n_got:,} parameters, expected {n_want:,} like dcgan_ref.keras_gan's{extra}.")
        if kind == "D" and any(m.isa(nn.Sigmoid) for m in ran):
            fail(f"{call_text} ends with a Sigmoid: return the logit (no sigmoid, like dcgan_ref's "
                 "KerasDiscriminator) and pair it with BCEWithLogitsLoss.")
        _load_student_weights(ref, list(zip(got_p, want_p, strict=True)), call_text)
        if kind == "G":
            _judge_g_outputs(reply, ref, x, call_text, got_p, want_p, ran)
        else:
            _judge_d_outputs(reply, ref, x, call_text, case["seed"], ran)
    n = len(cases["configs"])
    what = "generator" if kind == "G" else "discriminator"
    return (f"{name}: layers, parameter count and outputs (train and eval mode) match dcgan_ref.keras_gan's "
            f"{what} ({n} configuration{'s' if n > 1 else ''}).")


def _judge_provenance(reply: NetworkReply, call_text: str) -> None:
    """The network's layers are built by its class, each instance with its own freshly drawn parameters."""
    copied = reply.get("copied")
    if type(copied) is not list or any(type(n) is not str for n in copied):
        fail(f"{call_text}: the probe sent no record of how the network was built.")
    if copied:
        fail(f"{call_text}: layer {copied[0] or '(the network itself)'!r} registered no parameter while the class "
             "was built: it is a copy of a module made earlier (copy.deepcopy of another network's layers?). Build "
             "every layer in __init__ (nn.Linear(...), nn.Conv2d(...), ...).")
    if reply.get("shared") is True:
        fail(f"{call_text}: two instances share parameter tensors: every network built must own its parameters "
             "(build the layers in __init__, do not reuse layers made outside the class).")
    if reply.get("fresh") is False:
        fail(f"{call_text}: two instances built under different random seeds have identical parameters: the layers "
             "are not initialised when the class is built (copied, or loaded from a network made earlier). Build "
             "every layer in __init__ and keep PyTorch's default initialisation.")


def _judge_g_outputs(reply: NetworkReply, ref: nn.Module, z: torch.Tensor, call_text: str,
                     got_p: list[Layer], want_p: list[nn.Module], ran: list[Layer]) -> None:
    z4 = z[:, :, None, None]
    shape = (z.shape[0], ref.nc, 32, 32)
    out = _value(reply["train"], f"{call_text} (train mode)")
    if tuple(out.shape) != shape:
        fail(f"{call_text} maps z {tuple(z4.shape)} to shape {tuple(out.shape)}, expected {shape}.")
    ref.train()
    with torch.no_grad():
        expected = ref(z4)
        if not _close(out, expected):
            variants = [
                (dict(slope=0.0), "it uses ReLU where the Keras generator uses LeakyReLU(0.2) (seed tutorials: "
                                  "LeakyReLU in G too, unlike DCGAN's ReLU)"),
                (dict(slope=0.01), "its LeakyReLU slope is 0.01 (PyTorch's default): the Keras GAN uses 0.2"),
                (dict(layout="nhwc"), "the projection is reshaped channels-last, (N, 4, 4, C) as Keras' "
                                      "Reshape((4, 4, C)) lays it out; PyTorch maps are (N, C, 4, 4): "
                                      "x.view(N, C, 4, 4)"),
                (dict(final="none"), "there is no tanh at the end: images live in [-1, 1]"),
                (dict(final="sigmoid"), "it ends with a sigmoid, which gives [0, 1]: the images live in [-1, 1], "
                                        "use tanh"),
            ]
            for kwargs, hint in variants:
                if _close(out, _g_variant(ref, z4, **kwargs)):
                    fail(f"{call_text}: with the same weights its output differs from the reference's: {hint}.")
            fail(f"{call_text}: with the same weights its output in train mode differs from the reference's, "
                 f"{_first_difference(out, expected)}: check the order (projection, reshape, BatchNorm, "
                 "LeakyReLU(0.2); then ConvTranspose2d, BatchNorm, LeakyReLU, three times; Conv2d, tanh). "
                 "Your layers: " + " -> ".join(_layer_text(m) for m in ran))
    # running statistics after that one train-mode pass
    after = {e["name"]: Layer(e) for e in reply["after"]}
    for k, (g, w) in enumerate(zip(got_p, want_p, strict=True)):
        if isinstance(w, nn.BatchNorm2d):
            mine = after[g.name].buffers.get("running_var")
            if not _close(mine, w.running_var):
                fail(f"{call_text}: the running variance of layer {k + 1} ({_layer_text(g)}) after one train-mode pass "
                     "differs from the reference's: keep BatchNorm2d's defaults (momentum 0.1) and call the layer "
                     "(not F.batch_norm with training=True).")
    ref.eval()
    with torch.no_grad():
        expected = ref(z4)
    out = _value(reply["eval"], f"{call_text} (eval mode)")
    if tuple(out.shape) != tuple(expected.shape):
        fail(f"{call_text}: in eval mode its output has shape {tuple(out.shape)}, expected {tuple(expected.shape)}.")
    if not _close(out, expected):
        fail(f"{call_text}: in eval mode its output differs from the reference's, {_first_difference(out, expected)}: "
             "in eval mode BatchNorm must use its running statistics (keep nn.BatchNorm2d layers, no "
             "F.batch_norm(..., training=True)).")
    flat = reply["eval_flat"]
    if "error" in flat:
        fail(f"{call_text} fails on noise of shape {tuple(z.shape)} ({flat['error']}): accept (N, nz) as well as "
             "(N, nz, 1, 1), e.g. z.flatten(1) before the projection.")
    expect(_close(_value(flat, call_text), expected),
           f"{call_text} gives different images for z of shape {tuple(z.shape)} and the same z as {tuple(z4.shape)}: "
           "flatten z to (N, nz) first.")
    one = _value(reply["one"], f"{call_text} on a batch of one")
    expect(tuple(one.shape) == (1, *shape[1:]),
           f"{call_text} on one noise vector returns shape {tuple(one.shape)}, expected {(1, *shape[1:])}.")


def _judge_d_outputs(reply: NetworkReply, ref: nn.Module, x: torch.Tensor, call_text: str, seed: int,
                     ran: list[Layer]) -> None:
    n = x.shape[0]
    ref.eval()
    expected_eval = _d_variant(ref, x)
    out = _value(reply["eval"], f"{call_text} (eval mode)")
    if type(out) is torch.Tensor and out.numel() == n and tuple(out.shape) != (n,):
        fail(f"{call_text} returns shape {tuple(out.shape)} for {n} images, expected ({n},): one logit per image, "
             "e.g. .flatten() or .view(-1) (not .squeeze(), which also drops the batch axis of a batch of one).")
    if tuple(out.shape) != (n,):
        fail(f"{call_text} returns shape {tuple(out.shape)} for images {tuple(x.shape)}, expected ({n},).")
    again = _value(reply["eval_again"], f"{call_text} (eval mode)")
    if not _close(again, out, rtol=0, atol=0):
        fail(f"{call_text} gives different outputs for the same images in eval mode: dropout is still active. Use "
             "nn.Dropout (which switches off in eval mode) or F.dropout(x, p, training=self.training).")
    if not _close(out, expected_eval):
        variants = [
            (dict(sigmoid=True), "it applies a sigmoid: return the logit (dcgan_ref's KerasDiscriminator does; the "
                                 "sigmoid lives inside BCEWithLogitsLoss)"),
            (dict(slope=0.01), "its LeakyReLU slope is 0.01 (PyTorch's default): the Keras GAN uses 0.2"),
            (dict(slope=0.0), "it uses ReLU where the discriminator uses LeakyReLU(0.2)"),
            (dict(slope=0.01, sigmoid=True), "LeakyReLU slope 0.01 instead of 0.2, and a sigmoid on the logit"),
        ]
        for kwargs, hint in variants:
            if _close(out, _d_variant(ref, x, **kwargs)):
                fail(f"{call_text}: with the same weights its output differs from the reference's: {hint}.")
        fail(f"{call_text}: with the same weights its output in eval mode differs from the reference's, "
             f"{_first_difference(out, expected_eval)}: check the order (Conv2d, LeakyReLU(0.2) four times; Flatten, "
             "Dropout, Linear). Your layers: " + " -> ".join(_layer_text(m) for m in ran))
    one = _value(reply["one"], f"{call_text} on a batch of one")
    expect(tuple(one.shape) == (1,),
           f"{call_text} returns shape {tuple(one.shape)} for a batch of one image, expected (1,): flatten with "
           ".flatten() or .view(-1), not .squeeze().")
    ref.train()
    train_out = _value(reply["train"], f"{call_text} (train mode)")
    expected_train = _d_variant(ref, x, seed=seed + 1)
    if not _close(train_out, expected_train):
        if _close(train_out, expected_eval):
            fail(f"{call_text} in train mode gives its eval-mode output: there is no dropout. Add "
                 f"nn.Dropout({ref.dropout}) between Flatten and the Linear layer.")
        for p in (0.5, 0.4, 0.25, 0.3, 0.2, 0.6, 0.1):
            if abs(p - ref.dropout) > 1e-12 and _close(train_out, _d_variant(ref, x, p=p, seed=seed + 1)):
                fail(f"{call_text} drops units with p={p}, expected the dropout argument, {ref.dropout}.")
        fail(f"{call_text}: in train mode (dropout on, same random seed) its output differs from the reference's, "
             f"{_first_difference(train_out, expected_train)}: one nn.Dropout(dropout), after Flatten, before the "
             "Linear layer, and nothing else random.")


def _network_cases(kind: str, name: str, hidden: bool) -> dict[str, Any]:
    """(constructor args, batch): small widths in the visible run, the defaults and odd sizes hidden."""
    if kind == "G":
        shown = [((100, 32, 3), 4)]
        more = [((), 2), ((16, 8, 1), 5), ((32, 16, 1), 3)]
    else:
        shown = [((3, 16, 0.4), 4)]
        more = [((), 2), ((1, 8, 0.25), 5), ((1, 16, 0.5), 3)]
    configs = []
    for i, (args, batch) in enumerate(shown + (more if hidden else [])):
        full = args or ((100, 128, 3) if kind == "G" else (3, 64, 0.4))
        # the hidden configurations' weights and inputs come from the instructor's secret (shapes are public)
        seed = 4000 + 17 * i + (0 if kind == "G" else 500) if i == 0 else hidden_seed(10, name, i) % 2**31
        x = randn(batch, full[0], seed=seed) if kind == "G" else torch.tanh(randn(batch, full[0], 32, 32, seed=seed))
        configs.append({"args": args, "seed": seed, "x": x})
    return {"kind": kind, "name": name, "configs": configs}


check_keras_generator = exercise(
    "keras_generator", _probe_network, _judge_network, lambda hidden: _network_cases("G", "KerasGenerator", hidden))
check_keras_discriminator = exercise(
    "keras_discriminator", _probe_network, _judge_network,
    lambda hidden: _network_cases("D", "KerasDiscriminator", hidden))


# =============================================================================================
# exercise 3: D's accuracy on real and on fake images


def _accuracy_cases(hidden: bool) -> list[dict[str, Any]]:
    """Batches of logits: unequal sizes, a D that is sure, exact zeros (D(x) = 0.5: neither side)."""
    cases = [
        {"real": torch.tensor([2.0, -1.0, 0.5, 3.0, -0.25, 1.5, 4.0, -2.0]),
         "fake": torch.tensor([-3.0, 0.75, -0.4, -1.0, 0.3, -6.0])},
        {"real": 3 * randn(64, seed=71) + 1, "fake": 3 * randn(40, seed=72) - 1},
        {"real": torch.tensor([0.0, 0.0, 1.0, 0.2, 0.6, -0.7]), "fake": torch.tensor([0.0, -0.2, -0.6, 0.4, 0.0])},
        {"real": torch.tensor([0.3, 0.4, 0.1, 0.45, 2.0]), "fake": torch.tensor([-0.3, -0.45, -0.2, 0.1])},
    ]
    if hidden:
        def secret(i: int) -> int:
            return hidden_seed(10, "d_accuracy", i)

        cases += [
            {"real": 10 * randn(128, seed=secret(0)), "fake": 10 * randn(128, seed=secret(1))},
            {"real": torch.tensor([25.0]), "fake": torch.tensor([-25.0])},
            {"real": randn(5, seed=secret(2)) - 3, "fake": randn(7, seed=secret(3)) + 3},
            {"real": torch.tensor([0.0, 0.0]), "fake": torch.tensor([0.0, 0.0, 0.0])},
        ]
    return cases


class AccuracyRun(Outcome, total=False):
    """One call of the student's d_accuracy: its outcome, and whether the input tensors were left unchanged."""

    unchanged: bool


def _probe_accuracy(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[AccuracyRun]:
    """Probe side: ``fn(real_logits, fake_logits)`` on each batch (on copies: inputs must stay unchanged)."""
    out: list[AccuracyRun] = []
    for case in cases:
        real, fake = case["real"].clone(), case["fake"].clone()
        res: AccuracyRun = attempt(fn, real, fake, what="d_accuracy")
        res["unchanged"] = bool(torch.equal(real, case["real"]) and torch.equal(fake, case["fake"]))
        out.append(res)
    return out


@judge_only
def reference_accuracy(real: torch.Tensor, fake: torch.Tensor) -> tuple[float, float]:
    """What dcgan_ref.train.discriminator_step logs: D(x) > 0.5 on real, D(G(z)) < 0.5 on fake.

    Refused while a probe runs the student's code (``judge_only``): it is the answer the student's is compared
    with."""
    p_real, p_fake = torch.sigmoid(real.double()), torch.sigmoid(fake.double())
    return float((p_real > 0.5).double().mean()), float((p_fake < 0.5).double().mean())


def _judge_accuracy(cases: list[dict[str, Any]], data: list[AccuracyRun]) -> str:
    """Two Python floats in [0, 1], equal to the reference; mistakes named by the formula they match."""
    expect(type(data) is list and len(data) == len(cases), "the probe sent no result for every batch.")
    for case, outcome in zip(cases, data, strict=True):
        real, fake = case["real"], case["fake"]
        what = f"d_accuracy(real logits {tuple(real.shape)}, fake logits {tuple(fake.shape)})"
        got = unwrap(outcome)
        expect(outcome.get("unchanged") is True, f"{what} changed its input tensors in place: compute on copies.")
        if type(got) not in (tuple, list) or len(got) != 2:
            fail(f"{what} returned a {type_name(got)}, expected a pair (acc_real, acc_fake).")
        for label, v in zip(("acc_real", "acc_fake"), got, strict=True):
            if type(v) is torch.Tensor:
                fail(f"{what}: {label} is a tensor, expected a Python float: take .item() of the mean.")
            if type(v) is int and len(real) > 1:
                fail(f"{what}: {label} is the int {v}, expected a float in [0, 1]: the fraction, not the count "
                     "(.float().mean().item()).")
            if type(v) is not float:
                fail(f"{what}: {label} is a {type_name(v)}, expected a Python float (.item() or float(...)).")
        want = reference_accuracy(real, fake)
        a_r, a_f = got
        if not (math.isfinite(a_r) and math.isfinite(a_f)):
            fail(f"{what} returned ({a_r}, {a_f}), expected ({want[0]:.4g}, {want[1]:.4g}): each accuracy is a "
                 "fraction in [0, 1], never NaN or inf (an empty batch? a division by zero?).")
        if close_number(a_r, want[0], atol=1e-6) and close_number(a_f, want[1], atol=1e-6):
            continue
        p_r, p_f = torch.sigmoid(real.double()), torch.sigmoid(fake.double())

        def mean(t: torch.Tensor) -> float:
            return float(t.double().mean())

        variants = [
            ((want[1], want[0]), "the two are swapped: return (accuracy on real, accuracy on fake)"),
            ((100 * want[0], 100 * want[1]), "these are percentages: return fractions in [0, 1]"),
            ((want[0], mean(p_f > 0.5)), "acc_fake counts the fakes D calls real: D is right on a fake when "
                                         "D(G(z)) < 0.5"),
            ((want[0], 1 - want[0]), "acc_fake is 1 - acc_real: it must be measured on the fake batch"),
            ((mean(real > 0.5), mean(fake < 0.5)), "the logits are compared with 0.5: D's outputs here are logits, "
                                                  "so D says real when the logit > 0 (sigmoid(logit) > 0.5)"),
            ((mean(p_r >= 0.5), mean(p_f <= 0.5)), "a D output of exactly 0.5 (logit 0) is counted as correct: "
                                                  "D is right on a real image only when D(x) > 0.5, on a fake only "
                                                  "when D(G(z)) < 0.5"),
            ((mean(p_r >= 0.5), mean(p_f < 0.5)), "a real image with D(x) = 0.5 exactly (logit 0) is counted as "
                                                 "recognised: D is right on a real image only when D(x) > 0.5"),
            ((mean(p_r > 0.5), mean(p_f <= 0.5)), "a fake with D(G(z)) = 0.5 exactly (logit 0) is counted as caught: "
                                                 "D is right on a fake only when D(G(z)) < 0.5"),
        ]
        both = float(torch.cat([(p_r > 0.5), (p_f < 0.5)]).double().mean())
        variants.append(((both, both), "one accuracy over both batches pooled: report real and fake separately"))
        for values, hint in variants:
            if all(close_number(a, v, rtol=1e-6, atol=1e-6) for a, v in zip((a_r, a_f), values, strict=True)):
                fail(f"{what} returned ({a_r:.4g}, {a_f:.4g}), expected ({want[0]:.4g}, {want[1]:.4g}): {hint}.")
        fail(f"{what} returned ({a_r:.4g}, {a_f:.4g}), expected ({want[0]:.4g}, {want[1]:.4g}): acc_real is the "
             "fraction of real images with D(x) > 0.5, acc_fake the fraction of fakes with D(G(z)) < 0.5.")
    return f"d_accuracy matches the accuracy dcgan_ref's trainer logs on {len(cases)} batches."


check_d_accuracy = exercise("d_accuracy", _probe_accuracy, _judge_accuracy, _accuracy_cases)


# =============================================================================================
# exercise 4: one ablation run

#: the fixed eval noise (the same for every row and seed) is drawn from this seed, unless config says otherwise
RESULT_KEYS = ("frechet", "grid", "acc_real", "acc_fake")

#: the trainer's modules (train.py and what was split out of it: config, speed, batches, ema, resume, artifacts)
_REFERENCE_MODULES = ("models", "keras_gan", "train", "config", "speed", "batches", "ema", "resume", "artifacts",
                      "losses", "evaluate", "data")


def grading_build(config: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """``kit["build"]`` while grading: dcgan_ref's 32x32 DCGAN (logits D), or its Keras GAN, tiny widths."""
    from dcgan_ref.keras_gan import KerasDiscriminator, KerasGenerator
    from dcgan_ref.models import Discriminator, Generator, weights_init

    nz, ngf, ndf, nc = config["nz"], config["ngf"], config["ndf"], config["nc"]
    if config.get("arch") == "keras":
        return KerasGenerator(nz, ngf, nc), KerasDiscriminator(nc, ndf)
    G, D = Generator(nz, ngf, nc, image_size=32), Discriminator(nc, ndf, image_size=32)
    G.apply(weights_init)
    D.apply(weights_init)
    return G, D


def feature_distance(real: torch.Tensor, fake: torch.Tensor) -> float:
    """Random-feature Fréchet distance (dcgan_ref.evaluate) of image batches; grey images become RGB."""
    from dcgan_ref.evaluate import random_feature_distance

    def rgb(t: torch.Tensor) -> torch.Tensor:
        return t.expand(-1, 3, -1, -1) if t.shape[1] == 1 else t

    return random_feature_distance(rgb(real.detach().float().cpu()), rgb(fake.detach().float().cpu()))


def make_kit(build: Callable[[dict[str, Any]], tuple[nn.Module, nn.Module]]) -> dict[str, Any]:
    """The tools a run gets, as the lesson's ``KIT``: the nets, dcgan_ref's step, noise schedule and sampler."""
    from dcgan_ref.data import from_gan_range
    from dcgan_ref.losses import instance_noise_sigma
    from dcgan_ref.train import sample_images, train_step

    return {"build": build, "train_step": train_step, "noise_sigma": instance_noise_sigma,
            "sample": sample_images, "distance": feature_distance, "to_image": from_gan_range}


def _codes_in(obj: Any, seen: set[int]) -> Iterator[CodeType]:
    """Every code object of a function or class, nested ones (closures, generator expressions) included."""
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, CodeType):
        yield obj
        for const in obj.co_consts:
            if isinstance(const, CodeType):
                yield from _codes_in(const, seen)
    elif isinstance(obj, FunctionType):
        yield from _codes_in(obj.__code__, seen)
        wrapped = getattr(obj, "__wrapped__", None)
        if wrapped is not None:
            yield from _codes_in(wrapped, seen)
    elif isinstance(obj, (staticmethod, classmethod)):
        yield from _codes_in(obj.__func__, seen)
    elif isinstance(obj, property):
        for f in (obj.fget, obj.fset, obj.fdel):
            if f is not None:
                yield from _codes_in(f, seen)
    elif isinstance(obj, type):
        for v in vars(obj).values():
            yield from _codes_in(v, seen)


def kit_allowance() -> list[CodeType]:
    """The dcgan_ref code a run may execute through the kit (the kit's tools and everything they call).

    dcgan_ref has no ablation runner: what this exercise is compared with is ``reference_ablation``
    below, so the student's run may use the reference's models, step, schedule and sampler."""
    import importlib

    seen: set[int] = set()
    codes: list[CodeType] = []
    for name in _REFERENCE_MODULES:
        module: ModuleType = importlib.import_module(f"dcgan_ref.{name}")
        for value in vars(module).values():
            if getattr(value, "__module__", None) == module.__name__:
                codes.extend(_codes_in(value, seen))
    return codes


@judge_only
def reference_ablation(
    config: dict[str, Any],
    data: torch.Tensor,
    kit: dict[str, Any],
    steps: int,
    seed: int,
    *,
    noise: str = "anneal",
    noise_generator: bool = True,
    batch_rng: str = "seeded",
    lr: float | None = None,
    betas: tuple[float, float] = (0.5, 0.999),
    sample: str = "kit",
    eval_noise: str = "fixed",
    real_eval: str = "first",
) -> dict[str, Any]:
    """The lesson's protocol (judge side), with switches that build in the usual mistakes.

    Refused while a probe runs the student's code (``judge_only``): it is the answer the run is compared with."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G, D = kit["build"](config)
        lr = config["lr"] if lr is None else lr
        opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
        opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
        gen = torch.Generator(data.device).manual_seed(seed)
        b, nz = config["batch_size"], config["nz"]
        acc_real, acc_fake = [], []
        for step in range(steps):
            if batch_rng == "seeded":
                idx = torch.randint(len(data), (b,), generator=gen, device=data.device)
                z = torch.randn(b, nz, 1, 1, generator=gen, device=data.device)
            else:
                idx = torch.randint(len(data), (b,), device=data.device)
                z = torch.randn(b, nz, 1, 1, device=data.device)
            sigma = {"anneal": kit["noise_sigma"](config["instance_noise"], step, steps),
                     "constant": config["instance_noise"], "none": 0.0,
                     "late": kit["noise_sigma"](config["instance_noise"], step + 1, steps)}[noise]
            logs = kit["train_step"](G, D, opt_G, opt_D, data[idx], z, noise_sigma=sigma,
                                     noise_generator=gen if noise_generator else None)
            acc_real.append(float(logs["acc_real"]))
            acc_fake.append(float(logs["acc_fake"]))
        n = config["n_eval"]
        eval_gen = torch.Generator(data.device).manual_seed(config["eval_seed"]) if eval_noise == "fixed" else gen
        z_eval = torch.randn(n, nz, 1, 1, generator=eval_gen, device=data.device)
        if sample == "kit":
            fake = kit["sample"](G, z_eval)
        else:
            with torch.no_grad():
                fake = G.eval()(z_eval)
        real = data[:n] if real_eval == "first" else data
        from torchvision.utils import make_grid

        return {"frechet": float(kit["distance"](real, fake)),
                "grid": make_grid(kit["to_image"](fake[:64]), nrow=8, padding=2).cpu(),
                "acc_real": acc_real, "acc_fake": acc_fake}


def _ablation_cases(hidden: bool) -> list[dict[str, Any]]:
    """Tiny runs: a handful of steps of 32x32 nets a few channels wide on 64 images."""
    base = {"name": "grading", "arch": "dcgan", "nz": 16, "ngf": 4, "ndf": 4, "nc": 1, "lr": 2e-3,
            "batch_size": 8, "instance_noise": 0.3, "n_eval": 24, "eval_seed": 1234}
    cases = [{"config": base, "steps": 4, "seed": 3, "other_seed": 4,
              "data": torch.tanh(2 * randn(64, 1, 32, 32, seed=81))}]
    if hidden:  # the seeds and data of the hidden runs come from the instructor's secret
        s1, s2 = (hidden_seed(10, "run_ablation", i) % 10**6 for i in (0, 1))
        cases += [
            {"config": {**base, "name": "keras", "arch": "keras", "ngf": 4, "ndf": 4, "nc": 3, "lr": 1e-3,
                        "instance_noise": 0.0, "n_eval": 20, "eval_seed": 99, "nz": 12, "batch_size": 6},
             "steps": 3, "seed": s1, "other_seed": s1 + 1,
             "data": torch.tanh(2 * randn(40, 3, 32, 32, seed=hidden_seed(10, "run_ablation", 2)))},
            {"config": {**base, "instance_noise": 0.5, "n_eval": 70, "batch_size": 5},
             "steps": 6, "seed": s2, "other_seed": s2 + 1,
             "data": torch.tanh(2 * randn(96, 1, 32, 32, seed=hidden_seed(10, "run_ablation", 3)))},
        ]
    return cases


class AblationRuns(TypedDict):
    """One case of run_ablation, run three times: the outcome of each run."""

    run: Outcome  #: with the case's seed, from one global RNG state
    again: Outcome  #: with the same seed, from another global RNG state
    other: Outcome  #: with another seed


def _probe_ablation(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[AblationRuns]:
    """Probe side: each case run three times: twice with the same seed (from different global RNG
    states: a run must not depend on them), once with another seed. The kit is the reference's tools,
    which the student's run may call (``allow_reference``); anything else of dcgan_ref is refused."""
    kit = make_kit(grading_build)
    allowed = [*kit.values(), *kit_allowance()]
    replies: list[AblationRuns] = []
    for case in cases:
        reply = {}
        for key, seed, ambient in (("run", case["seed"], 111), ("again", case["seed"], 222),
                                   ("other", case["other_seed"], 111)):
            with _seeded_global_rng(ambient):
                reply[key] = attempt(fn, dict(case["config"]), case["data"].clone(), dict(kit), case["steps"],
                                     seed, what="run_ablation", allow_reference=allowed)
        replies.append(reply)
    return replies


def _result(outcome: Any, what: str, steps: int) -> dict[str, Any]:
    """The run's result, checked for its structure."""
    got = unwrap(outcome)
    if type(got) is not dict:
        fail(f"{what} returned a {type_name(got)}, expected a dict with keys {', '.join(RESULT_KEYS)}.")
    missing = [k for k in RESULT_KEYS if k not in got]
    if missing:
        fail(f"{what} returned a dict without {', '.join(repr(k) for k in missing)}: expected the keys "
             f"{', '.join(RESULT_KEYS)}.")
    fd = got["frechet"]
    if type(fd) is not float:
        hint = ": convert it with float(...)" if type(fd) is torch.Tensor or type_name(fd).startswith("numpy") else ""
        fail(f"{what}: 'frechet' is a {type_name(fd)}, expected a Python float{hint}.")
    if not math.isfinite(fd):
        fail(f"{what}: 'frechet' is {fd}, expected a finite distance.")
    grid = got["grid"]
    if type(grid) is not torch.Tensor or grid.dim() != 3 or grid.shape[0] != 3:
        shape = tuple(grid.shape) if type(grid) is torch.Tensor else type_name(grid)
        fail(f"{what}: 'grid' is {shape}, expected one image (3, H, W): make_grid(kit['to_image'](fake[:64]), "
             "nrow=8, padding=2).")
    if float(grid.min()) < -1e-6 or float(grid.max()) > 1 + 1e-6:
        fail(f"{what}: 'grid' has values in [{float(grid.min()):.3g}, {float(grid.max()):.3g}], expected [0, 1]: map "
             "G's [-1, 1] images with kit['to_image'] before make_grid.")
    for key in ("acc_real", "acc_fake"):
        v = got[key]
        if type(v) is not list:
            fail(f"{what}: '{key}' is a {type_name(v)}, expected a list of {steps} floats, logs['{key}'] of every "
                 "step.")
        if len(v) != steps:
            fail(f"{what}: '{key}' has {len(v)} values: it trains {len(v)} steps, expected steps={steps} "
                 "(for step in range(steps)), one value per step.")
        if any(type(a) is not float for a in v):
            bad = next(a for a in v if type(a) is not float)
            fail(f"{what}: '{key}' holds a {type_name(bad)}, expected Python floats: float(logs['{key}']).")
    return got


def _same(a: dict[str, Any], b: dict[str, Any], rtol: float = 1e-4, atol: float = 1e-5) -> dict[str, bool]:
    """Which parts of two results agree."""
    grid = tuple(a["grid"].shape) == tuple(b["grid"].shape) and bool(
        ((a["grid"].double() - b["grid"].double()).abs() <= atol).all())
    fd = abs(a["frechet"] - b["frechet"]) <= atol + rtol * abs(b["frechet"])
    acc = len(a["acc_real"]) == len(b["acc_real"]) and all(
        abs(x - y) <= 1e-6 for k in ("acc_real", "acc_fake") for x, y in zip(a[k], b[k], strict=True))
    return {"grid": grid, "frechet": fd, "acc": acc}


_ABLATION_MISTAKES: list[tuple[dict[str, Any], str]] = [
    (dict(noise="none"), "no instance noise reaches D: pass noise_sigma=kit['noise_sigma'](config['instance_noise'], "
                         "step, steps) to kit['train_step']"),
    (dict(noise="constant"), "the instance noise is constant: anneal it, sigma = kit['noise_sigma']("
                             "config['instance_noise'], step, steps), from sigma0 at step 0 down to 0"),
    (dict(noise="late"), "the noise schedule is one step late: step 0 (the first) gets the full sigma0, so count "
                         "steps from 0 (for step in range(steps))"),
    (dict(noise_generator=False), "the instance noise comes from the global RNG: pass noise_generator=gen, the seeded "
                                  "generator that also draws the batches and z"),
    (dict(batch_rng="global"), "the batches and z come from the global RNG, not from gen = torch.Generator("
                               "data.device).manual_seed(seed): pass generator=gen to torch.randint and torch.randn"),
    (dict(lr=2e-4), "the learning rate is not config['lr'] (2e-4 is hard-coded?)"),
    (dict(betas=(0.9, 0.999)), "Adam runs with its default betas (0.9, 0.999): DCGAN's are (0.5, 0.999)"),
    (dict(sample="eval"), "the samples come from G in eval mode (running BatchNorm statistics): sample with "
                          "kit['sample'](G, z_eval), as the trainer does"),
    (dict(eval_noise="gen"), "the evaluation noise comes from the training generator: draw z_eval from its own "
                             "torch.Generator seeded with config['eval_seed'], the same for every row"),
    (dict(real_eval="all"), "the distance compares the samples with the whole data set: use data[:config['n_eval']], "
                            "as many real images as samples"),
]


def _judge_ablation(cases: list[dict[str, Any]], data: list[AblationRuns]) -> str:
    """Structure, determinism, the seed, then the reference protocol on the same seed."""
    expect(type(data) is list and len(data) == len(cases), "the probe sent no result for every run.")
    kit = make_kit(grading_build)
    for case, reply in zip(cases, data, strict=True):
        cfg, steps, seed = case["config"], case["steps"], case["seed"]
        what = (f"run_ablation(config {cfg['name']!r}, data {tuple(case['data'].shape)}, kit, steps={steps}, "
                f"seed={seed})")
        run = _result(reply["run"], what, steps)
        again = _result(reply["again"], what, steps)
        other = _result(reply["other"], what.replace(f"seed={seed}", f"seed={case['other_seed']}"), steps)
        same = _same(run, again, rtol=1e-6, atol=1e-6)
        if not all(same.values()):
            fail(f"{what} gives different results when called twice with the same seed: call torch.manual_seed(seed) "
                 "before kit['build'](config), and draw batches, z and the instance noise from gen = "
                 "torch.Generator(data.device).manual_seed(seed).")
        if all(_same(run, other, rtol=1e-6, atol=1e-6).values()):
            fail(f"{what} gives the same result for seed={seed} and seed={case['other_seed']}: the seed argument is "
                 "ignored (seed torch and the generator with it).")
        want = reference_ablation(cfg, case["data"], kit, steps, seed)
        if tuple(run["grid"].shape) != tuple(want["grid"].shape):
            fail(f"{what}: 'grid' has shape {tuple(run['grid'].shape)}, expected {tuple(want['grid'].shape)}: the "
                 "first 64 samples, make_grid(kit['to_image'](fake[:64]), nrow=8, padding=2).")
        agree = _same(run, want)
        if all(agree.values()):
            continue
        for kwargs, hint in _ABLATION_MISTAKES:
            if all(_same(run, reference_ablation(cfg, case["data"], kit, steps, seed, **kwargs)).values()):
                fail(f"{what} differs from the lesson's protocol: {hint}.")
        if agree["grid"] and agree["frechet"] and not agree["acc"]:
            fail(f"{what}: the grid and the distance are right, but 'acc_real' / 'acc_fake' are not the values "
                 "kit['train_step'] logs: append float(logs['acc_real']) and float(logs['acc_fake']) every step.")
        if agree["grid"] and not agree["frechet"]:
            fail(f"{what}: the samples are right but 'frechet' is {run['frechet']:.6g}, expected "
                 f"{want['frechet']:.6g}: kit['distance'](data[:n_eval], fake) on all n_eval samples.")
        fail(f"{what} differs from the lesson's protocol on the same seed (distance {run['frechet']:.6g}, expected "
             f"{want['frechet']:.6g}): follow the recipe step by step (seed, build, two Adams, one generator for "
             "batches, z and noise, the annealed sigma, kit['sample'] on the fixed eval noise).")
    return (f"run_ablation follows the protocol: deterministic for a seed, a different run for another seed, and "
            f"equal to the reference runner on {len(cases)} tiny run{'s' if len(cases) > 1 else ''}.")


check_run_ablation = exercise("run_ablation", _probe_ablation, _judge_ablation, _ablation_cases)
