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
    if args.release_dir is None and course.course_root() == course.REPO_ROOT:
        # publishing this repository's course: record the hashes its grading will verify (a copy of
        # the course elsewhere runs this package, whose hashes are not that copy's to write)
        from autograder.sandbox import write_manifest

        print(f"recorded the hashes of the course package in {write_manifest()}")
    return 0


#: what the `instructor` extra brings (a missing one is named, with the extra to install)
INSTRUCTOR_MODULES = ("distributed", "dask", "nbgrader", "nbformat", "nbclient", "nbconvert", "jupyter_client",
                      "IPython", "traitlets")
#: exit statuses of `check`
EXIT_FULL_MARKS, EXIT_NOT_FULL, EXIT_USAGE, EXIT_CANNOT_GRADE = 0, 1, 2, 3


def _cmd_check(args: argparse.Namespace) -> int:
    try:
        from autograder.grade import GradingError, grade_notebook
    except ImportError as err:
        print(f"check needs the instructor tools ({err.name} is missing): pip install 'dcgan-course[instructor]'",
              file=sys.stderr)
        return EXIT_CANNOT_GRADE
    reports: list[dict] = []
    status = EXIT_FULL_MARKS
    for path in args.notebooks:
        progress = None if args.json else (lambda msg: print(msg, file=sys.stderr, flush=True))
        try:
            report = grade_notebook(path, assignment=args.assignment, root=args.course, timeout=args.timeout,
                                    keep_executed=args.executed, progress=progress, containment=args.containment)
        except GradingError as err:
            status = EXIT_CANNOT_GRADE
            reports.append({"notebook": str(path), "assignment": args.assignment, "error": str(err),
                            "score": None, "max_score": None, "full_marks": False})
            if not args.json:
                print(f"{path}: could not grade: {err}", file=sys.stderr)
            continue
        reports.append(report.to_dict())
        if report.error:
            status = EXIT_CANNOT_GRADE
        elif not report.full_marks and status == EXIT_FULL_MARKS:
            status = EXIT_NOT_FULL
        if not args.json:
            print(report.format_text(), flush=True)
    if args.json:
        print(json.dumps(reports[0] if len(reports) == 1 else reports, indent=2))
    return status


def _cmd_manifest(args: argparse.Namespace) -> int:
    from autograder.sandbox import write_manifest

    print(f"recorded the hashes of the course package in {write_manifest()}")
    return 0


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


def _cmd_grade(args: argparse.Namespace) -> int:
    from autograder.classgrade import ClassGradingError, grade_class

    if args.jobs is not None and args.jobs < 1:
        print("--jobs must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    if args.assignment not in course.assignments(args.course):
        print(f"{args.assignment}: no such lesson (lessons: {', '.join(course.assignments(args.course)) or 'none'})",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        result = grade_class(args.assignment, args.inbox, root=args.course, jobs=args.jobs, scheduler=args.scheduler,
                             timeout=args.timeout, containment=args.containment, feedback=not args.no_feedback)
    except ClassGradingError as err:
        print(f"grade: {err}", file=sys.stderr)
        return EXIT_CANNOT_GRADE
    done = len(result.graded) + len(result.skipped)
    if result.interrupted:
        print(f"stopped: {done} graded, the others not yet; run the same command again to continue", file=sys.stderr)
        return 130
    print(f"{len(result.graded)} graded, {len(result.skipped)} already graded, {len(result.failed)} could not be "
          f"graded, in {result.seconds:.0f} s ({', '.join(f'{k} {v:.0f} s' for k, v in result.phases.items())})")
    for student, why in sorted(result.failed.items()):
        print(f"  {student}: {why}")
    return EXIT_CANNOT_GRADE if result.failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from autograder.report import write_report

    try:
        path = write_report(args.assignment, root=args.course)
    except (FileNotFoundError, ValueError) as err:
        print(f"report: {err}", file=sys.stderr)
        return EXIT_CANNOT_GRADE
    print(f"report: {path}")
    return 0


def _cmd_nbgrader(args: argparse.Namespace) -> int:
    import importlib.util

    if importlib.util.find_spec("nbgrader") is None:
        raise ModuleNotFoundError("nbgrader is not installed", name="nbgrader")
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

    c = sub.add_parser(
        "check", help="grade notebooks the trusted way; exit 0 full marks, 1 not full marks, 3 could not grade",
        description="Grade notebooks as nbgrader autograde does: the test cells (hidden tests included) come from "
        "the course (COURSE/solutions, or COURSE/lessons plus COURSE/autograder/gradebook.db), the student's code "
        "runs in a sandboxed worker (bubblewrap where it can run), the checks judge in this process. Exit status: "
        "0 full marks, 1 graded but not full marks, 2 usage error, 3 could not grade (no course or source tests, "
        "the package failed verification, the worker could not start). The course folder is --course, else "
        "$DCGAN_COURSE_ROOT, else the repository this package runs from.")
    c.add_argument("notebooks", nargs="+", metavar="PATH.ipynb")
    c.add_argument("--json", action="store_true", help="print the report as JSON (always, even when it cannot grade)")
    c.add_argument("--assignment", help="lesson name (default: guessed from the file name)")
    c.add_argument("--course", metavar="DIR", help="the course folder (default: $DCGAN_COURSE_ROOT or the repository)")
    c.add_argument("--timeout", type=float, default=None, help="seconds per cell (default 60)")
    c.add_argument("--containment", choices=["auto", "bwrap", "user", "process"], default=None,
                   help="where the student's code runs (default: $AUTOGRADER_SANDBOX or auto: bwrap if it works)")
    c.add_argument("--executed", metavar="OUT.ipynb", help="also save the graded notebook with its outputs")
    c.set_defaults(func=_cmd_check)

    h = sub.add_parser("manifest", help="record the hashes of the course package (after editing the checks)")
    h.set_defaults(func=_cmd_manifest)

    k = sub.add_parser("collect", help="repair submissions into autograder/submitted/ and report every repair")
    k.add_argument("assignment", help="lesson name, e.g. 01_strided_convolution")
    k.add_argument("inbox", nargs="*", help="INBOX/<student>.ipynb or INBOX/<student>/*.ipynb "
                   "(default: repair autograder/submitted/*/ASSIGNMENT in place)")
    k.add_argument("--dry-run", action="store_true", help="report only, write nothing")
    k.add_argument("--json", action="store_true")
    k.set_defaults(func=_cmd_collect)

    gr = sub.add_parser(
        "grade", help="grade a class: collect, autograde N at once (on Dask), export grades.csv, feedback",
        description="The instructor's whole cycle for one lesson: collect and repair the inbox into "
        "autograder/submitted/, grade every submission the trusted way (each in its own sandboxed worker), N at "
        "once on a Dask LocalCluster (--jobs) or on a Dask cluster (--scheduler), write the gradebook (this "
        "process only), export autograder/grades.csv and write the feedback. A rerun grades only what changed. "
        "Exit status: 0 every submission graded, 2 usage error, 3 something could not be graded, 130 stopped.")
    gr.add_argument("assignment", help="lesson name, e.g. 01_strided_convolution")
    gr.add_argument("inbox", nargs="*", help="INBOX/<student>.ipynb or INBOX/<student>/*.ipynb "
                    "(default: the submissions already in autograder/submitted/)")
    gr.add_argument("--jobs", "-j", type=int, default=None,
                    help="submissions graded at once on this machine (default: the number of CPUs)")
    gr.add_argument("--scheduler", metavar="tcp://HOST:8786", help="grade on this Dask cluster instead")
    gr.add_argument("--course", metavar="DIR", help="the course folder (default: $DCGAN_COURSE_ROOT or the repository)")
    gr.add_argument("--timeout", type=float, default=None, help="seconds per cell (default 60)")
    gr.add_argument("--containment", choices=["auto", "bwrap", "user", "process"], default=None,
                    help="where the student's code runs (default: $AUTOGRADER_SANDBOX or auto)")
    gr.add_argument("--no-feedback", action="store_true", help="skip the export and the feedback")
    gr.set_defaults(func=_cmd_grade)

    rp = sub.add_parser("report", help="what the class got wrong: one HTML page with plots "
                        "(autograder/reports/LESSON.html)")
    rp.add_argument("assignment", help="lesson name")
    rp.add_argument("--course", metavar="DIR", help="the course folder (default: $DCGAN_COURSE_ROOT or the repository)")
    rp.set_defaults(func=_cmd_report)

    n = sub.add_parser("nbgrader", help="run nbgrader with the course config and the venv on PATH",
                       prefix_chars="\0")
    n.add_argument("args", nargs=argparse.REMAINDER)
    n.set_defaults(func=_cmd_nbgrader)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    course.skip_unused_imports()
    args = build_parser().parse_args(argv)
    if getattr(args, "timeout", None) is None and args.command == "check":
        from autograder.grade import DEFAULT_TIMEOUT

        args.timeout = DEFAULT_TIMEOUT
    try:
        return int(args.func(args))
    except ModuleNotFoundError as err:
        if err.name and err.name.split(".")[0] in INSTRUCTOR_MODULES:
            extra = "instructor,cluster" if err.name.split(".")[0] in ("distributed", "dask") else "instructor"
            print(f"python -m autograder {args.command} needs the instructor tools ({err.name} is missing): "
                  f"pip install 'dcgan-course[{extra}]'", file=sys.stderr)
            return EXIT_CANNOT_GRADE
        raise
