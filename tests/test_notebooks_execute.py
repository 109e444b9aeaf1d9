"""Every solution notebook follows the authoring conventions (autograder/AUTHORING.md) and runs on
CPU as a student would run it (not grading: training, plots and widgets included), from a
temporary copy so that nothing lands in the repo; the training lessons' CPU runs learn. The lesson
profile (``autograder.notebook.lesson_profile``) is tested here too; lessons 07-10 in the gpu
profile: tests/test_notebooks_gpu_profile.py.

What grading checks (full marks, zero for the untouched lesson) is tests/test_solution_notebooks*.py;
these runs are for what only a run shows: the cells grading skips, and the training that learns.
"""

from __future__ import annotations

import json

import nbformat
import pytest
import torch

from autograder import course
from autograder.checks._core import PASS_MARK
from autograder.notebook import PROFILE_ENV, REHEARSAL_IMAGES, Profile, lesson_profile

LESSONS = course.assignments()
#: lessons whose CPU training must show learning: they write learning.json into their working folder,
#: {"untrained": d0, "trained": d1}, the random-feature Frechet distance to the real images of the
#: generator before and after the lesson's own training run
LEARNING_LESSONS = {"07_training_loop", "08_gpu_training", "09_evaluation", "10_guidelines"}
#: "clearly below": the trained generator's distance at most this fraction of the untrained one's
LEARNED_RATIO = 0.6
no_lessons = pytest.mark.skipif(not LESSONS, reason="no lesson in solutions/ yet")


@no_lessons
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


def writes_learning_json(cell) -> bool:
    return cell.cell_type == "code" and "learning.json" in cell.source


@pytest.mark.slow
@no_lessons
@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_notebook_runs_top_to_bottom(lesson, tmp_path, lesson_runs):
    """Lessons 00-06 run to the end; 07-10 until their training has written learning.json, which
    must show learning: every line after it is the same code the gpu-profile run below executes
    (tests/test_notebooks_gpu_profile.py), and only the learning needs the CPU settings."""
    learns = lesson in LEARNING_LESSONS
    nb, out = lesson_runs(lesson, tmp_path, None, stop_after=writes_learning_json if learns else None)
    # the feedback a student sees: every check cell that ran passed its visible and its hidden checks
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("grade") and cell.outputs:
            text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            assert text.count(PASS_MARK) >= 2 and "hidden tests" in text, (lesson, cell.id, text[-500:])
    if learns:
        assert "profile: cpu (the digits" in out, "a CPU without DCGAN_LESSON_PROFILE runs the cpu profile"
        record = tmp_path / "learning.json"
        assert record.exists(), f"{lesson} trains on the CPU but wrote no learning.json"
        d = json.loads(record.read_text())
        assert d["trained"] < LEARNED_RATIO * d["untrained"], (
            f"{lesson}: the CPU training did not learn clearly: Frechet distance {d['untrained']:.3g} untrained, "
            f"{d['trained']:.3g} trained (needs < {LEARNED_RATIO} x)")


# --- the profile itself (autograder.notebook) ---


def test_profile_follows_the_device_unless_the_variable_says(monkeypatch, capsys):
    monkeypatch.delenv(PROFILE_ENV, raising=False)
    assert lesson_profile(torch.device("cpu")) == Profile("cpu")
    assert lesson_profile(torch.device("cuda")) == Profile("gpu")  # a device object needs no GPU
    monkeypatch.setenv(PROFILE_ENV, "gpu")
    assert lesson_profile(torch.device("cpu")) == Profile("gpu", rehearsal=True)
    assert lesson_profile(torch.device("cuda")) == Profile("gpu", rehearsal=True)
    assert lesson_profile(torch.device("cuda"), "cpu") == Profile("cpu")  # the lesson's own choice wins
    monkeypatch.setenv(PROFILE_ENV, " CPU ")
    assert lesson_profile(torch.device("cuda")) == Profile("cpu")
    monkeypatch.setenv(PROFILE_ENV, "tpu")
    assert lesson_profile(torch.device("cpu")) == Profile("cpu")
    assert capsys.readouterr().out == f"{PROFILE_ENV}='tpu' is neither gpu nor cpu: ignored\n"


def test_profile_settings_and_data_set():
    gpu, cpu, rehearsal = Profile("gpu"), Profile("cpu"), Profile("gpu", rehearsal=True)
    values = dict(gpu={"steps": 2000, "batch": 128}, cpu={"steps": 300, "batch": 64}, rehearsal={"steps": 4})
    assert gpu.settings(**values) == {"steps": 2000, "batch": 128}
    assert cpu.settings(**values) == {"steps": 300, "batch": 64}
    assert rehearsal.settings(**values) == {"steps": 4, "batch": 128}  # the gpu values, fewer steps
    assert rehearsal.settings(gpu=4000, cpu=200, rehearsal=3) == 3 and rehearsal.settings(gpu=1, cpu=2) == 1
    assert [p.dataset for p in (gpu, cpu, rehearsal)] == ["cifar10", "digits", "synthetic"]
    assert rehearsal.train_data("d") == {"dataset": "synthetic", "data_root": "d", "synthetic_size": REHEARSAL_IMAGES}
    assert gpu.train_data("d") == {"dataset": "cifar10", "data_root": "d"}


def test_profile_images_are_the_lessons_data(tmp_path):
    from dcgan_ref.data import digits_dataset

    digits = Profile("cpu").images(str(tmp_path))
    assert torch.equal(digits, digits_dataset(image_size=32, nc=1).tensors[0])  # what the cpu lessons trained on
    synthetic = Profile("gpu", rehearsal=True).images(str(tmp_path))
    assert synthetic.shape == (REHEARSAL_IMAGES, 3, 32, 32) and synthetic.dtype == torch.float32
    assert -1 <= synthetic.min() < synthetic.max() <= 1 and synthetic.std() > 0.1
    assert not any(tmp_path.iterdir()), "neither set downloads anything"
