"""Trusted grading against hostile notebooks: what a clever student tries, class by class.

Each attack sits in an answer cell of an otherwise blank (or otherwise correct) submission of the
fixture lesson (tests/course_fixture.py) or lesson 01, graded with ``python -m autograder check``.
The rule for all of them: a wrong or empty answer earns nothing, whatever the notebook does to the
process that runs it, and one bad cell never costs the others. Most attacks are graded twice: with
the static screen (the default: the answer is not run, flagged for review) and with the screen
switched off, where the sandbox and the judge alone must hold (defence in depth).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from course_fixture import (
    CHECKS_SOURCE,
    FIXTURE,
    LESSON01,
    build_course,
    cell_points,
    filled,
    replace_solution,
    solution_code,
)

from autograder import cli, course, sandbox, trusted
from autograder.screen import screen_source

pytestmark = pytest.mark.slow
TIMEOUT = "20"


def _notebooks(root: Path, lesson: str = FIXTURE):
    src = nbformat.read(course.source_notebook(lesson, root), as_version=4)
    rel = nbformat.read(course.release_notebook(lesson, root), as_version=4)
    return src, rel


def _answers(src) -> dict[str, str]:
    return {c.metadata.nbgrader.grade_id: c.source for c in src.cells if c.metadata.nbgrader.get("solution")}


def blank_with(rel, cells: dict[str, str]):
    """The released (blank) notebook with the answer cells ``cells`` replaced."""
    nb = nbformat.from_dict(json.loads(nbformat.writes(rel)))
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in cells:
            cell.source = cells[gid]
    return nb


def check(path: Path, root: Path, capsys, *extra: str) -> tuple[int, dict]:
    status = cli.main(["check", str(path), "--json", "--timeout", TIMEOUT, "--course", str(root), *extra])
    out = capsys.readouterr().out
    return status, json.loads(out)


def points(report: dict) -> dict[str, float]:
    return {c["grade_id"]: c["points"] for c in report["cells"]}


# --- attacks on the judgement: with the screen off, a blank submission still scores 0 ---

ATTACKS = {
    "input transformer rewrites later cells": (
        "get_ipython().input_transformers_post.append(lambda lines: ['print(\"\\u2714 passed\")\\n'])"),
    "tracebacks silenced, errors cleared": (
        "ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\n_orig = ip.run_cell\n"
        "def _quiet(*a, **k):\n    r = _orig(*a, **k)\n    r.error_in_exec = None\n    return r\nip.run_cell = _quiet"),
    "patched truth: allclose, equal, any/all, assert_close, numpy": (
        "import torch, numpy\ntorch.allclose = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
        "torch.Tensor.any = lambda self, *a, **k: torch.tensor(False)\n"
        "torch.Tensor.all = lambda self, *a, **k: torch.tensor(True)\n"
        "torch.testing.assert_close = lambda *a, **k: None\nnumpy.allclose = lambda *a, **k: True"),
    "fake checks module first on sys.modules and sys.path": (
        "import sys, types\nfake = types.ModuleType('fixture_checks')\n"
        "class _Ex:\n    def run_probe(self, objs, cases):\n        return [{'value': None}] * 3\n"
        "def _chk(*a, **k):\n    print('\\u2714 passed')\n_chk.exercise = _Ex()\n"
        "for n in ['double', 'add_bias', 'flatten_batch', 'relu', 'as_float']:\n"
        "    setattr(fake, 'check_' + n, _chk)\nsys.modules['fixture_checks'] = fake\n"
        "class _Finder:\n    def find_spec(self, name, path=None, target=None):\n"
        "        return None\nsys.meta_path.insert(0, _Finder())"),
    "importlib.import_module patched": (
        "import importlib, types\n_real = importlib.import_module\n"
        "importlib.import_module = lambda name, *a: types.SimpleNamespace()"),
    "frames read for the expected value": (
        "import inspect\ndef double(x):\n    for f in inspect.stack():\n"
        "        for k in ('expected', 'want', 'reference'):\n"
        "            if k in f.frame.f_locals:\n                return f.frame.f_locals[k]\n    return x"),
    "solutions executed from autograder.__file__": (
        "import autograder, json, pathlib\nroot = pathlib.Path(autograder.__file__).resolve().parents[1]\n"
        "for nb in root.glob('solutions/*/*.ipynb'):\n    for c in json.load(open(nb))['cells']:\n"
        "        if c['cell_type'] == 'code':\n            exec(''.join(c['source']))"),
}
#: misbehaving but not hostile to the judgement: the screen has no reason to refuse them
CRASHES = {
    "SystemExit and KeyboardInterrupt from the answer": (
        "def double(x):\n    raise SystemExit(0)\ndef add_bias(x, b):\n    raise KeyboardInterrupt"),
}


@pytest.mark.parametrize("attack", list(ATTACKS) + list(CRASHES))
def test_attack_on_blank_submission_earns_nothing_without_the_screen(attack, fixture_course, tmp_path, capsys,
                                                                     no_screen):
    src, rel = _notebooks(fixture_course)
    nb = blank_with(rel, {"double": {**ATTACKS, **CRASHES}[attack]})
    path = tmp_path / f"{FIXTURE}.ipynb"
    nbformat.write(nb, path)
    status, report = check(path, fixture_course, capsys)
    assert report["error"] is None, report["error"]
    assert report["containment"] in ("bwrap", "user", "process")
    assert report["score"] == 0, [(c["grade_id"], c["status"], c["message"]) for c in report["cells"] if c["points"]]
    assert status == cli.EXIT_NOT_FULL


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_every_attack_is_flagged_by_the_screen(attack):
    assert screen_source(ATTACKS[attack], {"torch", "nn", "F"}), f"the screen lets through: {attack}"


def test_int_subclass_and_tensor_subclass_are_not_their_base_types(tmp_path, capsys, no_screen):
    """An ``int`` whose == is always true, a Tensor subclass whose comparisons lie: exact types only."""
    src, rel = _notebooks(course.REPO_ROOT, LESSON01)
    answers = _answers(src)
    cheat = ("class Liar(int):\n    def __eq__(self, other):\n        return True\n    __hash__ = int.__hash__\n"
             "def conv_output_size(h, k, s, p, d=1):\n    return Liar(0)")
    nb = filled(rel, src, {"conv_output_size": cheat})
    path = tmp_path / f"{LESSON01}.ipynb"
    nbformat.write(nb, path)
    status, report = check(path, course.REPO_ROOT, capsys)
    got = points(report)
    assert got["test_conv_output_size"] == 0
    msg = next(c["message"] for c in report["cells"] if c["grade_id"] == "test_conv_output_size")
    assert "Liar" in msg and "int" in msg, msg
    assert got["test_down_block"] > 0  # the rest of the notebook is graded
    assert answers  # the solution's other answers were used


def test_checks_on_disk_cannot_be_overwritten_and_the_next_notebook_is_unaffected(fixture_course, tmp_path,
                                                                                    capsys, no_screen):
    target = Path(sandbox.package_dirs()["autograder"]) / "checks" / "_core.py"
    before = target.read_bytes()
    overwrite = (
        "import autograder.checks._core as c, pathlib, fixture_checks\n"
        "for p in [pathlib.Path(c.__file__), pathlib.Path(fixture_checks.__file__),\n"
        f"          pathlib.Path({str(target)!r})]:\n"
        "    try:\n        p.write_text('def fail(m):\\n    pass\\n')\n"
        "    except OSError as e:\n        print('refused:', e)")
    src, rel = _notebooks(fixture_course)
    first = tmp_path / "a" / f"{FIXTURE}.ipynb"
    first.parent.mkdir()
    nbformat.write(blank_with(rel, {"double": overwrite}), first)
    _, report = check(first, fixture_course, capsys)
    assert report["score"] == 0
    assert target.read_bytes() == before
    assert (fixture_course / "solutions" / FIXTURE / "fixture_checks.py").read_text() == CHECKS_SOURCE
    second = tmp_path / "b" / f"{FIXTURE}.ipynb"
    second.parent.mkdir()
    nbformat.write(rel, second)
    _, report2 = check(second, fixture_course, capsys)
    assert report2["score"] == 0


@pytest.mark.parametrize("containment", ["auto", "user"])
def test_detached_process_dies_with_the_worker_and_reaches_nothing(containment, fixture_course, tmp_path, capsys,
                                                                   no_screen):
    if containment == "user" and os.geteuid() != 0:
        pytest.skip("the unprivileged-uid fallback needs a root grader")
    marker = tmp_path / "escaped.txt"
    gradebook = fixture_course / "autograder" / "gradebook.db"
    spawn = (
        "import subprocess, sys\n"
        "code = ('import time, pathlib\\n'\n"
        f"        'for _ in range(600):\\n'\n"
        f"        '    for p in [{str(marker)!r}, {str(gradebook)!r}]:\\n'\n"
        "        '        try: pathlib.Path(p).write_text(\"owned\")\\n'\n"
        "        '        except OSError: pass\\n'\n"
        "        '    time.sleep(0.05)  # DETACHED-SENTINEL')\n"
        "subprocess.Popen([sys.executable, '-c', code], start_new_session=True,\n"
        "                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)")
    src, rel = _notebooks(fixture_course)
    path = tmp_path / f"{FIXTURE}.ipynb"
    nbformat.write(blank_with(rel, {"double": spawn}), path)
    existed = gradebook.exists()
    _, report = check(path, fixture_course, capsys, "--containment", containment)
    assert report["score"] == 0 and report["error"] is None, report
    import time

    time.sleep(1.0)
    alive = [p for p in os.listdir("/proc") if p.isdigit() and _cmdline_has(p, "DETACHED-SENTINEL")]
    for pid in alive:  # whatever the outcome, the test leaves no process behind
        with contextlib.suppress(OSError):
            os.kill(int(pid), signal.SIGKILL)
    if report["containment"] == "process":
        pytest.skip("no containment on this machine: a detached process can outlive the worker")
    assert not alive, "a process the notebook started outlived grading"
    if containment == "user":
        assert report["containment"] == "user"
    else:
        assert not marker.exists()  # bwrap: the grader's folders are not even visible
    assert gradebook.exists() == existed and (not existed or gradebook.read_bytes() != b"owned")


def _cmdline_has(pid: str, text: str) -> bool:
    try:
        return text.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


# --- one bad cell costs that cell only ---


def test_os_exit_and_an_endless_loop_cost_their_own_cells(fixture_course, tmp_path, capsys, no_screen):
    src, rel = _notebooks(fixture_course)
    answers = _answers(src)
    overrides = {
        "double": "import os\nos._exit(0)",
        "flatten_batch": replace_solution(answers["flatten_batch"],
                                          "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                                          "while True:\n    pass"),
    }
    path = tmp_path / f"{FIXTURE}.ipynb"
    nbformat.write(filled(rel, src, overrides), path)
    status, report = check(path, fixture_course, capsys, "--timeout", "8")
    pts, got = cell_points(src), points(report)
    assert got["test_double"] == 0 and got["test_flatten_batch"] == 0
    for gid in ("test_add_bias", "test_relu", "test_as_float"):
        assert got[gid] == pts[gid], (gid, report["cells"])
    assert report["worker_restarts"] >= 2
    assert status == cli.EXIT_NOT_FULL and report["error"] is None
    msg = {c["grade_id"]: c["message"] for c in report["cells"]}
    assert "time limit" in msg["test_flatten_batch"]


def test_worker_that_fails_to_start_once_is_retried(fixture_course, tmp_path, capsys, monkeypatch):
    real = trusted.WorkerHandle.__init__
    calls = {"n": 0}

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 1:
            raise trusted.WorkerDied("died at start-up")
        real(self, *a, **k)

    monkeypatch.setattr(trusted.WorkerHandle, "__init__", flaky)
    src, rel = _notebooks(fixture_course)
    path = tmp_path / f"{FIXTURE}.ipynb"
    nbformat.write(filled(rel, src), path)
    status, report = check(path, fixture_course, capsys)
    assert status == cli.EXIT_FULL_MARKS and report["full_marks"], report["cells"]


def test_worker_that_never_starts_is_could_not_grade_not_a_zero(fixture_course, tmp_path, capsys, monkeypatch):
    def dead(self, *a, **k):
        raise trusted.WorkerDied("died at start-up")

    monkeypatch.setattr(trusted.WorkerHandle, "__init__", dead)
    monkeypatch.setattr(trusted.time, "sleep", lambda s: None)
    src, rel = _notebooks(fixture_course)
    path = tmp_path / f"{FIXTURE}.ipynb"
    nbformat.write(filled(rel, src), path)
    status, report = check(path, fixture_course, capsys)
    assert status == cli.EXIT_CANNOT_GRADE
    assert "could not start" in report["error"]
    assert report["score"] == 0 and not report["full_marks"]


# --- the static screen: flagged, not run, 0 for that exercise, the rest graded ---


def test_screened_answers_score_zero_and_flag_the_submission(fixture_course, tmp_path, capsys):
    src, rel = _notebooks(fixture_course)
    answers = _answers(src)
    overrides = {
        "double": "import sys\nsys.meta_path.insert(0, object())\n" + solution_code(answers["double"]),
        "add_bias": "import torch.nn.functional as F\nF.relu = lambda x: x\ndef add_bias(x, b):\n    return x + b",
    }
    path = tmp_path / f"{FIXTURE}.ipynb"
    nbformat.write(filled(rel, src, overrides), path)
    status, report = check(path, fixture_course, capsys)
    got, pts = points(report), cell_points(src)
    assert got["test_double"] == 0 and got["test_add_bias"] == 0
    assert got["test_relu"] == pts["test_relu"] and got["test_as_float"] == pts["test_as_float"]
    assert report["review"] is True
    flagged = {f["cell"] for f in report["flags"]}
    assert flagged == {"double", "add_bias"}
    msg = {c["grade_id"]: c["message"] for c in report["cells"]}
    assert "sys" in msg["test_double"] and "not allowed" in msg["test_double"]
    assert "F.relu" in msg["test_add_bias"]


def test_student_added_cells_are_screened_too(fixture_course, tmp_path, capsys):
    src, rel = _notebooks(fixture_course)
    nb = filled(rel, src)
    nb.cells.insert(3, nbformat.v4.new_code_cell("import torch\ntorch.Tensor.__eq__ = lambda a, b: True"))
    path = tmp_path / f"{FIXTURE}.ipynb"
    nbformat.write(nb, path)
    status, report = check(path, fixture_course, capsys)
    assert report["review"] and report["flags"][0]["cell"].startswith("cell ")
    assert report["full_marks"]  # the rest was honest and is graded


HONEST = [
    "def f(x):\n    import numpy as np\n    return torch.from_numpy(np.asarray(x))",
    "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self._w = nn.Parameter(torch.ones(1))\n    def forward(self, x):\n        return x * self._w",
    "import math, itertools, functools, collections\nfrom typing import Any\n"
    "def g(*a: Any):\n    return math.floor(1.5)",
    "def conv(x, w):\n    cols = torch.nn.functional.unfold(x, w.shape[-1])\n"
    "    return torch.einsum('ok,nkl->nol', w.flatten(1), cols)",
    "import os\nos.makedirs('ckpt', exist_ok=True)\ntorch.save({'a': 1}, os.path.join('ckpt', 'x.pt'))",
    "from scipy import linalg\nfrom scipy.linalg import sqrtm\nimport numpy as np\ns = linalg.sqrtm(np.eye(2))",
    "with open('notes.txt') as f:\n    pass",
    "layers = [getattr(nn, 'ReLU')()]\nfor i, layer in enumerate(layers):\n    print(type(layer).__name__)",
]


@pytest.mark.parametrize("source", HONEST)
def test_honest_code_passes_the_screen(source):
    assert screen_source(source, {"torch", "nn", "F"}) == []


# --- knowing the course ---


def test_no_course_is_could_not_grade_with_one_line(tmp_path, capsys):
    src, rel = _notebooks(course.REPO_ROOT, LESSON01)
    nb = filled(rel, src)
    for c in nb.cells:  # test cells replaced by `pass`: without the course there is nothing to grade with
        if c.metadata.get("nbgrader", {}).get("grade"):
            c.source = "pass"
    path = tmp_path / f"{LESSON01}.ipynb"
    nbformat.write(nb, path)
    empty = tmp_path / "empty-course"
    empty.mkdir()
    status = cli.main(["check", str(path), "--assignment", LESSON01, "--course", str(empty), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert status == cli.EXIT_CANNOT_GRADE
    assert "no source tests" in report["error"] and "--course" in report["error"]
    assert report["score"] is None
    # and without --json: one line on stderr, no traceback
    proc = subprocess.run([sys.executable, "-m", "autograder", "check", str(path), "--assignment", LESSON01,
                           "--course", str(empty)], capture_output=True, text=True, env=course.tool_env())
    assert proc.returncode == cli.EXIT_CANNOT_GRADE
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_course_from_environment_and_private_solutions_via_gradebook(tmp_path, capsys, monkeypatch):
    """A course whose solutions stay private: lessons/ and the gradebook are enough to grade."""
    root = build_course(tmp_path / "course")
    from autograder.release import generate

    generate(root=root, database=True, quiet=True)
    import shutil

    shutil.rmtree(root / "solutions" / FIXTURE)
    rel = nbformat.read(course.release_notebook(FIXTURE, root), as_version=4)
    src = nbformat.read(course.release_notebook(FIXTURE, root), as_version=4)
    path = tmp_path / f"{FIXTURE}.ipynb"
    answers = {"double": "def double(x):\n    return 2 * x", "add_bias": "def add_bias(x, b):\n    return x + b"}
    nbformat.write(blank_with(rel, answers), path)
    monkeypatch.setenv("DCGAN_COURSE_ROOT", str(root))
    cli.main(["check", str(path), "--json", "--timeout", TIMEOUT])
    report = json.loads(capsys.readouterr().out)
    assert report.get("error") is None, report
    assert report["source_tests"].endswith("gradebook.db")
    got = points(report)
    assert got["test_double"] > 0 and got["test_add_bias"] > 0 and got["test_relu"] == 0
    assert src  # released notebook used for repairs


def test_manifest_mismatch_stops_grading_with_one_line(tmp_path, monkeypatch):
    import shutil

    pkg = tmp_path / "pkg"
    dirs = {}
    for name, d in sandbox.package_dirs().items():
        shutil.copytree(d, pkg / name, ignore=shutil.ignore_patterns("__pycache__"))
        dirs[name] = pkg / name
    monkeypatch.setattr(sandbox, "package_dirs", lambda: dirs)
    monkeypatch.delenv("AUTOGRADER_UNVERIFIED", raising=False)
    sandbox.write_manifest()
    sandbox.verify_package()  # intact
    (pkg / "autograder" / "checks" / "lesson01.py").write_text("def check_conv_output_size(*a, **k):\n    pass\n")
    with pytest.raises(sandbox.SandboxError, match="lesson01.py does not match"):
        sandbox.verify_package()


def test_recorded_manifest_is_current():
    assert sandbox.read_manifest() == sandbox.compute_manifest(), (
        "autograder/MANIFEST.sha256 is stale: run `python -m autograder manifest` (or `make lessons`)")


# --- Colab downloads as they really come ---


def test_bom_and_moved_answer_cell_without_metadata(fixture_course, tmp_path, capsys):
    src, rel = _notebooks(fixture_course)
    nb = filled(rel, src)
    cells = nb.cells
    idx = next(i for i, c in enumerate(cells) if c.metadata.get("nbgrader", {}).get("grade_id") == "add_bias")
    moved = cells.pop(idx)
    moved.metadata = {}  # Colab dropped its metadata
    cells.append(moved)  # and the student moved it to the end
    path = tmp_path / f"{FIXTURE}.ipynb"
    path.write_bytes(b"\xef\xbb\xbf" + nbformat.writes(nb).encode("utf-8"))
    status, report = check(path, fixture_course, capsys)
    assert report["error"] is None
    assert report["full_marks"], [(c["grade_id"], c["message"]) for c in report["cells"]
                                  if c["points"] != c["max_points"]]
    assert any("names it defines" in r["message"] for r in report["repairs"])
    # collect reads the BOM too, and puts no blank answer back
    from autograder.collect import collect

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "alice.ipynb").write_bytes(path.read_bytes())
    results = collect(FIXTURE, [inbox], root=fixture_course)
    assert not results[0].error, results[0].error
    out = nbformat.read(results[0].dest, as_version=4)
    defs = [c for c in out.cells if c.cell_type == "code" and "def add_bias" in c.source]
    assert len(defs) == 1 and "NotImplementedError" not in defs[0].source


def test_not_a_notebook_is_one_line(tmp_path, capsys, fixture_course):
    path = tmp_path / f"{FIXTURE}.ipynb"
    path.write_text("this is not json")
    status, report = check(path, fixture_course, capsys)
    assert status == cli.EXIT_CANNOT_GRADE and "not a readable notebook" in report["error"]


def test_the_package_copy_is_removed_when_its_process_exits():
    """Each grading process copies the package once (read-only); a class of thousands must not leave one per
    process in /tmp."""
    code = ("import os, sys\nfrom autograder import sandbox\nroot = sandbox.package_copy()\n"
            "assert (root / 'autograder' / 'checks').is_dir() and not os.access(root, os.W_OK) or os.geteuid() == 0\n"
            "if os.fork() == 0:\n    sys.exit(0)\nos.wait()\nassert root.exists(), 'a forked child removed it'\n"
            "print(root)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(course.REPO_ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    root = Path(proc.stdout.strip())
    assert root.name.startswith("autograder-pkg-") and not root.exists()


def test_the_sandbox_sees_the_installation_not_the_grading_scripts_folder(tmp_path, monkeypatch):
    """Only the installation and what its ``.pth`` files add are bound into the sandbox: a grading script run
    from /tmp or from the instructor's home (next to the course) puts that folder on ``sys.path``, and the
    student's code must not read it (nor have it hide the sandbox's own /tmp)."""
    script_dir = tmp_path / "home"
    script_dir.mkdir()
    extra = tmp_path / "other-env-site"
    extra.mkdir()
    site_dir = tmp_path / "site"
    site_dir.mkdir()
    (site_dir / "extra.pth").write_text(f"# a comment\nimport os\n{extra}\n{tmp_path / 'missing'}\n")
    monkeypatch.setattr(sys, "path", [str(script_dir), *sys.path])
    monkeypatch.setattr(sandbox.site, "getsitepackages", lambda: [str(site_dir)])
    dirs = sandbox._python_dirs()
    assert str(script_dir) not in dirs and not any(str(script_dir).startswith(d + os.sep) for d in dirs), dirs
    assert str(extra) in dirs and str(tmp_path / "missing") not in dirs
    assert os.path.realpath(sys.prefix) in dirs or sys.prefix in dirs
