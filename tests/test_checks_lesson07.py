"""Lesson 07 checks: the reference solutions pass; each classic mistake fails with a message naming it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from conftest import check_fails
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
    """The hidden check of ``fn`` fails, naming every fragment (conftest's one ``check_fails``)."""
    return check_fails(check, fn, words=fragments)


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


def test_canonical_step_equals_dcgan_ref():
    """The judge's replay (variant_step(None)) is dcgan_ref's train_step: otherwise its matches mean nothing."""
    case = checks._train_cases(True)[1]
    want, _ = checks.replay(case, None, 2)
    G, D = checks.tiny_models(case["seed"])
    opt_G, opt_D = ref_train.make_optimizers(G, D)
    for real, z in case["batches"]:
        ref_train.train_step(G, D, opt_G, opt_D, real, z)
    for x, y in zip(want[-1], checks._snapshot(G, D), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------- bce mistakes


def test_bce_delegating_to_builtins_is_caught():
    fails(checks.check_bce, lambda p, y: F.binary_cross_entropy(p, y), "F.binary_cross_entropy")
    fails(checks.check_bce, lambda p, y: nn.BCELoss()(p, y), "built-in cross-entropy", "torch.log")
    fails(checks.check_bce, lambda p, y: F.binary_cross_entropy_with_logits(torch.logit(p), y),
          "built-in cross-entropy")


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


# --------------------------------------------------------------------------- a notebook's namespace
# The student's later functions call their earlier ones through the notebook's globals: exec the
# notebook's solutions into one namespace, with one function replaced by a wrong one.

NOTEBOOK = '''
import torch

def bce(p, y):
    log_p = torch.clamp(torch.log(p), min=-100)
    log_1mp = torch.clamp(torch.log(1 - p), min=-100)
    return -(y * log_p + (1 - y) * log_1mp).mean()

def real_targets(like, label_smoothing=0.0):
    return torch.full_like(like, 1.0 - label_smoothing)

def discriminator_loss(d_real, d_fake, label_smoothing=0.0):
    return bce(d_real, real_targets(d_real, label_smoothing)) + bce(d_fake, torch.zeros_like(d_fake))

def generator_loss(d_fake):
    return bce(d_fake, torch.ones_like(d_fake))

def train_step(G, D, opt_G, opt_D, real, z):
    fake = G(z)
    opt_D.zero_grad()
    loss_D = discriminator_loss(D(real), D(fake.detach()))
    loss_D.backward()
    opt_D.step()
    opt_G.zero_grad()
    loss_G = generator_loss(D(fake))
    loss_G.backward()
    opt_G.step()
    return {"loss_D": loss_D.item(), "loss_G": loss_G.item()}
'''


def notebook(*replacements):
    """The notebook's namespace, each replacement (source of one def) executed after the solutions."""
    ns: dict = {}
    exec(NOTEBOOK, ns)  # noqa: S102 - test fixture: the student's notebook
    for source in replacements:
        exec(source, ns)  # noqa: S102
    return ns


BCE_SUMS = ("def bce(p, y):\n"
            "    return -(y * torch.log(p).clamp(min=-100) + (1 - y) * torch.log(1 - p).clamp(min=-100)).sum()\n")


def test_notebook_solutions_pass_in_their_namespace(capsys):
    ns = notebook()
    for name in ("bce", "real_targets", "discriminator_loss", "generator_loss", "train_step"):
        getattr(checks, f"check_{name}")(ns[name], hidden=True)
    out = capsys.readouterr().out
    assert out.count("\u2714") == 5 and "fix exercise" not in out


# --------------------------------------------------------------------------- cascades


def test_a_summing_bce_costs_only_its_own_exercise(capsys):
    ns = notebook(BCE_SUMS)
    fails(checks.check_bce, ns["bce"], "sums over the batch")
    for name in ("discriminator_loss", "generator_loss", "train_step"):
        getattr(checks, f"check_{name}")(ns[name], hidden=True)  # passes: graded with the reference bce
        out = capsys.readouterr().out
        assert "\u2714" in out and "fix exercise 1 (bce) first" in out, out
        assert "running total" not in out
    assert ns["bce"].__code__.co_code != checks._ref_bce.__code__.co_code
    assert ns["bce"] is not checks.SUBSTITUTES["bce"]  # the student's globals are restored


def test_wrong_real_targets_blamed_in_discriminator_loss(capsys):
    ns = notebook("def real_targets(like, label_smoothing=0.0):\n    return torch.full_like(like, label_smoothing)\n")
    checks.check_discriminator_loss(ns["discriminator_loss"], hidden=True)
    assert "fix exercise 2 (real_targets) first" in capsys.readouterr().out


def test_saturating_generator_loss_blamed_in_train_step(capsys):
    ns = notebook("def generator_loss(d_fake):\n    return torch.log(1 - d_fake).mean()\n")
    fails(checks.check_generator_loss, ns["generator_loss"], "SATURATING")
    checks.check_train_step(ns["train_step"], hidden=True)
    out = capsys.readouterr().out
    assert "fix exercise 4 (generator_loss) first" in out and "exercise 1" not in out.split("fix")[1]


def test_own_mistake_still_fails_when_an_earlier_part_is_wrong_too():
    ns = notebook(BCE_SUMS, '''
def train_step(G, D, opt_G, opt_D, real, z):
    fake = G(z)
    loss_D = discriminator_loss(D(real), D(fake.detach()))
    loss_D.backward()
    opt_D.step()
    loss_G = generator_loss(D(fake))
    loss_G.backward()
    opt_G.step()
    return {"loss_D": loss_D.item(), "loss_G": loss_G.item()}
''')
    fails(checks.check_train_step, ns["train_step"], "zero_grad is missing")
    ns = notebook(BCE_SUMS, "def discriminator_loss(r, f, s=0.0):\n"
                            "    return bce(r, torch.zeros_like(r)) + bce(f, torch.ones_like(f))\n")
    fails(checks.check_discriminator_loss, ns["discriminator_loss"], "labels swapped")


# --------------------------------------------------------------------------- the reference is refused


def test_every_exercise_refuses_the_reference():
    import functools

    import dcgan_ref.losses as ref_losses

    refs = {
        checks.check_real_targets: ref_losses.real_targets,
        checks.check_discriminator_loss: ref_losses.discriminator_loss,
        checks.check_generator_loss: ref_losses.generator_loss,
        checks.check_add_instance_noise: ref_losses.add_instance_noise,
        checks.check_make_optimizers: ref_train.make_optimizers,
        checks.check_train_step: ref_train.train_step,
    }
    for check, ref in refs.items():
        fails(check, ref, ref.__name__, "reference")

        def wrapper(*args, ref=ref, **kwargs):
            return ref(*args, **kwargs)

        fails(check, wrapper, "dcgan_ref", "reference")
        fails(check, functools.partial(ref), "dcgan_ref", "reference")
    # the reference's losses inside the student's own function
    fails(checks.check_discriminator_loss, lambda r, f, s=0.0: ref_losses.discriminator_loss_with_logits(
        torch.logit(r), torch.logit(f), s), "dcgan_ref.losses")
    fails(checks.check_bce, lambda p, y: bce(p, ref_losses.real_targets(y, 0.0) * y), "dcgan_ref.losses.real_targets")

    def halves(G, D, opt_G, opt_D, real, z):
        fake = G(z)
        _, d_logs = ref_train.discriminator_step(D, opt_D, real, fake.detach())
        _, g_logs = ref_train.generator_step(D, opt_G, fake)
        return {**d_logs, **g_logs}

    fails(checks.check_train_step, halves, "dcgan_ref.train.discriminator_step")


def test_bce_aliases_are_refused_at_the_dispatcher():
    aliases = [
        lambda p, y: torch.ops.aten.binary_cross_entropy(p, y, None, 1),
        lambda p, y: torch.nn.functional.binary_cross_entropy(p, y, reduction="none").mean(),
        lambda p, y: -(y * F.logsigmoid(torch.logit(p)) + (1 - y) * F.logsigmoid(-torch.logit(p))).mean(),
        lambda p, y: (y * F.softplus(-torch.logit(p)) + (1 - y) * F.softplus(torch.logit(p))).mean(),
        lambda p, y: F.nll_loss(torch.stack([torch.log(1 - p), torch.log(p)], -1).reshape(-1, 2).clamp(min=-100),
                                y.reshape(-1).long()),
        lambda p, y: torch._C._nn.binary_cross_entropy(p, y),
    ]
    for fn in aliases:
        fails(checks.check_bce, fn, "built-in cross-entropy")

    class MyBCE(nn.BCELoss):
        pass

    fails(checks.check_bce, lambda p, y: MyBCE()(p, y), "built-in cross-entropy")


# --------------------------------------------------------------------------- a Sigmoid applied twice


def test_sigmoid_applied_twice_is_named():
    with_logits = F.binary_cross_entropy_with_logits
    fails(checks.check_discriminator_loss,
          lambda r, f, s=0.0: with_logits(r, torch.full_like(r, 1 - s)) + with_logits(f, torch.zeros_like(f)),
          "Sigmoid is applied twice")
    fails(checks.check_generator_loss, lambda f: with_logits(f, torch.ones_like(f)), "Sigmoid is applied twice")
    fails(checks.check_generator_loss, lambda f: bce(torch.sigmoid(f), torch.ones_like(f)), "Sigmoid is applied twice")
    twice = make_train_step(d_loss=lambda r, f, s=0.0: with_logits(r, torch.ones_like(r)) + with_logits(
        f, torch.zeros_like(f)), g_loss=lambda f: with_logits(f, torch.ones_like(f)))
    fails(checks.check_train_step, twice, "Sigmoid is applied twice")


# --------------------------------------------------------------------------- more bce / targets / noise mistakes


def test_more_bce_mistakes():
    fails(checks.check_bce, lambda p, y: -(y * torch.log(p + 1e-8) + (1 - y) * torch.log(1 - p + 1e-8)).mean(),
          "epsilon inside the log")
    fails(checks.check_bce, lambda p, y: -(y * torch.log(p).clamp(min=-100)).mean(), "term is missing")
    fails(checks.check_bce, lambda p, y: bce(p, y).reshape(1), "shape ()", ".mean()")
    fails(checks.check_bce, lambda p, y: bce(p, y).item(), "float", "no .item()")
    fails(checks.check_bce, lambda p, y: bce(p.float(), y.float()), "compute in the inputs' dtype")
    fails(checks.check_bce, lambda p, y: bce(p.clamp(1e-6, 1), y), "p exactly 0 and 1")


def test_more_real_targets_mistakes():
    fails(checks.check_real_targets, lambda like, s=0.0: like.fill_(1 - s), "in place")
    fails(checks.check_real_targets, lambda like, s=0.0: [1 - s] * len(like), "list")
    fails(checks.check_real_targets, lambda like, s=0.0: torch.full((like.shape[0],), 1 - s), "shape")
    fails(checks.check_real_targets, lambda like, s=0.0: torch.full(like.shape, 1 - s), "dtype")  # float32 for float64
    fails(checks.check_real_targets, lambda like, s=0.0: like * 0 + 1 + s, "1 - s")
    fails(checks.check_real_targets, lambda like, s=0.0: like * (1 - s), "only their shape")


def test_more_noise_mistakes():
    def zero_only(x, s, g=None):
        if s == 0:
            return x
        return x + s * torch.randn(x.shape, generator=g, dtype=x.dtype)

    fails(checks.check_add_instance_noise, zero_only, "sigma <= 0")
    fails(checks.check_add_instance_noise,
          lambda x, s, g=None: x if s <= 0 else x + s**0.5 * torch.randn(x.shape, generator=g), "sqrt(sigma)")
    fails(checks.check_add_instance_noise, lambda x, s, g=None: x.clone(), "unchanged")


def test_more_generator_loss_mistakes():
    fails(checks.check_generator_loss, lambda f: torch.log(f).mean(), "sign is flipped")
    fails(checks.check_generator_loss, lambda f: bce(f, torch.ones_like(f)).detach(), "cut off from the graph")


# --------------------------------------------------------------------------- more optimizer mistakes


def test_more_optimizer_mistakes():
    fails(checks.check_make_optimizers,
          lambda G, D, lr=2e-4, betas=(0.5, 0.999): (torch.optim.SGD(G.parameters(), lr=lr),
                                                     torch.optim.SGD(D.parameters(), lr=lr)), "SGD")
    fails(checks.check_make_optimizers,
          lambda G, D, lr=2e-4, betas=(0.5, 0.999): (torch.optim.AdamW(G.parameters(), lr=lr, betas=betas),
                                                     torch.optim.AdamW(D.parameters(), lr=lr, betas=betas)), "AdamW")
    fails(checks.check_make_optimizers,
          lambda G, D, lr=2e-4, betas=(0.5, 0.999): torch.optim.Adam(G.parameters(), lr=lr, betas=betas), "pair")
    fails(checks.check_make_optimizers,
          lambda G, D, lr=2e-4, betas=(0.5, 0.999): (torch.optim.Adam(G[0].parameters(), lr=lr, betas=betas),
                                                     torch.optim.Adam(D.parameters(), lr=lr, betas=betas)),
          "every parameter of G")
    fails(checks.check_make_optimizers,
          lambda G, D, lr=2e-4, betas=(0.5, 0.999): (
              torch.optim.Adam(G.parameters(), lr=lr, betas=betas, weight_decay=1e-5),
              torch.optim.Adam(D.parameters(), lr=lr, betas=betas)), "weight_decay")
    # correct spellings pass
    checks.check_make_optimizers(
        lambda G, D, lr=2e-4, betas=(0.5, 0.999): (torch.optim.Adam([{"params": list(G.parameters())}], lr, betas),
                                                   torch.optim.Adam(D.parameters(), lr=lr, betas=betas)), hidden=True)


# --------------------------------------------------------------------------- more train_step mistakes and variants


def test_train_step_variants_written_another_way_pass():
    def examples_style(G, D, opt_G, opt_D, real, z):  # pytorch/examples: two backward calls for D, nn.BCELoss
        crit = nn.BCELoss()
        D.zero_grad()
        out = D(real)
        err_real = crit(out, torch.full_like(out, 1.0))
        err_real.backward()
        fake = G(z)
        out = D(fake.detach())
        err_fake = crit(out, torch.full_like(out, 0.0))
        err_fake.backward()
        opt_D.step()
        G.zero_grad()
        out = D(fake)
        err_g = crit(out, torch.full_like(out, 1.0))
        err_g.backward()
        opt_G.step()
        return {"loss_D": (err_real + err_fake).item(), "loss_G": err_g}

    checks.check_train_step(examples_style, hidden=True)

    def frozen_d(G, D, opt_G, opt_D, real, z):  # D frozen for the G step, set_to_none=False
        fake = G(z)
        opt_D.zero_grad(set_to_none=False)
        loss_D = discriminator_loss(D(real), D(fake.detach()))
        loss_D.backward()
        opt_D.step()
        D.requires_grad_(False)
        opt_G.zero_grad(set_to_none=False)
        loss_G = generator_loss(D(fake))
        loss_G.backward()
        opt_G.step()
        D.requires_grad_(True)
        return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach()}

    checks.check_train_step(frozen_d, hidden=True)


def test_new_optimizers_inside_train_step():
    def fresh(G, D, opt_G, opt_D, real, z):
        opt_G, opt_D = make_optimizers(G, D)
        return make_train_step()(G, D, opt_G, opt_D, real, z)

    fails(checks.check_train_step, fresh, "0 time(s)", "optimizers passed in")


def test_g_step_on_detached_fake():
    def detached(G, D, opt_G, opt_D, real, z):
        return _step_on(G(z).detach(), G, D, opt_G, opt_D, real)

    fails(checks.check_train_step, detached, "no gradient reaches G")


def _step_on(fake, G, D, opt_G, opt_D, real):
    opt_D.zero_grad()
    loss_D = discriminator_loss(D(real), D(fake))
    loss_D.backward()
    opt_D.step()
    opt_G.zero_grad()
    loss_G = generator_loss(D(fake))
    loss_G.backward()
    opt_G.step()
    return {"loss_D": loss_D.item(), "loss_G": loss_G.item()}


def test_d_loss_averaged_and_g_target_zero_in_train_step():
    fails(checks.check_train_step, make_train_step(d_loss=lambda r, f, s=0.0: 0.5 * discriminator_loss(r, f)),
          "half of D's loss", "does not average")
    fails(checks.check_train_step, make_train_step(g_loss=lambda f: bce(f, torch.zeros_like(f))), "target 0")


def test_running_total_in_logs():
    totals = {"D": 0.0}

    def running(G, D, opt_G, opt_D, real, z):
        logs = make_train_step()(G, D, opt_G, opt_D, real, z)
        totals["D"] += logs["loss_D"]
        return {"loss_D": totals["D"], "loss_G": logs["loss_G"]}

    fails(checks.check_train_step, running, "step 2", "running total")


def test_forged_probe_data_cannot_pass():
    """The judge replays the reference itself: a probe reply with the wrong parameters fails."""
    from autograder.checks._plain import dumps, loads

    ex = checks.check_train_step.exercise
    cases = ex.cases(False)
    data = loads(dumps(ex.run_probe([make_train_step()], loads(dumps(cases)))))
    assert "parameter by parameter" in ex.judge(cases, data)
    step = data[0]["reference"]["steps"][1]
    step["params"][0] = step["params"][0] + 1e-3
    with pytest.raises(CheckFailure, match="differs"):
        ex.judge(cases, data)


# --------------------------------------------------------------------------- judged from behaviour (issues 20, 22)


def test_discriminator_loss_on_a_detached_input_names_it():
    """The right value, but D gets no gradient from the real (or the fake) batch."""
    fails(checks.check_discriminator_loss,
          lambda r, f, s=0.0: discriminator_loss(r.detach(), f, s), "no gradient reaches d_real", "real images")
    fails(checks.check_discriminator_loss,
          lambda r, f, s=0.0: bce(r, real_targets(r, s)) + bce(f.detach(), torch.zeros_like(f)),
          "no gradient reaches d_fake")
    # honest variants: a different but equivalent formula still passes
    checks.check_discriminator_loss(
        lambda r, f, s=0.0: F.binary_cross_entropy(r, torch.full_like(r, 1 - s)) + F.binary_cross_entropy(
            f, torch.zeros_like(f)), hidden=True)


def test_generator_loss_gradient_judged_not_only_its_size():
    """A loss whose value is right but whose gradient is scaled wrongly (a surrogate) fails."""
    def surrogate(d):  # same value, gradient doubled
        value = generator_loss(d)
        return value + (2 * value - 2 * value.detach())

    fails(checks.check_generator_loss, surrogate, "generator_loss(d_fake): gradient with respect to d_fake")


class _LazyAdam(torch.optim.Adam):
    def step(self, closure=None):  # a class that reads like Adam and never moves a weight
        return None


def test_an_adam_subclass_that_never_steps_fails():
    fails(checks.check_make_optimizers,
          lambda G, D, lr=2e-4, betas=(0.5, 0.999): (_LazyAdam(G.parameters(), lr=lr, betas=betas),
                                                     _LazyAdam(D.parameters(), lr=lr, betas=betas)),
          "opt_G.step() does not update", "leaves the parameters where they were")

    class HalfAdam(torch.optim.Adam):  # skips the first parameter tensor
        def step(self, closure=None):
            first = self.param_groups[0]["params"][0]
            first.grad = None
            return super().step(closure)

    fails(checks.check_make_optimizers,
          lambda G, D, lr=2e-4, betas=(0.5, 0.999): (torch.optim.Adam(G.parameters(), lr=lr, betas=betas),
                                                     HalfAdam(D.parameters(), lr=lr, betas=betas)),
          "opt_D.step() does not update")

    class LoggedAdam(torch.optim.Adam):  # honest: a subclass whose steps are Adam's
        def step(self, closure=None):
            return super().step(closure)

    checks.check_make_optimizers(
        lambda G, D, lr=2e-4, betas=(0.5, 0.999): (LoggedAdam(G.parameters(), lr=lr, betas=betas),
                                                   torch.optim.Adam(D.parameters(), lr, betas, foreach=True)),
        hidden=True)


def test_undefined_earlier_exercise_is_substituted(capsys):
    """A refused (never run) discriminator_loss cell: train_step is graded on its own code."""
    ns = notebook()
    del ns["discriminator_loss"]
    checks.check_train_step(ns["train_step"], hidden=True)
    out = capsys.readouterr().out
    assert "\u2714" in out and "not defined" in out and "exercise 3 (discriminator_loss)" in out, out
    assert "discriminator_loss" not in ns  # the substitute does not stay behind
    ns = notebook()
    del ns["bce"]
    checks.check_generator_loss(ns["generator_loss"], hidden=True)
    out = capsys.readouterr().out
    assert "not defined" in out and "exercise 1 (bce) first" in out, out


def test_integer_real_targets_do_not_cost_generator_loss(capsys):
    """generator_loss written with the student's real_targets, which returns a long tensor."""
    ns = notebook("def real_targets(like, label_smoothing=0.0):\n    return torch.ones(like.shape, dtype=torch.long)\n",
                  "def generator_loss(d_fake):\n"
                  "    return torch.nn.functional.binary_cross_entropy(d_fake, real_targets(d_fake))\n")
    fails(checks.check_real_targets, ns["real_targets"], "integer labels")
    checks.check_generator_loss(ns["generator_loss"], hidden=True)
    out = capsys.readouterr().out
    assert "\u2714" in out and "fix exercise 2 (real_targets) first" in out, out


def test_nan_parameters_after_train_step_fail():
    step = make_train_step()

    def nan_step(G, D, opt_G, opt_D, real, z):
        logs = step(G, D, opt_G, opt_D, real, z)
        with torch.no_grad():
            next(D.parameters()).view(-1)[0] = float("nan")
        return logs

    fails(checks.check_train_step, nan_step, "differs")
