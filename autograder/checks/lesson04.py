"""Checks for lesson 04: ReLU, LeakyReLU, Sigmoid and Tanh and their derivatives, written by hand.

Each exercise is cases -> probe -> judge (``_core.exercise``). The probe calls the student's two
functions on the grader's inputs (seeded random ones and extremes, +-1000) with the built-in
activation refused at the dispatcher (``_guard`` families: whatever Python name or alias reached
it), autograd refused in the derivatives, and a watch that records the first operation turning a
finite input into inf or NaN; it returns the outputs, the argument as it was after the call and
what the watches saw. The judge compares with the torch built-ins and autograd, computed there, and
names the mistake an answer matches. Tanh uses the student's sigmoid in the usual solution: it is
probed a second time with a reference sigmoid in its place, so a broken exercise 3 costs exercise
3's points only ("fix exercise 3 first").
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ._compare import (
    CascadeRuns,
    Earlier,
    cascade_runs,
    judge_cascade,
    judge_gradients,
    judge_only,
    nearest_mistake,
    run_backward,
)
from ._core import Outcome, attempt, exercise, expect, expect_close, fail, hidden_generator, unwrap
from ._guard import RELU, SIGMOID_TANH, NoAutograd, OpFamily
from ._plain import type_name

#: torch.logaddexp(0, -x) is softplus(-x), and exp(-softplus(-x)) is a sigmoid: the stability
#: work the exercise is about, done by a built-in
LOGADDEXP = OpFamily("torch.logaddexp / torch.logsumexp (a softplus in disguise)",
                     lambda n: n in ("logaddexp", "logaddexp2", "logsumexp"))
SIGMOID_FAMILIES = [SIGMOID_TANH, LOGADDEXP]
RELU_FAMILIES = [RELU]

INSTEAD = "Build it from elementary tensor operations (comparisons, torch.where, torch.exp, arithmetic)."
GRAD_INSTEAD = "Write the derivative as a formula of x with elementary tensor operations, without autograd."

# The values an activation must survive: large enough that exp overflows float32 (and float64)
EXTREMES = [-1000.0, -100.0, -30.0, -17.0, -10.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 10.0, 17.0, 30.0, 100.0, 1000.0]

# float32 results of exp/divide formulas differ from torch's kernels by a few ulps (1e-7 relative);
# tanh written as 2 * sigmoid(2x) - 1 loses ~1e-7 absolute near 0 to cancellation. rtol 1e-5 and
# atol 1e-6 accept both and still catch every mistake named here (all off by > 1e-2).
RTOL = 1e-5
ATOL = 1e-6
MATCH_RTOL = 1e-4
MATCH_ATOL = 1e-5


def _tiny(dtype: torch.dtype) -> float:
    """The smallest normal number of ``dtype``: below it float results have no relative precision."""
    return float(torch.finfo(dtype).tiny)


# ---------------------------------------------------------------------------------------------
# probe side: watches active while the student's code runs


class _OverflowWatch(TorchFunctionMode):
    """Records the first torch operation that turns finite inputs into inf or NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.first: str | None = None

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.first is None and type(out) is torch.Tensor and out.is_floating_point():
            inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.is_floating_point()]
            if all(bool(torch.isfinite(a).all()) for a in inputs) and not bool(torch.isfinite(out).all()):
                name = getattr(func, "__name__", str(func))
                self.first = f"{name} returned {out[~torch.isfinite(out)].flatten()[0].item()}"
        return out


@judge_only
def reference_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """A stable sigmoid from elementary operations: what a probe puts in place of the student's ``sigmoid``
    when it grades an exercise that calls it (tanh), so exercise 3's mistakes stay exercise 3's."""
    z = torch.exp(-x.abs())
    return torch.where(x >= 0, 1 / (1 + z), z / (1 + z))


#: the earlier exercise tanh may call
SIGMOID = Earlier("sigmoid", 3, reference_sigmoid)


class ActivationCall(TypedDict):
    """One call of the student's activation (or its derivative) on a copy of one input."""

    out: Outcome
    arg_after: torch.Tensor  #: the copy handed over, as the call left it
    overflow: str | None  #: the first operation that turned finite values into inf or NaN (``_OverflowWatch``)


class SettingRuns(TypedDict):
    """The forward function and its derivative on every input, for one setting of the keyword arguments."""

    fwd: list[ActivationCall]  #: one per ``cases["inputs"]``
    grad: list[ActivationCall]  #: one per ``cases["grad_inputs"]``


class PairRuns(TypedDict):
    """What ``_probe_pair`` sends for an activation and its derivative (relu, leaky_relu, sigmoid, tanh)."""

    runs: list[SettingRuns]  #: one per ``cases["kwargs"]``
    through: list[list[Outcome]]  #: per kwargs, per ``cases["through_inputs"]``: ``{"value": GradientRun}``


def _probe_one(fn: Any, x: torch.Tensor, what: str, families: list[OpFamily], kwargs: dict[str, Any],
               derivative: bool) -> ActivationCall:
    """One call of the student's function on a copy of ``x``: outcome, argument after the call, watches."""
    arg = x.clone()
    overflow = _OverflowWatch()
    no_auto = NoAutograd()
    with overflow, (no_auto if derivative else contextlib.nullcontext()):
        outcome = attempt(fn, arg, what=what, refuse=families, instead=GRAD_INSTEAD if derivative else INSTEAD,
                          **kwargs)
    if no_auto.hits and "value" in outcome:
        outcome = {"error": f"{what.split('(')[0]} calls {no_auto.hits[0]}: autograd computes the derivative this "
                            f"exercise asks you to write. {GRAD_INSTEAD}"}
    return {"out": outcome, "arg_after": arg, "overflow": overflow.first}


def _kwargs_label(name: str, kwargs: dict[str, Any]) -> str:
    return name + (f"(x, {', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else "(x)")


def _probe_pair(fn: Any, grad_fn: Any, name: str, cases: dict[str, Any], families: list[OpFamily]) -> PairRuns:
    """Probe side: fn and grad_fn on every input and every kwargs setting of the cases."""
    runs: list[SettingRuns] = []
    for kwargs in cases["kwargs"]:
        label = _kwargs_label(name, kwargs)
        grad_label = name + "_grad" + label[len(name):]
        runs.append({
            "fwd": [_probe_one(fn, x, label, families, kwargs, derivative=False) for x in cases["inputs"]],
            "grad": [_probe_one(grad_fn, x, grad_label, families, kwargs, derivative=True)
                     for x in cases["grad_inputs"]],
        })
    # the activation feeds a backward pass: autograd through it, from an upstream of ones
    through = [[attempt(run_backward, functools.partial(fn, **kwargs), {"x": x}, ["x"], torch.ones_like(x),
                        what=_kwargs_label(name, kwargs), refuse=families, instead=INSTEAD)
                for x in cases["through_inputs"]] for kwargs in cases["kwargs"]]
    return {"runs": runs, "through": through}


# ---------------------------------------------------------------------------------------------
# cases


def _inputs(hidden: bool, exercise: str) -> list[torch.Tensor]:
    """Seeded random inputs of several shapes, then the extremes; the hidden ones' values from the
    instructor's secret."""
    g = torch.Generator().manual_seed(40)
    xs = [
        torch.randn(500, generator=g) * 4,
        torch.randn(3, 4, 5, generator=g) * 2,
        torch.tensor(EXTREMES),
    ]
    if hidden:
        h = [hidden_generator(4, exercise, i) for i in range(3)]
        xs += [
            torch.randn(2, 3, 8, 8, generator=h[0]) * 10,
            torch.randn(64, generator=h[1], dtype=torch.float64) * 5,
            torch.tensor(EXTREMES, dtype=torch.float64),
            -torch.rand(200, generator=h[2]) * 80,  # the negative tail, where 1 - s loses everything
        ]
    return xs


def _cases(hidden: bool, kink: bool, kwargs: list[dict[str, Any]], exercise: str) -> dict[str, Any]:
    xs = _inputs(hidden, exercise)
    return {"hidden": hidden, "kwargs": kwargs, "inputs": xs,
            # the derivative at a kink (x = 0) is a convention: not checked
            "grad_inputs": [x[x != 0] for x in xs] if kink else xs,
            # autograd through the forward function; x = 0 left out: formulas through |x| get slope 0 there
            # from autograd's abs, a harmless convention
            "through_inputs": [x[x != 0] for x in (torch.tensor(EXTREMES), torch.tensor(EXTREMES).double())]}


# ---------------------------------------------------------------------------------------------
# judge side


def _where(x: torch.Tensor, bad: torch.Tensor) -> str:
    """The first input value at which ``bad`` holds, for a message."""
    idx = tuple(int(i) for i in bad.nonzero()[0])
    return f"x = {x[idx].item():.6g}"


def _range(x: torch.Tensor) -> str:
    return f"from {x.min().item():.4g} to {x.max().item():.4g}"


@judge_only
def _autograd(builtin: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """d builtin(x) / dx elementwise, by autograd (judge side)."""
    xr = x.detach().clone().requires_grad_(True)
    builtin(xr).sum().backward()
    assert xr.grad is not None
    return xr.grad


def _judge_tensor(record: ActivationCall, x: torch.Tensor, what: str) -> torch.Tensor:
    """The output of one probed call, after the checks every activation shares (type, input, shape, dtype)."""
    out = unwrap(record["out"])
    if type(out) is not torch.Tensor:
        fail(f"{what} should return a torch.Tensor, got {type_name(out)} for an input of shape {tuple(x.shape)}.")
    after = record["arg_after"]
    expect(
        type(after) is torch.Tensor and (torch.equal(after, x) or bool(torch.isnan(x).any())),
        f"{what} changed its input in place (for example x[x < 0] = 0): the caller's tensor is modified. "
        "Compute a new tensor instead (torch.where, arithmetic, x.clone()).",
    )
    expect(
        tuple(out.shape) == tuple(x.shape),
        f"{what} returned shape {tuple(out.shape)} for an input of shape {tuple(x.shape)}: an activation "
        "works element by element, so the shape stays the same.",
    )
    expect(
        out.dtype == x.dtype,
        f"{what} returned dtype {out.dtype} for a {x.dtype} input: "
        + (
            "a comparison gives booleans; convert with .to(x.dtype)."
            if out.dtype == torch.bool
            else "keep the input's dtype (no hard-coded float32, no Python floats from .item())."
        ),
    )
    return out


def _judge_pair(
    cases: dict[str, Any],
    data: PairRuns,
    name: str,
    builtin: Callable[..., torch.Tensor],
    forward_candidates: Callable[[torch.Tensor, dict[str, Any]], list[tuple[torch.Tensor, str | None]]],
    grad_candidates: Callable[[torch.Tensor, dict[str, Any]], list[tuple[torch.Tensor, str | None]]],
    forward_hint: Callable[[dict[str, Any]], str],
    grad_hint: str,
    stable: bool = False,
    tail_relative: bool = False,
) -> None:
    """Judge side: every forward output against ``builtin``, every derivative against autograd."""
    for kwargs, run in zip(cases["kwargs"], data["runs"], strict=True):
        label = _kwargs_label(name, kwargs)
        grad_label = name + "_grad" + label[len(name):]

        def ref(t: torch.Tensor, kw: dict[str, Any] = kwargs) -> torch.Tensor:
            return builtin(t, **kw)

        for x, record in zip(cases["inputs"], run["fwd"], strict=True):
            got = _judge_tensor(record, x, label)
            want = ref(x)
            bad = torch.isnan(got) & ~torch.isnan(want)
            if bool(bad.any()):
                fail(
                    f"{label} returns NaN at {_where(x, bad)} (expected {want[bad][0].item():.6g}): "
                    + (
                        "exp overflows to inf for large |x| and inf / inf is NaN. Only ever exponentiate "
                        "-|x|, which is <= 0, so exp(-|x|) stays in (0, 1]."
                        if stable
                        else forward_hint(kwargs)
                    )
                )
            hint = nearest_mistake(got, [(m, c) for c, m in forward_candidates(x, kwargs)], rtol=MATCH_RTOL,
                                   atol=MATCH_ATOL) or forward_hint(kwargs)
            expect_close(got, want, label, rtol=RTOL, atol=ATOL, hint=hint)
            if tail_relative:
                # tiny outputs (the negative tail, down to 1e-38) must be right to the same relative
                # precision as the others: 1 - s gives exactly 0 there, which an absolute tolerance hides
                expect_close(got, want, f"{label} in the tail", rtol=RTOL, atol=_tiny(x.dtype),
                             hint="tiny values lose every digit to cancellation: for x < 0 compute z / (1 + z) "
                             "with z = exp(x) = exp(-|x|), not 1 - 1 / (1 + z), which is exactly 0 once z "
                             "is below float precision (x <= -17 in float32).")
            if stable and record["overflow"] is not None:
                fail(
                    f"{label} overflows inside: on inputs {_range(x)} an operation ({record['overflow']}) turned "
                    "finite values into inf. The output looks right, but autograd through it gives NaN gradients "
                    "(0 * inf) and torch.where does not help, since both branches are computed. Exponentiate "
                    "only -|x|: z = exp(-|x|) is in (0, 1], then pick the formula by the sign of x."
                )
        for gx, record in zip(cases["grad_inputs"], run["grad"], strict=True):
            ggot = _judge_tensor(record, gx, grad_label)
            gwant = _autograd(ref, gx)
            bad = torch.isnan(ggot) & ~torch.isnan(gwant)
            if bool(bad.any()):
                fail(f"{grad_label} returns NaN at {_where(gx, bad)} (expected {gwant[bad][0].item():.6g}): "
                     + grad_hint)
            hint = nearest_mistake(ggot, [(m, c) for c, m in grad_candidates(gx, kwargs)], rtol=MATCH_RTOL,
                                   atol=MATCH_ATOL) or grad_hint
            expect_close(ggot, gwant, grad_label, rtol=RTOL, atol=ATOL, hint=hint)


def _judge_through(cases: dict[str, Any], data: PairRuns, name: str,
                   builtin: Callable[..., torch.Tensor]) -> None:
    """The activation feeds a backward pass: autograd through the student's forward function must give
    the built-in's finite gradients (``_compare.judge_gradients``)."""
    for kwargs, runs in zip(cases["kwargs"], data["through"], strict=True):
        label = _kwargs_label(name, kwargs)
        for x, outcome in zip(cases["through_inputs"], runs, strict=True):
            run = unwrap(outcome)
            grad = run["grads"]["x"] if type(run) is dict and type(run.get("grads")) is dict else None
            if type(run) is dict and run.get("connected") is True and type(grad) is torch.Tensor \
                    and grad.shape == x.shape:
                bad = ~torch.isfinite(grad)
                if bool(bad.any()):
                    fail(
                        f"autograd through your {name} gives {grad[bad][0].item()} at {_where(x, bad)}: an "
                        "intermediate overflowed to inf and the backward pass multiplied it by 0. Exponentiate only "
                        "-|x|, and avoid computing an overflowing branch even inside torch.where."
                    )
            judge_gradients(
                run, functools.partial(builtin, **kwargs), {"x": x}, ["x"], what=label, rtol=RTOL, atol=ATOL,
                upstream=torch.ones_like(x),
                not_connected=(f"{label} is not connected to autograd: build it from torch operations (no .item(), "
                               "NumPy, .detach() or torch.no_grad()), so a network using it can learn."),
                detached=lambda _: (f"autograd through your {name} gives no gradient for x: out does not depend on "
                                    "x through autograd (is it detached?)."),
                hints={"x": "the forward formula must be differentiable and exact in both branches."},
                label=lambda _, label=label: f"gradient of {label} by autograd",
            )


# ---------------------------------------------------------------------------------------------
# relu


def _relu_cases(hidden: bool) -> dict[str, Any]:
    return _cases(hidden, kink=True, kwargs=[{}], exercise="relu")


def _probe_relu(relu: Any, relu_grad: Any, cases: dict[str, Any]) -> PairRuns:
    return _probe_pair(relu, relu_grad, "relu", cases, RELU_FAMILIES)


def _judge_relu(cases: dict[str, Any], data: PairRuns) -> str:
    """relu(x) = max(x, 0) and its derivative (1 where x > 0, else 0), elementwise on any shape."""
    _judge_pair(
        cases, data, "relu", lambda x: torch.relu(x),
        forward_candidates=lambda x, kw: [
            (x.clamp(min=0), None),
            (x.clamp(max=0), "the comparison is the wrong way round: keep the positive values, zero the negative."),
            (x.abs(), "negative inputs give 0, not their absolute value."),
        ],
        grad_candidates=lambda x, kw: [
            ((x > 0).to(x.dtype), None),
            (x.clamp(min=0), "that is ReLU itself, not its derivative: the slope is 1 where x > 0 and 0 elsewhere."),
            ((x < 0).to(x.dtype), "the comparison is the wrong way round: the slope is 1 for x > 0."),
        ],
        forward_hint=lambda kw: "relu(x) is x where x > 0 and 0 elsewhere, e.g. torch.where(x > 0, x, 0) or "
        "x.clamp(min=0).",
        grad_hint="the derivative is 1 where x > 0 and 0 where x < 0, as a float tensor of x's shape.",
    )
    _judge_through(cases, data, "relu", torch.relu)
    return "relu and relu_grad match torch.relu and autograd, extreme inputs included."


check_relu = exercise("relu", _probe_relu, _judge_relu, _relu_cases)


# ---------------------------------------------------------------------------------------------
# leaky_relu


def _leaky_cases(hidden: bool) -> dict[str, Any]:
    # the default (0.2, DCGAN's), other slopes, among them slopes above 1, where max(x, a*x) is not LeakyReLU
    slopes = [0.5, 1.5] + ([0.01, -0.3, 3.0] if hidden else [])
    return _cases(hidden, kink=True, kwargs=[{}] + [{"negative_slope": s} for s in slopes], exercise="leaky_relu")


def _probe_leaky_relu(leaky_relu: Any, leaky_relu_grad: Any, cases: dict[str, Any]) -> PairRuns:
    return _probe_pair(leaky_relu, leaky_relu_grad, "leaky_relu", cases, RELU_FAMILIES)


def _leaky_fwd_cands(x: torch.Tensor, kw: dict[str, Any]) -> list[tuple[torch.Tensor, str | None]]:
    s = kw.get("negative_slope", 0.2)
    return [
        (F.leaky_relu(x, s), None),
        (F.leaky_relu(x, 0.2), f"the slope is hard-coded to 0.2: use the negative_slope argument (here {s})."),
        (
            F.leaky_relu(x, 0.01),
            "the negative side is multiplied by 0.01 (PyTorch's default), not by negative_slope "
            f"({s}); DCGAN's discriminator uses 0.2.",
        ),
        (torch.maximum(x, s * x),
         f"max(x, negative_slope * x) is LeakyReLU only for slopes up to 1: with negative_slope={s} it "
         "picks negative_slope * x for positive x. Choose by the sign of x: "
         "torch.where(x > 0, x, negative_slope * x)."),
        (torch.where(x > 0, s * x, x), "the slope is applied on the wrong side: x > 0 stays x."),
        (x.clamp(min=0), "negative inputs give 0: that is ReLU. Multiply them by negative_slope instead."),
        (torch.minimum(x, s * x),
         f"min(x, negative_slope * x) is not LeakyReLU (negative_slope={s}): choose by the sign of x, "
         "torch.where(x > 0, x, negative_slope * x)."),
    ]


def _leaky_grad_cands(x: torch.Tensor, kw: dict[str, Any]) -> list[tuple[torch.Tensor, str | None]]:
    s = kw.get("negative_slope", 0.2)
    one = torch.ones_like(x)
    return [
        (torch.where(x > 0, one, s * one), None),
        (torch.where(x > 0, one, 0.2 * one), f"the slope is hard-coded to 0.2: use negative_slope (here {s})."),
        ((x > 0).to(x.dtype), "the slope for x < 0 is negative_slope, not 0 (that is ReLU's derivative)."),
        (torch.where(x > 0, one, 0.01 * one), f"the slope for x < 0 is negative_slope ({s}), not 0.01."),
        (torch.where(x > s * x, one, s * one),
         f"the derivative follows max(x, negative_slope * x), which is LeakyReLU only for slopes up to 1 "
         f"(here {s}): choose by the sign of x."),
        (F.leaky_relu(x, s), "that is LeakyReLU itself, not its derivative (1 for x > 0, negative_slope below)."),
    ]


def _judge_leaky_relu(cases: dict[str, Any], data: PairRuns) -> str:
    """leaky_relu(x, negative_slope=0.2) and its derivative (1 for x > 0, negative_slope for x < 0)."""
    _judge_pair(
        cases, data, "leaky_relu", lambda x, negative_slope=0.2: F.leaky_relu(x, negative_slope),
        forward_candidates=_leaky_fwd_cands,
        grad_candidates=_leaky_grad_cands,
        forward_hint=lambda kw: "leaky_relu(x) is x where x > 0 and negative_slope * x elsewhere (use the "
        f"argument, here {kw.get('negative_slope', 0.2)}).",
        grad_hint="the derivative is 1 where x > 0 and negative_slope where x < 0, as a float tensor.",
    )
    _judge_through(cases, data, "leaky_relu", lambda x, negative_slope=0.2: F.leaky_relu(x, negative_slope))
    slopes = ", ".join(str(kw.get("negative_slope", 0.2)) for kw in cases["kwargs"])
    return f"leaky_relu and leaky_relu_grad match F.leaky_relu and autograd (slopes {slopes}), extreme inputs included."


check_leaky_relu = exercise("leaky_relu", _probe_leaky_relu, _judge_leaky_relu, _leaky_cases)


# ---------------------------------------------------------------------------------------------
# sigmoid


def _sigmoid_cases(hidden: bool) -> dict[str, Any]:
    return _cases(hidden, kink=False, kwargs=[{}], exercise="sigmoid")


def _probe_sigmoid(sigmoid: Any, sigmoid_grad: Any, cases: dict[str, Any]) -> PairRuns:
    return _probe_pair(sigmoid, sigmoid_grad, "sigmoid", cases, SIGMOID_FAMILIES)


def _judge_sigmoid(cases: dict[str, Any], data: PairRuns) -> str:
    """A numerically stable sigmoid(x) = 1 / (1 + exp(-x)) and its derivative s * (1 - s)."""
    _judge_pair(
        cases, data, "sigmoid", lambda x: torch.sigmoid(x),
        forward_candidates=lambda x, kw: [
            (torch.sigmoid(x), None),
            (torch.sigmoid(-x), "the sign is flipped: sigmoid(x) = 1 / (1 + exp(-x)) goes to 1 as x grows."),
            (
                torch.exp(-x.abs()) / (1 + torch.exp(-x.abs())),
                "for x >= 0 the result is 1 / (1 + exp(-x)), not z / (1 + z).",
            ),
            (torch.where(x >= 0, 1 / (1 + torch.exp(-x.abs())), 1 / (1 + torch.exp(-x.abs()))),
             "for x < 0 the result is z / (1 + z) with z = exp(-|x|): 1 / (1 + z) is sigmoid(|x|)."),
        ],
        grad_candidates=lambda x, kw: [
            (torch.sigmoid(x) * (1 - torch.sigmoid(x)), None),
            (x * (1 - x), "the derivative is s * (1 - s) with s = sigmoid(x), not x * (1 - x)."),
            (1 - torch.sigmoid(x) ** 2, "1 - s**2 is tanh's pattern; sigmoid's derivative is s * (1 - s)."),
            (torch.sigmoid(x), "that is sigmoid itself; its derivative is s * (1 - s)."),
        ],
        forward_hint=lambda kw: "sigmoid(x) = 1 / (1 + exp(-x)), computed as 1 / (1 + z) for x >= 0 and z / (1 + z) "
        "for x < 0, with z = exp(-|x|).",
        grad_hint="the derivative is s * (1 - s) with s = sigmoid(x), which is 0 (not NaN) at +-1000.",
        stable=True,
        tail_relative=True,
    )
    _judge_through(cases, data, "sigmoid", torch.sigmoid)
    return "sigmoid is stable at +-1000 (no overflow, no NaN, finite gradients); sigmoid_grad matches autograd."


check_sigmoid = exercise("sigmoid", _probe_sigmoid, _judge_sigmoid, _sigmoid_cases)


# ---------------------------------------------------------------------------------------------
# tanh (its usual solution calls the student's sigmoid: probed as written and with a reference sigmoid)


def _tanh_cases(hidden: bool) -> dict[str, Any]:
    return _cases(hidden, kink=False, kwargs=[{}], exercise="tanh")


def _probe_tanh(tanh: Any, tanh_grad: Any, cases: dict[str, Any]) -> CascadeRuns:
    """tanh and tanh_grad with the reference sigmoid in place of the student's (the cascade rule), and as
    written when they use a sigmoid of the student's."""
    return dict(cascade_runs((tanh, tanh_grad), [SIGMOID],
                             lambda: _probe_pair(tanh, tanh_grad, "tanh", cases, SIGMOID_FAMILIES)))


def _judge_tanh_run(cases: dict[str, Any], data: PairRuns) -> None:
    _judge_pair(
        cases, data, "tanh", lambda x: torch.tanh(x),
        forward_candidates=lambda x, kw: [
            (torch.tanh(x), None),
            (torch.sigmoid(x), "that is sigmoid (range 0 to 1); tanh(x) = 2 * sigmoid(2x) - 1 has range -1 to 1."),
            (2 * torch.sigmoid(x) - 1, "tanh(x) = 2 * sigmoid(2x) - 1: the argument is 2x, not x."),
            (torch.sigmoid(2 * x), "tanh(x) = 2 * sigmoid(2x) - 1: scale by 2 and shift by -1."),
            (2 * torch.sigmoid(2 * x) + 1, "tanh(x) = 2 * sigmoid(2x) - 1: subtract 1, do not add it."),
        ],
        grad_candidates=lambda x, kw: [
            (1 - torch.tanh(x) ** 2, None),
            (1 - torch.tanh(x), "the derivative is 1 - tanh(x)**2: the square is missing."),
            (1 - x**2, "the derivative is 1 - t**2 with t = tanh(x), not 1 - x**2."),
            (torch.tanh(x) ** 2, "the derivative is 1 - tanh(x)**2, not tanh(x)**2."),
            (2 * torch.sigmoid(2 * x) * (1 - torch.sigmoid(2 * x)),
             "by the chain rule d/dx [2 sigmoid(2x) - 1] = 4 s (1 - s) with s = sigmoid(2x): the inner 2 is missing."),
        ],
        forward_hint=lambda kw: "tanh(x) = (1 - exp(-2x)) / (1 + exp(-2x)) for x >= 0, mirrored for x < 0; or "
        "2 * sigmoid(2x) - 1 with your stable sigmoid.",
        grad_hint="the derivative is 1 - tanh(x)**2, which is 0 (not NaN) at +-1000.",
        stable=True,
    )
    _judge_through(cases, data, "tanh", torch.tanh)


def _tanh_note(message: str, this: str, culprits: list[Earlier], replaced: list[Earlier], own: str | None) -> str:
    if own is None:
        return ("tanh and tanh_grad are right with a correct sigmoid in place of yours, which is not defined (its "
                "cell did not run or was refused): fix exercise 3 first.")
    return ("tanh and tanh_grad are right when they use a correct sigmoid, but with your sigmoid they fail "
            f"({own}): fix exercise 3 first.")


def _judge_tanh(cases: dict[str, Any], data: CascadeRuns) -> str:
    """A numerically stable tanh(x) and its derivative 1 - tanh(x)**2 (graded with a reference sigmoid too)."""

    def grade(run: Any) -> str:
        _judge_tanh_run(cases, run)
        return "tanh is stable at +-1000 and matches torch.tanh; tanh_grad matches autograd."

    return judge_cascade(data, grade, "tanh", [SIGMOID], note=_tanh_note)


check_tanh = exercise("tanh", _probe_tanh, _judge_tanh, _tanh_cases)
