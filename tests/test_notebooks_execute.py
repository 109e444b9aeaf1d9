"""Every solution notebook runs top to bottom on CPU as a student would run it (not grading:
training, plots and widgets included), from a temporary copy so that nothing lands in the repo."""

from __future__ import annotations

import os
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from autograder import course

LESSONS = course.assignments()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not LESSONS, reason="no lesson in solutions/ yet")]


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
    stderr = [(c.id, o.text[:300]) for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "stream" and o.name == "stderr" and c.metadata.get("nbgrader", {}).get("grade")]
    assert not stderr, f"graded cells wrote to stderr (nbgrader scores that 0): {stderr}"
