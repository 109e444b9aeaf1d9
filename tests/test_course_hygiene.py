"""What a lesson folder holds and says: the notebook only, published sources only, one noise convention."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time

import nbformat
import pytest

from autograder import course

LESSONS = course.assignments()


def _tracked(folder: str) -> list[str]:
    out = subprocess.run(["git", "ls-files", folder], cwd=course.REPO_ROOT, capture_output=True, text=True)
    return [p for p in out.stdout.splitlines() if p]


def test_lesson_folders_hold_only_their_notebook():
    """Run outputs (runs/, data/, checkpoints, learning.json) never land in solutions/ or lessons/."""
    if not (course.REPO_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    extra = [p for p in _tracked("solutions") + _tracked("lessons") if not p.endswith(".ipynb")]
    assert not extra, f"files besides the notebooks in lesson folders: {extra}"


def test_release_ignores_run_outputs():
    """nbgrader copies a lesson folder's other files into the release: run outputs are excluded."""
    cfg = (course.REPO_ROOT / "autograder" / "nbgrader_config.py").read_text()
    for pattern in ('"runs"', '"data"', '"learning.json"', '"*.pt"'):
        assert pattern in cfg, f"CourseDirectory.ignore must leave out {pattern}"


def _text(lesson: str) -> str:
    nb = nbformat.read(course.source_notebook(lesson), as_version=4)
    return "\n".join(c.source for c in nb.cells)


@pytest.mark.parametrize("lesson", LESSONS)
def test_lessons_cite_published_sources_not_the_projects_notes(lesson):
    text = _text(lesson).lower()
    for phrase in ("seed note", "seed doc", "seeds/", "course's notes", "course notes"):
        assert phrase not in text, f"{lesson} cites internal notes ({phrase!r}): cite the DCGAN paper instead"


#: noise drawn as a flat (N, nz) batch, where the course draws (N, nz, 1, 1)
FLAT_NOISE = re.compile(r"randn\(\s*[\w.\[\]]+\s*,\s*(?:[\w.]*nz|[\w.]*latent\w*|config\[\"nz\"\])\s*"
                        r"(?:\)|,\s*(?:generator|device|dtype)=)")


@pytest.mark.parametrize("lesson", LESSONS)
def test_one_noise_convention(lesson):
    """Lessons draw noise as (N, nz, 1, 1) everywhere, so a generator from lesson 06 runs in 08."""
    hits = FLAT_NOISE.findall(_text(lesson))
    assert not hits, f"{lesson} draws noise as (N, nz): {hits}; the course draws (N, nz, 1, 1)"


def test_readme_shows_exactly_its_two_commands():
    """The "two commands" block holds two: the offline demo and the tests (CIFAR-10's `make train` is prose)."""
    readme = (course.REPO_ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## The two commands", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [ln.split("#", 1)[0].strip() for ln in block.splitlines() if ln.strip()]
    assert commands == ["make train DATASET=digits", "make test"]


def test_a_changed_torch_pin_rebuilds_the_venv(tmp_path):
    """The venv stamp depends on TORCH_PINS: same pins, nothing to do; a new pin, the install recipe
    runs (here it stops at once: PYTHON=false, the venv has no python)."""
    if shutil.which("make") is None:
        pytest.skip("no make")
    makefile = (course.REPO_ROOT / "Makefile").read_text()
    pins = re.search(r"^TORCH_PINS := (.+)$", makefile, re.M).group(1).strip()
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    stamp, pin_file = venv / "bin" / ".installed", venv / "torch-pins"
    pin_file.write_text(pins + "\n")
    stamp.touch()
    now = time.time()
    stamped = max(now - 50, (course.REPO_ROOT / "pyproject.toml").stat().st_mtime + 1)
    os.utime(stamp, (stamped, stamped))
    os.utime(pin_file, (stamped - 10, stamped - 10))
    make = ["make", "--no-print-directory", "-C", str(course.REPO_ROOT), "setup", f"VENV={venv}", "PYTHON=false"]

    same = subprocess.run(make, capture_output=True, text=True, timeout=60)
    assert same.returncode == 0 and "pip install" not in same.stdout, same.stdout + same.stderr
    assert pin_file.stat().st_mtime == stamped - 10, "unchanged pins must leave the pin file alone"

    changed = subprocess.run([*make, "TORCH_PINS=torch==0.0 torchvision==0.0"], capture_output=True, text=True,
                             timeout=60)  # fmt: skip
    assert changed.returncode != 0 and "false -m venv" in changed.stdout, changed.stdout + changed.stderr
    assert pin_file.read_text() == "torch==0.0 torchvision==0.0\n"
