"""The scorer of `python -m autograder check` against nbgrader's own rules, and execution edge cases."""

from __future__ import annotations

import copy
import json

import nbformat
import pytest
from course_fixture import FIXTURE, answer_ids, build_course, cell_points, filled, replace_solution
from nbformat.v4 import new_code_cell, new_markdown_cell, new_output
from nbgrader.utils import compute_checksum, determine_grade

from autograder import cli, course
from autograder.grade import checksum, grade_notebook, score_cell


def _graded(outputs=(), points=2, solution=False, cell_type="code", source="check(f)", gid="test_x"):
    meta = {"nbgrader": {"grade": True, "solution": solution, "locked": not solution, "points": points,
                         "grade_id": gid, "schema_version": 3}}
    if cell_type == "code":
        cell = new_code_cell(source, metadata=meta)
        cell.outputs = [new_output(**o) for o in outputs]
    else:
        cell = new_markdown_cell(source, metadata=meta)
    return cell


STDOUT = {"output_type": "stream", "name": "stdout", "text": "✔ all good\n"}
STDERR = {"output_type": "stream", "name": "stderr", "text": "UserWarning: something\n"}
ERROR = {"output_type": "error", "ename": "CheckFailure", "evalue": "wrong", "traceback": ["✘ wrong"]}


def _result(text):
    return {"output_type": "execute_result", "data": {"text/plain": text}, "metadata": {}, "execution_count": 1}


CASES = {
    "no output": _graded(),
    "stdout only": _graded([STDOUT]),
    "stderr only": _graded([STDERR]),
    "stdout then stderr": _graded([STDOUT, STDERR]),
    "error": _graded([STDOUT, ERROR]),
    "partial credit": _graded([_result("1.5")]),
    "partial credit as list": _graded([_result(["0.5"])]),
    "result not a number": _graded([_result("'hello'")]),
    "negative result": _graded([_result("-1")]),
    "result after stderr": _graded([STDERR, _result("2")]),
    "markdown grade cell": _graded(cell_type="markdown", source="explain"),
    "manual answer, untouched": _graded(solution=True, source="YOUR ANSWER HERE"),
    "manual answer, written": _graded(solution=True, source="YOUR ANSWER HERE"),
}
# nbgrader records the checksum when it generates the assignment; the "written" answer changed after
for name in ("manual answer, untouched", "manual answer, written"):
    CASES[name].metadata.nbgrader["checksum"] = compute_checksum(CASES[name])
CASES["manual answer, written"].source = "My answer."


@pytest.mark.parametrize("name", list(CASES))
def test_score_cell_agrees_with_nbgrader(name):
    cell = CASES[name]
    assert score_cell(copy.deepcopy(cell)) == determine_grade(copy.deepcopy(cell))


def test_stderr_and_errors_score_zero_and_plain_output_full():
    assert score_cell(CASES["stderr only"]) == (0, 2.0)
    assert score_cell(CASES["error"]) == (0, 2.0)
    assert score_cell(CASES["stdout only"]) == (2.0, 2.0)
    assert score_cell(CASES["partial credit"]) == (1.5, 2.0)


def test_partial_credit_above_max_raises_like_nbgrader():
    cell = _graded([_result("3")])
    with pytest.raises(ValueError):
        determine_grade(copy.deepcopy(cell))
    with pytest.raises(ValueError):
        score_cell(copy.deepcopy(cell))


def test_checksum_agrees_with_nbgrader():
    from course_fixture import fixture_notebook

    for cell in fixture_notebook().cells:
        assert checksum(cell) == compute_checksum(cell), cell.id



@pytest.fixture(scope="module")
def fixture_course(tmp_path_factory):
    root = build_course(tmp_path_factory.mktemp("course"))
    from autograder.release import generate

    generate(root=root, quiet=True)
    return root


@pytest.mark.slow
def test_mixed_fixture_submission_scores_exactly(fixture_course, tmp_path, capsys, monkeypatch):
    """Right, raising, wrong shape and a correct answer that triggers a torch UserWarning."""
    src = nbformat.read(course.source_notebook(FIXTURE, fixture_course), as_version=4)
    rel = nbformat.read(course.release_notebook(FIXTURE, fixture_course), as_version=4)
    assert answer_ids(src) == ["double", "add_bias", "flatten_batch", "relu", "as_float"]
    answers = {c.metadata.nbgrader.grade_id: c.source for c in src.cells if c.metadata.nbgrader.get("solution")}
    overrides = {
        "add_bias": replace_solution(answers["add_bias"], "raise ValueError('not today')"),
        "flatten_batch": replace_solution(answers["flatten_batch"], "return x.reshape(-1)"),
        "relu": replace_solution(answers["relu"], "return x"),  # wrong values
    }
    path = tmp_path / f"Copy of {FIXTURE}.ipynb"  # the lesson is found from a Colab-style name
    nbformat.write(filled(rel, src, overrides), path)
    pts = cell_points(src)
    expected = pts["test_double"] + pts["test_as_float"]

    monkeypatch.setenv("DCGAN_COURSE_ROOT", str(fixture_course))
    status = cli.main(["check", str(path), "--json", "--timeout", "30"])
    report = json.loads(capsys.readouterr().out)
    assert status == 1
    assert report["assignment"] == FIXTURE and report["used_source_tests"]
    assert report["score"] == expected and report["max_score"] == sum(pts.values())
    by_id = {c["grade_id"]: c for c in report["cells"]}
    assert "not today" in by_id["test_add_bias"]["message"]
    assert "shape" in by_id["test_flatten_batch"]["message"]
    assert by_id["test_relu"]["points"] == 0
    assert by_id["test_as_float"]["points"] == pts["test_as_float"]


@pytest.mark.slow
def test_hidden_tests_from_source_are_run(fixture_course, tmp_path):
    """An answer that passes the visible check only scores 0 once the source's hidden tests run."""
    src = nbformat.read(course.source_notebook(FIXTURE, fixture_course), as_version=4)
    rel = nbformat.read(course.release_notebook(FIXTURE, fixture_course), as_version=4)
    answers = {c.metadata.nbgrader.grade_id: c.source for c in src.cells if c.metadata.nbgrader.get("solution")}
    # the visible check uses a (2, 3) input only: a hard-coded reshape passes it, not the hidden cases
    cheat = replace_solution(answers["flatten_batch"], "return x.reshape(2, 3)")
    path = tmp_path / f"{FIXTURE}.ipynb"
    nbformat.write(filled(rel, src, {"flatten_batch": cheat}), path)
    # the submission's own test cells are edited to `pass`: the source's are used all the same
    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade"):
            c.source = "pass"
    nbformat.write(nb, path)
    with_source = grade_notebook(path, root=fixture_course, timeout=30)
    get = {c.grade_id: c.points for c in with_source.cells}
    assert get["test_flatten_batch"] == 0
    assert get["test_double"] == cell_points(src)["test_double"]
    assert not with_source.full_marks and with_source.used_source
