"""nbgrader's autograde, the trusted way: ``TrustedExecute`` replaces nbgrader's ``Execute``.

``autograder/nbgrader_config.py`` puts it first in ``Autograde.autograde_preprocessors``. By the
time it runs, nbgrader's ``OverwriteCells`` has replaced every test cell with the gradebook's
source (hidden tests included); this preprocessor grades the notebook with
``autograder.trusted.grade_trusted`` (student code in the sandboxed worker, judges in a judge
process) and leaves the outputs where nbgrader's ``SaveAutoGrades`` scores them, so collect,
export and feedback work as before. What the grading found (containment, answers flagged for
review, worker restarts) goes into the notebook's metadata under ``autograder`` and the log.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbformat import NotebookNode
from nbgrader.preprocessors import Execute

from autograder import course, sandbox, trusted
from autograder.grade import notebook_metadata


class TrustedExecute(Execute):
    """Execute a submission in the sandboxed worker and judge its test cells in the grader."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]) -> tuple[NotebookNode, dict[str, Any]]:
        """Grade ``nb``; raise (nbgrader then records no grade for it) only when nothing can be graded."""
        assignment = (resources.get("nbgrader") or {}).get("assignment")
        workdir = Path(resources.get("metadata", {}).get("path") or ".").resolve()
        release_path = course.release_notebook(assignment) if assignment else None
        source_path = course.source_notebook(assignment) if assignment else None
        reference = None
        for p in (release_path, source_path):
            if p is not None and p.exists():
                import nbformat

                reference = nbformat.read(p, as_version=4)
                break
        search = [p.parent for p in (source_path, release_path) if p is not None]
        try:
            containment = sandbox.choose()
            nb, run = trusted.grade_trusted(nb, workdir, release=reference, search=search,
                                            timeout=float(self.timeout or 60), containment=containment)
        except sandbox.SandboxError as err:
            raise trusted.GradingError(str(err)) from None
        if run.error:
            raise trusted.GradingError(f"could not grade {workdir.name}: {run.error}")
        nb.metadata["autograder"] = notebook_metadata(run.containment, run.flags, run.restarts, run.secret)
        if run.secret.startswith("random"):
            self.log.warning("hidden cases: secret %s", run.secret)
        self.log.info("graded in containment %s (%s restarts)", run.containment, run.restarts)
        for flag in run.flags:
            self.log.warning("REVIEW %s: %s uses what an answer never needs: %s", workdir.parent.name,
                             flag["cell"], "; ".join(flag["findings"][:3]))
        return nb, resources
