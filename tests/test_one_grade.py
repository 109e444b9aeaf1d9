"""One grade per notebook (issue 21): the same report whatever the thread variables, the folder the
course and its Python live in, and the containment. Each setting is made explicit here (the
thread variables are set or unset in the child's environment, never inherited from the Makefile).
The real lessons where the grade once depended on the setting (lesson 08 on the thread variables,
lesson 09 on the containment) are compared in tests/test_solution_notebooks.py, with the grade its
full-marks test already made rather than a second grading of the same notebook."""

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
           python: str = sys.executable, cwd: Path | None = None, pythonpath: Path | None = None,
           extra_env: dict[str, str] | None = None) -> dict:
    """``check --json`` of one notebook in a fresh process: its report."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = threads
    env["AUTOGRADER_SANDBOX"] = containment
    env["AUTOGRADER_SECRET"] = "one-grade-test"  # hidden cases identical across runs
    env["PYTHONPATH"] = str(pythonpath or REPO)
    env.update(extra_env or {})
    proc = subprocess.run([python, "-m", "autograder", "check", str(notebook), "--json", "--course", str(root)],
                          capture_output=True, text=True, timeout=900, env=env, cwd=str(cwd or REPO))
    assert proc.stdout.strip(), proc.stderr[-2000:]
    return json.loads(proc.stdout)


def _grade_of(report: dict) -> list:
    """What a grade is: every cell's points, status and message (not timings or the containment)."""
    return [(c["grade_id"], c["points"], c["status"], c["message"]) for c in report["cells"]] + [report["error"]]


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


def test_course_and_python_under_tmp_grade_in_bwrap(tmp_path):
    """A clone and a virtual environment under /tmp (bwrap mounts an empty /tmp, and so does each worker forked
    from the template): still bwrap, full marks."""
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
    # once in a worker of its own, once forked from the sandbox template (AUTOGRADER_TEMPLATE=1: an error where it
    # cannot run), whose isolated /tmp must still hold the installation bound there (CI's venv lives in /tmp too)
    reports = [_check(_fixture_solution(root), root, threads=None, containment="auto", python=str(venv / "bin/python"),
                      cwd=root, pythonpath=root, extra_env={"AUTOGRADER_TEMPLATE": flag}) for flag in ("0", "1")]
    for report in reports:
        assert report["error"] is None and report["containment"] == "bwrap", report
        assert report["full_marks"], _grade_of(report)
    assert sandbox.SANDBOX_UID  # the module imports
