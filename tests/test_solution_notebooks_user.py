"""Every solution notebook scores full marks under the ``user`` containment with OMP_NUM_THREADS=2 too;
every lesson, untouched, scores 0.

The second setting of tests/solution_grading.py, in a file of its own so that a second test process
grades it while the first grades the bwrap one (tests/test_solution_notebooks.py).
"""

from __future__ import annotations

import pytest
from solution_grading import SETTINGS, assert_full_marks

from autograder import course
from autograder.grade import grade_notebook

LESSONS = course.assignments()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not LESSONS, reason="no lesson in solutions/ yet")]
USER = "user, OMP_NUM_THREADS=2"


@pytest.mark.parametrize("setting", [USER])
@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_scores_full_marks(lesson, setting):
    assert_full_marks(lesson, *SETTINGS[setting])


@pytest.mark.parametrize("lesson", LESSONS)
def test_student_lesson_scores_zero_without_crashing(lesson):
    path = course.release_notebook(lesson)
    assert path.exists(), f"{path} is missing: run `make lessons`"
    report = grade_notebook(path)
    assert report.max_score > 0
    assert report.score == 0, [(c.grade_id, c.points) for c in report.cells if c.points]
    assert not report.repairs, [r.message for r in report.repairs]
    # every test cell ran and failed with a message; none hung
    assert all(c.status in ("failed", "error") for c in report.cells), [(c.grade_id, c.status) for c in report.cells]
    assert not report.full_marks
