"""Trusted grading: the student's code runs in a sandboxed worker, the judgement in a judge process.

For one notebook (already repaired, its test cells taken from the source or the gradebook):

1. every cell the student could have written is screened (``autograder/screen.py``); a cell
   that uses what an honest answer never needs is not run, and its exercise scores 0;
2. a worker is started in the sandbox (``autograder/sandbox.py``): a zygote that forks a runner
   for the cells' visible outputs and a fresh probe child per check (``autograder/worker.py``);
3. each graded test cell is *not* run as code: its check calls (``checks.check_x(name, ...,
   hidden=True)``, parsed from the trusted source) become probe requests with a fresh nonce; a
   probe child re-defines the notebook's definitions, runs the probe on the student's objects and
   returns plain data once; the exercise's judge decides in the judge process
   (``autograder/judge.py``), which never sees a student's object;
4. limits: a cell's limit counts the worker's CPU seconds (a busy machine never stops an honest
   cell), with a wall-clock cap for cells that wait; each judgement has its own limits; the whole
   submission has a deadline. A cell that kills, hangs or exhausts the worker costs that cell: the
   worker is killed, restarted, the earlier cells re-run, and grading goes on.

The outputs of every cell are written into the notebook, the test cells' by the judge only, so
nbgrader's own scoring (``SaveAutoGrades``) and ``python -m autograder check`` read the same grade.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import os
import secrets
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import nbformat
from nbformat import NotebookNode

from autograder import judge as judge_module
from autograder import sandbox
from autograder.checks._core import Exercise
from autograder.checks._plain import PlainDataError, dumps, loads
from autograder.errors import GradingError
from autograder.screen import ALLOWED_MODULES, COMMON_MODULE_NAMES, Finding, Screen
from autograder.worker import write_frame

#: how long the worker may take to start (importing torch on a loaded machine)
START_TIMEOUT = 120.0
#: restarts of a dead or stuck worker per notebook, before the rest is marked ungraded
MAX_RESTARTS = 8
#: a cell's limit (``timeout``, nbgrader's ``Execute.timeout``, 60 s by default) counts the CPU
#: seconds of the worker's processes, so a busy machine never stops an honest cell; a cell that
#: waits instead of computing (``time.sleep``, a blocked read) is stopped after WALL_FACTOR times
#: the limit of wall-clock time (300 s by default)
WALL_FACTOR = 5
#: how often (seconds) the worker's CPU time is read while a cell runs
CPU_POLL = 0.25
#: a whole submission's wall-clock deadline, in cell limits (20 x 60 s by default): what is not
#: graded by then scores 0 and the notebook is flagged for review
SUBMISSION_FACTOR = 20
#: CPU seconds one judgement may take (its wall-clock limit: WALL_FACTOR times that)
JUDGE_TIMEOUT = 60.0
#: the largest reply read from the worker (bytes)
MAX_REPLY = 256 << 20
FAIL_MARK = "\u2718"
#: errors of a course (trusted) cell that mean the grading environment is broken, not the answer
ENVIRONMENT_ERRORS = ("ModuleNotFoundError", "ImportError", "PermissionError")
PASS_MARK = "\u2714"


class TestCellError(ValueError):
    """A source test cell that is not a list of check calls (an authoring error)."""


# --- test cells: which probe, which judge ---


@dataclass(frozen=True)
class CheckCall:
    """``module.function(*names, hidden=hidden)``, parsed from a trusted test cell."""

    module: str
    function: str
    names: tuple[str, ...]
    hidden: bool

    def __str__(self) -> str:
        return f"{self.function}({', '.join(self.names)}{', hidden=True' if self.hidden else ''})"


def parse_test_cell(source: str) -> list[CheckCall]:
    """The check calls of a test cell: imports of check modules, then ``checks.check_x(names)`` lines."""
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        raise TestCellError(f"test cell does not parse: {err}") from None
    aliases: dict[str, tuple[str, str | None]] = {}  # local name -> (module, attribute or None)
    calls: list[CheckCall] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for a in stmt.names:
                if stmt.module == "autograder.checks" or stmt.module.startswith("autograder.checks."):
                    full = f"{stmt.module}.{a.name}" if stmt.module == "autograder.checks" else stmt.module
                    aliases[a.asname or a.name] = (full, None if stmt.module == "autograder.checks" else a.name)
                else:
                    aliases[a.asname or a.name] = (stmt.module, a.name)
        elif isinstance(stmt, ast.Import):
            for a in stmt.names:
                if a.asname:
                    aliases[a.asname] = (a.name, None)
        elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
            call = stmt.value
            if isinstance(call.func, ast.Attribute) and isinstance(call.func.value, ast.Name):
                module, attr = aliases.get(call.func.value.id, (None, None))
                function = call.func.attr
                if module is None or attr is not None:
                    raise TestCellError(f"{ast.unparse(call.func)}: {call.func.value.id} is not a checks module")
            elif isinstance(call.func, ast.Name) and call.func.id in aliases and aliases[call.func.id][1]:
                module, function = aliases[call.func.id]
            else:
                raise TestCellError(f"not a check call: {ast.unparse(call)}")
            if not all(isinstance(a, ast.Name) for a in call.args):
                raise TestCellError(f"{ast.unparse(call)}: a check takes the student's names only")
            hidden = False
            for kw in call.keywords:
                if kw.arg != "hidden" or not isinstance(kw.value, ast.Constant) or type(kw.value.value) is not bool:
                    raise TestCellError(f"{ast.unparse(call)}: the only keyword is hidden=True/False")
                hidden = kw.value.value
            calls.append(CheckCall(str(module), str(function), tuple(a.id for a in call.args), hidden))
        else:
            raise TestCellError(f"a test cell holds imports and check calls only, not: {ast.unparse(stmt)[:80]}")
    if not calls:
        raise TestCellError("a test cell without a check call")
    return calls


def load_check_module(name: str, search: list[Path]) -> ModuleType:
    """The grader's copy of a check module (``autograder.judge.load_check_module``)."""
    try:
        return judge_module.load_check_module(name, search)
    except LookupError as err:
        raise GradingError(str(err)) from None


def check_module_source(name: str, search: list[Path]) -> str:
    """The text of a course's own check module (not in the package), read by the grader."""
    module = load_check_module(name, search)
    return Path(str(module.__file__)).read_text(encoding="utf-8")


def exercise_of(call: CheckCall, search: list[Path]) -> Exercise:
    """The ``Exercise`` behind a parsed check call."""
    fn = getattr(load_check_module(call.module, search), call.function, None)
    ex = getattr(fn, "exercise", None)
    if not isinstance(ex, Exercise):
        raise GradingError(f"{call.module}.{call.function} is not an exercise check (built with _core.exercise)")
    return ex


# --- the worker, from this side ---


class WorkerDied(RuntimeError):
    """The worker exited (``os._exit``, a crash, out of memory) or broke the protocol."""


class WorkerTimeout(RuntimeError):
    """The worker did not answer in time (an endless loop)."""


_TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, its reaped children's included) of ``pid`` and every process
    below it, from ``/proc``: what a cell costs whatever else the machine is running."""
    stats: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        # fields after the name: state ppid ... utime(12) stime cutime cstime
        stats[int(name)] = (int(fields[1]), sum(int(x) for x in fields[11:15]) / _TICK)
    children: dict[int, list[int]] = {}
    for p, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(p)
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0.0))[1]
        todo.extend(children.get(p, ()))
    return total


class WorkerHandle:
    """A running worker: send a request, wait for its reply with a deadline, kill it."""

    def __init__(self, containment: sandbox.Containment, workdir: Path, preload: list[str],
                 lesson_imports: Sequence[str] = ()) -> None:
        """``preload``: the check modules the worker imports; ``lesson_imports``: what the lesson's released
        notebook imports (a template imports it once for every submission of the lesson)."""
        self.containment = containment

        def start(req_r: int, rep_w: int) -> subprocess.Popen | sandbox.Forked:
            if containment.kind == "bwrap" and sandbox.Template.holds(workdir):  # a fork of the template
                return sandbox.Template.spawn(workdir, preload, (req_r, rep_w), lesson_imports)
            launch = sandbox.launch(containment, workdir, [str(req_r), str(rep_w), *preload])
            if containment.kind == "user":
                for fd in (req_r, rep_w):
                    os.set_inheritable(fd, True)
            return subprocess.Popen(
                launch.argv, env=launch.env, cwd=launch.cwd, pass_fds=(req_r, rep_w), preexec_fn=launch.preexec,
                start_new_session=launch.preexec is None, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=None if os.environ.get("AUTOGRADER_DEBUG") else subprocess.DEVNULL,
            )

        self.proc: subprocess.Popen | sandbox.Forked = self._connect(start)
        ready = self._receive(START_TIMEOUT)
        if ready.get("op") != "ready":
            self.kill()
            raise WorkerDied("the worker did not start")

    def _connect(self, start: Callable[[int, int], Any]) -> Any:  # noqa: ANN401 - what ``start`` returns
        """Two pipes to a new process: ``start(request read end, reply write end)`` starts it; we keep the
        other ends, or close them too when it fails."""
        req_r, self._req_w = os.pipe()
        self._rep_r, rep_w = os.pipe()
        try:
            return start(req_r, rep_w)
        except BaseException:
            for fd in (self._req_w, self._rep_r):
                os.close(fd)
            raise
        finally:
            os.close(req_r)
            os.close(rep_w)

    def request(self, message: dict[str, Any], timeout: float, wall: float | None = None) -> dict[str, Any]:
        """Send ``message``; the reply (validated plain data) within ``timeout`` seconds of the
        worker's CPU time and ``wall`` (default ``WALL_FACTOR`` times ``timeout``) of wall-clock time."""
        try:
            write_frame(self._req_w, dumps(message))
        except OSError:
            raise WorkerDied("the worker is gone") from None
        return self._receive(timeout, cpu=True, wall=wall)

    def _receive(self, timeout: float, cpu: bool = False, wall: float | None = None) -> dict[str, Any]:
        start_cpu = tree_cpu_seconds(self.proc.pid) if cpu else 0.0
        if wall is None:
            wall = timeout * WALL_FACTOR if cpu else timeout
        deadline = time.monotonic() + max(wall, 0.5)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerTimeout()
            ready, _, _ = select.select([self._rep_r], [], [], min(left, CPU_POLL))
            if ready:
                break
            if self.proc.poll() is not None:
                raise WorkerDied(f"the worker exited with status {self.proc.returncode}")
            if cpu and tree_cpu_seconds(self.proc.pid) - start_cpu > timeout:
                raise WorkerTimeout()
        head = os.read(self._rep_r, 8)
        if len(head) < 8:
            status = self.proc.poll()
            raise WorkerDied("the worker exited" + (f" with status {status}" if status is not None else ""))
        n = int.from_bytes(head, "big")
        if n > MAX_REPLY:
            raise WorkerDied("the worker sent an oversized reply")
        chunks, got = [], 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerTimeout()
            ready, _, _ = select.select([self._rep_r], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(self._rep_r, min(n - got, 1 << 20))
            if not chunk:
                raise WorkerDied("the worker exited mid-reply")
            chunks.append(chunk)
            got += len(chunk)
        try:
            reply = loads(b"".join(chunks))
        except PlainDataError as err:
            raise WorkerDied(f"the worker broke the protocol: {err}") from None
        if type(reply) is not dict:
            raise WorkerDied("the worker broke the protocol: reply is not a dict")
        return reply

    def kill(self) -> None:
        """Kill the worker and everything it started."""
        for fd in (self._req_w, self._rep_r):
            try:
                os.close(fd)
            except OSError:
                pass
        sandbox.kill_all(self.containment, self.proc)


class _JudgeServer:
    """The grading process's judge server (``judge.serve``), started on first use and restarted if it died."""

    _lock = threading.Lock()
    _sock: socket.socket | None = None
    _proc: subprocess.Popen | None = None
    _owner = 0  # the pid that started the server (a forked grader starts its own)
    _env: dict[str, str] = {}  # the environment it started with
    _registered = False

    @classmethod
    def fork(cls, fds: tuple[int, int], preload: list[str], secret: str) -> int:
        """A new judge serving the pipe ends ``fds`` (request read end, reply write end): its pid."""
        env = _judge_env()
        with cls._lock:
            for _attempt in (1, 2):
                if cls._owner != os.getpid() or cls._proc is None or cls._proc.poll() is not None:
                    cls._start(env)  # first use, a dead server, or a forked copy of the grader: its own server
                assert cls._sock is not None
                # the environment only when it changed since the server started (a request stays small)
                message = dumps({"preload": preload, "secret": secret, "env": None if env == cls._env else env,
                                 "debug": bool(os.environ.get("AUTOGRADER_DEBUG"))})
                try:
                    socket.send_fds(cls._sock, [message], list(fds))
                    head = cls._sock.recv(8)  # one packet: the pid, or 0
                except OSError:
                    head = b""
                pid = int.from_bytes(head, "big") if len(head) == 8 else 0
                if pid > 0:
                    return pid
                cls._stop()
        raise WorkerDied("the judge server did not start a judge")

    @classmethod
    def _start(cls, env: dict[str, str]) -> None:
        if cls._owner == os.getpid():
            cls._stop()
        elif cls._sock is not None:  # a forked copy: let go of the parent's socket, leave its server alone
            cls._sock.close()
            cls._sock = cls._proc = None
        cls._owner = os.getpid()
        # SEQPACKET: each request arrives whole, with its descriptors
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cls._proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "autograder.judge", "--server", str(theirs.fileno())], env=env,
            pass_fds=(theirs.fileno(),), start_new_session=True, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=None if os.environ.get("AUTOGRADER_DEBUG") else subprocess.DEVNULL)
        theirs.close()
        ours.settimeout(START_TIMEOUT)  # a server that hangs is replaced, never waited for
        cls._sock, cls._env = ours, env
        if not cls._registered:
            atexit.register(cls._stop)
            cls._registered = True

    @classmethod
    def _stop(cls) -> None:
        """Close the socket and kill the server at once (it holds nothing to save, and its own exit on the
        closed socket, a torch interpreter's teardown, cost every grading process 1 s as it ended); reap it.
        A judge still running exits when the grader closes its request pipe."""
        if cls._owner != os.getpid():
            return
        if cls._sock is not None:
            cls._sock.close()
        proc = cls._proc
        if proc is not None:
            sandbox.with_suppress(proc.kill)
            sandbox.with_suppress(lambda: proc.wait(timeout=10))
        cls._sock = cls._proc = None


def _judge_env() -> dict[str, str]:
    """The judge's environment: the grader's, with one thread and the verified package first on the path (the
    secret travels in the request, never in an environment another process could read)."""
    pkg_parent = str(sandbox.package_dirs()["autograder"].parent)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OMP_", "MKL_", "OPENBLAS_")) and k != "AUTOGRADER_SECRET"}
    env.update(sandbox.NUMERIC_ENV, PYTHONDONTWRITEBYTECODE="1",
               PYTHONPATH=os.pathsep.join([pkg_parent, *[p for p in sys.path if p and p != pkg_parent]]))
    return env


class JudgeHandle(WorkerHandle):
    """The judge process (``autograder/judge.py``): started at once, waited for on first use."""

    def __init__(self, preload: list[str]) -> None:  # noqa: D107 - no worker start here
        from autograder.checks import _secret

        self.containment = sandbox.Containment("process", "judge")
        pid = self._connect(lambda req_r, rep_w: _JudgeServer.fork((req_r, rep_w), preload, _secret.secret_value()))
        self.proc = sandbox.Forked.of_pid(pid)  # its status goes to the server, which reaps it
        self.ready = False

    def judge(self, call: CheckCall, search: list[Path], cases: Any, data: Any) -> dict[str, Any]:
        """The verdict on ``data`` (JUDGE_TIMEOUT CPU seconds); WorkerTimeout/WorkerDied past its limits."""
        if not self.ready:
            if self._receive(START_TIMEOUT).get("op") != "ready":
                raise WorkerDied("the judge did not start")
            self.ready = True
        return self.request({"op": "judge", "module": call.module, "function": call.function,
                             "search": [str(p) for p in search], "cases": cases, "data": data}, JUDGE_TIMEOUT)


# --- grading one notebook ---


@dataclass
class TrustedRun:
    """What trusted grading adds to a report: containment, screening flags, restarts, errors."""

    containment: str = ""
    containment_detail: str = ""
    flags: list[dict[str, Any]] = field(default_factory=list)
    restarts: int = 0
    error: str | None = None
    secret: str = ""


def _imports(source: str) -> set[str]:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def notebook_imports(student: list[str], course: list[str]) -> list[str]:
    """The modules the cells import (a student's cell: only those of ``screen.ALLOWED_MODULES``):
    the worker's zygote imports them once, so no probe child pays for importing matplotlib again."""
    names = {n for src in student for n in _imports(src) if n.split(".")[0] in ALLOWED_MODULES}
    return sorted(names | {n for src in course for n in _imports(src)})


class Judges:
    """The notebook's judge process: one, reused across cells, replaced after a time-out."""

    def __init__(self, preload: list[str]) -> None:
        self.preload = preload
        self.handle: JudgeHandle | None = None

    def get(self) -> JudgeHandle:
        """The running judge (started on first use)."""
        if self.handle is None:
            self.handle = JudgeHandle(self.preload)
        return self.handle

    def reset(self) -> None:
        """Kill the judge (after a time-out): the next exercise gets a fresh one."""
        if self.handle is not None:
            self.handle.kill()
        self.handle = None


def _meta(cell: NotebookNode) -> dict[str, Any]:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def _stream(text: str, name: str = "stdout") -> NotebookNode:
    return nbformat.v4.new_output("stream", name=name, text=text)


def _error(ename: str, evalue: str, line: str | None = None) -> NotebookNode:
    return nbformat.v4.new_output("error", ename=ename, evalue=evalue, traceback=[line or f"{ename}: {evalue}"])


def _failure(message: str) -> NotebookNode:
    return _error("CheckFailure", message, f"{FAIL_MARK} {message}")


def trusted_cells(nb: NotebookNode, release: NotebookNode | None) -> set[int]:
    """Indices of the cells whose source is the course's own (locked, identical to the release)."""
    locked: dict[str, str] = {}
    if release is not None:
        for c in release.cells:
            m = _meta(c)
            if m.get("grade_id") and not m.get("solution") and (m.get("locked") or m.get("grade")):
                locked[m["grade_id"]] = c.source
    out = set()
    for i, c in enumerate(nb.cells):
        m = _meta(c)
        if m.get("grade") and not m.get("solution"):
            out.add(i)  # test cells: parsed, never run
        elif m.get("grade_id") in locked and locked[m["grade_id"]] == c.source:
            out.add(i)
    return out


def _only_unparsable(findings: list[Finding]) -> bool:
    """A cell refused only because it does not compile (an honest typo: refused, never flagged)."""
    return all(f.rule == "unparsable" for f in findings)


def _exercise_cells(nb: NotebookNode) -> dict[int, int]:
    """test cell index -> index of the answer cell before it."""
    out, answer = {}, None
    for i, c in enumerate(nb.cells):
        m = _meta(c)
        if m.get("solution") and not m.get("grade"):
            answer = i
        elif m.get("grade") and not m.get("solution") and answer is not None:
            out[i] = answer
    return out


def grade_trusted(
    nb: NotebookNode,
    workdir: Path,
    *,
    release: NotebookNode | None,
    search: list[Path],
    timeout: float,
    containment: sandbox.Containment | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[NotebookNode, TrustedRun]:
    """Execute ``nb`` (prepared: repaired, source test cells) the trusted way; returns it with outputs.

    ``workdir``: the submission's working folder (the assignment's released files), the only
    writable folder the worker sees. ``search``: course folders holding non-package check modules.
    """
    from autograder.checks import _secret

    run = TrustedRun(secret=_secret.secret_source())
    containment = containment or sandbox.choose()
    deadline = time.monotonic() + SUBMISSION_FACTOR * timeout
    run.containment, run.containment_detail = containment.kind, containment.detail
    trusted = trusted_cells(nb, release)
    answer_of = _exercise_cells(nb)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]

    # 1. screen every cell the student could have written; parse every test cell
    refused: dict[int, list[Finding]] = {}
    screen = Screen(COMMON_MODULE_NAMES)  # in notebook order: names and __future__ flags carry over
    calls: dict[int, list[CheckCall] | str] = {}
    for i in code:
        cell = nb.cells[i]
        m = _meta(cell)
        if m.get("grade") and not m.get("solution"):
            try:
                calls[i] = parse_test_cell(cell.source)
            except TestCellError as err:
                calls[i] = str(err)
            continue
        if i in trusted:
            screen.learn(cell.source)  # the course's own cell: the names it binds, its flags
            continue
        findings = screen.screen(cell.source)
        if findings:
            refused[i] = findings
            if not _only_unparsable(findings):  # a typo is the student's loss, not a case for review
                run.flags.append({"cell": m.get("grade_id") or f"cell {i}", "findings": [str(f) for f in findings]})
    preload = sorted({c.module for v in calls.values() if isinstance(v, list) for c in v})
    course_checks: dict[str, str] = {}
    for m in preload:
        if not m.startswith("autograder."):
            try:
                course_checks[m] = check_module_source(m, search)
            except GradingError:
                continue  # its test cells say so
    imported = notebook_imports([nb.cells[i].source for i in code if i not in refused and i not in trusted],
                                [nb.cells[i].source for i in code if i in trusted and i not in calls])
    # what the lesson's released notebook imports (the same for every submission): a template imports it once
    lesson_imports = [] if release is None else notebook_imports(
        [c.source for c in release.cells if c.cell_type == "code" and _meta(c).get("solution")],
        [c.source for c in release.cells if c.cell_type == "code" and not _meta(c).get("solution")])

    # 2. the judge process (starting now, while the worker starts) and the worker
    judges = Judges([m for m in preload if m.startswith("autograder.")])
    judges.get()
    worker: WorkerHandle | None = None
    done: list[int] = []  # cells that ran to the end (errors included): re-run after a restart
    space = contextlib.ExitStack()  # the worker's working folder: a copy of workdir when forked from the template
    where = space.enter_context(sandbox.workspace(containment, workdir))

    def start() -> WorkerHandle:
        last: Exception | None = None
        for attempt in range(3):
            try:
                w = WorkerHandle(containment, where, [m for m in preload if m.startswith("autograder.")],
                                 lesson_imports)
            except (WorkerDied, WorkerTimeout, OSError) as err:
                last = err
                time.sleep(1 + attempt)
                continue
            try:
                w.request({"op": "preload", "modules": imported, "checks": course_checks}, timeout)
            except (WorkerDied, WorkerTimeout):
                w.kill()
                last = WorkerDied("the worker failed importing the notebook's modules")
                continue
            for j in list(done):
                try:
                    w.request({"op": "run", "source": nb.cells[j].source, "trusted": j in trusted}, timeout)
                except (WorkerDied, WorkerTimeout):
                    done.remove(j)  # it broke the worker this time: leave it out
                    w.kill()
                    return start()
            return w
        raise GradingError(f"the grading worker could not start ({containment.kind}): {last}")

    def restart() -> None:
        nonlocal worker
        if worker is not None:
            worker.kill()
        worker = None
        run.restarts += 1

    for i in code:  # until judged, every test cell reads "not graded" (no output would be full marks)
        nb.cells[i].outputs, nb.cells[i].execution_count = [], None
        if i in calls:
            nb.cells[i].outputs = [_error("GradingError", "not graded: grading stopped before this cell")]
    try:
        for i in code:
            cell = nb.cells[i]
            if run.restarts > MAX_RESTARTS:
                cell.outputs = [_error("GradingError", "not graded: the notebook crashed the grader too often")]
                continue
            if time.monotonic() > deadline:
                if not any(f["cell"] == "submission" for f in run.flags):
                    run.flags.append({"cell": "submission", "findings": [
                        f"ran past the deadline of {SUBMISSION_FACTOR * timeout:g} s for a whole notebook"]})
                if i in calls:
                    cell.outputs = [_failure(f"not graded: the notebook ran past the grading deadline "
                                             f"({SUBMISSION_FACTOR * timeout:g} s for the whole notebook).")]
                continue
            m = _meta(cell)
            if i in refused:
                why = "; ".join(str(f) for f in refused[i][:3])
                cell.outputs = [_error("NotAllowed", f"not run: it uses what an answer never needs ({why})")]
                continue
            if worker is None:
                worker = start()
            if m.get("grade") and not m.get("solution"):
                if progress:
                    progress(f"  {m.get('grade_id')}")
                above = [{"source": nb.cells[j].source, "trusted": j in trusted} for j in done if j < i]
                worker = _grade_test_cell(cell, i, calls[i], answer_of, refused, worker, search, timeout, restart,
                                          above, judges, run.flags)
                continue
            try:
                reply = worker.request({"op": "run", "source": cell.source, "trusted": i in trusted}, timeout)
            except WorkerTimeout:
                cell.outputs = [_error("CellTimeoutError", "", "this cell ran past the time limit and was stopped")]
                restart()
                continue
            except WorkerDied as err:
                cell.outputs = [_error("DeadKernelError", f"the notebook's process died in this cell ({err}): "
                                       "os._exit, a crash or out of memory")]
                restart()
                continue
            done.append(i)
            if reply.get("stdout"):
                cell.outputs.append(_stream(str(reply["stdout"])))
            if reply.get("stderr"):
                cell.outputs.append(_stream(str(reply["stderr"]), "stderr"))
            if reply.get("ename"):
                cell.outputs.append(_error(str(reply["ename"]), str(reply.get("evalue") or "")))
                if i in trusted and reply["ename"] in ENVIRONMENT_ERRORS:
                    # the course's own cell cannot run here: a broken grading environment, never a 0
                    raise GradingError(f"the course's cell {m.get('grade_id') or i} failed in the grading worker "
                                       f"({reply['ename']}: {str(reply.get('evalue'))[:200]}): the containment "
                                       f"{containment.kind} cannot run this course")
    except GradingError as err:
        run.error = str(err)
    finally:
        if worker is not None:
            worker.kill()
        judges.reset()
        space.close()
    return nb, run


def _grade_test_cell(
    cell: NotebookNode,
    index: int,
    calls: list[CheckCall] | str,
    answer_of: dict[int, int],
    refused: dict[int, list[Finding]],
    worker: WorkerHandle,
    search: list[Path],
    timeout: float,
    restart: Callable[[], None],
    cells_above: list[dict[str, Any]],
    judges: Judges,
    flags: list[dict[str, Any]],
) -> WorkerHandle | None:
    """Judge one test cell: each check call's probe in the worker, its judge here."""
    cell.outputs = []
    if isinstance(calls, str):
        cell.outputs = [_error("GradingError", f"this test cell cannot be graded: {calls}")]
        return worker
    answer = answer_of.get(index)
    if answer is not None and answer in refused:
        findings = refused[answer]
        if _only_unparsable(findings):
            cell.outputs = [_failure(f"your answer was not run: {findings[0]}. Fix the cell so that it runs.")]
        else:
            cell.outputs = [_failure(f"your answer was not run: {findings[0]}. An answer to this exercise never "
                                     "needs that; it is not allowed in graded work (flagged for the instructor).")]
        return worker
    for call in calls:
        try:
            ex = exercise_of(call, search)
            cases = ex.cases(call.hidden)
        except GradingError as err:
            cell.outputs.append(_error("GradingError", str(err)))
            return worker
        nonce = secrets.token_hex(16)
        try:
            reply = worker.request({"op": "probe", "module": call.module, "function": call.function,
                                    "names": list(call.names), "cases": cases, "nonce": nonce,
                                    "cells": cells_above}, timeout)
            if reply.get("op") != "probe" or reply.get("nonce") != nonce:
                raise WorkerDied("a reply that does not answer this request")
        except WorkerTimeout:
            cell.outputs.append(_error("CellTimeoutError", "", "this cell ran past the time limit and was stopped"))
            restart()
            return None
        except WorkerDied as err:
            cell.outputs.append(_failure(f"your code killed its process while this check ran ({err}): "
                                         "os._exit, a crash or out of memory."))
            restart()
            return None
        if reply.get("tampered"):
            flags.append({"cell": str(_meta(cell).get("grade_id") or f"cell {index}"),
                          "findings": [f"changed the grader's code: {', '.join(map(str, reply['tampered']))}"]})
        student_out = reply.get("stdout")
        if type(student_out) is str and student_out:
            cell.outputs.append(_stream(student_out))
        status = reply.get("status")
        if status == "died":
            cell.outputs.append(_failure(f"your code killed its process while this check ran ({reply.get('message')}): "
                                         "os._exit, a crash or out of memory."))
            return worker
        if status == "failure":
            cell.outputs.append(_failure(str(reply.get("message", "the check failed"))))
            return worker
        if status != "ok":
            cell.outputs.append(_failure(f"the check could not run your code: {str(reply.get('message'))[:500]}"))
            return worker
        try:
            verdict = judges.get().judge(call, search, cases, reply.get("data"))
        except WorkerTimeout:
            judges.reset()
            cell.outputs.append(_failure(f"checking what your code returned ran past the judge's limit "
                                         f"({JUDGE_TIMEOUT:g} s): return the sizes the docstring asks for."))
            return worker
        except WorkerDied as err:
            judges.reset()
            cell.outputs.append(_failure(f"what your code returned could not be checked (the judge stopped: {err})."))
            return worker
        if verdict.get("status") != "ok":
            cell.outputs.append(_failure(str(verdict.get("message"))))
            return worker
        message = str(verdict.get("message"))
        suffix = " (hidden tests)" if call.hidden and "hidden" not in str(message) else ""
        cell.outputs.append(_stream(f"{PASS_MARK} {message}{suffix}\n"))
    return worker


def copy_assignment_files(src_dir: Path, dest: Path) -> None:
    """The assignment's other released files next to the notebook (never notebooks or feedback)."""
    ignore = shutil.ignore_patterns("*.ipynb", ".ipynb_checkpoints", "__pycache__", "*.pyc", "feedback", "runs",
                                    "data", "*.orig")
    if not src_dir.is_dir():
        return
    for item in src_dir.iterdir():
        if ignore(str(src_dir), [item.name]):
            continue
        if item.is_dir():
            shutil.copytree(item, dest / item.name, ignore=ignore, dirs_exist_ok=True)
        else:
            shutil.copy2(item, dest / item.name)


def new_workdir() -> Path:
    """A fresh, private working folder for one submission's worker."""
    return Path(tempfile.mkdtemp(prefix="autograder-work-"))
