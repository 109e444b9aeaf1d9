"""Checks for lesson 06: the DCGAN generator and discriminator, at 64x64 and at 32x32.

Every check builds the student's network and ``dcgan_ref``'s (``Generator`` for G,
``SigmoidDiscriminator`` for D: this lesson's D ends in a Sigmoid) with the same arguments, and
compares, in this order: output shape, parameter count, the layer pattern (the leaf modules in the
order the forward pass runs them, found with forward hooks, so students may name and nest their
layers as they like), each convolution's hyper-parameters, and finally, after copying the
reference's weights and BatchNorm statistics into the student's layers one by one in that order,
the outputs on the same input in train mode, the running statistics that pass leaves behind, and
the outputs in eval mode.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

import dcgan_ref.models as ref_models

from ._core import call, expect_close, expect_shape, fail, forbid, passed, randn

# Same float32 operations on the same inputs in the same order: the results agree to rounding.
# The margin only covers a different summation order (e.g. another conv algorithm).
RTOL, ATOL = 1e-4, 1e-5

# Leaf modules that change nothing DCGAN cares about (reshaping): left out of the pattern.
NEUTRAL = (nn.Identity, nn.Flatten, nn.Unflatten)
POOLING = (
    nn.MaxPool2d,
    nn.AvgPool2d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.LPPool2d,
    nn.MaxPool1d,
    nn.AvgPool1d,
)
CONVS = (nn.Conv2d, nn.ConvTranspose2d)

ARGS_G = "(nz, ngf, nc)"
ARGS_D = "(nc, ndf)"


# --------------------------------------------------------------------------- tracing


def trace(model: nn.Module, x: torch.Tensor) -> tuple[Any, list[tuple[nn.Module, tuple, tuple]]]:
    """Run ``model(x)`` and record (leaf module, input shape, output shape) in execution order."""
    records: list[tuple[nn.Module, tuple, tuple]] = []

    def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
        shape_in = tuple(inputs[0].shape) if inputs and isinstance(inputs[0], torch.Tensor) else ()
        shape_out = tuple(output.shape) if isinstance(output, torch.Tensor) else ()
        records.append((module, shape_in, shape_out))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    try:
        out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, records


def describe(m: nn.Module) -> str:
    """A short readable name for a layer: 'ConvTranspose2d(100, 512, k=4, s=1, p=0, bias=False)'."""
    if isinstance(m, CONVS):
        return (
            f"{type(m).__name__}({m.in_channels}, {m.out_channels}, k={m.kernel_size[0]}, "
            f"s={m.stride[0]}, p={m.padding[0]}, bias={m.bias is not None})"
        )
    if isinstance(m, nn.LeakyReLU):
        return f"LeakyReLU({m.negative_slope})"
    if isinstance(m, nn.BatchNorm2d):
        return f"BatchNorm2d({m.num_features})"
    return type(m).__name__


def significant(records: list[tuple[nn.Module, tuple, tuple]]) -> list[tuple[nn.Module, tuple, tuple]]:
    return [r for r in records if not isinstance(r[0], NEUTRAL)]


# --------------------------------------------------------------------------- helpers


def _from_dcgan_ref(obj: Any) -> bool:
    return getattr(obj, "__module__", "").startswith("dcgan_ref")


@contextmanager
def _ref_forbidden(cls: Any) -> Iterator[None]:
    """Constructing or running the student's model must not build dcgan_ref's networks."""
    targets = {
        f"dcgan_ref.models.{name}": (ref_models, name)
        for name in ("Generator", "Discriminator", "SigmoidDiscriminator")
    }
    namespace = None
    module = sys.modules.get(getattr(cls, "__module__", ""), None)
    if module is not None and not _from_dcgan_ref(cls):
        namespace = vars(module)
    with forbid(
        targets,
        cls.__name__ if hasattr(cls, "__name__") else "your network",
        "Write the layers yourself: the reference is what you are checked against.",
        namespace,
    ):
        yield


def _build(cls: Any, args: tuple[int, ...], arg_names: str) -> nn.Module:
    name = getattr(cls, "__name__", "your class")
    if isinstance(cls, type) and any(_from_dcgan_ref(c) for c in cls.__mro__):
        bad = next(c for c in cls.__mro__ if _from_dcgan_ref(c))
        fail(
            f"{name} subclasses {bad.__module__}.{bad.__name__}: write the layers yourself "
            "(subclass nn.Module only)."
        )
    with _ref_forbidden(cls):
        model = call(cls, *args, what=f"{name}{arg_names}")
    if not isinstance(model, nn.Module):
        fail(
            f"{name}{arg_names} should build an nn.Module, got {type(model).__name__}: "
            "does your class subclass nn.Module?"
        )
    for sub in model.modules():
        if _from_dcgan_ref(type(sub)):
            fail(
                f"{name} wraps {type(sub).__module__}.{type(sub).__name__}: write the layers yourself "
                "from nn.ConvTranspose2d / nn.Conv2d, nn.BatchNorm2d and the activations."
            )
    return model


def _run(model: nn.Module, x: torch.Tensor, name: str) -> tuple[Any, list]:
    with _ref_forbidden(type(model)):
        return call(trace, model, x, what=f"{name}'s forward pass")


def _pattern_message(kind: str, image_size: int, got: list[nn.Module], want: list[nn.Module]) -> str | None:
    """The likely mistake when the sequence of layers differs from DCGAN's, or None if it matches."""
    names = [type(m).__name__ for m in got]
    table = " -> ".join(describe(m) for m in got)
    for m in got:
        if isinstance(m, nn.Linear):
            return "found an nn.Linear: DCGAN has no fully connected layer. " + (
                "G projects z with ConvTranspose2d(nz, ..., 4, 1, 0) (1x1 -> 4x4)."
                if kind == "G"
                else "D ends with Conv2d(..., 1, 4, 1, 0) (4x4 -> 1x1)."
            )
        if isinstance(m, POOLING):
            return (
                f"found {type(m).__name__}: DCGAN uses no pooling; it downsamples with stride-2 "
                "convolutions, which learn how to downsample."
            )
        if isinstance(m, nn.Upsample):
            return "found nn.Upsample: G upsamples with stride-2 ConvTranspose2d layers."
        if isinstance(m, (nn.Dropout, nn.Dropout2d)):
            return "found a Dropout layer: DCGAN uses none."
    conv_type = nn.ConvTranspose2d if kind == "G" else nn.Conv2d
    wrong_conv = nn.Conv2d if kind == "G" else nn.ConvTranspose2d
    if any(type(m) is wrong_conv for m in got):
        return f"found {wrong_conv.__name__}: {kind} uses {conv_type.__name__} layers only " + (
            "(transposed convolutions upsample)." if kind == "G" else "(strided convolutions downsample)."
        )
    n_conv, n_want = sum(isinstance(m, conv_type) for m in got), sum(isinstance(m, conv_type) for m in want)
    if n_conv != n_want:
        return (
            f"found {n_conv} {conv_type.__name__} layers, expected {n_want} for {image_size}x{image_size} "
            f"images (each stride-2 layer doubles or halves H and W). Your layers: {table}"
        )
    if kind == "G":
        if any(isinstance(m, nn.LeakyReLU) for m in got):
            return "found LeakyReLU in G: DCGAN's generator uses ReLU (LeakyReLU is for D)."
        if not isinstance(got[-1], nn.Tanh):
            return (
                f"G's last layer is {names[-1]}, expected nn.Tanh: images live in [-1, 1], like the "
                "normalised training data. (Used torch.tanh in forward? Make it an nn.Tanh() layer.)"
            )
        if len(got) >= 2 and isinstance(got[-2], nn.BatchNorm2d):
            return (
                "BatchNorm on G's output layer: DCGAN puts none there (the last ConvTranspose2d "
                "feeds Tanh directly); normalising the output fixes its mean and scale."
            )
    else:
        if any(type(m) is nn.ReLU for m in got):
            return "found ReLU in D: DCGAN's discriminator uses LeakyReLU(0.2), so gradients flow for x < 0."
        for m in got:
            if isinstance(m, nn.LeakyReLU) and abs(m.negative_slope - 0.2) > 1e-12:
                return f"found LeakyReLU({m.negative_slope}): DCGAN's discriminator uses a slope of 0.2."
        if not isinstance(got[-1], nn.Sigmoid):
            return (
                f"D's last layer is {names[-1]}, expected nn.Sigmoid: in this lesson D returns the "
                "probability that its input is real. (Used torch.sigmoid in forward? Make it an "
                "nn.Sigmoid() layer.)"
            )
        if len(got) >= 2 and isinstance(got[1], nn.BatchNorm2d):
            return (
                "BatchNorm on D's input layer: DCGAN puts none there (Radford et al.: applying it to "
                "D's input layer and G's output layer made training unstable)."
            )
        if len(got) >= 2 and isinstance(got[-2], nn.BatchNorm2d):
            return "BatchNorm before D's Sigmoid: D's last Conv2d feeds the Sigmoid directly."
    got_t, want_t = [type(m) for m in got], [type(m) for m in want]
    if got_t == want_t:
        return None
    pairs = enumerate(zip(got_t, want_t, strict=False))
    i = next((k for k, (a, b) in pairs if a is not b), min(len(got), len(want)))
    found = names[i] if i < len(got) else "the end of the network"
    expected = want_t[i].__name__ if i < len(want) else "nothing more"
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


def _conv_message(got: nn.Module, want: nn.Module, k: int) -> str | None:
    attrs = ("in_channels", "out_channels", "kernel_size", "stride", "padding")
    if any(getattr(got, a) != getattr(want, a) for a in attrs) or (got.bias is None) != (want.bias is None):
        hint = ""
        if got.bias is not None and want.bias is None:
            hint = " Use bias=False: the BatchNorm (or Tanh/Sigmoid output) after it makes a bias redundant."
        elif got.kernel_size != want.kernel_size:
            hint = " DCGAN uses 4x4 kernels everywhere."
        elif got.stride != want.stride or got.padding != want.padding:
            hint = " The 1x1 <-> 4x4 layer uses stride 1, padding 0; every other one stride 2, padding 1."
        elif got.in_channels != want.in_channels or got.out_channels != want.out_channels:
            hint = (
                " Check the widths: ngf*8, ngf*4, ngf*2, ngf for G (fewer at 32x32); the mirror image for D."
            )
        return f"convolution {k + 1} is {describe(got)}, expected {describe(want)}.{hint}"
    return None


def _copy_weights(got: list[nn.Module], want: list[nn.Module], name: str) -> None:
    """Load each reference layer's parameters and buffers into the matching student layer."""
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        state = w.state_dict()
        if not state:
            continue
        try:
            g.load_state_dict(state)
        except RuntimeError as err:
            fail(f"could not copy the reference weights into {name}'s layer {k + 1} ({describe(g)}): {err}")


def _check_network(
    cls: Any, kind: str, image_size: int, configs: list[tuple[tuple[int, ...], int]], exercise: str
) -> None:
    name = getattr(cls, "__name__", exercise)
    arg_names = ARGS_G if kind == "G" else ARGS_D
    with torch.random.fork_rng(devices=[]):
        for case, (args, batch) in enumerate(configs):
            torch.manual_seed(1000 + case)
            if kind == "G":
                nz, ngf, nc = args
                ref: nn.Module = ref_models.Generator(nz, ngf, nc, image_size=image_size)
                x = randn(batch, nz, 1, 1, seed=2000 + case)
                out_shape = (batch, nc, image_size, image_size)
            else:
                nc, ndf = args
                ref = ref_models.SigmoidDiscriminator(nc, ndf, image_size=image_size)
                x = torch.tanh(randn(batch, nc, image_size, image_size, seed=2000 + case))
                out_shape = (batch,)
            ref.apply(ref_models.weights_init)
            call_str = f"{name}{args}"

            model = _build(cls, args, "" if case else arg_names)
            model.train()
            out, records = _run(model, x, call_str)
            ref_out, ref_records = trace(ref, x)

            # 1. output shape
            if kind == "D" and isinstance(out, torch.Tensor) and out.numel() == batch and out.dim() > 1:
                fail(
                    f"{call_str} returns shape {tuple(out.shape)}, expected {out_shape}: flatten the "
                    "(N, 1, 1, 1) output to one probability per image with .view(-1)."
                )
            if isinstance(out, torch.Tensor) and tuple(out.shape) != out_shape:
                got_c = [r for r in records if isinstance(r[0], CONVS)]
                want_c = [r for r in ref_records if isinstance(r[0], CONVS)]
                if len(got_c) != len(want_c):
                    fail(
                        f"{call_str} returns {tuple(out.shape)}, expected {out_shape}: it runs "
                        f"{len(got_c)} convolutions, a {image_size}x{image_size} DCGAN {kind} has "
                        f"{len(want_c)} (each stride-2 layer doubles or halves H and W)."
                    )
                for k, (g, w) in enumerate(zip(got_c, want_c, strict=False)):
                    if g[2] != w[2]:
                        msg = _conv_message(g[0], w[0], k) or ""
                        fail(
                            f"{call_str} returns {tuple(out.shape)}, expected {out_shape}; the first layer "
                            f"to go wrong is convolution {k + 1}, output {g[2]}, expected {w[2]}: {msg}"
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
            got = [r[0] for r in significant(records)]
            want = [r[0] for r in significant(ref_records)]
            if kind == "D":  # SigmoidDiscriminator applies torch.sigmoid in forward: no layer to trace
                want.append(nn.Sigmoid())
            msg = _pattern_message(kind, image_size, got, want)
            if msg:
                fail(f"{call_str}: {msg}")
            for m in got:
                if isinstance(m, nn.BatchNorm2d) and (not m.affine or not m.track_running_stats):
                    fail(
                        f"{call_str}: {describe(m)} needs the defaults affine=True, track_running_stats=True."
                    )

            # 3. parameter count
            n_got, n_want = ref_models.count_parameters(model), ref_models.count_parameters(ref)
            if n_got != n_want:
                conv_out = sum(m.out_channels for m in model.modules() if isinstance(m, CONVS))
                hint = "compare your layer widths with DCGAN's (the layer table helps)."
                if any(isinstance(m, CONVS) and m.bias is not None for m in model.modules()):
                    exact = " - that is exactly the difference" if n_got - n_want == conv_out else ""
                    hint = (
                        "your convolutions have biases: use bias=False (the BatchNorm after them "
                        f"has its own shift){exact}."
                    )
                fail(f"{call_str} has {n_got:,} parameters, expected {n_want:,} like dcgan_ref's: {hint}")

            # 4. each convolution's hyper-parameters
            got_c = [m for m in got if isinstance(m, CONVS)]
            want_c = [m for m in want if isinstance(m, CONVS)]
            for k, (g, w) in enumerate(zip(got_c, want_c, strict=True)):
                msg = _conv_message(g, w, k)
                if msg:
                    fail(f"{call_str}: {msg}")

            # 5. same weights -> same outputs, train mode then eval mode. Both networks ran one
            # train-mode pass above; copying parameters and buffers makes their states identical.
            _copy_weights(got, want, call_str)
            model.train()
            ref.train()
            with torch.no_grad():
                ref_train = ref(x)
                with _ref_forbidden(type(model)):
                    got_train = call(model, x, what=f"{call_str} in train mode")
            what = "G(z)" if kind == "G" else "D(x)"
            expect_close(
                got_train,
                ref_train,
                f"{call_str}: {what} in train mode, with dcgan_ref's weights",
                rtol=RTOL,
                atol=ATOL,
                hint="the layers match, so check the order of operations in forward "
                "(conv -> BatchNorm -> activation) and the BatchNorm settings (eps, momentum).",
            )
            for g, w in zip(got, want, strict=True):
                if isinstance(w, nn.BatchNorm2d):
                    for buf in ("running_mean", "running_var"):
                        expect_close(
                            getattr(g, buf),
                            getattr(w, buf),
                            f"{call_str}: {buf} of {describe(g)} after one train-mode pass",
                            rtol=RTOL,
                            atol=ATOL,
                            hint="keep BatchNorm2d's default momentum (0.1).",
                        )
            model.eval()
            ref.eval()
            with torch.no_grad():
                ref_eval = ref(x)
                with _ref_forbidden(type(model)):
                    got_eval = call(model, x, what=f"{call_str} in eval mode")
            expect_close(
                got_eval,
                ref_eval,
                f"{call_str}: {what} in eval mode, with dcgan_ref's weights",
                rtol=RTOL,
                atol=ATOL,
                hint="in eval mode BatchNorm uses its running statistics: keep BatchNorm2d's "
                "defaults and do not call it functionally with training=True.",
            )


# --------------------------------------------------------------------------- the exercises


# (constructor args, batch): (nz, ngf, nc) for G, (nc, ndf) for D. The shown one is narrower than
# the default width 64 to keep the check fast; the hidden ones add a grey / tiny net and width 64.
_CONFIGS = {
    "G": [((100, 32, 3), 4), ((16, 8, 1), 5), ((100, 64, 3), 2)],
    "D": [((3, 32), 4), ((1, 8), 5), ((3, 64), 2)],
}


def _check_exercise(cls: Any, kind: str, image_size: int, exercise: str, hidden: bool) -> None:
    """One network exercise: the shown configuration, plus two more when hidden; then the message."""
    configs = _CONFIGS[kind] if hidden else _CONFIGS[kind][:1]
    _check_network(cls, kind, image_size, configs, exercise)
    passed(
        f"{exercise}: shapes, parameter count, layer pattern and outputs match dcgan_ref's "
        f"({len(configs)} configuration{'s' if len(configs) > 1 else ''})."
    )


def check_generator(Generator: Any, hidden: bool = False) -> None:  # noqa: N803 - the student's class
    """64x64 generator: (N, nz, 1, 1) -> (N, nc, 64, 64), equal to dcgan_ref.models.Generator."""
    _check_exercise(Generator, "G", 64, "Generator", hidden)


def check_discriminator(Discriminator: Any, hidden: bool = False) -> None:  # noqa: N803
    """64x64 discriminator: (N, nc, 64, 64) -> (N,) probabilities, equal to SigmoidDiscriminator."""
    _check_exercise(Discriminator, "D", 64, "Discriminator", hidden)


def check_generator32(Generator32: Any, hidden: bool = False) -> None:  # noqa: N803
    """32x32 generator: (N, nz, 1, 1) -> (N, nc, 32, 32), equal to Generator(image_size=32)."""
    _check_exercise(Generator32, "G", 32, "Generator32", hidden)


def check_discriminator32(Discriminator32: Any, hidden: bool = False) -> None:  # noqa: N803
    """32x32 discriminator: (N, nc, 32, 32) -> (N,), equal to SigmoidDiscriminator(image_size=32)."""
    _check_exercise(Discriminator32, "D", 32, "Discriminator32", hidden)
