"""``python -m autograder report LESSON``: what the class got wrong, on one HTML page with plots.

Reads what ``python -m autograder grade`` recorded (``autograder/reports/LESSON/<student>.json``:
each submission's report) and the gradebook (points, manual grades included, when there is one),
and writes ``autograder/reports/LESSON.html`` with PNG plots (matplotlib, Agg; also saved as
files next to it): the score distribution per exercise; the named mistakes per exercise (the
checks' failure messages, numbers taken out so that one mistake with different values counts as
one) with how many students made each; the submissions flagged for review; timeouts and crashes.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder import course
from autograder.classgrade import REPORTS_DIR

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
#: how many different mistakes a plot shows per exercise (the table lists them all)
TOP_MISTAKES = 8


def normalise(message: str) -> str:
    """A failure message with its numbers replaced by ``#`` (one mistake, whatever values it met)."""
    text = message.strip().splitlines()[0] if message.strip() else ""
    text = text.lstrip("\u2718 ").strip()
    text = _NUMBER.sub("#", text)
    text = re.sub(r"\(#(?:, #)+\)", "(#, ..)", text)
    return text[:200]


@dataclass
class ClassSummary:
    """What one lesson's class did, gathered from the reports (and the gradebook)."""

    assignment: str
    students: list[str] = field(default_factory=list)
    exercises: dict[str, float] = field(default_factory=dict)  # exercise -> max points
    points: dict[str, dict[str, float]] = field(default_factory=dict)  # exercise -> student -> points
    totals: dict[str, float] = field(default_factory=dict)
    mistakes: dict[str, Counter] = field(default_factory=dict)  # exercise -> normalised message -> students
    examples: dict[tuple[str, str], str] = field(default_factory=dict)  # (exercise, normalised) -> one raw message
    flagged: list[tuple[str, str, str]] = field(default_factory=list)  # student, cell, findings
    incidents: list[tuple[str, str, str]] = field(default_factory=list)  # student, kind, where/what


def _gradebook_points(root: Path, assignment: str) -> dict[str, dict[str, float]]:
    """student -> grade id -> points recorded in the gradebook (manual grades win), when there is one."""
    db = root / course.GRADER_DIR / "gradebook.db"
    if not db.exists():
        return {}
    try:
        from nbgrader.api import Gradebook, MissingEntry
    except ImportError:
        return {}
    out: dict[str, dict[str, float]] = {}
    with Gradebook("sqlite:///" + str(db)) as gb:
        try:
            subs = gb.assignment_submissions(assignment)
        except MissingEntry:
            return {}
        for sub in subs:
            try:
                nb = gb.find_submission_notebook(assignment, assignment, sub.student_id)
            except MissingEntry:
                continue
            out[sub.student_id] = {g.name: float(g.score) for g in nb.grades if g.score is not None}
    return out


def summarise(assignment: str, root: str | os.PathLike[str] | None = None) -> ClassSummary:
    """Gather the class's reports; FileNotFoundError when none were recorded."""
    root_path = course.course_root(root)
    folder = root_path / REPORTS_DIR / assignment
    entries = []
    for p in sorted(folder.glob("*.json")):
        try:
            entries.append(json.loads(p.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    if not entries:
        raise FileNotFoundError(f"no graded submissions of {assignment} in {folder}: run "
                                f"`python -m autograder grade {assignment} INBOX` first")
    book = _gradebook_points(root_path, assignment)
    s = ClassSummary(assignment)
    for entry in entries:
        student, report = str(entry["student"]), entry["report"]
        s.students.append(student)
        recorded = book.get(student, {})
        seen: set[tuple[str, str]] = set()
        total = 0.0
        for cell in report.get("cells", []):
            ex = str(cell["exercise"])
            s.exercises[ex] = s.exercises.get(ex, 0.0) + float(cell["max_points"])
            got = recorded.get(cell["grade_id"], cell.get("points") or 0.0)
            s.points.setdefault(ex, {})
            s.points[ex][student] = s.points[ex].get(student, 0.0) + float(got or 0.0)
            total += float(got or 0.0)
            status = cell.get("status")
            if status in ("failed", "error", "stderr"):
                key = normalise(str(cell.get("message", ""))) or status
                if (ex, key) not in seen:
                    seen.add((ex, key))
                    s.mistakes.setdefault(ex, Counter())[key] += 1
                    s.examples.setdefault((ex, key), str(cell.get("message", "")))
            if status == "timeout":
                s.incidents.append((student, "timeout", cell["grade_id"]))
            elif status == "error" and re.search(r"DeadKernel|killed its process|crashed", str(cell.get("message"))):
                s.incidents.append((student, "crash", f"{cell['grade_id']}: {cell.get('message')}"))
        s.totals[student] = total
        for flag in report.get("flags", []):
            s.flagged.append((student, str(flag.get("cell")), "; ".join(map(str, flag.get("findings", [])))))
        if report.get("worker_restarts"):
            s.incidents.append((student, "worker restarts", str(report["worker_restarts"])))
        if report.get("error"):
            s.incidents.append((student, "could not grade", str(report["error"])))
    # exercise max points were added once per student: divide back
    n = len(entries)
    s.exercises = {ex: top / n for ex, top in s.exercises.items()}
    return s


def _png(fig: Any) -> bytes:  # noqa: ANN401 - a matplotlib Figure
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return buf.getvalue()


def plots(s: ClassSummary) -> dict[str, bytes]:
    """name -> PNG: scores per exercise, total scores, named mistakes per exercise."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    out: dict[str, bytes] = {}
    exercises = list(s.exercises)
    cols = min(3, max(1, len(exercises)))
    rows = (len(exercises) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.6 * rows), squeeze=False)
    for ax, ex in zip(axes.flat, exercises, strict=False):
        counts = Counter(round(v, 2) for v in s.points.get(ex, {}).values())
        xs = sorted(set(counts) | {0.0, round(s.exercises[ex], 2)})
        ax.bar([f"{x:g}" for x in xs], [counts.get(x, 0) for x in xs], color="#4c72b0")
        ax.set_title(f"{ex} (of {s.exercises[ex]:g})", fontsize=9)
        ax.set_xlabel("points", fontsize=8)
        ax.set_ylabel("students", fontsize=8)
        ax.yaxis.get_major_locator().set_params(integer=True)
    for ax in list(axes.flat)[len(exercises):]:
        ax.axis("off")
    fig.suptitle(f"{s.assignment}: points per exercise ({len(s.students)} students)", fontsize=10)
    fig.tight_layout()
    out["scores_per_exercise"] = _png(fig)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 2.8))
    top = sum(s.exercises.values())
    ax.hist(list(s.totals.values()), bins=min(20, max(5, int(top) + 1)), range=(0, max(top, 1)), color="#55a868")
    ax.set_xlabel(f"total points (of {top:g})")
    ax.set_ylabel("students")
    ax.set_title(f"{s.assignment}: total scores", fontsize=10)
    out["total_scores"] = _png(fig)
    plt.close(fig)

    named = [(ex, c) for ex, c in s.mistakes.items() if c]
    if named:
        heights = [min(TOP_MISTAKES, len(c)) for _, c in named]
        fig, axes = plt.subplots(len(named), 1, figsize=(9, 0.9 + 0.45 * sum(heights) + 0.5 * len(named)),
                                 squeeze=False, gridspec_kw={"height_ratios": heights})
        for ax, (ex, counter) in zip(axes.flat, named, strict=True):
            common = counter.most_common(TOP_MISTAKES)[::-1]
            ax.barh([_short(m) for m, _ in common], [k for _, k in common], color="#c44e52")
            ax.set_title(ex, fontsize=9, loc="left")
            ax.tick_params(axis="y", labelsize=7)
            ax.set_xlabel("students", fontsize=8)
            ax.xaxis.get_major_locator().set_params(integer=True)
        fig.suptitle(f"{s.assignment}: named mistakes per exercise", fontsize=10)
        fig.tight_layout()
        out["mistakes"] = _png(fig)
        plt.close(fig)
    return out


def _short(text: str, n: int = 70) -> str:
    return text if len(text) <= n else text[: n - 1] + "\u2026"


def render(s: ClassSummary, images: dict[str, bytes]) -> str:
    """The HTML page (plots embedded as PNG data, so the one file can be mailed)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{e(s.assignment)}: class report</title>",
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}"
        "th{background:#f4f4f4}.n{text-align:right}</style></head><body>",
        f"<h1>{e(s.assignment)}: what the class got wrong</h1>",
    ]
    top = sum(s.exercises.values())
    full = sum(1 for v in s.totals.values() if abs(v - top) < 1e-9)
    mean = sum(s.totals.values()) / max(1, len(s.totals))
    parts.append(f"<p>{len(s.students)} submissions graded; mean {mean:.2f} of {top:g} points; "
                 f"{full} with full marks; {len(set(f[0] for f in s.flagged))} flagged for review; "
                 f"{len(s.incidents)} timeouts, crashes or failures to grade.</p>")

    def img(name: str, alt: str) -> None:
        if name in images:
            data = base64.b64encode(images[name]).decode()
            parts.append(f"<p><img alt='{e(alt)}' src='data:image/png;base64,{data}'></p>")

    parts.append("<h2>Scores per exercise</h2>")
    img("scores_per_exercise", "points per exercise")
    parts.append("<table><tr><th>exercise</th><th>max</th><th>full marks</th><th>zero</th><th>mean</th></tr>")
    for ex, m in s.exercises.items():
        vals = list(s.points.get(ex, {}).values())
        full_marks, zero = sum(abs(v - m) < 1e-9 for v in vals), sum(v == 0 for v in vals)
        parts.append(f"<tr><td>{e(ex)}</td><td class=n>{m:g}</td><td class=n>{full_marks}</td>"
                     f"<td class=n>{zero}</td><td class=n>{sum(vals) / max(1, len(vals)):.2f}</td></tr>")
    parts.append("</table>")
    img("total_scores", "total scores")

    parts.append("<h2>Named mistakes per exercise</h2>")
    if not any(s.mistakes.values()):
        parts.append("<p>No check failed.</p>")
    img("mistakes", "named mistakes per exercise")
    for ex, counter in s.mistakes.items():
        parts.append(f"<h3>{e(ex)}</h3><table><tr><th>students</th><th>mistake</th><th>one of them, verbatim</th></tr>")
        for msg, k in counter.most_common():
            parts.append(f"<tr><td class=n>{k}</td><td>{e(msg)}</td><td>{e(s.examples[(ex, msg)][:300])}</td></tr>")
        parts.append("</table>")

    for title, headers, rows in (("Flagged for review", ("student", "cell", "what it used"), s.flagged),
                                 ("Timeouts and crashes", ("student", "what", "where"), s.incidents)):
        parts.append(f"<h2>{title}</h2>")
        if rows:
            parts.append("<table><tr>" + "".join(f"<th>{h}</th>" for h in headers) + "</tr>")
            parts += ["<tr>" + "".join(f"<td>{e(v)}</td>" for v in row) + "</tr>" for row in rows]
            parts.append("</table>")
        else:
            parts.append("<p>None.</p>")
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(assignment: str, root: str | os.PathLike[str] | None = None) -> Path:
    """Write ``autograder/reports/LESSON.html`` (and its plots as PNG files beside it); return its path."""
    s = summarise(assignment, root)
    images = plots(s)
    out = course.course_root(root) / REPORTS_DIR / f"{assignment}.html"
    out.parent.mkdir(parents=True, exist_ok=True)
    png_dir = out.parent / f"{assignment}_plots"
    png_dir.mkdir(exist_ok=True)
    for name, data in images.items():
        (png_dir / f"{name}.png").write_bytes(data)
    out.write_text(render(s, images), encoding="utf-8")
    return out


def group_counts(s: ClassSummary) -> dict[str, dict[str, int]]:
    """exercise -> named mistake -> students (for tests and scripts)."""
    return {ex: dict(c) for ex, c in s.mistakes.items()}


__all__ = ["ClassSummary", "group_counts", "normalise", "plots", "render", "summarise", "write_report"]
