"""The package as it would be published: sdist and wheel built and checked by twine, holding what a
student's check cells need and no solution or hidden test; the wheel installed into a fresh virtual
environment (not editable, the repository nowhere on the path), where a lesson's checks run.

Torch is not installed again there (minutes): the fresh venv sees the third-party packages of the
running environment through a ``.pth`` line. Its editable install of dcgan-course is not picked up:
a ``.pth`` line only adds a folder to ``sys.path``, the editable finder's own ``.pth`` is not run,
and every test asserts that ``dcgan_ref`` and ``autograder`` are imported from the fresh venv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import nbformat
import pytest
from course_fixture import solution_code

from autograder import course
from autograder.distribution import PACKAGE, VERSION, fallback_requirement, requirement, setup_cell_source

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
LESSON01 = "01_strided_convolution"
#: what a clean checkout would not carry into the build: environments, builds, the instructor's work
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".ruff_cache", "runs", "data", "submitted", "autograded", "feedback", "*.db")


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """sdist and wheel built as `make dist` builds them, from a copy of the working tree."""
    src = tmp_path_factory.mktemp("src") / "dcgan-course"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    out = src.parent / "dist"
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    name = PACKAGE.replace("-", "_")
    artifacts = {"sdist": out / f"{name}-{VERSION}.tar.gz", "wheel": out / f"{name}-{VERSION}-py3-none-any.whl"}
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in artifacts.values())
    return artifacts


def _hidden_test_lines() -> set[str]:
    """Lines of the hidden tests of every source notebook (what only the grader may see)."""
    lines = set()
    for name in course.assignments():
        for cell in nbformat.read(course.source_notebook(name), as_version=4).cells:
            inside = False
            for line in cell.source.split("\n"):
                if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
                    inside = "BEGIN" in line
                elif inside and len(line.strip()) >= 12 and not line.strip().startswith("#"):
                    lines.add(line.strip())
    return lines


def _assert_nothing_secret(files: dict[str, bytes]) -> None:
    for path in files:
        parts = Path(path).parts
        assert not {"solutions", "lessons", "tests"} & set(parts), f"{path} must not be published"
        assert not path.endswith(".ipynb"), f"{path}: no notebook is published"
    hidden = _hidden_test_lines()
    for path, data in files.items():
        text = data.decode("utf-8", errors="replace")
        present = {ln.strip() for ln in text.split("\n")} & hidden
        assert not present, f"{path} holds hidden-test lines: {sorted(present)[:3]}"


def _package_files() -> set[str]:
    """Every module of the two packages in the working tree (what the wheel must hold)."""
    out = set()
    for pkg in ("dcgan_ref", "autograder"):
        for p in (ROOT / pkg).rglob("*.py"):
            rel = p.relative_to(ROOT)
            if not {"submitted", "autograded", "feedback", "__pycache__"} & set(rel.parts):
                out.add(rel.as_posix())
    return out


def test_twine_accepts_both_artifacts(dist):
    proc = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", str(dist["sdist"]), str(dist["wheel"])],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_wheel_holds_both_packages_and_no_solution_or_hidden_test(dist):
    with zipfile.ZipFile(dist["wheel"]) as whl:
        files = {n: whl.read(n) for n in whl.namelist() if not n.endswith("/")}
    missing = _package_files() - set(files)
    assert not missing, f"the wheel lacks {sorted(missing)}"
    assert {"autograder/checks/_core.py", "autograder/checks/lesson01.py", "dcgan_ref/models.py"} <= set(files)
    _assert_nothing_secret(files)
    meta = files[f"{PACKAGE.replace('-', '_')}-{VERSION}.dist-info/METADATA"].decode()
    assert f"Name: {PACKAGE}\n" in meta and f"Version: {VERSION}\n" in meta
    requires = re.findall(r"^Requires-Dist: (\S+)(.*)$", meta, flags=re.M)
    core = [name for name, rest in requires if "extra ==" not in rest]
    assert any(r.startswith("torch>=") for r in core), core
    assert not [r for r in core if "==" in r], f"core dependencies are ranges, never pins: {core}"


def test_sdist_holds_no_solution_or_hidden_test(dist):
    with tarfile.open(dist["sdist"]) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    _assert_nothing_secret(files)
    assert {"pyproject.toml", "README.md", "dcgan_ref/_version.py", "autograder/checks/lesson01.py"} <= set(files)


def _fresh_venv(where: Path, wheel: Path | None) -> Path:
    """A new venv with ``wheel`` installed (no deps), then the running env's packages visible; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    if wheel is not None:
        proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                               "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    outer = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    Path(purelib, "_outer_site_packages.pth").write_text("\n".join(outer) + "\n")
    return python


def _env(venv: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "DCGAN_COURSE_ROOT")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", PYTHONNOUSERSITE="1", MPLBACKEND="agg",
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"), **extra)
    return env


def _run(python: Path, code: str, cwd: Path, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-c", code], cwd=cwd, env=_env(python.parent.parent, **extra),
                          capture_output=True, text=True, timeout=300)


def _cell(path: Path, grade_id: str) -> str:
    return next(c.source for c in nbformat.read(path, as_version=4).cells if c.get("id") == grade_id)


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> tuple[Path, Path]:
    """(python of a fresh venv with the wheel installed, a working folder outside the repository)."""
    base = tmp_path_factory.mktemp("fresh")
    python = _fresh_venv(base / "venv", dist["wheel"])
    cwd = base / "work"
    cwd.mkdir()
    return python, cwd


def test_fresh_venv_imports_the_wheel_not_the_repository(installed):
    python, cwd = installed
    code = ("import importlib, json, pkgutil, autograder, autograder.checks, dcgan_ref\n"
            "mods = [m.name for m in pkgutil.iter_modules(autograder.checks.__path__)]\n"
            "for m in mods: importlib.import_module('autograder.checks.' + m)\n"
            "import autograder.notebook, autograder.distribution, dcgan_ref.models, dcgan_ref.train\n"
            "print(json.dumps([dcgan_ref.__file__, autograder.__file__, dcgan_ref.__version__, mods]))")
    proc = _run(python, code, cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ref_file, grader_file, version, mods = json.loads(proc.stdout.strip().splitlines()[-1])
    venv = str(python.parent.parent)
    assert ref_file.startswith(venv) and grader_file.startswith(venv), (ref_file, grader_file)
    assert version == VERSION
    assert {f"lesson{n:02d}" for n in range(len(course.assignments()))} <= set(mods)


@pytest.mark.skipif(LESSON01 not in course.assignments(), reason="lesson 01 not written yet")
def test_lesson01_check_cells_run_from_the_wheel(installed):
    """The released lesson's visible check, and the source's hidden test, on a right and a wrong answer."""
    python, cwd = installed
    answer = solution_code(_cell(course.source_notebook(LESSON01), "conv_output_size"))
    visible = _cell(course.release_notebook(LESSON01), "test_conv_output_size")
    hidden = solution_code(_cell(course.source_notebook(LESSON01), "test_conv_output_size")
                           .replace("### BEGIN HIDDEN TESTS", "### BEGIN SOLUTION")
                           .replace("### END HIDDEN TESTS", "### END SOLUTION"))
    assert "hidden=True" in hidden and "hidden=True" not in visible
    for check in (visible, hidden):
        right = _run(python, f"{answer}\n{check}", cwd)
        assert right.returncode == 0, right.stdout + right.stderr[-3000:]
        assert right.stdout.strip() and right.stderr == "", right.stderr
    wrong_answer = answer.replace("2 * p", "0 * p")  # forgets the padding
    assert wrong_answer != answer
    wrong = _run(python, f"{wrong_answer}\n{visible}", cwd)
    assert wrong.returncode != 0 and "CheckFailure" in wrong.stderr, wrong.stdout + wrong.stderr


def test_setup_cell_in_the_fresh_venv_reports_its_release(installed):
    python, cwd = installed
    same = _run(python, setup_cell_source(), cwd)
    assert same.returncode == 0, same.stderr[-3000:]
    assert f"dcgan-course {VERSION}" in same.stdout and "WARNING" not in same.stdout
    assert "installing" not in same.stdout  # the package is there: nothing is installed
    other = _run(python, setup_cell_source("0.0.1"), cwd)
    assert other.returncode == 0 and "WARNING" in other.stdout and "WARNING" not in other.stderr


FAKE_PIP = '''\
"""Stands in for pip: records what it is asked for; fails on the PyPI name, installs the wheel for the URL."""
import pathlib, sys, sysconfig, zipfile
req = sys.argv[-1]
with open({log!r}, "a") as f:
    f.write(req + "\\n")
if "git+" not in req:
    print(f"ERROR: No matching distribution found for {{req}}", file=sys.stderr)
    raise SystemExit(1)
zipfile.ZipFile({wheel!r}).extractall(sysconfig.get_paths()["purelib"])
'''


def test_setup_cell_installs_by_name_then_falls_back_to_the_tagged_repository(dist, tmp_path):
    """A runtime without the package (Colab): the cell asks pip for the release, then for the tag."""
    python = _fresh_venv(tmp_path / "venv", wheel=None)
    fake = tmp_path / "fake" / "pip"
    fake.mkdir(parents=True)
    log = tmp_path / "pip.log"
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(FAKE_PIP.format(log=str(log), wheel=str(dist["wheel"])))
    cwd = tmp_path / "work"
    cwd.mkdir()
    missing = _run(python, "import importlib.util; print(importlib.util.find_spec('dcgan_ref'))", cwd)
    assert missing.stdout.strip() == "None", "the editable install leaked into the fresh venv"
    proc = _run(python, setup_cell_source() + "\nimport dcgan_ref; print('FROM', dcgan_ref.__file__)", cwd,
                PYTHONPATH=str(fake.parent))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert log.read_text().splitlines() == [requirement(), fallback_requirement()]
    assert f"could not install {requirement()}" in proc.stdout and f"dcgan-course {VERSION}" in proc.stdout
    assert "WARNING" not in proc.stdout and proc.stderr == "", proc.stderr
    assert proc.stdout.split("FROM ")[-1].startswith(str(tmp_path / "venv"))
