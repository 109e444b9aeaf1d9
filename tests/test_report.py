"""``python -m autograder report LESSON``: one HTML page of what a graded class got wrong.

The class here is written as ``grade`` records it (``autograder/reports/LESSON/<student>.json``),
with the failure messages the checks give; tests/test_class_grading.py grades a real class.
"""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import sys

import pytest

from autograder import report as class_report

LESSON = "01_fixture"


def _cell(ex, gid, points, top, status="passed", message="passed"):
    return {"grade_id": gid, "exercise": ex, "points": points, "max_points": top, "status": status,
            "message": message}


def _report(cells, flags=(), restarts=0, error=None):
    return {"cells": cells, "flags": list(flags), "worker_restarts": restarts, "error": error,
            "score": sum(c["points"] or 0 for c in cells), "max_score": sum(c["max_points"] for c in cells)}


def _relu_wrong(where, got):
    return (f"relu(x) differs from the reference at {where}: got {got}, expected 0 "
            f"(max abs difference {got}, 4 of 6 off).")


def _class():
    """student -> report: 5 students, relu's one mistake made by three with different numbers."""
    ok = [_cell("double", "test_double", 1, 1), _cell("relu", "test_relu", 1, 1), _cell("relu", "test_relu2", 1, 1)]
    return {
        "ann": _report(ok),
        "bob": _report([ok[0], _cell("relu", "test_relu", 0, 1, "failed", _relu_wrong("(0, 1)", -0.29)),
                        _cell("relu", "test_relu2", 0, 1, "failed", _relu_wrong("(3, 2)", -1.5))]),
        "cy": _report([ok[0], _cell("relu", "test_relu", 0, 1, "failed", _relu_wrong("(1, 0)", -2.25e-3)), ok[2]]),
        "dee": _report([_cell("double", "test_double", 0, 1, "failed",
                              "your answer was not run: line 1: import of sys. <script>alert(1)</script>"),
                        _cell("relu", "test_relu", 0, 1, "failed", _relu_wrong("(0, 0)", -7)),
                        _cell("relu", "test_relu2", 0, 1, "timeout", "the cell ran past the time limit of 60 s")],
                       flags=[{"cell": "double", "findings": ["line 1: import of sys"]}], restarts=1),
        "eve": _report([_cell("double", "test_double", 0, 1, "error",
                              "DeadKernelError: the notebook's process died in this cell"), ok[1], ok[2]]),
    }


@pytest.fixture
def graded(tmp_path):
    folder = tmp_path / "autograder" / "reports" / LESSON
    folder.mkdir(parents=True)
    for student, rep in _class().items():
        (folder / f"{student}.json").write_text(json.dumps({"student": student, "assignment": LESSON, "report": rep}))
    return tmp_path


def test_numbers_are_normalised_out_of_a_named_mistake():
    a = class_report.normalise("\u2718 " + _relu_wrong("(0, 1)", -0.29))
    b = class_report.normalise(_relu_wrong("(13, 2)", 1.5e-3))
    assert a == b and "#" in a and "0.29" not in a
    assert class_report.normalise("add_bias is not implemented yet") == "add_bias is not implemented yet"
    shape, dtype = "shape (2, 3) expected (2, 4)", "dtype int64 expected float"
    assert class_report.normalise(shape) != class_report.normalise(dtype)


def test_summary_counts_students_per_named_mistake(graded):
    s = class_report.summarise(LESSON, graded)
    assert sorted(s.students) == ["ann", "bob", "cy", "dee", "eve"]
    counts = class_report.group_counts(s)
    relu = counts["relu"]
    # three students made the one mistake (bob twice, in two cells: counted once), with different numbers
    assert len(relu) == 1 and list(relu.values()) == [3]
    assert sum(counts["double"].values()) == 2
    assert s.exercises == {"double": 1.0, "relu": 2.0}
    assert s.points["relu"] == {"ann": 2.0, "bob": 0.0, "cy": 1.0, "dee": 0.0, "eve": 2.0}
    assert s.totals["ann"] == 3 and s.totals["dee"] == 0
    assert s.flagged == [("dee", "double", "line 1: import of sys")]
    kinds = sorted((who, what) for who, what, _ in s.incidents)
    assert kinds == [("dee", "timeout"), ("dee", "worker restarts"), ("eve", "crash")]


def test_page_has_plots_and_every_section_escaped(graded):
    path = class_report.write_report(LESSON, graded)
    assert path == graded / "autograder" / "reports" / f"{LESSON}.html"
    page = path.read_text(encoding="utf-8")
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    assert len(images) == 3
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)
    assert sorted(p.name for p in (path.parent / f"{LESSON}_plots").iterdir()) == [
        "mistakes.png", "scores_per_exercise.png", "total_scores.png"]
    text = html.unescape(re.sub(r"<[^>]+>", " ", re.sub(r"data:image[^']+", "", page)))
    assert "5 submissions graded" in text and "1 with full marks" in text
    for section in ("Scores per exercise", "Named mistakes per exercise", "Flagged for review", "Timeouts and crashes"):
        assert section in text
    assert "<script>" not in page and "&lt;script&gt;" in page
    row = re.search(r"<tr><td class=n>(\d+)</td><td>relu\(x\) differs", page)
    assert row and row.group(1) == "3"


def test_report_without_a_graded_class_says_so_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autograder", "report", LESSON, "--course", str(tmp_path)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert "no graded submissions" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
