"""Checks for lesson 05: the DCGAN weight initialisation.

Cases -> probe -> judge (``_core.exercise``). The probe builds test models from fixed seeds, applies
the student's function with ``model.apply`` under a fixed seed (every call into ``dcgan_ref``
refused, a wrapper around its ``weights_init`` included) and returns each model's ``state_dict``
before and after, as plain tensors. The judge decides from those alone, two ways: statistically on
a model large enough that a wrong mean or std shows beyond sampling noise (conv and transposed-conv
weights N(0, 0.02), BatchNorm weight N(1, 0.02), biases 0, every other module and every buffer left
alone), and exactly against ``dcgan_ref.models.weights_init`` applied, in the judge, to the same
starting values under the same seed, which also pins the order in which random numbers are drawn.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypedDict

import torch
from torch import nn

from ._compare import close, close_number, judge_only
from ._core import CheckFailure, call, exercise, fail
from ._guard import reference_origin
from ._secret import hidden_seed

STD = 0.02


def _big_model() -> nn.Sequential:
    """Every layer kind DCGAN initialises, large enough for tight statistics; biases on some convs;
    a Linear layer, which the DCGAN rule leaves alone."""
    return nn.Sequential(
        nn.Conv2d(64, 128, 4, 2, 1, bias=True),  # 131k weights
        nn.BatchNorm2d(20000),  # 20k weights: the BatchNorm std is known to within 1 %
        nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=True),  # 131k weights
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(64, 32, 3, bias=False), nn.BatchNorm2d(32), nn.Tanh()),  # nested, no bias
        nn.Flatten(),
        nn.Linear(512, 64),  # not a convolution: keeps PyTorch's default
    )


def _dcgan_generator() -> nn.Module:
    from dcgan_ref.models import Generator

    return Generator(nz=16, ngf=8, image_size=32)


def _dcgan_discriminator() -> nn.Module:
    from dcgan_ref.models import Discriminator

    return Discriminator(ndf=8, image_size=32)


def _biased() -> nn.Module:
    return nn.Sequential(nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3), nn.Tanh())


def _projected() -> nn.Module:
    """A generator that starts with a Linear projection (as in Keras-style GANs): the Linear stays as it is."""
    return nn.Sequential(nn.Linear(16, 8 * 4 * 4), nn.Unflatten(1, (8, 4, 4)), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.ConvTranspose2d(8, 3, 4, 2, 1, bias=False), nn.Tanh())


MODELS: dict[str, tuple[str, Callable[[], nn.Module]]] = {
    "big": ("a model with every layer kind", _big_model),
    "generator": ("Generator(nz=16, ngf=8, image_size=32)", _dcgan_generator),
    "discriminator": ("Discriminator(ndf=8, image_size=32)", _dcgan_discriminator),
    "biased": ("a model with biased convolutions", _biased),
    "projected": ("a generator with a Linear projection", _projected),
}


def _cases(hidden: bool) -> dict[str, Any]:
    """(model key, seed) pairs: statistics on the big model, exact agreement on the small ones."""
    # the hidden seeds come from the instructor's secret (kept below 2**31: a seed per model and one per call)
    seeds = [0] + ([hidden_seed(5, "dcgan_weights_init", i) % 2**31 for i in (1, 2)] if hidden else [])
    return {
        "statistics": [("big", s) for s in seeds[:2]],
        "exact": [(key, 100 + s) for s in seeds for key in ("generator", "discriminator", "biased", "projected")],
    }


# ---------------------------------------------------------------------------------------------
# probe side


def _build(key: str, seed: int) -> nn.Module:
    """The test model ``key`` with PyTorch's default init drawn under ``seed`` (the caller's RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return MODELS[key][1]()


def _apply_to(model: nn.Module, fn: Any) -> None:
    """``model.apply(fn)``, returning nothing (the model itself may be a dcgan_ref class)."""
    model.apply(fn)


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class InitRecord(TypedDict):
    """One test model's state_dict before and after ``model.apply(dcgan_weights_init)``."""

    before: dict[str, torch.Tensor]
    after: dict[str, torch.Tensor]


class InitRuns(TypedDict, total=False):
    """Every test model's record, by group (``error`` alone when a call failed or fn is the reference)."""

    statistics: list[InitRecord]  #: the big model, judged on the statistics of its weights
    exact: list[InitRecord]  #: the models compared with dcgan_ref's weights_init under the same seed
    error: str


def _probe(fn: Any, cases: dict[str, Any]) -> InitRuns:
    """Each test model's state_dict before and after ``model.apply(fn)`` under a fixed seed."""
    origin = reference_origin(fn)
    if origin is not None:
        return {"error": f"dcgan_weights_init is {origin}, the reference it is compared with: write your own."}
    out: InitRuns = {}
    for group in ("statistics", "exact"):
        results: list[InitRecord] = []
        for key, seed in cases[group]:
            model = _build(key, seed)
            before = _state(model)
            try:
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(seed + 1)
                    call(_apply_to, model, fn, what="model.apply(dcgan_weights_init)")
            except CheckFailure as err:
                return {"error": str(err)}
            results.append({"before": before, "after": _state(model)})
        out[group] = results
    return out


# ---------------------------------------------------------------------------------------------
# judge side


def _std_hint(std: float, kind: str) -> str:
    """Name the usual reason behind a wrong standard deviation."""
    if abs(std - 10 * STD) < 0.1 * STD * 10:
        return f"{kind} std is {std:.4g}, ten times 0.02: a zero is missing (0.2 instead of 0.02)."
    if abs(std - math.sqrt(STD)) < 0.05 * math.sqrt(STD):
        return (
            f"{kind} std is {std:.4g} = sqrt(0.02): you passed 0.02 as the variance somewhere, but "
            "nn.init.normal_(tensor, mean, std) takes the standard deviation: 0.02."
        )
    if abs(std - STD / 10) < 0.1 * STD / 10:
        return f"{kind} std is {std:.4g}, a tenth of 0.02: a zero too many (0.002)."
    if abs(std - STD**2) < 0.1 * STD**2:
        return f"{kind} std is {std:.4g} = 0.02**2: the standard deviation is 0.02, not its square."
    if std == 0:
        return f"{kind} is a constant: draw it from a normal distribution, nn.init.normal_(..., std=0.02)."
    return f"{kind} std is {std:.4g}, expected 0.02: use nn.init.normal_(m.weight, mean, 0.02)."


def _same_keys(record: InitRecord, label: str) -> None:
    before, after = record["before"], record["after"]
    if type(after) is not dict or set(after) != set(before):
        fail(f"the state_dict of {label} changed its entries: initialise the existing weights in place "
             "(nn.init.normal_(m.weight, ...)), do not replace, add or delete parameters.")
    for name, value in after.items():
        if type(value) is not torch.Tensor or value.shape != before[name].shape or value.dtype != before[name].dtype:
            fail(f"{name} of {label} changed its shape or dtype: initialise it in place with nn.init.normal_ / "
                 "nn.init.zeros_.")


@judge_only
def _judge_statistics(record: InitRecord) -> None:
    label = MODELS["big"][0]
    _same_keys(record, label)
    model = _build("big", 0)  # the structure: which module each entry belongs to
    before, after = record["before"], record["after"]
    params = dict(model.named_parameters())
    for name in params:
        module = model.get_submodule(name.rsplit(".", 1)[0])
        kind = f"{type(module).__name__} {name.rsplit('.', 1)[1]} ({name})"
        p, p0 = after[name], before[name]
        v = p.double().flatten()
        if isinstance(module, nn.Linear):
            if not torch.equal(p, p0):
                fail(f"{kind} was changed: DCGAN's rule covers convolutions and BatchNorm only, every other "
                     "module keeps PyTorch's default. Test the module's type, isinstance(m, (nn.Conv2d, "
                     "nn.ConvTranspose2d)) and isinstance(m, nn.BatchNorm2d), not hasattr(m, 'weight'), and "
                     "leave the rest alone.")
            continue
        bn_bias = isinstance(module, nn.BatchNorm2d) and name.endswith("bias")  # default zeros: already right
        if torch.equal(p, p0) and not bn_bias:
            if isinstance(module, nn.ConvTranspose2d) and name.endswith("weight"):
                fail(
                    f"{kind} was not initialised: it still holds PyTorch's default values. "
                    "isinstance(m, nn.Conv2d) is False for nn.ConvTranspose2d (neither class derives from "
                    "the other): test for both, isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))."
                )
            if isinstance(module, nn.BatchNorm2d):
                fail(
                    f"{kind} is exactly 1 everywhere, PyTorch's default (left as it is, or set with "
                    "nn.init.ones_). The DCGAN rule, as in pytorch/examples' dcgan that this course follows, "
                    "draws it from N(1, 0.02): nn.init.normal_(m.weight, 1.0, 0.02)."
                )
            if name.endswith("bias"):
                fail(
                    f"{kind} was not zeroed: it still holds PyTorch's default (random) values. Add "
                    "`if m.bias is not None: nn.init.zeros_(m.bias)` for convolutions."
                )
            fail(f"{kind} was not initialised: it still holds PyTorch's default values.")
        if name.endswith("bias"):
            if bool((v != 0).any()):
                fail(
                    f"{kind} is not zero (max |value| {v.abs().max().item():.3g}): every bias starts at 0 in "
                    "DCGAN, nn.init.zeros_(m.bias)."
                )
            continue
        mean, std, n = v.mean().item(), v.std().item(), v.numel()
        want_mean = 1.0 if isinstance(module, nn.BatchNorm2d) else 0.0
        # sampling noise: the mean of n draws has std 0.02/sqrt(n), the std estimate about
        # 0.02/sqrt(2n); 6 of those keeps a correct answer from failing by chance (p < 1e-8)
        # while every mistake named here is off by far more; the std is checked first, so the mean's
        # tolerance can assume std 0.02
        mean_tol = 6 * STD / math.sqrt(n)
        std_tol = 6 * STD / math.sqrt(2 * n)
        if not close_number(std, STD, atol=std_tol):
            fail(_std_hint(std, kind))
        if not close_number(mean, want_mean, atol=mean_tol):
            if isinstance(module, nn.BatchNorm2d) and abs(mean) < 0.1:
                fail(
                    f"{kind} has mean {mean:.4g}, expected 1: BatchNorm's weight (gamma) starts around 1, "
                    "N(1, 0.02), so the layer starts close to the identity; a gamma around 0 multiplies "
                    "every activation by almost 0. Use nn.init.normal_(m.weight, 1.0, 0.02)."
                )
            if not isinstance(module, nn.BatchNorm2d) and abs(mean - 1) < 0.1:
                fail(
                    f"{kind} has mean {mean:.4g}, expected 0: mean 1 is for BatchNorm weights only; "
                    "convolution weights are N(0, 0.02)."
                )
            fail(f"{kind} has mean {mean:.4g}, expected {want_mean:g} (tolerance {mean_tol:.2g}).")
    # the modules' other state (BatchNorm running statistics) is not DCGAN's business
    for name in (n for n in before if n not in params):
        if not torch.equal(after[name], before[name]):
            fail(f"buffer {name} changed: initialise only weights and biases, not the running statistics.")


@judge_only
def _judge_exact(key: str, seed: int, record: InitRecord) -> None:
    from dcgan_ref.models import weights_init

    label = MODELS[key][0]
    _same_keys(record, label)
    model = _build(key, seed)  # its own draws are replaced by the probe's starting values
    model.load_state_dict(record["before"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        model.apply(weights_init)
    for name, want in model.state_dict().items():
        got = record["after"][name]
        # the same random draws give the same numbers up to float rounding (normal_ vs randn * std)
        if not close(got, want, rtol=0, atol=1e-6):
            module = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            if isinstance(module, nn.Linear):
                fail(f"{name} of {label} (an nn.Linear) was changed: DCGAN's rule covers convolutions and "
                     "BatchNorm only; leave every other module as PyTorch made it.")
            fail(
                f"{name} of {label} differs from dcgan_ref.models.weights_init under the same seed, although "
                "its statistics are right: the random numbers were drawn differently. Draw exactly one "
                "normal_ per convolution weight and per BatchNorm weight, in the order model.apply visits "
                "the modules, and set biases with nn.init.zeros_ (no random draws for them)."
            )


def _judge(cases: dict[str, Any], data: InitRuns) -> str:
    """Statistics on the big model, then exact agreement with dcgan_ref under the same seed."""
    if "error" in data:
        fail(str(data["error"]))
    for record in data["statistics"]:
        _judge_statistics(record)
    for (key, seed), record in zip(cases["exact"], data["exact"], strict=True):
        _judge_exact(key, seed, record)
    return ("dcgan_weights_init: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0, other modules "
            "untouched, and the same numbers as dcgan_ref under the same seed.")


check_dcgan_weights_init = exercise("dcgan_weights_init", _probe, _judge, _cases)
