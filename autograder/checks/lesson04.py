"""Checks for lesson 04: ReLU, LeakyReLU, Sigmoid and Tanh and their derivatives, written by hand.

Forward values are compared with the torch built-ins, derivatives with what autograd computes
through those built-ins, on seeded random inputs and on extreme ones (+-1000). While the
student's code runs the built-ins raise. Sigmoid and Tanh must also be numerically stable: no
operation inside them may turn finite inputs into inf or NaN (watched with a TorchFunctionMode),
and autograd through the student's sigmoid must give finite gradients at +-1000.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from ._core import call, expect, expect_close, expect_tensor, fail, forbid, passed, seeded, student_globals

FORBIDDEN: dict[str, tuple[Any, str]] = {
    "torch.relu": (torch, "relu"),
    "torch.relu_": (torch, "relu_"),
    "F.relu": (F, "relu"),
    "F.relu_": (F, "relu_"),
    "Tensor.relu": (torch.Tensor, "relu"),
    "Tensor.relu_": (torch.Tensor, "relu_"),
    "F.leaky_relu": (F, "leaky_relu"),
    "F.leaky_relu_": (F, "leaky_relu_"),
    "torch.sigmoid": (torch, "sigmoid"),
    "torch.sigmoid_": (torch, "sigmoid_"),
    "F.sigmoid": (F, "sigmoid"),
    "Tensor.sigmoid": (torch.Tensor, "sigmoid"),
    "Tensor.sigmoid_": (torch.Tensor, "sigmoid_"),
    "torch.special.expit": (torch.special, "expit"),
    "F.logsigmoid": (F, "logsigmoid"),
    "torch.tanh": (torch, "tanh"),
    "torch.tanh_": (torch, "tanh_"),
    "F.tanh": (F, "tanh"),
    "Tensor.tanh": (torch.Tensor, "tanh"),
    "Tensor.tanh_": (torch.Tensor, "tanh_"),
}
# a derivative computed by autograd is not a derivative written by hand
FORBIDDEN_GRAD: dict[str, tuple[Any, str]] = {
    **FORBIDDEN,
    "torch.autograd.grad": (torch.autograd, "grad"),
    "torch.autograd.backward": (torch.autograd, "backward"),
    "Tensor.backward": (torch.Tensor, "backward"),
}
INSTEAD = "Build it from elementary tensor operations (comparisons, torch.where, torch.exp, arithmetic)."

# The values an activation must survive: large enough that exp overflows float32 (and float64)
EXTREMES = [-1000.0, -100.0, -30.0, -10.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 10.0, 30.0, 100.0, 1000.0]

# float32 results of exp/divide formulas differ from torch's kernels by a few ulps (1e-7 relative);
# tanh written as 2 * sigmoid(2x) - 1 loses ~1e-7 absolute near 0 to cancellation. rtol 1e-5 and
# atol 1e-6 accept both and still catch every mistake named here (all off by > 1e-2).
RTOL = 1e-5
ATOL = 1e-6
MATCH_RTOL = 1e-4
MATCH_ATOL = 1e-5


def _inputs(hidden: bool, dtype: torch.dtype = torch.float32) -> list[torch.Tensor]:
    """Seeded random inputs of several shapes, then the extremes."""
    xs = [
        torch.randn(500, generator=seeded(40), dtype=dtype) * 4,
        torch.randn(3, 4, 5, generator=seeded(41), dtype=dtype) * 2,
        torch.tensor(EXTREMES, dtype=dtype),
    ]
    if hidden:
        xs += [
            torch.randn(2, 3, 8, 8, generator=seeded(42), dtype=dtype) * 10,
            torch.randn(64, generator=seeded(43), dtype=torch.float64) * 5,
            torch.tensor(EXTREMES, dtype=torch.float64),
        ]
    return xs


def _where(x: torch.Tensor, bad: torch.Tensor) -> str:
    """The first input value at which ``bad`` holds, for a message."""
    idx = tuple(int(i) for i in bad.nonzero()[0])
    return f"x = {x[idx].item():.6g}"


class _OverflowWatch(TorchFunctionMode):
    """Records the first torch operation that turns finite inputs into inf or NaN."""

    def __init__(self) -> None:
        super().__init__()
        self.first: str | None = None

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if self.first is None and isinstance(out, torch.Tensor) and out.is_floating_point():
            inputs = [a for a in (*args, *kwargs.values()) if isinstance(a, torch.Tensor) and a.is_floating_point()]
            if all(bool(torch.isfinite(a).all()) for a in inputs) and not bool(torch.isfinite(out).all()):
                name = getattr(func, "__name__", str(func))
                self.first = f"{name} returned {out[~torch.isfinite(out)].flatten()[0].item()}"
        return out


def _nearest(actual: torch.Tensor, candidates: list[tuple[torch.Tensor, str | None]]) -> str | None:
    """The message of the candidate closest to ``actual``, if within the match tolerance (None = correct)."""
    a = actual.detach().double()
    best, best_msg = float("inf"), None
    for cand, msg in candidates:
        if cand.shape != a.shape:
            continue
        c = cand.detach().double()
        finite = torch.isfinite(a) & torch.isfinite(c)
        if not bool(finite.all()):
            continue
        score = ((a - c).abs() / (MATCH_ATOL + MATCH_RTOL * c.abs())).max().item()
        if score < best:
            best, best_msg = score, msg
    return best_msg if best <= 1.0 else None


def _run(fn: Any, x: torch.Tensor, what: str, forbidden: dict[str, tuple[Any, str]], **kwargs: Any) -> torch.Tensor:
    """Call the student's elementwise function on a copy of x, built-ins forbidden; basic sanity."""
    for label, (owner, attr) in forbidden.items():
        if fn is getattr(owner, attr):
            fail(f"{what.split('(')[0]} is {label} itself, the built-in this exercise re-implements. {INSTEAD}")
    arg = x.clone()
    with forbid(forbidden, what.split("(")[0], INSTEAD, student_globals(fn)):
        out = call(fn, arg, what=what, **kwargs)
    out = expect_tensor(out, f"{what} for an input of shape {tuple(x.shape)}")
    expect(
        torch.equal(arg, x) or bool(torch.isnan(x).any()),
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


def _autograd(builtin: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """d builtin(x) / dx elementwise, by autograd."""
    xr = x.detach().clone().requires_grad_(True)
    builtin(xr).sum().backward()
    assert xr.grad is not None
    return xr.grad


def _check_pair(
    name: str,
    fn: Any,
    grad_fn: Any,
    builtin: Callable[[torch.Tensor], torch.Tensor],
    hidden: bool,
    forward_candidates: Callable[[torch.Tensor], list[tuple[torch.Tensor, str | None]]],
    grad_candidates: Callable[[torch.Tensor], list[tuple[torch.Tensor, str | None]]],
    kink: bool,
    forward_hint: str,
    grad_hint: str,
    stable: bool = False,
    **kwargs: Any,
) -> None:
    label = name + (f"(x, {', '.join(f'{k}={v}' for k, v in kwargs.items())})" if kwargs else "(x)")
    grad_label = name + "_grad" + label[len(name) :]
    for x in _inputs(hidden):
        want = builtin(x)
        watch = _OverflowWatch()
        with watch:
            got = _run(fn, x, label, FORBIDDEN, **kwargs)
        bad = torch.isnan(got) & ~torch.isnan(want)
        if bool(bad.any()):
            fail(
                f"{label} returns NaN at {_where(x, bad)} (expected {want[bad][0].item():.6g}): "
                + (
                    "exp overflows to inf for large |x| and inf / inf is NaN. Only ever exponentiate "
                    "-|x|, which is <= 0, so exp(-|x|) stays in (0, 1]."
                    if stable
                    else forward_hint
                )
            )
        hint = _nearest(got, forward_candidates(x)) or forward_hint
        expect_close(got, want, f"{label}", rtol=RTOL, atol=ATOL, hint=hint)
        if stable and watch.first is not None:
            fail(
                f"{label} overflows inside: on inputs {_range(x)} an operation ({watch.first}) turned finite "
                "values into inf. The output looks right, but autograd through it gives NaN gradients "
                "(0 * inf) and torch.where does not help, since both branches are computed. Exponentiate "
                "only -|x|: z = exp(-|x|) is in (0, 1], then pick the formula by the sign of x."
            )
        gx = x[x != 0] if kink else x  # the derivative at a kink (x = 0) is a convention: not checked
        gwant = _autograd(builtin, gx)
        ggot = _run(grad_fn, gx, grad_label, FORBIDDEN_GRAD, **kwargs)
        bad = torch.isnan(ggot) & ~torch.isnan(gwant)
        if bool(bad.any()):
            fail(f"{grad_label} returns NaN at {_where(gx, bad)} (expected {gwant[bad][0].item():.6g}): " + grad_hint)
        hint = _nearest(ggot, grad_candidates(gx)) or grad_hint
        expect_close(ggot, gwant, grad_label, rtol=RTOL, atol=ATOL, hint=hint)


def _range(x: torch.Tensor) -> str:
    return f"from {x.min().item():.4g} to {x.max().item():.4g}"


def check_relu(relu: Any, relu_grad: Any, hidden: bool = False) -> None:
    """relu(x) = max(x, 0) and its derivative (1 where x > 0, else 0), elementwise on any shape."""
    _check_pair(
        "relu",
        relu,
        relu_grad,
        torch.relu,
        hidden,
        forward_candidates=lambda x: [
            (x.clamp(min=0), None),
            (x.clamp(max=0), "the comparison is the wrong way round: keep the positive values, zero the negative."),
            (x.abs(), "negative inputs give 0, not their absolute value."),
        ],
        grad_candidates=lambda x: [
            ((x > 0).to(x.dtype), None),
            (x.clamp(min=0), "that is ReLU itself, not its derivative: the slope is 1 where x > 0 and 0 elsewhere."),
            ((x < 0).to(x.dtype), "the comparison is the wrong way round: the slope is 1 for x > 0."),
        ],
        kink=True,
        forward_hint="relu(x) is x where x > 0 and 0 elsewhere, e.g. torch.where(x > 0, x, 0) or x.clamp(min=0).",
        grad_hint="the derivative is 1 where x > 0 and 0 where x < 0, as a float tensor of x's shape.",
    )
    passed("relu and relu_grad match torch.relu and autograd, extreme inputs included.")


def check_leaky_relu(leaky_relu: Any, leaky_relu_grad: Any, hidden: bool = False) -> None:
    """leaky_relu(x, negative_slope=0.2) and its derivative (1 for x > 0, negative_slope for x < 0)."""
    slopes = [0.2] + ([0.01, 0.5] if hidden else [])
    for slope in slopes:
        kwargs = {} if slope == 0.2 else {"negative_slope": slope}

        def builtin(x: torch.Tensor, s: float = slope) -> torch.Tensor:
            return F.leaky_relu(x, s)

        def fwd_cands(x: torch.Tensor, s: float = slope) -> list[tuple[torch.Tensor, str | None]]:
            return [
                (F.leaky_relu(x, s), None),
                (
                    F.leaky_relu(x, 0.01),
                    "the negative side is multiplied by 0.01 (PyTorch's default), not by negative_slope "
                    f"({s}); DCGAN's discriminator uses 0.2.",
                ),
                (x.clamp(min=0), "negative inputs give 0: that is ReLU. Multiply them by negative_slope instead."),
                (torch.where(x > 0, s * x, x), "the slope is applied on the wrong side: x > 0 stays x."),
            ]

        def grad_cands(x: torch.Tensor, s: float = slope) -> list[tuple[torch.Tensor, str | None]]:
            one = torch.ones_like(x)
            return [
                (torch.where(x > 0, one, s * one), None),
                ((x > 0).to(x.dtype), "the slope for x < 0 is negative_slope, not 0 (that is ReLU's derivative)."),
                (torch.where(x > 0, one, 0.01 * one), f"the slope for x < 0 is negative_slope ({s}), not 0.01."),
                (
                    F.leaky_relu(x, s),
                    "that is LeakyReLU itself, not its derivative (1 for x > 0, negative_slope below).",
                ),
            ]

        _check_pair(
            "leaky_relu",
            leaky_relu,
            leaky_relu_grad,
            builtin,
            hidden,
            forward_candidates=fwd_cands,
            grad_candidates=grad_cands,
            kink=True,
            forward_hint="leaky_relu(x) is x where x > 0 and negative_slope * x elsewhere (use the argument).",
            grad_hint="the derivative is 1 where x > 0 and negative_slope where x < 0, as a float tensor.",
            **kwargs,
        )
    passed("leaky_relu and leaky_relu_grad match F.leaky_relu and autograd, extreme inputs included.")


def check_sigmoid(sigmoid: Any, sigmoid_grad: Any, hidden: bool = False) -> None:
    """A numerically stable sigmoid(x) = 1 / (1 + exp(-x)) and its derivative s * (1 - s)."""
    _check_pair(
        "sigmoid",
        sigmoid,
        sigmoid_grad,
        torch.sigmoid,
        hidden,
        forward_candidates=lambda x: [
            (torch.sigmoid(x), None),
            (torch.sigmoid(-x), "the sign is flipped: sigmoid(x) = 1 / (1 + exp(-x)) goes to 1 as x grows."),
            (
                torch.exp(-x.abs()) / (1 + torch.exp(-x.abs())),
                "for x >= 0 the result is 1 / (1 + exp(-x)), not z / (1 + z).",
            ),
        ],
        grad_candidates=lambda x: [
            (torch.sigmoid(x) * (1 - torch.sigmoid(x)), None),
            (x * (1 - x), "the derivative is s * (1 - s) with s = sigmoid(x), not x * (1 - x)."),
            (1 - torch.sigmoid(x) ** 2, "1 - s**2 is tanh's pattern; sigmoid's derivative is s * (1 - s)."),
            (torch.sigmoid(x), "that is sigmoid itself; its derivative is s * (1 - s)."),
        ],
        kink=False,
        forward_hint="sigmoid(x) = 1 / (1 + exp(-x)), computed as 1 / (1 + z) for x >= 0 and z / (1 + z) for "
        "x < 0, with z = exp(-|x|).",
        grad_hint="the derivative is s * (1 - s) with s = sigmoid(x), which is 0 (not NaN) at +-1000.",
        stable=True,
    )
    # autograd through the student's sigmoid: the reason stability matters inside a network
    for x in _inputs(hidden)[-1:] + [torch.tensor(EXTREMES, dtype=torch.float64)]:
        # x = 0 left out: formulas through |x| get slope 0 there from autograd's abs, a harmless convention
        x = x[x != 0]
        xr = x.clone().requires_grad_(True)
        with forbid(FORBIDDEN, "sigmoid", INSTEAD, student_globals(sigmoid)):
            out = call(sigmoid, xr, what="sigmoid(x)")
        if not out.requires_grad:
            fail(
                "sigmoid(x) is not connected to autograd: build it from torch operations (no .item(), NumPy "
                "or torch.no_grad()), so a network using it can learn."
            )
        out.sum().backward()
        want = _autograd(torch.sigmoid, x)
        assert xr.grad is not None
        bad = ~torch.isfinite(xr.grad)
        if bool(bad.any()):
            fail(
                f"autograd through your sigmoid gives {xr.grad[bad][0].item()} at {_where(x, bad)}: an "
                "intermediate overflowed to inf and the backward pass multiplied it by 0. Exponentiate only "
                "-|x|, and avoid computing an overflowing branch even inside torch.where."
            )
        expect_close(
            xr.grad,
            want,
            "gradient of sigmoid(x) by autograd",
            rtol=RTOL,
            atol=ATOL,
            hint="the forward formula must be differentiable and exact in both branches.",
        )
    passed("sigmoid is stable at +-1000 (no overflow, no NaN, finite gradients); sigmoid_grad matches autograd.")


def check_tanh(tanh: Any, tanh_grad: Any, hidden: bool = False) -> None:
    """A numerically stable tanh(x) and its derivative 1 - tanh(x)**2."""
    _check_pair(
        "tanh",
        tanh,
        tanh_grad,
        torch.tanh,
        hidden,
        forward_candidates=lambda x: [
            (torch.tanh(x), None),
            (torch.sigmoid(x), "that is sigmoid (range 0 to 1); tanh(x) = 2 * sigmoid(2x) - 1 has range -1 to 1."),
            (2 * torch.sigmoid(x) - 1, "tanh(x) = 2 * sigmoid(2x) - 1: the argument is 2x, not x."),
            (torch.sigmoid(2 * x), "tanh(x) = 2 * sigmoid(2x) - 1: scale by 2 and shift by -1."),
        ],
        grad_candidates=lambda x: [
            (1 - torch.tanh(x) ** 2, None),
            (1 - torch.tanh(x), "the derivative is 1 - tanh(x)**2: the square is missing."),
            (1 - x**2, "the derivative is 1 - t**2 with t = tanh(x), not 1 - x**2."),
            (torch.tanh(x) ** 2, "the derivative is 1 - tanh(x)**2, not tanh(x)**2."),
        ],
        kink=False,
        forward_hint="tanh(x) = (1 - exp(-2x)) / (1 + exp(-2x)) for x >= 0, mirrored for x < 0; or "
        "2 * sigmoid(2x) - 1 with your stable sigmoid.",
        grad_hint="the derivative is 1 - tanh(x)**2, which is 0 (not NaN) at +-1000.",
        stable=True,
    )
    passed("tanh is stable at +-1000 and matches torch.tanh; tanh_grad matches autograd.")
