"""Grading the real lessons' solution notebooks with ``python -m autograder check``, once per setting.

One ``check`` process grades every lesson of a setting, as an instructor's one command grades many
notebooks: the grading process's template serves them all (its own tests: tests/test_template.py).

A setting is a containment (``AUTOGRADER_SANDBOX``) and the thread variables (``OMP_NUM_THREADS`` =
``MKL_NUM_THREADS``, or None: both unset, as on an instructor's machine), always made explicit in the
child's environment, never inherited from the Makefile's export. ``graded`` keeps each report for the
test process: a test that needs the grade of a setting another test already graded (full marks under
bwrap with the threads unset, compared with other thread settings) reads it instead of grading the
lesson again. Every run of a process uses one secret (random, as when none is configured), so that
the hidden cases are the same in the reports compared and still change from one CI run to the next.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import subprocess
import sys

import pytest

from autograder import course

SECRET = secrets.token_hex(16)

#: every containment grading may use, each with other thread variables than the Makefile's export (an
#: instructor's machine has none set): every solution must score full marks under each. The first is
#: graded in tests/test_solution_notebooks.py (with the lesson 08 and 09 comparisons that reuse it),
#: the second in tests/test_solution_notebooks_user.py: two files, so that two test processes share
#: the gradings (pytest-xdist's --dist loadfile keeps a file in one process).
SETTINGS = {"bwrap, threads unset": ("bwrap", None), "user, OMP_NUM_THREADS=2": ("user", "2")}


def grade_of(report: dict) -> list:
    """What a grade is: every cell's points, status and message (not timings or the containment)."""
    return [(c["grade_id"], c["points"], c["status"], c["message"]) for c in report["cells"]] + [report["error"]]


#: the lessons whose checks or notebooks import torchvision (and with it torch._dynamo and sympy) are graded
#: last in a run: a grading process's servers keep what they imported, so a lesson graded after them would
#: not show what it imports itself at run time (``graded_together``'s third value)
IMPORT_MOST = ("08", "10", "00")


@functools.cache
def graded_together(lessons: tuple[str, ...], containment: str, threads: str | None) -> tuple[dict[str, dict], int,
                                                                                                tuple[str, ...]]:
    """({lesson: its ``--json`` report}, the exit status, the debug lines of modules a probe child or a judge
    imported while it ran) of one ``autograder check`` of the solution notebooks, with ``AUTOGRADER_DEBUG``."""
    env = {k: v for k, v in course.tool_env().items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
    env["AUTOGRADER_SANDBOX"] = containment
    env["AUTOGRADER_SECRET"] = SECRET
    env["AUTOGRADER_DEBUG"] = "1"  # diagnostics on stderr only: the grades are those of any run
    cmd = [sys.executable, "-m", "autograder", "check", *(str(course.source_notebook(a)) for a in lessons), "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900 * len(lessons))
    assert proc.stdout.strip(), proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    reports = out if isinstance(out, list) else [out]
    assert len(reports) == len(lessons), proc.stderr[-3000:]
    imports = tuple(ln for ln in proc.stderr.splitlines() if "imported while it ran" in ln)
    return dict(zip(lessons, reports, strict=True)), proc.returncode, imports


def run_of(lesson: str, containment: str, threads: str | None) -> tuple[dict[str, dict], int, tuple[str, ...]]:
    """The run that grades ``lesson`` under the setting: for a setting of ``SETTINGS``, one process grades every
    lesson (the first test of the setting waits for it); any other setting grades ``lesson`` alone."""
    if (containment, threads) in SETTINGS.values():
        lessons = tuple(sorted(course.assignments(), key=lambda a: (a[:2] in IMPORT_MOST, a)))
    else:
        lessons = (lesson,)
    return graded_together(lessons, containment, threads)


def graded(lesson: str, containment: str, threads: str | None) -> tuple[dict, int]:
    """(the report, the run's exit status)."""
    reports, status, _ = run_of(lesson, containment, threads)
    return reports[lesson], status


def assert_full_marks(lesson: str, containment: str, threads: str | None) -> None:
    """``lesson``'s solution scores full marks under the setting, graded with source tests, exit status 0."""
    if containment == "user" and os.geteuid() != 0:
        pytest.skip("the user containment needs a root grader")
    reports, status, _ = run_of(lesson, containment, threads)
    report = reports[lesson]
    failed = [f"{c['grade_id']}: {c['status']}: {c['message']}" for c in report["cells"]
              if c["points"] != c["max_points"]]
    assert not failed, failed
    assert report["full_marks"] and report["max_score"] > 0 and report["used_source_tests"]
    assert report["containment"] == containment
    # the exit status is the whole run's: 0 when every notebook it graded has full marks (each lesson's
    # own test names a lesson that has not)
    assert status == 0 or not all(r["full_marks"] for r in reports.values()), status
