"""Imported at the start of every grading kernel (nbgrader autograde and ``python -m autograder check``).

It sends warnings to stdout as one line each: nbgrader scores a graded cell zero when the cell
writes anything to stderr, and a warning (a torch ``UserWarning`` from a correct answer, a
``DeprecationWarning`` after a library upgrade) is not a wrong answer. The source line Python
normally prints under a warning is left out, so no test-cell line can show up this way.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any, TextIO


def _showwarning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """``warnings.showwarning`` replacement: ``UserWarning: message`` on stdout."""
    sys.stdout.write(f"{category.__name__}: {message}\n")


def install() -> Any:
    """Route warnings to stdout; returns the previous ``warnings.showwarning``."""
    previous = warnings.showwarning
    warnings.showwarning = _showwarning
    return previous


install()
