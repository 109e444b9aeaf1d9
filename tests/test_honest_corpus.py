"""The honest-answer corpus (tests/honest/): honest answers are never refused, and every one earns full marks.

(a) every corpus cell passes the static screen with no finding, read in notebook order after the
lesson's own locked cells; (b) every answer passes its exercise's check, visible and hidden cases,
run in this process; (c) a few go through the real trusted grader in a filled-in lesson notebook.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from IPython.core.inputtransformer2 import TransformerManager

from autograder import cli, course
from autograder.screen import COMMON_MODULE_NAMES, Screen

HONEST = Path(__file__).parent / "honest"
#: the names a lesson's imports cell binds, for running an answer in this process
PREAMBLE = (
    "import math\nimport numpy as np\nimport torch\nimport torch.nn.functional as F\nfrom torch import nn\n"
    "from torchvision.utils import make_grid\n"
)


@dataclass(frozen=True)
class Answer:
    """One corpus file: its cells, the lesson it answers and the check call that grades it."""

    path: Path
    lesson: str
    check: str
    cells: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.stem


def _load(path: Path) -> Answer:
    text = path.read_text()
    header = dict(re.findall(r"^# (lesson|check|style): (.+)$", text, re.M))
    assert "lesson" in header and "check" in header, f"{path.name}: header needs '# lesson:' and '# check:'"
    cells = tuple(c.strip("\n") for c in re.split(r"^# %%.*$", text, flags=re.M) if c.strip())
    return Answer(path, header["lesson"].strip(), header["check"].strip(), cells)


#: ``.py``: plain Python cells; ``.ipy``: cells with IPython magics (ruff cannot read those)
ANSWERS = [_load(p) for p in sorted([*HONEST.glob("*.py"), *HONEST.glob("*.ipy")])]


def _lesson_dir(lesson: str) -> str:
    return next(a for a in course.assignments(course.REPO_ROOT) if a.startswith(lesson))


def _locked_cells(lesson: str) -> list[str]:
    """The code cells of the released lesson a student cannot edit (setup, imports, demos)."""
    nb = nbformat.read(course.release_notebook(_lesson_dir(lesson), course.REPO_ROOT), as_version=4)
    return [c.source for c in nb.cells if c.cell_type == "code"
            and not c.metadata.get("nbgrader", {}).get("solution") and not c.metadata.get("nbgrader", {}).get("grade")]


def test_the_corpus_is_large_and_covers_every_exercise():
    assert len(ANSWERS) >= 100, len(ANSWERS)
    for lesson in (f"{i:02d}" for i in range(11)):
        mod = importlib.import_module(f"autograder.checks.lesson{lesson}")
        graded = {n for n in dir(mod) if n.startswith("check_") and hasattr(getattr(mod, n), "exercise")}
        covered = {a.check.split("(")[0] for a in ANSWERS if a.lesson == lesson}
        assert graded <= covered, f"lesson {lesson}: no honest answer for {sorted(graded - covered)}"


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: a.name)
def test_honest_answer_passes_the_screen(answer):
    screen = Screen(COMMON_MODULE_NAMES)
    for cell in _locked_cells(answer.lesson):
        screen.learn(cell)
    for i, cell in enumerate(answer.cells):
        findings = screen.screen(cell)
        assert findings == [], f"{answer.name}, cell {i}: {[str(f) for f in findings]}"


def _run(answer: Answer, hidden: bool) -> str:
    ns: dict = {"grading": lambda: True}
    exec(PREAMBLE, ns)  # noqa: S102 - the corpus is the project's own code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for cell in answer.cells:
            source = TransformerManager().transform_cell(cell)
            if "get_ipython()" in source:
                continue  # a magic (%timeit, %matplotlib): a scratch cell, nothing to grade
            exec(compile(source, str(answer.path), "exec"), ns)  # noqa: S102
        ns["_checks"] = importlib.import_module(f"autograder.checks.lesson{answer.lesson}")
        call = answer.check[:-1] + (", hidden=True)" if hidden else ")")
        exec(f"_checks.{call}", ns)  # noqa: S102 - raises CheckFailure when the answer is wrong
    return out.getvalue()


@pytest.mark.parametrize("answer", ANSWERS, ids=lambda a: a.name)
def test_honest_answer_earns_full_marks(answer, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a checkpoint answer writes its file here
    for hidden in (False, True):
        printed = _run(answer, hidden)
        assert "\u2714" in printed, printed


# --- (c) a few through the real trusted grader, in the lesson's own notebook ---

#: corpus answers graded the trusted way: answer file -> the answer cell (grade id) it fills in
THROUGH_THE_GRADER = {
    "l05_weights_init_tutorial_classname": "dcgan_weights_init",
    "l01_down_block_getattr_names": "down_block",
    "l03_batchnorm2d_scratch_register_buffer": "batchnorm2d_scratch",
    "l07_train_step_examples_style": "train_step",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(THROUGH_THE_GRADER))
def test_honest_answer_through_the_trusted_grader(name, tmp_path, capsys):
    answer = next(a for a in ANSWERS if a.name == name)
    lesson = _lesson_dir(answer.lesson)
    release = nbformat.read(course.release_notebook(lesson, course.REPO_ROOT), as_version=4)
    source = nbformat.read(course.source_notebook(lesson, course.REPO_ROOT), as_version=4)
    from course_fixture import filled

    gid = THROUGH_THE_GRADER[name]
    nb = filled(release, source, {gid: "\n\n\n".join(answer.cells)})
    path = tmp_path / f"{lesson}.ipynb"
    nbformat.write(nb, path)
    cli.main(["check", str(path), "--json", "--timeout", "60", "--course", str(course.REPO_ROOT)])
    report = json.loads(capsys.readouterr().out)
    assert report.get("error") is None, report["error"]
    assert not report["flags"], report["flags"]
    assert report["full_marks"], [(c["grade_id"], c["message"]) for c in report["cells"] if c.get("message")]


def _false_refusals(screen_file: str) -> None:
    """Print the corpus answers another version of screen.py refuses (its ``screen_source``, cell by cell),
    next to this one's. ``git show main:autograder/screen.py > /tmp/old.py``, then
    ``python tests/test_honest_corpus.py /tmp/old.py``."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("old_screen", screen_file)
    old = importlib.util.module_from_spec(spec)
    sys.modules["old_screen"] = old
    spec.loader.exec_module(old)
    counts = {"old": [0, set()], "new": [0, set()]}
    for answer in ANSWERS:
        modules, screen = set(COMMON_MODULE_NAMES), Screen(COMMON_MODULE_NAMES)
        for cell in _locked_cells(answer.lesson):
            old.screen_source(cell, modules)
            screen.learn(cell)
        for cell in answer.cells:
            for key, findings in (("old", old.screen_source(cell, modules)), ("new", screen.screen(cell))):
                if findings:
                    counts[key][0] += 1
                    counts[key][1].add(answer.name)
                    print(f"{key} refuses {answer.name}: {findings[0]}")
    cells = sum(len(a.cells) for a in ANSWERS)
    print(f"{len(ANSWERS)} answers, {cells} cells; refused by {screen_file}: {len(counts['old'][1])} answers "
          f"({counts['old'][0]} cells); by this screen: {len(counts['new'][1])} answers ({counts['new'][0]} cells)")


if __name__ == "__main__":
    import sys

    _false_refusals(sys.argv[1])
