"""Lesson 06 checks: the reference solutions pass; each classic mistake fails with a message naming it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import dcgan_ref.models as ref_models
from autograder.checks import lesson06 as checks
from autograder.checks._core import CheckFailure

# --------------------------------------------------------------------------- solutions, with switches
# Each mistake is a keyword switch, so a wrong network differs from the right one in exactly one place.


def g_layers(
    nz,
    ngf,
    nc,
    size,
    *,
    bias=False,
    bn_out=False,
    act=lambda: nn.ReLU(True),
    out_act=nn.Tanh,
    skip_bn=None,
    first_stride=1,
    first_pad=0,
):
    widths = [ngf * 8, ngf * 4, ngf * 2, ngf] if size == 64 else [ngf * 4, ngf * 2, ngf]
    layers: list[nn.Module] = []
    cin = nz
    for i, w in enumerate(widths):
        s, p = (first_stride, first_pad) if i == 0 else (2, 1)
        layers.append(nn.ConvTranspose2d(cin, w, 4, s, p, bias=bias))
        if i != skip_bn:
            layers.append(nn.BatchNorm2d(w))
        layers.append(act())
        cin = w
    layers.append(nn.ConvTranspose2d(cin, nc, 4, 2, 1, bias=bias))
    if bn_out:
        layers.append(nn.BatchNorm2d(nc))
    layers.append(out_act())
    return layers


def d_layers(nc, ndf, size, *, bias=False, bn_in=False, slope=0.2, act=None, sigmoid=True, pool=False):
    widths = [ndf, ndf * 2, ndf * 4, ndf * 8] if size == 64 else [ndf, ndf * 2, ndf * 4]
    layers: list[nn.Module] = []
    cin = nc
    for i, w in enumerate(widths):
        if pool:
            layers += [nn.Conv2d(cin, w, 3, 1, 1, bias=bias), nn.MaxPool2d(2)]
        else:
            layers.append(nn.Conv2d(cin, w, 4, 2, 1, bias=bias))
        if i > 0 or bn_in:
            layers.append(nn.BatchNorm2d(w))
        layers.append(act() if act else nn.LeakyReLU(slope, inplace=True))
        cin = w
    layers.append(nn.Conv2d(cin, 1, 4, 1, 0, bias=bias))
    if sigmoid:
        layers.append(nn.Sigmoid())
    return layers


def make_g(size=64, flatten_z=False, **mistake):
    class Generator(nn.Module):
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            self.layers = nn.Sequential(*g_layers(nz, ngf, nc, size, **mistake))

        def forward(self, z):
            return self.layers(z)

    return Generator


def make_d(size=64, flatten=True, **mistake):
    class Discriminator(nn.Module):
        def __init__(self, nc=3, ndf=64):
            super().__init__()
            self.body = nn.Sequential(*d_layers(nc, ndf, size, **mistake))

        def forward(self, x):
            out = self.body(x)
            return out.view(-1) if flatten else out

    return Discriminator


def fails(check, cls, *fragments):
    with pytest.raises(CheckFailure) as info:
        check(cls, hidden=True)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


# --------------------------------------------------------------------------- the right answers pass


@pytest.mark.parametrize(
    "check, cls",
    [
        (checks.check_generator, make_g(64)),
        (checks.check_discriminator, make_d(64)),
        (checks.check_generator32, make_g(32)),
        (checks.check_discriminator32, make_d(32)),
    ],
)
def test_solutions_pass(check, cls, capsys):
    check(cls)
    check(cls, hidden=True)
    out = capsys.readouterr().out
    assert "match dcgan_ref" in out and "3 configurations" in out


def test_layers_named_and_nested_freely_pass():
    """Students name and group layers as they like; only the order the forward pass runs them counts."""

    class Generator(nn.Module):
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            self.project = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU()
            )
            self.ups = nn.ModuleList(
                nn.Sequential(nn.ConvTranspose2d(a, b, 4, 2, 1, bias=False), nn.BatchNorm2d(b), nn.ReLU())
                for a, b in [(ngf * 8, ngf * 4), (ngf * 4, ngf * 2), (ngf * 2, ngf)]
            )
            self.to_rgb = nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False)
            self.tanh = nn.Tanh()

        def forward(self, z):
            h = self.project(z)
            for block in self.ups:
                h = block(h)
            return self.tanh(self.to_rgb(h))

    checks.check_generator(Generator, hidden=True)


def test_reference_weights_are_what_the_outputs_are_compared_with():
    """The equality step is real: the right layers, fed a shifted input, fail."""

    class Generator(make_g(64)):
        def forward(self, z):
            return self.layers(z + 0.1)

    fails(checks.check_generator, Generator, "train mode", "differs from the reference")


# --------------------------------------------------------------------------- the named mistakes


def test_subclassing_or_wrapping_the_reference_is_rejected():
    class Sub(ref_models.Generator):
        pass

    fails(checks.check_generator, Sub, "subclasses dcgan_ref.models.Generator")

    class Wrap(nn.Module):
        def __init__(self, nc=3, ndf=64):
            super().__init__()
            self.d = ref_models.SigmoidDiscriminator(nc, ndf)

        def forward(self, x):
            return self.d(x)

    fails(checks.check_discriminator, Wrap, "dcgan_ref.models.SigmoidDiscriminator", "yourself")


def test_not_implemented_is_reported():
    class Generator(nn.Module):
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            raise NotImplementedError()

    fails(checks.check_generator, Generator, "not implemented yet")


def test_conv_bias():
    fails(checks.check_generator, make_g(64, bias=True), "parameters", "bias=False", "exactly the difference")
    fails(checks.check_discriminator32, make_d(32, bias=True), "bias=False")


def test_batchnorm_on_g_output():
    fails(checks.check_generator, make_g(64, bn_out=True), "BatchNorm on G's output layer")


def test_batchnorm_on_d_input():
    fails(checks.check_discriminator, make_d(64, bn_in=True), "BatchNorm on D's input layer")


def test_missing_batchnorm():
    msg = fails(checks.check_generator32, make_g(32, skip_bn=1), "expected BatchNorm2d")
    assert "after every ConvTranspose2d but the last" in msg


def test_wrong_activations():
    fails(checks.check_generator, make_g(64, act=nn.LeakyReLU), "LeakyReLU in G")
    fails(checks.check_generator, make_g(64, out_act=nn.Sigmoid), "expected nn.Tanh")
    fails(checks.check_discriminator, make_d(64, slope=0.01), "LeakyReLU(0.01)", "0.2")
    fails(checks.check_discriminator, make_d(64, act=nn.ReLU), "ReLU in D")
    fails(checks.check_discriminator, make_d(64, sigmoid=False), "expected nn.Sigmoid")


def test_pooling_and_linear():
    fails(checks.check_discriminator, make_d(64, pool=True), "no pooling")

    class Linear(nn.Module):
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            self.fc = nn.Linear(nz, ngf * 8 * 16, bias=False)
            self.rest = nn.Sequential(*g_layers(nz, ngf, nc, 64)[1:])
            self.ngf = ngf

        def forward(self, z):
            return self.rest(self.fc(z.flatten(1)).view(-1, self.ngf * 8, 4, 4))

    fails(checks.check_generator, Linear, "no fully connected layer")


def test_wrong_stride_or_padding_names_the_layer():
    fails(
        checks.check_generator,
        make_g(64, first_stride=2, first_pad=1),
        "convolution 1",
        "stride 1, padding 0",
    )


def test_wrong_size_for_the_exercise():
    fails(checks.check_generator32, make_g(64), "expected (4, 3, 32, 32)")
    fails(checks.check_discriminator, make_d(32), "Discriminator")


def test_unflattened_discriminator_output():
    fails(checks.check_discriminator, make_d(64, flatten=False), ".view(-1)")


def test_batchnorm_momentum():
    class D(make_d(64)):
        def __init__(self, nc=3, ndf=64):
            super().__init__(nc, ndf)
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = 0.2

    fails(checks.check_discriminator, D, "running_mean", "momentum")


def test_check_leaves_global_rng_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    checks.check_discriminator32(make_d(32))
    assert torch.equal(torch.rand(3), expected)
