"""Seconds to grade a class: where one submission's seconds go, and a class graded three ways.

Not a test: prints tables. Targets on 2 cores (issue 23): ``--jobs 2`` at least 1.8x sequential
``nbgrader autograde``; median seconds per submission at most half of a 7.5 s single ``check``.

    python benchmarks/bench_grading.py                          # breakdown + a class of 40 of lesson 01, 3 ways
    python benchmarks/bench_grading.py --class-size 10          # a smaller class (a loaded machine)
    python benchmarks/bench_grading.py --lessons all --class-size 0   # one submission of every lesson instead

1. **Breakdown** of one submission (the lesson's solution, ``grade_notebook`` in this process):
   sandbox start (bubblewrap around ``python -c pass``) and the interpreter, ``import torch`` in
   the sandbox, the grading worker's start (sandbox + interpreter + torch + the check modules),
   the student's cells, the probes (in the worker), the judges (here), and the rest (reading,
   repairing, screening, scoring).
2. **A class** of N submissions (solved, half of them saved as Colab saves them, every fourth
   untouched) graded on three copies of the course, one after the other: sequential ``nbgrader
   autograde`` (one process, one submission at a time, as an instructor runs it today);
   ``python -m autograder grade --jobs 2`` (a Dask LocalCluster of two processes); and the same on a
   real ``dask scheduler`` with two ``dask worker`` processes on 127.0.0.1. Printed: wall seconds,
   seconds per submission, the ratio to sequential, the median of the submissions' own seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

from autograder import course


def copy_course(dest: Path) -> Path:
    """solutions/, lessons/ and the nbgrader config under ``dest`` (the package is this one: one manifest)."""
    for name in ("solutions", "lessons"):
        shutil.copytree(course.REPO_ROOT / name, dest / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (dest / "autograder").mkdir(parents=True)
    shutil.copy(course.REPO_ROOT / "autograder" / "nbgrader_config.py", dest / "autograder" / "nbgrader_config.py")
    secret = course.REPO_ROOT / "autograder" / "secret"
    (dest / "autograder" / "secret").write_text(secret.read_text() if secret.exists() else "bench-secret\n")
    return dest


def env_for(root: Path) -> dict[str, str]:
    return course.tool_env({"DCGAN_COURSE_ROOT": str(root), "PYTHONPATH": str(course.REPO_ROOT)})


def nbgrader(root: Path, *args: str) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(course.nbgrader_command(list(args), root), cwd=root, env=env_for(root), capture_output=True,
                          text=True)
    if proc.returncode:
        raise SystemExit(f"nbgrader {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
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


# --- 1. where one submission's seconds go ---


def _run(argv: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, env=env, check=True, capture_output=True)
    return time.perf_counter() - t0


def breakdown(lesson: str, root: Path, repeats: int = 3) -> None:
    """Time the parts of grading one submission (medians of ``repeats``)."""
    from autograder import sandbox, trusted
    from autograder.grade import grade_notebook

    containment = sandbox.choose()
    tmp = Path(tempfile.mkdtemp(prefix="bench-sandbox-"))
    env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", "PYTHONPATH": "/opt/dcgan-course" if
           containment.kind == "bwrap" else str(sandbox.package_copy())}
    wrap = sandbox.bwrap_argv(tmp, sandbox.package_copy()) if containment.kind == "bwrap" else []
    py = [sys.executable]
    rows = {
        "interpreter (python -c pass)": statistics.median(_run(py + ["-c", "pass"]) for _ in range(repeats)),
        "sandbox + interpreter": statistics.median(_run(wrap + py + ["-c", "pass"], env) for _ in range(repeats)),
        "sandbox + interpreter + import torch": statistics.median(
            _run(wrap + py + ["-c", "import torch"], env) for _ in range(repeats)),
    }
    shutil.rmtree(tmp, ignore_errors=True)

    timers = {"worker start": 0.0, "cells (op run)": 0.0, "probes (op probe)": 0.0, "judges": 0.0}
    handle_init, handle_request, handle_judge = trusted.WorkerHandle.__init__, trusted.WorkerHandle.request, \
        trusted.JudgeHandle.judge

    def init(self, *a, **k):
        t0 = time.perf_counter()
        handle_init(self, *a, **k)
        timers["worker start"] += time.perf_counter() - t0

    def request(self, message, timeout):
        t0 = time.perf_counter()
        try:
            return handle_request(self, message, timeout)
        finally:
            op = message.get("op")
            if op != "judge":  # a judge's request is timed whole by ``judge`` below
                timers["probes (op probe)" if op == "probe" else "cells (op run)"] += time.perf_counter() - t0

    def judge(self, *args, **kwargs):  # a judge process's verdict, as the grader waits for it
        t0 = time.perf_counter()
        try:
            return handle_judge(self, *args, **kwargs)
        finally:
            timers["judges"] += time.perf_counter() - t0

    trusted.WorkerHandle.__init__, trusted.WorkerHandle.request, trusted.JudgeHandle.judge = init, request, judge
    totals = []
    try:
        grade_notebook(course.source_notebook(lesson, root), assignment=lesson, root=root)  # warm the caches
        for k in timers:
            timers[k] = 0.0
        for _ in range(repeats):
            t0 = time.perf_counter()
            grade_notebook(course.source_notebook(lesson, root), assignment=lesson, root=root)
            totals.append(time.perf_counter() - t0)
    finally:
        trusted.WorkerHandle.__init__, trusted.WorkerHandle.request, trusted.JudgeHandle.judge = \
            handle_init, handle_request, handle_judge
    total = statistics.median(totals)
    print(f"where one submission's seconds go ({lesson}'s solution, containment {containment.kind}, "
          f"median of {repeats}):")
    for name, sec in rows.items():
        print(f"  {name:<42} {sec:6.2f} s")
    parts = {k: v / repeats for k, v in timers.items()}
    for name, sec in parts.items():
        print(f"  {name:<42} {sec:6.2f} s   ({100 * sec / total:4.1f}% of grading)")
    rest = total - sum(parts.values())
    print(f"  {'rest (read, repair, screen, score)':<42} {rest:6.2f} s   ({100 * rest / total:4.1f}% of grading)")
    print(f"  {'grade_notebook total':<42} {total:6.2f} s\n")


# --- 2. a class, three ways ---


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _median_seconds(root: Path, lesson: str) -> float:
    from autograder.classgrade import read_ledger

    return statistics.median(float(e.get("seconds", 0)) for e in read_ledger(root, lesson).values())


def grade_cli(root: Path, lesson: str, *extra: str) -> tuple[float, str]:
    """Wall seconds of ``python -m autograder grade`` and its summary line (with its phases)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", lesson, "--course", str(root), "--no-feedback",
                           *extra], cwd=root, env=env_for(root), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"grade {' '.join(extra)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    summary = next((ln for ln in proc.stdout.splitlines()[::-1] if " graded, " in ln), "")
    return time.perf_counter() - t0, summary


def class_three_ways(lesson: str, n: int, tmp: Path) -> None:
    base = copy_course(tmp / "base")
    nbgrader(base, "generate_assignment", lesson, "--force", "--log-level=WARN")
    src = nbformat.read(course.source_notebook(lesson, base), as_version=4)
    rel = nbformat.read(course.release_notebook(lesson, base), as_version=4)
    good = solved(rel, src)
    inbox = base / "inbox"
    inbox.mkdir()
    for i in range(n):
        text = colab_json(good) if i % 2 else nbformat.writes(good if i % 4 else rel)
        (inbox / f"student{i:03d}.ipynb").write_text(text)
    subprocess.run([sys.executable, "-m", "autograder", "collect", lesson, str(inbox)], cwd=base, env=env_for(base),
                   check=True, capture_output=True)
    roots = {name: shutil.copytree(base, tmp / name) for name in ("seq", "jobs2", "dask2")}

    rows = []
    t = nbgrader(roots["seq"], "autograde", lesson, "--force", "--log-level=WARN")
    rows.append(("nbgrader autograde (sequential)", t, None, ""))

    t, summary = grade_cli(roots["jobs2"], lesson, "--jobs", "2")
    rows.append(("grade --jobs 2 (LocalCluster)", t, _median_seconds(roots["jobs2"], lesson), summary))

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = []
    try:
        e = env_for(roots["dask2"])
        procs.append(subprocess.Popen(["dask", "scheduler", "--host", "127.0.0.1", "--port", str(port),
                                       "--no-dashboard"], env=e, start_new_session=True, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        from autograder.classgrade import worker_environ

        for k in range(2):  # as the README starts them
            procs.append(subprocess.Popen(["dask", "worker", address, "--nthreads", "1", "--nworkers", "1",
                                           "--no-dashboard", "--memory-limit", "0", "--name", f"w{k}"],
                                          env={**e, **worker_environ()},
                                          start_new_session=True, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=180)
        t, summary = grade_cli(roots["dask2"], lesson, "--scheduler", address)
        rows.append(("grade --scheduler (2 dask workers)", t, _median_seconds(roots["dask2"], lesson), summary))
    finally:
        for p in reversed(procs):
            try:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=20)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    seq = rows[0][1]
    print(f"a class of {n} submissions of {lesson} (wall seconds of the grading command; 'median' is the "
          "submissions' own seconds):")
    print(f"  {'how':<36} {'wall (s)':>9} {'s/sub':>7} {'vs seq':>7} {'median':>7}")
    for name, wall, med, _ in rows:
        print(f"  {name:<36} {wall:9.1f} {wall / n:7.2f} {seq / wall:6.2f}x {'' if med is None else f'{med:6.2f}s':>7}")
    for name, _, _, summary in rows[1:]:
        print(f"  {name}: {summary.strip()}")
    from autograder.classgrade import read_ledger

    for name in ("jobs2", "dask2"):
        got = {s: e["report"]["score"] for s, e in read_ledger(roots[name], lesson).items()}
        assert len(got) == n, f"{name}: {len(got)} of {n} graded"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lessons", nargs="*", default=None,
                   help="'all' or lesson names: also time one submission of each (check and nbgrader autograde)")
    p.add_argument("--class-lesson", default="01_strided_convolution")
    p.add_argument("--class-size", type=int, default=40)
    p.add_argument("--no-breakdown", action="store_true")
    args = p.parse_args()

    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp_name:
        tmp = Path(tmp_name)
        if not args.no_breakdown:
            breakdown(args.class_lesson, course.REPO_ROOT)
        if args.lessons:
            lessons = [a for a in course.assignments() if course.release_notebook(a).exists()] \
                if args.lessons == ["all"] else args.lessons
            from autograder.grade import grade_notebook

            root = copy_course(tmp / "lessons")
            nbgrader(root, "generate_assignment", "*", "--force", "--log-level=WARN")
            print(f"{'lesson':<28} {'check (s)':>10} {'autograde (s)':>14}  score")
            for a in lessons:
                t0 = time.perf_counter()
                report = grade_notebook(course.source_notebook(a, root), assignment=a, root=root)
                t_check = time.perf_counter() - t0
                dest = root / "autograder" / "submitted" / "bench" / a / f"{a}.ipynb"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(course.source_notebook(a, root), dest)
                t_ag = nbgrader(root, "autograde", a, "--student=bench", "--force", "--log-level=WARN")
                print(f"{a:<28} {t_check:>10.1f} {t_ag:>14.1f}  {report.score:g}/{report.max_score:g}", flush=True)
            print()
        if args.class_size > 0:
            class_three_ways(args.class_lesson, args.class_size, tmp)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
