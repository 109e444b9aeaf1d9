"""Execute a notebook and score its graded test cells by nbgrader's rules, without nbgrader.

Students in Colab have no nbgrader, and ``nbgrader validate`` neither exits non-zero nor speaks
JSON, so ``python -m autograder check`` does the grading itself: it executes the notebook in a
fresh ``python3`` kernel (nbclient, per-cell timeout, ``NBGRADER_EXECUTION=autograde``), with the
test cells of the source notebook (hidden tests included, matched by grade id, as nbgrader's
``OverwriteCells`` does), and scores every graded cell the way ``nbgrader.utils.determine_grade``
does: an error output or anything on stderr scores 0, a single number as the cell's result is
partial credit, anything else full points.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder import course
from autograder.repair import Repair, overwrite_from_source, repair_notebook

#: seconds a cell may run while grading (nbgrader: ``c.Execute.timeout`` in nbgrader_config.py)
DEFAULT_TIMEOUT = 60
#: the kernel arguments nbgrader_config.py gives nbgrader's Execute preprocessor too
KERNEL_ARGUMENTS = [
    "--HistoryManager.hist_file=:memory:",
    "--IPKernelApp.exec_lines=import autograder.kernel_init",
]
TIMEOUT_ERROR = {
    "ename": "CellTimeoutError",
    "evalue": "",
    "traceback": ["\x1b[0;31mCellTimeoutError\x1b[0m: No reply from kernel before timeout"],
}


# --- nbgrader's scoring rules, re-implemented (tests/test_grade.py compares with nbgrader) ---


def nbgrader_meta(cell: NotebookNode) -> dict[str, Any]:
    """The cell's ``metadata.nbgrader`` dict (empty when missing)."""
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def is_grade(cell: NotebookNode) -> bool:
    """A graded cell (carries points)."""
    return bool(nbgrader_meta(cell).get("grade", False))


def is_solution(cell: NotebookNode) -> bool:
    """An answer cell."""
    return bool(nbgrader_meta(cell).get("solution", False))


def is_locked(cell: NotebookNode) -> bool:
    """A cell nbgrader restores from the source (graded cells are always locked, answers never)."""
    meta = nbgrader_meta(cell)
    if not meta or is_solution(cell):
        return False
    return True if is_grade(cell) else bool(meta.get("locked", False))


def checksum(cell: NotebookNode) -> str:
    """nbgrader's cell checksum (md5 of source, type, flags, grade id and points)."""
    m = hashlib.md5()
    for part in (cell.source, cell.cell_type, str(is_grade(cell)), str(is_solution(cell)), str(is_locked(cell))):
        m.update(part.encode("utf-8"))
    meta = nbgrader_meta(cell)
    m.update(meta["grade_id"].encode("utf-8"))
    if is_grade(cell):
        m.update(str(float(meta["points"])).encode("utf-8"))
    return m.hexdigest()


def _partial_credit(output: NotebookNode, max_points: float) -> float:
    text = output.get("data", {}).get("text/plain")
    if not text:
        raise KeyError("output ['data']['text/plain'] does not exist")
    if isinstance(text, list):
        if len(text) > 1:
            return max_points
        text = text[0]
    try:
        value = float(text)
    except ValueError:
        return max_points
    if value < 0:
        return max_points
    if value > max_points:
        raise ValueError("partial credit cannot be greater than maximum points for cell")
    return value


def score_cell(cell: NotebookNode) -> tuple[float | None, float]:
    """(score, max points) of a graded cell, as ``nbgrader.utils.determine_grade`` computes it.

    None means "needs manual grading" (an unanswered manually graded answer scores 0).
    """
    if not is_grade(cell):
        raise ValueError("cell is not a grade cell")
    meta = nbgrader_meta(cell)
    max_points = float(meta["points"])
    if is_solution(cell):
        if "checksum" in meta and meta["checksum"] == checksum(cell):
            return 0, max_points
        return None, max_points
    if cell.cell_type != "code":
        return None, max_points
    for output in cell.get("outputs", []):
        if output.output_type == "error" or (output.output_type == "stream" and output.name == "stderr"):
            return 0, max_points
        if output.output_type == "execute_result":
            return _partial_credit(output, max_points), max_points
    return max_points, max_points


# --- what a student reads: status and one message per graded cell ---


def _text(output: NotebookNode) -> str:
    text = output.get("text", "")
    return "".join(text) if isinstance(text, list) else str(text)


def describe_cell(cell: NotebookNode, timeout: float | None = None) -> tuple[str, str]:
    """(status, message) of an executed graded cell: passed / failed / error / timeout / stderr."""
    outputs = cell.get("outputs", [])
    for output in outputs:
        if output.output_type == "error":
            ename, evalue = output.get("ename", ""), output.get("evalue", "")
            if ename in ("CellTimeoutError", "KeyboardInterrupt"):
                limit = f" of {timeout:g} s" if timeout else ""
                return "timeout", f"the cell ran past the time limit{limit} and was interrupted: an endless loop?"
            if ename == "CheckFailure":
                return "failed", str(evalue)
            return "error", f"{ename}: {evalue}" if evalue else str(ename)
    for output in outputs:
        if output.output_type == "stream" and output.name == "stderr":
            first = _text(output).strip().splitlines()
            return "stderr", "the cell wrote to stderr (nbgrader scores that 0): " + (first[0] if first else "")
    lines = [ln for o in outputs if o.output_type == "stream" for ln in _text(o).strip().splitlines()]
    return "passed", lines[-1] if lines else "passed"


@dataclass
class CellResult:
    """The score of one graded cell."""

    grade_id: str
    exercise: str
    points: float | None
    max_points: float
    status: str
    message: str


@dataclass
class GradeReport:
    """Scores of one notebook: per graded cell, per exercise, in total; and what was repaired."""

    notebook: str
    assignment: str | None
    cells: list[CellResult]
    repairs: list[Repair] = field(default_factory=list)
    seconds: float = 0.0
    used_source: bool = False

    @property
    def score(self) -> float:
        """Points earned (manually graded cells count 0 until graded)."""
        return float(sum(c.points or 0 for c in self.cells))

    @property
    def max_score(self) -> float:
        """Points available."""
        return float(sum(c.max_points for c in self.cells))

    @property
    def full_marks(self) -> bool:
        """Every point earned (and there are points to earn)."""
        return self.max_score > 0 and all(c.points == c.max_points for c in self.cells)

    def exercises(self) -> dict[str, tuple[float, float]]:
        """exercise -> (points, max points), in notebook order."""
        out: dict[str, tuple[float, float]] = {}
        for c in self.cells:
            got, top = out.get(c.exercise, (0.0, 0.0))
            out[c.exercise] = (got + (c.points or 0), top + c.max_points)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``check --json``)."""
        return {
            "notebook": self.notebook,
            "assignment": self.assignment,
            "score": self.score,
            "max_score": self.max_score,
            "full_marks": self.full_marks,
            "used_source_tests": self.used_source,
            "seconds": round(self.seconds, 2),
            "exercises": [
                {"exercise": k, "points": v[0], "max_points": v[1]} for k, v in self.exercises().items()
            ],
            "cells": [asdict(c) for c in self.cells],
            "repairs": [asdict(r) for r in self.repairs],
        }

    def format_text(self) -> str:
        """Human-readable report: one line per exercise with the first failure, then the total."""
        lines = [f"{self.notebook}" + (f" ({self.assignment})" if self.assignment else "")]
        for r in self.repairs:
            lines.append(f"  repaired: {r.message}")
        width = max([len(c.exercise) for c in self.cells] + [8])
        for exercise, (got, top) in self.exercises().items():
            mark = "\u2714" if got == top else "\u2718"
            lines.append(f"  {mark} {exercise:<{width}} {_fmt(got)}/{_fmt(top)}")
            for c in self.cells:
                if c.exercise == exercise and c.points != c.max_points:
                    lines.append(f"      {c.grade_id}: {c.status}: {c.message}")
        if not self.cells:
            lines.append("  no graded test cells found: is this a lesson notebook? (name the lesson with --assignment)")
        total = f"  total {_fmt(self.score)}/{_fmt(self.max_score)}"
        lines.append(total + ("  (full marks)" if self.full_marks else ""))
        return "\n".join(lines)


def _fmt(x: float) -> str:
    return f"{x:g}"


def score_notebook(nb: NotebookNode, timeout: float | None = None) -> list[CellResult]:
    """Score every graded cell of an executed notebook; exercise = the answer cell before it."""
    results = []
    exercise = None
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if is_solution(cell) and not is_grade(cell):
            exercise = meta.get("grade_id")
        if not is_grade(cell):
            continue
        gid = meta["grade_id"]
        points, top = score_cell(cell)
        if points is None:
            status, message = "manual", "graded by hand"
        else:
            status, message = describe_cell(cell, timeout)
            if points == top and status != "passed":
                status = "passed"
            if points == 0 and status == "passed":
                status = "failed"
        name = exercise or (gid[5:] if gid.startswith("test_") else gid)
        results.append(CellResult(gid, name, points, top, status, message))
    return results


# --- execution ---


def _on_cell_executed(cell: NotebookNode, cell_index: int, execute_reply: dict[str, Any], **_: Any) -> None:
    """As nbgrader's Execute: record an error reply (a timeout) that produced no error output."""
    content = execute_reply.get("content", {})
    if content.get("status") != "error":
        return
    if any(o.output_type == "error" and o.get("ename") == content.get("ename") for o in cell.outputs):
        return
    cell.outputs.append(
        nbformat.v4.new_output(
            "error",
            ename=content.get("ename", "Error"),
            evalue=content.get("evalue", ""),
            traceback=content.get("traceback") or ["ERROR: An error occurred while showtraceback was disabled"],
        )
    )


def execute_notebook(
    nb: NotebookNode,
    cwd: str | os.PathLike[str],
    timeout: float | None = DEFAULT_TIMEOUT,
    kernel_name: str = "python3",
    env: dict[str, str] | None = None,
) -> NotebookNode:
    """Run every cell in a fresh kernel started in ``cwd``, as nbgrader autograde does.

    Errors do not stop the run; a cell past ``timeout`` seconds is interrupted and gets a
    ``CellTimeoutError`` output; the kernel sees ``NBGRADER_EXECUTION=autograde``.
    """
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        timeout=None if timeout is None else int(timeout),
        kernel_name=kernel_name,
        allow_errors=True,
        interrupt_on_timeout=True,
        error_on_timeout=dict(TIMEOUT_ERROR),
        raise_on_iopub_timeout=True,
        extra_arguments=list(KERNEL_ARGUMENTS),
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
        on_cell_executed=_on_cell_executed,
    )
    kernel_env = course.tool_env({"NBGRADER_EXECUTION": "autograde", **(env or {})})
    # the kernel process's own stderr (ipykernel's start-up warnings) is noise here; what a cell
    # writes to stderr arrives as a "stderr" output, which is what the scoring looks at
    quiet = {} if os.environ.get("AUTOGRADER_DEBUG") else {"stderr": subprocess.DEVNULL}
    return client.execute(cwd=str(cwd), env=kernel_env, **quiet)


def _copy_assignment_files(src_dir: Path, dest: Path) -> None:
    """Copy the assignment's other files next to the notebook, as nbgrader autograde does."""
    ignore = shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__", "*.pyc", "feedback")
    for item in src_dir.iterdir():
        if ignore(str(src_dir), [item.name]):
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dest / item.name)


def _has_markers(nb: NotebookNode) -> bool:
    """True for a source (solution) notebook: it still has solution or hidden-test markers."""
    return any(
        "### BEGIN SOLUTION" in c.source or "### BEGIN HIDDEN TESTS" in c.source for c in nb.cells
    )


def prepare_notebook(
    nb: NotebookNode,
    assignment: str | None,
    root: str | os.PathLike[str] | None = None,
    use_source: bool = True,
) -> tuple[NotebookNode, list[Repair], bool]:
    """Repair a submission against the released notebook, then take its test cells from the source.

    Returns (notebook ready to execute, repairs made, whether source test cells were used).
    Without a known assignment the notebook is graded as it is, with its own test cells.
    """
    nb = copy.deepcopy(nb)
    repairs: list[Repair] = []
    used_source = False
    if assignment is None:
        return nb, repairs, used_source
    release_path = course.release_notebook(assignment, root)
    source_path = course.source_notebook(assignment, root)
    reference_path = release_path if release_path.exists() else source_path if source_path.exists() else None
    if source_path.exists() and _has_markers(nb):
        reference_path = source_path  # a solution notebook: its locked cells are the source's
    if reference_path is not None:
        reference = nbformat.read(reference_path, as_version=4)
        nb, repairs = repair_notebook(nb, reference)
    if use_source and source_path.exists():
        source = nbformat.read(source_path, as_version=4)
        nb = overwrite_from_source(nb, source)
        used_source = True
    return nb, repairs, used_source


def grade_notebook(
    path: str | os.PathLike[str],
    assignment: str | None = None,
    root: str | os.PathLike[str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    use_source: bool = True,
    keep_executed: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> GradeReport:
    """Grade one notebook file the way nbgrader autograde would, and return the report.

    ``assignment`` defaults to the lesson guessed from the file name; when its source notebook is
    in ``solutions/`` its test cells (hidden tests included) replace the notebook's own. The
    kernel runs in a temporary folder holding the assignment's other files.
    """
    t0 = time.perf_counter()
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if assignment is None:
        assignment = course.guess_assignment(path, root)
    nb, repairs, used_source = prepare_notebook(nb, assignment, root, use_source)
    if progress:
        progress(f"executing {path.name}" + (f" as {assignment}" if assignment else ""))
    src_dir = course.source_notebook(assignment, root).parent if assignment else None
    if src_dir is not None and src_dir.is_dir():
        with tempfile.TemporaryDirectory(prefix="autograder-") as tmp:
            _copy_assignment_files(src_dir, Path(tmp))
            executed = execute_notebook(nb, tmp, timeout=timeout)
    else:  # not a lesson of this course: run it where it lies
        executed = execute_notebook(nb, path.parent, timeout=timeout)
    if keep_executed is not None:
        nbformat.write(executed, keep_executed)
    cells = score_notebook(executed, timeout)
    return GradeReport(
        notebook=str(path),
        assignment=assignment,
        cells=cells,
        repairs=repairs,
        seconds=time.perf_counter() - t0,
        used_source=used_source,
    )
