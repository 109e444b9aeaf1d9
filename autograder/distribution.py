"""How the course reaches students: the package, its one version, where it is published, the setup cell.

Every lesson's first code cell (grade id ``setup``) installs exactly the release the lesson was
generated with: ``dcgan-course==<version>`` from PyPI when the runtime lacks the package, else
(a course that is not published) the repository at the tag ``v<version>``. ``python -m autograder
release`` (``make lessons``) stamps that cell into every ``solutions/*/*.ipynb`` before it generates
``lessons/``, so a lesson and the checks it runs always belong to the same release. The README's
Colab badges and install lines follow from the same constants (tests/test_distribution.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dcgan_ref._version import __version__

#: the distribution name on PyPI (``pip install dcgan-course``)
PACKAGE = "dcgan-course"
#: the release lessons are generated for: the one version, from ``dcgan_ref/_version.py``
VERSION = __version__
#: the fallback install source (at the release's tag) and the home of the Colab badges
REPOSITORY = "https://github.com/dcgan-course/dcgan-course"
#: the oldest torch and torchvision the course runs on: the lower bounds in pyproject.toml, the
#: versions ``make test-oldest`` runs the lessons on (lesson 08 needs fused Adam on the CPU, 2.4)
MIN_TORCH = "2.4"
MIN_TORCHVISION = "0.19"
#: grade id (and cell id) of every lesson's setup cell, the first code cell
SETUP_CELL_ID = "setup"

COLAB = "https://colab.research.google.com/github"


def release_tag(version: str = VERSION) -> str:
    """The git tag of a release: ``v<version>``."""
    return f"v{version}"


def requirement(version: str = VERSION) -> str:
    """The release on PyPI, by name: ``dcgan-course==<version>``."""
    return f"{PACKAGE}=={version}"


def fallback_requirement(version: str = VERSION) -> str:
    """The same release from the repository at its tag, for a course not published on PyPI."""
    return f"{PACKAGE} @ git+{REPOSITORY}.git@{release_tag(version)}"


def colab_url(lesson: str, version: str = VERSION) -> str:
    """Colab's address of the released student notebook of ``lesson`` at the release's tag."""
    repo = REPOSITORY.removeprefix("https://github.com/")
    return f"{COLAB}/{repo}/blob/{release_tag(version)}/lessons/{lesson}/{lesson}.ipynb"


def _release(version: str) -> tuple[int, ...]:
    """``"2.4.1+cu121"`` -> ``(2, 4, 1)``: the numeric release part of a version."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0].split("rc")[0])[:3])


def too_old(installed: dict[str, str | None]) -> list[str]:
    """What of ``{"torch": "2.3.1", "torchvision": None}`` is older than the course needs, as "torch 2.3.1".

    None (not installed) is not reported here: the import fails with its own message.
    """
    needed = {"torch": MIN_TORCH, "torchvision": MIN_TORCHVISION}
    return [f"{name} {have}" for name, have in installed.items()
            if have is not None and name in needed and _release(have) < _release(needed[name])]


def upgrade_hint(old: list[str]) -> str:
    """One line: what is too old and the pip command that upgrades it."""
    pins = f"'torch>={MIN_TORCH}' 'torchvision>={MIN_TORCHVISION}'"
    return f"WARNING: {', '.join(old)} is older than this course needs; upgrade: pip install {pins}"


def setup_cell_source(version: str = VERSION) -> str:
    """The source of every lesson's setup cell for ``version``.

    Installs the release by name when ``dcgan_ref`` is missing (Colab), falls back to the
    repository at the release's tag, prints the version the runtime has and warns on stdout
    (nbgrader zeroes cells that write to stderr) when that is not the lesson's release. pip
    installs nothing that is already satisfied: Colab's torch, torchvision and ipywidgets stay.
    """
    return f'''\
# Setup: run this cell first. It installs release {version} of the course package, the one this
# lesson belongs to, when the runtime lacks it; Colab's torch, torchvision and ipywidgets stay.
import importlib, importlib.util, subprocess, sys
COURSE_RELEASE = "{version}"
COURSE_PACKAGE = "{requirement(version)}"
# fallback for a course not published on PyPI: the repository at this release's tag
COURSE_FALLBACK = "{fallback_requirement(version)}"
if importlib.util.find_spec("dcgan_ref") is None:
    for _source in (COURSE_PACKAGE, COURSE_FALLBACK):
        print(f"installing {{_source}} ...")
        _pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", _source],
                              capture_output=True, text=True)
        if _pip.returncode == 0:
            break
        print(f"could not install {{_source}}: {{(_pip.stderr or _pip.stdout).strip()[-300:]}}")
    else:
        raise RuntimeError(f"could not install the course package: pip install {{COURSE_PACKAGE}}")
    importlib.invalidate_caches()
import dcgan_ref
print(f"dcgan-course {{dcgan_ref.__version__}}; this lesson belongs to {{COURSE_RELEASE}}")
if dcgan_ref.__version__ != COURSE_RELEASE:
    print(f"WARNING: the checks here come from dcgan-course {{dcgan_ref.__version__}}, not from this "
          f"lesson's release: run `pip install {{COURSE_PACKAGE}}` and restart the runtime.")
from autograder.notebook import setup, grading
DEVICE = setup()'''


def setup_cell(nb: Any) -> Any:
    """The setup cell of a source or lesson notebook: its first code cell, a locked ``setup`` cell.

    Raises ValueError when the first code cell is not that cell (see autograder/AUTHORING.md).
    """
    cell = next((c for c in nb.cells if c.cell_type == "code"), None)
    meta = cell.metadata.get("nbgrader", {}) if cell is not None else {}
    if cell is None or meta.get("grade_id") != SETUP_CELL_ID:
        raise ValueError(f"the first code cell must be the setup cell (grade id {SETUP_CELL_ID!r})")
    if meta.get("solution") or meta.get("grade") or not meta.get("locked"):
        raise ValueError("the setup cell must be locked, neither an answer nor a test cell")
    return cell


def stamp_setup_cells(
    root: str | os.PathLike[str] | None = None,
    names: Sequence[str] | None = None,
    version: str = VERSION,
) -> list[Path]:
    """Rewrite the setup cell of every source notebook (or of ``names``) to ``setup_cell_source(version)``.

    Only the cell's source changes, and only notebooks whose cell differs are written. Returns
    the files rewritten.
    """
    import nbformat

    from autograder import course

    source = setup_cell_source(version)
    changed = []
    for name in names or course.assignments(root):
        path = course.source_notebook(name, root)
        nb = nbformat.read(path, as_version=4)
        try:
            cell = setup_cell(nb)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        if cell.source != source:
            cell.source = source
            nbformat.write(nb, path)
            changed.append(path)
    return changed
