"""Lesson 07 checks: the reference solutions pass; each classic mistake fails with a message naming it."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dcgan_ref.train as ref_train
from autograder.checks import lesson07 as checks
from autograder.checks._core import CheckFailure

# --------------------------------------------------------------------------- the solutions


def bce(p, y):
    return -(y * torch.clamp(torch.log(p), min=-100) + (1 - y) * torch.clamp(torch.log(1 - p), min=-100)).mean()


def real_targets(like, label_smoothing=0.0):
    return torch.full_like(like, 1.0 - label_smoothing)


def discriminator_loss(d_real, d_fake, label_smoothing=0.0):
    return bce(d_real, real_targets(d_real, label_smoothing)) + bce(d_fake, torch.zeros_like(d_fake))


def generator_loss(d_fake):
    return bce(d_fake, torch.ones_like(d_fake))


def add_instance_noise(x, sigma, generator=None):
    if sigma <= 0:
        return x
    return x + sigma * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def make_optimizers(G, D, lr=2e-4, betas=(0.5, 0.999)):
    return torch.optim.Adam(G.parameters(), lr=lr, betas=betas), torch.optim.Adam(D.parameters(), lr=lr, betas=betas)


def make_train_step(*, detach=True, zero_g=True, zero_d=True, g_loss=None, d_loss=None, g_first=False):
    """The canonical step with switches for the classic mistakes; each switch changes one thing."""
    g_loss = g_loss or generator_loss
    d_loss = d_loss or discriminator_loss

    def train_step(G, D, opt_G, opt_D, real, z):
        fake = G(z)
        if g_first:
            opt_G.zero_grad()
            loss_G = g_loss(D(fake))
            loss_G.backward()
            opt_G.step()
            fake = fake.detach()
        if zero_d:
            opt_D.zero_grad()
        loss_D = d_loss(D(real), D(fake.detach() if detach else fake))
        loss_D.backward()
        opt_D.step()
        if not g_first:
            if zero_g:
                opt_G.zero_grad()
            loss_G = g_loss(D(fake))
            loss_G.backward()
            opt_G.step()
        return {"loss_D": loss_D.item(), "loss_G": loss_G.item()}

    return train_step


def fails(check, fn, *fragments):
    with pytest.raises(CheckFailure) as info:
        check(fn, hidden=True)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.mark.parametrize(
    "check, fn",
    [
        (checks.check_bce, bce),
        (checks.check_real_targets, real_targets),
        (checks.check_discriminator_loss, discriminator_loss),
        (checks.check_generator_loss, generator_loss),
        (checks.check_add_instance_noise, add_instance_noise),
        (checks.check_make_optimizers, make_optimizers),
        (checks.check_train_step, make_train_step()),
    ],
)
def test_solutions_pass(check, fn, capsys):
    check(fn)
    check(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 2


def test_builtin_losses_pass_where_allowed():
    """Outside bce, nn.BCELoss is fine: the losses and train_step may use it."""
    crit = nn.BCELoss()
    checks.check_discriminator_loss(
        lambda r, f, s=0.0: crit(r, torch.full_like(r, 1 - s)) + crit(f, torch.zeros_like(f)), hidden=True
    )
    checks.check_generator_loss(lambda f: crit(f, torch.ones_like(f)), hidden=True)


def test_reference_train_step_passes():
    """The check compares with dcgan_ref's train_step itself: it passes its own check."""
    checks.check_train_step(ref_train.train_step, hidden=True)


def test_variants_without_bug_equal_dcgan_ref():
    """The diagnosis helper's canonical step is dcgan_ref's train_step: otherwise its matches mean nothing."""
    G0, D0 = checks._tiny_models(3)
    batches = [(torch.tanh(torch.randn(8, 1, 32, 32)), torch.randn(8, 8, 1, 1)) for _ in range(2)]
    a = checks._run_steps(checks._variant_step(None), copy.deepcopy(G0), copy.deepcopy(D0), batches, 2)[-1]
    b = checks._run_steps(ref_train.train_step, copy.deepcopy(G0), copy.deepcopy(D0), batches, 2)[-1]
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- bce mistakes


def test_bce_delegating_to_builtins_is_caught():
    fails(checks.check_bce, lambda p, y: F.binary_cross_entropy(p, y), "F.binary_cross_entropy")
    fails(checks.check_bce, lambda p, y: nn.BCELoss()(p, y), "nn.BCELoss")
    fails(checks.check_bce, lambda p, y: F.binary_cross_entropy_with_logits(torch.logit(p), y), "with_logits")


def test_bce_without_clamp():
    msg = fails(checks.check_bce, lambda p, y: -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean(), "clamp")
    assert "-100" in msg and "p exactly 0 and 1" in msg


def test_bce_clamping_p_instead_of_log():
    def clamp_p(p, y):
        p = p.clamp(1e-7, 1 - 1e-7)
        return -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()

    fails(checks.check_bce, clamp_p, "clamps p instead of the log")


def test_bce_sum_sign_and_swaps():
    fails(checks.check_bce, lambda p, y: bce(p, y) * p.numel(), "sums over the batch")
    fails(checks.check_bce, lambda p, y: -bce(p, y), "sign is flipped")
    fails(checks.check_bce, lambda p, y: bce(1 - p, y), "log(p) and log(1 - p) are swapped")


def test_bce_detached():
    fails(checks.check_bce, lambda p, y: bce(p, y).detach(), "cut off from the graph")


# --------------------------------------------------------------------------- real_targets mistakes


def test_real_targets_mistakes():
    fails(checks.check_real_targets, lambda like, s=0.0: torch.ones_like(like), "smoothing is ignored")
    fails(checks.check_real_targets, lambda like, s=0.0: torch.full_like(like, s), "not label_smoothing")
    fails(checks.check_real_targets, lambda like, s=0.0: torch.full(like.shape, 1), "integer labels")


# --------------------------------------------------------------------------- loss mistakes


def test_discriminator_loss_labels_swapped():
    fails(
        checks.check_discriminator_loss,
        lambda r, f, s=0.0: bce(r, torch.zeros_like(r)) + bce(f, torch.ones_like(f)),
        "labels swapped",
    )


def test_discriminator_loss_two_sided_or_ignored_smoothing():
    fails(
        checks.check_discriminator_loss,
        lambda r, f, s=0.0: bce(r, torch.full_like(r, 1 - s)) + bce(f, torch.full_like(f, s)),
        "two-sided smoothing",
    )
    fails(checks.check_discriminator_loss, lambda r, f, s=0.0: discriminator_loss(r, f), "smoothing is ignored")


def test_discriminator_loss_averaged():
    fails(checks.check_discriminator_loss, lambda r, f, s=0.0: 0.5 * discriminator_loss(r, f, s), "averages")


def test_integer_labels_given_to_bce():
    crit = nn.BCELoss()

    def int_labels(r, f, s=0.0):
        return crit(r, torch.full((len(r),), 1)) + crit(f, torch.full((len(f),), 0))

    fails(checks.check_discriminator_loss, int_labels, "integer labels given to BCE", "torch.full")

    def g_int(f):
        return crit(f, torch.full((len(f),), 1))

    fails(checks.check_generator_loss, g_int, "integer labels given to BCE")

    def step_int(G, D, opt_G, opt_D, real, z):
        return make_train_step(d_loss=int_labels)(G, D, opt_G, opt_D, real, z)

    fails(checks.check_train_step, step_int, "integer labels given to BCE")


def test_saturating_generator_loss():
    fails(checks.check_generator_loss, lambda f: -bce(f, torch.zeros_like(f)), "SATURATING")
    fails(checks.check_generator_loss, lambda f: torch.log(1 - f).mean(), "SATURATING")


def test_generator_loss_target_zero():
    fails(checks.check_generator_loss, lambda f: bce(f, torch.zeros_like(f)), "target 0")


# --------------------------------------------------------------------------- instance noise mistakes


def test_instance_noise_mistakes():
    fails(checks.check_add_instance_noise, lambda x, s, g=None: x + torch.randn(x.shape, generator=g), "scale it")
    fails(
        checks.check_add_instance_noise,
        lambda x, s, g=None: x + s**2 * torch.randn(x.shape, generator=g),
        "sigma^2",
    )

    def inplace(x, s, g=None):
        return x.add_(s * torch.randn(x.shape, generator=g))

    fails(checks.check_add_instance_noise, inplace, "in place")
    fails(checks.check_add_instance_noise, lambda x, s, g=None: x + s * torch.randn_like(x), "generator")
    fails(checks.check_add_instance_noise, lambda x, s, g=None: x + s * torch.rand(x.shape, generator=g), "uniform")


# --------------------------------------------------------------------------- optimizer mistakes


def test_betas_left_at_default():
    fails(
        checks.check_make_optimizers,
        lambda G, D, lr=2e-4, betas=(0.5, 0.999): (
            torch.optim.Adam(G.parameters(), lr=lr),
            torch.optim.Adam(D.parameters(), lr=lr),
        ),
        "betas left at Adam's default",
    )


def test_lr_left_at_default_and_swapped_and_shared():
    fails(
        checks.check_make_optimizers,
        lambda G, D, lr=2e-4, betas=(0.5, 0.999): (
            torch.optim.Adam(G.parameters(), betas=betas),
            torch.optim.Adam(D.parameters(), betas=betas),
        ),
        "1e-3",
    )
    fails(checks.check_make_optimizers, lambda G, D, lr=2e-4, betas=(0.5, 0.999): make_optimizers(D, G), "swapped")

    def shared(G, D, lr=2e-4, betas=(0.5, 0.999)):
        opt = torch.optim.Adam([*G.parameters(), *D.parameters()], lr=lr, betas=betas)
        return opt, opt

    fails(checks.check_make_optimizers, shared, "one optimizer over both")
    fails(
        checks.check_make_optimizers,
        lambda G, D, lr=2e-4, betas=(0.5, 0.999): make_optimizers(G, D),
        "pass the betas through",
    )


# --------------------------------------------------------------------------- train_step mistakes


def test_no_detach_pollutes_g():
    """No detach and G's gradients zeroed only at the start: D's loss leaks into G's gradients."""

    def polluted(G, D, opt_G, opt_D, real, z):
        opt_G.zero_grad()
        opt_D.zero_grad()
        fake = G(z)
        loss_D = discriminator_loss(D(real), D(fake))
        loss_D.backward(retain_graph=True)
        opt_D.step()
        loss_G = generator_loss(D(fake))
        loss_G.backward()
        opt_G.step()
        return {"loss_D": loss_D.item(), "loss_G": loss_G.item()}

    msg = fails(checks.check_train_step, polluted, "No detach", "fake.detach()", "leave G alone")
    assert "had gradients" in msg


def test_no_detach_backward_twice():
    fails(checks.check_train_step, make_train_step(detach=False), "no detach", "second time", "fake.detach()")


def test_saturating_loss_in_train_step():
    fails(
        checks.check_train_step,
        make_train_step(g_loss=lambda f: -bce(f, torch.zeros_like(f))),
        "saturating loss log(1 - D(G(z)))",
    )


def test_zero_grad_missing():
    msg = fails(checks.check_train_step, make_train_step(zero_g=False, zero_d=False), "zero_grad is missing")
    assert "step 2" in msg  # invisible after one step: caught by the second
    fails(checks.check_train_step, make_train_step(zero_d=False), "opt_D.zero_grad() is missing")
    fails(checks.check_train_step, make_train_step(zero_g=False), "opt_G.zero_grad() is missing")


def test_labels_swapped_in_train_step():
    swapped = make_train_step(d_loss=lambda r, f, s=0.0: bce(r, torch.zeros_like(r)) + bce(f, torch.ones_like(f)))
    fails(checks.check_train_step, swapped, "labels swapped")


def test_g_step_first():
    fails(checks.check_train_step, make_train_step(g_first=True), "before D")


def test_concatenated_batch():
    def concat(G, D, opt_G, opt_D, real, z):
        fake = G(z)
        opt_D.zero_grad()
        out = D(torch.cat([real, fake.detach()]))
        loss_D = discriminator_loss(out[: len(real)], out[len(real) :])
        loss_D.backward()
        opt_D.step()
        opt_G.zero_grad()
        loss_G = generator_loss(D(fake))
        loss_G.backward()
        opt_G.step()
        return {"loss_D": loss_D.item(), "loss_G": loss_G.item()}

    fails(checks.check_train_step, concat, "concatenated batch")


def test_two_d_updates_per_step():
    def twice(G, D, opt_G, opt_D, real, z):
        fake = G(z)
        for x, target in [(real, 1.0), (fake.detach(), 0.0)]:
            opt_D.zero_grad()
            out = D(x)
            loss_D = bce(out, torch.full_like(out, target))
            loss_D.backward()
            opt_D.step()
        opt_G.zero_grad()
        loss_G = generator_loss(D(fake))
        loss_G.backward()
        opt_G.step()
        return {"loss_D": loss_D.item(), "loss_G": loss_G.item()}

    fails(checks.check_train_step, twice, "opt_D.step() 2 time(s)")


def test_train_step_must_return_losses():
    step = make_train_step()
    fails(checks.check_train_step, lambda *a: step(*a)["loss_D"], "dict with 'loss_D' and 'loss_G'")
