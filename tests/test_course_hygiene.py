"""What a lesson folder holds and says: the notebook only, published sources only, one noise convention."""

from __future__ import annotations

import re
import subprocess

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
