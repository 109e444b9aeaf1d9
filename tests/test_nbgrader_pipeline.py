"""The instructor's pipeline with the real nbgrader commands, headless, on a throw-away copy of the course.

One module-scoped run does what an instructor does (see autograder/INSTRUCTORS.md): generate the
assignments into a fresh gradebook; submit (a) the solution notebooks, (b) the untouched student
notebooks, (c) mixed submissions (answers right, raising, looping forever, with a wrong shape,
triggering a torch UserWarning), (d) the same notebooks as Colab saves them, (e) a tampered one
(test cell edited, another deleted, an answer cell duplicated); repair them with
``python -m autograder collect``; ``nbgrader autograde``; ``nbgrader export``; ``nbgrader
generate_feedback``. The tests below check the result. (a)-(e) use lesson 01 (or the fixture
lesson until lesson 01 exists) and the fixture lesson; every lesson is generated and recorded.
(a) and (b) for every other lesson are graded by the same trusted grading in
test_solution_notebooks*.py (``python -m autograder check``, nbgrader's scoring rules): grading them
through nbgrader a second time would test nothing more.
"""

from __future__ import annotations

import copy
import csv
import html
import re
import subprocess
import sys

import nbformat
import pytest
from course_fixture import (
    FIXTURE,
    HIDDEN_SENTINEL,
    LESSON01,
    MIXED_LESSON,
    answer_ids,
    cell_points,
    checks_by_answer,
    colab_json,
    filled,
    gradebook_scores,
    nbgrader,
    solution_code,
)

from autograder import course
from autograder.release import normalize_release

pytestmark = pytest.mark.slow

#: per-cell limit for this run. Trusted grading counts it in CPU seconds of the worker's processes
#: (autograder/trusted.py: a loaded machine slows a cell without using up its limit; wall-clock
#: time stops a cell only at 5 times the limit, a whole notebook at 20 times), and the costliest
#: request of a lesson 01 or fixture grading takes about 0.6 CPU s with OMP_NUM_THREADS=1 (0.8 unset;
#: the worker's preload), so 3 s is four times every honest cell while each endless loop below (two:
#: mixed2 and its Colab copy) burns 3 CPU s, not the 60 a lesson gets
CELL_TIMEOUT = 3

# per exercise: right / raise / loop / shape (tensor one column short) / warn (right + torch UserWarning) /
# hostile (right, but reaching for the interpreter: the screen refuses it, 0 and flagged)
PLANS = {
    LESSON01: {
        # conv_output_size refuses every tensor op, so the warning comes from down_block
        "mixed1": {"conv_output_size": "raise", "conv2d_scratch": "shape", "down_block": "warn"},
        # only its test cell calls it: one cell times out; a right answer that imports sys is screened out
        "mixed2": {"conv2d_scratch": "loop", "down_block": "hostile"},
    },
    FIXTURE: {
        "mixed1": {"add_bias": "raise", "flatten_batch": "shape", "relu": "loop", "as_float": "warn"},
    },
}


def mutate(kind: str, name: str, source: str) -> str:
    """The answer to exercise ``name`` written right, then (for ``kind`` != right) wrapped to misbehave."""
    code = solution_code(source)
    if kind == "right":
        return code
    if kind == "hostile":
        return "import sys  # an answer never needs the interpreter's machinery\n" + code
    tails = {
        "raise": f"def {name}(*args, **kwargs):\n    raise ValueError('deliberately broken')",
        "loop": f"def {name}(*args, **kwargs):\n    while True:\n        pass",
        "shape": f"_right_{name} = {name}\n\ndef {name}(*args, **kwargs):\n"
                 f"    return _right_{name}(*args, **kwargs)[..., :-1]  # one column short",
        "warn": f"_right_{name} = {name}\n\ndef {name}(*args, **kwargs):\n    import torch\n"
                f"    torch.tensor(torch.zeros(1))  # copy-constructs a tensor: torch issues a UserWarning\n"
                f"    return _right_{name}(*args, **kwargs)",
    }
    return code + "\n\n" + tails[kind]


def _expected(src: nbformat.NotebookNode, plan: dict[str, str]) -> float:
    pts, tests = cell_points(src), checks_by_answer(src)
    return sum(pts[t] for a, ts in tests.items() if plan.get(a, "right") in ("right", "warn") for t in ts)


@pytest.fixture(scope="module")
def run(generated_course):
    root = generated_course  # conftest.py: the course with every lesson generated, once per session
    lessons = course.assignments(root)

    submitted = root / "autograder" / "submitted"
    inbox = root / "inbox"
    inbox.mkdir()
    expected: dict[tuple[str, str], float] = {}
    src = {a: nbformat.read(course.source_notebook(a, root), as_version=4) for a in lessons}
    rel = {a: nbformat.read(course.release_notebook(a, root), as_version=4) for a in lessons}

    def submit(student, lesson, nb, score):
        path = submitted / student / lesson / f"{lesson}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path)
        expected[(lesson, student)] = score

    for a in sorted({MIXED_LESSON, FIXTURE}):  # the other lessons: tests/test_solution_notebooks*.py
        submit("solution", a, src[a], sum(cell_points(src[a]).values()))  # (a)
        submit("untouched", a, rel[a], 0.0)  # (b)

    m = MIXED_LESSON
    answers = {c.metadata.nbgrader.grade_id: c.source for c in src[m].cells
               if c.metadata.get("nbgrader", {}).get("solution")}
    full = sum(cell_points(src[m]).values())
    colab = {"colab-solution": (filled(rel[m], src[m]), full), "colab-untouched": (rel[m], 0.0)}
    for student, plan in PLANS[m].items():  # (c)
        nb = filled(rel[m], src[m], {gid: mutate(kind, gid, answers[gid]) for gid, kind in plan.items()})
        submit(student, m, nb, _expected(src[m], plan))
        colab[f"colab-{student}"] = (nb, expected[(m, student)])
    for student, (nb, score) in colab.items():  # (d) as downloaded from Colab, into the inbox
        (inbox / f"{student}.ipynb").write_text(colab_json(nb))
        expected[(m, student)] = score

    # (e) a test cell edited, another deleted, an answer cell duplicated (metadata and all)
    tampered = filled(rel[m], src[m])
    tests = [c.id for c in tampered.cells if c.metadata.get("nbgrader", {}).get("grade")]
    next(c for c in tampered.cells if c.id == tests[0]).source = "pass  # no checks today"
    tampered.cells = [c for c in tampered.cells if c.id != tests[-1]]
    first = answer_ids(src[m])[0]
    i = next(k for k, c in enumerate(tampered.cells) if c.id == first)
    dup = copy.deepcopy(tampered.cells[i])
    dup["id"] = "copied-cell"
    tampered.cells.insert(i + 1, dup)
    (inbox / "tampered").mkdir()
    nbformat.write(tampered, inbox / "tampered" / f"Copy of {m}.ipynb")
    expected[(m, "tampered")] = full

    collected = subprocess.run([sys.executable, "-m", "autograder", "collect", m, str(inbox)], cwd=root,
                               env=course.tool_env({"DCGAN_COURSE_ROOT": str(root)}),
                               capture_output=True, text=True, timeout=300)
    assert collected.returncode == 0, collected.stdout + collected.stderr

    autograde = nbgrader(root, "autograde", "*", "--force", f"--Execute.timeout={CELL_TIMEOUT}")
    nbgrader(root, "export", "--log-level=WARN")
    nbgrader(root, "generate_feedback", "*", "--force", "--log-level=WARN")  # every autograded lesson: m and FIXTURE
    return {"root": root, "lessons": lessons, "expected": expected, "src": src, "rel": rel,
            "collect_out": collected.stdout, "autograde_log": autograde.stderr}


@pytest.fixture(scope="module")
def scores(run):
    return gradebook_scores(run["root"])


def test_generate_recorded_every_lesson(run, scores):
    from nbgrader.api import Gradebook

    with Gradebook("sqlite:///" + str(run["root"] / "autograder" / "gradebook.db")) as gb:
        recorded = {a.name: a.max_score for a in gb.assignments}
    assert recorded == {a: sum(cell_points(run["src"][a]).values()) for a in run["lessons"]}
    # generating with the gradebook writes the same lessons/ as `python -m autograder release`
    for a in run["lessons"]:
        if a != FIXTURE and course.release_notebook(a).exists():  # missing ones: test_lessons_in_sync
            committed = nbformat.read(course.release_notebook(a), as_version=4)
            fresh = normalize_release(copy.deepcopy(run["rel"][a]))
            assert fresh == committed, f"{a}: lessons/ differs from generate_assignment's output"


def test_every_submission_was_graded_automatically(run, scores):
    missing = sorted(set(run["expected"]) - set(scores))
    assert not missing
    manual = sorted(k for k, v in scores.items() if v[2])
    assert not manual, f"left for manual grading (a silent zero): {manual}"


@pytest.mark.parametrize("lesson", sorted({MIXED_LESSON, FIXTURE}))
def test_a_solutions_full_and_b_untouched_zero(run, scores, lesson):
    score, top, _ = scores[(lesson, "solution")]
    assert top > 0 and score == top
    assert scores[(lesson, "untouched")][0] == 0


def test_c_mixed_submissions_score_exactly(run, scores):
    m = MIXED_LESSON
    for student in PLANS[m]:
        assert scores[(m, student)][0] == run["expected"][(m, student)], student
    # the warning really was raised in the graded cell, on stdout (stderr would have cost the points)
    warned = [gid for plan in PLANS[m].values() for gid, kind in plan.items() if kind == "warn"]
    student = next(s for s, plan in PLANS[m].items() if "warn" in plan.values())
    nb = nbformat.read(run["root"] / "autograder" / "autograded" / student / m / f"{m}.ipynb", as_version=4)
    tests = checks_by_answer(run["src"][m])
    for gid in warned:
        cells = [c for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id") in tests[gid]]
        text = "".join(o.get("text", "") for c in cells for o in c.outputs if o.output_type == "stream")
        assert "UserWarning" in text
        assert not any(o.output_type == "stream" and o.name == "stderr" for c in cells for o in c.outputs)


def test_d_colab_saved_notebooks_score_the_same_after_repair(run, scores):
    m = MIXED_LESSON
    for student in ["solution", "untouched", *PLANS[m]]:
        assert scores[(m, f"colab-{student}")][0] == run["expected"][(m, f"colab-{student}")], student
    assert scores[(m, "colab-solution")][0] == scores[(m, "solution")][0]
    assert scores[(m, "colab-untouched")][0] == 0


def test_e_tampered_submission_graded_with_original_tests(run, scores):
    m = MIXED_LESSON
    assert scores[(m, "tampered")][0] == run["expected"][(m, "tampered")]
    report = run["collect_out"]
    block = report.split("tampered:", 1)[1].split("\n", 1)[1].split("\ncolab", 1)[0]
    for kind in ("duplicate", "restored", "missing"):
        assert f"[{kind}]" in block, report
    for student in ("colab-solution", "colab-untouched"):
        assert f"{student}:" in report and "[metadata]" in report


def test_export_csv_has_every_grade(run, scores):
    path = run["root"] / "autograder" / "grades.csv"
    rows = list(csv.DictReader(open(path)))
    got = {(r["assignment"], r["student_id"]): float(r["raw_score"]) for r in rows}
    for key, score in run["expected"].items():
        assert got[key] == pytest.approx(score), key


def _secret_lines(src):
    """Lines of the hidden-test regions that appear nowhere else in the source notebook."""
    hidden, public = set(), set()
    for cell in src.cells:
        inside = False
        for line in cell.source.split("\n"):
            if "BEGIN HIDDEN TESTS" in line:
                inside = True
            elif "END HIDDEN TESTS" in line:
                inside = False
            else:
                (hidden if inside else public).add(line.strip())
    return {ln for ln in hidden - public if len(ln) >= 12}


def _text_of(page: str) -> str:
    """The HTML as a reader sees it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", page))


def test_feedback_shows_failures_and_no_hidden_tests(run):
    m = MIXED_LESSON
    root = run["root"]
    feedback = sorted((root / "autograder" / "feedback").glob(f"*/{m}/{m}.html"))
    assert len(feedback) == len({s for (a, s) in run["expected"] if a == m})
    secret = _secret_lines(run["src"][m])
    assert secret
    for path in feedback:
        text = _text_of(path.read_text(encoding="utf-8"))
        assert "BEGIN HIDDEN TESTS" not in text, path
        leaked = [ln for ln in secret if ln in text]
        assert not leaked, f"{path}: {leaked[:3]}"

    student = "mixed1"
    nb = nbformat.read(root / "autograder" / "autograded" / student / m / f"{m}.ipynb", as_version=4)
    messages = [o.evalue for c in nb.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")
                for o in c.outputs if o.output_type == "error" and o.ename == "CheckFailure"]
    assert messages, "the mixed submission should fail at least one check"
    text = _text_of((root / "autograder" / "feedback" / student / m / f"{m}.html").read_text(encoding="utf-8"))
    for msg in messages:
        assert msg in text, msg
    # the endless loop shows as a timeout, without a traceback through the test cell
    looping = next(s for s, plan in PLANS[m].items() if "loop" in plan.values())
    page = (root / "autograder" / "feedback" / looping / m / f"{m}.html").read_text(encoding="utf-8")
    assert "CellTimeoutError: this cell ran past the time limit" in _text_of(page)


def test_fixture_feedback_hides_the_hidden_sentinel(run):
    pages = sorted((run["root"] / "autograder" / "feedback").glob(f"*/{FIXTURE}/{FIXTURE}.html"))
    assert len(pages) == len({s for (a, s) in run["expected"] if a == FIXTURE}), pages
    for path in pages:
        assert HIDDEN_SENTINEL not in path.read_text(encoding="utf-8")
    autograded = run["root"] / "autograder" / "autograded" / "solution" / FIXTURE / f"{FIXTURE}.ipynb"
    assert HIDDEN_SENTINEL in autograded.read_text(encoding="utf-8"), "the hidden tests did run"


@pytest.mark.skipif(MIXED_LESSON != LESSON01, reason="the hostile answer is planned in lesson 01")
def test_screened_answer_is_flagged_in_the_log_and_the_notebook(run):
    """nbgrader autograde grades the trusted way: the screened answer is named in its log and the notebook."""
    assert "REVIEW" in run["autograde_log"] and "down_block" in run["autograde_log"], run["autograde_log"][-3000:]
    path = run["root"] / "autograder" / "autograded" / "mixed2" / MIXED_LESSON / f"{MIXED_LESSON}.ipynb"
    meta = nbformat.read(path, as_version=4).metadata["autograder"]
    assert meta["review"] and meta["flags"][0]["cell"] == "down_block"
    assert meta["containment"] in ("bwrap", "user", "process")
