"""Lesson 10 checks: correct answers (the notebook's and others written differently) pass; each named
mistake fails with a message that names it; the reference can be neither called nor returned."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import check_fails
from torch import nn
from torchvision.utils import make_grid

from autograder.checks import lesson10 as checks
from autograder.checks._core import CheckFailure


def fails(check, *objects, match: str, hidden: bool = False) -> None:
    """The check fails with a message matching ``match`` (conftest's one ``check_fails``)."""
    check_fails(check, *objects, match=match, hidden=hidden)


# ============================================================================ KerasGenerator


def make_generator(slope=0.2, bn_project=True, reshape="nchw", final="tanh", bn1d=False, relu=False,
                   bias=True, eps=1e-5, momentum=0.1, out_bn=False, flatten=True, n_up=3, pad=1, squeeze_z=False):
    """A Keras-style generator with one knob per mistake (the defaults are a correct answer)."""

    class KerasGenerator(nn.Module):
        def __init__(self, nz=100, ngf=128, nc=3):
            super().__init__()
            self.nz, self.ngf, self.nc = nz, ngf, nc
            self.project = nn.Linear(nz, ngf * 2 * 16, bias=bias)
            act = (lambda: nn.ReLU()) if relu else (lambda: nn.LeakyReLU(slope))
            self.bn0 = (nn.BatchNorm1d(ngf * 2 * 16, eps=eps, momentum=momentum) if bn1d
                        else nn.BatchNorm2d(ngf * 2, eps=eps, momentum=momentum)) if bn_project else nn.Identity()
            self.act0 = act()
            layers, c = [], ngf * 2
            for _ in range(n_up):
                layers += [nn.ConvTranspose2d(c, ngf, 4, 2, pad, bias=bias),
                           nn.BatchNorm2d(ngf, eps=eps, momentum=momentum), act()]
                c = ngf
            layers.append(nn.Conv2d(ngf, nc, 3, 1, 1, bias=bias))
            if out_bn:
                layers.append(nn.BatchNorm2d(nc))
            self.body = nn.Sequential(*layers)

        def forward(self, z):
            if flatten:
                z = z.flatten(1)
            elif squeeze_z:
                z = z.squeeze()
            x = self.project(z)
            if bn1d:
                x = self.act0(self.bn0(x))
            n = x.shape[0]
            c = self.ngf * 2
            x = x.view(n, 4, 4, c).permute(0, 3, 1, 2) if reshape == "nhwc" else x.view(n, c, 4, 4)
            if not bn1d:
                x = self.act0(self.bn0(x))
            x = self.body(x)
            return {"tanh": torch.tanh, "none": lambda t: t, "sigmoid": torch.sigmoid}[final](x)

    return KerasGenerator


class GeneratorFunctional(nn.Module):
    """Correct, written differently: functional activations, layers in a ModuleList, registered in another order."""

    def __init__(self, nz=100, ngf=128, nc=3):
        super().__init__()
        self.ngf = ngf
        self.ups = nn.ModuleList([nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1), nn.ConvTranspose2d(ngf, ngf, 4, 2, 1),
                                  nn.ConvTranspose2d(ngf, ngf, 4, 2, 1)])
        self.norms = nn.ModuleList([nn.BatchNorm2d(ngf) for _ in range(3)])
        self.out = nn.Conv2d(ngf, nc, 3, padding=1)
        self.fc = nn.Linear(nz, ngf * 32)
        self.norm0 = nn.BatchNorm2d(ngf * 2)

    def forward(self, z):
        x = self.fc(z.reshape(z.shape[0], -1)).reshape(-1, self.ngf * 2, 4, 4)
        x = F.leaky_relu(self.norm0(x), 0.2)
        for up, norm in zip(self.ups, self.norms, strict=True):
            x = F.leaky_relu(norm(up(x)), 0.2)
        return torch.tanh(self.out(x))


def test_generator_correct_answers_pass():
    for cls in (make_generator(), GeneratorFunctional):
        checks.check_keras_generator(cls)
        checks.check_keras_generator(cls, hidden=True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(relu=True), "ReLU where the Keras generator uses LeakyReLU"),
    (dict(slope=0.01), "slope is 0.01"),
    (dict(reshape="nhwc"), "channels-last"),
    (dict(final="none"), "no tanh at the end"),
    (dict(final="sigmoid"), "ends with a sigmoid"),
    (dict(bn_project=False), "BatchNorm2d after the projection is missing"),
    (dict(bn1d=True), "BatchNorm1d"),
    (dict(bias=False), "has no bias"),
    (dict(eps=1e-3), "Keras' default epsilon"),
    (dict(momentum=0.01), "Keras' momentum=0.99"),
    (dict(out_bn=True), "BatchNorm after the output Conv2d"),
    (dict(n_up=2), "found 2 ConvTranspose2d layers, expected 3"),
    (dict(pad=2), "'same' padding"),
    (dict(flatten=False), r"accept it as well as \(N, nz\)|fails on noise of shape \(4, 100, 1, 1\)"),
    (dict(flatten=False, squeeze_z=True), r"batch of one|accept"),
])
def test_generator_mistakes_are_named(kwargs, match):
    fails(checks.check_keras_generator, make_generator(**kwargs), match=match, hidden=True)


def test_generator_mistakes_visible_run():
    fails(checks.check_keras_generator, make_generator(relu=True), match="LeakyReLU")
    fails(checks.check_keras_generator, make_generator(reshape="nhwc"), match="channels-last")


class GeneratorDCGAN(nn.Module):
    """DCGAN's design (ConvTranspose from 1x1, no Dense layer) where the Keras one is asked for."""

    def __init__(self, nz=100, ngf=128, nc=3):
        super().__init__()
        self.main = nn.Sequential(nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0), nn.BatchNorm2d(ngf * 2), nn.LeakyReLU(0.2),
                                  nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2),
                                  nn.ConvTranspose2d(ngf, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2),
                                  nn.ConvTranspose2d(ngf, ngf, 4, 2, 1), nn.BatchNorm2d(ngf), nn.LeakyReLU(0.2),
                                  nn.Conv2d(ngf, nc, 3, 1, 1), nn.Tanh())

    def forward(self, z):
        return self.main(z.reshape(z.shape[0], -1, 1, 1))


class GeneratorBatchNormFunctional(make_generator()):
    """Calls BatchNorm functionally with training=True: right in train mode, wrong in eval mode."""

    def forward(self, z):
        x = self.project(z.flatten(1)).view(z.shape[0], self.ngf * 2, 4, 4)
        x = F.leaky_relu(F.batch_norm(x, self.bn0.running_mean, self.bn0.running_var, self.bn0.weight, self.bn0.bias,
                                      training=True), 0.2)
        return torch.tanh(self.body(x))


def test_generator_structural_mistakes():
    fails(checks.check_keras_generator, GeneratorDCGAN, match="no Dense projection")
    fails(checks.check_keras_generator, GeneratorBatchNormFunctional, match="never runs as a module")
    fails(checks.check_keras_generator, lambda *a: "not a module", match="expected an nn.Module")


def test_generator_reference_refused():
    from dcgan_ref import keras_gan

    fails(checks.check_keras_generator, keras_gan.KerasGenerator, match="reference")

    class Sub(keras_gan.KerasGenerator):
        pass

    fails(checks.check_keras_generator, Sub, match="reference")

    class Wrapper(nn.Module):
        def __init__(self, nz=100, ngf=128, nc=3):
            super().__init__()
            self.inner = keras_gan.KerasGenerator(nz, ngf, nc)

        def forward(self, z):
            return self.inner(z)

    fails(checks.check_keras_generator, Wrapper, match="reference")

    def factory(nz=100, ngf=128, nc=3):
        return keras_gan.KerasGenerator(nz, ngf, nc)

    fails(checks.check_keras_generator, factory, match="reference")

    class Copier(make_generator()):
        """Builds its own layers but runs the reference's forward on them."""

        def forward(self, z):
            ref = keras_gan.KerasGenerator.__new__(keras_gan.KerasGenerator)
            nn.Module.__init__(ref)
            ref.project, ref.ngf = self.project, self.ngf
            ref.main = nn.Sequential(self.bn0, self.act0, *self.body, nn.Tanh())
            return keras_gan.KerasGenerator.forward(ref, z)

    fails(checks.check_keras_generator, Copier, match="reference")


# ============================================================================ KerasDiscriminator


def make_discriminator(slope=0.2, sigmoid=False, dropout_mode="module", p_fixed=None, strides=(1, 2, 2, 2),
                       bn=False, out="flatten", bias=True, relu=False):
    class KerasDiscriminator(nn.Module):
        def __init__(self, nc=3, ndf=64, dropout=0.4):
            super().__init__()
            self.p = dropout if p_fixed is None else p_fixed
            widths = [nc, ndf, ndf * 2, ndf * 2, ndf * 4]
            layers = []
            for i, s in enumerate(strides):
                layers.append(nn.Conv2d(widths[i], widths[i + 1], 3, s, 1, bias=bias))
                if bn and i > 0:
                    layers.append(nn.BatchNorm2d(widths[i + 1]))
                layers.append(nn.ReLU() if relu else nn.LeakyReLU(slope))
            self.features = nn.Sequential(*layers)
            self.drop = nn.Dropout(self.p)
            self.fc = nn.Linear(ndf * 4 * 16, 1, bias=bias)

        def forward(self, x):
            h = self.features(x).flatten(1)
            if dropout_mode == "module":
                h = self.drop(h)
            elif dropout_mode == "always":
                h = F.dropout(h, self.p)
            y = self.fc(h)
            if sigmoid:
                y = torch.sigmoid(y)
            return {"flatten": lambda t: t.flatten(), "keep": lambda t: t, "squeeze": lambda t: t.squeeze()}[out](y)

    return KerasDiscriminator


class DiscriminatorFunctional(nn.Module):
    """Correct, written differently: functional LeakyReLU and dropout, dropout before the flatten."""

    def __init__(self, nc=3, ndf=64, dropout=0.4):
        super().__init__()
        self.dropout = dropout
        self.convs = nn.ModuleList([nn.Conv2d(nc, ndf, 3, padding=1), nn.Conv2d(ndf, 2 * ndf, 3, 2, 1),
                                    nn.Conv2d(2 * ndf, 2 * ndf, 3, 2, 1), nn.Conv2d(2 * ndf, 4 * ndf, 3, 2, 1)])
        self.head = nn.Linear(4 * ndf * 4 * 4, 1)

    def forward(self, x):
        for conv in self.convs:
            x = F.leaky_relu(conv(x), negative_slope=0.2)
        x = F.dropout(x, self.dropout, training=self.training)
        return self.head(x.reshape(x.shape[0], -1)).view(-1)


def test_discriminator_correct_answers_pass():
    for cls in (make_discriminator(), DiscriminatorFunctional):
        checks.check_keras_discriminator(cls)
        checks.check_keras_discriminator(cls, hidden=True)


@pytest.mark.parametrize("kwargs, match", [
    (dict(sigmoid=True), "applies a sigmoid"),
    (dict(slope=0.01), "slope is 0.01"),
    (dict(relu=True), "ReLU where the discriminator uses LeakyReLU"),
    (dict(dropout_mode="none"), "there is no dropout"),
    (dict(dropout_mode="always"), "dropout is still active"),
    (dict(p_fixed=0.5), "p=0.5, expected the dropout argument"),
    (dict(strides=(2, 2, 2, 1)), "strides 1, 2, 2, 2"),
    (dict(bn=True), "no BatchNorm"),
    (dict(out="keep"), r"expected \(\d+,\): one logit per image"),
    (dict(out="squeeze"), r"batch of one"),
    (dict(bias=False), "has no bias"),
])
def test_discriminator_mistakes_are_named(kwargs, match):
    fails(checks.check_keras_discriminator, make_discriminator(**kwargs), match=match, hidden=True)


class DiscriminatorDCGANHead(nn.Module):
    """DCGAN's head (a 4x4 convolution to one value) where the Keras design has Flatten, Dropout, Linear."""

    def __init__(self, nc=3, ndf=64, dropout=0.4):
        super().__init__()
        self.main = nn.Sequential(nn.Conv2d(nc, ndf, 3, 1, 1), nn.LeakyReLU(0.2), nn.Conv2d(ndf, 2 * ndf, 3, 2, 1),
                                  nn.LeakyReLU(0.2), nn.Conv2d(2 * ndf, 2 * ndf, 3, 2, 1), nn.LeakyReLU(0.2),
                                  nn.Conv2d(2 * ndf, 4 * ndf, 3, 2, 1), nn.LeakyReLU(0.2), nn.Dropout(dropout),
                                  nn.Conv2d(4 * ndf, 1, 4, 1, 0))

    def forward(self, x):
        return self.main(x).flatten()


def test_discriminator_structural_mistakes():
    fails(checks.check_keras_discriminator, DiscriminatorDCGANHead, match="no Dense layer")
    fails(checks.check_keras_discriminator, make_discriminator(sigmoid=True), match="sigmoid")


def test_discriminator_reference_refused():
    from dcgan_ref import keras_gan

    fails(checks.check_keras_discriminator, keras_gan.KerasDiscriminator, match="reference")

    def factory(nc=3, ndf=64, dropout=0.4):
        return keras_gan.KerasDiscriminator(nc, ndf, dropout=dropout)

    fails(checks.check_keras_discriminator, factory, match="reference")

    class Sub(keras_gan.KerasDiscriminator):
        def __init__(self, nc=3, ndf=64, dropout=0.4):
            super().__init__(nc, ndf, dropout=dropout)

    fails(checks.check_keras_discriminator, Sub, match="reference")


# ============================================================================ d_accuracy


def acc_ok(real, fake):
    return (real > 0).float().mean().item(), (fake < 0).float().mean().item()


def acc_sigmoid(real, fake):
    """Correct, written differently: probabilities first, Python sums."""
    p_r, p_f = torch.sigmoid(real), torch.sigmoid(fake)
    return float(sum(bool(v > 0.5) for v in p_r) / len(p_r)), float(sum(bool(v < 0.5) for v in p_f) / len(p_f))


def acc_swapped(real, fake):
    return (fake < 0).float().mean().item(), (real > 0).float().mean().item()


def acc_percent(real, fake):
    return 100 * (real > 0).float().mean().item(), 100 * (fake < 0).float().mean().item()


def acc_fake_called_real(real, fake):
    return (real > 0).float().mean().item(), (fake > 0).float().mean().item()


def acc_threshold_half(real, fake):
    return (real > 0.5).float().mean().item(), (fake < 0.5).float().mean().item()


def acc_ge(real, fake):
    return (real >= 0).float().mean().item(), (fake <= 0).float().mean().item()


def acc_real_ge(real, fake):
    return (real >= 0).float().mean().item(), (fake < 0).float().mean().item()


def acc_pooled(real, fake):
    a = torch.cat([real > 0, fake < 0]).float().mean().item()
    return a, a


def acc_tensor(real, fake):
    return (real > 0).float().mean(), (fake < 0).float().mean()


def acc_counts(real, fake):
    return int((real > 0).sum()), int((fake < 0).sum())


def acc_one_minus(real, fake):
    a = (real > 0).float().mean().item()
    return a, 1 - a


def acc_in_place(real, fake):
    real.sigmoid_()
    fake.sigmoid_()
    return (real > 0.5).float().mean().item(), (fake < 0.5).float().mean().item()


def acc_uses_reference(real, fake):
    from dcgan_ref.train import _probs  # noqa: F401 - the route is what is refused

    class _D:
        returns_logits = True

    p_r, p_f = _probs(_D(), real), _probs(_D(), fake)
    return (p_r > 0.5).float().mean().item(), (p_f < 0.5).float().mean().item()


def acc_grader_reference(real, fake):
    return checks.reference_accuracy(real, fake)


def test_accuracy_correct_answers_pass():
    for fn in (acc_ok, acc_sigmoid):
        checks.check_d_accuracy(fn)
        checks.check_d_accuracy(fn, hidden=True)


@pytest.mark.parametrize("fn, match", [
    (acc_swapped, "swapped"),
    (acc_percent, "percentages"),
    (acc_fake_called_real, "counts the fakes D calls real"),
    (acc_threshold_half, "compared with 0.5"),
    (acc_ge, "exactly 0.5"),
    (acc_real_ge, "D is right on a real image only when D"),
    (acc_pooled, "pooled"),
    (acc_tensor, "tensor, expected a Python float"),
    (acc_counts, "the fraction, not the count"),
    (acc_one_minus, "1 - acc_real"),
    (acc_in_place, "in place"),
    (acc_uses_reference, "reference"),
    (acc_grader_reference, "the answer it is compared with"),
])
def test_accuracy_mistakes_are_named(fn, match):
    fails(checks.check_d_accuracy, fn, match=match)


# ============================================================================ run_ablation


def run_ok(config, data, kit, steps, seed, *, noise="anneal", noise_gen=True, global_batches=False, lr=None,
           betas=(0.5, 0.999), eval_mode=False, eval_from_gen=False, all_real=False, n_steps=None, seeded=True,
           fixed_seed=None, fd_type=float, to_image=True, nrow=8, acc_item=True, acc_missing=False,
           grid_all=False):
    """The lesson's protocol, with one knob per mistake (the defaults are the solution)."""
    seed = seed if fixed_seed is None else fixed_seed
    if seeded:
        torch.manual_seed(seed)
    G, D = kit["build"](config)
    lr = config["lr"] if lr is None else lr
    opt_G = torch.optim.Adam(G.parameters(), lr=lr, betas=betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=lr, betas=betas)
    gen = torch.Generator(data.device).manual_seed(seed)
    b, nz = config["batch_size"], config["nz"]
    acc_real, acc_fake = [], []
    steps_run = steps if n_steps is None else n_steps
    for step in range(steps_run):
        if global_batches:
            real = data[torch.randint(len(data), (b,))]
            z = torch.randn(b, nz, 1, 1)
        else:
            real = data[torch.randint(len(data), (b,), generator=gen, device=data.device)]
            z = torch.randn(b, nz, 1, 1, generator=gen, device=data.device)
        sigma = {"anneal": kit["noise_sigma"](config["instance_noise"], step, steps),
                 "constant": config["instance_noise"], "none": 0.0,
                 "late": kit["noise_sigma"](config["instance_noise"], step + 1, steps)}[noise]
        logs = kit["train_step"](G, D, opt_G, opt_D, real, z, noise_sigma=sigma,
                                 noise_generator=gen if noise_gen else None)
        acc_real.append(float(logs["acc_real"]) if acc_item else logs["acc_real"])
        acc_fake.append(float(logs["acc_fake"]) if acc_item else logs["acc_fake"])
    n = config["n_eval"]
    eval_gen = gen if eval_from_gen else torch.Generator(data.device).manual_seed(config["eval_seed"])
    z_eval = torch.randn(n, nz, 1, 1, generator=eval_gen, device=data.device)
    if eval_mode:
        with torch.no_grad():
            fake = G.eval()(z_eval)
    else:
        fake = kit["sample"](G, z_eval)
    frechet = kit["distance"](data if all_real else data[:n], fake)
    shown = fake if grid_all else fake[:64]
    images = kit["to_image"](shown) if to_image else shown
    out = {"frechet": fd_type(frechet), "grid": make_grid(images, nrow=nrow, padding=2),
           "acc_real": acc_real, "acc_fake": acc_fake}
    if acc_missing:
        del out["acc_fake"]
    return out


def run_ok_separate_lists(config, data, kit, steps, seed):
    """Correct, written differently: a while loop, the history as one list of dicts split at the end."""
    torch.manual_seed(seed)
    G, D = kit["build"](config)
    opts = [torch.optim.Adam(m.parameters(), lr=config["lr"], betas=(0.5, 0.999)) for m in (G, D)]
    gen = torch.Generator(data.device).manual_seed(seed)
    history, step = [], 0
    while step < steps:
        idx = torch.randint(len(data), (config["batch_size"],), generator=gen, device=data.device)
        z = torch.randn(config["batch_size"], config["nz"], 1, 1, generator=gen, device=data.device)
        sigma = kit["noise_sigma"](config["instance_noise"], step, steps)
        history.append(kit["train_step"](G, D, opts[0], opts[1], data[idx], z, 0.0, sigma, gen))
        step += 1
    z_eval = torch.randn(config["n_eval"], config["nz"], 1, 1,
                         generator=torch.Generator().manual_seed(config["eval_seed"]))
    fake = kit["sample"](G, z_eval)
    return {"grid": make_grid(kit["to_image"](fake)[:64], nrow=8),
            "frechet": kit["distance"](data[: config["n_eval"]], fake),
            "acc_real": [h["acc_real"].item() for h in history], "acc_fake": [h["acc_fake"].item() for h in history]}


def with_knobs(**knobs):
    def run(config, data, kit, steps, seed):
        return run_ok(config, data, kit, steps, seed, **knobs)

    return run


def test_ablation_correct_answers_pass():
    for fn in (run_ok, run_ok_separate_lists):
        checks.check_run_ablation(fn)
        checks.check_run_ablation(fn, hidden=True)


@pytest.mark.parametrize("knobs, match", [
    (dict(noise="none"), "no instance noise reaches D"),
    (dict(noise="constant"), "noise is constant"),
    (dict(noise="late"), "one step late"),
    (dict(noise_gen=False), "instance noise comes from the global RNG"),
    (dict(global_batches=True), "batches and z come from the global RNG"),
    (dict(lr=2e-4), "learning rate is not config"),
    (dict(betas=(0.9, 0.999)), "default betas"),
    (dict(eval_mode=True), "eval mode"),
    (dict(eval_from_gen=True), "evaluation noise comes from the training generator"),
    (dict(all_real=True), "whole data set"),
    (dict(n_steps=3), "trains 3 steps, expected steps=4"),
    (dict(seeded=False), "different results when called twice with the same seed"),
    (dict(fixed_seed=0), "seed argument is ignored"),
    (dict(fd_type=torch.tensor), "'frechet' is a Tensor, expected a Python float"),
    (dict(to_image=False), r"expected \[0, 1\]"),
    (dict(nrow=4), "'grid' has shape"),
    (dict(acc_item=False), "holds a Tensor, expected Python floats"),
    (dict(acc_missing=True), "without 'acc_fake'"),
])
def test_ablation_mistakes_are_named(knobs, match):
    fails(checks.check_run_ablation, with_knobs(**knobs), match=match)


def test_ablation_calls_into_the_reference_outside_the_kit_are_refused():
    def run_with_trainer(config, data, kit, steps, seed):
        from dcgan_ref.checkpoint import atomic_write  # dcgan_ref beyond the kit's modules

        atomic_write("/nonexistent/x", lambda f: None)
        return run_ok(config, data, kit, steps, seed)

    def run_reference_runner(config, data, kit, steps, seed):  # the grader's own runner
        return checks.reference_ablation(config, data, kit, steps, seed)

    fails(checks.check_run_ablation, run_with_trainer, match="reference")
    fails(checks.check_run_ablation, run_reference_runner,
          match="lesson10.reference_ablation, the answer it is compared with")


# ============================================================================ more wrong answers of each kind


class GeneratorUpsample(make_generator()):
    """Nearest upsampling + convolution where the Keras generator has transposed convolutions."""

    def __init__(self, nz=100, ngf=128, nc=3):
        super().__init__(nz, ngf, nc)
        layers = []
        for c_in in (ngf * 2, ngf, ngf):
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(c_in, ngf, 3, 1, 1), nn.BatchNorm2d(ngf),
                       nn.LeakyReLU(0.2)]
        self.body = nn.Sequential(*layers, nn.Conv2d(ngf, nc, 3, 1, 1))


def discriminator_k4():
    class KerasDiscriminator(make_discriminator()):
        def __init__(self, nc=3, ndf=64, dropout=0.4):
            super().__init__(nc, ndf, dropout)
            widths = [nc, ndf, ndf * 2, ndf * 2, ndf * 4]
            layers = []
            for i, s in enumerate((1, 2, 2, 2)):
                layers += [nn.Conv2d(widths[i], widths[i + 1], 4 if s == 2 else 3, s, 1), nn.LeakyReLU(0.2)]
            self.features = nn.Sequential(*layers)

    return KerasDiscriminator


def run_one_adam(config, data, kit, steps, seed):
    """One Adam over both networks. With dcgan_ref's step this is the same update: Adam's state is per parameter,
    the D step leaves G's gradients None (detached fakes) and the G step freezes D, so each step moves one net."""
    torch.manual_seed(seed)
    G, D = kit["build"](config)
    opt = torch.optim.Adam([*G.parameters(), *D.parameters()], lr=config["lr"], betas=(0.5, 0.999))
    return _run_with(config, data, kit, steps, seed, G, D, opt, opt)


def run_in_order(config, data, kit, steps, seed):
    """Batches taken in data order instead of drawn from the seeded generator."""
    torch.manual_seed(seed)
    G, D = kit["build"](config)
    opts = [torch.optim.Adam(m.parameters(), lr=config["lr"], betas=(0.5, 0.999)) for m in (G, D)]
    gen = torch.Generator().manual_seed(seed)
    b = config["batch_size"]
    return _run_with(config, data, kit, steps, seed, G, D, *opts, gen=gen,
                     batches=lambda step: data[(step * b) % len(data):][:b])


def _run_with(config, data, kit, steps, seed, G, D, opt_G, opt_D, gen=None, batches=None):
    gen = gen or torch.Generator().manual_seed(seed)
    b, nz = config["batch_size"], config["nz"]
    acc_real, acc_fake = [], []
    for step in range(steps):
        real = batches(step) if batches else data[torch.randint(len(data), (b,), generator=gen)]
        z = torch.randn(b, nz, 1, 1, generator=gen)
        sigma = kit["noise_sigma"](config["instance_noise"], step, steps)
        logs = kit["train_step"](G, D, opt_G, opt_D, real, z, noise_sigma=sigma, noise_generator=gen)
        acc_real.append(float(logs["acc_real"]))
        acc_fake.append(float(logs["acc_fake"]))
    n = config["n_eval"]
    fake = kit["sample"](G, torch.randn(n, nz, 1, 1, generator=torch.Generator().manual_seed(config["eval_seed"])))
    return {"frechet": kit["distance"](data[:n], fake), "grid": make_grid(kit["to_image"](fake[:64]), nrow=8),
            "acc_real": acc_real, "acc_fake": acc_fake}


def test_more_wrong_answers():
    fails(checks.check_keras_generator, GeneratorUpsample, match="found 0 ConvTranspose2d layers, expected 3")
    fails(checks.check_keras_discriminator, discriminator_k4(), match="every convolution is 3x3")
    checks.check_run_ablation(run_one_adam)  # not a mistake here (see its docstring): it must pass
    fails(checks.check_run_ablation, run_in_order, match="differs from the lesson's protocol")
    # every eval sample in the grid, not the first 64: the visible run has 24 of them (the same grid), a hidden one 70
    checks.check_run_ablation(with_knobs(grid_all=True))
    fails(checks.check_run_ablation, with_knobs(grid_all=True), match="'grid' has shape", hidden=True)


# ============================================================================ judged from behaviour (issue 20)

import copy as _copy  # noqa: E402

from dcgan_ref.keras_gan import KerasGenerator as _RefGenerator  # noqa: E402

#: references made in an earlier cell, before any probe ran, for every configuration the check builds
_BUILT_BEFORE = {args: _RefGenerator(*args) for args in [(100, 32, 3), (100, 128, 3), (16, 8, 1), (32, 16, 1)]}


class GeneratorCopied(nn.Module):
    """Deep-copies the reference's layers (built before the check) instead of building its own."""

    def __init__(self, nz=100, ngf=128, nc=3):
        super().__init__()
        source = _BUILT_BEFORE[(nz, ngf, nc)]
        self.project = _copy.deepcopy(source.project)
        self.main = _copy.deepcopy(source.main)
        self.ngf, self.nc = ngf, nc

    def forward(self, z):
        x = self.project(z.flatten(1)).view(z.shape[0], self.ngf * 2, 4, 4)
        return self.main(x)


class GeneratorCopiedThenReset(GeneratorCopied):
    """The same copy, every layer re-initialised: fresh numbers, but not layers the class built."""

    def __init__(self, nz=100, ngf=128, nc=3):
        super().__init__(nz, ngf, nc)
        for m in self.modules():
            if hasattr(m, "reset_parameters") and m is not self:
                m.reset_parameters()


_SHARED = make_generator()(100, 32, 3)


class GeneratorShared(nn.Module):
    """Reuses layers made outside the class: every instance holds the same parameters."""

    def __init__(self, nz=100, ngf=128, nc=3):
        super().__init__()
        self.inner = _SHARED if (nz, ngf, nc) == (100, 32, 3) else make_generator()(nz, ngf, nc)

    def forward(self, z):
        return self.inner(z)


def test_generator_from_copied_reference_layers_fails():
    fails(checks.check_keras_generator, GeneratorCopied, match="registered no parameter while the class was built")
    fails(checks.check_keras_generator, GeneratorCopiedThenReset, match="registered no parameter")
    fails(checks.check_keras_generator, GeneratorShared, match="registered no parameter|share parameter tensors")
    checks.check_keras_generator(make_generator(), hidden=True)  # honest: builds its layers


def test_a_million_layer_names_do_not_stall_the_judge():
    """A forged reply naming a million layers is refused at once, not walked quadratically."""
    import time

    ex = checks.check_keras_generator.exercise
    cases = ex.cases(False)
    data = ex.run_probe([make_generator()], cases)
    names = [f"l{i}" for i in range(300_000)]
    data[0]["train"]["order"] = names * 3  # every name a layer that ran: a quadratic walk never ends
    leaf = {**data[0]["desc"][-1], "params": {}, "buffers": {}}
    data[0]["desc"] = data[0]["desc"] + [{**leaf, "name": n} for n in names]
    start = time.monotonic()
    with pytest.raises(CheckFailure, match="refused"):
        ex.judge(cases, data)
    assert time.monotonic() - start < 5


def test_nan_accuracy_fails():
    def acc_nan_fake(real, fake):
        acc_real, _ = acc_ok(real, fake)
        return acc_real, float("nan")

    fails(checks.check_d_accuracy, acc_nan_fake, match="never NaN")
