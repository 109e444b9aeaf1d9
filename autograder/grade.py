"""Grade a notebook by nbgrader's rules, without nbgrader (``python -m autograder check``).

Students in Colab have no nbgrader, and ``nbgrader validate`` neither exits non-zero nor speaks
JSON, so ``check`` does the grading itself: it repairs the notebook against the released one,
takes the test cells from the course (``solutions/``, or the gradebook when the solutions stay
private; hidden tests included, matched by grade id, as nbgrader's ``OverwriteCells`` does),
grades it the trusted way (``autograder/trusted.py``: the student's code in a sandboxed worker,
the judges here), and scores every graded cell the way ``nbgrader.utils.determine_grade`` does:
an error output or anything on stderr scores 0, anything else full points.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder import course
from autograder.errors import GradingError
from autograder.repair import Repair, overwrite_from_source, repair_notebook

#: seconds a cell may run while grading (nbgrader: ``c.Execute.timeout`` in nbgrader_config.py)
DEFAULT_TIMEOUT = 60


def notebook_metadata(containment: str, flags: list[Any], restarts: int, secret: str) -> dict[str, Any]:
    """What a trusted grading records under the graded notebook's ``autograder`` metadata (one shape for
    ``nbgrader autograde`` and ``python -m autograder grade``)."""
    return {"containment": containment, "review": bool(flags), "flags": flags, "worker_restarts": restarts,
            "secret": secret}


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
    """Scores of one notebook: per graded cell, per exercise, in total; what was repaired, how it ran."""

    notebook: str
    assignment: str | None
    cells: list[CellResult]
    repairs: list[Repair] = field(default_factory=list)
    seconds: float = 0.0
    used_source: bool = False
    source: str = ""
    containment: str = ""
    containment_detail: str = ""
    flags: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    error: str | None = None
    secret: str = ""

    @property
    def review(self) -> bool:
        """An instructor should look at it: an answer used what an honest answer never needs."""
        return bool(self.flags)

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
            "source_tests": self.source,
            "containment": self.containment,
            "containment_detail": self.containment_detail,
            "review": self.review,
            "flags": self.flags,
            "worker_restarts": self.restarts,
            "error": self.error,
            "secret": self.secret,
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
        if self.error:
            lines.append(f"  could not grade: {self.error}")
        if self.containment:
            lines.append(f"  containment: {self.containment}")
        if self.secret.startswith("random"):
            lines.append(f"  hidden cases: secret {self.secret}")
        for flag in self.flags:
            lines.append(f"  REVIEW: {flag['cell']} uses what an answer never needs: {'; '.join(flag['findings'][:3])}")
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


# --- the course's source tests: from solutions/, or from the gradebook when solutions stay private ---


def read_notebook(path: str | os.PathLike[str]) -> NotebookNode:
    """Read a notebook as Colab and editors save it (a UTF-8 byte-order mark included)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            return nbformat.read(f, as_version=4)
    except (OSError, ValueError, nbformat.reader.NotJSONError) as err:
        raise GradingError(f"{path}: not a readable notebook ({type(err).__name__}: {str(err)[:120]})") from None


def gradebook_path(root: str | os.PathLike[str] | None = None) -> Path:
    """``autograder/gradebook.db`` of the course."""
    return course.course_root(root) / course.GRADER_DIR / "gradebook.db"


def _source_from_gradebook(assignment: str, release: NotebookNode, root: str | os.PathLike[str] | None) -> NotebookNode:
    """The released notebook with every test cell's source (hidden tests included) from the gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    nb = copy.deepcopy(release)
    with Gradebook("sqlite:///" + str(gradebook_path(root))) as gb:
        for cell in nb.cells:
            meta = nbgrader_meta(cell)
            if meta.get("grade") and not meta.get("solution"):
                try:
                    cell.source = gb.find_source_cell(meta["grade_id"], assignment, assignment).source
                except MissingEntry:
                    raise GradingError(f"the gradebook has no test cell {meta['grade_id']} for {assignment}: run "
                                       "`python -m autograder generate` with the course's solutions first") from None
    return nb


def source_tests(assignment: str, root: str | os.PathLike[str] | None = None) -> tuple[NotebookNode, str]:
    """The notebook whose test cells grade ``assignment``, and where it came from.

    ``solutions/<assignment>`` when the course has it; else the released notebook with the test
    cells the gradebook recorded at ``generate`` (a course whose solutions stay private). Neither:
    grading is impossible (``GradingError``), never a grade from the submission's own test cells.
    """
    source_path = course.source_notebook(assignment, root)
    if source_path.exists():
        return read_notebook(source_path), str(source_path)
    release_path = course.release_notebook(assignment, root)
    if release_path.exists() and gradebook_path(root).exists():
        try:
            return _source_from_gradebook(assignment, read_notebook(release_path), root), str(gradebook_path(root))
        except ImportError:
            raise GradingError("reading the gradebook needs nbgrader: pip install 'dcgan-course[instructor]'") from None
    raise GradingError(
        f"no source tests for {assignment}: neither {source_path} nor {release_path} with a gradebook at "
        f"{gradebook_path(root)}. Point --course (or DCGAN_COURSE_ROOT) at the course folder"
    )


def _has_markers(nb: NotebookNode) -> bool:
    """True for a source (solution) notebook: it still has solution or hidden-test markers."""
    return any(
        "### BEGIN SOLUTION" in c.source or "### BEGIN HIDDEN TESTS" in c.source for c in nb.cells
    )


def prepare_notebook(
    nb: NotebookNode, assignment: str, root: str | os.PathLike[str] | None = None
) -> tuple[NotebookNode, list[Repair], NotebookNode, NotebookNode | None, str]:
    """Repair a submission against the released notebook, then take its test cells from the source.

    Returns (notebook ready to grade, repairs made, source notebook, released notebook or None,
    where the source tests came from).
    """
    nb = copy.deepcopy(nb)
    source, origin = source_tests(assignment, root)
    release_path = course.release_notebook(assignment, root)
    release = read_notebook(release_path) if release_path.exists() else None
    reference = source if (release is None or _has_markers(nb)) else release
    nb, repairs = repair_notebook(nb, reference)
    nb = overwrite_from_source(nb, source)
    return nb, repairs, source, release, origin


def grade_notebook(
    path: str | os.PathLike[str],
    assignment: str | None = None,
    root: str | os.PathLike[str] | None = None,
    timeout: float | None = DEFAULT_TIMEOUT,
    keep_executed: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    containment: str | None = None,
) -> GradeReport:
    """Grade one notebook file as ``nbgrader autograde`` does, the trusted way, and return the report.

    ``assignment`` defaults to the lesson guessed from the file name. The test cells come from the
    course (``source_tests``), the student's code runs in the sandboxed worker and the judges run
    here (``autograder/trusted.py``). A notebook that cannot be graded at all gives a report with
    ``error`` set and no points.
    """
    from autograder import sandbox, trusted

    t0 = time.perf_counter()
    path = Path(path)
    if assignment is None:
        assignment = course.guess_assignment(path, root)
    if assignment is None:
        raise GradingError(f"cannot tell which lesson {path.name} is: name it with --assignment "
                           f"(lessons: {', '.join(course.assignments(root)) or 'none found'})")
    nb = read_notebook(path)
    nb, repairs, source, release, origin = prepare_notebook(nb, assignment, root)
    if progress:
        progress(f"grading {path.name} as {assignment}")
    try:
        chosen = sandbox.choose(containment)
    except sandbox.SandboxError as err:
        raise GradingError(str(err)) from None
    workdir = trusted.new_workdir()
    try:
        release_dir = course.release_notebook(assignment, root).parent
        trusted.copy_assignment_files(release_dir if release_dir.is_dir() else
                                      course.source_notebook(assignment, root).parent, workdir)
        search = [course.source_notebook(assignment, root).parent, release_dir]
        try:
            executed, run = trusted.grade_trusted(nb, workdir, release=release or source, search=search,
                                                  timeout=timeout or DEFAULT_TIMEOUT, containment=chosen,
                                                  progress=progress)
        except sandbox.SandboxError as err:
            raise GradingError(str(err)) from None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if keep_executed is not None:
        nbformat.write(executed, keep_executed)
    cells = score_notebook(executed, timeout)
    return GradeReport(
        notebook=str(path), assignment=assignment, cells=cells, repairs=repairs,
        seconds=time.perf_counter() - t0, used_source=True, source=origin, containment=run.containment,
        containment_detail=run.containment_detail, flags=run.flags, restarts=run.restarts, error=run.error,
        secret=run.secret,
    )
