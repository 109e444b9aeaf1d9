"""nbgrader's execute step for a class graded on Dask (``classgrade``): the outputs a task computed, put in place.

Only the driver loads it (through the nbgrader config ``classgrade`` builds): a grading worker never imports
nbconvert.
"""

from __future__ import annotations

from typing import Any

from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode

#: student -> graded notebook (from the task), put here by ``classgrade.write_to_gradebook`` for nbgrader's autograde
PENDING: dict[str, NotebookNode] = {}


class Precomputed(Preprocessor):
    """Put in the outputs the task computed, in place of executing the notebook.

    Every cell of nbgrader's sanitised notebook must be the cell the task graded (same type and
    source, in order); then its outputs are copied, and the notebook metadata records what trusted
    grading found, as ``TrustedExecute`` does. Anything else stops this student (nbgrader records
    no grade, as for a notebook that cannot be graded).
    """

    enabled = True  # nbconvert skips a preprocessor that is not enabled: the cells would keep no output

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        """Copy the task's outputs into ``nb``."""
        from autograder.errors import GradingError
        from autograder.grade import notebook_metadata

        student = (resources.get("nbgrader") or {}).get("student")
        graded = PENDING.get(student)
        if graded is None:
            raise GradingError(f"no graded notebook for {student}")
        if len(graded.cells) != len(nb.cells):
            raise GradingError(f"{student}: nbgrader sees {len(nb.cells)} cells, the graded notebook "
                               f"{len(graded.cells)}: run `python -m autograder collect` on it")
        for i, (mine, theirs) in enumerate(zip(nb.cells, graded.cells, strict=True)):
            if mine.cell_type != theirs.cell_type or mine.source != theirs.source:
                raise GradingError(f"{student}: cell {i} differs from the cell that was graded")
            if mine.cell_type == "code":
                mine.outputs = theirs.get("outputs", [])
                mine.execution_count = theirs.get("execution_count")
        meta = graded.metadata.get("autograder_run", {})
        nb.metadata["autograder"] = notebook_metadata(meta.get("containment", ""), meta.get("flags", []),
                                                      meta.get("restarts", 0), meta.get("secret", ""))
        return nb, resources
