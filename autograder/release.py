"""``lessons/`` from ``solutions/``: nbgrader generate_assignment for every lesson, then normalised.

``python -m autograder release`` (``make lessons``) runs ``nbgrader generate_assignment --force
--no-db`` over every ``solutions/NN_name`` folder; ``python -m autograder generate`` does the same
and records the assignments (notebooks, test cells with their hidden tests, points) in
``autograder/gradebook.db``, which ``nbgrader autograde`` needs. Both write the same ``lessons/``.
Both first stamp the setup cell of the current release into the source notebooks
(``autograder.distribution.stamp_setup_cells``), so every lesson installs the release it belongs to.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import nbformat

from autograder import course
from autograder.distribution import stamp_setup_cells

#: notebook-level metadata an editor may leave in a source notebook that has no place in a lesson
DROP_NOTEBOOK_METADATA = ("widgets", "colab", "accelerator", "toc", "varInspector")
DROP_CELL_METADATA = ("execution", "colab", "outputId", "executionInfo", "collapsed", "scrolled")


def normalize_release(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Make a generated student notebook independent of the editor that last saved its source.

    Drops run-time metadata (widget state, timings, Colab ids) and any outputs; leaves cell ids,
    sources and nbgrader metadata exactly as nbgrader wrote them.
    """
    for key in DROP_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    for cell in nb.cells:
        for key in DROP_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def normalize_tree(release_dir: Path, names: Sequence[str]) -> list[Path]:
    """Normalise every generated notebook of ``names`` under ``release_dir``; returns the files rewritten."""
    changed = []
    for name in names:
        for path in sorted((release_dir / name).glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            before = nbformat.writes(nb)
            after = nbformat.writes(normalize_release(nb))
            if after != before:
                path.write_text(after, encoding="utf-8")
                changed.append(path)
    return changed


def generate(
    names: Sequence[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    release_dir: str | os.PathLike[str] | None = None,
    database: bool = False,
    quiet: bool = False,
    stamp: bool | None = None,
) -> list[str]:
    """Generate the student notebooks of ``names`` (default: every lesson); returns the names.

    ``database=True`` also records them in the gradebook (the instructor's "generate" step).
    ``release_dir`` (default ``lessons/`` of the course) lets tests generate elsewhere.
    ``stamp`` rewrites the source notebooks' setup cells to the current release first; by default
    only for the course's own ``lessons/`` (``python -m autograder release``, ``make lessons``), so
    a test that passes ``root`` or ``release_dir`` never writes to ``solutions/``.
    """
    root_path = course.course_root(root)
    names = list(names) if names else course.assignments(root_path)
    if not names:
        raise SystemExit(f"no lessons found under {root_path / course.SOURCE_DIR}")
    missing = [n for n in names if not course.source_notebook(n, root_path).exists()]
    if missing:
        raise SystemExit(f"no source notebook for {', '.join(missing)} under {root_path / course.SOURCE_DIR}")
    if stamp is None:
        stamp = root is None and release_dir is None
    if stamp:
        stamp_setup_cells(root_path, names)
    out = Path(release_dir).resolve() if release_dir else root_path / course.RELEASE_DIR
    extra = [] if release_dir is None else [f"--CourseDirectory.release_directory={out}"]
    flags = ["--force"] + ([] if database else ["--no-db"]) + extra
    if quiet:
        flags.append("--log-level=WARN")
    # one nbgrader process for all lessons when we can (it starts in seconds, not milliseconds)
    if len(names) == len(course.assignments(root_path)):
        course.run_nbgrader(["generate_assignment", "*", *flags], root_path)
    else:
        for name in names:
            course.run_nbgrader(["generate_assignment", name, *flags], root_path)
    normalize_tree(out, names)
    return names
