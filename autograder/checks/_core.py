"""Building blocks shared by every lesson's checks: exercises split into a probe and a judge.

An exercise is three functions (see ``Exercise`` and ``autograder/AUTHORING.md``):

- ``cases(hidden)``: the inputs, as plain data, made by the grader;
- ``probe(*student_objects, cases)``: runs where the student's code runs; calls the student's
  objects on the cases (through ``call``/``attempt``, which refuse the built-ins the exercise
  re-implements and any call into ``dcgan_ref``) and returns *plain data* only;
- ``judge(cases, data)``: runs where the grade is decided; computes the reference on the same
  cases, compares, and either returns the success line or raises ``CheckFailure`` with a message
  that says what was expected, what came back and the likely mistake.

In a student's notebook all three run in the student's kernel (instant feedback); the trusted
grader (``autograder/trusted.py``) runs the probe in a sandboxed worker and the judge in its own
process, and only ``_plain``'s exact-type data crosses between them. Messages never rely on
pytest's assertion rewriting, and a failure renders as its message alone, without a traceback
(IPython calls ``_render_traceback_``), so no test-cell source is ever shown.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, TypedDict

import torch

from ._guard import DelegationError, OpFamily, ReferenceWatch, RefuseOps, judge_only, probing, reference_origin
from ._plain import dumps, loads, qualname, to_plain, type_name
from ._secret import hidden_seed

PASS_MARK = "\u2714"  # heavy check mark
FAIL_MARK = "\u2718"  # heavy ballot x


class CheckFailure(AssertionError):
    """A failed check. Its message is all a student needs to see."""

    def _render_traceback_(self) -> list[str]:  # IPython: replaces the traceback
        return [f"{FAIL_MARK} {self}"]


def fail(message: str) -> NoReturn:
    """Stop the check with ``message``."""
    raise CheckFailure(message)


def expect(condition: bool, message: str) -> None:
    """``assert`` that keeps its message inside a Jupyter kernel."""
    if not condition:
        fail(message)


def passed(message: str) -> None:
    """One line on success (stdout: nbgrader scores any stderr output as a failure)."""
    print(f"{PASS_MARK} {message}")


def seeded(seed: int) -> torch.Generator:
    """A CPU generator with a fixed seed: draw every test input from one of these."""
    return torch.Generator().manual_seed(seed)


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal test input from a fixed seed."""
    return torch.randn(*shape, generator=seeded(seed), dtype=dtype)


def hidden_generator(lesson: int, exercise: str, i: int) -> torch.Generator:
    """The generator of hidden case ``i`` of an exercise, seeded from the instructor's secret
    (``_secret.hidden_seed``): the published checks never determine a hidden case's values."""
    return seeded(hidden_seed(lesson, exercise, i))


def hidden_randn(*shape: int, lesson: int, exercise: str, i: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal values of hidden case ``i``, from the instructor's secret."""
    return torch.randn(*shape, generator=hidden_generator(lesson, exercise, i), dtype=dtype)


def call(
    fn: Any,
    *args: Any,
    what: str | None = None,
    refuse: Sequence[OpFamily] = (),
    instead: str = "",
    allow_reference: Sequence[Any] = (),
    **kwargs: Any,
) -> Any:
    """Call the student's ``fn`` (probe side); anything it raises becomes a message about their code.

    While it runs, the operators of ``refuse`` (``_guard`` families: the built-ins the exercise
    re-implements) raise, and every call into ``dcgan_ref`` is recorded, except the code of the
    objects in ``allow_reference`` (e.g. a reference model the probe passes in); either fails the
    check, even when the student's code caught the error. A result built by ``dcgan_ref`` fails too.
    Warnings it emits are reported on stdout instead of stderr, so a harmless torch
    ``UserWarning`` does not cost points under nbgrader.
    """
    name = what or getattr(fn, "__name__", "your code")
    if fn is None:
        fail(f"{name} is not defined: run the cell where you wrote it first.")
    if not callable(fn):
        fail(f"{name} should be a function or class, got {type(fn).__name__}.")
    short = name.split("(")[0]
    origin = reference_origin(fn)
    if origin is not None and not allow_reference:
        fail(f"{short} is {origin}, the reference it is compared with: write your own.")
    refuse_mode = RefuseOps(refuse, instead) if refuse else None
    watch = ReferenceWatch(allow_reference)
    error: str | None = None
    result = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with watch, probing(), (refuse_mode if refuse_mode is not None else contextlib.nullcontext()):
                result = fn(*args, **kwargs)
        except CheckFailure:
            raise
        except DelegationError as err:
            error = f"{short}: {err}"
        except NotImplementedError:
            error = f"{short} is not implemented yet: replace `raise NotImplementedError()` with your code."
        except Exception as err:  # noqa: BLE001 - any error in student code becomes a message
            error = f"{name} raised {type(err).__name__}: {err}"
    # a refusal first: a wrapper around the reference that then crashes is a delegation, not a crash
    if refuse_mode is not None and refuse_mode.hits:
        fail(f"{short} calls {refuse_mode.hits[0]}, which this exercise re-implements. {instead}".strip())
    if watch.hits:
        fail(f"{short} calls {watch.hits[0]}, the reference it is compared with: write your own code "
             "(dcgan_ref is what the check compares your answer with).")
    if error is not None:
        fail(error)
    origin = reference_origin(result)
    if origin is not None:
        fail(f"{short} returned an object built by {origin}, the reference it is compared with: build your own.")
    for w in caught[:3]:
        print(f"note: {short} issued a {w.category.__name__}: {w.message}")
    return result


class Outcome(TypedDict, total=False):
    """What ``attempt`` records, as plain data: ``{"value": <plain copy>}`` or ``{"error": "<message>"}``."""

    value: Any
    error: str


def attempt(fn: Any, *args: Any, **kwargs: Any) -> Outcome:
    """``call`` that records the outcome as plain data instead of failing at once (probe side).

    ``{"value": <plain copy of the result>}`` or ``{"error": "<message>"}``; the judge turns it
    back with ``unwrap``, so failures are reported in the order the judge checks the cases.
    """
    try:
        return {"value": to_plain(call(fn, *args, **kwargs))}
    except CheckFailure as err:
        return {"error": str(err)}


def unwrap(outcome: Any) -> Any:
    """The value of an ``attempt`` outcome (judge side); its error message fails the check."""
    if type(outcome) is not dict or ("value" not in outcome and "error" not in outcome):
        fail("the probe returned no outcome for this call.")
    if "error" in outcome:
        fail(str(outcome["error"]))
    return outcome["value"]


def expect_tensor(value: Any, what: str) -> torch.Tensor:
    """Fail unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        fail(f"{what} should be a torch.Tensor, got {type_name(value)}.")
    return value


def expect_plain_tensor(value: Any, what: str) -> torch.Tensor:
    """Judge side: fail unless ``value`` is exactly a ``torch.Tensor`` (a numpy array, a list: named)."""
    if type(value) is not torch.Tensor:
        fail(f"{what} returned a {type_name(value)}, expected a torch.Tensor.")
    return value


def expect_shape(
    value: Any, expected: Sequence[int], what: str, hint: str | None = None
) -> torch.Tensor:
    """Fail with 'output is (1, 64, 15, 15), expected (1, 64, 16, 16): <hint>' on a wrong shape."""
    t = expect_tensor(value, what)
    if tuple(t.shape) != tuple(expected):
        msg = f"{what} has shape {tuple(t.shape)}, expected {tuple(expected)}"
        fail(msg + (f": {hint}" if hint else "."))
    return t


@judge_only
def expect_close(
    actual: Any,
    expected: torch.Tensor,
    what: str,
    *,
    rtol: float,
    atol: float,
    hint: str | None = None,
) -> None:
    """Compare with the reference: shape first, then values; say where and by how much they differ.

    The closeness rule is ``_compare.disagree``'s (NaN or inf where the reference has none fails)."""
    from ._compare import disagree

    a = expect_shape(actual, expected.shape, what, hint)
    if a.dtype.is_complex != expected.dtype.is_complex:
        fail(f"{what} has dtype {a.dtype}, expected {expected.dtype}.")
    a64 = a.detach().to("cpu", torch.float64)
    e64 = expected.detach().to("cpu", torch.float64)
    if torch.isnan(a64).any() and not torch.isnan(e64).any():
        fail(f"{what} contains NaN where the reference has none" + (f": {hint}" if hint else "."))
    diff = (a64 - e64).abs()
    bad = disagree(a64, e64, rtol=rtol, atol=atol)
    if bad.any():
        idx = tuple(int(i) for i in (bad.nonzero()[0]))
        msg = (
            f"{what} differs from the reference at {idx}: got {a64[idx].item():.6g}, "
            f"expected {e64[idx].item():.6g} (max abs difference {diff.max().item():.3g}, "
            f"{int(bad.sum())} of {bad.numel()} values off)"
        )
        fail(msg + (f": {hint}" if hint else "."))


# --- exercises: cases (grader) -> probe (student's process) -> judge (grader) ---


def default_cases(hidden: bool) -> dict[str, Any]:
    """Cases of an exercise whose probe draws its own inputs from fixed seeds."""
    return {"hidden": hidden}


@dataclass(frozen=True)
class Exercise:
    """One graded exercise, split where the trust boundary runs (see the module docstring).

    ``probe(*student_objects, cases)`` returns plain data (``_plain.to_plain`` is applied to it);
    ``judge(cases, data)`` returns the one-line success message or raises ``CheckFailure``.
    """

    name: str
    probe: Callable[..., Any]
    judge: Callable[[Any, Any], str]
    cases: Callable[[bool], Any] = default_cases

    def run_probe(self, objects: Sequence[Any], cases: Any) -> Any:
        """Probe side: run the probe, return its plain data."""
        return to_plain(self.probe(*objects, cases))

    def check(self, *objects: Any, hidden: bool = False) -> None:
        """What a test cell calls: the whole round trip in this process (instant feedback)."""
        cases = self.cases(hidden)
        # through the same serialisation as the trusted grader, so both see identical data
        data = loads(dumps(self.run_probe(objects, loads(dumps(cases)))))
        message = self.judge(cases, data)
        passed(str(message) + (" (hidden tests)" if hidden and "hidden" not in str(message) else ""))


def exercise(
    name: str,
    probe: Callable[..., Any],
    judge: Callable[[Any, Any], str],
    cases: Callable[[bool], Any] = default_cases,
) -> Callable[..., None]:
    """The ``check_<name>(*student_objects, hidden=False)`` function a test cell calls.

    The returned function carries the ``Exercise`` as ``.exercise``: the trusted grader finds the
    probe and the judge through it.
    """
    ex = Exercise(name, probe, judge, cases)

    def check(*objects: Any, hidden: bool = False) -> None:
        ex.check(*objects, hidden=hidden)

    check.__name__ = f"check_{name}"
    check.__qualname__ = check.__name__
    check.__doc__ = (probe.__doc__ or "") + "\n" + (judge.__doc__ or "")
    check.exercise = ex  # type: ignore[attr-defined]
    return check


# --- modules as plain data: what a probe sends about a student's nn.Module ---

#: configuration attributes of torch layers a judge may look at
LAYER_ATTRS = (
    "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "output_padding",
    "padding_mode", "num_features", "eps", "momentum", "affine", "track_running_stats", "negative_slope",
    "inplace", "p", "in_features", "out_features", "dim", "start_dim", "end_dim", "unflattened_size",
    "scale_factor", "mode", "size", "alpha", "min_val", "max_val", "threshold", "value", "num_parameters",
    "lower", "upper", "approximate", "output_size", "normalized_shape", "num_groups", "num_channels",
)


def describe_module(module: Any) -> list[dict[str, Any]]:
    """Probe side: every submodule of ``module`` (``named_modules`` order) as plain data.

    Each entry: ``name`` (dotted path, "" for the root), ``type`` and ``mro`` (qualified class
    names, so a judge can test ``isinstance`` against the real torch classes without the object),
    ``children`` (count), ``training``, ``attrs`` (the ``LAYER_ATTRS`` it has), ``params`` and
    ``buffers`` (its own, by name, as tensors; None for an unset bias).
    """
    out: list[dict[str, Any]] = []
    for name, m in module.named_modules():
        cls = type(m)
        attrs: dict[str, Any] = {}
        for key in LAYER_ATTRS:
            try:
                if key in vars(m) or any(key in vars(k) for k in cls.__mro__[:-1]):
                    attrs[key] = to_plain(getattr(m, key))
            except Exception:  # noqa: BLE001 - a property that raises is just not described
                continue
        out.append({
            "name": name,
            "type": qualname(cls),
            "mro": [qualname(k) for k in cls.__mro__],
            "children": len(list(m.children())),
            "training": bool(m.training) if type(m.training) is bool else None,
            "attrs": attrs,
            "params": {n: (None if p is None else to_plain(p)) for n, p in m._parameters.items()},
            "buffers": {n: (None if b is None else to_plain(b)) for n, b in m._buffers.items()},
        })
    return out


class Layer:
    """Judge side: one entry of ``describe_module``, with ``isa`` instead of ``isinstance``."""

    def __init__(self, entry: dict[str, Any]) -> None:
        self.entry = entry
        self.name: str = entry["name"]
        self.attrs: dict[str, Any] = entry["attrs"]
        self.params: dict[str, Any] = entry["params"]
        self.buffers: dict[str, Any] = entry["buffers"]

    @property
    def type_name(self) -> str:
        """The class name (``Conv2d``)."""
        return str(self.entry["type"]).rsplit(".", 1)[-1]

    def isa(self, *classes: type) -> bool:
        """``isinstance(layer, classes)``, decided from the qualified names of its classes."""
        return any(qualname(c) in self.entry["mro"] for c in classes)

    def __getattr__(self, key: str) -> Any:
        attrs = self.__dict__.get("attrs", {})
        if key in attrs:
            return attrs[key]
        raise AttributeError(key)

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.attrs.items() if k in ("in_channels", "out_channels", "kernel_size",
                                                               "stride", "padding", "num_features",
                                                               "negative_slope", "p", "in_features",
                                                               "out_features")}
        return f"{self.type_name}({', '.join(f'{k}={v}' for k, v in shown.items())})"


def leaf_layers(description: list[dict[str, Any]], ignore: Sequence[type] = ()) -> list[Layer]:
    """Judge side: the leaf layers (no children) of a ``describe_module`` list, ``ignore`` left out."""
    layers = [Layer(e) for e in description if e["children"] == 0]
    return [m for m in layers if not (ignore and m.isa(*ignore))]
