"""Building blocks shared by every lesson's checks.

A check is a plain function ``check_<exercise>(student_object, hidden=False)`` that compares the
student's work with ``dcgan_ref`` on inputs drawn from fixed seeds, raises ``CheckFailure`` with
a message that says what was expected, what came back and the likely mistake, and prints one
line when everything passes. Messages never rely on pytest's assertion rewriting (it does not
run inside a Jupyter kernel), and a failure renders as its message alone, without a traceback
(IPython calls ``_render_traceback_``), so no test-cell source is ever shown.
"""

from __future__ import annotations

import contextlib
import inspect
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn

import torch

PASS_MARK = "\u2714"  # heavy check mark
FAIL_MARK = "\u2718"  # heavy ballot x


class CheckFailure(AssertionError):
    """A failed check. Its message is all a student needs to see."""

    def _render_traceback_(self) -> list[str]:  # IPython: replaces the traceback
        return [f"{FAIL_MARK} {self}"]


_INHERITED = object()  # marker: the patched attribute lived on a base class


class DelegationError(RuntimeError):
    """Raised by a forbidden built-in while the student's code runs."""


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


def call(fn: Any, *args: Any, what: str | None = None, **kwargs: Any) -> Any:
    """Call the student's ``fn``; turn anything it raises into a message about their code.

    Warnings it emits are reported on stdout instead of stderr, so a harmless torch
    ``UserWarning`` does not cost points under nbgrader.
    """
    name = what or getattr(fn, "__name__", "your code")
    if fn is None:
        fail(f"{name} is not defined: run the cell where you wrote it first.")
    if not callable(fn):
        fail(f"{name} should be a function or class, got {type(fn).__name__}.")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = fn(*args, **kwargs)
        except CheckFailure:
            raise
        except DelegationError as err:
            fail(f"{name}: {err}")
        except NotImplementedError:
            fail(f"{name} is not implemented yet: replace `raise NotImplementedError()` with your code.")
        except Exception as err:  # noqa: BLE001 - any error in student code becomes a message
            fail(f"{name} raised {type(err).__name__}: {err}")
    for w in caught[:3]:
        print(f"note: {name} issued a {w.category.__name__}: {w.message}")
    return result


def expect_tensor(value: Any, what: str) -> torch.Tensor:
    """Fail unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        fail(f"{what} should be a torch.Tensor, got {type(value).__name__}.")
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


def expect_close(
    actual: Any,
    expected: torch.Tensor,
    what: str,
    *,
    rtol: float,
    atol: float,
    hint: str | None = None,
) -> None:
    """Compare with the reference: shape first, then values; say where and by how much they differ."""
    a = expect_shape(actual, expected.shape, what, hint)
    if a.dtype.is_complex != expected.dtype.is_complex:
        fail(f"{what} has dtype {a.dtype}, expected {expected.dtype}.")
    a64 = a.detach().to("cpu", torch.float64)
    e64 = expected.detach().to("cpu", torch.float64)
    if torch.isnan(a64).any() and not torch.isnan(e64).any():
        fail(f"{what} contains NaN where the reference has none" + (f": {hint}" if hint else "."))
    diff = (a64 - e64).abs()
    bad = diff > atol + rtol * e64.abs()
    if bad.any():
        idx = tuple(int(i) for i in (bad.nonzero()[0]))
        msg = (
            f"{what} differs from the reference at {idx}: got {a64[idx].item():.6g}, "
            f"expected {e64[idx].item():.6g} (max abs difference {diff.max().item():.3g}, "
            f"{int(bad.sum())} of {bad.numel()} values off)"
        )
        fail(msg + (f": {hint}" if hint else "."))


@contextlib.contextmanager
def forbid(
    targets: dict[str, tuple[Any, str]],
    exercise: str,
    instead: str,
    namespace: dict[str, Any] | None = None,
) -> Iterator[list[str]]:
    """Make built-ins raise while the student's code runs, so delegating to them fails.

    ``targets`` maps a readable name ("F.conv2d") to (owner, attribute) to patch. Names in
    ``namespace`` (the student's globals) bound to the same objects, as after
    ``from torch.nn.functional import conv2d``, are patched too. Yields the list of names that
    were called, so a student who catches the error is still caught.
    """
    called: list[str] = []
    originals: list[tuple[Any, str, Any]] = []

    def make_stub(label: str) -> Callable[..., NoReturn]:
        def stub(*args: Any, **kwargs: Any) -> NoReturn:
            called.append(label)
            raise DelegationError(
                f"it calls {label}, the built-in this exercise re-implements. {instead}"
            )

        return stub

    forbidden_ids: dict[int, str] = {}
    for label, (owner, attr) in targets.items():
        # Restore exactly what was there: the raw __dict__ entry (keeps staticmethod wrappers),
        # or nothing at all when the attribute was inherited (e.g. Tensor.relu from its C base).
        original = vars(owner).get(attr, _INHERITED) if isinstance(owner, type) else getattr(owner, attr)
        forbidden_ids[id(getattr(owner, attr))] = label
        originals.append((owner, attr, original))
        setattr(owner, attr, make_stub(label))
    if namespace is not None:
        for key, value in list(namespace.items()):
            label = forbidden_ids.get(id(value))
            if label is not None:
                originals.append((namespace, key, value))
                namespace[key] = make_stub(label)
    try:
        yield called
    finally:
        for owner, attr, original in reversed(originals):
            if isinstance(owner, dict):
                owner[attr] = original
            elif original is _INHERITED:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
    if called:
        fail(f"{exercise} calls {called[0]}, the built-in it should re-implement. {instead}")


def student_globals(fn: Any) -> dict[str, Any] | None:
    """The global namespace the student's function or class was defined in (the notebook's)."""
    if inspect.isclass(fn):
        module = sys.modules.get(fn.__module__)
        return vars(module) if module is not None else None
    return getattr(fn, "__globals__", None)
