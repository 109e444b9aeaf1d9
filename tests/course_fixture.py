"""A tiny course for the pipeline's own tests: one lesson, five one-line exercises, its own checks.

It follows autograder/AUTHORING.md (cell ids = grade ids, locked text, answer cells, graded test
cells with hidden tests), so the pipeline is tested on
something small and fast that does not change when the real lessons do. The real lessons are
tested by the same code, parametrised over ``solutions/``.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder import course

FIXTURE = "01_fixture"
CHECKS_MODULE = "fixture_checks"
HIDDEN_SENTINEL = "HIDDEN-SENTINEL"
LESSON01 = "01_strided_convolution"
#: the lesson the mixed / Colab / tampered submissions are built from
MIXED_LESSON = LESSON01 if LESSON01 in course.assignments() else FIXTURE

CHECKS_SOURCE = '''\
"""Checks of the fixture lesson (tests/course_fixture.py): cases, probe, judge, as AUTHORING.md says."""
import torch

from autograder.checks._core import attempt, exercise, expect, expect_close, expect_shape, randn, unwrap


def _cases(hidden):
    return {"shapes": [(2, 3)] + ([(1, 1), (4, 5, 6)] if hidden else [])}


def _x(i, shape):
    return randn(*shape, seed=i)


def _probe_unary(name):
    def probe(fn, cases):
        return [attempt(fn, _x(i, s), what=name) for i, s in enumerate(cases["shapes"])]
    return probe


def _judge_double(cases, data):
    for i, (s, out) in enumerate(zip(cases["shapes"], data)):
        expect_close(unwrap(out), 2 * _x(i, s), "double(x)", rtol=0, atol=0, hint="is it 2 * x?")
    return "double(x) == 2 * x"


def _probe_add_bias(fn, cases):
    return [attempt(fn, _x(i, s), randn(s[-1], seed=100 + i), what="add_bias") for i, s in enumerate(cases["shapes"])]


def _judge_add_bias(cases, data):
    for i, (s, out) in enumerate(zip(cases["shapes"], data)):
        expect_close(unwrap(out), _x(i, s) + randn(s[-1], seed=100 + i), "add_bias(x, b)", rtol=0, atol=0)
    return "add_bias adds b to every row"


def _judge_flatten_batch(cases, data):
    for i, (s, out) in enumerate(zip(cases["shapes"], data)):
        x = _x(i, s)
        expect_shape(unwrap(out), (s[0], x.numel() // s[0]), "flatten_batch(x)",
                     hint="keep the batch dimension: x.reshape(x.shape[0], -1)")
    return "flatten_batch keeps the batch dimension"


def _judge_relu(cases, data):
    for i, (s, out) in enumerate(zip(cases["shapes"], data)):
        expect_close(unwrap(out), _x(i, s).clamp(min=0), "relu(x)", rtol=0, atol=0)
    return "relu is max(x, 0)"


def _ints(shape):
    return torch.arange(int(torch.tensor(shape).prod())).reshape(shape)


def _probe_as_float(fn, cases):
    return [attempt(fn, _ints(s), what="as_float") for s in cases["shapes"]]


def _judge_as_float(cases, data):
    for s, out in zip(cases["shapes"], data):
        got = unwrap(out)
        expect(type(got) is torch.Tensor and got.dtype == torch.float32,
               f"as_float should return a float32 tensor, got {getattr(got, 'dtype', type(got).__name__)}")
        expect_close(got, _ints(s).float(), "as_float(x)", rtol=0, atol=0)
    return "as_float converts to float32"


check_double = exercise("double", _probe_unary("double"), _judge_double, _cases)
check_add_bias = exercise("add_bias", _probe_add_bias, _judge_add_bias, _cases)
check_flatten_batch = exercise("flatten_batch", _probe_unary("flatten_batch"), _judge_flatten_batch, _cases)
check_relu = exercise("relu", _probe_unary("relu"), _judge_relu, _cases)
check_as_float = exercise("as_float", _probe_as_float, _judge_as_float, _cases)
'''

# (exercise, signature, docstring, solution body, points)
EXERCISES = [
    ("double", "x", "Return 2 * x; x: tensor of any shape, same shape out.", "return 2 * x", 1),
    ("add_bias", "x, b", "Add b (C,) to every row of x (..., C).", "return x + b", 2),
    ("flatten_batch", "x", "(N, ...) -> (N, D): keep the batch dimension.", "return x.reshape(x.shape[0], -1)", 2),
    ("relu", "x", "max(x, 0) elementwise.", "return x.clamp(min=0)", 1),
    ("as_float", "x", "Convert x to float32.", "return torch.tensor(x, dtype=torch.float32)", 3),
]


def _locked(gid: str) -> dict:
    return {"nbgrader": {"grade": False, "solution": False, "locked": True, "grade_id": gid, "schema_version": 3}}


def answer_source(name: str, args: str, doc: str, body: str) -> str:
    """The source notebook's answer cell of an exercise (solution between the markers)."""
    return (
        f"def {name}({args}):\n    \"\"\"{doc}\"\"\"\n    ### BEGIN SOLUTION\n    {body}\n    ### END SOLUTION"
    )


def check_cell_source(name: str) -> str:
    """The source notebook's test cell: the visible check, then the hidden one (AUTHORING.md)."""
    return (
        f"from {CHECKS_MODULE} import check_{name}\n"
        f"check_{name}({name})\n"
        "### BEGIN HIDDEN TESTS\n"
        f"check_{name}({name}, hidden=True)  # {HIDDEN_SENTINEL}-{name}\n"
        "### END HIDDEN TESTS"
    )


def fixture_notebook() -> nbformat.NotebookNode:
    """The fixture lesson's source notebook."""
    cells = [
        new_markdown_cell("# Fixture lesson\nFive one-line exercises.", metadata=_locked("intro")),
        new_code_cell(
            "import torch\nfrom autograder.notebook import grading\nprint('grading:', grading())",
            metadata=_locked("setup"),
        ),
    ]
    for name, args, doc, body, points in EXERCISES:
        cells.append(new_markdown_cell(f"## {name}\n{doc}", metadata=_locked(f"{name}_text")))
        cells.append(
            new_code_cell(
                answer_source(name, args, doc, body),
                metadata={"nbgrader": {"grade": False, "solution": True, "locked": False,
                                       "grade_id": name, "schema_version": 3}},
            )
        )
        cells.append(
            new_code_cell(
                check_cell_source(name),
                metadata={"nbgrader": {"grade": True, "solution": False, "locked": True, "points": points,
                                       "grade_id": f"test_{name}", "schema_version": 3}},
            )
        )
    cells.append(new_markdown_cell("That's all.", metadata=_locked("outro")))
    for cell in cells:
        cell["id"] = cell.metadata["nbgrader"]["grade_id"]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def points() -> dict[str, int]:
    """test cell grade id -> points."""
    return {f"test_{name}": pts for name, *_, pts in EXERCISES}


def build_course(root: Path, with_real_lessons: bool = False) -> Path:
    """Write a course under ``root``: the fixture lesson (and optionally copies of the real ones).

    The ``autograder`` package (nbgrader config and checks) is copied to ``root/autograder/``, so
    the config points at ``root``. Returns ``root``.
    """
    root = Path(root)
    # the whole autograder package, as in the repository: nbgrader runs from the course root,
    # where this folder (not the installed package) is what `import autograder` finds
    shutil.copytree(
        course.REPO_ROOT / "autograder",
        root / "autograder",
        ignore=shutil.ignore_patterns("__pycache__", "submitted", "autograded", "feedback", "*.db", "*.csv", ".*"),
        dirs_exist_ok=True,
    )
    d = root / "solutions" / FIXTURE
    d.mkdir(parents=True, exist_ok=True)
    nbformat.write(fixture_notebook(), d / f"{FIXTURE}.ipynb")
    (d / f"{CHECKS_MODULE}.py").write_text(CHECKS_SOURCE)
    if with_real_lessons:
        for name in course.assignments():
            shutil.copytree(course.REPO_ROOT / "solutions" / name, root / "solutions" / name, dirs_exist_ok=True)
            rel = course.REPO_ROOT / "lessons" / name
            if rel.is_dir():
                shutil.copytree(rel, root / "lessons" / name, dirs_exist_ok=True)
    return root


# --- submissions as students produce them ---

_SOL_BEGIN, _SOL_END = "### BEGIN SOLUTION", "### END SOLUTION"


def solution_code(source: str) -> str:
    """An answer cell of the source notebook as a student who got it right would write it."""
    return "\n".join(ln for ln in source.split("\n") if _SOL_BEGIN not in ln and _SOL_END not in ln)


def replace_solution(source: str, body: str) -> str:
    """The source answer cell with its solution region replaced by ``body`` (indented like the markers)."""
    lines = source.split("\n")
    start = next(i for i, ln in enumerate(lines) if _SOL_BEGIN in ln)
    end = next(i for i, ln in enumerate(lines) if _SOL_END in ln)
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    new = [indent + b if b else b for b in body.split("\n")]
    return "\n".join(lines[:start] + new + lines[end + 1 :])


def answer_ids(nb: nbformat.NotebookNode) -> list[str]:
    """Grade ids of the answer cells, in order."""
    return [c.metadata["nbgrader"]["grade_id"] for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")]


def cell_points(nb: nbformat.NotebookNode) -> dict[str, float]:
    """test cell grade id -> points, from a source notebook."""
    return {c.metadata["nbgrader"]["grade_id"]: float(c.metadata["nbgrader"]["points"]) for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("grade")}


def checks_by_answer(nb: nbformat.NotebookNode) -> dict[str, list[str]]:
    """answer grade id -> grade ids of the test cells after it (before the next answer)."""
    out: dict[str, list[str]] = {}
    current = None
    for c in nb.cells:
        meta = c.metadata.get("nbgrader", {})
        if meta.get("solution"):
            current = meta["grade_id"]
            out[current] = []
        elif meta.get("grade") and current is not None:
            out[current].append(meta["grade_id"])
    return out


def filled(release: nbformat.NotebookNode, source: nbformat.NotebookNode,
           overrides: dict[str, str] | None = None) -> nbformat.NotebookNode:
    """The released notebook with every answer cell filled in: the solution, or ``overrides[gid]``."""
    import copy

    nb = copy.deepcopy(release)
    src = {c.metadata["nbgrader"]["grade_id"]: c for c in source.cells
           if c.metadata.get("nbgrader", {}).get("solution")}
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            gid = meta["grade_id"]
            cell.source = (overrides or {}).get(gid, solution_code(src[gid].source))
    return nb


def colab_json(nb: nbformat.NotebookNode) -> str:
    """``nb`` as Colab saves it: nbformat 4.0, no cell ids, Colab metadata, nbgrader metadata gone."""
    import json
    import random

    rng = random.Random(0)
    d = json.loads(nbformat.writes(nb))
    d["nbformat_minor"] = 0
    d["metadata"] = {
        "colab": {"provenance": [], "name": "submission.ipynb", "gpuType": "T4"},
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {"name": "python"},
        "accelerator": "GPU",
    }
    for cell in d["cells"]:
        cell.pop("id", None)
        cid = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(12))
        cell["metadata"] = {"id": cid}
        if cell["cell_type"] == "code":
            cell["metadata"]["colab"] = {"base_uri": "https://localhost:8080/"}
            cell["metadata"]["outputId"] = cid[::-1]
        if isinstance(cell["source"], str):
            cell["source"] = cell["source"].splitlines(keepends=True)
    return json.dumps(d, indent=2)


# --- running nbgrader on a course ---


def nbgrader(root: Path, *args: str) -> subprocess.CompletedProcess:
    """Run an nbgrader command from the course root exactly as documented; fail with its log."""
    proc = subprocess.run(course.nbgrader_command(list(args), root), cwd=root, env=course.tool_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"nbgrader {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-6000:]}"
    return proc


def gradebook_scores(root: Path) -> dict[tuple[str, str], tuple[float, float, bool]]:
    """(assignment, student) -> (score, max score, needs manual grading) from the course's gradebook."""
    from nbgrader.api import Gradebook

    out = {}
    with Gradebook("sqlite:///" + str(Path(root) / "autograder" / "gradebook.db")) as gb:
        for a in gb.assignments:
            for sub in gb.assignment_submissions(a.name):
                nb = gb.find_submission_notebook(a.name, a.name, sub.student_id)
                out[(a.name, sub.student_id)] = (nb.score, nb.max_score, nb.needs_manual_grade)
    return out
