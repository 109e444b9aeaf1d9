"""One grade per notebook (issue 21): the same report whatever the thread variables, the folder the
course and its Python live in, and the containment. Each setting is made explicit here (the
thread variables are set or unset in the child's environment, never inherited from the Makefile)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from course_fixture import FIXTURE, build_course

from autograder import course, sandbox

pytestmark = pytest.mark.slow
REPO = course.REPO_ROOT


def _check(notebook: Path, root: Path, *, threads: str | None, containment: str = "auto",
           python: str = sys.executable, cwd: Path | None = None, pythonpath: Path | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
    env["AUTOGRADER_SANDBOX"] = containment
    env["AUTOGRADER_SECRET"] = "one-grade-test"  # hidden cases identical across runs
    env["PYTHONPATH"] = str(pythonpath or REPO)
    proc = subprocess.run([python, "-m", "autograder", "check", str(notebook), "--json", "--course", str(root)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=str(cwd or REPO))
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _grade_of(report: dict) -> list:
    """What a grade is: every cell's points, status and message (not timings or the containment)."""
    return [(c["grade_id"], c["points"], c["status"], c["message"]) for c in report["cells"]] + [report["error"]]


@pytest.fixture(scope="module")
def fixture_course(tmp_path_factory):
    root = build_course(tmp_path_factory.mktemp("course"), with_real_lessons=False)
    from autograder.release import generate

    generate(root=root, quiet=True)
    return root


def _fixture_solution(root: Path) -> Path:
    return course.source_notebook(FIXTURE, root)


def test_fixture_same_report_with_threads_unset_1_2_and_every_containment(fixture_course):
    nb = _fixture_solution(fixture_course)
    kinds = ["bwrap", "process"] + (["user"] if os.geteuid() == 0 else [])
    reports = {("unset", "bwrap"): _check(nb, fixture_course, threads=None, containment="bwrap")}
    for threads in ("1", "2"):
        reports[(threads, "bwrap")] = _check(nb, fixture_course, threads=threads, containment="bwrap")
    for kind in kinds[1:]:
        reports[("unset", kind)] = _check(nb, fixture_course, threads=None, containment=kind)
    first = _grade_of(reports[("unset", "bwrap")])
    assert reports[("unset", "bwrap")]["full_marks"], first
    for key, report in reports.items():
        assert _grade_of(report) == first, key
        assert report["containment"] == key[1]


def test_lesson08_solution_full_marks_whatever_the_thread_variables():
    """Lesson 08's checkpoint judge compares Adam state computed in the worker with its own: with the
    variable unset the grade used to depend on the machine's core count (6/10)."""
    nb = REPO / "solutions" / "08_gpu_training" / "08_gpu_training.ipynb"
    reports = [_check(nb, REPO, threads=t) for t in (None, "1", "2")]
    assert reports[0]["full_marks"], _grade_of(reports[0])
    assert _grade_of(reports[1]) == _grade_of(reports[0]) == _grade_of(reports[2])


@pytest.mark.skipif(os.geteuid() != 0, reason="the user containment needs a root grader")
def test_lesson09_solution_full_marks_under_user_as_under_bwrap():
    """Under `user` the setup cell could not import what the dropped uid could not read (0/7, silently)."""
    nb = REPO / "solutions" / "09_evaluation" / "09_evaluation.ipynb"
    user = _check(nb, REPO, threads=None, containment="user")
    bwrap = _check(nb, REPO, threads=None, containment="bwrap")
    assert user["containment"] == "user" and user["full_marks"], _grade_of(user)
    assert _grade_of(user) == _grade_of(bwrap)


def test_course_and_python_under_tmp_grade_in_bwrap(tmp_path):
    """A clone and a virtual environment under /tmp (bwrap mounts an empty /tmp): still bwrap, full marks."""
    assert str(tmp_path).startswith("/tmp")
    venv = tmp_path / "venv"
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python3*/site-packages"))
    import torch

    (site / "main.pth").write_text(str(Path(torch.__file__).parents[1]) + "\n")  # this venv's packages
    root = build_course(tmp_path / "clone")
    for pkg in ("autograder", "dcgan_ref"):
        shutil.copytree(REPO / pkg, root / pkg, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.db", "secret"))
    from autograder.release import generate

    generate(root=root, quiet=True)
    report = _check(_fixture_solution(root), root, threads=None, containment="auto", python=str(venv / "bin/python"),
                    cwd=root, pythonpath=root)
    assert report["error"] is None and report["containment"] == "bwrap", report
    assert report["full_marks"], _grade_of(report)
    assert sandbox.SANDBOX_UID  # the module imports
