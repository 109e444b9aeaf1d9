"""Every solution notebook follows the authoring conventions (autograder/AUTHORING.md) and runs top
to bottom on CPU as a student would run it (not grading: training, plots and widgets included),
from a temporary copy so that nothing lands in the repo."""

from __future__ import annotations

import json
import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from autograder import course

LESSONS = course.assignments()
#: lessons whose CPU training must show learning: they write learning.json into their working folder,
#: {"untrained": d0, "trained": d1}, the random-feature Frechet distance to the real images of the
#: generator before and after the lesson's own training run
LEARNING_LESSONS = {"07_training_loop", "08_gpu_training", "09_evaluation", "10_guidelines"}
#: "clearly below": the trained generator's distance at most this fraction of the untrained one's
LEARNED_RATIO = 0.6
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not LESSONS, reason="no lesson in solutions/ yet")]


@pytest.mark.parametrize("lesson", LESSONS)
def test_source_notebook_structure(lesson):
    nb = nbformat.read(course.source_notebook(lesson), as_version=4)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert nb.metadata.kernelspec.name == "python3"
    ids = [c.metadata.nbgrader.grade_id for c in nb.cells]
    assert ids == [c.id for c in nb.cells], "cell ids must equal grade ids"
    exercises = [c.id for c in nb.cells if c.metadata.nbgrader.get("solution")]
    assert exercises, "a lesson without an exercise"
    for exercise in exercises:
        answer, test = nb.cells[ids.index(exercise)], nb.cells[ids.index(exercise) + 1]
        assert "### BEGIN SOLUTION" in answer.source, exercise
        assert test.id == f"test_{exercise}" and test.metadata.nbgrader.get("grade"), f"no check right after {exercise}"
        assert test.metadata.nbgrader.points > 0 and test.metadata.nbgrader.locked, test.id
        assert "### BEGIN HIDDEN TESTS" in test.source and "hidden=True" in test.source, test.id
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit with outputs cleared"


@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_notebook_runs_top_to_bottom(lesson, tmp_path):
    src = course.source_notebook(lesson)
    work = tmp_path / src.name
    shutil.copy(src, work)
    nb = nbformat.read(work, as_version=4)
    env = {k: v for k, v in course.tool_env().items() if k != "NBGRADER_EXECUTION"}
    env.update(MPLBACKEND="agg", DCGAN_DATA_ROOT=str(tmp_path / "data"), OMP_NUM_THREADS=os.environ.get(
        "OMP_NUM_THREADS", "1"))  # fmt: skip
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    client.execute(env=env)
    errors = [(c.id, o.ename, o.evalue) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]  # fmt: skip
    assert not errors, errors
    stderr = [
        (c.id, o.text[:300])
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream" and o.name == "stderr" and c.metadata.get("nbgrader", {}).get("grade")
    ]
    assert not stderr, f"graded cells wrote to stderr (nbgrader scores that 0): {stderr}"
    if lesson in LEARNING_LESSONS:
        record = tmp_path / "learning.json"
        assert record.exists(), f"{lesson} trains on the CPU but wrote no learning.json"
        d = json.loads(record.read_text())
        assert d["trained"] < LEARNED_RATIO * d["untrained"], (
            f"{lesson}: the CPU training did not learn clearly: Frechet distance {d['untrained']:.3g} untrained, "
            f"{d['trained']:.3g} trained (needs < {LEARNED_RATIO} x)")
