"""nbconvert preprocessors for nbgrader's feedback HTML: nothing of the hidden tests reaches a student.

nbgrader 0.9.6 autogrades with the *full* test cells (OverwriteCells restores the source saved
in the gradebook, hidden tests included) and ``generate_feedback`` renders the autograded
notebook as it is: the hidden tests appear verbatim, and a traceback through a test cell
(``NameError`` when the answer was never defined, ``KeyboardInterrupt`` after a timeout) quotes
its lines. These two preprocessors run after ``GetGrades`` (see ``nbgrader_config.py``).
"""

from __future__ import annotations

from typing import Any

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool, Unicode

HIDDEN_BEGIN = "BEGIN HIDDEN TESTS"
HIDDEN_END = "END HIDDEN TESTS"
HIDDEN_NOTE = "# (hidden tests: not shown)"


def _is_grade(cell: NotebookNode) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("grade", False))


def strip_hidden_tests(source: str, note: str = HIDDEN_NOTE) -> tuple[str, bool]:
    """Remove every ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` region (markers too).

    An unterminated region is removed to the end of the cell. Returns (new source, removed?).
    """
    out: list[str] = []
    inside = removed = False
    for line in source.split("\n"):
        if HIDDEN_BEGIN in line:
            if not inside and note:
                out.append(note)
            inside = removed = True
        elif HIDDEN_END in line and inside:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out), removed


def short_error(output: NotebookNode, timeout_text: str) -> list[str]:
    """One line for an error output: the check's own message, or ``ename: evalue``."""
    tb = [str(t) for t in output.get("traceback", [])]
    ename = str(output.get("ename", "Error"))
    evalue = str(output.get("evalue", ""))
    if ename in ("KeyboardInterrupt", "CellTimeoutError"):
        return [timeout_text]
    if ename == "CheckFailure" and len(tb) == 1:
        return tb  # the check's message alone ("✘ ..."), rendered by CheckFailure._render_traceback_
    return [f"{ename}: {evalue}" if evalue else ename]


class HideHiddenTests(Preprocessor):
    """Remove hidden-test regions from every cell (graded or not) before rendering feedback."""

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled.").tag(config=True)

    note = Unicode(HIDDEN_NOTE, help="Line left where a hidden-test region was removed.").tag(config=True)

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, Any], index: int
    ) -> tuple[NotebookNode, dict[str, Any]]:
        """Strip the hidden tests from ``cell.source``."""
        if HIDDEN_BEGIN in cell.get("source", ""):
            cell.source, _ = strip_hidden_tests(cell.source, self.note)
        return cell, resources


class ShortenGradedTracebacks(Preprocessor):
    """Reduce the error outputs of graded cells to one line (tracebacks quote test source)."""

    enabled = Bool(True, help="nbconvert preprocessors are off unless enabled.").tag(config=True)

    timeout_text = Unicode(
        "CellTimeoutError: this cell ran past the time limit and was interrupted (an endless loop?).",
        help="Shown instead of the traceback of an interrupted (timed-out) graded cell.",
    ).tag(config=True)

    def preprocess_cell(
        self, cell: NotebookNode, resources: dict[str, Any], index: int
    ) -> tuple[NotebookNode, dict[str, Any]]:
        """Replace each error output's traceback of a graded code cell by its last line."""
        if cell.get("cell_type") == "code" and _is_grade(cell):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    output["traceback"] = short_error(output, self.timeout_text)
        return cell, resources
