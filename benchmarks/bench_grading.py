"""Seconds to grade: one submission of each lesson, and a class of submissions of one lesson.

Not a test: prints a table. Goal: <= 15 s for one lesson submission on 2 cores.

    python benchmarks/bench_grading.py                      # every lesson, a class of 50 of lesson 01
    python benchmarks/bench_grading.py --class-size 0       # single submissions only
    python benchmarks/bench_grading.py --lessons 01_strided_convolution --class-size 10

For each lesson it times ``python -m autograder check`` (in process: trusted grading, the
student's code in the sandboxed worker, the judges here, with the source's hidden tests) and
``nbgrader autograde LESSON --student bench`` (one nbgrader process, as
an instructor runs it, gradebook included) on the solution notebook. The class run puts N
submissions (half of them saved the way Colab saves them) through ``python -m autograder collect``
and one ``nbgrader autograde LESSON``. Everything happens in a throw-away copy of the course.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograder import course
from autograder.collect import collect
from autograder.grade import grade_notebook


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def copy_course(dest: Path) -> Path:
    """solutions/, lessons/ and the autograder package (with nbgrader_config.py) under ``dest``."""
    for name in ("solutions", "lessons"):
        shutil.copytree(course.REPO_ROOT / name, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    shutil.copytree(
        course.REPO_ROOT / "autograder",
        dest / "autograder",
        ignore=shutil.ignore_patterns("__pycache__", "submitted", "autograded", "feedback", "*.db", "*.csv", ".*"),
    )
    return dest


def nbgrader(root: Path, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        course.nbgrader_command(list(args), root),
        cwd=root,
        env=course.tool_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - t0


def colab_json(nb: nbformat.NotebookNode) -> str:
    """As Colab saves it: nbformat 4.0, no ids, Colab metadata, no nbgrader metadata."""
    d = json.loads(nbformat.writes(nb))
    d["nbformat_minor"] = 0
    d["metadata"] = {"colab": {"provenance": []}, "kernelspec": {"name": "python3", "display_name": "Python 3"}}
    for cell in d["cells"]:
        cell.pop("id", None)
        cell["metadata"] = {}
    return json.dumps(d)


def solved(release: nbformat.NotebookNode, source: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The released notebook with every answer cell replaced by the solution (markers removed)."""
    answers = {
        c.metadata["nbgrader"]["grade_id"]: c.source
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    nb = nbformat.from_dict(json.loads(nbformat.writes(release)))
    for cell in nb.cells:
        gid = cell.metadata.get("nbgrader", {}).get("grade_id")
        if gid in answers and cell.metadata["nbgrader"].get("solution"):
            cell.source = "\n".join(
                ln for ln in answers[gid].split("\n") if "### BEGIN SOLUTION" not in ln and "### END SOLUTION" not in ln
            )
    return nb


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lessons", nargs="*", default=None, help="default: every lesson with a released notebook")
    p.add_argument("--class-lesson", default=None, help="default: 01_strided_convolution, else the first lesson")
    p.add_argument("--class-size", type=int, default=50)
    args = p.parse_args()

    lessons = args.lessons or [a for a in course.assignments() if course.release_notebook(a).exists()]
    cls = args.class_lesson or ("01_strided_convolution" if "01_strided_convolution" in lessons else lessons[0])
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        root = copy_course(Path(tmp))
        t = nbgrader(root, "generate_assignment", "*", "--force", "--log-level=WARN")
        print(f"nbgrader generate_assignment (all {len(course.assignments(root))} lessons, gradebook): {t:.1f} s\n")
        print(f"{'lesson':<28} {'check (s)':>10} {'autograde (s)':>14} {'cpu (s)':>8}  score  containment")
        for a in lessons:
            src_path = course.source_notebook(a, root)
            t0 = time.perf_counter()
            report = grade_notebook(src_path, assignment=a, root=root)
            t_check = time.perf_counter() - t0
            dest = root / "autograder" / "submitted" / "bench" / a / f"{a}.ipynb"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src_path, dest)
            c0 = child_cpu()
            t_ag = nbgrader(root, "autograde", a, "--student=bench", "--force", "--log-level=WARN")
            cpu = child_cpu() - c0
            print(
                f"{a:<28} {t_check:>10.1f} {t_ag:>14.1f} {cpu:>8.1f}  {report.score:g}/{report.max_score:g}  "
                f"{report.containment}", flush=True
            )

        if args.class_size > 0:
            src = nbformat.read(course.source_notebook(cls, root), as_version=4)
            rel = nbformat.read(course.release_notebook(cls, root), as_version=4)
            good = solved(rel, src)
            inbox = root / "inbox"
            inbox.mkdir()
            for i in range(args.class_size):
                name = inbox / f"student{i:03d}.ipynb"
                name.write_text(colab_json(good) if i % 2 else nbformat.writes(good if i % 4 else rel))
            t0 = time.perf_counter()
            collected = collect(cls, [inbox], root=root)
            t_collect = time.perf_counter() - t0
            c0 = child_cpu()
            t_ag = nbgrader(root, "autograde", cls, "--force", "--log-level=WARN")
            cpu = child_cpu() - c0
            n = len(collected)
            print(f"\nclass of {n} submissions of {cls}:")
            print(
                f"  python -m autograder collect: {t_collect:.1f} s "
                f"({sum(bool(s.repairs) for s in collected)} repaired)"
            )
            print(f"  nbgrader autograde: {t_ag:.1f} s ({t_ag / n:.1f} s per submission, {cpu:.0f} s CPU)")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
