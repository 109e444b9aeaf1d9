"""Every solution notebook scores full marks with `python -m autograder check`; every lesson scores 0.

Full marks under bwrap with the thread variables unset here; under the ``user`` containment with
OMP_NUM_THREADS=2, and every lesson's zero, in tests/test_solution_notebooks_user.py (two files: two
test processes share the gradings).

The one place every real lesson is graded: ``nbgrader autograde`` grades through the same trusted
grading with the same scoring rules (tests/test_grade.py compares them with nbgrader's), and
tests/test_nbgrader_pipeline.py runs it on lesson 01 and the fixture lesson.
"""

from __future__ import annotations

import os

import pytest
from solution_grading import SETTINGS, assert_full_marks, grade_of, graded, run_of

from autograder import course

LESSONS = course.assignments()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not LESSONS, reason="no lesson in solutions/ yet")]


BWRAP = "bwrap, threads unset"  # the other setting: tests/test_solution_notebooks_user.py


@pytest.mark.parametrize("setting", [BWRAP])
@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_scores_full_marks(lesson, setting):
    assert_full_marks(lesson, *SETTINGS[setting])


def test_no_probe_child_or_judge_imports_a_module_while_it_runs():
    """Every fork (a probe child, a judge) finds what it imports already imported by its server: the lesson's
    checks, what its functions and its course cells import, and its ``SERVER_IMPORTS`` (what torch or a course
    cell imports on first use: torch._dynamo through an optimizer, sklearn's digits). Otherwise every
    submission pays for it again (lesson 01's judges paid 0.4 s each for sympy, lesson 07's probe children 0.8 s
    each for sklearn)."""
    _, _, imports = run_of(LESSONS[0], *SETTINGS[BWRAP])
    assert not imports, "\n".join(imports[:10])


# --- one grade per notebook (issue 21), on the real lessons where it once differed; the fixture
# lesson under every containment and thread setting: tests/test_one_grade.py. The setting graded
# above (bwrap, threads unset) is read back, not graded again.


@pytest.mark.skipif("08_gpu_training" not in LESSONS, reason="no lesson 08")
def test_lesson08_solution_full_marks_whatever_the_thread_variables():
    """Lesson 08's checkpoint judge compares Adam state computed in the worker with its own: with the
    variable unset the grade used to depend on the machine's core count (6/10)."""
    unset, _ = graded("08_gpu_training", *SETTINGS[BWRAP])
    reports = [unset] + [graded("08_gpu_training", "auto", t)[0] for t in ("1", "2")]
    assert unset["full_marks"], grade_of(unset)
    assert grade_of(reports[1]) == grade_of(reports[0]) == grade_of(reports[2])
    assert [r["containment"] for r in reports] == ["bwrap"] * 3  # auto is bwrap: only the threads differ


@pytest.mark.skipif("09_evaluation" not in LESSONS, reason="no lesson 09")
@pytest.mark.skipif(os.geteuid() != 0, reason="the user containment needs a root grader")
def test_lesson09_solution_full_marks_under_user_as_under_bwrap():
    """Under `user` the setup cell could not import what the dropped uid could not read (0/7, silently)."""
    bwrap, _ = graded("09_evaluation", *SETTINGS[BWRAP])
    user, _ = graded("09_evaluation", "user", None)
    assert user["containment"] == "user" and user["full_marks"], grade_of(user)
    assert grade_of(user) == grade_of(bwrap)
