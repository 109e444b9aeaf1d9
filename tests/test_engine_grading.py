"""Hostile notebooks against the grading engine (issue 20), on the fixture course, screen switched off
so the engine alone must hold: what a cell can reach cannot change what the grader is told."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from course_fixture import FIXTURE, build_course, cell_points, filled
from nbformat.v4 import new_code_cell

from autograder import cli, course, trusted

pytestmark = pytest.mark.slow


def _notebooks(root: Path):
    src = nbformat.read(course.source_notebook(FIXTURE, root), as_version=4)
    rel = nbformat.read(course.release_notebook(FIXTURE, root), as_version=4)
    return src, rel


def _grade(nb, root: Path, tmp_path: Path, capsys, *extra: str) -> dict:
    path = tmp_path / f"{FIXTURE}.ipynb"
    nbformat.write(nb, path)
    cli.main(["check", str(path), "--json", "--timeout", "20", "--course", str(root), *extra])
    return json.loads(capsys.readouterr().out)


def _points(report: dict) -> dict[str, float]:
    return {c["grade_id"]: c["points"] for c in report["cells"]}


def _with_scratch(nb, after: str, source: str):
    """``nb`` with a student-added cell (no metadata) after the cell ``after``."""
    index = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == after)
    nb.cells.insert(index + 1, new_code_cell(source))
    return nb


BLANK = "def double(x):\n    raise NotImplementedError()"

#: forged "ok" probe replies written to every descriptor the cell's process has, and to the
#: descriptors of every process of the sandbox it can open: the judge would pass them
FORGE = '''
import os, io, torch
from autograder.checks._core import randn
def _reply(shapes):
    data = [{"value": 2 * randn(*s, seed=i)} for i, s in enumerate(shapes)]
    buf = io.BytesIO()
    torch.save({"op": "probe", "status": "ok", "data": data, "stdout": "", "nonce": None}, buf)
    blob = buf.getvalue()
    return len(blob).to_bytes(8, "big") + blob
frames = _reply([(2, 3)]) + _reply([(2, 3), (1, 1), (4, 5, 6)])
hit = 0
targets = [f"/proc/self/fd/{n}" for n in os.listdir("/proc/self/fd")]
for pid in os.listdir("/proc"):
    if pid.isdigit():
        try:
            targets += [f"/proc/{pid}/fd/{n}" for n in os.listdir(f"/proc/{pid}/fd")]
        except OSError:
            pass
for t in targets:
    try:
        fd = os.open(t, os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, frames)
        hit += 1
    except OSError:
        pass
print("wrote to", hit)
'''


def test_forged_replies_on_every_reachable_descriptor_earn_nothing(fixture_course, tmp_path, capsys, no_screen):
    src, rel = _notebooks(fixture_course)
    nb = _with_scratch(filled(rel, src, {"double": BLANK}), "double", FORGE)
    report = _grade(nb, fixture_course, tmp_path, capsys)
    got, pts = _points(report), cell_points(src)
    assert got["test_double"] == 0, report["cells"]
    for gid in ("test_add_bias", "test_flatten_batch", "test_relu", "test_as_float"):
        assert got[gid] == pts[gid], (gid, report["cells"])


#: forged *cell* replies and injected requests, written to every descriptor the cell's process has (its own
#: reply pipe and, reopened for writing, its request pipe): the next cells must still show their own output
FORGE_RUN = '''
import os, io, torch
def _frame(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    blob = buf.getvalue()
    return len(blob).to_bytes(8, "big") + blob
frames = b"".join(_frame(x) for x in (
    {"op": "run", "stdout": "FORGED OUTPUT", "stderr": "", "ename": None, "evalue": None, "nonce": None},
    {"op": "run", "source": "print('INJECTED CELL')", "trusted": True, "nonce": "x"},
    ["not", "a", "request"]))
for n in os.listdir("/proc/self/fd"):
    try:
        fd = os.open(f"/proc/self/fd/{n}", os.O_WRONLY | os.O_NONBLOCK)
        os.write(fd, frames)
    except OSError:
        pass
print("forged")
'''


def test_forged_cell_replies_and_injected_requests_shift_no_output(fixture_course, tmp_path, capsys, no_screen):
    """The zygote relays only the reply that echoes its request's nonce, and the runner skips frames that are
    not the zygote's: every later cell shows its own output, nothing is re-run, and the answers keep their
    points."""
    src, rel = _notebooks(fixture_course)
    nb = filled(rel, src, {})
    nb = _with_scratch(nb, "double", FORGE_RUN)
    nb = _with_scratch(nb, "add_bias", "print('my own output')")
    executed = tmp_path / "executed.ipynb"
    report = _grade(nb, fixture_course, tmp_path, capsys, "--executed", str(executed))
    got, pts = _points(report), cell_points(src)
    assert got == pts, report["cells"]
    assert report["worker_restarts"] == 0, report
    out = nbformat.read(executed, as_version=4)
    texts = {c.source: "".join(o.get("text", "") for o in c.get("outputs", [])) for c in out.cells
             if c.cell_type == "code"}
    assert texts[FORGE_RUN] == "forged\n", texts[FORGE_RUN]
    assert texts["print('my own output')"] == "my own output\n"
    assert not any("FORGED" in t or "INJECTED" in t for t in texts.values()), texts


#: the probe machinery rewritten from a scratch cell (the runner), then from an answer cell's
#: assignment (what a probe child re-defines)
PATCH_RUNNER = '''
import autograder.checks._core as core, torch
from autograder.checks._core import randn
core.Exercise.run_probe = lambda self, objects, cases: [
    {"value": 2 * randn(*s, seed=i)} for i, s in enumerate(cases["shapes"])]
core.attempt = lambda fn, *a, **k: {"value": 2 * a[0]}
'''
PATCH_ANSWER = '''
import autograder.checks._core as core
from autograder.checks._core import randn
_ = setattr(core.Exercise, "run_probe", lambda self, objects, cases: [
    {"value": 2 * randn(*s, seed=i)} for i, s in enumerate(cases["shapes"])])
def double(x):
    raise NotImplementedError()
'''


@pytest.mark.parametrize("where", ["scratch cell", "answer cell"])
def test_probe_machinery_patched_in_the_notebook_changes_no_result(where, fixture_course, tmp_path, capsys,
                                                                   no_screen):
    src, rel = _notebooks(fixture_course)
    if where == "scratch cell":
        nb = _with_scratch(filled(rel, src, {"double": BLANK}), "double", PATCH_RUNNER)
    else:
        nb = filled(rel, src, {"double": PATCH_ANSWER})
    report = _grade(nb, fixture_course, tmp_path, capsys)
    got, pts = _points(report), cell_points(src)
    assert got["test_double"] == 0, report["cells"]
    if where == "scratch cell":  # the runner's patch never reaches a probe: the rest is graded as usual
        assert got["test_add_bias"] == pts["test_add_bias"], report["cells"]
    else:  # re-defined above every later probe: each of them stops, and the notebook is flagged
        msg = {c["grade_id"]: c["message"] for c in report["cells"]}
        assert all("grader's own code" in msg[g] for g in got), msg
        assert report["review"] and any("grader's code" in f for x in report["flags"] for f in x["findings"])


THREADED = '''
import threading
def double(x):
    out = {}
    t = threading.Thread(target=lambda: out.setdefault("v", 2 * x))
    t.start()
    t.join()
    return out["v"]
'''
BACKGROUND = '''
import threading, time
def _forever():
    while True:
        time.sleep(0.01)
threading.Thread(target=_forever, daemon=True).start()
'''


def test_threads_cannot_run_during_a_probe(fixture_course, tmp_path, capsys, no_screen):
    """A thread the answer starts while a probe runs fails (the dispatch refusal is per thread);
    a thread a scratch cell left running lives in the runner, never where the probe runs."""
    src, rel = _notebooks(fixture_course)
    nb = _with_scratch(filled(rel, src, {"double": THREADED}), "double", BACKGROUND)
    report = _grade(nb, fixture_course, tmp_path, capsys)
    got, pts = _points(report), cell_points(src)
    assert got["test_double"] == 0, report["cells"]
    msg = {c["grade_id"]: c["message"] for c in report["cells"]}
    assert "thread" in msg["test_double"], msg["test_double"]
    assert got["test_relu"] == pts["test_relu"]


def test_a_judge_past_its_limit_fails_that_exercise_and_the_rest_is_graded(tmp_path, capsys, monkeypatch):
    root = build_course(tmp_path / "course")
    checks = root / "solutions" / FIXTURE / "fixture_checks.py"
    checks.write_text(checks.read_text().replace(
        "def _judge_relu(cases, data):\n", "def _judge_relu(cases, data):\n    while True:\n        pass\n"))
    from autograder.release import generate

    generate(root=root, quiet=True)
    monkeypatch.setattr(trusted, "JUDGE_TIMEOUT", 3.0)
    src, rel = _notebooks(root)
    report = _grade(filled(rel, src), root, tmp_path, capsys)
    got, pts = _points(report), cell_points(src)
    assert got["test_relu"] == 0
    msg = {c["grade_id"]: c["message"] for c in report["cells"]}
    assert "judge's limit" in msg["test_relu"] and "\n" not in msg["test_relu"]
    for gid in ("test_double", "test_add_bias", "test_flatten_batch", "test_as_float"):
        assert got[gid] == pts[gid], (gid, report["cells"])
    assert report["error"] is None


def test_a_sleeping_cell_is_stopped_by_the_wall_clock_cap_and_costs_its_cell(fixture_course, tmp_path, capsys,
                                                                            monkeypatch):
    monkeypatch.setattr(trusted, "WALL_FACTOR", 2)
    src, rel = _notebooks(fixture_course)
    nb = _with_scratch(filled(rel, src), "double", "import time\ntime.sleep(1000)")
    report = _grade(nb, fixture_course, tmp_path, capsys, "--timeout", "3")
    got, pts = _points(report), cell_points(src)
    assert got == {k: float(v) for k, v in pts.items()}, report["cells"]
    assert report["worker_restarts"] >= 1


def test_a_typo_costs_its_exercise_unflagged_and_a_future_flag_attack_is_flagged(fixture_course, tmp_path, capsys):
    """The screen reads cells in order as IPython compiles them: a cell that does not compile is
    not run (its exercise scores 0, no review flag: an honest typo); a ``__future__`` import that
    would change how later cells compile is refused and flagged, and the cell relying on it is not run."""
    src, rel = _notebooks(fixture_course)
    typo = filled(rel, src, {"double": "def double(x)\n    return 2 * x"})
    report = _grade(typo, fixture_course, tmp_path, capsys)
    got, pts = _points(report), cell_points(src)
    assert got["test_double"] == 0 and got["test_relu"] == pts["test_relu"], report["cells"]
    assert not report["review"] and report["flags"] == [], report["flags"]
    msg = {c["grade_id"]: c["message"] for c in report["cells"]}
    assert "does not compile" in msg["test_double"] and "flagged" not in msg["test_double"], msg["test_double"]

    answers = {"add_bias": "def add_bias(x, b):\n    return x + b if 1 <> 2 else x"}
    flufl = _with_scratch(filled(rel, src, answers), "double", "from __future__ import barry_as_FLUFL")
    report = _grade(flufl, fixture_course, tmp_path, capsys)
    got = _points(report)
    assert got["test_add_bias"] == 0 and got["test_relu"] == pts["test_relu"], report["cells"]
    assert report["review"] and any("__future__" in f for x in report["flags"] for f in x["findings"]), report
