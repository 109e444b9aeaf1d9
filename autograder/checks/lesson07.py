"""Checks for lesson 07: BCE from scratch, the GAN losses, label smoothing, instance noise, Adam, one step.

Each check computes ``dcgan_ref``'s answer (or ``nn.BCELoss``'s) inside the check on the same
seeded inputs. When the student's answer differs, the check recomputes the reference with each
classic mistake built in (labels swapped, the saturating generator loss, no ``detach``, a missing
``zero_grad``, ...) and names the mistake whose result matches.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import dcgan_ref.losses as ref_losses
import dcgan_ref.models as ref_models
import dcgan_ref.train as ref_train

from ._core import (
    CheckFailure,
    call,
    expect,
    expect_close,
    expect_shape,
    expect_tensor,
    fail,
    forbid,
    passed,
    randn,
    seeded,
    student_globals,
)

# Losses are means of float32 logs: the student's formula and the built-in kernel agree to a few
# ulps; 1e-5 relative also covers a different summation order.
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-6

INTEGER_LABELS = (
    "integer labels given to BCE: torch.full((N,), 1) and torch.tensor([1, 0]) make int64 tensors, and "
    "BCELoss needs float targets. Use torch.ones_like(d_real) / torch.zeros_like(d_fake), or "
    "torch.full(..., 1.0)."
)


def _integer_label_error(err: CheckFailure) -> bool:
    """BCE's complaint about int64 targets: 'Found dtype Long but expected Float'."""
    text = str(err)
    return ("dtype Long" in text or "dtype Int" in text) and "expected Float" in text


def _call_loss(fn: Any, *args: Any, what: str) -> torch.Tensor:
    """Call a student's loss; name the integer-label mistake when BCE rejects the targets."""
    try:
        out = call(fn, *args, what=what)
    except CheckFailure as err:
        if _integer_label_error(err):
            fail(f"{what}: {INTEGER_LABELS} (The error was: {err})")
        raise
    out = expect_tensor(out, what)
    if out.dim() != 0:
        fail(
            f"{what} returned shape {tuple(out.shape)}, expected a single number (shape ()): "
            "average over the batch with .mean()."
        )
    return out


def _probabilities(n: int, seed: int) -> torch.Tensor:
    """Probabilities spread over (0, 1), like a discriminator's outputs."""
    return torch.sigmoid(2.0 * randn(n, seed=seed))


def _match(value: torch.Tensor, candidates: list[tuple[torch.Tensor, str]]) -> str | None:
    """The description of the first candidate ``value`` equals (to loss tolerance), else None."""
    v = value.detach().double()
    for c, why in candidates:
        c = c.detach().double()
        if c.shape == v.shape and torch.allclose(v, c, rtol=1e-4, atol=1e-5, equal_nan=True):
            return why
    return None


# --------------------------------------------------------------------------- bce


def _bce_forbidden(fn: Any) -> AbstractContextManager[list[str]]:
    targets = {
        "F.binary_cross_entropy": (F, "binary_cross_entropy"),
        "F.binary_cross_entropy_with_logits": (F, "binary_cross_entropy_with_logits"),
        "torch.binary_cross_entropy_with_logits": (torch, "binary_cross_entropy_with_logits"),
        "torch._C._nn.binary_cross_entropy": (torch._C._nn, "binary_cross_entropy"),
        "nn.BCELoss": (nn.BCELoss, "forward"),
        "nn.BCEWithLogitsLoss": (nn.BCEWithLogitsLoss, "forward"),
    }
    return forbid(targets, "bce", "Write the formula with torch.log, then clamp the logs at -100.", student_globals(fn))


def _bce_cases(hidden: bool) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    n = 16
    y_hard = (torch.rand(n, generator=seeded(11)) > 0.5).float()
    cases = [
        ("probabilities in (0, 1), targets 0 and 1", _probabilities(n, 10), y_hard),
        (
            "p exactly 0 and 1 (a saturated discriminator)",
            torch.tensor([0.0, 1.0, 0.0, 1.0, 0.5, 1e-30]),
            torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 1.0]),
        ),
    ]
    if hidden:
        cases += [
            ("soft targets 0.9 (label smoothing)", _probabilities(n, 12), torch.full((n,), 0.9)),
            (
                "a (4, 5) batch",
                torch.sigmoid(3 * randn(4, 5, seed=13)),
                (torch.rand(4, 5, generator=seeded(14)) > 0.5).float(),
            ),
            ("float64 inputs", _probabilities(n, 15).double(), y_hard.double()),
            ("a batch of one", torch.tensor([0.3]), torch.tensor([1.0])),
        ]
    return cases


def _bce_mistake(got: torch.Tensor, p: torch.Tensor, y: torch.Tensor) -> str:
    with torch.no_grad():
        log_p, log_q = torch.log(p), torch.log(1 - p)
        cl_p, cl_q = log_p.clamp(min=-100), log_q.clamp(min=-100)
        terms = -(y * cl_p + (1 - y) * cl_q)
        pc = p.clamp(1e-7, 1 - 1e-7)
        candidates = [
            (
                -(y * log_p + (1 - y) * log_q).mean(),
                "the logs are not clamped: at p = 0 or 1, log gives -inf (and 0 * -inf = nan). nn.BCELoss "
                "clamps each log at -100: torch.clamp(torch.log(p), min=-100)",
            ),
            (
                -(y * torch.log(pc) + (1 - y) * torch.log(1 - pc)).mean(),
                "it clamps p instead of the log: nn.BCELoss clamps log(p) and log(1 - p) at -100, so "
                "p = 0 with y = 1 costs exactly 100",
            ),
            (terms.sum(), "it sums over the batch; nn.BCELoss averages (reduction='mean')"),
            (-terms.mean(), "the sign is flipped: BCE = -(y log p + (1 - y) log(1 - p)), a positive number"),
            (
                -(p * torch.log(y).clamp(min=-100) + (1 - p) * torch.log(1 - y).clamp(min=-100)).mean(),
                "p and y are swapped: the logs are of the prediction p, weighted by the target y",
            ),
            (-(y * cl_q + (1 - y) * cl_p).mean(), "log(p) and log(1 - p) are swapped: y = 1 goes with log(p)"),
            (
                terms.mean() / torch.log(torch.tensor(10.0, dtype=p.dtype)),
                "it uses log10; BCE uses the natural log, torch.log",
            ),
            (
                terms.mean() / torch.log(torch.tensor(2.0, dtype=p.dtype)),
                "it uses log2; BCE uses the natural log, torch.log",
            ),
        ]
    return _match(got, candidates) or "check the formula: mean of -(y log p + (1 - y) log(1 - p)), logs clamped at -100"


def check_bce(bce: Any, hidden: bool = False) -> None:
    """bce(p, y) == nn.BCELoss()(p, y): the mean of -(y log p + (1-y) log(1-p)), logs clamped at -100."""
    for desc, p, y in _bce_cases(hidden):
        expected = F.binary_cross_entropy(p, y)
        with _bce_forbidden(bce):
            got = _call_loss(bce, p.clone(), y.clone(), what="bce(p, y)")
        expect(
            got.dtype == expected.dtype,
            f"bce(p, y) on {p.dtype} inputs returned {got.dtype}: compute in the inputs' dtype.",
        )
        try:
            expect_close(got, expected, f"bce(p, y) for {desc}", rtol=LOSS_RTOL, atol=LOSS_ATOL)
        except CheckFailure:
            fail(
                f"bce(p, y) for {desc}: got {got.item():.6g}, nn.BCELoss gives {expected.item():.6g}: "
                f"{_bce_mistake(got, p, y)}."
            )
    if hidden:  # gradients flow, and equal BCELoss's, where p is strictly inside (0, 1)
        p0, y0 = _probabilities(8, 16), (torch.rand(8, generator=seeded(17)) > 0.5).float()
        p_ref, p_stu = p0.clone().requires_grad_(), p0.clone().requires_grad_()
        F.binary_cross_entropy(p_ref, y0).backward()
        with _bce_forbidden(bce):
            loss = _call_loss(bce, p_stu, y0, what="bce(p, y)")
        expect(
            loss.requires_grad,
            "bce(p, y) is cut off from the graph (no gradient flows to p): "
            "do not use .item(), .detach() or torch.no_grad() inside it.",
        )
        loss.backward()
        expect_close(
            p_stu.grad, p_ref.grad, "the gradient of bce(p, y) with respect to p", rtol=1e-4, atol=1e-6
        )  # float32 gradients of the same formula
    passed("bce(p, y) equals nn.BCELoss, including p = 0 and p = 1 where it clamps the logs at -100.")


# --------------------------------------------------------------------------- real_targets


def check_real_targets(real_targets: Any, hidden: bool = False) -> None:
    """real_targets(like, s): a float tensor shaped like ``like``, full of 1 - s (one-sided smoothing)."""
    cases = [(randn(8, seed=20).sigmoid(), 0.0), (randn(8, seed=21).sigmoid(), 0.1)]
    if hidden:
        cases += [(randn(3, 4, seed=22).sigmoid(), 0.2), (randn(5, seed=23).sigmoid().double(), 0.3)]
    for like, s in cases:
        before = like.clone()
        got = call(real_targets, like, s, what=f"real_targets(like, label_smoothing={s})")
        got = expect_tensor(got, f"real_targets(like, {s})")
        expect(torch.equal(like, before), f"real_targets(like, {s}) changed `like` in place: build a new tensor.")
        expect_shape(got, like.shape, f"real_targets(like, {s})", "one target per discriminator output.")
        if not got.is_floating_point():
            fail(f"real_targets(like, {s}) returned {got.dtype} targets: {INTEGER_LABELS}")
        expected = ref_losses.real_targets(like, s)
        if got.dtype != expected.dtype:
            fail(
                f"real_targets(like, {s}) returned {got.dtype}, expected {expected.dtype} like `like`: "
                "torch.full_like(like, ...) keeps the dtype."
            )
        if torch.allclose(got.double(), torch.full_like(got, s, dtype=torch.float64)):
            fail(
                f"real_targets(like, {s}) is full of {s}: the targets of real images are "
                f"1 - label_smoothing = {1 - s}, not label_smoothing."
            )
        if s > 0 and torch.allclose(got.double(), torch.ones_like(got, dtype=torch.float64)):
            fail(f"real_targets(like, {s}) is full of 1: the smoothing is ignored; real targets are 1 - {s}.")
        if s > 0 and torch.allclose(got.double(), torch.full_like(got, 1 + s, dtype=torch.float64)):
            fail(
                f"real_targets(like, {s}) is full of {1 + s}: subtract the smoothing (1 - s); a BCE target "
                "must lie in [0, 1]."
            )
        expect_close(
            got,
            expected,
            f"real_targets(like, {s})",
            rtol=0,
            atol=1e-7,  # exact in float32
            hint=f"every target should be 1 - {s}.",
        )
    passed("real_targets: 1 - smoothing for every real image (one-sided: fake targets stay 0).")


# --------------------------------------------------------------------------- discriminator_loss


def _bce_any(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """BCE written out, for targets outside [0, 1] too (to recognise a wrong target)."""
    return -(t * torch.log(p).clamp(min=-100) + (1 - t) * torch.log(1 - p).clamp(min=-100)).mean()


def _d_loss_mistake(got: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor, s: float) -> str:
    bce = _bce_any
    one, zero = torch.ones_like(d_real), torch.zeros_like(d_fake)
    swapped = "labels swapped: D's target is 1 (or 1 - label_smoothing) for real images and 0 for fakes"
    with torch.no_grad():
        candidates = [
            (bce(d_real, zero) + bce(d_fake, one), swapped),
            (bce(d_real, zero) + bce(d_fake, one - s), swapped),
            (bce(d_real, zero + s) + bce(d_fake, one), swapped),
            (bce(d_real, zero + s) + bce(d_fake, one - s), swapped),
            (
                0.5 * (bce(d_real, one - s) + bce(d_fake, zero)),
                "it averages the two terms; dcgan_ref (like pytorch/examples: errD = errD_real + errD_fake) adds them",
            ),
            (
                bce(torch.cat([d_real, d_fake]), torch.cat([one - s, zero])),
                "it takes one BCE over the concatenated batch, i.e. half the sum; add the two means",
            ),
            (
                bce(d_real, one - s) + bce(d_fake, zero + s),
                "two-sided smoothing: only the REAL targets are smoothed (1 - s); fake targets stay 0, or "
                "D is taught that fakes are a bit real",
            ),
            (
                bce(d_real, one) + bce(d_fake, zero),
                "label_smoothing is ignored: real targets are 1 - label_smoothing (use your real_targets)",
            ),
            (bce(d_real, one + s) + bce(d_fake, zero), "the real targets are 1 + s; they are 1 - s"),
            (bce(d_real, zero + s) + bce(d_fake, zero), "the real targets are s; they are 1 - s"),
            (-(bce(d_real, one - s) + bce(d_fake, zero)), "the sign is flipped: BCE is already a loss to minimise"),
            (bce(d_real, one - s), "the fake term is missing: D must also push D(G(z)) towards 0"),
            (bce(d_fake, zero), "the real term is missing: D must also push D(x) towards 1"),
        ]
    return _match(got, candidates) or (
        "expected BCE(D(x), 1 - label_smoothing) + BCE(D(G(z)), 0), each a mean over the batch"
    )


def check_discriminator_loss(discriminator_loss: Any, hidden: bool = False) -> None:
    """discriminator_loss(d_real, d_fake, s) == dcgan_ref.losses.discriminator_loss (probabilities)."""
    cases = [(16, 0.0, 30), (16, 0.1, 31)]
    if hidden:
        cases += [(5, 0.2, 32), (1, 0.0, 33), (64, 0.3, 34)]
    for n, s, seed in cases:
        d_real, d_fake = _probabilities(n, seed), _probabilities(n, seed + 100)
        expected = ref_losses.discriminator_loss(d_real, d_fake, s)
        what = f"discriminator_loss(d_real, d_fake, label_smoothing={s})"
        got = _call_loss(discriminator_loss, d_real.clone(), d_fake.clone(), s, what=what)
        if not torch.allclose(got.double(), expected.double(), rtol=LOSS_RTOL, atol=LOSS_ATOL):
            fail(
                f"{what} on {n} outputs: got {got.item():.6g}, expected {expected.item():.6g}: "
                f"{_d_loss_mistake(got, d_real, d_fake, s)}."
            )
    if hidden:  # the loss must carry gradients to D's outputs
        d_real, d_fake = _probabilities(8, 35).requires_grad_(), _probabilities(8, 36).requires_grad_()
        loss = _call_loss(discriminator_loss, d_real, d_fake, 0.0, what="discriminator_loss")
        expect(loss.requires_grad, "discriminator_loss is cut off from the graph: no .item()/.detach() inside.")
    passed("discriminator_loss: BCE(D(x), 1 - s) + BCE(D(G(z)), 0), equal to dcgan_ref's.")


# --------------------------------------------------------------------------- generator_loss


def check_generator_loss(generator_loss: Any, hidden: bool = False) -> None:
    """generator_loss(d_fake) == BCE(d_fake, 1) = mean(-log D(G(z))): the non-saturating loss."""
    cases = [(16, 40)]
    if hidden:
        cases += [(3, 41), (64, 42)]
    for n, seed in cases:
        d_fake = _probabilities(n, seed)
        expected = ref_losses.generator_loss(d_fake)
        got = _call_loss(generator_loss, d_fake.clone(), what="generator_loss(d_fake)")
        if not torch.allclose(got.double(), expected.double(), rtol=LOSS_RTOL, atol=LOSS_ATOL):
            bce = F.binary_cross_entropy
            with torch.no_grad():
                why = (
                    _match(
                        got,
                        [
                            (
                                -bce(d_fake, torch.zeros_like(d_fake)),
                                "this is the SATURATING loss, minimising log(1 - D(G(z))): when D confidently rejects "
                                "the fakes (D(G(z)) near 0, early in training) its gradient vanishes. Use the "
                                "non-saturating loss: BCE(D(G(z)), 1) = -log D(G(z))",
                            ),
                            (
                                torch.log1p(-d_fake).mean(),
                                "this is the SATURATING loss log(1 - D(G(z))): its gradient vanishes when D rejects "
                                "the fakes. Use BCE(D(G(z)), 1) = -log D(G(z))",
                            ),
                            (
                                bce(d_fake, torch.zeros_like(d_fake)),
                                "it uses target 0, D's target for fakes: G would learn to look fake. G's target is 1",
                            ),
                            (-bce(d_fake, torch.ones_like(d_fake)), "the sign is flipped: minimise -log D(G(z))"),
                            (bce(d_fake, torch.ones_like(d_fake), reduction="sum"), "it sums; BCE averages"),
                        ],
                    )
                    or "expected BCE(D(G(z)), 1) = mean of -log D(G(z)), the non-saturating loss"
                )
            fail(f"generator_loss(d_fake) on {n} outputs: got {got.item():.6g}, expected {expected.item():.6g}: {why}.")
    d_fake = torch.tensor([1e-4, 1e-3, 1e-2])  # D rejects the fakes: G still needs a gradient
    d_fake.requires_grad_()
    loss = _call_loss(generator_loss, d_fake, what="generator_loss(d_fake)")
    expect(loss.requires_grad, "generator_loss is cut off from the graph: no .item()/.detach() inside.")
    loss.backward()
    grad = d_fake.grad
    expect(
        grad is not None and bool((grad.abs() > 1.0).all()),
        "where D(G(z)) is near 0 the gradient of generator_loss should be large (it is -1/(N D(G(z)))); "
        f"yours is {None if grad is None else grad.tolist()}: is it the saturating log(1 - D(G(z)))?",
    )
    passed(
        "generator_loss: the non-saturating -log D(G(z)), equal to dcgan_ref's; "
        "strong gradients even when D rejects the fakes."
    )


# --------------------------------------------------------------------------- add_instance_noise


def check_add_instance_noise(add_instance_noise: Any, hidden: bool = False) -> None:
    """add_instance_noise(x, sigma, generator) == dcgan_ref's: x + sigma * N(0, 1) drawn from ``generator``."""
    cases = [((4, 3, 8, 8), 0.1, 50), ((4, 3, 8, 8), 0.0, 51)]
    if hidden:
        cases += [((2, 1, 16, 16), 0.5, 52), ((64, 3, 4, 4), 1.0, 53), ((3, 3, 2, 2), 0.0, 54)]
    for shape, sigma, seed in cases:
        x = torch.tanh(randn(*shape, seed=seed))
        before = x.clone()
        what = f"add_instance_noise(x, sigma={sigma}, generator)"
        got = call(add_instance_noise, x, sigma, seeded(seed + 1000), what=what)
        expect(torch.equal(x, before), f"{what} changed x in place: return x + noise, leaving the batch as it was.")
        got = expect_shape(got, shape, what, "the noise has the shape of x.")
        expected = ref_losses.add_instance_noise(before, sigma, seeded(seed + 1000))
        if sigma == 0:
            expect_close(got, before, what, rtol=0, atol=0, hint="sigma = 0 means no noise: return x unchanged.")
            continue
        noise = (got - before).double()
        std = noise.std().item()
        if noise.abs().max().item() == 0:
            fail(f"{what} returned x unchanged: add sigma * torch.randn(...) to it.")
        ref_std = (expected - before).double().std().item()
        if abs(std - sigma**2) < 0.2 * sigma**2 and abs(sigma**2 - sigma) > 0.2 * sigma:
            fail(
                f"{what}: the noise has std {std:.3g}, about sigma^2 = {sigma**2:.3g}: sigma is the standard "
                "deviation, multiply N(0, 1) noise by sigma."
            )
        if abs(std - 1.0) < 0.2 and abs(sigma - 1.0) > 0.2:
            fail(f"{what}: the noise has std {std:.3g}, expected sigma = {sigma}: scale it by sigma.")
        if noise.min().item() >= 0 and noise.max().item() <= sigma + 1e-6:
            fail(f"{what}: the noise is uniform in [0, sigma]: instance noise is Gaussian, torch.randn.")
        expect_close(
            got,
            expected,
            what,
            rtol=1e-6,
            atol=1e-6,  # same draws, same float32 arithmetic
            hint=(
                f"your noise has std {std:.3g} (dcgan_ref's {ref_std:.3g}). Draw it from the "
                "generator you are given, in one call: "
                "torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)."
            ),
        )
    passed("add_instance_noise: x + sigma * N(0, 1), the same draws as dcgan_ref's from the same generator.")


# --------------------------------------------------------------------------- make_optimizers


def _tiny_models(seed: int) -> tuple[nn.Module, nn.Module]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = ref_models.Generator(8, 4, 1, image_size=32)
        D = ref_models.SigmoidDiscriminator(1, 4, image_size=32)
        G.apply(ref_models.weights_init)
        D.apply(ref_models.weights_init)
    return G, D


def check_make_optimizers(make_optimizers: Any, hidden: bool = False) -> None:
    """make_optimizers(G, D) -> (opt_G, opt_D): Adam over each network's own parameters, like dcgan_ref's."""
    G, D = _tiny_models(60)
    calls: list[tuple[tuple, dict[str, Any]]] = [((), {})]
    if hidden:
        calls += [((), {"lr": 1e-3, "betas": (0.9, 0.99)}), ((5e-5,), {})]
    for extra, kwargs in calls:
        what = (
            "make_optimizers(G, D"
            + "".join(f", {a}" for a in extra)
            + "".join(f", {k}={v}" for k, v in kwargs.items())
            + ")"
        )
        result = call(make_optimizers, G, D, *extra, what=what, **kwargs)
        if not (isinstance(result, tuple | list) and len(result) == 2):
            fail(f"{what} should return a pair (opt_G, opt_D), got {type(result).__name__}.")
        opt_G, opt_D = result
        ref_G, ref_D = ref_train.make_optimizers(G, D, *extra, **kwargs)
        for name, opt, ref_opt, own, other in [("opt_G", opt_G, ref_G, G, D), ("opt_D", opt_D, ref_D, D, G)]:
            if not isinstance(opt, torch.optim.Optimizer):
                fail(f"{what}: {name} should be a torch.optim optimizer, got {type(opt).__name__}.")
            if not isinstance(opt, torch.optim.Adam) or isinstance(opt, torch.optim.AdamW):
                fail(f"{what}: {name} is {type(opt).__name__}; DCGAN uses torch.optim.Adam for both networks.")
            params = {id(p) for g in opt.param_groups for p in g["params"]}
            if params & {id(p) for p in other.parameters()}:
                which = "G" if own is D else "D"
                fail(
                    f"{what}: {name} holds {which}'s parameters: "
                    + (
                        "one optimizer over both networks would let each step move both; give each network "
                        "its own Adam."
                        if params >= {id(p) for p in own.parameters()}
                        else "opt_G and opt_D are swapped (make_optimizers returns (opt_G, opt_D))."
                    )
                )
            if params != {id(p) for p in own.parameters()}:
                fail(
                    f"{what}: {name} must hold every parameter of {'G' if own is G else 'D'} "
                    f"({name[-1]}.parameters()), and only those."
                )
            for group in opt.param_groups:
                want = ref_opt.param_groups[0]
                if tuple(group["betas"]) != tuple(want["betas"]):
                    hint = (
                        "betas left at Adam's default (0.9, 0.999): DCGAN uses beta1 = 0.5, a momentum that "
                        "forgets faster, because each network chases a moving target"
                        if tuple(group["betas"]) == (0.9, 0.999)
                        else "pass the betas through"
                    )
                    fail(f"{what}: {name} has betas {tuple(group['betas'])}, expected {tuple(want['betas'])}: {hint}.")
                if group["lr"] != want["lr"]:
                    hint = "left at Adam's default 1e-3: DCGAN uses 2e-4" if group["lr"] == 1e-3 else "pass lr through"
                    fail(f"{what}: {name} has lr {group['lr']}, expected {want['lr']}: {hint}.")
                for key in ("eps", "weight_decay", "amsgrad", "maximize"):
                    if group.get(key) != want.get(key):
                        fail(f"{what}: {name} has {key}={group.get(key)}, expected Adam's default {want.get(key)}.")
    passed("make_optimizers: one Adam per network, lr 2e-4, betas (0.5, 0.999), like dcgan_ref's.")


# --------------------------------------------------------------------------- train_step

# After one Adam step every parameter has moved by about lr = 2e-4 (Adam's first update is
# lr * g / (|g| + eps)). The student's losses and the reference's agree to float32 rounding, which
# changes an update by far less than 1e-6; a mistake changes whole updates, i.e. ~2e-4.
PARAM_RTOL, PARAM_ATOL = 1e-4, 1e-6

Step = Callable[..., Any]


def _variant_step(bug: str | None) -> Step:
    """The canonical step (pytorch/examples' order) with one classic mistake built in, for diagnosis."""
    bce = F.binary_cross_entropy

    def step(G: nn.Module, D: nn.Module, opt_G: Any, opt_D: Any, real: torch.Tensor, z: torch.Tensor) -> None:
        if bug == "g_first":
            opt_G.zero_grad()
            out = D(G(z))
            bce(out, torch.ones_like(out)).backward()
            opt_G.step()
        fake = G(z)
        if bug != "no_zero_grad" and bug != "no_zero_grad_D":
            opt_D.zero_grad()
        if bug == "no_detach_pollution":
            opt_G.zero_grad()
        d_in = fake if bug == "no_detach_pollution" else fake.detach()
        if bug == "concat":
            out = D(torch.cat([real, d_in]))
            out_r, out_f = out[: len(real)], out[len(real) :]
        else:
            out_r, out_f = D(real), D(d_in)
        if bug == "swapped":
            loss_D = bce(out_r, torch.zeros_like(out_r)) + bce(out_f, torch.ones_like(out_f))
        else:
            loss_D = bce(out_r, torch.ones_like(out_r)) + bce(out_f, torch.zeros_like(out_f))
        loss_D.backward(retain_graph=bug == "no_detach_pollution")
        opt_D.step()
        if bug == "g_first":
            return
        if bug not in ("no_zero_grad", "no_zero_grad_G", "no_detach_pollution"):
            opt_G.zero_grad()
        out = D(fake)
        if bug == "saturating":
            loss_G = -bce(out, torch.zeros_like(out))  # minimise log(1 - D(G(z)))
        else:
            loss_G = bce(out, torch.ones_like(out))
        loss_G.backward()
        opt_G.step()

    return step


BUGS = {
    "no_detach_pollution": (
        "no detach: the D step backpropagated into G (D(fake) instead of D(fake.detach())), so G's "
        "gradients were polluted by D's loss before the G step. Use fake.detach() in the D step"
    ),
    "saturating": (
        "G is trained with the saturating loss log(1 - D(G(z))): use the non-saturating generator_loss, BCE(D(G(z)), 1)"
    ),
    "swapped": "labels swapped in the D step: real images must get target 1 and fakes target 0",
    "no_zero_grad": (
        "zero_grad is missing: gradients accumulate across steps (and G's step leaves gradients in D). "
        "Call opt_D.zero_grad() before the D step and opt_G.zero_grad() before the G step"
    ),
    "no_zero_grad_D": (
        "opt_D.zero_grad() is missing: D's gradients accumulate across steps, including those the G step "
        "leaves in D. Call opt_D.zero_grad() before the D step"
    ),
    "no_zero_grad_G": (
        "opt_G.zero_grad() is missing: G's gradients accumulate across steps. Call opt_G.zero_grad() before the G step"
    ),
    "g_first": "G is updated before D: the canonical order is the D step, then the G step (on the same fake)",
    "concat": (
        "D sees real and fake in one concatenated batch: BatchNorm then normalises them with shared "
        "statistics. Run D on the real batch and on the fake batch separately, as dcgan_ref does"
    ),
}


def _snapshot(G: nn.Module, D: nn.Module) -> list[torch.Tensor]:
    """D's parameters, then G's (D is updated first, so a difference shows in D first)."""
    return [p.detach().clone() for p in [*D.parameters(), *G.parameters()]]


def _state_mismatch(G: nn.Module, D: nn.Module, want: list[torch.Tensor]) -> tuple[str, int, float] | None:
    names = [f"D.{n}" for n, _ in D.named_parameters()] + [f"G.{n}" for n, _ in G.named_parameters()]
    for name, p, w in zip(names, [*D.parameters(), *G.parameters()], want, strict=True):
        diff = (p.detach().double() - w.double()).abs()
        bad = diff > PARAM_ATOL + PARAM_RTOL * w.double().abs()
        if bad.any():
            return name, int(bad.sum()), diff.max().item()
    return None


def _run_steps(
    step: Step, G: nn.Module, D: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]], n: int
) -> list[list[torch.Tensor]]:
    opt_G, opt_D = ref_train.make_optimizers(G, D)
    states = []
    for real, z in batches[:n]:
        step(G, D, opt_G, opt_D, real, z)
        states.append(_snapshot(G, D))
    return states


def _diagnose(G0: nn.Module, D0: nn.Module, batches: list, n: int, got: list[torch.Tensor]) -> str | None:
    for bug, why in BUGS.items():
        G, D = copy.deepcopy(G0), copy.deepcopy(D0)
        try:
            with torch.random.fork_rng(devices=[]):
                state = _run_steps(_variant_step(bug), G, D, batches, n)[-1]
        except RuntimeError:
            continue
        if all(
            torch.allclose(a.double(), b.double(), rtol=PARAM_RTOL, atol=PARAM_ATOL)
            for a, b in zip(got, state, strict=True)
        ):
            return why
    return None


def _student_step(
    train_step: Any, G: nn.Module, D: nn.Module, opt_G: Any, opt_D: Any, real: torch.Tensor, z: torch.Tensor, k: int
) -> Any:
    what = "train_step(G, D, opt_G, opt_D, real, z)"
    try:
        return call(train_step, G, D, opt_G, opt_D, real, z, what=what)
    except CheckFailure as err:
        text = str(err)
        if "backward through the graph a second time" in text:
            fail(
                f"{what} at step {k + 1}: no detach. The D step backpropagated through G (D(fake) instead of "
                "D(fake.detach())), which freed G's graph, so the G step cannot backpropagate through it "
                f"again. Use fake.detach() in the D step. (The error was: {text})"
            )
        if _integer_label_error(err):
            fail(f"{what}: {INTEGER_LABELS} (The error was: {text})")
        if "modified by an inplace operation" in text:
            fail(
                f"{text}. Usually: an optimizer step changed weights between computing a loss and calling "
                "backward on it; finish each update (forward, loss, backward, step) before the next one's "
                "forward."
            )
        raise


def _check_train_step_seed(train_step: Any, seed: int) -> None:
    """Two steps from one seeded start: the student's vs dcgan_ref's, with the D step watched."""
    G0, D0 = _tiny_models(seed)
    nz = G0.nz
    batch = 8
    batches = [
        (torch.tanh(randn(batch, 1, 32, 32, seed=seed * 10 + k)), randn(batch, nz, 1, 1, seed=seed * 10 + 5 + k))
        for k in range(2)
    ]
    G_ref, D_ref = copy.deepcopy(G0), copy.deepcopy(D0)
    opt_G_ref, opt_D_ref = ref_train.make_optimizers(G_ref, D_ref)
    G, D = copy.deepcopy(G0), copy.deepcopy(D0)
    opt_G, opt_D = ref_train.make_optimizers(G, D)
    g_params = list(G.parameters())
    events: list[str] = []
    leaks: list[str] = []

    grads_before: list[torch.Tensor | None] = []

    def on_d_step(opt: Any, args: Any, kwargs: Any, g_params: list = g_params) -> None:
        events.append("D")
        if "G" not in events:  # the D step of this train_step: G's gradients must be as they were
            touched = [
                p
                for p, before in zip(g_params, grads_before, strict=True)
                if p.grad is not None
                and bool(p.grad.abs().max() > 0)
                and (before is None or not torch.equal(p.grad, before))
            ]
            if touched:
                leaks.append(f"{len(touched)} of G's {len(g_params)} parameter tensors")

    def on_g_step(opt: Any, args: Any, kwargs: Any) -> None:
        events.append("G")

    hooks = [opt_D.register_step_pre_hook(on_d_step), opt_G.register_step_pre_hook(on_g_step)]
    try:
        for k, (real, z) in enumerate(batches):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                ref_logs = ref_train.train_step(G_ref, D_ref, opt_G_ref, opt_D_ref, real, z)
            events.clear()
            grads_before[:] = [None if p.grad is None else p.grad.clone() for p in g_params]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                logs = _student_step(train_step, G, D, opt_G, opt_D, real.clone(), z.clone(), k)
            what = f"train_step, step {k + 1}"
            if events.count("D") != 1 or events.count("G") != 1:
                fail(
                    f"{what} called opt_D.step() {events.count('D')} time(s) and opt_G.step() "
                    f"{events.count('G')} time(s): exactly one of each per train_step (one D update on the "
                    "sum of its real and fake losses, then one G update)."
                )
            if leaks:
                fail(
                    f"{what}: when opt_D.step() ran, {leaks[0]} already had gradients: the D step must leave "
                    "G alone. No detach: use D(fake.detach()) in the D step so D's loss does not "
                    "backpropagate into G."
                )
            if events != ["D", "G"]:
                fail(f"{what}: {BUGS['g_first']}.")
            if not isinstance(logs, dict) or not {"loss_D", "loss_G"} <= set(logs):
                fail(
                    f"{what} should return a dict with 'loss_D' and 'loss_G', got "
                    f"{type(logs).__name__}{'' if not isinstance(logs, dict) else ' with ' + str(sorted(logs))}."
                )
            mismatch = _state_mismatch(G, D, _snapshot(G_ref, D_ref))
            if mismatch:
                name, count, diff = mismatch
                got = _snapshot(G, D)
                why = _diagnose(G0, D0, batches, k + 1, got)
                if why is None:
                    why = (
                        "compare with the recipe: fake = G(z); opt_D.zero_grad(); "
                        "loss_D = discriminator_loss(D(real), D(fake.detach())); loss_D.backward(); "
                        "opt_D.step(); opt_G.zero_grad(); loss_G = generator_loss(D(fake)); "
                        "loss_G.backward(); opt_G.step()"
                    )
                fail(
                    f"{what}: after starting from the same weights, data and noise as dcgan_ref's "
                    f"train_step, {name} differs ({count} values, up to {diff:.3g}): {why}."
                )
            for key in ("loss_D", "loss_G"):
                value = logs[key]
                value = value.detach() if isinstance(value, torch.Tensor) else torch.tensor(float(value))
                expect_close(
                    value.reshape(()).float(),
                    ref_logs[key].float(),
                    f"{what}: logs['{key}']",
                    rtol=LOSS_RTOL,
                    atol=1e-5,  # same loss, float32
                    hint="return the loss of this step (loss.item()), not a running total.",
                )
    finally:
        for h in hooks:
            h.remove()


def check_train_step(train_step: Any, hidden: bool = False) -> None:
    """Two steps of the student's train_step equal two of dcgan_ref.train.train_step, parameter by parameter."""
    seeds = [70] + ([71] if hidden else [])
    for seed in seeds:
        _check_train_step_seed(train_step, seed)
    passed("train_step: two steps equal dcgan_ref's, parameter by parameter; the D step leaves G alone.")
