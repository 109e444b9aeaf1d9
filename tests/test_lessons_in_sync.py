"""lessons/ is exactly what nbgrader generates from solutions/ today, and gives nothing away."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from autograder import course
from autograder.release import generate

LESSONS = course.assignments()
pytestmark = pytest.mark.skipif(not LESSONS, reason="no lesson in solutions/ yet")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every lesson generated now (one nbgrader run) into a temporary release folder."""
    out = tmp_path_factory.mktemp("release")
    generate(release_dir=out, quiet=True)
    return out


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_equals_generated(lesson, generated):
    committed = course.course_root() / course.RELEASE_DIR / lesson
    fresh = generated / lesson
    assert committed.is_dir(), f"lessons/{lesson} is missing: run `make lessons`"
    assert _files(committed) == _files(fresh), "lessons/ and solutions/ disagree on files: run `make lessons`"
    for rel in _files(fresh):
        if rel.suffix == ".ipynb":
            a = json.loads((committed / rel).read_text(encoding="utf-8"))
            b = json.loads((fresh / rel).read_text(encoding="utf-8"))
            assert a == b, f"lessons/{lesson}/{rel} is out of date: run `make lessons`"
        else:
            assert (committed / rel).read_bytes() == (fresh / rel).read_bytes(), f"{rel} is out of date"


def _regions(source: str, begin: str, end: str) -> list[str]:
    out, inside = [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
        elif end in line:
            inside = False
        elif inside:
            out.append(line)
    return out


def _secret_lines(src: nbformat.NotebookNode) -> set[str]:
    """Lines only found inside solution or hidden-test regions of the source notebook."""
    secret, public = set(), set()
    for cell in src.cells:
        regions = _regions(cell.source, "BEGIN SOLUTION", "END SOLUTION") + _regions(
            cell.source, "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
        )
        secret.update(ln.strip() for ln in regions)
        stripped = re.sub(r"### BEGIN (SOLUTION|HIDDEN TESTS).*?### END (SOLUTION|HIDDEN TESTS)", "", cell.source,
                          flags=re.S)
        public.update(ln.strip() for ln in stripped.split("\n"))
    # short or generic lines ("return out", "import sys") may well appear in the lesson's own text
    return {ln for ln in secret - public if len(ln) >= 12 and not ln.startswith("#")}


@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_reveals_no_solution_or_hidden_test(lesson):
    src = nbformat.read(course.source_notebook(lesson), as_version=4)
    path = course.release_notebook(lesson)
    assert path.exists(), f"{path} is missing: run `make lessons`"
    text = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text
    lines = {ln.strip() for ln in text.split("\n")}
    leaked = sorted(_secret_lines(src) & lines)
    assert not leaked, f"lessons/{lesson} shows solution or hidden-test lines: {leaked[:5]}"


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_test_cell_has_points_and_hidden_tests(lesson):
    src = nbformat.read(course.source_notebook(lesson), as_version=4)
    graded = [c for c in src.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded, "a lesson without graded test cells"
    for cell in graded:
        meta = cell.metadata["nbgrader"]
        assert float(meta.get("points", 0)) > 0, f"{meta['grade_id']} has no points"
        assert "### BEGIN HIDDEN TESTS" in cell.source, f"{meta['grade_id']} has no hidden tests"
        assert cell.get("id") == meta["grade_id"], f"cell id {cell.get('id')} != grade id {meta['grade_id']}"
