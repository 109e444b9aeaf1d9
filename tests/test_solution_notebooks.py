"""Every solution notebook scores full marks with `python -m autograder check`; every lesson scores 0.

The one place every real lesson is graded: ``nbgrader autograde`` grades through the same trusted
grading with the same scoring rules (tests/test_grade.py compares them with nbgrader's), and
tests/test_nbgrader_pipeline.py runs it on lesson 01 and the fixture lesson.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from autograder import course
from autograder.grade import grade_notebook

LESSONS = course.assignments()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not LESSONS, reason="no lesson in solutions/ yet")]


#: every containment grading may use, each with other thread variables than the Makefile's export (an
#: instructor's machine has none set): every solution must score full marks under each
SETTINGS = {"bwrap, threads unset": ("bwrap", None), "user, OMP_NUM_THREADS=2": ("user", "2")}


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_scores_full_marks(lesson, setting):
    containment, threads = SETTINGS[setting]
    if containment == "user" and os.geteuid() != 0:
        pytest.skip("the user containment needs a root grader")
    env = {k: v for k, v in course.tool_env().items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
    env["AUTOGRADER_SANDBOX"] = containment
    cmd = [sys.executable, "-m", "autograder", "check", str(course.source_notebook(lesson)), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    failed = [f"{c['grade_id']}: {c['status']}: {c['message']}" for c in report["cells"]
              if c["points"] != c["max_points"]]
    assert not failed, failed
    assert report["full_marks"] and report["max_score"] > 0 and report["used_source_tests"]
    assert report["containment"] == containment
    assert proc.returncode == 0


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
