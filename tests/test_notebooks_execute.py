"""Every solution notebook follows the authoring conventions (autograder/AUTHORING.md) and runs top
to bottom on CPU as a student would run it (not grading: training, plots and widgets included),
from a temporary copy so that nothing lands in the repo; and lessons 07-10 run their GPU branch
on the CPU too (``DCGAN_LESSON_PROFILE=gpu``: synthetic CIFAR-shaped images, a few steps), so a
typo, a wrong shape or a missing import there fails here rather than in a student's Colab.

What grading checks (full marks, zero for the untouched lesson) is tests/test_solution_notebooks.py;
these runs are for what only a run shows: the cells grading skips, and the training that learns.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from autograder import course
from autograder.notebook import PROFILE_ENV, REHEARSAL_IMAGES, Profile, lesson_profile

LESSONS = course.assignments()
#: lessons whose CPU training must show learning: they write learning.json into their working folder,
#: {"untrained": d0, "trained": d1}, the random-feature Frechet distance to the real images of the
#: generator before and after the lesson's own training run
LEARNING_LESSONS = {"07_training_loop", "08_gpu_training", "09_evaluation", "10_guidelines"}
#: "clearly below": the trained generator's distance at most this fraction of the untrained one's
LEARNED_RATIO = 0.6
#: the lessons with a GPU branch (the gpu profile), rehearsed on the CPU
PROFILED_LESSONS = sorted(LEARNING_LESSONS & set(LESSONS))
no_lessons = pytest.mark.skipif(not LESSONS, reason="no lesson in solutions/ yet")


@pytest.fixture(scope="module")
def runs_folder(tmp_path_factory):
    """Where the lessons of one test process write their trainer runs (DCGAN_RUNS), per profile:
    lesson 09 finds lesson 08's run there, as it does in a student's session; never ~/.cache."""
    root = tmp_path_factory.mktemp("runs")
    return lambda profile: root / profile


def execute(lesson: str, tmp_path: Path, runs: Path, profile: str | None) -> nbformat.NotebookNode:
    """Run the solution notebook of ``lesson`` top to bottom in a kernel, as a student would."""
    src = course.source_notebook(lesson)
    work = tmp_path / src.name
    shutil.copy(src, work)
    nb = nbformat.read(work, as_version=4)
    env = {k: v for k, v in course.tool_env().items() if k not in ("NBGRADER_EXECUTION", PROFILE_ENV)}
    env.update(MPLBACKEND="agg", DCGAN_DATA_ROOT=str(tmp_path / "data"), DCGAN_RUNS=str(runs),
               OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))  # fmt: skip
    if profile is not None:
        env[PROFILE_ENV] = profile
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
    return nb


def stdout(nb: nbformat.NotebookNode) -> str:
    return "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")  # fmt: skip


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


@pytest.mark.slow
@no_lessons
@pytest.mark.parametrize("lesson", LESSONS)
def test_solution_notebook_runs_top_to_bottom(lesson, tmp_path, runs_folder):
    nb = execute(lesson, tmp_path, runs_folder("cpu"), profile=None)
    if lesson in LEARNING_LESSONS:
        assert "profile: cpu (the digits" in stdout(nb), "a CPU without DCGAN_LESSON_PROFILE runs the cpu profile"
        record = tmp_path / "learning.json"
        assert record.exists(), f"{lesson} trains on the CPU but wrote no learning.json"
        d = json.loads(record.read_text())
        assert d["trained"] < LEARNED_RATIO * d["untrained"], (
            f"{lesson}: the CPU training did not learn clearly: Frechet distance {d['untrained']:.3g} untrained, "
            f"{d['trained']:.3g} trained (needs < {LEARNED_RATIO} x)")


@pytest.mark.slow
@pytest.mark.parametrize("lesson", PROFILED_LESSONS)
def test_gpu_branch_runs_on_the_cpu(lesson, tmp_path, runs_folder):
    """The lesson's GPU branch, every line of it, on this CPU: the same code as on a GPU with the
    synthetic images in place of CIFAR-10 and a few steps (learning is not expected)."""
    runs = runs_folder("gpu")
    nb = execute(lesson, tmp_path, runs, profile="gpu")
    out = stdout(nb)
    assert f"profile: gpu ({REHEARSAL_IMAGES} synthetic CIFAR-shaped images" in out, out[:2000]
    assert "the digits" not in out.split("profile: gpu", 1)[1][:200]
    record = tmp_path / "learning.json"
    assert record.exists(), f"{lesson}'s GPU branch wrote no learning.json"
    d = json.loads(record.read_text())
    assert all(isinstance(v, float) and v == v for v in d.values()), d
    if lesson == "08_gpu_training":  # the run lesson 09 evaluates: the paper's 64x64 RGB pair, full width
        config = json.loads((runs / "08_gpu_training" / "config.json").read_text())["config"]
        assert (config["dataset"], config["image_size"], config["nc"], config["ngf"], config["ndf"]) == (
            "synthetic", 64, 3, 64, 64), config
        assert config["resume"] is True and config["synthetic_size"] == REHEARSAL_IMAGES
    if lesson == "09_evaluation" and (runs / "08_gpu_training" / "generator.pt").is_file():
        assert "loaded lesson 08's generator (synthetic): 64x64" in out, out[:3000]


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
