"""The scorer of `python -m autograder check` against nbgrader's own rules, and execution edge cases."""

from __future__ import annotations

import copy
import json

import nbformat
import pytest
from course_fixture import FIXTURE, answer_ids, build_course, cell_points, filled, replace_solution
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from nbgrader.utils import compute_checksum, determine_grade

from autograder import cli, course
from autograder.grade import checksum, execute_notebook, grade_notebook, score_cell, score_notebook


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


def _kernel_notebook():
    """Graded cells exercising the grading kernel: stderr, warnings, an endless loop, the env var."""
    def graded(gid, src, points=1):
        return _graded(points=points, source=src, gid=gid)

    cells = [
        new_code_cell("import sys, os, warnings"),
        graded("test_stderr", "print('fine so far')\nprint('oops', file=sys.stderr)"),
        graded("test_warning", "warnings.warn('harmless', UserWarning)\nprint('done')"),
        graded("test_torch_warning", "import torch\nt = torch.tensor(torch.ones(2))  # copy-construct: torch warns\n"
                                     "assert t.sum().item() == 2.0"),
        graded("test_env", "assert os.environ.get('NBGRADER_EXECUTION') == 'autograde', os.environ.get("
                           "'NBGRADER_EXECUTION')"),
        graded("test_loop", "while True:\n    pass", points=3),
        graded("test_after_loop", "x = 41 + 1\nassert x == 42"),
        graded("test_name_error", "undefined_answer(3)"),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.fixture(scope="module")
def kernel_run(tmp_path_factory):
    nb = _kernel_notebook()
    executed = execute_notebook(nb, tmp_path_factory.mktemp("kernel"), timeout=8)
    return executed


@pytest.mark.slow
def test_grading_kernel_rules(kernel_run):
    results = {r.grade_id: r for r in score_notebook(kernel_run, timeout=8)}
    # nbgrader's rule: anything on stderr costs the cell
    assert results["test_stderr"].points == 0 and results["test_stderr"].status == "stderr"
    # a warning (plain or torch's, from correct code) goes to stdout in the grading kernel: full points
    assert results["test_warning"].points == 1, results["test_warning"]
    assert results["test_torch_warning"].points == 1, results["test_torch_warning"]
    outputs = [c for c in kernel_run.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade_id")
               == "test_torch_warning"][0].outputs
    assert any(o.output_type == "stream" and o.name == "stdout" and "UserWarning" in o.text for o in outputs)
    assert results["test_env"].points == 1, results["test_env"]
    # the endless loop costs its own cell only; the kernel carries on
    assert results["test_loop"].points == 0 and results["test_loop"].status == "timeout"
    assert results["test_after_loop"].points == 1, results["test_after_loop"]
    assert results["test_name_error"].points == 0 and "NameError" in results["test_name_error"].message


@pytest.mark.slow
def test_scores_agree_with_nbgrader_on_executed_cells(kernel_run):
    for cell in kernel_run.cells:
        if cell.get("metadata", {}).get("nbgrader", {}).get("grade"):
            assert score_cell(copy.deepcopy(cell)) == determine_grade(copy.deepcopy(cell)), cell.source


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
    with_source = grade_notebook(path, root=fixture_course, timeout=30)
    without = grade_notebook(path, root=fixture_course, timeout=30, use_source=False)
    get = {c.grade_id: c.points for c in with_source.cells}
    assert get["test_flatten_batch"] == 0
    assert {c.grade_id: c.points for c in without.cells}["test_flatten_batch"] == cell_points(src)["test_flatten_batch"]
    assert without.full_marks and not with_source.full_marks
