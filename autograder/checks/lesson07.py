"""Checks for lesson 07: BCE from scratch, the GAN losses, label smoothing, instance noise, Adam, one step.

Each exercise is a probe and a judge (``_core.exercise``). The probe calls the student's function on
the grader's inputs and sends back what came out (values, gradients, the inputs as the call left
them, optimizers described as plain data, parameter snapshots of a training step); the judge
computes the answer with the torch built-ins (``F.binary_cross_entropy``, ``torch.optim.Adam``, the
canonical DCGAN step) on the same inputs and, when the student's answer differs, recomputes it
with each classic mistake built in (labels swapped, the saturating generator loss, no ``detach``,
a missing ``zero_grad``, a Sigmoid applied twice, ...) and names the mistake whose result matches.

Cascades (``_compare``'s cascade rule): the later exercises call the student's earlier functions
(``discriminator_loss`` calls ``bce`` and ``real_targets``, ``train_step`` the losses). The probe runs
each of them with every earlier exercise it depends on (found transitively) replaced by the reference,
defined or not (a refused cell), then as written, then with one earlier name replaced at a time. The
exercise is graded on the first run; when only the student's own earlier part breaks it, the check
passes and says "fix exercise N first".

Judged from behaviour: a loss by its value *and* its gradients (a detached input is named), an
optimizer by the effect of its steps on seeded gradients (not by its class), a training step by the
parameters it leaves. Hidden cases' values come from the instructor's secret (``_secret``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from ._compare import (
    CascadeRuns,
    Earlier,
    cascade_runs,
    close,
    judge_cascade,
    judge_gradients,
    judge_only,
    referenced_names,
)
from ._core import (
    CheckFailure,
    Outcome,
    attempt,
    call,
    exercise,
    expect,
    expect_close,
    fail,
    randn,
    seeded,
    unwrap,
)
from ._guard import BCE
from ._plain import qualname, to_plain, type_name
from ._secret import hidden_seed

# Losses are means of float32 logs: the student's formula and the built-in kernel agree to a few
# ulps; 1e-5 relative also covers a different summation order.
LOSS_RTOL, LOSS_ATOL = 1e-5, 1e-6

#: what runs import on first use here, imported with this module by a judge server or sandbox template
#: (``checks.import_lessons``) so that no judge or probe child pays for it again: torch the first time a
#: check builds an optimizer (``torch._dynamo``, 1.3 s, through ``Optimizer.add_param_group``); the
#: notebook's course cells when they load the digits (``sklearn.datasets`` and its data, 0.8 s in every probe child)
SERVER_IMPORTS = ("torch._dynamo", "sklearn.datasets", "sklearn.datasets.data", "sklearn.datasets.descr")

INTEGER_LABELS = (
    "integer labels given to BCE: torch.full((N,), 1) and torch.tensor([1, 0]) make int64 tensors, and "
    "BCELoss needs float targets. Use torch.ones_like(d_real) / torch.zeros_like(d_fake), or "
    "torch.full(..., 1.0)."
)
SIGMOID_TWICE = (
    "a Sigmoid is applied twice: D already ends in a Sigmoid and returns probabilities, and "
    "BCEWithLogits (or torch.sigmoid on D's output) applies another one. Give D's probabilities to your "
    "bce (or nn.BCELoss); BCEWithLogits is for a D that returns logits"
)

# --------------------------------------------------------------------------- cascades (probe side)

#: the earlier exercises a later one may call, by the name the notebook defines them under
EXERCISE_NUMBER = {"bce": 1, "real_targets": 2, "discriminator_loss": 3, "generator_loss": 4}  # for messages


@judge_only
def _ref_bce(p: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Exercise 1 as the course defines it: nn.BCELoss."""
    return F.binary_cross_entropy(p, y)


@judge_only
def _ref_real_targets(like: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Exercise 2: 1 - label_smoothing everywhere."""
    return torch.full_like(like, 1.0 - label_smoothing)


@judge_only
def _ref_discriminator_loss(d_real: torch.Tensor, d_fake: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Exercise 3: BCE(D(x), 1 - s) + BCE(D(G(z)), 0)."""
    return F.binary_cross_entropy(d_real, _ref_real_targets(d_real, label_smoothing)) + F.binary_cross_entropy(
        d_fake, torch.zeros_like(d_fake)
    )


@judge_only
def _ref_generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Exercise 4: the non-saturating BCE(D(G(z)), 1)."""
    return F.binary_cross_entropy(d_fake, torch.ones_like(d_fake))


#: the earlier exercises, with the reference the probe puts in place of each (``_compare``'s cascade rule:
#: a later exercise is graded on its own code, whatever the earlier one did, the message says so)
EARLIER = [Earlier("bce", 1, _ref_bce), Earlier("real_targets", 2, _ref_real_targets),
           Earlier("discriminator_loss", 3, _ref_discriminator_loss), Earlier("generator_loss", 4, _ref_generator_loss)]
SUBSTITUTES: dict[str, Callable[..., Any]] = {e.name: e.reference for e in EARLIER}


def _with_callees(fn: Any, earlier: list[Earlier]) -> list[Any]:
    """``fn`` and the student's earlier functions it calls, transitively (train_step -> discriminator_loss
    -> bce): the cascade then substitutes every earlier exercise this one depends on, and can blame bce
    when it is what breaks train_step through the student's own losses."""
    fns, seen = [fn], set()
    k = 0
    while k < len(fns) and k < 16:
        space = getattr(fns[k], "__globals__", None)
        for name in referenced_names([fns[k]], earlier):
            if name in seen or type(space) is not dict:
                continue
            seen.add(name)
            callee = space.get(name)
            if callable(callee) and all(callee is not f for f in fns):
                fns.append(callee)
        k += 1
    return fns


# --------------------------------------------------------------------------- shared helpers


def _secret(exercise_name: str, i: int) -> int:
    """The seed of hidden case ``i`` of an exercise: from the instructor's secret, never from this file."""
    return hidden_seed(7, exercise_name, i)


def _secret_uniform(exercise_name: str, i: int, low: float, high: float, digits: int = 2) -> float:
    """A hidden case's number in [low, high], drawn from the secret and rounded (readable in messages)."""
    u = torch.rand((), generator=seeded(_secret(exercise_name, 1000 + i)), dtype=torch.float64)
    return round(float(low + (high - low) * u), digits)


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


def _integer_label_error(text: str) -> bool:
    """BCE's complaint about int64 targets: 'Found dtype Long but expected Float'."""
    return ("dtype Long" in text or "dtype Int" in text) and "expected Float" in text


def _loss_value(outcome: Any, what: str) -> torch.Tensor:
    """Judge side: the loss an ``attempt`` returned, a 0-dim tensor, or a message naming what it is."""
    try:
        got = unwrap(outcome)
    except CheckFailure as err:
        if _integer_label_error(str(err)):
            fail(f"{what}: {INTEGER_LABELS} (The error was: {err})")
        raise
    if type(got) is not torch.Tensor:
        fail(f"{what} returned a {type_name(got)}, expected a 0-dimensional torch.Tensor (keep it a tensor: "
             "no .item(), so gradients can flow).")
    if got.dim() != 0:
        fail(
            f"{what} returned shape {tuple(got.shape)}, expected a single number (shape ()): "
            "average over the batch with .mean()."
        )
    return got


class LossGrad(TypedDict, total=False):
    """A loss on inputs that require grad (``_probe_loss_grad``): its value, and its gradients when in the graph."""

    value: Any  #: the loss (plain copy)
    requires_grad: bool  #: the loss is a tensor in the autograd graph
    grads: list[torch.Tensor | None]  #: the gradient of each input, after backward (a 0-d loss in the graph only)
    grads_error: str  #: the backward pass failed
    error: str  #: the call failed (no other key then)


def _probe_loss_grad(fn: Any, inputs: list[torch.Tensor], extra: tuple, what: str, **kw: Any) -> LossGrad:
    """Probe side: the loss on inputs that require gradients, whether it is in the graph, and the gradients."""
    leaves = [t.clone().requires_grad_() for t in inputs]
    try:
        loss = call(fn, *leaves, *extra, what=what, **kw)
    except CheckFailure as err:
        return {"error": str(err)}
    in_graph = isinstance(loss, torch.Tensor) and loss.requires_grad
    out: LossGrad = {"value": to_plain(loss), "requires_grad": in_graph}
    if out["requires_grad"] and loss.dim() == 0:
        try:
            call(loss.backward, what=f"backward through {what}", **kw)
            out["grads"] = [t.grad for t in leaves]
        except CheckFailure as err:
            out["grads_error"] = str(err)
    return out


#: what a network learns nothing about when no gradient reaches each loss input
GRAD_ROLE = {
    "d_real": "D never receives a gradient from the real batch and learns nothing about real images",
    "d_fake": "D never receives a gradient from the fake batch and learns nothing about fakes",
    "d_fake (G's loss)": "G never receives a gradient and never learns",
    "p": "nothing upstream of the loss learns",
}


def judge_loss_gradients(g: LossGrad, names: list[str], inputs: list[torch.Tensor], extra: tuple,
                         reference: Callable[..., torch.Tensor], what: str) -> None:
    """Judge side: the gradients of a loss w.r.t. each input equal the reference's (``_compare``'s gradient
    judge); a loss with the right value that detaches an input (``d_real.detach()``, ``.item()``,
    ``.data``) sends no gradient to it, and the message names that input and what then learns nothing."""
    if "grads_error" in g:
        fail(str(g["grads_error"]))
    grads = g.get("grads")
    if type(grads) not in (list, tuple) or len(grads) != len(inputs):
        fail(f"the probe returned no gradients for {what}.")
    keys = [n.split(" ")[0] for n in names]
    run = {"connected": g.get("requires_grad") is True, "grads": dict(zip(keys, grads, strict=True))}
    roles = dict(zip(keys, names, strict=True))

    def detached(name: str) -> str:
        return (f"{what}: no gradient reaches {name}: it is detached inside the loss (.detach(), .item(), .data or "
                f"torch.no_grad() on {name}), so {GRAD_ROLE.get(roles[name], 'nothing learns from it')}. The value "
                "is right, but a loss is only useful through its gradients: use the input as it is.")

    judge_gradients(run, lambda *t: reference(*t, *extra), dict(zip(keys, inputs, strict=True)), keys, what=what,
                    rtol=1e-4, atol=1e-6, detached=detached,
                    label=lambda name: f"{what}: gradient with respect to {name}",
                    hints={k: "the value is right but the gradient is not: is part of the loss computed on a "
                              "detached or modified copy of the input?" for k in keys})


# --------------------------------------------------------------------------- 1. bce

BCE_INSTEAD = "Write the formula with torch.log, then clamp the logs at -100."


def _bce_cases(hidden: bool) -> dict[str, Any]:
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
        soft = _secret_uniform("bce", 0, 0.75, 0.95)
        y_hidden = (torch.rand(n, generator=seeded(_secret("bce", 3))) > 0.5).float()
        cases += [
            (f"soft targets {soft} (label smoothing)", _probabilities(n, _secret("bce", 0)), torch.full((n,), soft)),
            (
                "a (4, 5) batch",
                torch.sigmoid(3 * randn(4, 5, seed=_secret("bce", 1))),
                (torch.rand(4, 5, generator=seeded(_secret("bce", 2))) > 0.5).float(),
            ),
            ("float64 inputs", _probabilities(n, _secret("bce", 4)).double(), y_hidden.double()),
            ("a batch of one", _probabilities(1, _secret("bce", 5)), torch.tensor([1.0])),
        ]
    grad = (_probabilities(8, _secret("bce", 6)), (torch.rand(8, generator=seeded(_secret("bce", 7))) > 0.5).float()
            ) if hidden else None
    return {"cases": cases, "grad": grad}


class BceRuns(TypedDict, total=False):
    """bce(p, y) on every case, and its gradients on the hidden gradient case."""

    values: list[Outcome]  #: one per case
    grad: LossGrad  #: only when the cases have a gradient case (hidden)


def _probe_bce(bce: Any, cases: dict[str, Any]) -> BceRuns:
    """bce(p, y) on every case, with the built-in cross-entropies refused at the dispatcher."""
    kw = {"refuse": [BCE], "instead": BCE_INSTEAD}
    out: BceRuns = {"values": [attempt(bce, p.clone(), y.clone(), what="bce(p, y)", **kw)
                                      for _, p, y in cases["cases"]]}
    if cases["grad"] is not None:
        p, y = cases["grad"]
        out["grad"] = _probe_loss_grad(bce, [p], (y,), "bce(p, y)", **kw)
    return out


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
            (
                -(y * torch.log(p + 1e-8) + (1 - y) * torch.log(1 - p + 1e-8)).mean(),
                "it adds an epsilon inside the log instead of clamping the log: nn.BCELoss clamps log(p) "
                "and log(1 - p) at -100",
            ),
            (
                -(y * torch.log(p + 1e-7) + (1 - y) * torch.log(1 - p + 1e-7)).mean(),
                "it adds an epsilon inside the log instead of clamping the log: nn.BCELoss clamps log(p) "
                "and log(1 - p) at -100",
            ),
            (terms.sum(), "it sums over the batch; nn.BCELoss averages (reduction='mean')"),
            (terms.sum() / p.shape[0], "it divides by the batch size N, not by the number of values: use .mean()"),
            (-terms.mean(), "the sign is flipped: BCE = -(y log p + (1 - y) log(1 - p)), a positive number"),
            (
                -(p * torch.log(y).clamp(min=-100) + (1 - p) * torch.log(1 - y).clamp(min=-100)).mean(),
                "p and y are swapped: the logs are of the prediction p, weighted by the target y",
            ),
            (-(y * cl_q + (1 - y) * cl_p).mean(), "log(p) and log(1 - p) are swapped: y = 1 goes with log(p)"),
            (-(y * cl_p).mean(), "the (1 - y) log(1 - p) term is missing: targets 0 cost nothing"),
            (-((1 - y) * cl_q).mean(), "the y log p term is missing: targets 1 cost nothing"),
            (
                terms.mean() / torch.log(torch.tensor(10.0, dtype=p.dtype)),
                "it uses log10; BCE uses the natural log, torch.log",
            ),
            (
                terms.mean() / torch.log(torch.tensor(2.0, dtype=p.dtype)),
                "it uses log2; BCE uses the natural log, torch.log",
            ),
            (
                F.binary_cross_entropy(torch.sigmoid(p), y),
                "it applies a sigmoid to p: p is already a probability (D ends in a Sigmoid)",
            ),
        ]
    return _match(got, candidates) or "check the formula: mean of -(y log p + (1 - y) log(1 - p)), logs clamped at -100"


def _judge_bce(cases: dict[str, Any], data: BceRuns) -> str:
    """bce(p, y) == nn.BCELoss()(p, y): the mean of -(y log p + (1-y) log(1-p)), logs clamped at -100."""
    for (desc, p, y), outcome in zip(cases["cases"], data["values"], strict=True):
        expected = F.binary_cross_entropy(p, y)
        got = _loss_value(outcome, "bce(p, y)")
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
    if cases["grad"] is not None:  # gradients flow, and equal BCELoss's, where p is strictly inside (0, 1)
        p0, y0 = cases["grad"]
        g = data["grad"]
        if "error" in g:
            fail(str(g["error"]))
        expect(
            g.get("requires_grad") is True,
            "bce(p, y) is cut off from the graph (no gradient flows to p): "
            "do not use .item(), .detach() or torch.no_grad() inside it.",
        )
        judge_loss_gradients(g, ["p"], [p0], (y0,), F.binary_cross_entropy, "bce(p, y)")
    return "bce(p, y) equals nn.BCELoss, including p = 0 and p = 1 where it clamps the logs at -100."


check_bce = exercise("bce", _probe_bce, _judge_bce, _bce_cases)


# --------------------------------------------------------------------------- 2. real_targets


def _targets_cases(hidden: bool) -> list[tuple[torch.Tensor, float]]:
    cases = [(randn(8, seed=20).sigmoid(), 0.0), (randn(8, seed=21).sigmoid(), 0.1)]
    if hidden:
        s1, s2, s3 = (_secret_uniform("real_targets", i, 0.05, 0.4) for i in range(3))
        cases += [(randn(3, 4, seed=_secret("real_targets", 0)).sigmoid(), s1),
                  (randn(5, seed=_secret("real_targets", 1)).sigmoid().double(), s2),
                  (randn(1, seed=_secret("real_targets", 2)).sigmoid(), s3)]
    return cases


class TargetsRun(TypedDict):
    """One call of the student's real_targets: its outcome and ``like`` as the call left it."""

    out: Outcome
    like_after: torch.Tensor


def _probe_real_targets(real_targets: Any, cases: list) -> list[TargetsRun]:
    """real_targets(like, s) on every case, and ``like`` as the call left it."""
    out: list[TargetsRun] = []
    for like, s in cases:
        arg = like.clone()
        out.append({"out": attempt(real_targets, arg, s, what=f"real_targets(like, label_smoothing={s})"),
                    "like_after": arg})
    return out


def _judge_real_targets(cases: list, data: list[TargetsRun]) -> str:
    """real_targets(like, s): a float tensor shaped like ``like``, full of 1 - s (one-sided smoothing)."""
    for (like, s), result in zip(cases, data, strict=True):
        what = f"real_targets(like, {s})"
        got = unwrap(result["out"])
        if type(got) is not torch.Tensor:
            fail(f"{what} returned a {type_name(got)}, expected a torch.Tensor shaped like `like`.")
        expect(torch.equal(result["like_after"], like), f"{what} changed `like` in place: build a new tensor.")
        if tuple(got.shape) != tuple(like.shape):
            fail(f"{what} has shape {tuple(got.shape)}, expected {tuple(like.shape)}: one target per "
                 "discriminator output (torch.full_like(like, ...)).")
        if not got.is_floating_point():
            fail(f"{what} returned {got.dtype} targets: {INTEGER_LABELS}")
        expected = torch.full_like(like, 1.0 - s)
        if got.dtype != expected.dtype:
            fail(f"{what} returned {got.dtype}, expected {expected.dtype} like `like`: "
                 "torch.full_like(like, ...) keeps the dtype.")
        g = got.double()
        if torch.allclose(g, torch.full_like(g, s)):
            fail(f"{what} is full of {s}: the targets of real images are 1 - label_smoothing = {1 - s}, "
                 "not label_smoothing.")
        if s > 0 and torch.allclose(g, torch.ones_like(g)):
            fail(f"{what} is full of 1: the smoothing is ignored; real targets are 1 - {s}.")
        if s > 0 and torch.allclose(g, torch.full_like(g, 1 + s)):
            fail(f"{what} is full of {1 + s}: subtract the smoothing (1 - s); a BCE target must lie in [0, 1].")
        if torch.allclose(g, like.double() * (1 - s)) and not torch.allclose(like.double(), torch.ones_like(g)):
            fail(f"{what} is `like` times (1 - s): the targets do not depend on D's outputs, only their shape; "
                 "use torch.full_like(like, 1 - s).")
        expect_close(got, expected, what, rtol=0, atol=1e-7, hint=f"every target should be 1 - {s}.")
    return "real_targets: 1 - smoothing for every real image (one-sided: fake targets stay 0)."


check_real_targets = exercise("real_targets", _probe_real_targets, _judge_real_targets, _targets_cases)


# --------------------------------------------------------------------------- 3. discriminator_loss


def _bce_any(p: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """BCE written out, for targets outside [0, 1] too (to recognise a wrong target)."""
    return -(t * torch.log(p).clamp(min=-100) + (1 - t) * torch.log(1 - p).clamp(min=-100)).mean()


def _d_loss_mistake(got: torch.Tensor, d_real: torch.Tensor, d_fake: torch.Tensor, s: float) -> str:
    bce = _bce_any
    one, zero = torch.ones_like(d_real), torch.zeros_like(d_fake)
    swapped = "labels swapped: D's target is 1 (or 1 - label_smoothing) for real images and 0 for fakes"
    logits = F.binary_cross_entropy_with_logits
    with torch.no_grad():
        candidates = [
            (bce(d_real, zero) + bce(d_fake, one), swapped),
            (bce(d_real, zero) + bce(d_fake, one - s), swapped),
            (bce(d_real, zero + s) + bce(d_fake, one), swapped),
            (bce(d_real, zero + s) + bce(d_fake, one - s), swapped),
            (logits(d_real, one - s) + logits(d_fake, zero), SIGMOID_TWICE),
            (logits(d_real, one) + logits(d_fake, zero), SIGMOID_TWICE),
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
            (bce(d_real, one - s) - bce(d_fake, zero), "it subtracts the fake term: both terms are losses D "
             "minimises, add them"),
            (bce(d_real, one - s), "the fake term is missing: D must also push D(G(z)) towards 0"),
            (bce(d_fake, zero), "the real term is missing: D must also push D(x) towards 1"),
            (
                bce(d_real, one - s) + bce(d_fake, one),
                "the fake images get target 1: D's target for fakes is 0 (target 1 is G's loss)",
            ),
        ]
    return _match(got, candidates) or (
        "expected BCE(D(x), 1 - label_smoothing) + BCE(D(G(z)), 0), each a mean over the batch"
    )


def _d_loss_cases(hidden: bool) -> list[tuple[torch.Tensor, torch.Tensor, float]]:
    cases = [(16, 0.0, 30, 130), (16, 0.1, 31, 131)]
    if hidden:
        cases += [(5, _secret_uniform("discriminator_loss", 0, 0.05, 0.4), *(_secret("discriminator_loss", k)
                                                                              for k in (0, 1))),
                  (1, 0.0, *(_secret("discriminator_loss", k) for k in (2, 3))),
                  (64, _secret_uniform("discriminator_loss", 1, 0.05, 0.4), *(_secret("discriminator_loss", k)
                                                                               for k in (4, 5)))]
    return [(_probabilities(n, seed), _probabilities(n, seed_fake), s) for n, s, seed, seed_fake in cases]


class LossRuns(TypedDict):
    """One run of a loss exercise (discriminator_loss, generator_loss): every case's value, and the gradients."""

    values: list[Outcome]  #: one per case
    grad: LossGrad


def _probe_discriminator_loss(discriminator_loss: Any, cases: list) -> CascadeRuns:
    """discriminator_loss on every case, and once with gradients; with and without the reference
    bce / real_targets in place of the student's."""

    def run() -> LossRuns:
        values = [attempt(discriminator_loss, r.clone(), f.clone(), s,
                          what=f"discriminator_loss(d_real, d_fake, label_smoothing={s})") for r, f, s in cases]
        r, f, _ = cases[0]
        grad = _probe_loss_grad(discriminator_loss, [r, f], (0.0,), "discriminator_loss(d_real, d_fake)")
        return {"values": values, "grad": grad}

    return cascade_runs(_with_callees(discriminator_loss, EARLIER[:2]), EARLIER[:2], run)


def _judge_discriminator_loss(cases: list, data: CascadeRuns) -> str:
    """discriminator_loss(d_real, d_fake, s) == BCE(d_real, 1 - s) + BCE(d_fake, 0)."""

    def grade(run: LossRuns) -> str:
        for (d_real, d_fake, s), outcome in zip(cases, run["values"], strict=True):
            what = f"discriminator_loss(d_real, d_fake, label_smoothing={s})"
            got = _loss_value(outcome, what)
            expected = _ref_discriminator_loss(d_real, d_fake, s)
            if not torch.allclose(got.double(), expected.double(), rtol=LOSS_RTOL, atol=LOSS_ATOL):
                fail(f"{what} on {len(d_real)} outputs: got {got.item():.6g}, expected {expected.item():.6g}: "
                     f"{_d_loss_mistake(got, d_real, d_fake, s)}.")
        g = run["grad"]
        if "error" in g:
            fail(str(g["error"]))
        expect(g.get("requires_grad") is True,
               "discriminator_loss is cut off from the graph: no .item()/.detach()/torch.no_grad() inside.")
        r, f, _ = cases[0]
        judge_loss_gradients(g, ["d_real", "d_fake"], [r, f], (0.0,), _ref_discriminator_loss,
                             "discriminator_loss(d_real, d_fake)")
        return "discriminator_loss: BCE(D(x), 1 - s) + BCE(D(G(z)), 0), equal to dcgan_ref's (value and gradients)."

    return judge_cascade(data, grade, "discriminator_loss", EARLIER)


check_discriminator_loss = exercise(
    "discriminator_loss", _probe_discriminator_loss, _judge_discriminator_loss, _d_loss_cases
)


# --------------------------------------------------------------------------- 4. generator_loss


def _g_loss_cases(hidden: bool) -> dict[str, Any]:
    cases = [(16, 40)] + ([(n, _secret("generator_loss", i)) for i, n in enumerate((3, 64, 1))] if hidden else [])
    return {"values": [_probabilities(n, seed) for n, seed in cases],
            "rejected": torch.tensor([1e-4, 1e-3, 1e-2])}  # D rejects the fakes: G still needs a gradient


def _probe_generator_loss(generator_loss: Any, cases: dict[str, Any]) -> CascadeRuns:
    """generator_loss on every case, and its gradient where D rejects the fakes; with and without the
    reference bce in place of the student's."""

    def run() -> LossRuns:
        return {"values": [attempt(generator_loss, d.clone(), what="generator_loss(d_fake)") for d in cases["values"]],
                "grad": _probe_loss_grad(generator_loss, [cases["rejected"]], (), "generator_loss(d_fake)")}

    return cascade_runs(_with_callees(generator_loss, EARLIER[:3]), EARLIER[:3], run)


def _g_loss_mistake(got: torch.Tensor, d_fake: torch.Tensor) -> str:
    bce = F.binary_cross_entropy
    with torch.no_grad():
        candidates = [
            (
                -bce(d_fake, torch.zeros_like(d_fake)),
                "this is the SATURATING loss, minimising log(1 - D(G(z))): when D confidently rejects the fakes "
                "(D(G(z)) near 0, early in training) its gradient vanishes. Use the non-saturating loss: "
                "BCE(D(G(z)), 1) = -log D(G(z))",
            ),
            (
                torch.log1p(-d_fake).mean(),
                "this is the SATURATING loss log(1 - D(G(z))): its gradient vanishes when D rejects the fakes. "
                "Use BCE(D(G(z)), 1) = -log D(G(z))",
            ),
            (
                bce(d_fake, torch.zeros_like(d_fake)),
                "it uses target 0, D's target for fakes: G would learn to look fake. G's target is 1",
            ),
            (-bce(d_fake, torch.ones_like(d_fake)), "the sign is flipped: minimise -log D(G(z))"),
            (bce(d_fake, torch.ones_like(d_fake), reduction="sum"), "it sums; BCE averages"),
            (F.binary_cross_entropy_with_logits(d_fake, torch.ones_like(d_fake)), SIGMOID_TWICE),
            (torch.log(d_fake).mean(), "the sign is flipped: G minimises -log D(G(z)), a positive number"),
        ]
    return _match(got, candidates) or "expected BCE(D(G(z)), 1) = mean of -log D(G(z)), the non-saturating loss"


def _judge_generator_loss(cases: dict[str, Any], data: CascadeRuns) -> str:
    """generator_loss(d_fake) == BCE(d_fake, 1) = mean(-log D(G(z))): the non-saturating loss."""

    def grade(run: LossRuns) -> str:
        for d_fake, outcome in zip(cases["values"], run["values"], strict=True):
            got = _loss_value(outcome, "generator_loss(d_fake)")
            expected = _ref_generator_loss(d_fake)
            if not torch.allclose(got.double(), expected.double(), rtol=LOSS_RTOL, atol=LOSS_ATOL):
                fail(f"generator_loss(d_fake) on {len(d_fake)} outputs: got {got.item():.6g}, expected "
                     f"{expected.item():.6g}: {_g_loss_mistake(got, d_fake)}.")
        g = run["grad"]
        if "error" in g:
            fail(str(g["error"]))
        expect(g.get("requires_grad") is True, "generator_loss is cut off from the graph: no .item()/.detach() inside.")
        if "grads_error" in g:
            fail(str(g["grads_error"]))
        grads = g.get("grads")
        grad = grads[0] if type(grads) in (list, tuple) and grads else None
        expect(
            type(grad) is torch.Tensor and bool((grad.abs() > 1.0).all()),
            "where D(G(z)) is near 0 the gradient of generator_loss should be large (it is -1/(N D(G(z)))); "
            f"yours is {grad.tolist() if type(grad) is torch.Tensor else None}: is it the saturating log(1 - D(G(z)))?",
        )
        judge_loss_gradients(g, ["d_fake (G's loss)"], [cases["rejected"]], (), _ref_generator_loss,
                             "generator_loss(d_fake)")
        return ("generator_loss: the non-saturating -log D(G(z)), equal to dcgan_ref's; "
                "strong gradients even when D rejects the fakes.")

    return judge_cascade(data, grade, "generator_loss", EARLIER)


check_generator_loss = exercise("generator_loss", _probe_generator_loss, _judge_generator_loss, _g_loss_cases)


# --------------------------------------------------------------------------- 5. add_instance_noise


def _noise_cases(hidden: bool) -> list[dict[str, Any]]:
    cases = [((4, 3, 8, 8), 0.1, 50, 1050), ((4, 3, 8, 8), 0.0, 51, 1051)]
    if hidden:  # the edge cases (sigma 0, negative) are public; the values are the secret's
        sigmas = (_secret_uniform("add_instance_noise", 0, 0.3, 0.7),
                  _secret_uniform("add_instance_noise", 1, 2.5, 3.5), 0.0, -0.1)
        shapes = ((2, 1, 16, 16), (64, 3, 4, 4), (3, 3, 2, 2), (2, 3, 4, 4))
        cases += [(shape, sigma, _secret("add_instance_noise", 2 * i), _secret("add_instance_noise", 2 * i + 1))
                  for i, (shape, sigma) in enumerate(zip(shapes, sigmas, strict=True))]
    return [{"x": torch.tanh(randn(*shape, seed=seed)), "sigma": sigma, "seed": noise_seed}
            for shape, sigma, seed, noise_seed in cases]


class NoiseRun(TypedDict):
    """One call of the student's add_instance_noise: its outcome and x as the call left it."""

    out: Outcome
    x_after: torch.Tensor


def _probe_add_instance_noise(add_instance_noise: Any, cases: list) -> list[NoiseRun]:
    """add_instance_noise(x, sigma, generator) with a generator seeded as the case says; x as left after."""
    out: list[NoiseRun] = []
    for c in cases:
        x = c["x"].clone()
        what = f"add_instance_noise(x, sigma={c['sigma']}, generator)"
        out.append({"out": attempt(add_instance_noise, x, c["sigma"], seeded(c["seed"]), what=what), "x_after": x})
    return out


def _judge_add_instance_noise(cases: list, data: list[NoiseRun]) -> str:
    """add_instance_noise(x, sigma, generator) == x + sigma * N(0, 1) drawn from ``generator``; x if sigma <= 0."""
    for c, result in zip(cases, data, strict=True):
        x, sigma = c["x"], c["sigma"]
        what = f"add_instance_noise(x, sigma={sigma}, generator)"
        got = unwrap(result["out"])
        expect(torch.equal(result["x_after"], x), f"{what} changed x in place: return x + noise, leaving the "
               "batch as it was.")
        if type(got) is not torch.Tensor:
            fail(f"{what} returned a {type_name(got)}, expected a torch.Tensor shaped like x.")
        if tuple(got.shape) != tuple(x.shape):
            fail(f"{what} has shape {tuple(got.shape)}, expected {tuple(x.shape)}: the noise has the shape of x.")
        if sigma <= 0:
            expect_close(got, x, what, rtol=0, atol=0, hint="sigma <= 0 means no noise: return x unchanged.")
            continue
        expected = x + sigma * torch.randn(x.shape, generator=seeded(c["seed"]), dtype=x.dtype)
        if close(got, expected, rtol=1e-6, atol=1e-6):  # the reference's draws: right, whatever the sample's std
            continue
        noise = (got - x).double()
        std = noise.std().item()
        if noise.abs().max().item() == 0:
            fail(f"{what} returned x unchanged: add sigma * torch.randn(...) to it.")
        if abs(std - sigma**2) < 0.2 * sigma**2 and abs(sigma**2 - sigma) > 0.2 * sigma:
            fail(f"{what}: the noise has std {std:.3g}, about sigma^2 = {sigma**2:.3g}: sigma is the standard "
                 "deviation, multiply N(0, 1) noise by sigma.")
        if abs(std - sigma**0.5) < 0.2 * sigma**0.5 and abs(sigma**0.5 - sigma) > 0.2 * sigma:
            fail(f"{what}: the noise has std {std:.3g}, about sqrt(sigma) = {sigma**0.5:.3g}: sigma is already the "
                 "standard deviation, multiply N(0, 1) noise by sigma.")
        if abs(std - 1.0) < 0.2 and abs(sigma - 1.0) > 0.2:
            fail(f"{what}: the noise has std {std:.3g}, expected sigma = {sigma}: scale it by sigma.")
        if noise.min().item() >= 0 and noise.max().item() <= sigma + 1e-6:
            fail(f"{what}: the noise is uniform in [0, sigma]: instance noise is Gaussian, torch.randn.")
        ref_std = (expected - x).double().std().item()
        expect_close(
            got, expected, what, rtol=1e-6, atol=1e-6,  # same draws, same float32 arithmetic
            hint=(f"your noise has std {std:.3g} (dcgan_ref's {ref_std:.3g}). Draw it from the generator you are "
                  "given, in one call: torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)."),
        )
    return "add_instance_noise: x + sigma * N(0, 1), the same draws as dcgan_ref's from the same generator."


check_add_instance_noise = exercise(
    "add_instance_noise", _probe_add_instance_noise, _judge_add_instance_noise, _noise_cases
)


# --------------------------------------------------------------------------- tiny networks (both sides)

NZ = 8


def tiny_models(seed: int) -> tuple[nn.Module, nn.Module]:
    """A small DCGAN pair of plain torch layers: G (N, 8, 1, 1) -> (N, 1, 8, 8), D -> (N,) probabilities.

    Built the same way, from the same seed, by the probe (for the student's code) and the judge (for
    the reference replay). BatchNorm on both sides, so D seeing real and fake in one batch shows.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        G = nn.Sequential(
            nn.ConvTranspose2d(NZ, 16, 4, 1, 0, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.ConvTranspose2d(16, 1, 4, 2, 1, bias=False), nn.Tanh(),
        )
        D = nn.Sequential(
            nn.Conv2d(1, 8, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
            nn.Conv2d(8, 16, 4, 2, 1, bias=False), nn.BatchNorm2d(16), nn.LeakyReLU(0.2),
            nn.Conv2d(16, 1, 2, 1, 0, bias=False), nn.Sigmoid(), nn.Flatten(0),
        )
        for m in [*G.modules(), *D.modules()]:
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                nn.init.normal_(m.weight, 0.0, 0.02)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02)
                nn.init.zeros_(m.bias)
    return G, D


# --------------------------------------------------------------------------- 6. make_optimizers

OPT_KEYS = ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize")


#: optimizer steps the probe takes with each optimizer, on seeded gradients: judged by their effect
OPT_STEPS = 3


def _opt_cases(hidden: bool) -> list[dict[str, Any]]:
    """make_optimizers' calls: the defaults, then (hidden) rates and betas drawn from the secret; each with
    the seed of the gradients its optimizers are stepped on."""
    calls: list[dict[str, Any]] = [{"args": (), "kwargs": {}, "seed": 61}]
    if hidden:
        g = torch.Generator().manual_seed(hidden_seed(7, "make_optimizers", 0))

        def draw(low: float, high: float, digits: int) -> float:
            return round(float(low + (high - low) * torch.rand((), generator=g, dtype=torch.float64)), digits)

        lr1, lr2, lr3 = (float(f"{10 ** draw(-4.5, -2.5, 3):.2e}") for _ in range(3))
        b1, b2 = draw(0.6, 0.95, 2), draw(0.98, 0.995, 3)
        calls += [{"args": (), "kwargs": {"lr": lr1, "betas": (b1, b2)}},
                  {"args": (lr2,), "kwargs": {}},
                  {"args": (lr3, (draw(0.3, 0.6, 2), draw(0.9, 0.97, 2))), "kwargs": {}}]
        for i, c in enumerate(calls[1:], start=1):
            c["seed"] = hidden_seed(7, "make_optimizers", i)
    return calls


def _seeded_steps(opt: Any, step: Callable[[], Any], G: nn.Module, D: nn.Module, gen: torch.Generator) -> list:
    """``OPT_STEPS`` steps: before each, every parameter of G and D gets a seeded gradient; the parameters
    (G's, then D's) after each step."""
    params = [*G.parameters(), *D.parameters()]
    snaps = []
    for _ in range(OPT_STEPS):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        step()
        snaps.append([p.detach().clone() for p in params])
    return snaps


class OptimizerDescription(TypedDict, total=False):
    """An optimizer as plain data (``describe_optimizer``)."""

    type: str  #: qualified class name
    mro: list[str]  #: qualified class names
    groups: list[dict[str, Any]]  #: per param group: its ``OPT_KEYS`` settings and "params" ("G.<i>", "D.<i>", "other")


class OptimizersRun(TypedDict, total=False):
    """One call of make_optimizers: its pair described and stepped, or the error, or what came instead of a pair."""

    error: str  #: the call failed (no other key then)
    not_pair: str  #: what came back instead of a pair (no other key then)
    pair: list[OptimizerDescription]  #: opt_G's, opt_D's
    n: list[int]  #: the number of parameter tensors of G, of D
    effects: list[list[list[torch.Tensor]] | dict[str, str]]  #: per optimizer: parameters after each step, or its error


def describe_optimizer(opt: Any, G: nn.Module, D: nn.Module) -> OptimizerDescription:
    """Probe side: an optimizer as plain data: its classes, and per group the settings and which
    parameters it holds ("G.<i>", "D.<i>", or "other")."""
    ids = {id(p): f"G.{i}" for i, p in enumerate(G.parameters())}
    ids.update({id(p): f"D.{i}" for i, p in enumerate(D.parameters())})
    out: OptimizerDescription = {"type": qualname(type(opt)), "mro": [qualname(k) for k in type(opt).__mro__]}
    groups = getattr(opt, "param_groups", None)
    if isinstance(opt, torch.optim.Optimizer) and isinstance(groups, list):
        out["groups"] = [
            {**{k: to_plain(g[k]) for k in OPT_KEYS if k in g},
             "params": [ids.get(id(p), "other") for p in g.get("params", [])]}
            for g in groups if isinstance(g, dict)
        ]
    return out


def _probe_make_optimizers(make_optimizers: Any, cases: list) -> list[OptimizersRun]:
    """make_optimizers(G, D, ...) on tiny networks; what it returns, described as plain data."""
    out: list[OptimizersRun] = []
    for case in cases:
        args, kwargs = tuple(case["args"]), dict(case["kwargs"])
        G, D = tiny_models(60)
        try:
            result = call(make_optimizers, G, D, *args, what=_opt_call(args, kwargs), **kwargs)
        except CheckFailure as err:
            out.append({"error": str(err)})
            continue
        if isinstance(result, tuple | list) and len(result) == 2:
            reply: OptimizersRun = {"pair": [describe_optimizer(o, G, D) for o in result],
                                     "n": [len(list(G.parameters())), len(list(D.parameters()))]}
            # judged by what the steps do, not by the class: opt_G's steps, then opt_D's, on seeded gradients
            gen = seeded(case["seed"])
            effects = []
            for name, opt in zip(("opt_G", "opt_D"), result, strict=True):
                try:
                    effects.append(_seeded_steps(opt, lambda o=opt, n=name: call(getattr(o, "step", None),
                                                                                 what=f"{n}.step()"), G, D, gen))
                except CheckFailure as err:
                    effects.append({"error": str(err)})
                    break
            reply["effects"] = effects
            out.append(reply)
        else:
            out.append({"not_pair": type_name(to_plain(result)) if not isinstance(result, tuple | list)
                        else f"{type(result).__name__} of {len(result)}"})
    return out


def _opt_call(args: tuple, kwargs: dict[str, Any]) -> str:
    return ("make_optimizers(G, D" + "".join(f", {a}" for a in args)
            + "".join(f", {k}={v}" for k, v in kwargs.items()) + ")")


def _judge_make_optimizers(cases: list, data: list[OptimizersRun]) -> str:
    """(opt_G, opt_D): torch.optim.Adam over each network's own parameters, lr 2e-4, betas (0.5, 0.999)."""
    for case, result in zip(cases, data, strict=True):
        args, kwargs = tuple(case["args"]), dict(case["kwargs"])
        what = _opt_call(args, kwargs)
        if "error" in result:
            fail(str(result["error"]))
        if "not_pair" in result:
            fail(f"{what} should return a pair (opt_G, opt_D), got {result['not_pair']}.")
        lr = args[0] if len(args) > 0 else kwargs.get("lr", 2e-4)
        betas = tuple(args[1]) if len(args) > 1 else tuple(kwargs.get("betas", (0.5, 0.999)))
        defaults = torch.optim.Adam([nn.Parameter(torch.zeros(1))]).defaults
        n_g, n_d = result["n"]
        for name, desc, own, other, n_own in [("opt_G", result["pair"][0], "G", "D", n_g),
                                              ("opt_D", result["pair"][1], "D", "G", n_d)]:
            adam = qualname(torch.optim.Adam)
            if qualname(torch.optim.Optimizer) not in desc["mro"]:
                fail(f"{what}: {name} should be a torch.optim optimizer, got {desc['type'].rsplit('.', 1)[-1]}.")
            if adam not in desc["mro"] or qualname(torch.optim.AdamW) in desc["mro"]:
                fail(f"{what}: {name} is {desc['type'].rsplit('.', 1)[-1]}; DCGAN uses torch.optim.Adam for both "
                     "networks.")
            held = [p for g in desc.get("groups", []) for p in g["params"]]
            if any(p.startswith(other + ".") for p in held):
                mine = {p for p in held if p.startswith(own + ".")}
                fail(f"{what}: {name} holds {other}'s parameters: " + (
                    "one optimizer over both networks would let each step move both; give each network its own Adam."
                    if len(mine) == n_own
                    else "opt_G and opt_D are swapped (make_optimizers returns (opt_G, opt_D))."))
            if sorted(held) != sorted(f"{own}.{i}" for i in range(n_own)):
                fail(f"{what}: {name} must hold every parameter of {own} ({own}.parameters()), once each, and only "
                     "those.")
            for group in desc["groups"]:
                got_betas = tuple(group.get("betas", ()))
                if got_betas != betas:
                    hint = ("betas left at Adam's default (0.9, 0.999): DCGAN uses beta1 = 0.5, a momentum that "
                            "forgets faster, because each network chases a moving target"
                            if got_betas == (0.9, 0.999) else "pass the betas through")
                    fail(f"{what}: {name} has betas {got_betas}, expected {betas}: {hint}.")
                if type(group.get("lr")) is not float or group["lr"] != lr:
                    hint = ("left at Adam's default 1e-3: DCGAN uses 2e-4" if group.get("lr") == 1e-3
                            else "pass lr through")
                    fail(f"{what}: {name} has lr {group.get('lr')}, expected {lr}: {hint}.")
                for key in ("eps", "weight_decay", "amsgrad", "maximize"):
                    if group.get(key) != defaults.get(key):
                        fail(f"{what}: {name} has {key}={group.get(key)}, expected Adam's default {defaults.get(key)}.")
        _judge_optimizer_effects(what, case["seed"], result.get("effects"), lr, betas)
    return "make_optimizers: one Adam per network, lr 2e-4, betas (0.5, 0.999), like dcgan_ref's."


def _judge_optimizer_effects(what: str, seed: int, effects: Any, lr: float, betas: tuple) -> None:
    """The parameters after the probe's steps equal what torch.optim.Adam(lr, betas) does to them.

    Same elementwise float32 arithmetic on the same numbers: an update of size ~lr agrees to rounding
    (~1e-9 on these weights); the tolerance, 1e-3 of lr, is far below a wrong or missing update (~lr)."""
    if type(effects) is not list or len(effects) != 2:
        if type(effects) is list and effects and type(effects[-1]) is dict and "error" in effects[-1]:
            fail(f"{what}: {effects[-1]['error']}")
        fail(f"{what}: the probe could not step the optimizers.")
    G, D = tiny_models(60)
    names = [f"G.{n}" for n, _ in G.named_parameters()] + [f"D.{n}" for n, _ in D.named_parameters()]
    gen = seeded(seed)
    before = [p.detach().clone() for p in [*G.parameters(), *D.parameters()]]
    for (label, net), snaps in zip((("opt_G", G), ("opt_D", D)), effects, strict=True):
        if type(snaps) is dict and "error" in snaps:
            fail(f"{what}: {snaps['error']}")
        adam = torch.optim.Adam(net.parameters(), lr=lr, betas=betas)
        want = _seeded_steps(adam, adam.step, G, D, gen)
        if type(snaps) is not list or len(snaps) != len(want):
            fail(f"{what}: the probe recorded no steps of {label}.")
        for k, (got, ref) in enumerate(zip(snaps, want, strict=True)):
            if type(got) is not list or len(got) != len(ref):
                fail(f"{what}: the probe recorded no parameters after {label}.step().")
            for i, (name, a, b) in enumerate(zip(names, got, ref, strict=True)):
                if type(a) is not torch.Tensor or a.shape != b.shape or not bool(torch.isfinite(a).all()):
                    fail(f"{what}: after {label}.step(), {name} is not a finite tensor of shape {tuple(b.shape)}.")
                diff = (a.double() - b.double()).abs()
                if bool((diff > 1e-3 * lr + 1e-6 * b.double().abs()).any()):
                    hint = ("its step() leaves the parameters where they were" if torch.equal(a, before[i]) else
                            f"{name} differs from torch.optim.Adam(lr={lr}, betas={betas})'s step by up to "
                            f"{diff.max().item():.3g}")
                    fail(f"{what}: {label}.step() does not update the parameters as torch.optim.Adam does: {hint} "
                         f"(step {k + 1} of {OPT_STEPS}, on seeded gradients). Return torch.optim.Adam itself: an "
                         "optimizer is judged by what its steps do.")
            before = got


check_make_optimizers = exercise("make_optimizers", _probe_make_optimizers, _judge_make_optimizers, _opt_cases)


# --------------------------------------------------------------------------- 7. train_step

# After one Adam step every parameter has moved by about lr = 2e-4 (Adam's first update is
# lr * g / (|g| + eps)). The student's losses and the reference's agree to float32 rounding, which
# changes an update by far less than 1e-6; a mistake changes whole updates, i.e. ~2e-4.
PARAM_RTOL, PARAM_ATOL = 1e-4, 1e-6
N_STEPS, BATCH = 2, 8

Step = Callable[..., Any]


def _train_cases(hidden: bool) -> list[dict[str, Any]]:
    seeds = [(70, [(700 + k, 705 + k) for k in range(N_STEPS)])]
    if hidden:
        seeds.append((_secret("train_step", 0), [(_secret("train_step", 1 + 2 * k), _secret("train_step", 2 + 2 * k))
                                                 for k in range(N_STEPS)]))
    return [{"seed": seed, "batches": [(torch.tanh(randn(BATCH, 1, 8, 8, seed=a)), randn(BATCH, NZ, 1, 1, seed=b))
                                       for a, b in batch_seeds]}
            for seed, batch_seeds in seeds]


def _snapshot(G: nn.Module, D: nn.Module) -> list[torch.Tensor]:
    """D's parameters, then G's (D is updated first, so a difference shows in D first)."""
    return [p.detach().clone() for p in [*D.parameters(), *G.parameters()]]


def _param_names(G: nn.Module, D: nn.Module) -> list[str]:
    return [f"D.{n}" for n, _ in D.named_parameters()] + [f"G.{n}" for n, _ in G.named_parameters()]


class TrainStepRecord(TypedDict):
    """One watched call of the student's train_step."""

    logs: Outcome  #: what train_step returned (its logs), or the error
    events: list[str]  #: which optimizer stepped, in order ("D", "G")
    leak: str | None  #: which of G's parameters already had new gradients when opt_D stepped
    params: list[torch.Tensor]  #: D's parameters, then G's, after the step


class TrainRun(TypedDict):
    """One run of train_step from the tiny start: every step up to the first error."""

    steps: list[TrainStepRecord]


def _run_student_steps(train_step: Any, case: dict[str, Any]) -> TrainRun:
    """Probe side: the student's step, N_STEPS times from the tiny start, watched: which optimizer stepped
    when, whether G had gradients when D stepped, the parameters and the logs after each step."""
    G, D = tiny_models(case["seed"])
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    g_params = list(G.parameters())
    events: list[str] = []
    leaks: list[str] = []
    grads_before: list[torch.Tensor | None] = []

    def on_d_step(opt: Any, args: Any, kwargs: Any) -> None:
        events.append("D")
        if "G" not in events:  # the D step of this train_step: G's gradients must be as they were
            touched = [p for p, before in zip(g_params, grads_before, strict=True)
                       if p.grad is not None and bool(p.grad.abs().max() > 0)
                       and (before is None or not torch.equal(p.grad, before))]
            if touched:
                leaks.append(f"{len(touched)} of G's {len(g_params)} parameter tensors")

    def on_g_step(opt: Any, args: Any, kwargs: Any) -> None:
        events.append("G")

    hooks = [opt_D.register_step_pre_hook(on_d_step), opt_G.register_step_pre_hook(on_g_step)]
    steps: list[TrainStepRecord] = []
    try:
        for real, z in case["batches"]:
            events.clear()
            leaks.clear()
            grads_before[:] = [None if p.grad is None else p.grad.clone() for p in g_params]
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(case["seed"])
                outcome = attempt(train_step, G, D, opt_G, opt_D, real.clone(), z.clone(),
                                  what="train_step(G, D, opt_G, opt_D, real, z)")
            steps.append({"logs": outcome, "events": list(events), "leak": leaks[0] if leaks else None,
                          "params": _snapshot(G, D)})
            if "error" in outcome:
                break
    finally:
        for h in hooks:
            h.remove()
    return {"steps": steps}


def _probe_train_step(train_step: Any, cases: list) -> list[CascadeRuns]:
    """Per seed: the watched steps, with and without the reference losses in place of the student's."""
    return [cascade_runs(_with_callees(train_step, EARLIER), EARLIER,
                         lambda c=c: _run_student_steps(train_step, c)) for c in cases]


def variant_step(bug: str | None) -> Step:
    """The canonical step (pytorch/examples' order, dcgan_ref's arithmetic) with one classic mistake built
    in; ``variant_step(None)`` is the reference the judge replays."""
    bce = F.binary_cross_entropy

    def step(G: nn.Module, D: nn.Module, opt_G: Any, opt_D: Any, real: torch.Tensor, z: torch.Tensor) -> dict:
        if bug == "g_first":
            opt_G.zero_grad()
            out = D(G(z))
            bce(out, torch.ones_like(out)).backward()
            opt_G.step()
        fake = G(z)
        if bug not in ("no_zero_grad", "no_zero_grad_D"):
            opt_D.zero_grad()
        if bug == "no_detach_pollution":
            opt_G.zero_grad()
        d_in = fake if bug == "no_detach_pollution" else fake.detach()
        if bug == "concat":
            out = D(torch.cat([real, d_in]))
            out_r, out_f = out[: len(real)], out[len(real):]
        else:
            out_r, out_f = D(real), D(d_in)
        loss_fn = F.binary_cross_entropy_with_logits if bug == "sigmoid_twice" else bce
        if bug == "swapped":
            loss_D = bce(out_r, torch.zeros_like(out_r)) + bce(out_f, torch.ones_like(out_f))
        else:
            loss_D = loss_fn(out_r, torch.ones_like(out_r)) + loss_fn(out_f, torch.zeros_like(out_f))
        loss_D.backward(retain_graph=bug == "no_detach_pollution")
        opt_D.step()
        if bug == "g_first":
            return {}
        if bug not in ("no_zero_grad", "no_zero_grad_G", "no_detach_pollution"):
            opt_G.zero_grad()
        out = D(fake.detach() if bug == "g_detached" else fake)
        if bug == "saturating":
            loss_G = -bce(out, torch.zeros_like(out))  # minimise log(1 - D(G(z)))
        elif bug == "g_target_zero":
            loss_G = bce(out, torch.zeros_like(out))
        else:
            loss_G = loss_fn(out, torch.ones_like(out))
        if bug != "g_detached":
            loss_G.backward()
        opt_G.step()
        return {"loss_D": loss_D.detach(), "loss_G": loss_G.detach()}

    return step


BUGS = {
    "no_detach_pollution": (
        "no detach: the D step backpropagated into G (D(fake) instead of D(fake.detach())), so G's "
        "gradients were polluted by D's loss before the G step. Use fake.detach() in the D step"
    ),
    "saturating": (
        "G is trained with the saturating loss log(1 - D(G(z))): use the non-saturating generator_loss, BCE(D(G(z)), 1)"
    ),
    "g_target_zero": "the G step uses target 0: G's target is 1 (G wants D to call its fakes real)",
    "swapped": "labels swapped in the D step: real images must get target 1 and fakes target 0",
    "sigmoid_twice": SIGMOID_TWICE,
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
    "g_detached": "the G step uses fake.detach(): no gradient reaches G, so G never learns. Detach in the D step only",
    "g_first": "G is updated before D: the canonical order is the D step, then the G step (on the same fake)",
    "concat": (
        "D sees real and fake in one concatenated batch: BatchNorm then normalises them with shared "
        "statistics. Run D on the real batch and on the fake batch separately, as dcgan_ref does"
    ),
}


def replay(case: dict[str, Any], bug: str | None, n: int) -> tuple[list[list[torch.Tensor]], list[dict]]:
    """Judge side: ``variant_step(bug)`` for n steps from the case's tiny start: snapshots and logs per step."""
    G, D = tiny_models(case["seed"])
    opt_G = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_D = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    step = variant_step(bug)
    states, logs = [], []
    for real, z in case["batches"][:n]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(case["seed"])
            logs.append(step(G, D, opt_G, opt_D, real.clone(), z.clone()))
        states.append(_snapshot(G, D))
    return states, logs


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(
        type(x) is torch.Tensor and x.shape == y.shape
        and torch.allclose(x.double(), y.double(), rtol=PARAM_RTOL, atol=PARAM_ATOL) for x, y in zip(a, b, strict=True))


def _mismatch(names: list[str], got: list[Any], want: list[torch.Tensor]) -> tuple[str, int, float] | None:
    for name, p, w in zip(names, got, want, strict=True):
        if type(p) is not torch.Tensor or p.shape != w.shape:
            return name, w.numel(), float("inf")
        diff = (p.double() - w.double()).abs()
        bad = ~(diff <= PARAM_ATOL + PARAM_RTOL * w.double().abs())  # NaN is never close
        if bad.any():
            return name, int(bad.sum()), diff.max().item()
    return None


def _diagnose(case: dict[str, Any], n: int, got: list[Any]) -> str | None:
    for bug, why in BUGS.items():
        try:
            states, _ = replay(case, bug, n)
        except RuntimeError:
            continue
        if _same(got, states[-1]):
            return why
    return None


def _step_error(text: str, what: str) -> str:
    if "backward through the graph a second time" in text:
        return (f"{what}: no detach. The D step backpropagated through G (D(fake) instead of D(fake.detach())), "
                "which freed G's graph, so the G step cannot backpropagate through it again. Use fake.detach() "
                f"in the D step. (The error was: {text})")
    if _integer_label_error(text):
        return f"{what}: {INTEGER_LABELS} (The error was: {text})"
    if "modified by an inplace operation" in text:
        return (f"{text}. Usually: an optimizer step changed weights between computing a loss and calling "
                "backward on it; finish each update (forward, loss, backward, step) before the next one's forward.")
    if "all elements of input should be between 0 and 1" in text:
        return (f"{text}. BCE got values outside [0, 1]: D's outputs here are probabilities (D ends in a "
                "Sigmoid); give them to the loss as they are.")
    return text


def _grade_train_run(case: dict[str, Any], run: TrainRun) -> None:
    G, D = tiny_models(case["seed"])
    names = _param_names(G, D)
    want_states, want_logs = replay(case, None, N_STEPS)
    for k, step in enumerate(run["steps"]):
        what = f"train_step, step {k + 1}"
        try:
            logs = unwrap(step["logs"])
        except CheckFailure as err:
            fail(_step_error(str(err), what))
        events = step["events"]
        n_d, n_g = events.count("D"), events.count("G")
        if n_d != 1 or n_g != 1:
            hint = (" Use the optimizers passed in: a new Adam inside train_step starts from scratch every step "
                    "(and forgets Adam's running averages)." if n_d == 0 and n_g == 0 else "")
            fail(f"{what} called opt_D.step() {n_d} time(s) and opt_G.step() {n_g} time(s): exactly one of each per "
                 f"train_step (one D update on the sum of its real and fake losses, then one G update).{hint}")
        if step["leak"]:
            fail(f"{what}: when opt_D.step() ran, {step['leak']} already had gradients: the D step must leave G "
                 "alone. No detach: use D(fake.detach()) in the D step so D's loss does not backpropagate into G.")
        if events != ["D", "G"]:
            fail(f"{what}: {BUGS['g_first']}.")
        if type(logs) is not dict or not {"loss_D", "loss_G"} <= set(logs):
            keys = f" with {sorted(logs)}" if type(logs) is dict else ""
            fail(f"{what} should return a dict with 'loss_D' and 'loss_G', got {type_name(logs)}{keys}.")
        mismatch = _mismatch(names, step["params"], want_states[k])
        if mismatch:
            name, count, diff = mismatch
            why = _diagnose(case, k + 1, step["params"]) or (
                "compare with the recipe: fake = G(z); opt_D.zero_grad(); "
                "loss_D = discriminator_loss(D(real), D(fake.detach())); loss_D.backward(); "
                "opt_D.step(); opt_G.zero_grad(); loss_G = generator_loss(D(fake)); "
                "loss_G.backward(); opt_G.step()")
            fail(f"{what}: after starting from the same weights, data and noise as the reference step, {name} "
                 f"differs ({count} values, up to {diff:.3g}): {why}.")
        for key in ("loss_D", "loss_G"):
            value = logs[key]
            if type(value) is torch.Tensor and value.numel() == 1:
                value = value.reshape(()).float()
            elif type(value) in (float, int):
                value = torch.tensor(float(value))
            else:
                fail(f"{what}: logs['{key}'] is a {type_name(value)}, expected a number (loss.item()).")
            want = want_logs[k][key].float()
            hint = "return the loss of this step (loss.item())"
            if torch.allclose(value, 0.5 * want, rtol=1e-4) and key == "loss_D":
                hint = ("it is half of D's loss: D's loss adds the real and the fake term (errD = errD_real + "
                        "errD_fake), it does not average them")
            elif k > 0 and torch.allclose(value, sum(w[key].float() for w in want_logs[: k + 1]), rtol=1e-4):
                hint = "it is the running total of the losses so far: return the loss of this step (loss.item())"
            expect_close(value, want, f"{what}: logs['{key}']", rtol=LOSS_RTOL, atol=1e-5, hint=hint + ".")


def _judge_train_step(cases: list, data: list[CascadeRuns]) -> str:
    """Two steps of the student's train_step equal two canonical DCGAN steps, parameter by parameter."""
    messages = []
    for case, runs in zip(cases, data, strict=True):

        def grade(run: TrainRun, case: dict[str, Any] = case) -> str:
            _grade_train_run(case, run)
            return "train_step: two steps equal dcgan_ref's, parameter by parameter; the D step leaves G alone."

        messages.append(judge_cascade(runs, grade, "train_step", EARLIER))
    return max(messages, key=len)


check_train_step = exercise("train_step", _probe_train_step, _judge_train_step, _train_cases)
