"""What several test files share: asserting that a check fails with a message, and one course.

- ``fails``: run a check on a deliberately wrong answer and assert it raises ``CheckFailure``
  naming the mistake (the helper that tests/test_checks_lesson04/06/07/10.py each write for
  themselves as ``expect_failure`` / ``fails``).
- ``generated_course``: one throw-away copy of the course (the fixture lesson and every real
  lesson) with ``nbgrader generate_assignment`` run once, for the whole session: the nbgrader
  tests submit into it and must not change its ``source/`` or ``release/``.
- ``fixture_course``: the fixture lesson alone (tests/course_fixture.py), released, one per test module:
  the grading tests grade into it.
- ``execute_lesson`` / ``lesson_runs``: a solution notebook run top to bottom in a kernel, as a
  student runs it, in either lesson profile (tests/test_notebooks_*.py).
- ``dcgan_ref_main``: ``python -m dcgan_ref ARGS`` as ``dcgan_ref.cli.main`` in the test process, its
  exit status and output captured as a subprocess's would be (tests/test_cli.py, test_trainer_errors.py).
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from autograder.checks._core import CheckFailure


def check_fails(check: Callable, *args, words: tuple[str, ...] | list[str] = (), match: str | None = None,
                hidden: bool = True) -> str:
    """``check(*args, hidden=hidden)`` must raise CheckFailure whose message holds every one of
    ``words`` (and matches the regex ``match``); returns the message for further asserts."""
    with pytest.raises(CheckFailure, match=match) as info:
        check(*args, hidden=hidden)
    message = str(info.value)
    missing = [w for w in words if w not in message]
    assert not missing, f"the message does not name {missing}: {message}"
    return message


def dcgan_ref_main(*args: object) -> subprocess.CompletedProcess:
    """``python -m dcgan_ref ARGS`` without an interpreter to start: ``dcgan_ref.cli.main`` (what the module's
    ``__main__`` runs) here, from the repository, with Python's warnings off (the CLI tests' subprocesses run
    with PYTHONWARNINGS=ignore) and DCGAN_REF_DEBUG unset; stdout, stderr and the exit status captured.
    A traceback fails the calling test itself."""
    from dcgan_ref import cli

    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    debug, cwd = os.environ.pop("DCGAN_REF_DEBUG", None), os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                code = cli.main(argv)
            except SystemExit as exit_:  # argparse's usage errors
                code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        os.chdir(cwd)
        if debug is not None:
            os.environ["DCGAN_REF_DEBUG"] = debug
    return subprocess.CompletedProcess(["python", "-m", "dcgan_ref", *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture
def fails() -> Callable[..., str]:
    """The ``check_fails`` helper: ``fails(check, answer, words=["padding"])``."""
    return check_fails


@pytest.fixture(scope="session")
def generated_course(tmp_path_factory) -> Path:
    """A copy of the course (fixture lesson + real lessons) with every assignment generated into a
    fresh gradebook by ``nbgrader generate_assignment``; built once per test process."""
    from course_fixture import build_course, nbgrader

    root = build_course(tmp_path_factory.mktemp("course"), with_real_lessons=True)
    nbgrader(root, "generate_assignment", "*", "--force", "--log-level=WARN")
    return root


@pytest.fixture(scope="module")
def fixture_course(tmp_path_factory) -> Path:
    """A course of the fixture lesson alone, released (``release.generate``); one per test module."""
    from course_fixture import build_course

    from autograder.release import generate

    root = build_course(tmp_path_factory.mktemp("course"), with_real_lessons=False)
    generate(root=root, quiet=True)
    return root


def execute_lesson(lesson: str, workdir: Path, runs: Path, profile: str | None = None,
                   stop_after: Callable[[object], bool] | None = None):
    """Run the solution notebook of ``lesson`` in a kernel as a student would (not grading), in
    ``workdir``, its trainer runs in ``runs`` (DCGAN_RUNS), with DCGAN_LESSON_PROFILE=``profile``
    (None: the device decides); cells after the first one ``stop_after`` accepts are not run.
    Asserts no cell raised and no graded cell wrote to stderr; returns the executed notebook."""
    import os
    import shutil

    import nbformat
    from nbclient import NotebookClient

    from autograder import course
    from autograder.notebook import PROFILE_ENV

    src = course.source_notebook(lesson)
    shutil.copy(src, workdir / src.name)
    nb = nbformat.read(workdir / src.name, as_version=4)
    if stop_after is not None:
        nb.cells = nb.cells[: next(i for i, c in enumerate(nb.cells) if stop_after(c)) + 1]
    env = {k: v for k, v in course.tool_env().items() if k not in ("NBGRADER_EXECUTION", PROFILE_ENV)}
    env.update(MPLBACKEND="agg", DCGAN_DATA_ROOT=str(workdir / "data"), DCGAN_RUNS=str(runs),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))  # fmt: skip
    if profile is not None:
        env[PROFILE_ENV] = profile
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(workdir)}})  # fmt: skip
    client.execute(env=env)
    errors = [(c.id, o.ename, o.evalue) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]  # fmt: skip
    assert not errors, errors
    stderr = [(c.id, o.text[:300]) for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "stream" and o.name == "stderr" and c.metadata.get("nbgrader", {}).get("grade")]
    assert not stderr, f"graded cells wrote to stderr (nbgrader scores that 0): {stderr}"
    return nb


def notebook_stdout(nb) -> str:
    """Everything the executed notebook's code cells printed to stdout."""
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")  # fmt: skip


@pytest.fixture(scope="session")
def lesson_runs(tmp_path_factory) -> Callable[..., tuple[object, str]]:
    """``lesson_runs(lesson, workdir, profile, stop_after=None)`` -> (executed notebook, its stdout):
    ``execute_lesson`` with one DCGAN_RUNS folder per profile for the session, so lesson 09 finds
    lesson 08's run as in a student's session, and nothing lands in ~/.cache."""
    root = tmp_path_factory.mktemp("runs")

    def run(lesson: str, workdir: Path, profile: str | None, stop_after=None):
        nb = execute_lesson(lesson, workdir, root / (profile or "device"), profile, stop_after)
        return nb, notebook_stdout(nb)

    return run


@pytest.fixture
def no_screen(monkeypatch):
    """Grading with the static screen switched off: the sandbox and the judges must hold on their own."""
    from autograder import screen, trusted

    class Open(screen.Screen):
        def screen(self, source: str) -> list:
            self.learn(source)
            return []

    monkeypatch.setattr(trusted, "Screen", Open)
