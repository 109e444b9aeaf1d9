"""Print pip constraints that pin every requirement of pyproject.toml to its lower bound.

``make test-oldest`` installs the package with these constraints, so the oldest versions the
package claims (``>=X``) are the versions the tests run on. Usage::

    python tools/lower_bounds.py [EXTRA ...] > constraints.txt
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the copy pip vendors
    from pip._vendor import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
_REQ = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*(.*)$")


def lower_bound(requirement: str) -> str | None:
    """``name==X`` for a requirement with ``>=X`` (markers dropped), else None."""
    m = _REQ.match(requirement.split(";", 1)[0])
    if not m:
        return None
    name, spec = m.group(1), m.group(3)
    low = re.search(r">=\s*([0-9][A-Za-z0-9.]*)", spec)
    return f"{name}=={low.group(1)}" if low else None


def constraints(extras: list[str], pyproject: Path = ROOT / "pyproject.toml") -> list[str]:
    """The lower-bound pins of the core dependencies and of ``extras``."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in extras:
        reqs += project["optional-dependencies"][extra]
    return [pin for pin in map(lower_bound, reqs) if pin]


if __name__ == "__main__":
    print("\n".join(constraints(sys.argv[1:])))
