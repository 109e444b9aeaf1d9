"""The install story: light student deps, torch never pinned exactly, conda env in step."""

import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = _pyproject()
    declared = set(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared |= set(extra)
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {r for r in pip_section if not r.startswith("-e")}
    assert listed == declared, f"only in environment.yml: {listed - declared}; only in pyproject: {declared - listed}"
    assert any(r.startswith("-e .") for r in pip_section), "environment.yml must install the package itself"
    assert "python=3.11" in env["dependencies"]


def test_student_install_stays_light_and_never_pins_torch():
    project = _pyproject()
    core = {_name(r): r for r in project["dependencies"]}
    for heavy in ("nbgrader", "jupyter", "notebook", "jupyterlab", "pytest"):
        assert heavy not in core, f"{heavy} must not be a core dependency (it would land on Colab)"
    for pkg in ("torch", "torchvision"):
        assert "==" not in core[pkg], f"{pkg} is pinned exactly in pyproject.toml: Colab brings its own"
    assert core["ipywidgets"].startswith("ipywidgets>=7"), "Colab ships ipywidgets 7"
    assert "nbgrader" in {_name(r) for r in project["optional-dependencies"]["instructor"]}


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [ln for ln in ci.splitlines() if ln.strip() and not ln.startswith("#")]
    assert commands[-1].strip() == "make test"
    assert "make test" in (ROOT / "README.md").read_text()


def test_every_requirement_has_a_lower_bound_that_test_oldest_pins():
    """`make test-oldest` installs each `>=X` as `==X`: a requirement without one would go untested."""
    import sys

    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from lower_bounds import constraints, lower_bound
    finally:
        sys.path.pop(0)
    assert lower_bound("nbgrader>=0.9.6,<0.10") == "nbgrader==0.9.6"
    assert lower_bound("scikit-learn>=1.3  ") == "scikit-learn==1.3"
    assert lower_bound("foo[bar]>=1.2; python_version<'3.12'") == "foo==1.2"
    assert lower_bound("anything") is None
    project = _pyproject()
    extras = ["instructor", "dev"]
    reqs = project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
    pins = constraints(extras)
    assert len(pins) == len(reqs), f"without a lower bound: {[r for r in reqs if lower_bound(r) is None]}"
    assert {_name(p) for p in pins} >= {"torch", "torchvision", "numpy", "matplotlib", "ipywidgets", "pillow"}


def test_makefile_builds_dist_and_runs_the_oldest_bounds_outside_ci():
    make = (ROOT / "Makefile").read_text()
    assert "\ndist:" in make and "-m build --no-isolation" in make and "twine check --strict" in make
    assert "\ntest-oldest:" in make and "lower_bounds.py" in make
    test_line = next(ln for ln in make.splitlines() if ln.startswith("test:"))
    assert "oldest" not in test_line and "dist" not in test_line, "test-oldest downloads torch: not in `make test`"
