"""``python -m autograder collect``: bring submissions into nbgrader's layout, repaired, with a report.

Input, either
- an inbox folder (or files) as downloaded from Colab / the LMS: ``INBOX/<student>.ipynb`` or
  ``INBOX/<student>/<any name>.ipynb``; each is repaired and written to
  ``autograder/submitted/<student>/<assignment>/<assignment>.ipynb``; or
- nothing: every ``autograder/submitted/*/<assignment>/<assignment>.ipynb`` already there (after
  ``nbgrader collect`` or ``zip_collect``) is repaired in place, the original kept as ``.orig``.

Every repair is printed per student and written to ``autograder/collect_<assignment>.csv``.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from autograder import course
from autograder.repair import Repair, read_notebook, repair_notebook

SUBMITTED = Path(course.GRADER_DIR) / "submitted"


@dataclass
class Submission:
    """One student's notebook: where it came from, where it went, what was repaired."""

    student: str
    source: Path
    dest: Path
    repairs: list[Repair] = field(default_factory=list)
    error: str | None = None


def student_id_from_name(stem: str, assignment: str) -> str:
    """``alice``, ``Copy of 01_x - alice`` or ``alice_01_x (1)`` -> ``alice``; '' when nothing is left."""
    s = stem.replace(assignment, " ")
    s = re.sub(r"(?i)\bcopy of\b", " ", s)
    s = re.sub(r"\(\d+\)", " ", s)
    s = re.sub(r"[^A-Za-z0-9@._-]+", "_", s).strip("_-. ")
    return s


def find_inbox(inbox: Sequence[str | os.PathLike[str]], assignment: str) -> list[tuple[str, Path]]:
    """(student id, notebook) for every submission in the inbox paths."""
    found: list[tuple[str, Path]] = []
    for entry in map(Path, inbox):
        if entry.is_file():
            found.append((student_id_from_name(entry.stem, assignment), entry))
            continue
        if not entry.is_dir():
            raise SystemExit(f"{entry}: no such file or folder")
        for item in sorted(entry.iterdir()):
            if item.is_file() and item.suffix == ".ipynb":
                found.append((student_id_from_name(item.stem, assignment), item))
            elif item.is_dir() and not item.name.startswith("."):
                nbs = sorted(p for p in item.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
                named = [p for p in nbs if assignment in p.stem or assignment in p.parent.name]
                pick = named or nbs
                if pick:
                    found.append((item.name, pick[-1]))
    return found


def repair_file(src: Path, dest: Path, release: nbformat.NotebookNode, keep_original: bool = False) -> list[Repair]:
    """Repair one notebook file against the released notebook and write it to ``dest``."""
    nb = read_notebook(str(src))
    fixed, repairs = repair_notebook(nb, release)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if keep_original and src.resolve() == dest.resolve() and repairs:
        orig = dest.with_suffix(".ipynb.orig")
        if not orig.exists():
            shutil.copy2(src, orig)
    if src.resolve() != dest.resolve() or repairs:
        nbformat.write(fixed, str(dest))
    return repairs


def collect(
    assignment: str,
    inbox: Sequence[str | os.PathLike[str]] = (),
    root: str | os.PathLike[str] | None = None,
    dry_run: bool = False,
) -> list[Submission]:
    """Repair every submission of ``assignment`` (from ``inbox``, or in place) and return what happened."""
    root_path = course.course_root(root)
    release_path = course.release_notebook(assignment, root_path)
    if not release_path.exists():
        raise SystemExit(f"{release_path} not found: run `python -m autograder release` first")
    release = read_notebook(str(release_path))
    submitted = root_path / SUBMITTED
    if inbox:
        items = find_inbox(inbox, assignment)
    else:
        items = [
            (p.parent.parent.name, p)
            for p in sorted(submitted.glob(f"*/{assignment}/{assignment}.ipynb"))
        ]
    results: list[Submission] = []
    seen: set[str] = set()
    for student, src in items:
        dest = submitted / student / assignment / f"{assignment}.ipynb"
        sub = Submission(student, src, dest)
        results.append(sub)
        if not student:
            sub.error = f"{src}: cannot tell the student from the file name; use INBOX/<student>/{src.name}"
            continue
        if student in seen:
            sub.error = f"{src}: a second notebook for student '{student}' (skipped)"
            continue
        seen.add(student)
        try:
            if dry_run:
                sub.repairs = repair_notebook(read_notebook(str(src)), release)[1]
            else:
                sub.repairs = repair_file(src, dest, release, keep_original=not inbox)
        except Exception as err:  # noqa: BLE001 - one unreadable file must not stop the class
            sub.error = f"{src}: {type(err).__name__}: {err}"
    if not dry_run and results:
        write_report(root_path / course.GRADER_DIR / f"collect_{assignment}.csv", results)
    return results


def write_report(path: Path, results: Sequence[Submission]) -> None:
    """One CSV row per repair (or 'ok' / the error) per student."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["student", "kind", "grade_id", "message", "source"])
        for s in results:
            if s.error:
                w.writerow([s.student, "error", "", s.error, str(s.source)])
            elif not s.repairs:
                w.writerow([s.student, "ok", "", "no repair needed", str(s.source)])
            for r in s.repairs:
                w.writerow([s.student, r.kind, r.grade_id or "", r.message, str(s.source)])


def format_report(results: Sequence[Submission]) -> str:
    """What an instructor reads after collecting: one block per student."""
    lines = []
    for s in results:
        if s.error:
            lines.append(f"{s.student or '?'}: ERROR {s.error}")
        elif not s.repairs:
            lines.append(f"{s.student}: ok")
        else:
            lines.append(f"{s.student}: {len(s.repairs)} repair(s)")
            lines.extend(f"    - [{r.kind}] {r.message}" for r in s.repairs)
    n_fixed = sum(1 for s in results if s.repairs and not s.error)
    n_err = sum(1 for s in results if s.error)
    lines.append(f"{len(results)} submission(s), {n_fixed} repaired, {n_err} error(s)")
    return "\n".join(lines)
