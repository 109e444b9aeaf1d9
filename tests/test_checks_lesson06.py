"""Lesson 06 checks: the reference solutions pass; each classic mistake fails with a message naming it."""

from __future__ import annotations

import pytest
import torch
from conftest import check_fails
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


def make_g(size=64, flat_z=True, **mistake):
    class Generator(nn.Module):
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            self.layers = nn.Sequential(*g_layers(nz, ngf, nc, size, **mistake))

        def forward(self, z):
            if flat_z and z.dim() == 2:
                z = z[:, :, None, None]
            return self.layers(z)

    return Generator


def make_d(size=64, flatten=True, squeeze=False, **mistake):
    class Discriminator(nn.Module):
        def __init__(self, nc=3, ndf=64):
            super().__init__()
            self.body = nn.Sequential(*d_layers(nc, ndf, size, **mistake))

        def forward(self, x):
            out = self.body(x)
            if squeeze:
                return out.squeeze()
            return out.view(-1) if flatten else out

    return Discriminator


def fails(check, cls, *fragments):
    """The hidden check of ``cls`` fails, naming every fragment (conftest's one ``check_fails``)."""
    return check_fails(check, cls, words=fragments)


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
            h = self.project(z.reshape(len(z), -1, 1, 1))
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

    fails(checks.check_generator, Sub, "dcgan_ref.models.Generator", "write your own")

    class Wrap(nn.Module):
        def __init__(self, nc=3, ndf=64):
            super().__init__()
            self.d = ref_models.SigmoidDiscriminator(nc, ndf)

        def forward(self, x):
            return self.d(x)

    fails(checks.check_discriminator, Wrap, "dcgan_ref.models", "write your own")


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


# --------------------------------------------------------------------------- the solutions of the notebook


class NotebookGenerator32(nn.Module):
    """The source notebook's Generator32, written out (one nn.Sequential called main)."""

    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh(),
        )

    def forward(self, z):
        if z.dim() == 2:
            z = z[:, :, None, None]
        return self.main(z)


def test_notebook_solution_and_other_spellings_pass():
    checks.check_generator32(NotebookGenerator32, hidden=True)

    class ViewG(NotebookGenerator32):
        def forward(self, z):
            return self.main(z.view(z.shape[0], -1, 1, 1))  # reshapes (N, nz) and (N, nz, 1, 1) alike

    checks.check_generator32(ViewG, hidden=True)

    for flatten in (lambda o: o.flatten(), lambda o: o.reshape(-1), lambda o: o.view(o.size(0)),
                    lambda o: o.squeeze(3).squeeze(2).squeeze(1), lambda o: o[:, 0, 0, 0]):
        class D(make_d(32)):
            def forward(self, x, flatten=flatten):
                return flatten(self.body(x))

        checks.check_discriminator32(D, hidden=True)


def test_squeeze_fails_on_a_batch_of_one():
    msg = fails(checks.check_discriminator32, make_d(32, squeeze=True), "batch of ONE", ".squeeze()", ".view(-1)")
    assert "()" in msg
    fails(checks.check_discriminator, make_d(64, squeeze=True), ".squeeze()")  # the visible run already catches it
    with pytest.raises(CheckFailure, match="squeeze"):
        checks.check_discriminator(make_d(64, squeeze=True))


def test_generator_must_accept_flat_noise():
    msg = fails(checks.check_generator, make_g(64, flat_z=False), "(N, nz)", "z.dim() == 2")
    assert "(N, nz, 1, 1)" in msg
    with pytest.raises(CheckFailure, match="does not accept noise shaped"):
        checks.check_generator32(make_g(32, flat_z=False))

    class Flat1(NotebookGenerator32):  # handles (N, nz) wrongly: one image per noise *component*
        def forward(self, z):
            return self.main(z.reshape(-1, z.shape[-1], 1, 1) if z.dim() == 2 else z)

    checks.check_generator32(Flat1)  # the right reshape for (N, nz): nothing to find

    class Broadcast(NotebookGenerator32):  # (N, nz) read column-major: every image gets mixed noise
        def forward(self, z):
            if z.dim() == 2:
                z = z.t().reshape(z.shape[0], -1, 1, 1)
            return self.main(z)

    fails(checks.check_generator32, Broadcast, "does not accept noise shaped")


# --------------------------------------------------------------------------- the reference is refused


def test_every_route_to_the_reference_is_refused():
    from dcgan_ref.models import Generator as RefG
    from dcgan_ref.models import SigmoidDiscriminator, up_block

    class Steal(nn.Module):  # builds the reference and keeps its layers
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            self.main = RefG(nz, ngf, nc, image_size=32).main

        def forward(self, z):
            return self.main(z)

    fails(checks.check_generator32, Steal, "dcgan_ref.models.Generator", "reference")

    class Blocks(nn.Module):  # the reference's up_block, lesson 02's answer
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            self.main = nn.Sequential(*up_block(nz, ngf * 4, 1, 0), *up_block(ngf * 4, ngf * 2),
                                      *up_block(ngf * 2, ngf), nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
                                      nn.Tanh())

        def forward(self, z):
            return self.main(z)

    fails(checks.check_generator32, Blocks, "dcgan_ref.models.up_block")

    class Forward(NotebookGenerator32):  # own layers, the reference's forward
        def forward(self, z):
            return RefG.forward(self, z)

    fails(checks.check_generator32, Forward, "dcgan_ref.models.Generator.forward")

    def factory(nc=3, ndf=64):  # a function that returns the reference network
        return SigmoidDiscriminator(nc, ndf, image_size=32)

    fails(checks.check_discriminator32, factory, "dcgan_ref")
    fails(checks.check_discriminator32, SigmoidDiscriminator, "dcgan_ref.models.SigmoidDiscriminator", "write your own")


# --------------------------------------------------------------------------- more mistakes


def test_activation_as_a_function_in_forward():
    class TanhInForward(nn.Module):
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            self.main = nn.Sequential(*g_layers(nz, ngf, nc, 32)[:-1])

        def forward(self, z):
            return torch.tanh(self.main(z))

    fails(checks.check_generator32, TanhInForward, "expected nn.Tanh", "nn.Tanh() layer")

    class SigmoidInForward(nn.Module):
        def __init__(self, nc=3, ndf=64):
            super().__init__()
            self.main = nn.Sequential(*d_layers(nc, ndf, 32, sigmoid=False))

        def forward(self, x):
            return torch.sigmoid(self.main(x)).view(-1)

    fails(checks.check_discriminator32, SigmoidInForward, "expected nn.Sigmoid", "nn.Sigmoid() layer")


def test_sigmoid_twice_or_missing_leaky_relu_layer():
    class Twice(make_d(32)):
        def forward(self, x):
            return torch.sigmoid(self.body(x)).view(-1)

    fails(checks.check_discriminator32, Twice, "D(x) in train mode", "differs from the reference")

    class FunctionalLeaky(nn.Module):
        def __init__(self, nc=3, ndf=64):
            super().__init__()
            self.c1 = nn.Conv2d(nc, ndf, 4, 2, 1, bias=False)
            self.rest = nn.Sequential(*d_layers(nc, ndf, 32)[2:])
            self.rest[0] = nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False)

        def forward(self, x):
            return self.rest(nn.functional.leaky_relu(self.c1(x), 0.2)).view(-1)

    fails(checks.check_discriminator32, FunctionalLeaky, "expected LeakyReLU")


def test_batchnorm_settings():
    class Eps(make_g(32)):
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__(nz, ngf, nc)
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eps = 1e-3

    fails(checks.check_generator32, Eps, "train mode", "eps")

    class NoAffine(nn.Module):
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            layers = g_layers(nz, ngf, nc, 32)
            self.main = nn.Sequential(*[nn.BatchNorm2d(m.num_features, affine=False)
                                        if isinstance(m, nn.BatchNorm2d) else m for m in layers])

        def forward(self, z):
            return self.main(z)

    fails(checks.check_generator32, NoAffine, "affine=True")

    class Frozen(make_d(32)):  # eval-mode BatchNorm during training: running stats never move
        def forward(self, x):
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
            return self.body(x).view(-1)

    fails(checks.check_discriminator32, Frozen, "train mode")


def test_dropout_upsample_and_wrong_conv_type():
    class Drop(nn.Module):
        def __init__(self, nc=3, ndf=64):
            super().__init__()
            layers = d_layers(nc, ndf, 32)
            self.main = nn.Sequential(*layers[:2], nn.Dropout(0.3), *layers[2:])

        def forward(self, x):
            return self.main(x).view(-1)

    fails(checks.check_discriminator32, Drop, "Dropout")

    class Up(nn.Module):
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(),
                *[m for a, b in [(ngf * 4, ngf * 2), (ngf * 2, ngf)]
                  for m in (nn.Upsample(scale_factor=2), nn.Conv2d(a, b, 3, 1, 1, bias=False), nn.BatchNorm2d(b),
                            nn.ReLU())],
                nn.Upsample(scale_factor=2), nn.Conv2d(ngf, nc, 3, 1, 1, bias=False), nn.Tanh(),
            )

        def forward(self, z):
            return self.main(z)

    fails(checks.check_generator32, Up, "Upsample")

    class ConvInG(nn.Module):  # Conv2d with padding instead of the last transposed convolution
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            layers = g_layers(nz, ngf, nc, 32)
            layers[-2] = nn.Conv2d(ngf, nc, 3, 1, 1, bias=False)
            self.main = nn.Sequential(*layers)

        def forward(self, z):
            return self.main(z)

    fails(checks.check_generator32, ConvInG, "convolution 4 is Conv2d", "expected ConvTranspose2d")


def test_not_a_module_and_errors_in_forward():
    def Generator(nz=100, ngf=64, nc=3):  # noqa: N802 - the student's "class"
        return "a generator"

    fails(checks.check_generator, Generator, "should build an nn.Module", "str")

    class Broken(make_d(32)):
        def forward(self, x):
            raise NotImplementedError()

    fails(checks.check_discriminator32, Broken, "not implemented yet")


def test_widths_swapped():
    class Narrow(nn.Module):  # widths in the wrong order: ngf first, ngf*8 last
        def __init__(self, nz=100, ngf=64, nc=3):
            super().__init__()
            w = [ngf, ngf * 2, ngf * 4]
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, w[0], 4, 1, 0, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(),
                nn.ConvTranspose2d(w[0], w[1], 4, 2, 1, bias=False), nn.BatchNorm2d(w[1]), nn.ReLU(),
                nn.ConvTranspose2d(w[1], w[2], 4, 2, 1, bias=False), nn.BatchNorm2d(w[2]), nn.ReLU(),
                nn.ConvTranspose2d(w[2], nc, 4, 2, 1, bias=False), nn.Tanh(),
            )

        def forward(self, z):
            return self.main(z)

    fails(checks.check_generator32, Narrow, "parameters")


def test_probe_returns_plain_data_and_judge_needs_no_student_object():
    """The round trip the trusted grader makes: probe data through the serialiser, judge alone."""
    from autograder.checks._plain import dumps, loads

    ex = checks.check_discriminator32.exercise
    cases = ex.cases(False)
    data = loads(dumps(ex.run_probe([make_d(32)], loads(dumps(cases)))))
    assert "match dcgan_ref" in ex.judge(cases, data)
    # a forged trace (a wrong output) cannot pass: the judge recomputes the reference from the weights
    out, records = data[0]["train"]["value"]
    data[0]["train"]["value"] = (out * 0 + 0.5, records)
    with pytest.raises(CheckFailure, match="train mode"):
        ex.judge(cases, data)


def test_hidden_values_come_from_the_secret(monkeypatch):
    """The shown configuration is public; the hidden ones' inputs and weights change with the secret."""
    from autograder.checks import _secret

    def hidden_cases(secret):
        monkeypatch.setenv("AUTOGRADER_SECRET", secret)
        _secret.reset()
        return checks.check_generator.exercise.cases(True)["configs"]

    try:
        a, b = hidden_cases("one"), hidden_cases("two")
        again = hidden_cases("one")
    finally:
        _secret.reset()
    assert torch.equal(a[0]["x"], b[0]["x"]) and a[0]["seed"] == b[0]["seed"]
    for x, y, z in zip(a[1:], b[1:], again[1:], strict=True):
        assert x["args"] == y["args"] and x["x"].shape == y["x"].shape
        assert not torch.equal(x["x"], y["x"]) and x["seed"] != y["seed"]
        assert torch.equal(x["x"], z["x"]) and x["seed"] == z["seed"]  # a re-grade reproduces them
