"""(a) and (b) of the instructor pipeline for every lesson, with the real nbgrader commands.

Each lesson's solution notebook, submitted as is, gets full marks from ``nbgrader autograde`` and
its untouched student notebook gets zero, without crashing, in a fresh gradebook of a throw-away
copy of the course; ``nbgrader export`` reports both. Lesson 01 (mixed, Colab-saved and tampered
submissions as well) is in test_nbgrader_pipeline.py.
"""

from __future__ import annotations

import csv

import nbformat
import pytest
from course_fixture import MIXED_LESSON, build_course, cell_points, gradebook_scores, nbgrader

from autograder import course

pytestmark = pytest.mark.slow
LESSONS = [a for a in course.assignments() if a != MIXED_LESSON]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = build_course(tmp_path_factory.mktemp("course"), with_real_lessons=True)
    nbgrader(root, "generate_assignment", "*", "--force", "--log-level=WARN")
    submitted = root / "autograder" / "submitted"
    for a in LESSONS:
        for student, path in (("solution", course.source_notebook(a, root)),
                              ("untouched", course.release_notebook(a, root))):
            dest = submitted / student / a / f"{a}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(nbformat.read(path, as_version=4), dest)
    nbgrader(root, "autograde", "*", "--force")
    nbgrader(root, "export", "--log-level=WARN")
    return root


@pytest.mark.skipif(not LESSONS, reason="no lesson besides lesson 01 yet")
@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_full_and_untouched_zero(run, lesson):
    scores = gradebook_scores(run)
    points = sum(cell_points(nbformat.read(course.source_notebook(lesson, run), as_version=4)).values())
    assert scores[(lesson, "solution")] == (points, points, False)
    assert scores[(lesson, "untouched")] == (0.0, points, False)
    rows = {(r["assignment"], r["student_id"]): float(r["raw_score"])
            for r in csv.DictReader(open(run / "autograder" / "grades.csv"))}
    assert rows[(lesson, "solution")] == points and rows[(lesson, "untouched")] == 0
