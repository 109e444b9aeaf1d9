"""Lessons 07-10 take their GPU branch on this CPU (``DCGAN_LESSON_PROFILE=gpu``): every line of it,
the same code a GPU runs, with a few hundred synthetic CIFAR-shaped images in place of CIFAR-10 and
a few steps, so a typo, a wrong shape or a missing import there fails here rather than in a
student's Colab. Learning is not expected from a few steps (the CPU runs show it:
tests/test_notebooks_execute.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from autograder import course
from autograder.notebook import REHEARSAL_IMAGES

#: the lessons with a GPU branch; in this order, so that lesson 09 evaluates lesson 08's run
PROFILED_LESSONS = [a for a in ("07_training_loop", "08_gpu_training", "09_evaluation", "10_guidelines")
                    if a in course.assignments()]  # fmt: skip
pytestmark = pytest.mark.slow


@pytest.mark.parametrize("lesson", PROFILED_LESSONS)
def test_gpu_branch_runs_on_the_cpu(lesson, tmp_path, lesson_runs):
    nb, out = lesson_runs(lesson, tmp_path, "gpu")
    assert f"profile: gpu ({REHEARSAL_IMAGES} synthetic CIFAR-shaped images" in out, out[:2000]
    assert "the digits" not in out.split("profile: gpu", 1)[1][:200]
    record = tmp_path / "learning.json"
    assert record.exists(), f"{lesson}'s GPU branch wrote no learning.json"
    d = json.loads(record.read_text())
    assert all(isinstance(v, float) and v == v for v in d.values()), d
    if lesson == "08_gpu_training":  # the run lesson 09 evaluates: the paper's 64x64 RGB pair, full width
        folder = Path(re.search(r"^run folder: (.+)$", out, re.M).group(1))
        config = json.loads((folder / "config.json").read_text())["config"]
        assert (config["dataset"], config["image_size"], config["nc"], config["ngf"], config["ndf"]) == (
            "synthetic", 64, 3, 64, 64), config
        assert config["resume"] is True and config["synthetic_size"] == REHEARSAL_IMAGES
    if lesson == "09_evaluation" and "loaded lesson 08's generator" in out:
        assert "loaded lesson 08's generator (synthetic): 64x64" in out, out[:3000]
    if lesson == "10_guidelines":
        assert f"synthetic CIFAR-shaped images: ({REHEARSAL_IMAGES}, 3, 32, 32)" in out, out[:3000]
