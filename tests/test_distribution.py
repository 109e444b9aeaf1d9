"""Lessons pinned to their release: the setup cell, its stamping by `make lessons`, the README's badges."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import tomllib
from course_fixture import FIXTURE, build_course

import autograder
import dcgan_ref
from autograder import course, distribution
from autograder.distribution import (
    MIN_TORCH,
    MIN_TORCHVISION,
    PACKAGE,
    REPOSITORY,
    VERSION,
    colab_url,
    fallback_requirement,
    requirement,
    setup_cell,
    setup_cell_source,
    stamp_setup_cells,
    too_old,
)

ROOT = Path(__file__).resolve().parents[1]
LESSONS = course.assignments()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_version_is_written_once_and_every_package_reports_it():
    data = _pyproject()
    assert "version" not in data["project"] and "version" in data["project"]["dynamic"]
    assert data["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "dcgan_ref._version.__version__"}
    assert data["project"]["name"] == PACKAGE
    assert data["project"]["urls"]["Repository"] == REPOSITORY
    assert re.fullmatch(r"\d+\.\d+\.\d+", VERSION)
    assert dcgan_ref.__version__ == VERSION and autograder.__version__ == VERSION


def test_torch_lower_bounds_are_the_ones_setup_checks():
    deps = _pyproject()["project"]["dependencies"]
    assert f"torch>={MIN_TORCH}" in deps and f"torchvision>={MIN_TORCHVISION}" in deps
    assert too_old({"torch": "2.3.1+cu121", "torchvision": "0.18.1"}) == ["torch 2.3.1+cu121", "torchvision 0.18.1"]
    assert too_old({"torch": f"{MIN_TORCH}.0", "torchvision": f"{MIN_TORCHVISION}.0", "numpy": "1.0"}) == []


def test_setup_prints_what_to_upgrade_on_an_old_torch(monkeypatch, capsys):
    from autograder import notebook

    monkeypatch.setattr(notebook.torch, "__version__", "2.3.1")
    notebook.setup()
    out, err = capsys.readouterr()
    assert f"pip install 'torch>={MIN_TORCH}' 'torchvision>={MIN_TORCHVISION}'" in out and "torch 2.3.1" in out
    assert err == ""


def test_setup_cell_installs_the_release_by_name_then_the_tagged_repository():
    src = setup_cell_source()
    ast.parse(src)
    assert requirement() == f"dcgan-course=={VERSION}"
    assert fallback_requirement() == f"dcgan-course @ git+{REPOSITORY}.git@v{VERSION}"
    assert f'COURSE_PACKAGE = "{requirement()}"' in src and f'COURSE_FALLBACK = "{fallback_requirement()}"' in src
    assert src.index("COURSE_PACKAGE, COURSE_FALLBACK") > 0  # by name first
    assert src.endswith("from autograder.notebook import setup, grading\nDEVICE = setup()")
    # nothing of Colab's is replaced: no upgrade, no torch, nothing written to stderr
    for banned in ("--upgrade", "-U", "torch==", "--force", "stderr=sys", "file=sys.stderr"):
        assert banned not in src, banned
    assert setup_cell_source("9.9.9") != src and '"9.9.9"' in setup_cell_source("9.9.9")


def _run_cell(source: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", source], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120, env={**course.tool_env(), "MPLBACKEND": "agg"})


def test_setup_cell_reports_the_version_and_warns_on_another_release(tmp_path):
    same = _run_cell(setup_cell_source() + "\nprint('DEVICE', DEVICE)", tmp_path)
    assert same.returncode == 0, same.stderr
    assert f"dcgan-course {VERSION}" in same.stdout and "WARNING" not in same.stdout and "DEVICE" in same.stdout
    other = _run_cell(setup_cell_source("0.0.1"), tmp_path)
    assert other.returncode == 0, other.stderr
    assert "WARNING" in other.stdout and "pip install dcgan-course==0.0.1" in other.stdout
    assert "WARNING" not in other.stderr  # nbgrader zeroes a cell that writes to stderr


def _cells_json(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def test_stamp_rewrites_only_the_setup_cell_of_every_source_notebook(tmp_path):
    root = build_course(tmp_path / "course", with_real_lessons=True)
    before = {name: _cells_json(course.source_notebook(name, root)) for name in course.assignments(root)}
    changed = stamp_setup_cells(root, version="0.0.1")
    assert {p.parent.name for p in changed} == set(before)  # none carried 0.0.1 before
    for name, cells in before.items():
        after = _cells_json(course.source_notebook(name, root))
        nb = nbformat.read(course.source_notebook(name, root), as_version=4)
        assert setup_cell(nb).source == setup_cell_source("0.0.1")
        i = next(i for i, c in enumerate(cells) if c["cell_type"] == "code")
        assert after[:i] + after[i + 1:] == cells[:i] + cells[i + 1:], f"{name}: another cell changed"
        assert after[i]["metadata"] == cells[i]["metadata"] and after[i]["id"] == cells[i]["id"]
    assert stamp_setup_cells(root, version="0.0.1") == []  # idempotent: nothing rewritten twice


def test_stamp_refuses_a_notebook_without_a_setup_cell(tmp_path):
    root = build_course(tmp_path / "course")
    path = course.source_notebook(FIXTURE, root)
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if c.get("id") != "setup"]
    nbformat.write(nb, path)
    with pytest.raises(ValueError, match="setup cell"):
        stamp_setup_cells(root)


@pytest.mark.slow
def test_release_stamps_the_current_setup_cell_before_generating(tmp_path, monkeypatch):
    """`python -m autograder release` on a throw-away copy of the course: sources stamped, lessons carry it."""
    from autograder import cli

    root = build_course(tmp_path / "course", with_real_lessons=True)
    lesson = LESSONS[0] if LESSONS else FIXTURE
    stamp_setup_cells(root, [lesson], version="0.0.1")  # a source left at an older release
    shutil.rmtree(root / course.RELEASE_DIR / lesson, ignore_errors=True)
    monkeypatch.setenv("DCGAN_COURSE_ROOT", str(root))
    assert cli.main(["release", lesson, "--quiet"]) == 0
    for path in (course.source_notebook(lesson, root), course.release_notebook(lesson, root)):
        assert setup_cell(nbformat.read(path, as_version=4)).source == setup_cell_source(), path


def test_generate_stamps_only_the_course_own_lessons(tmp_path, monkeypatch):
    """A test that passes ``root`` or ``release_dir`` never writes to ``solutions/``; the CLI's call stamps."""
    from autograder import release

    root = build_course(tmp_path / "course")
    calls = []
    monkeypatch.setattr(release, "stamp_setup_cells", lambda where, names: calls.append((where, names)))
    monkeypatch.setattr(release.course, "run_nbgrader", lambda *a, **k: None)
    monkeypatch.setattr(release, "normalize_tree", lambda *a, **k: [])
    monkeypatch.setenv("DCGAN_COURSE_ROOT", str(root))
    release.generate(root=root)
    release.generate(release_dir=tmp_path / "elsewhere")
    assert calls == []
    release.generate()  # what `python -m autograder release` and `make lessons` call
    assert calls == [(root.resolve(), [FIXTURE])]


@pytest.mark.skipif(not LESSONS, reason="no lesson in solutions/ yet")
def test_every_solution_and_lesson_carries_the_current_setup_cell():
    """Fails until `make lessons` has stamped the release into solutions/ and lessons/."""
    stale = []
    for name in LESSONS:
        for path in (course.source_notebook(name), course.release_notebook(name)):
            try:
                cell = setup_cell(nbformat.read(path, as_version=4))
            except (ValueError, FileNotFoundError) as e:
                stale.append(f"{path.relative_to(ROOT)}: {e}")
                continue
            if cell.source != setup_cell_source():
                stale.append(str(path.relative_to(ROOT)))
    assert not stale, f"not stamped with dcgan-course {VERSION} (run `make lessons`): {stale}"


def test_readme_badges_and_install_lines_follow_the_constants():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    badges = re.findall(r"\(https://colab\.research\.google\.com/github/[^)\s]+\)", readme)
    assert [b[1:-1] for b in badges] == [colab_url(name) for name in LESSONS]
    assert f"pip install {requirement()}" in readme
    assert f'pip install "{fallback_requirement()}"' in readme
    assert f"torch {MIN_TORCH}" in readme and f"torchvision {MIN_TORCHVISION}" in readme
    assert "make dist" in readme and "make test-oldest" in readme


def test_colab_url_points_at_the_release_tag():
    url = colab_url("01_strided_convolution")
    repo = REPOSITORY.removeprefix("https://github.com/")
    assert url == (f"https://colab.research.google.com/github/{repo}/blob/v{VERSION}"
                   "/lessons/01_strided_convolution/01_strided_convolution.ipynb")
    assert distribution.release_tag() == f"v{VERSION}"
