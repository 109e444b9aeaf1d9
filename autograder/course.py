"""Where the course lives: the nbgrader course root, its assignments, and the environment nbgrader needs.

The course root is the repository: ``solutions/NN_name/NN_name.ipynb`` (nbgrader source),
``lessons/NN_name/NN_name.ipynb`` (released student version), and under ``autograder/`` the
nbgrader config, submissions, autograded copies, feedback and the gradebook. Every function takes
an optional ``root`` so tests can run the same code on a throw-away copy of the course.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
#: The repository (nbgrader's course root) when the package is installed editable or run in place.
REPO_ROOT = PACKAGE_DIR.parent

SOURCE_DIR = "solutions"
RELEASE_DIR = "lessons"
GRADER_DIR = "autograder"
CONFIG_FILE = "nbgrader_config.py"

_ASSIGNMENT_RE = re.compile(r"^\d\d_[A-Za-z0-9_]+$")
#: optional modules that a grading tool's process would import and never use: jsonschema (which nbformat
#: imports) loads ``rfc3987_syntax`` when it is installed (jupyter-events' ``format-nongpl`` extra brings it),
#: and that builds a Lark grammar as it is imported, 1.4 CPU-seconds in every process, for IRI format checks
#: that nothing here asks for (nbformat and nbgrader validate without a format checker)
UNUSED_IMPORTS = ("rfc3987_syntax",)


def skip_unused_imports() -> None:
    """Make ``UNUSED_IMPORTS`` read as not installed in this process (unless something imported them already)."""
    for name in UNUSED_IMPORTS:
        sys.modules.setdefault(name, None)


def course_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The course root: ``root`` if given, else ``$DCGAN_COURSE_ROOT``, else the repository."""
    if root is not None:
        return Path(root).resolve()
    env = os.environ.get("DCGAN_COURSE_ROOT")
    return Path(env).resolve() if env else REPO_ROOT


def config_path(root: str | os.PathLike[str] | None = None) -> Path:
    """``autograder/nbgrader_config.py`` of the course (falls back to the package's own copy)."""
    candidate = course_root(root) / GRADER_DIR / CONFIG_FILE
    return candidate if candidate.exists() else PACKAGE_DIR / CONFIG_FILE


def assignments(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the lessons: ``solutions/NN_name/NN_name.ipynb``, or, for a course whose solutions
    stay private, ``lessons/NN_name/NN_name.ipynb``; sorted."""
    names: set[str] = set()
    for folder in (SOURCE_DIR, RELEASE_DIR):
        d = course_root(root) / folder
        if d.is_dir():
            names |= {x.name for x in d.iterdir() if _ASSIGNMENT_RE.match(x.name) and (x / f"{x.name}.ipynb").is_file()}
    if (course_root(root) / SOURCE_DIR).is_dir() and any((course_root(root) / SOURCE_DIR).iterdir()):
        return sorted(n for n in names if (course_root(root) / SOURCE_DIR / n / f"{n}.ipynb").is_file())
    return sorted(names)


def source_notebook(assignment: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The nbgrader source notebook (solutions and hidden tests) of ``assignment``."""
    return course_root(root) / SOURCE_DIR / assignment / f"{assignment}.ipynb"


def release_notebook(assignment: str, root: str | os.PathLike[str] | None = None) -> Path:
    """The released student notebook of ``assignment``."""
    return course_root(root) / RELEASE_DIR / assignment / f"{assignment}.ipynb"


def guess_assignment(path: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> str | None:
    """The lesson a submitted notebook belongs to, from its file or folder name.

    Colab downloads arrive as ``Copy of 01_strided_convolution.ipynb`` or
    ``01_strided_convolution (2).ipynb``: the longest assignment name contained in the file
    name wins, then the parent folders are tried. None when nothing matches.
    """
    p = Path(path)
    names = assignments(root)
    for part in [p.stem, *[q.name for q in p.parents][:3]]:
        hits = [a for a in names if a in part]
        if hits:
            return max(hits, key=len)
    # "01_strided_convolution" may have lost its prefix: match on the number alone
    m = re.search(r"(?<!\d)(\d\d)(?!\d)", p.stem)
    if m:
        hits = [a for a in names if a.startswith(m.group(1) + "_")]
        if len(hits) == 1:
            return hits[0]
    return None


def tool_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for nbgrader and kernels: this interpreter's ``bin/`` first on PATH.

    nbgrader shells out to ``alembic`` and the ``python3`` kernel spec runs ``python``: both
    must resolve inside the virtual environment even when it is not activated.
    """
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    parts = env.get("PATH", "").split(os.pathsep)
    if not parts or parts[0] != bindir:
        env["PATH"] = os.pathsep.join([bindir, *[p for p in parts if p and p != bindir]])
    env.setdefault("PYTHONUNBUFFERED", "1")
    if extra:
        env.update(extra)
    return env


def nbgrader_command(args: Sequence[str], root: str | os.PathLike[str] | None = None) -> list[str]:
    """``nbgrader ARGS`` with this course's config, run by this interpreter.

    nbgrader 0.9 has no ``--config`` alias; ``--JupyterApp.config_file`` takes the path without
    ``.py`` (with it, nbgrader warns that it found no config, yet loads it).
    """
    cfg = config_path(root)
    return [sys.executable, "-m", "nbgrader", *args, f"--JupyterApp.config_file={cfg.with_suffix('')}"]


def run_nbgrader(
    args: Sequence[str],
    root: str | os.PathLike[str] | None = None,
    check: bool = True,
    capture: bool = False,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run an nbgrader command from the course root with the course config and the venv on PATH."""
    return subprocess.run(
        nbgrader_command(args, root),
        cwd=course_root(root),
        env=tool_env(env),
        check=check,
        text=True,
        capture_output=capture,
    )
