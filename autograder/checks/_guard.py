"""What the student's code may not call while a probe runs it: refused at the dispatcher, not by name.

Two watches, both active only for the duration of one call of the student's code:

- ``RefuseOps``, a ``TorchDispatchMode``: every ATen operator passes through it, whatever Python
  route reached it (``F.conv2d``, ``torch.ops.aten.convolution``, ``nn.Conv2d``, an alias, the
  autograd backward of a convolution), so an exercise that re-implements an operator refuses
  the operator itself. Families of operators are named below with the readable name a message
  uses.
- ``ReferenceWatch``, a profile hook: any call into ``dcgan_ref``'s Python code (the reference
  every check compares with) is recorded, directly, through a wrapper, ``functools.partial`` or a
  subclass. Code objects the probe itself hands to the student (a reference model passed as an
  argument) can be allowed explicitly.

Both record what they saw, so a student who catches the error is still caught. A third guard,
``judge_only``, marks the grader's own answers (reference functions, mistake recomputations): they
refuse to run while the student's code runs (``probing``), so no answer can borrow them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import CodeType, FunctionType
from typing import Any, TypeVar

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode


class DelegationError(RuntimeError):
    """Raised inside the student's code when it reaches a refused operator."""


@dataclass(frozen=True)
class OpFamily:
    """A set of ATen operators, by base name, with the name a student knows them by."""

    label: str
    match: Callable[[str], bool]

    def __or__(self, other: OpFamily) -> OpFamily:
        return OpFamily(f"{self.label} or {other.label}", lambda n: self.match(n) or other.match(n))


def _names(*names: str) -> Callable[[str], bool]:
    wanted = set(names)
    return lambda n: n in wanted


#: every convolution kernel, forward, transposed (its ``transposed`` flag) and backward
CONVOLUTION = OpFamily(
    "a built-in convolution (F.conv2d / F.conv_transpose2d / nn.Conv2d, aten.convolution and its backward)",
    lambda n: "conv" in n and "convert" not in n,
)
#: unfold/fold (im2col/col2im): allowed in the convolution exercises, refused where they would shortcut
UNFOLD = OpFamily("F.unfold / F.fold (aten.im2col / aten.col2im)", _names("im2col", "col2im", "im2col_backward"))
#: batch/instance/layer/group normalisation kernels (a layer norm over permuted axes is a batch norm)
NORMALIZATION = OpFamily(
    "a built-in normalisation (F.batch_norm / nn.BatchNorm2d / F.layer_norm / F.instance_norm / F.group_norm)",
    lambda n: any(k in n for k in ("batch_norm", "layer_norm", "group_norm", "instance_norm", "rms_norm")),
)
#: sigmoid, tanh and every operator that computes one of them in disguise (softmax of [x, 0],
#: silu(x)/x, glu, softplus's gradient, log-sigmoid)
SIGMOID_TANH = OpFamily(
    "a built-in sigmoid or tanh (torch.sigmoid / torch.tanh / F.softmax / F.silu / F.softplus / F.glu / F.logsigmoid)",
    lambda n: any(k in n for k in ("sigmoid", "tanh", "softmax", "silu", "softplus", "glu", "mish", "expit")),
)
#: ReLU and its relatives that give a ReLU or LeakyReLU for some argument
RELU = OpFamily(
    "a built-in ReLU (torch.relu / F.relu / F.leaky_relu / F.threshold / torch.prelu / F.rrelu / F.elu)",
    lambda n: "relu" in n or "threshold" in n or n in ("elu", "elu_", "celu", "celu_", "selu", "elu_backward"),
)
#: the binary cross-entropy kernels and the losses that compute one for some argument
BCE = OpFamily(
    "a built-in cross-entropy (F.binary_cross_entropy / BCEWithLogitsLoss / F.cross_entropy / F.nll_loss / "
    "F.soft_margin_loss / F.logsigmoid / F.softplus)",
    lambda n: any(k in n for k in ("binary_cross_entropy", "nll_loss", "cross_entropy", "soft_margin",
                                   "log_sigmoid", "softplus", "log_softmax")),
)
#: every tensor operator: for exercises that are plain integer arithmetic (output sizes)
ANY_TENSOR_OP = OpFamily("a tensor operation (this exercise is integer arithmetic only)", lambda n: True)


class EagerDispatchMode(TorchDispatchMode):
    """A dispatch mode whose ``__torch_dispatch__`` torch leaves unwrapped (its documented opt-out): the
    wrapper would import ``torch._dynamo`` (890 modules, as long as importing torch) in every probe."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        return False


class RefuseOps(EagerDispatchMode):
    """Refuse the operators of ``families`` while active; ``hits`` lists what was attempted."""

    def __init__(self, families: Iterable[OpFamily], instead: str = "") -> None:
        super().__init__()
        self.families = list(families)
        self.instead = instead
        self.hits: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        name = func._overloadpacket.__name__
        for family in self.families:
            if family.match(name):
                self.hits.append(f"{family.label} [aten.{name}]")
                raise DelegationError(f"it calls {family.label}, which this exercise re-implements. {self.instead}")
        return func(*args, **(kwargs or {}))


class NoAutograd(TorchFunctionMode):
    """Refuses ``Tensor.backward`` / ``torch.autograd.grad`` (and what calls them: torch.func, functional
    jacobians) while active: a derivative computed by autograd is not a derivative written by hand.
    ``hits`` records the attempts, so a student who catches the error is still caught."""

    REFUSED: dict[Any, str] = {}

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[str] = []
        if not NoAutograd.REFUSED:
            NoAutograd.REFUSED.update({torch.autograd.grad: "torch.autograd.grad",
                                       torch.autograd.backward: "torch.autograd.backward",
                                       torch.Tensor.backward: "Tensor.backward"})

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        label = NoAutograd.REFUSED.get(func)
        if label is not None:
            self.hits.append(label)
            raise DelegationError(f"it calls {label}: autograd computes the derivative this exercise asks you to "
                                  "write.")
        return func(*args, **(kwargs or {}))


def _package_dir(name: str) -> tuple[str, ...]:
    module = sys.modules.get(name)
    if module is None:
        try:
            module = __import__(name)
        except ImportError:
            return ()
    path = os.path.dirname(os.path.abspath(module.__file__ or ""))
    return tuple({path + os.sep, os.path.realpath(path) + os.sep})


REFERENCE_PACKAGE = "dcgan_ref"


def _code_name(code: CodeType) -> str:
    qual = getattr(code, "co_qualname", code.co_name)
    base = os.path.splitext(os.path.basename(code.co_filename))[0]
    return f"{REFERENCE_PACKAGE}.{base}.{qual}"


class ReferenceWatch:
    """Record every call into ``dcgan_ref``'s Python code while active (a profile hook, all threads)."""

    def __init__(self, allow: Iterable[Any] = ()) -> None:
        self.prefixes = _package_dir(REFERENCE_PACKAGE)
        self.allowed: set[CodeType] = set()
        for obj in allow:
            self.allowed |= set(_codes_of(obj))
        self.hits: list[str] = []
        self._previous: Any = None

    def _hook(self, frame: Any, event: str, arg: Any) -> None:
        if event != "call":
            return
        code = frame.f_code
        if code.co_filename.startswith(self.prefixes) and code not in self.allowed:
            if len(self.hits) < 20:
                self.hits.append(_code_name(code))

    def __enter__(self) -> ReferenceWatch:
        if self.prefixes:
            self._previous = sys.getprofile()
            sys.setprofile(self._hook)
            threading.setprofile(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.prefixes:
            sys.setprofile(self._previous)
            threading.setprofile(None)  # type: ignore[arg-type]


def _codes_of(obj: Any) -> list[CodeType]:
    """Code objects of a function, a method, a class's methods (its ``forward``, ``__init__``)."""
    if isinstance(obj, CodeType):
        return [obj]
    if isinstance(obj, FunctionType):
        return [obj.__code__]
    func = getattr(obj, "__func__", None)
    if isinstance(func, FunctionType):
        return [func.__code__]
    if isinstance(obj, type):
        return [c for klass in obj.__mro__ for v in vars(klass).values() for c in _codes_of(v)
                if isinstance(v, FunctionType | staticmethod | classmethod)]
    return []


def reference_origin(value: Any) -> str | None:
    """Name of the ``dcgan_ref`` class or function ``value`` is (or is built from), else None.

    A module counts when any of its submodules' classes comes from ``dcgan_ref`` (a subclass of the
    reference, or the reference itself returned as the answer).
    """
    import functools

    from torch import nn

    try:
        while isinstance(value, functools.partial):
            value = value.func
        if isinstance(value, nn.Module):
            for m in value.modules():
                for klass in type(m).__mro__:
                    if str(getattr(klass, "__module__", "")).startswith(REFERENCE_PACKAGE):
                        return f"{klass.__module__}.{klass.__qualname__}"
            return None
        if isinstance(value, type):
            for klass in value.__mro__:
                if str(getattr(klass, "__module__", "")).startswith(REFERENCE_PACKAGE):
                    return f"{klass.__module__}.{klass.__qualname__}"
            return None
        if callable(value) and str(getattr(value, "__module__", "") or "").startswith(REFERENCE_PACKAGE):
            return f"{value.__module__}.{getattr(value, '__qualname__', type(value).__name__)}"
    except Exception:  # noqa: BLE001 - a hostile object that breaks introspection is not the reference
        return None
    return None


# --- judge_only: the grader's answers refuse to run inside the student's code ---

_F = TypeVar("_F", bound=Callable[..., Any])
#: > 0 while the student's code runs (``_core.call``); a ``judge_only`` function refuses to run then
_probing = [0]
#: > 0 while a reference put in place of an earlier exercise (``_compare.substituted``) runs
_allowed = [0]


@contextlib.contextmanager
def probing() -> Iterator[None]:
    """Mark the block as running the student's code (``_core.call`` enters it around every call)."""
    _probing[0] += 1
    try:
        yield
    finally:
        _probing[0] -= 1


def is_probing() -> bool:
    """True while the student's code runs (and no substituted reference is running for it)."""
    return _probing[0] > 0 and _allowed[0] == 0


@contextlib.contextmanager
def reference_allowed() -> Iterator[None]:
    """Let ``judge_only`` functions run inside the block: a reference the grader itself put in place of
    an earlier exercise, called by the student's later one."""
    _allowed[0] += 1
    try:
        yield
    finally:
        _allowed[0] -= 1


def judge_only(fn: _F) -> _F:
    """Mark ``fn`` as the grader's own (a reference answer, a judge, a mistake recomputed): it runs where
    the grade is decided, never inside the student's code, and ``tests/test_checks_toolkit.py`` checks
    that no probe calls it. Called while the student's code runs it raises ``DelegationError``."""
    label = f"{fn.__module__}.{fn.__qualname__}"

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        if is_probing():
            raise DelegationError(f"it calls {label}, the answer it is compared with: write it yourself.")
        return fn(*args, **kwargs)

    guarded.__judge_only__ = True  # type: ignore[attr-defined]
    return guarded  # type: ignore[return-value]


def is_judge_only(fn: Any) -> bool:
    """Whether ``fn`` carries the ``judge_only`` marker."""
    return getattr(fn, "__judge_only__", False) is True


def warm() -> None:
    """Enter each guard once on a tiny tensor, before any student code: what their first use loads lazily, every
    probe child forked afterwards inherits."""
    x = torch.ones(2, requires_grad=True)
    with RefuseOps([]), NoAutograd():
        (x * 2).sum()
    with ReferenceWatch():
        x.detach().clone()
