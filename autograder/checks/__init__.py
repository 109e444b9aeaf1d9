"""One module per lesson (``lesson01``, ...), one ``check_<exercise>`` function per exercise."""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import importlib.util
import pkgutil
import sys
from collections.abc import Iterable

#: what torch imports the first time a check computes a shape on the meta device or fails a ``torch._check``
#: (``symbolic_shapes``, with sympy: 0.45 s), whichever the lesson: ``import_lessons`` imports it on every call
SERVER_IMPORTS = ("torch.fx.experimental.symbolic_shapes",)
_imported: set[tuple[str, bool]] = set()  # (module, with its judges' imports) done in this process


@functools.cache
def lesson_modules() -> tuple[str, ...]:
    """The package's lesson check modules (``autograder.checks.lesson01``, ...); listed once per process (a server
    asks on every request)."""
    return tuple(f"{__name__}.{i.name}" for i in pkgutil.iter_modules(__path__) if i.name.startswith("lesson"))


def _judge_imports(module: str) -> list[str]:
    """What ``module``'s functions import when they run (a judge's ``from dcgan_ref import ...``): the
    imports in its source below module level, absolute ones only."""
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        return []
    with open(spec.origin, encoding="utf-8") as f:
        tree = ast.parse(f.read())
    top = set(tree.body)
    names: list[str] = []
    for node in ast.walk(tree):
        if node in top:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:  # what it names may be a module
            names += [node.module, *(f"{node.module}.{a.name}" for a in node.names if a.name != "*")]
    return sorted(set(names))


def import_lessons(names: Iterable[str] | None = None, *, judge: bool = False) -> None:
    """Import lesson check modules once in a server that forks judges or workers, so that no fork imports
    them again (a lesson's costs a fresh process 0.3 s, lesson 08's torchvision 1.3 s): ``names`` (those
    that are this package's lesson modules; others are ignored), or every lesson's, each with the modules
    torch imports when its checks run (its ``SERVER_IMPORTS``, and this package's for every lesson).
    ``judge``: also what its functions import (``dcgan_ref``'s reference modules), which a judge needs and
    a student's worker does not. A server asked only for lesson 01 never pays for lesson 08's imports.
    They hold no hidden value at import: those are drawn when a check runs, from the secret each judge is
    given (and ``_secret.reset`` in every judge drops anything cached)."""
    for module in SERVER_IMPORTS:  # a dictionary lookup after the first call
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    known = lesson_modules()
    for name in known if names is None else [n for n in names if n in known]:
        if (name, judge) in _imported:
            continue
        _imported.add((name, judge))
        try:
            module = importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - the forked process imports it again and says why
            continue
        extra = [str(m) for m in getattr(module, "SERVER_IMPORTS", ()) if type(m) is str]
        for other in extra + (_judge_imports(name) if judge else []):
            with contextlib.suppress(Exception):
                importlib.import_module(other)


def report_run_time_imports(before: set[str], where: str) -> None:
    """``AUTOGRADER_DEBUG``'s line for a course author: the modules a probe child or a judge imported while it
    ran (each fork pays for them again: a lesson's ``SERVER_IMPORTS`` lists them). Silent when there are none."""
    new = sorted(set(sys.modules) - before)
    if new:
        print(f"autograder {where}: imported while it ran: {', '.join(new[:8])}{' ...' if len(new) > 8 else ''} "
              "(list them in the lesson's SERVER_IMPORTS)", file=sys.__stderr__, flush=True)
