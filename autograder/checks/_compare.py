"""The check toolkit every lesson shares: one closeness rule, one way to name a mistake, one cascade
rule, one gradient judge, one description of layers.

- **Closeness** (judge side): ``disagree``/``close``/``score``/``close_number``. A value agrees with
  the reference when ``|a - ref| <= atol + rtol * |ref|``; NaN agrees only with NaN and an infinity
  only with the same infinity, so NaN or inf in an answer where the reference has none fails every
  comparison. ``_core.expect_close`` (the failing form, with its message) uses the same rule.
- **Nearest mistake** (judge side): ``nearest_mistake(answer, [(description, candidate), ...])`` names
  the recomputed mistake closest to the answer by that rule (a ``None`` description marks the correct
  answer, so an answer nearest to it blames nothing).
- **Cascades** (probe side ``cascade_runs``, judge side ``judge_cascade``): a later exercise is graded on
  its own code. Whatever an earlier exercise did (wrong value or dtype, raised, screened so its cell
  never ran, undefined), the probe runs the later one with the reference put in place of the earlier
  one (in the student function's globals, the name added if absent); the message says so.
- **Gradients** (probe side ``run_backward``, judge side ``judge_gradients``): an answer that feeds a
  backward pass is judged on the gradients of every input that feeds it, and a detached input is
  named.
- **Layers**: ``POOLING``/``UPSAMPLING``/``NORMS`` (one description for every lesson) and
  ``traced_forward`` (forward hooks: which leaf layers ran, in which order, with which output shape).
- **Trust boundary**: ``judge_only`` (from ``_guard``) marks reference answers and judge helpers; they
  refuse to run inside the student's code, and ``tests/test_checks_toolkit.py`` checks statically
  that no probe calls one and no judge calls the student's code.

Payloads (what a probe sends) are ``TypedDict``s of plain data: they cross ``_plain`` unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any, TypedDict

import torch
from torch import nn

from ._core import CheckFailure, Outcome, expect_close, fail, unwrap
from ._guard import is_judge_only, judge_only, reference_allowed
from ._plain import type_name

__all__ = [
    "NORMS", "POOLING", "UPSAMPLING", "CascadeRuns", "Earlier", "GradientRun", "Outcome", "TraceRecord",
    "cascade_runs", "close", "close_number", "disagree", "is_judge_only", "judge_cascade", "judge_gradients",
    "judge_only", "nearest_mistake", "referenced_names", "run_backward", "score", "substituted",
    "traced_forward", "tracing",
]

# ---------------------------------------------------------------------------------------------
# payloads: plain data a probe sends (``TypedDict``s are dicts, so ``_plain`` passes them as they are)


class GradientRun(TypedDict):
    """One forward and backward pass through the student's code (``run_backward``)."""

    out: Any  #: the output the backward pass started from (plain copy), or what came back instead
    connected: bool  #: the output is a tensor attached to autograd
    grads: dict[str, torch.Tensor | None]  #: gradient of each input that feeds the backward pass
    param_grads: dict[str, torch.Tensor | None]  #: gradient of each parameter of a module under test


class CascadeRuns(TypedDict, total=False):
    """A later exercise probed with the references in place of the earlier ones (``cascade_runs``)."""

    referenced: list[str]  #: earlier exercises' names the student's code uses
    defined: list[str]  #: those the student's notebook defines (the others never ran or are missing)
    reference: Any  #: the run with every referenced earlier name bound to its reference
    own: Any  #: the run as written (only when some referenced name is defined)
    only: dict[str, Any]  #: with one earlier name replaced at a time (when several are defined)


class TraceRecord(TypedDict):
    """One leaf layer that ran in a forward pass (``traced_forward``)."""

    name: str
    type: str
    shape: list[int] | None


# ---------------------------------------------------------------------------------------------
# one closeness rule


@judge_only
def disagree(actual: torch.Tensor, expected: torch.Tensor, *, rtol: float, atol: float) -> torch.Tensor:
    """Boolean mask of the values of ``actual`` that do not agree with ``expected`` (same shape).

    Agreement: ``|a - e| <= atol + rtol * |e|``, or both NaN, or the same infinity. So NaN or inf
    where the reference has none never agrees, whatever the tolerance."""
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    ok = torch.isfinite(a) & torch.isfinite(e) & ((a - e).abs() <= atol + rtol * e.abs())
    ok |= torch.isnan(a) & torch.isnan(e)
    ok |= torch.isinf(a) & (a == e)
    return ~ok


@judge_only
def score(actual: Any, expected: torch.Tensor, *, rtol: float, atol: float) -> float:
    """How far ``actual`` is from ``expected`` in units of the tolerance: the largest
    ``|a - e| / (atol + rtol * |e|)``; <= 1 means close. ``inf`` for a non-tensor, another shape,
    a complex dtype, or NaN/inf where ``expected`` has none (the closeness rule)."""
    if type(actual) is not torch.Tensor or tuple(actual.shape) != tuple(expected.shape) or actual.dtype.is_complex:
        return math.inf
    if expected.dtype.is_complex:
        return math.inf
    if actual.numel() == 0:
        return 0.0
    a = actual.detach().to("cpu", torch.float64)
    e = expected.detach().to("cpu", torch.float64)
    finite = torch.isfinite(a) & torch.isfinite(e)
    same = (torch.isnan(a) & torch.isnan(e)) | (torch.isinf(a) & (a == e))
    if bool((~finite & ~same).any()):
        return math.inf  # a NaN or an infinity that the reference does not have at that place
    if not bool(finite.any()):
        return 0.0
    diff = (a[finite] - e[finite]).abs()
    ratio = torch.where(diff == 0, torch.zeros_like(diff), diff / (atol + rtol * e[finite].abs()))
    return float(ratio.max())


@judge_only
def close(actual: Any, expected: torch.Tensor, *, rtol: float, atol: float) -> bool:
    """``actual`` is a plain tensor of ``expected``'s shape whose every value agrees with it
    (``expect_close``'s criterion, as a question)."""
    if type(actual) is not torch.Tensor or tuple(actual.shape) != tuple(expected.shape) or actual.dtype.is_complex:
        return False
    if expected.dtype.is_complex:
        return False
    return not bool(disagree(actual, expected, rtol=rtol, atol=atol).any())


@judge_only
def close_number(actual: float, expected: float, *, rtol: float = 0.0, atol: float) -> bool:
    """The closeness rule for one number (``abs(a - e) > tol`` lets NaN through; this does not)."""
    a, e = float(actual), float(expected)
    if math.isnan(a) or math.isnan(e):
        return math.isnan(a) and math.isnan(e)
    if math.isinf(a) or math.isinf(e):
        return a == e
    return abs(a - e) <= atol + rtol * abs(e)


# ---------------------------------------------------------------------------------------------
# one "name the nearest mistake"

Candidate = torch.Tensor | Callable[[], torch.Tensor]


@judge_only
def nearest_mistake(
    actual: Any,
    candidates: Sequence[tuple[str | None, Candidate] | tuple[str | None, Candidate, tuple[float, float]]],
    *,
    rtol: float,
    atol: float,
) -> str | None:
    """Judge side: the description of the candidate closest to ``actual``, if one is close.

    ``candidates`` are ``(description, tensor or zero-argument callable that computes it)``, each a
    mistake recomputed on the same inputs, optionally with its own ``(rtol, atol)`` (a mistake whose
    values are larger than the answer's); a ``None`` description is the correct answer, so an answer
    nearest to it blames nothing. Closest, not first (distances in units of each candidate's
    tolerance): two mistakes can both be near an answer, and only the distance tells which one was
    written. A candidate that raises (a mistake that cannot be built for these inputs) is skipped."""
    if type(actual) is not torch.Tensor:
        return None
    best, best_msg = math.inf, None
    for entry in candidates:
        msg, cand = entry[0], entry[1]
        c_rtol, c_atol = entry[2] if len(entry) > 2 else (rtol, atol)  # type: ignore[misc]
        if callable(cand) and not isinstance(cand, torch.Tensor):
            try:
                cand = cand()
            except Exception:  # noqa: BLE001 - a mistake that cannot be recomputed here is not this one
                continue
        if type(cand) is not torch.Tensor and not isinstance(cand, torch.Tensor):
            continue
        s = score(actual, cand, rtol=c_rtol, atol=c_atol)
        if s < best:
            best, best_msg = s, msg
    return best_msg if best <= 1.0 else None


# ---------------------------------------------------------------------------------------------
# one description of layers, and forward hooks

#: every pooling layer torch has: DCGAN replaces pooling with strided convolutions
POOLING: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d,
    nn.LPPool1d, nn.LPPool2d, nn.FractionalMaxPool2d, nn.FractionalMaxPool3d,
)
#: fixed upsampling layers: DCGAN upsamples with a learned transposed convolution
UPSAMPLING: tuple[type[nn.Module], ...] = (
    nn.Upsample, nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d, nn.PixelShuffle, nn.MaxUnpool2d,
)
#: normalisation layers (BatchNorm's relatives a student might use instead)
NORMS: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm,
)


@contextlib.contextmanager
def tracing(model: nn.Module) -> Iterator[list[TraceRecord]]:
    """Probe side: while active, every leaf layer of ``model`` that runs is recorded, in execution order,
    with its dotted name, class name and output shape (forward hooks, removed afterwards)."""
    records: list[TraceRecord] = []
    names: dict[int, str] = {}

    def hook(module: nn.Module, inputs: Any, output: Any) -> None:
        shape = [int(s) for s in output.shape] if isinstance(output, torch.Tensor) else None
        records.append({"name": names.get(id(module), "?"), "type": type(module).__name__, "shape": shape})

    handles: list[Any] = []
    try:
        names = {id(m): name for name, m in model.named_modules()}
        handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    except Exception:  # noqa: BLE001 - a module that breaks introspection is simply not traced
        records.append({"name": "?", "type": "untraceable", "shape": None})
    try:
        yield records
    finally:
        for h in handles:
            h.remove()


def traced_forward(model: nn.Module, *args: Any, **kwargs: Any) -> tuple[Any, list[TraceRecord]]:
    """Probe side: ``model(*args)`` and the leaf layers that ran (``tracing``)."""
    with tracing(model) as records:
        out = model(*args, **kwargs)
    return out, records


# ---------------------------------------------------------------------------------------------
# one cascade rule


@dataclass(frozen=True)
class Earlier:
    """An earlier exercise a later one may call: the name the notebook defines it under, its number
    (for "fix exercise N first") and the reference the probe puts in its place (``judge_only``: it
    refuses to run inside the student's code except where ``substituted`` puts it)."""

    name: str
    number: int
    reference: Callable[..., Any]


def _own_classes(cls: type) -> list[type]:
    """The classes of ``cls``'s MRO the student wrote (torch's and ``object`` left out)."""
    return [k for k in cls.__mro__
            if k is not object and str(getattr(k, "__module__", "")).split(".")[0] != "torch"]


def _codes(obj: Any, depth: int = 0) -> list[CodeType]:
    """The code objects of a function, a method, or a class's methods, nested ones included."""
    if depth > 3:
        return []
    if isinstance(obj, CodeType):
        return [obj, *(c for k in obj.co_consts if isinstance(k, CodeType) for c in _codes(k, depth))]
    if isinstance(obj, functools.partial):
        return _codes(obj.func, depth + 1)
    if isinstance(obj, FunctionType):
        return _codes(obj.__code__, depth)
    func = getattr(obj, "__func__", None)
    if isinstance(func, FunctionType):
        return _codes(func.__code__, depth)
    if inspect.isclass(obj):
        found: list[CodeType] = []
        for klass in _own_classes(obj):
            for v in vars(klass).values():
                if isinstance(v, staticmethod | classmethod):
                    v = v.__func__
                if isinstance(v, FunctionType | property):
                    found += _codes(v.fget if isinstance(v, property) else v, depth + 1)
        return found
    return []


def _globals_of(obj: Any) -> list[dict[str, Any]]:
    """The global namespaces (the notebook's) the student's function or class runs in."""
    spaces: list[dict[str, Any]] = []
    candidates: list[Any] = [obj]
    if inspect.isclass(obj):
        candidates = [v for klass in _own_classes(obj) for v in vars(klass).values()]
    for c in candidates:
        if isinstance(c, staticmethod | classmethod):
            c = c.__func__
        if isinstance(c, functools.partial):
            c = c.func
        space = getattr(c, "__globals__", None)
        if type(space) is dict and all(space is not s for s in spaces):
            spaces.append(space)
    return spaces


def referenced_names(fns: Sequence[Any], earlier: Sequence[Earlier]) -> list[str]:
    """Probe side: which earlier exercises' names the student's functions (or classes) refer to, directly
    or through helpers of their notebook (three levels deep)."""
    wanted = {e.name for e in earlier}
    names: set[str] = set()
    todo, seen = list(fns), {id(fn) for fn in fns}
    for _ in range(4):
        found = {n for fn in todo for code in _codes(fn) for n in code.co_names}
        names |= found
        helpers = []
        for fn in todo:
            for space in _globals_of(fn):
                for n in found - wanted:
                    helper = space.get(n)
                    if isinstance(helper, FunctionType) and id(helper) not in seen:
                        seen.add(id(helper))
                        helpers.append(helper)
        todo = helpers
    return [e.name for e in earlier if e.name in names]


def _stand_in(e: Earlier) -> Callable[..., Any]:
    """The reference for ``e``, callable from inside the student's code (``judge_only`` lifted)."""

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        with reference_allowed():
            return e.reference(*args, **kwargs)

    stand_in.__name__ = stand_in.__qualname__ = e.name
    stand_in.__doc__ = f"The reference {e.name}, in place of the student's (exercise {e.number})."
    return stand_in


@contextlib.contextmanager
def substituted(fns: Sequence[Any], earlier: Sequence[Earlier], names: Sequence[str] | None = None) -> Iterator[None]:
    """Probe side: bind each earlier exercise of ``names`` (default: all of ``earlier``) to its reference
    in the globals of the student's ``fns`` while the block runs, adding the name where it is absent
    (a screened or missing cell); everything is put back afterwards."""
    chosen = [e for e in earlier if names is None or e.name in names]
    missing = object()
    saved: list[tuple[dict[str, Any], str, Any]] = []
    try:
        for space in {id(s): s for fn in fns for s in _globals_of(fn)}.values():
            for e in chosen:
                saved.append((space, e.name, space.get(e.name, missing)))
                space[e.name] = _stand_in(e)
        yield
    finally:
        for space, name, value in reversed(saved):
            if value is missing:
                space.pop(name, None)
            else:
                space[name] = value


def _defined(fns: Sequence[Any], name: str) -> bool:
    return any(callable(space.get(name)) for fn in fns for space in _globals_of(fn))


def cascade_runs(fns: Sequence[Any], earlier: Sequence[Earlier], run: Callable[[], Any]) -> CascadeRuns:
    """Probe side: ``run()`` (which probes the later exercise's ``fns``) with every earlier name they
    use bound to its reference ("reference"); when some of those names are defined, also as written
    ("own") and, with several, with one replaced at a time ("only"), so the judge can tell which
    earlier exercise breaks this one. With no earlier name used, "reference" is the run as written."""
    try:
        referenced = referenced_names(fns, earlier)
        defined = [n for n in referenced if _defined(fns, n)]
    except Exception:  # noqa: BLE001 - an object that breaks introspection: substitute every earlier name
        referenced, defined = [e.name for e in earlier], []
    runs: CascadeRuns = {"referenced": referenced, "defined": defined}
    with substituted(fns, earlier, referenced):
        runs["reference"] = run()
    if defined:
        runs["own"] = run()
        if len(defined) > 1:
            only: dict[str, Any] = {}
            for name in defined:
                with substituted(fns, earlier, [name]):
                    only[name] = run()
            runs["only"] = only
    return runs


def _default_note(message: str, this: str, culprits: list[Earlier], replaced: list[Earlier],
                  own_error: str | None) -> str:
    which = ", ".join(f"exercise {e.number} ({e.name})" for e in culprits)
    names = " and ".join(e.name for e in replaced)
    if own_error is None:
        return (f"{message} ({this} was graded with the reference {names} in place of yours, which is not "
                f"defined: its cell did not run or was refused. Fix {which} first.)")
    return (f"{message} But with your own {' and '.join(e.name for e in culprits)} it fails: fix {which} first. "
            f"({this} was graded with the reference {names} in their place; with yours: {own_error})")


#: ``note(message, this, culprits, replaced, own_error)``: the passing message when the student's own
#: earlier exercises break this one (``own_error``) or are not defined (``own_error`` None)
Note = Callable[[str, str, list[Earlier], list[Earlier], str | None], str]


def judge_cascade(
    runs: Any,
    grade: Callable[[Any], str],
    this: str,
    earlier: Sequence[Earlier],
    note: Note = _default_note,
) -> str:
    """Judge side, the cascade rule: ``grade`` (a judge that fails with ``CheckFailure``) decides on the
    run with the references in place. If that fails, the run as written may still pass (the student's
    own earlier and later parts agree with each other and with the reference); otherwise its failure is
    this exercise's own. When it passes but the student's own earlier exercises break it, or are
    missing, the message says so and names them."""
    if type(runs) is not dict or "reference" not in runs:
        fail("the probe returned no run for this exercise.")
    by_name = {e.name: e for e in earlier}

    def names(key: str) -> list[Earlier]:  # plain data from the probe: only known names count
        value = runs.get(key)
        return [by_name[n] for n in (value if type(value) is list else []) if type(n) is str and n in by_name]

    referenced, defined = names("referenced"), names("defined")
    try:
        message = grade(runs["reference"])
    except CheckFailure:
        if "own" in runs:
            with contextlib.suppress(CheckFailure):
                return grade(runs["own"])
        raise
    if not referenced:
        return message
    undefined = [e for e in referenced if e not in defined]
    if "own" not in runs:
        return note(message, this, undefined, referenced, None)
    try:
        grade(runs["own"])
    except CheckFailure as err:
        own_error = str(err)
    else:
        if undefined:
            return note(message, this, undefined, referenced, None)
        return message
    culprits: list[Earlier] = []
    only = runs.get("only") if type(runs.get("only")) is dict else {}
    for e in defined:
        one = only.get(e.name)
        if one is not None:
            try:
                grade(one)
                culprits.append(e)
            except CheckFailure:
                pass
    return note(message, this, (culprits or defined) + undefined, referenced, own_error)


# ---------------------------------------------------------------------------------------------
# one gradient judge


def _tensor_inputs(inputs: Mapping[str, Any], grad_of: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor):
            v = v.detach().clone()
            if k in grad_of:
                v.requires_grad_(True)
        out[k] = v
    return out


def _backward(out: Any, upstream: torch.Tensor | None) -> bool:
    """``out.backward(upstream)`` (or of the scalar ``out``) when ``out`` is attached to autograd."""
    if not isinstance(out, torch.Tensor) or not out.requires_grad:
        return False
    if upstream is None:
        if out.numel() != 1:
            return False
        out.backward()
    else:
        if tuple(out.shape) != tuple(upstream.shape):
            return False
        out.backward(upstream)
    return True


def run_backward(
    fn: Callable[..., Any],
    inputs: Mapping[str, Any],
    grad_of: Sequence[str],
    upstream: torch.Tensor | None = None,
    pick: int | None = None,
    module: nn.Module | None = None,
) -> GradientRun:
    """Probe side (call it through ``attempt``/``call``, so the guards apply): ``fn(*inputs.values())``
    on copies, the inputs named in ``grad_of`` requiring grad, then a backward pass from the output
    (element ``pick`` of a returned tuple) with ``upstream`` (a scalar loss needs none). Returns the
    output and the gradient of every input in ``grad_of`` (None: no gradient reached it) and of every
    parameter of ``module``."""
    args = _tensor_inputs(inputs, grad_of)
    result = fn(*args.values())
    out = result
    if pick is not None:
        out = result[pick] if isinstance(result, tuple | list) and len(result) > pick else None
    connected = _backward(out, upstream)
    params = dict(module.named_parameters()) if module is not None else {}
    return {
        "out": out if isinstance(out, torch.Tensor) else result,
        "connected": connected,
        "grads": {k: (args[k].grad if isinstance(args[k], torch.Tensor) else None) for k in grad_of},
        "param_grads": {k: p.grad for k, p in params.items()},
    }


def detached_message(name: str) -> str:
    """The default message for an input no gradient reaches."""
    return (f"no gradient reaches {name}: did you .detach() it (or compute with it under torch.no_grad(), "
            "through .item() or NumPy)? The backward pass must reach every input the reference's does.")


@judge_only
def reference_gradients(
    reference: Callable[..., Any],
    inputs: Mapping[str, Any],
    grad_of: Sequence[str],
    upstream: torch.Tensor | None = None,
    pick: int | None = None,
) -> dict[str, torch.Tensor | None]:
    """Judge side: the gradient of ``reference`` w.r.t. each input of ``grad_of`` on the same inputs."""
    args = _tensor_inputs(inputs, grad_of)
    result = reference(*args.values())
    out = result[pick] if pick is not None else result
    if not _backward(out, upstream):
        raise RuntimeError("the reference is not differentiable here")  # a bug in the check, not the answer
    return {k: args[k].grad for k in grad_of}


@judge_only
def judge_gradients(
    run: Any,
    reference: Callable[..., Any] | Mapping[str, torch.Tensor | None],
    inputs: Mapping[str, Any],
    grad_of: Sequence[str],
    *,
    what: str,
    rtol: float,
    atol: float,
    upstream: torch.Tensor | None = None,
    pick: int | None = None,
    not_connected: str | None = None,
    detached: Callable[[str], str] = detached_message,
    hints: Mapping[str, str] | None = None,
    label: Callable[[str], str] | None = None,
) -> None:
    """Judge side: the student's gradients (``run_backward``'s ``GradientRun``, or its ``attempt``
    outcome) against the reference's (a function, differentiated here, or the gradients themselves).

    Fails when the output is not attached to autograd (``not_connected``), when no gradient reaches an
    input that the reference's reaches (``detached(name)``: "did you .detach() it?"), or when a
    gradient differs (``expect_close``, ``hints[name]``), named ``label(name)`` (default "<what>:
    gradient w.r.t. <name>")."""
    if type(run) is dict and ("value" in run or "error" in run) and "grads" not in run:
        run = unwrap(run)
    if type(run) is not dict or type(run.get("grads")) is not dict:
        fail(f"{what}: the probe returned no gradients.")
    if run.get("connected") is not True:
        fail(not_connected or f"{what} is not connected to autograd: no gradient can flow back through it. "
             "Build it from torch operations (no .detach(), .item(), NumPy or torch.no_grad()).")
    want = (dict(reference) if isinstance(reference, Mapping)
            else reference_gradients(reference, inputs, grad_of, upstream, pick))
    for name in grad_of:
        text = label(name) if label is not None else f"{what}: gradient w.r.t. {name}"
        ref, got = want.get(name), run["grads"].get(name)
        if ref is None:
            continue  # the reference does not depend on it: nothing to ask of the answer
        if got is None:
            fail(detached(name))
        if type(got) is not torch.Tensor:
            fail(f"{text} is a {type_name(got)}, expected a tensor.")
        if bool((ref != 0).any()) and not bool((got != 0).any()):
            fail(detached(name))
        expect_close(got, ref, text, rtol=rtol, atol=atol, hint=(hints or {}).get(name))
