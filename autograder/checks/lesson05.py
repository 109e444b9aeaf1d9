"""Checks for lesson 05: the DCGAN weight initialisation.

Two ways: statistically on a model large enough that a wrong mean or std shows beyond sampling
noise (conv and transposed-conv weights N(0, 0.02), BatchNorm weight N(1, 0.02), biases 0), and
exactly against ``dcgan_ref.models.weights_init`` applied with ``model.apply`` to an identically
built model under the same seed, which also pins the order in which random numbers are drawn.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from dcgan_ref.models import Discriminator, Generator, weights_init

from ._core import call, fail, passed

STD = 0.02


def _big_model() -> nn.Sequential:
    """Every layer kind DCGAN initialises, large enough for tight statistics; biases on some convs."""
    return nn.Sequential(
        nn.Conv2d(64, 128, 4, 2, 1, bias=True),  # 131k weights
        nn.BatchNorm2d(20000),  # 20k weights: the BatchNorm std is known to within 1 %
        nn.LeakyReLU(0.2),
        nn.ConvTranspose2d(128, 64, 4, 2, 1, bias=True),  # 131k weights
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(64, 32, 3, bias=False), nn.BatchNorm2d(32), nn.Tanh()),  # nested, no bias
    )


def _apply(fn: Any, model: nn.Module, seed: int) -> nn.Module:
    """model.apply(fn) under a fixed seed, without disturbing the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        call(model.apply, fn, what="model.apply(dcgan_weights_init)")
    return model


def _build(factory: Any, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return factory()


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
    if std == 0:
        return f"{kind} is a constant: draw it from a normal distribution, nn.init.normal_(..., std=0.02)."
    return f"{kind} std is {std:.4g}, expected 0.02: use nn.init.normal_(m.weight, mean, 0.02)."


def _check_statistics(fn: Any, seed: int) -> None:
    before = _build(_big_model, seed)
    model = _apply(fn, _build(_big_model, seed), seed + 1)
    for (name, p), (_, p0) in zip(model.named_parameters(), before.named_parameters(), strict=True):
        module = model.get_submodule(name.rsplit(".", 1)[0])
        kind = f"{type(module).__name__} {name.rsplit('.', 1)[1]} ({name})"
        v = p.detach().double().flatten()
        bn_bias = isinstance(module, nn.BatchNorm2d) and name.endswith("bias")  # default zeros: already right
        if torch.equal(p.detach(), p0.detach()) and not bn_bias:
            if isinstance(module, nn.ConvTranspose2d) and name.endswith("weight"):
                fail(
                    f"{kind} was not initialised: it still holds PyTorch's default values. "
                    "isinstance(m, nn.Conv2d) is False for nn.ConvTranspose2d (neither class derives from "
                    "the other): test for both, isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))."
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
        if abs(std - STD) > std_tol:
            fail(_std_hint(std, kind))
        if abs(mean - want_mean) > mean_tol:
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
    for (name, b), (_, b0) in zip(model.named_buffers(), before.named_buffers(), strict=True):
        if not torch.equal(b, b0):
            fail(f"buffer {name} changed: initialise only weights and biases, not the running statistics.")


def _small_models() -> list[tuple[str, Any]]:
    return [
        ("Generator(nz=16, ngf=8, image_size=32)", lambda: Generator(nz=16, ngf=8, image_size=32)),
        ("Discriminator(ndf=8, image_size=32)", lambda: Discriminator(ndf=8, image_size=32)),
        (
            "a model with biased convolutions",
            lambda: nn.Sequential(
                nn.ConvTranspose2d(8, 4, 4, 2, 1), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 3), nn.Tanh()
            ),
        ),
    ]


def _check_exact(fn: Any, label: str, factory: Any, seed: int) -> None:
    theirs = _apply(fn, _build(factory, seed), seed + 1)
    ours = _apply(weights_init, _build(factory, seed), seed + 1)
    for (name, got), (_, want) in zip(theirs.state_dict().items(), ours.state_dict().items(), strict=True):
        # the same random draws give the same numbers up to float rounding (normal_ vs randn * std)
        if got.shape != want.shape or not torch.allclose(got.double(), want.double(), rtol=0, atol=1e-6):
            fail(
                f"{name} of {label} differs from dcgan_ref.models.weights_init under the same seed, although "
                "its statistics are right: the random numbers were drawn differently. Draw exactly one "
                "normal_ per convolution weight and per BatchNorm weight, in the order model.apply visits "
                "the modules, and set biases with nn.init.zeros_ (no random draws for them)."
            )


def check_dcgan_weights_init(fn: Any, hidden: bool = False) -> None:
    """dcgan_weights_init(m), used as model.apply(dcgan_weights_init)."""
    if fn is weights_init:
        fail("dcgan_weights_init is dcgan_ref's weights_init itself: write your own.")
    _check_statistics(fn, seed=0)
    if hidden:
        _check_statistics(fn, seed=1)
    seeds = [0] + ([1, 2] if hidden else [])
    for seed in seeds:
        for label, factory in _small_models():
            _check_exact(fn, label, factory, 100 + seed)
    passed(
        "dcgan_weights_init: conv weights N(0, 0.02), BatchNorm weights N(1, 0.02), biases 0, and the same "
        "numbers as dcgan_ref under the same seed."
    )
