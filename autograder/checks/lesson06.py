"""Checks for lesson 06: the DCGAN generator and discriminator, at 64x64 and at 32x32.

Each exercise is a probe and a judge (``_core.exercise``). The probe builds the student's network
in the student's process, gives its BatchNorm layers seeded scales and shifts, traces one forward
pass (the leaf modules in the order they run, so students may name and nest their layers as they
like), and sends plain data: the module description (layers, their settings, parameters and
buffers), the outputs in train mode, the running statistics that pass leaves behind, the outputs
in eval mode, on a batch of one, and (G) on noise shaped (N, nz). The judge builds ``dcgan_ref``'s
network (``Generator``; ``SigmoidDiscriminator`` for D, this lesson's D ends in a Sigmoid), and
compares, in this order: output shape, the layer pattern, parameter count, each convolution's
hyper-parameters, then, with the student's weights loaded into the reference's layers one by one
in execution order, every output and running statistic.
"""

from __future__ import annotations

from typing import Any, TypedDict

import torch
from torch import nn

from ._compare import POOLING, traced_forward
from ._core import (
    CheckFailure,
    Layer,
    Outcome,
    attempt,
    call,
    describe_module,
    expect_close,
    expect_shape,
    fail,
    randn,
    seeded,
    unwrap,
)
from ._plain import type_name
from ._secret import hidden_seed

# Same float32 operations on the same inputs in the same order: the results agree to rounding.
# The margin only covers a different summation order (e.g. another conv algorithm).
RTOL, ATOL = 1e-4, 1e-5

# Leaf modules that change nothing DCGAN cares about (reshaping): left out of the pattern.
NEUTRAL = (nn.Identity, nn.Flatten, nn.Unflatten)
CONVS = (nn.Conv2d, nn.ConvTranspose2d)
#: the most modules / trace records a reply may describe before the judge refuses it unread (a stall)
MAX_LAYERS, MAX_TRACE = 2_000, 20_000

ARGS_G = "(nz, ngf, nc)"
ARGS_D = "(nc, ndf)"

# (constructor args, batch): (nz, ngf, nc) for G, (nc, ndf) for D. The shown one is narrower than
# the default width 64 to keep the check fast; the hidden ones add a grey / tiny net and width 64.
_CONFIGS = {
    "G": [((100, 32, 3), 4), ((16, 8, 1), 5), ((100, 64, 3), 2)],
    "D": [((3, 32), 4), ((1, 8), 5), ((3, 64), 2)],
}


# --------------------------------------------------------------------------- cases (grader side)


def _cases(kind: str, image_size: int, name: str) -> Any:
    def cases(hidden: bool) -> dict[str, Any]:
        configs = _CONFIGS[kind] if hidden else _CONFIGS[kind][:1]
        out = []
        for case, (args, batch) in enumerate(configs):
            # the shown configuration is public; the hidden ones' inputs and weights come from the secret
            x_seed, seed = (2000, 1000) if case == 0 else (hidden_seed(6, name, 2 * case),
                                                           hidden_seed(6, name, 2 * case + 1) % 2**31)
            if kind == "G":
                x = randn(batch, args[0], 1, 1, seed=x_seed)
            else:
                x = torch.tanh(randn(batch, args[0], image_size, image_size, seed=x_seed))
            out.append({"args": tuple(args), "x": x, "seed": seed})
        return {"kind": kind, "image_size": image_size, "name": name, "configs": out}

    return cases


# --------------------------------------------------------------------------- probe (student side)


def _trace(model: nn.Module, x: torch.Tensor) -> tuple[Any, list[list[Any]]]:
    """Run ``model(x)``; [leaf name, output shape] for each leaf module, in execution order (``_compare``'s
    hook tracing)."""
    out, records = traced_forward(model, x)
    return out, [[r["name"], r["shape"]] for r in records]


def _seed_norm_layers(model: nn.Module, seed: int) -> None:
    """Seeded, non-trivial scales and shifts for every 1-d parameter (BatchNorm's weight and bias), so
    the comparison sees whether they are used; the student's conv weights stay as constructed."""
    g = seeded(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
                p.copy_((1 + 0.1 * noise) if name.endswith("weight") else 0.1 * noise)


class NetworkRun(TypedDict, total=False):
    """One configuration of the student's network: built, described, traced and run (up to the first error)."""

    build: Outcome  #: always: ``{"value": None}`` once the constructor returned, or its error
    not_module: str  #: the type name of what the constructor returned, when not an nn.Module (nothing else then)
    description: list[dict[str, Any]]  #: ``_core.describe_module`` of the network
    train: Outcome  #: ``{"value": (output, [[leaf name, output shape], ...])}``: the train-mode pass (``_trace``)
    after_train: dict[str, dict[str, torch.Tensor | None]]  #: each module's buffers after it, by module name
    eval: Outcome  #: the eval-mode pass on x
    one: Outcome  #: the eval-mode pass on a batch of one
    flat: Outcome  #: G only: the eval-mode pass on z flattened to (N, nz)


def _probe_config(cls: Any, config: dict[str, Any], kind: str, name: str, first: bool) -> NetworkRun:
    args = tuple(config["args"])
    call_str = f"{name}{args}"
    what = f"{name}{ARGS_G if kind == 'G' else ARGS_D}" if first else call_str
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["seed"])
        try:
            model = call(cls, *args, what=what)
        except CheckFailure as err:
            return {"build": {"error": str(err)}}
    if not isinstance(model, nn.Module):
        return {"build": {"value": None}, "not_module": type_name(model)}
    _seed_norm_layers(model, config["seed"])
    description = describe_module(model)
    x = config["x"]
    model.train()
    with torch.no_grad():
        traced = attempt(_trace, model, x.clone(), what=f"{call_str}'s forward pass")
    out: NetworkRun = {"build": {"value": None}, "description": description, "train": traced}
    if "error" in traced:
        return out
    out["after_train"] = {n: dict(m._buffers) for n, m in model.named_modules() if m._buffers}
    model.eval()
    with torch.no_grad():
        out["eval"] = attempt(model, x.clone(), what=f"{call_str} in eval mode")
        out["one"] = attempt(model, x[:1].clone(), what=f"{call_str} in eval mode on a batch of one")
        if kind == "G":
            out["flat"] = attempt(model, x.flatten(1).clone(), what=f"{call_str} on z of shape (N, nz)")
    return out


def _probe(kind: str) -> Any:
    def probe(cls: Any, cases: dict[str, Any]) -> list[NetworkRun]:
        """Build, trace and run the student's network on the grader's inputs (plain data back)."""
        return [_probe_config(cls, c, kind, cases["name"], i == 0) for i, c in enumerate(cases["configs"])]

    return probe


# --------------------------------------------------------------------------- judge (grader side)


def describe(m: Layer) -> str:
    """A short readable name for a layer: 'ConvTranspose2d(100, 512, k=4, s=1, p=0, bias=False)'."""
    if m.isa(*CONVS):
        k, s, p = (tuple(m.attrs.get(a, ("?",)))[0] for a in ("kernel_size", "stride", "padding"))
        return (
            f"{m.type_name}({m.attrs.get('in_channels')}, {m.attrs.get('out_channels')}, k={k}, "
            f"s={s}, p={p}, bias={m.params.get('bias') is not None})"
        )
    if m.isa(nn.LeakyReLU):
        return f"LeakyReLU({m.attrs.get('negative_slope')})"
    if m.isa(nn.BatchNorm2d):
        return f"BatchNorm2d({m.attrs.get('num_features')})"
    return m.type_name


def _reference(kind: str, args: tuple[int, ...], image_size: int) -> nn.Module:
    import dcgan_ref.models as ref_models

    if kind == "G":
        nz, ngf, nc = args
        return ref_models.Generator(nz, ngf, nc, image_size=image_size)
    nc, ndf = args
    return ref_models.SigmoidDiscriminator(nc, ndf, image_size=image_size)


def _reference_layers(ref: nn.Module, kind: str) -> tuple[list[nn.Module], list[Layer]]:
    """The reference's leaf layers in execution order (its flat Sequential), and their descriptions;
    for D the Sigmoid its forward applies as torch.sigmoid is added as a layer."""
    leaves = [m for m in ref.modules() if not list(m.children())]
    layers = [Layer(describe_module(m)[0]) for m in leaves]
    if kind == "D":
        layers.append(Layer(describe_module(nn.Sigmoid())[0]))
    return leaves, layers


def _pattern_message(kind: str, image_size: int, got: list[Layer], want: list[Layer]) -> str | None:
    """The likely mistake when the sequence of layers differs from DCGAN's, or None if it matches."""
    names = [m.type_name for m in got]
    table = " -> ".join(describe(m) for m in got)
    for m in got:
        if m.isa(nn.Linear):
            return "found an nn.Linear: DCGAN has no fully connected layer. " + (
                "G projects z with ConvTranspose2d(nz, ..., 4, 1, 0) (1x1 -> 4x4)."
                if kind == "G"
                else "D ends with Conv2d(..., 1, 4, 1, 0) (4x4 -> 1x1)."
            )
        if m.isa(*POOLING):
            return (
                f"found {m.type_name}: DCGAN uses no pooling; it downsamples with stride-2 "
                "convolutions, which learn how to downsample."
            )
        if m.isa(nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d):
            return "found nn.Upsample: G upsamples with stride-2 ConvTranspose2d layers."
        if m.isa(nn.Dropout, nn.Dropout2d):
            return "found a Dropout layer: DCGAN uses none."
    if not got:
        return "no layer ran in the forward pass: build the layers in __init__ and call them in forward."
    conv_type = nn.ConvTranspose2d if kind == "G" else nn.Conv2d
    wrong_conv = nn.Conv2d if kind == "G" else nn.ConvTranspose2d
    if any(m.isa(wrong_conv) and not m.isa(conv_type) for m in got):
        return f"found {wrong_conv.__name__}: {kind} uses {conv_type.__name__} layers only " + (
            "(transposed convolutions upsample)." if kind == "G" else "(strided convolutions downsample)."
        )
    n_conv, n_want = sum(m.isa(conv_type) for m in got), sum(m.isa(conv_type) for m in want)
    if n_conv != n_want:
        return (
            f"found {n_conv} {conv_type.__name__} layers, expected {n_want} for {image_size}x{image_size} "
            f"images (each stride-2 layer doubles or halves H and W). Your layers: {table}"
        )
    if kind == "G":
        if any(m.isa(nn.LeakyReLU) for m in got):
            return "found LeakyReLU in G: DCGAN's generator uses ReLU (LeakyReLU is for D)."
        if not got[-1].isa(nn.Tanh):
            return (
                f"G's last layer is {names[-1]}, expected nn.Tanh: images live in [-1, 1], like the "
                "normalised training data. (Used torch.tanh in forward? Make it an nn.Tanh() layer.)"
            )
        if len(got) >= 2 and got[-2].isa(nn.BatchNorm2d):
            return (
                "BatchNorm on G's output layer: DCGAN puts none there (the last ConvTranspose2d "
                "feeds Tanh directly); normalising the output fixes its mean and scale."
            )
    else:
        if any(m.type_name == "ReLU" and m.isa(nn.ReLU) for m in got):
            return "found ReLU in D: DCGAN's discriminator uses LeakyReLU(0.2), so gradients flow for x < 0."
        for m in got:
            slope = m.attrs.get("negative_slope")
            if m.isa(nn.LeakyReLU) and type(slope) is float and abs(slope - 0.2) > 1e-12:
                return f"found LeakyReLU({slope}): DCGAN's discriminator uses a slope of 0.2."
        if not got[-1].isa(nn.Sigmoid):
            return (
                f"D's last layer is {names[-1]}, expected nn.Sigmoid: in this lesson D returns the "
                "probability that its input is real. (Used torch.sigmoid in forward? Make it an "
                "nn.Sigmoid() layer.)"
            )
        if len(got) >= 2 and got[1].isa(nn.BatchNorm2d):
            return (
                "BatchNorm on D's input layer: DCGAN puts none there (Radford et al.: applying it to "
                "D's input layer and G's output layer made training unstable)."
            )
        if len(got) >= 2 and got[-2].isa(nn.BatchNorm2d):
            return "BatchNorm before D's Sigmoid: D's last Conv2d feeds the Sigmoid directly."
    got_t, want_t = [m.entry["type"] for m in got], [m.entry["type"] for m in want]
    if got_t == want_t:
        return None
    pairs = enumerate(zip(got_t, want_t, strict=False))
    i = next((k for k, (a, b) in pairs if a != b), min(len(got), len(want)))
    found = names[i] if i < len(got) else "the end of the network"
    expected = want[i].type_name if i < len(want) else "nothing more"
    after = describe(got[i - 1]) if i > 0 else "the input"
    hint = ""
    if expected == "BatchNorm2d":
        hint = (
            " DCGAN puts BatchNorm after every ConvTranspose2d but the last."
            if kind == "G"
            else " DCGAN puts BatchNorm after every Conv2d but the first and the last."
        )
    elif expected in ("ReLU", "LeakyReLU"):
        hint = f" Every block ends with its activation ({'ReLU' if kind == 'G' else 'LeakyReLU(0.2)'})."
    return (
        f"layer {i + 1} (in the order your forward pass runs them, after {after}) is {found}, "
        f"expected {expected}.{hint} Your layers: {table}"
    )


def _conv_message(got: Layer, want: Layer, k: int) -> str | None:
    attrs = ("in_channels", "out_channels", "kernel_size", "stride", "padding")
    g_bias, w_bias = got.params.get("bias") is not None, want.params.get("bias") is not None
    differs = [a for a in attrs if tuple(_as_tuple(got.attrs.get(a))) != tuple(_as_tuple(want.attrs.get(a)))]
    if differs or g_bias != w_bias:
        hint = ""
        if g_bias and not w_bias:
            hint = " Use bias=False: the BatchNorm (or Tanh/Sigmoid output) after it makes a bias redundant."
        elif "kernel_size" in differs:
            hint = " DCGAN uses 4x4 kernels everywhere."
        elif "stride" in differs or "padding" in differs:
            hint = " The 1x1 <-> 4x4 layer uses stride 1, padding 0; every other one stride 2, padding 1."
        elif differs:
            hint = " Check the widths: ngf*8, ngf*4, ngf*2, ngf for G (fewer at 32x32); the mirror image for D."
        return f"convolution {k + 1} is {describe(got)}, expected {describe(want)}.{hint}"
    return None


def _as_tuple(v: Any) -> tuple:
    return tuple(v) if type(v) in (list, tuple) else (v,)


def _n_params(layers: list[Layer]) -> int:
    return sum(int(t.numel()) for m in layers for t in m.params.values() if type(t) is torch.Tensor)


def _load(ref_leaves: list[nn.Module], got: list[Layer], call_str: str) -> None:
    """Load each student layer's parameters and buffers (as the probe found them before the forward
    pass) into the matching reference layer."""
    for k, (w, g) in enumerate(zip(ref_leaves, got, strict=False)):
        state = w.state_dict()
        if not state:
            continue
        theirs = {**g.params, **g.buffers}
        new = {}
        for key, value in state.items():
            t = theirs.get(key)
            if type(t) is not torch.Tensor or tuple(t.shape) != tuple(value.shape):
                fail(f"{call_str}: layer {k + 1} ({describe(g)}) has no {key} of shape {tuple(value.shape)} "
                     f"like dcgan_ref's {type(w).__name__}: keep torch's own layer classes and their defaults.")
            new[key] = t.to(value.dtype)
        w.load_state_dict(new)


def _expect_output(outcome: Any, want: torch.Tensor, what: str, hint: str) -> torch.Tensor:
    got = unwrap(outcome)
    if type(got) is not torch.Tensor:
        fail(f"{what} returned a {type_name(got)}, expected a torch.Tensor of shape {tuple(want.shape)}.")
    expect_close(got, want, what, rtol=RTOL, atol=ATOL, hint=hint)
    return got


def _judge_config(cases: dict[str, Any], config: dict[str, Any], data: NetworkRun) -> None:
    kind, image_size, name = cases["kind"], cases["image_size"], cases["name"]
    args = tuple(config["args"])
    call_str = f"{name}{args}"
    x = config["x"]
    batch = x.shape[0]
    if type(data) is not dict or "build" not in data:
        fail(f"{call_str}: the probe returned nothing for this network.")
    unwrap(data["build"])
    if "not_module" in data:
        fail(f"{call_str} should build an nn.Module, got {data['not_module']}: does your class subclass nn.Module?")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config["seed"])
        ref = _reference(kind, args, image_size)
    ref_leaves, want_all = _reference_layers(ref, kind)
    nc = args[2] if kind == "G" else args[0]
    out_shape = (batch, nc, image_size, image_size) if kind == "G" else (batch,)

    traced = unwrap(data["train"])
    if type(traced) not in (list, tuple) or len(traced) != 2:
        fail(f"{call_str}: the probe returned no trace of the forward pass.")
    out, records = traced
    if type(records) is not list or type(data.get("description")) is not list:
        fail(f"{call_str}: the probe returned no trace of the forward pass.")
    if len(records) > MAX_TRACE or len(data["description"]) > MAX_LAYERS:
        fail(f"{call_str} has {len(data['description']):,} modules and runs {len(records):,} layers in one forward "
             f"pass: a DCGAN has about fifteen (more than {MAX_LAYERS:,} is refused).")
    by_name = {e["name"]: Layer(e) for e in data["description"]}
    got_all = [by_name[r[0]] for r in records if r[0] in by_name]
    got = [m for m in got_all if not m.isa(*NEUTRAL)]
    shapes = [tuple(r[1]) if r[1] is not None else None for r in records if r[0] in by_name]
    got_shapes = [s for m, s in zip(got_all, shapes, strict=True) if not m.isa(*NEUTRAL)]

    # 1. output shape
    if type(out) is not torch.Tensor:
        fail(f"{call_str} returned a {type_name(out)}, expected a torch.Tensor of shape {out_shape}.")
    if kind == "D" and out.numel() == batch and out.dim() > 1:
        fail(
            f"{call_str} returns shape {tuple(out.shape)}, expected {out_shape}: flatten the "
            "(N, 1, 1, 1) output to one probability per image with .view(-1)."
        )
    if tuple(out.shape) != out_shape:
        ref_shapes = _reference_shapes(ref, x)
        got_c = [(m, s) for m, s in zip(got, got_shapes, strict=True) if m.isa(*CONVS)]
        want_c = [(m, s) for m, s in zip(want_all, ref_shapes, strict=False) if m.isa(*CONVS)]
        if len(got_c) != len(want_c):
            fail(
                f"{call_str} returns {tuple(out.shape)}, expected {out_shape}: it runs "
                f"{len(got_c)} convolutions, a {image_size}x{image_size} DCGAN {kind} has "
                f"{len(want_c)} (each stride-2 layer doubles or halves H and W)."
            )
        for k, (g, w) in enumerate(zip(got_c, want_c, strict=False)):
            if g[1] != w[1]:
                msg = _conv_message(g[0], w[0], k) or ""
                fail(
                    f"{call_str} returns {tuple(out.shape)}, expected {out_shape}; the first layer "
                    f"to go wrong is convolution {k + 1}, output {g[1]}, expected {w[1]}: {msg}"
                )
    in_desc = f"z of shape {tuple(x.shape)}" if kind == "G" else f"images of shape {tuple(x.shape)}"
    expect_shape(
        out,
        out_shape,
        f"{call_str} on {in_desc}",
        "G maps (N, nz, 1, 1) noise to (N, nc, S, S) images."
        if kind == "G"
        else "D maps (N, nc, S, S) images to (N,) probabilities.",
    )

    # 2. layer pattern
    msg = _pattern_message(kind, image_size, got, want_all)
    if msg:
        fail(f"{call_str}: {msg}")
    for m in got:
        settings = (m.attrs.get("affine"), m.attrs.get("track_running_stats"))
        if m.isa(nn.BatchNorm2d) and settings != (True, True):
            fail(f"{call_str}: {describe(m)} needs the defaults affine=True, track_running_stats=True.")

    # 3. parameter count (every parameter of the module, not only the layers that ran)
    n_got = sum(int(t.numel()) for e in data["description"] for t in e["params"].values() if type(t) is torch.Tensor)
    n_want = _n_params(want_all)
    if n_got != n_want:
        conv_out = sum(int(m.attrs.get("out_channels") or 0) for m in got if m.isa(*CONVS))
        hint = "compare your layer widths with DCGAN's (the layer table helps)."
        if any(m.isa(*CONVS) and m.params.get("bias") is not None for m in got):
            exact = " - that is exactly the difference" if n_got - n_want == conv_out else ""
            hint = f"your convolutions have biases: use bias=False (the BatchNorm after them has its own shift){exact}."
        fail(f"{call_str} has {n_got:,} parameters, expected {n_want:,} like dcgan_ref's: {hint}")

    # 4. each convolution's hyper-parameters
    got_c = [m for m in got if m.isa(*CONVS)]
    want_c = [m for m in want_all if m.isa(*CONVS)]
    for k, (g, w) in enumerate(zip(got_c, want_c, strict=True)):
        msg = _conv_message(g, w, k)
        if msg:
            fail(f"{call_str}: {msg}")

    # 5. the student's weights in the reference's layers -> the same outputs, train mode then eval mode
    _load(ref_leaves, got, call_str)
    what = "G(z)" if kind == "G" else "D(x)"
    ref.train()
    with torch.no_grad():
        ref_train = ref(x)
    expect_close(
        out, ref_train, f"{call_str}: {what} in train mode", rtol=RTOL, atol=ATOL,
        hint="the layers match, so check the order of operations in forward "
        "(conv -> BatchNorm -> activation) and the BatchNorm settings (eps, momentum).",
    )
    after = data.get("after_train", {})
    for g, w in zip(got, ref_leaves, strict=False):
        if isinstance(w, nn.BatchNorm2d):
            theirs = after.get(g.name, {})
            for buf in ("running_mean", "running_var"):
                value = theirs.get(buf)
                if type(value) is not torch.Tensor:
                    fail(f"{call_str}: {describe(g)} has no {buf} after a train-mode pass: "
                         "keep track_running_stats=True.")
                expect_close(
                    value, getattr(w, buf), f"{call_str}: {buf} of {describe(g)} after one train-mode pass",
                    rtol=RTOL, atol=ATOL, hint="keep BatchNorm2d's default momentum (0.1).",
                )
    ref.eval()
    with torch.no_grad():
        ref_eval = ref(x)
        ref_one = ref(x[:1])
    eval_hint = ("in eval mode BatchNorm uses its running statistics: keep BatchNorm2d's defaults and do not "
                 "call it functionally with training=True.")
    _expect_output(data["eval"], ref_eval, f"{call_str}: {what} in eval mode", eval_hint)
    one = unwrap(data["one"])
    if type(one) is torch.Tensor and kind == "D" and tuple(one.shape) != (1,):
        fail(
            f"{call_str} on a batch of ONE image returns shape {tuple(one.shape)}, expected (1,): "
            + (".squeeze() drops the batch dimension too when N = 1; flatten with .view(-1) instead."
               if one.dim() == 0 else "return one probability per image, .view(-1).")
        )
    _expect_output(data["one"], ref_one, f"{call_str}: {what} in eval mode on a batch of one",
                   "each image's output must not depend on the batch size in eval mode.")
    if kind == "G":
        try:
            _expect_output(data["flat"], ref_eval, f"{call_str}: G(z) with z of shape {(batch, args[0])}", eval_hint)
        except CheckFailure as err:
            fail(
                f"{call_str} does not accept noise shaped (N, nz) = {(batch, args[0])}: G must take it as well "
                "as (N, nz, 1, 1) (dcgan_ref's Generator takes both): start forward with "
                f"`if z.dim() == 2: z = z[:, :, None, None]`. ({err})"
            )


def _reference_shapes(ref: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    leaves = [m for m in ref.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda mod, i, o: shapes.append(tuple(o.shape))) for m in leaves]
    try:
        with torch.no_grad():
            ref.train()(x)
    finally:
        for h in handles:
            h.remove()
    return shapes


def _judge(cases: dict[str, Any], data: list[NetworkRun]) -> str:
    """Every configuration: shapes, layer pattern, parameter count, convolutions, then the outputs."""
    configs = cases["configs"]
    if type(data) is not list or len(data) != len(configs):
        fail(f"{cases['name']}: the probe returned {type_name(data)}, not one result per configuration.")
    for config, result in zip(configs, data, strict=True):
        _judge_config(cases, config, result)
    n = len(configs)
    return (f"{cases['name']}: shapes, parameter count, layer pattern and outputs match dcgan_ref's "
            f"({n} configuration{'s' if n > 1 else ''}).")


def _exercise(kind: str, image_size: int, name: str) -> Any:
    from ._core import exercise

    return exercise(name, _probe(kind), _judge, _cases(kind, image_size, name))


#: 64x64 generator: (N, nz, 1, 1) or (N, nz) -> (N, nc, 64, 64), equal to dcgan_ref.models.Generator
check_generator = _exercise("G", 64, "Generator")
#: 64x64 discriminator: (N, nc, 64, 64) -> (N,) probabilities, equal to SigmoidDiscriminator
check_discriminator = _exercise("D", 64, "Discriminator")
#: 32x32 generator, equal to Generator(image_size=32)
check_generator32 = _exercise("G", 32, "Generator32")
#: 32x32 discriminator, equal to SigmoidDiscriminator(image_size=32)
check_discriminator32 = _exercise("D", 32, "Discriminator32")
