"""Command line of the course's grading tools (``python -m autograder --help``)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Sequence

from autograder import course


def _cmd_release(args: argparse.Namespace) -> int:
    from autograder.release import generate

    names = generate(args.lessons, release_dir=args.release_dir, database=args.database, quiet=args.quiet)
    where = args.release_dir or course.course_root() / course.RELEASE_DIR
    print(f"generated {len(names)} lesson(s) into {where}: {', '.join(names)}")
    if args.database:
        print(f"recorded in {course.course_root() / course.GRADER_DIR / 'gradebook.db'}")
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from autograder.grade import grade_notebook

    reports = []
    for path in args.notebooks:
        progress = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
        report = grade_notebook(
            path,
            assignment=args.assignment,
            timeout=args.timeout,
            use_source=not args.no_source,
            keep_executed=args.executed,
            progress=progress,
        )
        reports.append(report)
        if not args.json:
            print(report.format_text(), flush=True)
    if args.json:
        data = [r.to_dict() for r in reports]
        print(json.dumps(data[0] if len(data) == 1 else data, indent=2))
    return 0 if all(r.full_marks for r in reports) else 1


def _cmd_collect(args: argparse.Namespace) -> int:
    from autograder.collect import collect, format_report

    results = collect(args.assignment, args.inbox, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(
            [
                {"student": s.student, "source": str(s.source), "dest": str(s.dest), "error": s.error,
                 "repairs": [r.__dict__ for r in s.repairs]}
                for s in results
            ],
            indent=2,
        ))
    else:
        print(format_report(results))
        if not args.dry_run and results:
            print(f"report: {course.course_root() / course.GRADER_DIR / f'collect_{args.assignment}.csv'}")
    return 1 if any(s.error for s in results) else 0


def _cmd_nbgrader(args: argparse.Namespace) -> int:
    rest = list(args.args)
    if rest and rest[0] == "--":
        rest = rest[1:]
    if not rest:
        print("usage: python -m autograder nbgrader <nbgrader command> [args...]", file=sys.stderr)
        return 2
    return subprocess.run(course.nbgrader_command(rest), cwd=course.course_root(), env=course.tool_env()).returncode


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command per step of the pipeline)."""
    p = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("release", help="generate lessons/ from solutions/ (nbgrader generate_assignment --no-db)")
    r.add_argument("lessons", nargs="*", help="lesson names (default: every solutions/NN_name)")
    r.add_argument("--release-dir", help="write there instead of lessons/")
    r.add_argument("--quiet", action="store_true", help="only nbgrader's warnings")
    r.set_defaults(func=_cmd_release, database=False)

    g = sub.add_parser("generate", help="release, and record the lessons in autograder/gradebook.db (before autograde)")
    g.add_argument("lessons", nargs="*", help="lesson names (default: all)")
    g.add_argument("--quiet", action="store_true")
    g.set_defaults(func=_cmd_release, database=True, release_dir=None)

    c = sub.add_parser("check", help="execute a notebook and grade it; exit 0 only at full marks")
    c.add_argument("notebooks", nargs="+", metavar="PATH.ipynb")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--assignment", help="lesson name (default: guessed from the file name)")
    c.add_argument("--timeout", type=float, default=None, help="seconds per cell (default 60)")
    c.add_argument("--no-source", action="store_true", help="grade with the notebook's own test cells")
    c.add_argument("--executed", metavar="OUT.ipynb", help="also save the executed notebook")
    c.set_defaults(func=_cmd_check)

    k = sub.add_parser("collect", help="repair submissions into autograder/submitted/ and report every repair")
    k.add_argument("assignment", help="lesson name, e.g. 01_strided_convolution")
    k.add_argument("inbox", nargs="*", help="INBOX/<student>.ipynb or INBOX/<student>/*.ipynb "
                   "(default: repair autograder/submitted/*/ASSIGNMENT in place)")
    k.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=_cmd_collect)

    n = sub.add_parser("nbgrader", help="run nbgrader with the course config and the venv on PATH",
                       prefix_chars="\0")
    n.add_argument("args", nargs=argparse.REMAINDER)
    n.set_defaults(func=_cmd_nbgrader)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    if getattr(args, "timeout", None) is None and args.command == "check":
        from autograder.grade import DEFAULT_TIMEOUT

        args.timeout = DEFAULT_TIMEOUT
    return int(args.func(args))
