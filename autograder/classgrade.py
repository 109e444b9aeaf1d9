"""``python -m autograder grade LESSON INBOX --jobs N``: a whole class, graded N at once, on Dask.

The driver (this process) collects and repairs the inbox, then hands one task per submission to a
Dask cluster: a ``distributed.LocalCluster`` of N single-threaded processes for ``--jobs N`` (forked
from multiprocessing's forkserver, which imported the grader while the driver collected), or
the instructor's own cluster for ``--scheduler tcp://HOST:8786`` (one code path). A task grades
one notebook on its worker machine with ``grade.grade_notebook`` (the student's code in that
machine's sandbox, the judges in the task's process) and returns plain data: the report, the
graded notebook's JSON, where it ran. Dask retries a task whose worker died (the scheduler's
``allowed-failures``); the driver alone writes the gradebook, once per student and file hash,
through nbgrader's own ``autograde`` with ``precomputed.Precomputed`` in place of the executing
preprocessor, so the gradebook, ``nbgrader export`` and ``generate_feedback`` are nbgrader's. Every worker first
proves it has the same course (``CourseCheck``); one with another course is refused.

A rerun continues: a submission whose file hash and course are those of a grade already written
(``autograder/reports/LESSON/<student>.json`` + the gradebook) is not graded again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder import course

course.skip_unused_imports()  # a Dask worker's first import of the package: before its first task imports nbformat
#: where the driver keeps one JSON per graded submission (report, file hash, course), and the HTML report
REPORTS_DIR = Path(course.GRADER_DIR) / "reports"
#: the largest graded notebook a task may send back (bytes of JSON)
MAX_NOTEBOOK = 64 << 20
#: the largest report a task may send back (bytes of JSON)
MAX_REPORT = 4 << 20
#: how many times Dask may lose a worker while it grades one submission before giving up on it
ALLOWED_FAILURES = 3
SECRET_ENV = "AUTOGRADER_SECRET"
#: Dask settings for a class run, given to the LocalCluster's processes (a ``dask worker`` of the instructor's
#: takes the same as environment variables: README). Off: the workers' statistical profiler (a stack sample
#: of every thread each 10 ms, for a dashboard nobody opens); slower: the event-loop tick (50 wake-ups a
#: second per process) and the system monitor. Idle, two workers used 0.17 of a core with Dask's defaults
#: and 0.02 with these (benchmarks/README.md): on 2 cores that was 8 CPU-seconds of a 55-second class run.
DASK_CONFIG = {
    "distributed.scheduler.allowed-failures": ALLOWED_FAILURES,
    "distributed.worker.daemon": False,  # a grading process starts its own (the sandbox template, the judges)
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}
#: what the LocalCluster's worker processes are forked from: multiprocessing's forkserver (Dask's
#: ``multiprocessing-method``), started as the driver begins and importing these while the driver collects, so
#: torch and the grader are imported once for every worker, not once in each, after the cluster starts
FORKSERVER_PRELOAD = ("distributed", "autograder.classgrade", "autograder.grade", "autograder.trusted")
#: those of DASK_CONFIG that cost a worker CPU time, for the README's ``dask worker`` (``worker_environ``)
WORKER_SETTINGS = ("distributed.worker.profile.enabled", "distributed.admin.tick.interval",
                   "distributed.admin.system-monitor.interval")


class ClassGradingError(RuntimeError):
    """The class cannot be graded (no gradebook, no cluster, no worker with this course): one line."""


# --- what a worker must share with the driver: the course ---


def _sha(parts: Iterator[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "big"))
        h.update(p)
    return h.hexdigest()


def course_fingerprint(assignment: str, root: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """What grades ``assignment`` here: the package's module hashes (as ``MANIFEST.sha256`` records
    them, after checking the files against it) and a hash of the source tests and course check modules."""
    from autograder import sandbox
    from autograder.grade import is_grade, is_solution, source_tests

    try:
        sandbox.verify_package()
    except sandbox.SandboxError as err:
        return {"package": "", "tests": "", "error": str(err)}
    manifest = sandbox.read_manifest()
    package = _sha(f"{rel} {digest}".encode() for rel, digest in sorted(manifest.items()))
    try:
        src, _ = source_tests(assignment, root)
    except Exception as err:  # noqa: BLE001 - GradingError, or an unreadable gradebook: the course is not here
        return {"package": package, "tests": "", "error": str(err)}
    cells = [f"{c.metadata['nbgrader']['grade_id']}\0{c.source}".encode()
             for c in src.cells if is_grade(c) and not is_solution(c)]
    modules: dict[str, bytes] = {}
    for folder in (course.release_notebook(assignment, root).parent, course.source_notebook(assignment, root).parent):
        if folder.is_dir():
            modules.update({p.name: p.read_bytes() for p in sorted(folder.glob("*.py"))})
    tests = _sha(iter(cells + [name.encode() + b"\0" + body for name, body in sorted(modules.items())]))
    return {"package": package, "tests": tests, "error": ""}


def worker_environ() -> dict[str, str]:
    """``DASK_CONFIG``'s settings as the environment variables a ``dask worker`` reads (the README's worker
    command): what the driver gives its LocalCluster, for the instructor's own workers."""
    return {"DASK_" + key.upper().replace(".", "__").replace("-", "_"): str(DASK_CONFIG[key])
            for key in WORKER_SETTINGS}


#: the environment the forkserver started with (its children have it, not the driver's of the moment), and by whom
_forkserver_started: tuple[int, dict[str, str]] | None = None


def start_forkserver() -> None:
    """Start multiprocessing's forkserver now (if none runs), importing ``FORKSERVER_PRELOAD`` in the background.

    Ctrl-C is ignored while it starts: it passes that on to the processes it forks (the LocalCluster's workers,
    which the driver stops itself; a terminal sends Ctrl-C to the whole process group).
    """
    global _forkserver_started
    import multiprocessing
    from multiprocessing import forkserver

    import dask

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return
    # what a nanny sets in this process before it starts a worker (one OpenMP thread...), set before the
    # forkserver imports torch, so a forked worker has it from the start, as a spawned one does
    for key, value in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items():
        if value is not None:
            os.environ.setdefault(key, str(value))
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(FORKSERVER_PRELOAD))
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        forkserver.ensure_running()
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
    if _forkserver_started is None or _forkserver_started[0] != os.getpid():
        _forkserver_started = (os.getpid(), dict(os.environ))


def _forkserver_current() -> bool:
    """Whether workers forked from the forkserver would have this process's environment as it is now (a
    process that grades twice, with the environment changed between: its workers are spawned instead). What
    a nanny sets in this process as it starts a worker (its hash seed, its process title's) does not count."""
    if _forkserver_started is None or _forkserver_started[0] != os.getpid():
        return False
    then, now = ({k: v for k, v in env.items() if k != "PYTHONHASHSEED" and not k.startswith("__DASK_")}
                 for env in (_forkserver_started[1], os.environ))
    return then == now


def fingerprint_difference(mine: dict[str, str], theirs: dict[str, str]) -> str | None:
    """None when ``theirs`` is the same course as ``mine``, else why not (a few words)."""
    if theirs.get("error"):
        return theirs["error"]
    if theirs.get("package") != mine.get("package"):
        return "its course package (MANIFEST.sha256) differs"
    if theirs.get("tests") != mine.get("tests"):
        return "its source tests differ"
    return None


def _describe_worker(assignment: str, root: str | None) -> dict[str, str]:
    """Run on every worker before the first task: its course and containment."""
    from autograder import sandbox

    info = course_fingerprint(assignment, root)
    try:
        info["containment"] = sandbox.choose().kind
    except sandbox.SandboxError as err:
        info["containment"], info["error"] = "none", info["error"] or str(err)
    info["host"] = socket.gethostname()
    return info


try:
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError:  # the `cluster` extra is not installed: grading a class says so when it starts
    WorkerPlugin = object  # type: ignore[assignment,misc]


class CourseCheck(WorkerPlugin):
    """A worker (already there or joining later) with another course closes before its first task."""

    idempotent = False

    def __init__(self, assignment: str, root: str | None, expected: dict[str, str]) -> None:
        self.assignment, self.root, self.expected = assignment, root, expected
        self.name = f"autograder-course-{assignment}"

    def setup(self, worker: Any) -> None:  # noqa: ANN401 - distributed.Worker
        """Compare the worker's course with the driver's; close the worker (and its nanny) when they differ."""
        why = fingerprint_difference(self.expected, course_fingerprint(self.assignment, self.root))
        worker.autograder_refused = why
        if why:
            import logging

            logging.getLogger("distributed.worker").error(
                "autograder: worker %s refused: another course (%s)", worker.address, why)
            worker.loop.add_callback(worker.close, nanny=True, reason="autograder: another course")

    def teardown(self, worker: Any) -> None:  # noqa: ANN401 - distributed.Worker
        """A worker that closes: nothing it holds is collected any more, so its interpreter's exit does not walk
        every object torch made (0.4 of the 0.6 s a grading process took to exit, after the class's last grade)."""
        from distributed.core import Status

        if worker.status in (Status.closing, Status.closed):
            import gc

            gc.freeze()


def _not_a_heartbeat_failure(record: Any) -> bool:  # noqa: ANN401 - logging.LogRecord
    return not record.getMessage().startswith("Failed to communicate with scheduler during heartbeat")


class LocalWorkerLogs(WorkerPlugin):
    """A LocalCluster's worker does not log its heartbeat failing: its scheduler lives in the driver, so that
    happens only while the driver closes the cluster (Ctrl-C, the run's end), as a traceback of Dask's."""

    name = "autograder-local-worker-logs"

    def setup(self, worker: Any) -> None:  # noqa: ANN401 - distributed.Worker
        """Filter the heartbeat's failure out of this worker's log."""
        import logging

        logging.getLogger("distributed.worker").addFilter(_not_a_heartbeat_failure)


# --- the task: one submission on a worker ---

_GRADE_LOCK = threading.Lock()


def grade_submission(
    assignment: str,
    student: str,
    notebook_json: str,
    secret: str,
    expected: dict[str, str],
    root: str | None = None,
    timeout: float | None = None,
    containment: str | None = None,
) -> dict[str, Any]:
    """Grade one submission here (a Dask task) and return plain data: the report and the graded notebook.

    ``secret``: the run's hidden-case secret (the same for every submission of a class run).
    ``expected``: the driver's ``course_fingerprint``; a worker with another course reschedules the task.
    """
    from distributed import Reschedule, get_worker

    from autograder import sandbox
    from autograder.checks import _secret
    from autograder.grade import DEFAULT_TIMEOUT, GradingError, grade_notebook

    scratch = None  # the Dask worker's own folder: Dask removes what a killed worker left there
    with contextlib.suppress(ValueError):
        worker = get_worker()
        if getattr(worker, "autograder_refused", None):
            raise Reschedule()
        scratch = worker.local_directory
    sandbox.Template.expect_many()  # a worker grades many: even its first submission is forked from the template
    with _GRADE_LOCK:  # one grading per process: the secret is process-wide
        if os.environ.get(SECRET_ENV) != secret:
            os.environ[SECRET_ENV] = secret
            _secret.reset()
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="autograder-class-", dir=scratch) as tmp:
            path = Path(tmp) / f"{assignment}.ipynb"
            path.write_text(notebook_json, encoding="utf-8")
            executed = Path(tmp) / "executed.ipynb"
            try:
                report = grade_notebook(path, assignment=assignment, root=root, timeout=timeout or DEFAULT_TIMEOUT,
                                        keep_executed=executed, containment=containment)
            except GradingError as err:
                return {"student": student, "error": str(err), "report": None, "notebook": None,
                        "host": socket.gethostname(), "seconds": time.perf_counter() - t0}
            graded = executed.read_text(encoding="utf-8") if executed.exists() else None
        return {"student": student, "error": None, "report": report.to_dict(), "notebook": graded,
                "host": socket.gethostname(), "seconds": time.perf_counter() - t0}


def validate_result(result: object, student: str) -> dict[str, Any]:
    """The task's reply, checked by exact type and size (it crossed a network); ValueError otherwise."""
    if type(result) is not dict or result.get("student") != student:
        raise ValueError("the reply is not a grading result for this student")
    if result.get("error") is not None:
        if type(result["error"]) is not str:
            raise ValueError("malformed error")
        return result
    report, notebook = result.get("report"), result.get("notebook")
    if type(report) is not dict or (notebook is not None and type(notebook) is not str):
        raise ValueError("malformed report")
    if len(json.dumps(report)) > MAX_REPORT or (notebook and len(notebook) > MAX_NOTEBOOK):
        raise ValueError("oversized reply")
    for c in report.get("cells", []):
        if type(c) is not dict or type(c.get("grade_id")) is not str:
            raise ValueError("malformed cell result")
    return result


# --- the driver's side of nbgrader: autograde with the task's outputs instead of executing ---

def _nbgrader_api(root: Path) -> Any:  # noqa: ANN401 - nbgrader.apps.NbGraderAPI
    """nbgrader's API with the course config, executing nothing: ``Precomputed`` replaces the execute step."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    cfg_path = course.config_path(root)
    cfg = PyFileConfigLoader(cfg_path.name, str(cfg_path.parent)).load_config()
    steps = list(cfg.Autograde.get("autograde_preprocessors", []))
    execute = [s for s in steps if str(s).endswith(("TrustedExecute", ".Execute"))]
    if not execute:
        raise ClassGradingError(f"{cfg_path}: Autograde.autograde_preprocessors has no execute step to replace")
    cfg.Autograde.autograde_preprocessors = ["autograder.precomputed.Precomputed" if s in execute else s
                                             for s in steps]
    return NbGraderAPI(config=cfg)


@contextlib.contextmanager
def nbgrader_write_caches() -> Iterator[None]:
    """nbgrader's own gradebook writes, with two caches, while the driver writes a class's grades.

    One ``autograde`` of a student opens the gradebook about ten times, each time with a new SQLAlchemy
    engine (whose statement cache starts empty), and checks every cell's metadata with
    ``jsonschema.validate``, which checks the schema itself on each call: most of the 0.34 s that
    writing one grade cost the driver, the one process that writes. Here each database URL keeps one
    engine and each schema is checked once; every query, check and commit nbgrader makes is still made,
    so the gradebook is the one a sequential ``nbgrader autograde`` writes (tests/test_class_grading.py).
    """
    import jsonschema
    import nbgrader.api as nbgrader_api

    create_engine, validate = nbgrader_api.create_engine, jsonschema.validate
    engines: dict[str, Any] = {}
    validators: dict[str, Any] = {}

    def one_engine(url: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: ANN401
        key = f"{url}\0{sorted(kwargs.items())}"
        if key not in engines:
            engines[key] = create_engine(url, *args, **kwargs)
        return engines[key]

    def checked_once(instance: Any, schema: Any, cls: Any = None, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401
        if cls is not None or args or kwargs or not isinstance(schema, dict):
            return validate(instance, schema, cls, *args, **kwargs)
        key = json.dumps(schema, sort_keys=True)
        if key not in validators:
            kind = jsonschema.validators.validator_for(schema)
            kind.check_schema(schema)
            validators[key] = kind(schema)
        error = jsonschema.exceptions.best_match(validators[key].iter_errors(instance))
        if error is not None:
            raise error
        return None

    nbgrader_api.create_engine, jsonschema.validate = one_engine, checked_once
    try:
        yield
    finally:
        nbgrader_api.create_engine, jsonschema.validate = create_engine, validate
        for engine in engines.values():
            engine.dispose()


def write_to_gradebook(api: Any, assignment: str, student: str, result: dict[str, Any]) -> str | None:  # noqa: ANN401
    """nbgrader autograde of one student with the task's outputs; None, or why nbgrader recorded no grade."""
    import nbformat

    graded = nbformat.reads(result["notebook"], as_version=4)
    report = result["report"]
    graded.metadata["autograder_run"] = {"containment": report.get("containment", ""), "flags": report.get("flags", []),
                                         "restarts": report.get("worker_restarts", 0),
                                         "secret": report.get("secret", "")}
    from autograder import precomputed

    precomputed.PENDING[student] = graded
    try:
        with warnings.catch_warnings():  # nbgrader's own SQLAlchemy session warnings, as in `nbgrader autograde`
            warnings.simplefilter("ignore")
            out = api.autograde(assignment, student, force=True, create=True)
    finally:
        precomputed.PENDING.pop(student, None)
    if out.get("success"):
        from nbgrader.api import Gradebook

        with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
            recorded = gb.find_submission_notebook(assignment, assignment, student).score
        if abs(recorded - float(report.get("score", 0))) > 1e-9:  # never a grade that differs from the report
            return f"nbgrader recorded {recorded:g} points where the report says {report.get('score')}"
        return None
    lines = [ln for ln in str(out.get("error") or out.get("log") or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "nbgrader autograde failed"


def export_and_feedback(root: Path, assignment: str) -> None:
    """``nbgrader export`` and ``nbgrader generate_feedback LESSON --force``, in this process (no second start-up)."""
    from nbgrader.api import Gradebook
    from nbgrader.plugins import CsvExportPlugin

    api = _nbgrader_api(root)
    with warnings.catch_warnings(), nbgrader_write_caches():
        warnings.simplefilter("ignore")
        with Gradebook(api.coursedir.db_url, api.coursedir.course_id) as gb:
            plugin = CsvExportPlugin(parent=api)
            plugin.log.setLevel("WARNING")
            plugin.export(gb)
        out = api.generate_feedback(assignment, force=True)
    if not out.get("success"):
        lines = [ln for ln in str(out.get("error") or out.get("log") or "").splitlines() if ln.strip()]
        raise ClassGradingError(f"nbgrader generate_feedback failed: {lines[-1] if lines else '?'}")


# --- the ledger: which submissions are graded, with which file and course ---


def file_hash(path: Path) -> str:
    """sha256 of a submission file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ledger_path(root: Path, assignment: str, student: str) -> Path:
    """``autograder/reports/LESSON/<student>.json``."""
    return root / REPORTS_DIR / assignment / f"{student}.json"


def read_ledger(root: Path, assignment: str) -> dict[str, dict[str, Any]]:
    """student -> the recorded entry (report, file hash, course) of every graded submission."""
    out = {}
    for p in sorted((root / REPORTS_DIR / assignment).glob("*.json")):
        try:
            out[p.stem] = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return out


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(tmp, path)


# --- the driver ---


@dataclass
class ClassResult:
    """What a class run did."""

    graded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    refused_workers: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    seconds: float = 0.0
    phases: dict[str, float] = field(default_factory=dict)  # collect, cluster start, grading, export + feedback


def run_secret(root: Path) -> str:
    """The run's hidden-case secret: the instructor's (``AUTOGRADER_SECRET``, ``autograder/secret``), else
    one drawn now, for every submission of this run."""
    value = os.environ.get(SECRET_ENV)
    if value:
        return value
    with contextlib.suppress(OSError):
        text = (root / course.GRADER_DIR / "secret").read_text(encoding="utf-8").strip()
        if text:
            return text
    return secrets.token_hex(32)


def submissions(root: Path, assignment: str) -> dict[str, Path]:
    """student -> ``autograder/submitted/<student>/LESSON/LESSON.ipynb``."""
    base = root / course.GRADER_DIR / "submitted"
    return {p.parent.parent.name: p for p in sorted(base.glob(f"*/{assignment}/{assignment}.ipynb"))}


def _gradebook_students(root: Path, assignment: str) -> set[str]:
    from nbgrader.api import Gradebook, MissingEntry

    db = root / course.GRADER_DIR / "gradebook.db"
    if not db.exists():
        raise ClassGradingError(f"no gradebook at {db}: run `python -m autograder generate {assignment}` first")
    with Gradebook("sqlite:///" + str(db)) as gb:
        try:
            gb.find_assignment(assignment)
        except MissingEntry:
            raise ClassGradingError(f"{assignment} is not in {db}: run `python -m autograder generate "
                                    f"{assignment}` first") from None
        return {s.student_id for s in gb.assignment_submissions(assignment)}


class _Interrupts:
    """Ctrl-C is noted and acted on at the driver's next safe point, never inside a Dask call or a grade's write.

    Raising from the handler inside one of distributed's blocking calls races with its own cancellation (a
    ``NameError`` traceback from ``distributed.utils.sync``), so the first Ctrl-C only sets a flag; a second one
    stops at once, except while a grade is being written.
    """

    def __init__(self) -> None:
        self.pending = False
        self.writing = False

    def handler(self, signum: int, frame: object) -> None:
        if self.pending and not self.writing:
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        """Stop here if Ctrl-C was pressed."""
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def critical(self) -> Iterator[None]:
        self.writing = True
        try:
            yield
        finally:
            self.writing = False
        self.check()


def status_line(student: str, report: dict[str, Any] | None, seconds: float, error: str | None = None,
                host: str = "") -> str:
    """One line per student: score, flags, seconds."""
    if report is None:
        return f"{student:<24} could not grade: {error}"
    flags = []
    if report.get("review"):
        flags.append("REVIEW")
    statuses = {c.get("status") for c in report.get("cells", [])}
    if "timeout" in statuses:
        flags.append("timeout")
    if report.get("worker_restarts"):
        flags.append(f"{report['worker_restarts']} restart(s)")
    if report.get("error"):
        flags.append(f"error: {report['error']}")
    score = f"{report.get('score', 0):g}/{report.get('max_score', 0):g}"
    return f"{student:<24} {score:>9}  {seconds:5.1f} s  {' '.join(flags)}".rstrip() + (f"  [{host}]" if host else "")


def grade_class(
    assignment: str,
    inbox: Sequence[str | os.PathLike[str]] = (),
    *,
    root: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    scheduler: str | None = None,
    timeout: float | None = None,
    containment: str | None = None,
    feedback: bool = True,
    quiet: bool = False,
) -> ClassResult:
    """Collect, grade (on Dask), write the gradebook, export grades.csv and the feedback; see the module doc."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise ClassGradingError("grading a class needs Dask: pip install 'dcgan-course[instructor,cluster]'") from None
    from tqdm import tqdm

    from autograder.collect import collect

    t_start = time.perf_counter()
    if scheduler is None:
        start_forkserver()  # the workers' imports, while this process collects and reads the gradebook
    root_path = course.course_root(root)
    result = ClassResult()
    say = (lambda msg: None) if quiet else (lambda msg: tqdm.write(msg, file=sys.stdout))
    if inbox or any(submissions(root_path, assignment).values()):
        t0 = time.perf_counter()
        collected = collect(assignment, inbox, root=root_path)
        for s in collected:
            if s.error:
                say(f"collect: {s.error}")
        say(f"collected {len(collected)} submission(s), {sum(bool(s.repairs) for s in collected)} repaired "
            f"(report: {root_path / course.GRADER_DIR / f'collect_{assignment}.csv'})")
        result.phases["collect"] = time.perf_counter() - t0
    in_gradebook = _gradebook_students(root_path, assignment)
    subs = submissions(root_path, assignment)
    if not subs:
        raise ClassGradingError(f"no submissions of {assignment} in {root_path / course.GRADER_DIR / 'submitted'}")

    expected = course_fingerprint(assignment, root_path)
    if expected["error"]:
        raise ClassGradingError(expected["error"])
    ledger = read_ledger(root_path, assignment)
    todo: dict[str, tuple[Path, str]] = {}
    for student, path in subs.items():
        digest = file_hash(path)
        entry = ledger.get(student)
        autograded = root_path / course.GRADER_DIR / "autograded" / student / assignment / f"{assignment}.ipynb"
        if (entry and entry.get("file_sha256") == digest and entry.get("course") == expected
                and student in in_gradebook and autograded.exists()):
            result.skipped.append(student)
        else:
            todo[student] = (path, digest)
    if result.skipped:
        say(f"{len(result.skipped)} submission(s) already graded with the same file and course: not graded again")

    secret = run_secret(root_path)
    interrupts = _Interrupts()
    old_handler = signal.signal(signal.SIGINT, interrupts.handler) \
        if threading.current_thread() is threading.main_thread() else None
    try:
        if todo:
            t0 = time.perf_counter()
            with _client(jobs, scheduler) as client:
                result.phases["cluster start"] = time.perf_counter() - t0
                interrupts.check()
                _grade_on(client, assignment, todo, root_path, expected, secret, scheduler is None, timeout,
                          containment, result, interrupts, say, quiet)
        if feedback and (result.graded or not (root_path / course.GRADER_DIR / "grades.csv").exists()):
            t0 = time.perf_counter()
            with interrupts.critical():
                export_and_feedback(root_path, assignment)
            result.phases["export + feedback"] = time.perf_counter() - t0
            say(f"grades: {root_path / course.GRADER_DIR / 'grades.csv'}; feedback: "
                f"{root_path / course.GRADER_DIR / 'feedback'}/<student>/{assignment}/")
    except KeyboardInterrupt:
        result.interrupted = True
    finally:
        if old_handler is not None:
            signal.signal(signal.SIGINT, old_handler)
    result.seconds = time.perf_counter() - t_start
    return result


@contextlib.contextmanager
def _client(jobs: int | None, scheduler: str | None) -> Iterator[Any]:
    """A Dask client: the instructor's scheduler, or a LocalCluster of ``jobs`` single-threaded processes."""
    import dask
    from distributed import Client, LocalCluster

    with dask.config.set(DASK_CONFIG):
        if scheduler:
            try:
                client = Client(scheduler, timeout="10s")
            except (OSError, TimeoutError) as err:
                raise ClassGradingError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None
            try:
                yield client
            finally:
                client.close()
            return
        import logging

        n = max(1, jobs or os.cpu_count() or 1)
        # forked from start_forkserver's server (started here if grade_class did not), with its imports and its
        # ignored Ctrl-C; where there is none, spawned, and Ctrl-C ignored while they start: a terminal sends it
        # to the whole process group, and the driver stops the workers cleanly when it closes the cluster
        start_forkserver()
        method = "forkserver" if _forkserver_current() else "spawn"
        main = threading.current_thread() is threading.main_thread()
        with dask.config.set({"distributed.worker.multiprocessing-method": method}):  # a restarted worker too
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                                       memory_limit=0, silence_logs=logging.ERROR)
            finally:
                if previous is not None:
                    signal.signal(signal.SIGINT, previous)
            try:
                with Client(cluster) as client:
                    client.register_plugin(LocalWorkerLogs())
                    yield client
            finally:
                cluster.close()


def _grade_on(client: Any, assignment: str, todo: dict[str, tuple[Path, str]], root: Path,  # noqa: ANN401
              expected: dict[str, str], secret: str, local: bool, timeout: float | None, containment: str | None,
              result: ClassResult, interrupts: _Interrupts, say: Any, quiet: bool) -> None:  # noqa: ANN401
    from distributed import as_completed
    from tqdm import tqdm

    worker_root = str(root) if local else None
    try:
        client.wait_for_workers(1, timeout=60)
    except TimeoutError:
        raise ClassGradingError("no Dask worker joined the scheduler within 60 s") from None
    described = client.run(_describe_worker, assignment, worker_root)
    by_host: dict[str, list[str]] = {}
    for address, info in sorted(described.items()):
        why = fingerprint_difference(expected, info)
        if why:
            result.refused_workers[address] = why
            say(f"worker {address} ({info.get('host')}) refused: another course ({why})")
        else:
            by_host.setdefault(f"{info.get('host')}:{info.get('containment')}", []).append(address)
    if len(result.refused_workers) == len(described):
        raise ClassGradingError("no worker has this course: " + "; ".join(sorted(set(result.refused_workers.values()))))
    for key, addresses in by_host.items():
        if key.endswith(":user") and len(addresses) > 1:
            raise ClassGradingError(f"{len(addresses)} workers on {key.split(':')[0]} would share the sandbox uid "
                                    "(containment 'user' kills every process of it after each notebook): install "
                                    "bubblewrap there, or run one single-threaded worker per machine")
    client.register_plugin(CourseCheck(assignment, worker_root, expected))
    good = sum(len(v) for v in by_host.values())
    say(f"grading {len(todo)} submission(s) of {assignment} on {good} Dask worker(s) "
        f"({'LocalCluster' if local else client.scheduler.address})")

    api = _nbgrader_api(root)
    if timeout is None:  # the course's own limit, as `nbgrader autograde` reads it (c.Execute.timeout)
        configured = api.config.get("Execute", {}).get("timeout")
        timeout = float(configured) if isinstance(configured, (int, float)) and configured > 0 else None
    t_grading = time.perf_counter()
    futures = {}
    for student, (path, digest) in todo.items():
        text = path.read_text(encoding="utf-8-sig")
        fut = client.submit(grade_submission, assignment, student, text, secret, expected, worker_root, timeout,
                            containment, key=f"grade-{assignment}-{student}-{digest[:16]}", pure=False)
        futures[fut] = (student, digest)
    written: set[tuple[str, str]] = set()
    bar = tqdm(total=len(futures), unit="nb", disable=quiet, file=sys.stderr, dynamic_ncols=True)
    pending = as_completed(futures)
    with nbgrader_write_caches():  # the driver's writes: one engine, each schema checked once
        try:
            while not pending.is_empty():
                interrupts.check()
                done = pending.next_batch(block=False)
                if not done:
                    time.sleep(0.2)  # poll: Ctrl-C must not land inside distributed's own waiting (see _Interrupts)
                    continue
                for fut in done:
                    student, digest = futures[fut]
                    if (student, digest) in written:
                        continue
                    try:
                        res = validate_result(fut.result(), student)
                    except Exception as err:  # noqa: BLE001 - one submission's failure must not stop the class
                        msg = f"{type(err).__name__}: {str(err)[:300]}"
                        result.failed[student] = msg
                        say(status_line(student, None, 0, msg))
                        bar.update()
                        continue
                    with interrupts.critical():
                        if res["error"] is not None:
                            result.failed[student] = res["error"]
                            say(status_line(student, None, res["seconds"], res["error"]))
                        else:
                            report = res["report"]
                            report["notebook"] = str(todo[student][0])
                            why = None if report.get("error") else write_to_gradebook(api, assignment, student, res)
                            if report.get("error") or why:
                                result.failed[student] = report.get("error") or why or ""
                            else:
                                _write_json(ledger_path(root, assignment, student),
                                            {"student": student, "assignment": assignment, "file_sha256": digest,
                                             "course": expected, "host": res.get("host", ""),
                                             "seconds": res.get("seconds", 0.0), "report": report})
                                result.graded.append(student)
                            written.add((student, digest))
                            say(status_line(student, report, float(res.get("seconds", 0.0)), why,
                                            "" if local else str(res.get("host", ""))))
                    bar.update()
        except KeyboardInterrupt:
            client.cancel(list(futures))
            raise
        finally:
            bar.close()
            result.phases["grading"] = time.perf_counter() - t_grading
