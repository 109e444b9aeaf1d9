"""``python -m autograder grade``: a class graded on Dask equals a sequential ``nbgrader autograde``.

One module-scoped class of 12 submissions of the fixture lesson (right, wrong, raising, short by a
column, hostile and screened, untouched, tampered, half of them as Colab saves them) is graded
three times on three copies of the course: sequentially by ``nbgrader autograde`` (the reference),
on a real ``dask scheduler`` with two ``dask worker`` processes (one killed mid-run, a third with
another course refused), and with ``--jobs 2`` (a LocalCluster; stopped with Ctrl-C, then rerun).
The gradebooks, ``grades.csv`` and the feedback must be the same.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from course_fixture import FIXTURE, build_course, colab_json, filled

from autograder import classgrade, course

pytestmark = pytest.mark.slow
pytest.importorskip("distributed")

SECRET = "class-grading-test-secret"
TIMEOUT = "20"


def _plans(rel, src):
    """student -> notebook text (12 submissions, mixed)."""
    ok = filled(rel, src)
    wrong = filled(rel, src, {"relu": "def relu(x):\n    return x  # forgot the clamp"})
    raising = filled(rel, src, {"add_bias": "def add_bias(x, b):\n    raise ValueError('not today')"})
    short = filled(rel, src, {"flatten_batch": "def flatten_batch(x):\n    return x.reshape(x.shape[0], -1)[:, :-1]"})
    hostile = filled(rel, src, {"double": "import sys\ndef double(x):\n    return 2 * x"})
    triple = filled(rel, src, {"double": "def double(x):\n    return 3 * x"})
    tampered = filled(rel, src)
    test = next(c for c in tampered.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_relu")
    test.source = "pass  # no checks today"
    return {
        "right": nbformat.writes(ok), "right-colab": colab_json(ok),
        "wrong": nbformat.writes(wrong), "wrong-colab": colab_json(wrong),
        "raising": nbformat.writes(raising), "short-colab": colab_json(short),
        "hostile": nbformat.writes(hostile), "hostile-colab": colab_json(hostile),
        "untouched": nbformat.writes(rel), "untouched-colab": colab_json(rel),
        "triple": nbformat.writes(triple), "tampered": nbformat.writes(tampered),
    }


def _strip_package(root: Path) -> None:
    """The course copy keeps only its nbgrader config: ``autograder`` is the package under test (one
    package for the driver, the Dask workers and nbgrader, so one manifest)."""
    for p in (root / "autograder").rglob("*.py"):
        if p.name != "nbgrader_config.py":
            p.unlink()


def _env(root: Path) -> dict[str, str]:
    return course.tool_env({"DCGAN_COURSE_ROOT": str(root), "AUTOGRADER_SECRET": SECRET,
                            "PYTHONPATH": str(course.REPO_ROOT)})


def _nbgrader(root: Path, *args: str) -> None:
    proc = subprocess.run(course.nbgrader_command(list(args), root), cwd=root, env=_env(root), capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]


def _grade_cmd(root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", FIXTURE, str(root / "inbox"), "--course", str(root),
            "--timeout", TIMEOUT, *extra]


def _grade_here(root: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                *extra: str) -> tuple[int, str]:
    """``python -m autograder grade ...`` as ``_grade_cmd`` runs it, in this process (``cli.main``, the same
    code, stdout and exit status without an interpreter to start and import): (status, stdout)."""
    from autograder import cli
    from autograder.checks import _secret

    for k, v in _env(root).items():  # the environment the subprocess gets: the LocalCluster's workers inherit it
        if os.environ.get(k) != v:
            monkeypatch.setenv(k, v)
    capsys.readouterr()
    _secret.reset()
    try:
        status = cli.main(_grade_cmd(root, *extra)[3:])
    finally:
        _secret.reset()
    out, err = capsys.readouterr()
    return status, out + err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(procs: list[subprocess.Popen]) -> None:
    """SIGTERM to every process group at once (each closes in parallel), SIGKILL to one still there after 15 s."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
        for proc in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
    for proc in procs:
        proc.wait()


def _copy(base: Path, dest: Path, students: list[str] | None = None) -> Path:
    shutil.copytree(base, dest)
    if students is not None:
        for p in (dest / "inbox").iterdir():
            if p.stem not in students:
                p.unlink()
    return dest


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    base = build_course(tmp_path_factory.mktemp("course"))
    _strip_package(base)
    _nbgrader(base, "generate_assignment", FIXTURE, "--force", "--log-level=WARN")
    src = nbformat.read(course.source_notebook(FIXTURE, base), as_version=4)
    rel = nbformat.read(course.release_notebook(FIXTURE, base), as_version=4)
    (base / "inbox").mkdir()
    plans = _plans(rel, src)
    for student, text in plans.items():
        (base / "inbox" / f"{student}.ipynb").write_text(text)
    tmp = tmp_path_factory.mktemp("runs")
    seq = _copy(base, tmp / "seq")
    dask_root = _copy(base, tmp / "dask")
    local = _copy(base, tmp / "local", ["right", "wrong-colab", "hostile", "untouched"])
    other = _copy(base, tmp / "other")  # another course: one check module differs
    checks = other / "solutions" / FIXTURE / "fixture_checks.py"
    checks.write_text(checks.read_text().replace("rtol=0, atol=0", "rtol=1e-3, atol=1e-3"))

    # the reference: collect (`python -m autograder collect`'s function, in this process: no interpreter to
    # start), then nbgrader autograde, export, feedback, one submission after another
    from autograder.collect import collect

    assert not [s.error for s in collect(FIXTURE, [seq / "inbox"], root=seq) if s.error]
    _nbgrader(seq, "autograde", FIXTURE, "--force", f"--Execute.timeout={TIMEOUT}")
    _nbgrader(seq, "export", "--log-level=WARN")
    _nbgrader(seq, "generate_feedback", FIXTURE, "--force", "--log-level=WARN")
    return {"seq": seq, "dask": dask_root, "local": local, "other": other, "students": sorted(plans)}


def _gradebook(root: Path) -> dict:
    """student -> per cell (auto score, max, needs manual grade, comment) and the notebook's score."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook("sqlite:///" + str(root / "autograder" / "gradebook.db")) as gb:
        for sub in gb.assignment_submissions(FIXTURE):
            nb = gb.find_submission_notebook(FIXTURE, FIXTURE, sub.student_id)
            grades = sorted((g.name, g.auto_score, g.max_score, g.needs_manual_grade) for g in nb.grades)
            comments = sorted((c.name, c.auto_comment) for c in nb.comments)
            out[sub.student_id] = (nb.score, grades, comments, nb.needs_manual_grade)
    return out


def _csv(root: Path) -> dict:
    rows = list(csv.DictReader(open(root / "autograder" / "grades.csv")))
    return {r["student_id"]: r for r in rows}


def _feedback(root: Path, student: str) -> str:
    return (root / "autograder" / "feedback" / student / FIXTURE / f"{FIXTURE}.html").read_text(encoding="utf-8")


def _autograded_outputs(root: Path, student: str) -> list:
    nb = nbformat.read(root / "autograder" / "autograded" / student / FIXTURE / f"{FIXTURE}.ipynb", as_version=4)
    return [(c.source, [{k: o.get(k) for k in ("output_type", "name", "text", "ename", "evalue")} for o in c.outputs])
            for c in nb.cells if c.cell_type == "code"], nb.metadata.get("autograder")


def _assert_same_as_sequential(seq: Path, other: Path, students: list[str]) -> None:
    ref, got = _gradebook(seq), _gradebook(other)
    assert set(got) == set(students)
    for s in students:
        assert got[s] == ref[s], s
        assert _csv(other)[s] == _csv(seq)[s], s
        assert _feedback(other, s) == _feedback(seq, s), s
        assert _autograded_outputs(other, s) == _autograded_outputs(seq, s), s


@pytest.fixture(scope="module")
def dask_run(classes):
    """A real scheduler and two workers on 127.0.0.1; one worker killed mid-run; a third with another course."""
    root = classes["dask"]
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs: list[subprocess.Popen] = []
    logs = root / "logs"
    logs.mkdir()

    def start(name: str, argv: list[str], course_root: Path) -> subprocess.Popen:
        env = {**_env(course_root), **classgrade.worker_environ()}  # the README's worker command
        p = subprocess.Popen(argv, cwd=course_root, env=env, start_new_session=True,
                             stdout=open(logs / f"{name}.out", "w"), stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    try:
        start("scheduler", ["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], root)
        worker = ["dask", "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard",
                  "--memory-limit", "0", "--death-timeout", "60"]
        w1 = start("w1", [*worker, "--name", "w1"], root)
        start("w2", [*worker, "--name", "w2"], root)
        bad = start("wrong-course", [*worker, "--name", "wrong-course"], classes["other"])
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(3, timeout=120)
        driver = subprocess.Popen(_grade_cmd(root, "--scheduler", address), cwd=root, env=_env(root),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        procs.append(driver)
        lines = []
        killed = False
        assert driver.stdout is not None
        for line in driver.stdout:
            lines.append(line)
            if not killed and re.search(r"\d+/9\s", line):  # the first grade is in: the workers are busy
                os.killpg(w1.pid, signal.SIGKILL)
                killed = True
        driver.wait(timeout=600)
        stderr = driver.stderr.read() if driver.stderr else ""
        bad.wait(timeout=60)
        return {"root": root, "stdout": "".join(lines), "stderr": stderr, "status": driver.returncode,
                "killed": killed, "bad_status": bad.returncode,
                "bad_log": (logs / "wrong-course.out").read_text()}
    finally:
        _stop(procs[1:])  # the driver and the workers together, then the scheduler they talk to
        _stop(procs[:1])


def test_dask_cluster_with_a_killed_worker_equals_sequential_autograde(classes, dask_run):
    out = dask_run["stdout"]
    assert dask_run["status"] == 0, out + dask_run["stderr"][-3000:]
    assert dask_run["killed"]
    _assert_same_as_sequential(classes["seq"], dask_run["root"], classes["students"])
    # each submission written once: one line per student, one ledger entry per student
    for s in classes["students"]:
        assert len(re.findall(rf"^{re.escape(s)}\s", out, re.M)) == 1, (s, out)
    entries = list((dask_run["root"] / "autograder" / "reports" / FIXTURE).glob("*.json"))
    assert sorted(p.stem for p in entries) == classes["students"]
    scores = _gradebook(classes["seq"])
    assert scores["right"][0] == 9 and scores["untouched"][0] == 0 and scores["tampered"][0] == 9
    assert scores["hostile"][0] == scores["hostile-colab"][0] == 8
    assert "REVIEW" in next(ln for ln in out.splitlines() if ln.startswith("hostile "))


def test_a_worker_with_another_course_is_refused_with_one_line(dask_run):
    refused = [ln for ln in dask_run["stdout"].splitlines() if "refused" in ln]
    assert len(refused) == 1 and "its source tests differ" in refused[0], dask_run["stdout"]
    assert "Traceback" not in refused[0]
    assert "autograder: worker" in dask_run["bad_log"] and "another course" in dask_run["bad_log"]


def test_reports_equal_check_of_the_notebook_alone(classes, dask_run, monkeypatch):
    from autograder.checks import _secret
    from autograder.grade import grade_notebook

    root = dask_run["root"]
    monkeypatch.setenv("AUTOGRADER_SECRET", SECRET)
    monkeypatch.setenv("DCGAN_COURSE_ROOT", str(root))
    _secret.reset()
    try:
        for student in ("hostile-colab",):
            path = root / "autograder" / "submitted" / student / FIXTURE / f"{FIXTURE}.ipynb"
            alone = grade_notebook(path, assignment=FIXTURE, root=root, timeout=float(TIMEOUT)).to_dict()
            entry = json.loads((root / "autograder" / "reports" / FIXTURE / f"{student}.json").read_text())
            for d in (alone, entry["report"]):
                d.pop("seconds")
            assert entry["report"] == alone, student
    finally:
        _secret.reset()


def test_jobs_2_local_cluster_stops_on_ctrl_c_and_a_rerun_continues(classes, capsys, monkeypatch):
    root = classes["local"]
    students = sorted(p.stem for p in (root / "inbox").iterdir())
    driver = subprocess.Popen(_grade_cmd(root, "--jobs", "2"), cwd=root, env=_env(root), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        assert driver.stdout is not None
        first = []
        for line in driver.stdout:
            first.append(line)
            if re.search(r"\d+/9\s", line):
                driver.send_signal(signal.SIGINT)  # Ctrl-C after the first grade
                break
        rest, err = driver.communicate(timeout=120)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
    assert driver.returncode == 130, "".join(first) + rest + err
    assert "run the same command again to continue" in err
    assert "Traceback" not in err
    done = len(list((root / "autograder" / "reports" / FIXTURE).glob("*.json")))
    assert 1 <= done < len(students)

    # the reruns: the same command in this process (what is tested is the ledger, not the interpreter)
    status, again = _grade_here(root, capsys, monkeypatch, "--jobs", "2")
    assert status == 0, again
    assert f"{done} submission(s) already graded" in again
    assert f"{len(students) - done} graded, {done} already graded" in again
    _assert_same_as_sequential(classes["seq"], root, students)

    # nothing new: nothing graded; one changed file: that one only (one submission to grade: one worker)
    status, same = _grade_here(root, capsys, monkeypatch, "--jobs", "2")
    assert status == 0 and f"0 graded, {len(students)} already graded" in same, same
    shutil.copy(classes["seq"] / "inbox" / "right.ipynb", root / "inbox" / "untouched.ipynb")
    status, changed = _grade_here(root, capsys, monkeypatch, "--jobs", "1")
    assert status == 0 and f"1 graded, {len(students) - 1} already graded" in changed, changed
    assert re.search(r"^untouched\s+9/9", changed, re.M), changed
    assert _gradebook(root)["untouched"][0] == 9
    assert _csv(root)["untouched"]["raw_score"] == "9.0"


def test_grade_refuses_bad_input_with_one_line(classes, tmp_path, capsys, monkeypatch):
    from autograder import cli

    root = classes["seq"]
    monkeypatch.chdir(tmp_path)
    # the unreachable scheduler, in its own interpreter (distributed's own logging included); its connect
    # retries run out after 10 s, while the argument checks run in this process
    unreachable = subprocess.Popen(
        [sys.executable, "-m", "autograder", "grade", FIXTURE, "--scheduler", f"tcp://127.0.0.1:{_free_port()}",
         "--course", str(root)], cwd=tmp_path, env=_env(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        for argv, want in [
            (["grade", "99_nothing", "--course", str(root)], "no such lesson"),
            (["grade", FIXTURE, "--jobs", "0", "--course", str(root)], "--jobs must be at least 1"),
        ]:
            capsys.readouterr()
            status = cli.main(argv)
            err = capsys.readouterr().err
            assert status in (2, 3), err
            assert want in err and "Traceback" not in err, err
        _, err = unreachable.communicate(timeout=120)
    finally:
        if unreachable.poll() is None:
            unreachable.kill()
            unreachable.wait()
    assert unreachable.returncode in (2, 3), err
    assert "cannot reach the Dask scheduler" in err and "Traceback" not in err, err


def test_report_of_the_graded_class_names_its_mistakes(classes, dask_run):
    from autograder import report as class_report

    root = dask_run["root"]
    s = class_report.summarise(FIXTURE, root)
    assert sorted(s.students) == classes["students"]
    counts = class_report.group_counts(s)
    # wrong and wrong-colab forgot relu's clamp: one named mistake, two students, whatever values they met
    relu = {m: k for m, k in counts["relu"].items() if "reference" in m or "differs" in m}
    assert list(relu.values()) == [2], counts["relu"]
    assert sorted(f[0] for f in s.flagged) == ["hostile", "hostile-colab"]
    assert s.totals["right"] == 9 and s.totals["untouched"] == 0
    page = class_report.write_report(FIXTURE, root).read_text(encoding="utf-8")
    assert page.count("data:image/png;base64,") == 3 and "hostile-colab" in page


def test_readme_worker_settings_are_the_local_clusters_as_dask_reads_them():
    """The environment the README gives a ``dask worker`` is DASK_CONFIG's worker settings, read back by Dask's
    own parser; the README names each variable."""
    import dask.config

    env = classgrade.worker_environ()
    assert "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED" in env
    with dask.config.set(dask.config.collect_env(env)):
        read = {key: dask.config.get(key) for key in classgrade.WORKER_SETTINGS}
    assert read == {key: classgrade.DASK_CONFIG[key] for key in classgrade.WORKER_SETTINGS}
    assert read["distributed.worker.profile.enabled"] is False
    readme = (course.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    for name, value in env.items():
        assert f"{name}={value}" in readme, name


def _schema_formats(node: object) -> set[str]:
    """Every ``format`` keyword value in a JSON schema (a property named "format" holds a dict, not a string)."""
    if isinstance(node, dict):
        found = {node["format"]} if isinstance(node.get("format"), str) else set()
        return found.union(*(_schema_formats(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_schema_formats(v) for v in node))
    return set()


def test_grading_processes_skip_the_unused_iri_grammar_and_validate_notebooks_as_before():
    """A Dask worker's or the CLI's process never loads ``rfc3987_syntax`` (1.4 CPU-seconds at import, for IRI
    format checks): no schema nbformat validates with names an IRI format, and validation still refuses what
    is malformed."""
    import importlib.util

    schemas = sorted((Path(nbformat.__file__).parent / "v4").glob("*.schema.json"))
    assert schemas
    for path in schemas:
        assert not {f for f in _schema_formats(json.loads(path.read_text())) if "iri" in f}, path.name
    probe = (
        "import sys, json\n"
        "import autograder.classgrade\n"  # what unpickling a task imports first in a Dask worker
        "import nbformat\n"
        "from nbformat.v4 import new_code_cell, new_notebook\n"
        "nbformat.validate(new_notebook(cells=[new_code_cell('x = 1')]))\n"
        "bad = new_notebook(cells=[new_code_cell('x = 1')]); bad.cells[0]['outputs'] = 'none'\n"
        "try:\n    nbformat.validate(bad); refused = False\n"
        "except nbformat.ValidationError:\n    refused = True\n"
        "print(json.dumps({'loaded': sys.modules.get('rfc3987_syntax') is not None, 'refused': refused}))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         cwd=course.REPO_ROOT)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"loaded": False, "refused": True}
    if importlib.util.find_spec("rfc3987_syntax") is not None:  # installed here: without the skip, it loads
        plain = subprocess.run([sys.executable, "-c", "import sys, nbformat; print('rfc3987_syntax' in sys.modules)"],
                               capture_output=True, text=True, check=True)
        assert plain.stdout.strip() == "True"


def test_a_closing_worker_freezes_its_objects_a_running_one_does_not():
    """``CourseCheck.teardown``: a worker that closes leaves its objects to the exit (no collection walks torch's);
    a long-lived worker whose plugin is replaced by the next class run keeps collecting."""
    import gc
    from types import SimpleNamespace

    from distributed.core import Status

    plugin = classgrade.CourseCheck("01_x", None, {})
    assert gc.get_freeze_count() == 0
    try:
        plugin.teardown(SimpleNamespace(status=Status.running))
        assert gc.get_freeze_count() == 0
        plugin.teardown(SimpleNamespace(status=Status.closing))
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


WORKER_STATE = """
import json, signal, sys
from autograder import classgrade

def state():
    return {"grader imported": "autograder.trusted" in sys.modules and "torch" in sys.modules,
            "ctrl-c ignored": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
            "iri grammar skipped": sys.modules.get("rfc3987_syntax", None) is None,
            "one torch thread": "torch" in sys.modules and sys.modules["torch"].get_num_threads() == 1}

if __name__ == "__main__":
    with classgrade._client(2, None) as client:
        client.wait_for_workers(2, timeout=60)
        print(json.dumps(list(client.run(state).values())))
"""


def test_local_cluster_workers_are_forked_with_the_grader_imported_and_ctrl_c_ignored(tmp_path):
    """``--jobs N``'s workers (a fresh driver, as the CLI is, with no thread variable set) come from the
    forkserver the driver starts first: torch and the grader imported once, before any task, with Dask's one
    OpenMP thread as a spawned worker has it; Ctrl-C ignored (the driver stops them)."""
    script = tmp_path / "workers.py"
    script.write_text(WORKER_STATE, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "MKL_", "OPENBLAS_"))}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env, timeout=300,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    states = json.loads(out.stdout.strip().splitlines()[-1])
    assert states == [{"grader imported": True, "ctrl-c ignored": True, "iri grammar skipped": True,
                       "one torch thread": True}] * 2


def _environment_mark() -> str | None:
    return os.environ.get("AUTOGRADER_TEST_MARK")  # read in the worker (``os.environ.get`` would carry the driver's)


def test_local_cluster_workers_have_the_drivers_environment_as_it_is_now(monkeypatch):
    """A process that grades again after its environment changed: the forkserver's children would carry the
    environment it started with, so the workers are spawned with the one of the moment."""
    with classgrade._client(1, None) as client:  # the forkserver runs from here on
        client.wait_for_workers(1, timeout=60)
    monkeypatch.setenv("AUTOGRADER_TEST_MARK", "changed")
    with classgrade._client(1, None) as client:
        client.wait_for_workers(1, timeout=60)
        seen = client.run(_environment_mark)
    assert list(seen.values()) == ["changed"]


def test_a_local_workers_log_drops_only_its_heartbeat_failure():
    """What ``LocalWorkerLogs`` filters: Dask's heartbeat failure (the driver closing the cluster), nothing else."""
    import logging

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, msg, None, None)

    assert not classgrade._not_a_heartbeat_failure(record("Failed to communicate with scheduler during heartbeat."))
    assert classgrade._not_a_heartbeat_failure(record("Compute Failed"))
    assert classgrade._not_a_heartbeat_failure(record("autograder: worker %s refused: another course (%s)"))
