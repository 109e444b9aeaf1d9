"""The sandbox template (``autograder/template.py``): one sandbox per grading process, imported once, and each
submission's worker forked into namespaces of its own. Two submissions graded one after the other by the same
process share the template; nothing one leaves behind reaches the next, and nothing one does stops the template."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import nbformat
import pytest
from course_fixture import FIXTURE

from autograder import course, sandbox
from autograder.grade import grade_notebook
from autograder.template import WORKS_MOUNT

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _bwrap_template():
    if sandbox.choose().kind != "bwrap" or not sandbox.Template.usable():
        pytest.skip(f"no bubblewrap template on this machine ({sandbox.Template._why or 'no bwrap'})")


def _submission(root: Path, tmp: Path, name: str, double: str) -> Path:
    """The fixture's released notebook, its ``double`` answer cell replaced by ``double``."""
    rel = nbformat.read(course.release_notebook(FIXTURE, root), as_version=4)
    src = nbformat.read(course.source_notebook(FIXTURE, root), as_version=4)
    answers = {c.metadata.nbgrader.grade_id: c.source for c in src.cells if c.metadata.nbgrader.get("solution")}
    for cell in rel.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers:
            cell.source = double if gid == "double" else answers[gid]
    path = tmp / name / f"{FIXTURE}.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(rel, path)
    return path


def _grade(path: Path, root: Path):
    """The report and the printed output of the ``double`` answer cell."""
    executed = path.with_suffix(".executed.ipynb")
    report = grade_notebook(path, assignment=FIXTURE, root=root, timeout=20, keep_executed=executed)
    nb = nbformat.read(executed, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "double")
    return report, "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")


LEAVE_BEHIND = r'''
import os, subprocess, sys, time
def double(x):
    return 2 * x
wrote = []
for d in ["/tmp", "/dev/shm", ".", "/home/student", "/", "/opt", "/home/student/work/.."]:
    try:
        with open(os.path.join(d, "left-by-a"), "w") as f:
            f.write("a")
        wrote.append(d)
    except OSError:
        pass
subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(0.05)  # LEFT-BY-A"],
                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("WROTE", wrote)
'''

LOOK_AROUND = r'''
import json, os
def double(x):
    return 2 * x
seen = {}
for d in ["/tmp", "/dev/shm", ".", "/home/student", "/", "/opt"]:
    seen[d] = os.path.exists(os.path.join(d, "left-by-a"))
def cmdline(p):
    try:
        with open(f"/proc/{p}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
procs = [p for p in os.listdir("/proc") if p.isdigit() and b"LEFT-BY-A" in cmdline(p)]
try:
    works = os.listdir(WORKS)
except OSError as e:
    works = type(e).__name__
fds = {}
for n in os.listdir("/proc/self/fd"):
    try:
        fds[n] = os.readlink(f"/proc/self/fd/{n}")
    except OSError:
        pass  # the descriptor listdir itself used
with open("/proc/self/status") as f:
    caps = {k: v.strip() for k, _, v in (line.partition(":") for line in f) if k.startswith("Cap")}
print("SEEN", json.dumps({"files": seen, "procs": procs, "works": works, "caps": caps,
                          "cwd": os.getcwd(), "pid1": os.getpid() != 1,
                          "sockets": [t for t in fds.values() if t.startswith("socket:")]}))
'''.replace("WORKS", repr(WORKS_MOUNT))


def test_nothing_a_submission_leaves_behind_reaches_the_next(fixture_course, tmp_path, no_screen):
    """A writes everywhere it can and starts a detached process; B, forked from the same template right after,
    sees none of it, has no capability, sees no other submission's folder, and scores full marks."""
    report_a, out_a = _grade(_submission(fixture_course, tmp_path, "a", LEAVE_BEHIND), fixture_course)
    template = sandbox.Template._proc
    assert "WROTE" in out_a and "'/tmp'" in out_a and "'.'" in out_a, out_a
    # what the template's own sandbox holds is read-only to a submission: only /tmp, /dev/shm and its folder
    assert "'/home/student'" not in out_a and "'/opt'" not in out_a and "'/'" not in out_a, out_a
    report_b, out_b = _grade(_submission(fixture_course, tmp_path, "b", LOOK_AROUND), fixture_course)
    assert sandbox.Template._proc is template, "B was not forked from the same template"
    assert "SEEN" in out_b, out_b
    seen = json.loads(out_b.split("SEEN", 1)[1])
    assert not any(seen["files"].values()), seen
    assert seen["procs"] == [] and seen["works"] in ([], "PermissionError"), seen
    assert seen["cwd"] == sandbox.WORK_MOUNT and seen["pid1"], seen
    assert seen["sockets"] == [], seen  # the template's control socket never reaches a worker
    assert all(int(v, 16) == 0 for v in seen["caps"].values()), seen["caps"]
    assert report_b.score == report_b.max_score and report_b.error is None, report_b


KILL_EVERYTHING = r'''
import os, signal
def double(x):
    return 2 * x
for p in os.listdir("/proc"):
    if p.isdigit() and int(p) != os.getpid():
        try:
            os.kill(int(p), signal.SIGKILL)
        except OSError:
            pass
try:
    os.kill(-1, signal.SIGSTOP)
except OSError:
    pass
'''


def test_a_submission_that_signals_every_process_stops_only_itself(fixture_course, tmp_path, no_screen):
    """Every pid in /proc (the template's, its sandbox's) is out of reach from a submission's PID namespace:
    the template goes on serving, and the next submission is graded in full without a restart."""
    _grade(_submission(fixture_course, tmp_path, "warm", LOOK_AROUND), fixture_course)
    template = sandbox.Template._proc
    assert template is not None and template.poll() is None
    report_a, _ = _grade(_submission(fixture_course, tmp_path, "a", KILL_EVERYTHING), fixture_course)
    assert report_a.error is None
    report_b, _ = _grade(_submission(fixture_course, tmp_path, "b", LOOK_AROUND), fixture_course)
    assert sandbox.Template._proc is template and template.poll() is None
    assert report_b.score == report_b.max_score and report_b.restarts == 0, report_b


def test_the_same_grades_with_and_without_the_template(fixture_course, tmp_path, monkeypatch):
    """The solution, forked from the template and started on its own (``AUTOGRADER_TEMPLATE=0``), grades alike."""
    path = course.source_notebook(FIXTURE, fixture_course)
    with_template = grade_notebook(path, assignment=FIXTURE, root=fixture_course, timeout=20)
    monkeypatch.setenv("AUTOGRADER_TEMPLATE", "0")
    alone = grade_notebook(path, assignment=FIXTURE, root=fixture_course, timeout=20)
    assert [(c.grade_id, c.points, c.message) for c in with_template.cells] == \
        [(c.grade_id, c.points, c.message) for c in alone.cells]
    assert with_template.score == with_template.max_score > 0


def test_a_keeper_that_does_not_end_cleanly_replaces_the_template(fixture_course, tmp_path):
    """A worker whose keeper is killed outright (no exit status) may have left processes in the template's
    sandbox: the next worker comes from a fresh template."""
    from autograder import trusted

    where = Path(os.path.realpath(sandbox.Template.root())) / "keeper-test"
    where.mkdir()
    try:
        handle = trusted.WorkerHandle(sandbox.choose(), sandbox.Template.root() / "keeper-test", [])
        template = sandbox.Template._proc
        assert isinstance(handle.proc, sandbox.Keeper) and handle.proc.pid > 0
        os.kill(handle.proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while handle.proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        handle.kill()
        assert not handle.proc.clean and sandbox.Template._proc is None
        assert template.poll() is not None  # the old template and its whole sandbox are gone
    finally:
        import shutil

        shutil.rmtree(where, ignore_errors=True)
