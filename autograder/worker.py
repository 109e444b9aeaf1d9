"""The grading worker: the processes that run a student's code. Nothing here decides a grade.

``autograder/trusted.py`` starts it inside the sandbox (``autograder/sandbox.py``) and talks to it
over two pipes. The process it starts is a pristine *zygote*: it imports torch, IPython and the
check modules, never runs student code, computes nothing with torch, and is not dumpable (a
process of the same uid can neither ptrace it nor open its ``/proc/PID/fd`` or ``mem``). It forks:

- one *runner* child that runs the notebook's cells in order (``run``), for their visible outputs
  only: no grade ever comes from it, so whatever a cell does to that process (patching torch, the
  checks, IPython; threads it leaves running) reaches no probe;
- for each ``probe`` request a fresh *probe* child, which first arms its protections (a seccomp
  filter: no new thread or process, no exec, for the rest of its life; not dumpable), then runs
  the course's cells above the test cell and only the *definitions* of the student's cells
  (imports, ``def``, ``class``, assignments to plain names: no bare expressions, loops or
  attribute writes), runs the exercise's probe and replies once over its own fresh pipe, echoing
  the grader's nonce. The zygote relays that one reply; the children close the zygote's pipes to
  the grader before anything else, so no student code holds a descriptor the grader reads.

The zygote's ``sys.path`` never holds the working folder (``python -P``); the children put it
last, after the verified course package, for the assignment's own helper modules.

Frames on every pipe: 8 bytes big-endian length, then a ``torch.save`` payload of plain data.
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import struct
import sys
import time
import types
from typing import Any

#: the most characters of a cell's printed output sent back (the rest is cut)
MAX_TEXT = 20_000
#: the largest file a student's code may write (bytes)
MAX_FILE = 1 << 30


def read_frame(fd: int, limit: int | None = None) -> bytes | None:
    """One frame from ``fd``; None at end of file (or a frame longer than ``limit``)."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    (n,) = struct.unpack(">Q", head)
    if limit is not None and n > limit:
        return None
    return _read_exact(fd, n)


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, payload: bytes) -> None:
    """Write one frame to ``fd``."""
    data = struct.pack(">Q", len(payload)) + payload
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"\n... ({len(text) - MAX_TEXT} more characters)"


#: names the course's setup cell binds that no answer needs and that reach the machinery
#: (``importlib.import_module``, a child process): removed from the notebook's namespace after it runs
SETUP_MODULES = ("importlib", "subprocess")
#: the largest reply a probe child may send to the zygote (bytes)
MAX_REPLY = 256 << 20


class Worker:
    """An IPython shell in which cells and probes run (a fresh copy in every child)."""

    def __init__(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        import autograder.kernel_init  # noqa: F401 - warnings to stdout, as in a grading kernel

        self.shell = InteractiveShell.instance()
        self.shell.history_manager.enabled = False

    def run(self, source: str, trusted: bool = False) -> dict[str, Any]:
        """Run one cell; its printed text and its error, if any."""
        out, err = io.StringIO(), io.StringIO()
        ename = evalue = None
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                result = self.shell.run_cell(source, store_history=False)
                error = result.error_before_exec or result.error_in_exec
                if error is not None:
                    ename, evalue = type(error).__name__, str(error)[:2000]
            except BaseException as e:  # noqa: BLE001 - whatever the cell raised, the worker goes on
                ename, evalue = type(e).__name__, str(e)[:2000]
        if trusted:
            self._forget_setup_modules()
        self._close_figures()
        return {"op": "run", "stdout": _clip(out.getvalue()), "stderr": _clip(err.getvalue()),
                "ename": ename, "evalue": evalue}

    def _forget_setup_modules(self) -> None:
        ns = self.shell.user_ns
        for name, value in list(ns.items()):
            if type(value) is types.ModuleType and value.__name__.split(".")[0] in SETUP_MODULES:
                del ns[name]

    def define(self, source: str, trusted: bool = False) -> None:
        """Run only the definitions of a cell: imports, ``def``, ``class`` and assignments (a
        student's: to plain names only; ``if``/``try``/``with`` holding only those), no bare
        expression, loop or attribute/item write of a student's. What a probe needs is defined this
        way; what a cell shows or trains is not re-done."""
        try:
            code = self.shell.transform_cell(source)
            tree = ast.parse(code)
        except (SyntaxError, ValueError):
            return
        keep = [stmt for stmt in tree.body if _is_definition(stmt, trusted)]
        if not keep:
            return
        module = ast.Module(body=keep, type_ignores=[])
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            try:
                exec(compile(module, "<cell>", "exec"), self.shell.user_ns)  # noqa: S102 - the student's own cell
            except BaseException:  # noqa: BLE001 - a cell that fails defines what it defined so far
                pass
        if trusted:
            self._forget_setup_modules()
        self._close_figures()

    def probe(self, module: str, function: str, names: list[str], cases: Any) -> dict[str, Any]:
        """Run the probe of ``module.function``'s exercise on the student's objects named ``names``."""
        from autograder.checks._core import CheckFailure

        ns = self.shell.user_ns
        missing = [n for n in names if n not in ns]
        if missing:
            return {"op": "probe", "status": "failure", "stdout": "",
                    "message": f"{missing[0]} is not defined: run the cell where you wrote it first "
                               "(did it raise an error?)."}
        out = io.StringIO()
        reply: dict[str, Any]
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                exercise = getattr(importlib.import_module(module), function).exercise
                data = exercise.run_probe([ns[n] for n in names], cases)
                reply = {"op": "probe", "status": "ok", "data": data}
            except CheckFailure as failure:
                reply = {"op": "probe", "status": "failure", "message": str(failure)[:4000]}
            except BaseException as e:  # noqa: BLE001 - the student's code may raise anything, SystemExit too
                reply = {"op": "probe", "status": "error", "message": f"{type(e).__name__}: {str(e)[:2000]}"}
        self._close_figures()
        reply["stdout"] = _clip(out.getvalue())
        return reply

    @staticmethod
    def _close_figures() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            with contextlib.suppress(Exception):
                plt.close("all")


def _is_definition(stmt: ast.stmt, trusted: bool) -> bool:
    if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return True
    if trusted and isinstance(stmt, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
        return True  # the course's own cells: their assignments may set what later cells use
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return all(_plain_target(t) for t in targets)
    if isinstance(stmt, (ast.If, ast.Try, ast.With)):
        # ``try: import scipy`` / ``if ...: def f`` / ``with torch.no_grad(): W = ...``: kept when
        # everything inside is a definition too (``pass`` included)
        inner = [*stmt.body, *getattr(stmt, "orelse", []), *getattr(stmt, "finalbody", [])]
        for handler in getattr(stmt, "handlers", []):
            inner += handler.body
        return all(isinstance(x, ast.Pass) or _is_definition(x, trusted) for x in inner)
    return False


def _plain_target(t: ast.expr) -> bool:
    if isinstance(t, ast.Name):
        return True
    return isinstance(t, (ast.Tuple, ast.List)) and all(_plain_target(e) for e in t.elts)


# --- protections of the children ---


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def not_dumpable() -> None:
    """PR_SET_DUMPABLE 0: a process of the same uid cannot ptrace this one or open its /proc files."""
    _libc().prctl(4, 0, 0, 0, 0)


#: system calls a probe child may not make: every way to a new thread or process, and exec
_DENIED = {
    0xC000003E: (56, 57, 58, 59, 322, 435),  # x86_64: clone fork vfork execve execveat clone3
    0xC00000B7: (220, 221, 281, 435),  # aarch64: clone execve execveat clone3
}


def deny_new_tasks() -> bool:
    """Install a seccomp filter for the rest of this process's life: clone/fork/exec fail with EPERM.

    Kernel-enforced, so no Python-level patching undoes it: while a probe runs, no thread (the
    dispatch refusal is per thread), no child process and no other program can run the student's
    code. True when installed (an unknown architecture: False, the probe still runs)."""
    import ctypes
    import platform

    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}.get(platform.machine())
    if arch is None:
        return False
    denied = _DENIED[arch]

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    ld_w_abs, jeq_k, ret_k = 0x20, 0x15, 0x06
    allow, errno_eperm, kill = 0x7FFF0000, 0x00050000 | 1, 0x80000000
    prog = [SockFilter(ld_w_abs, 0, 0, 4),  # seccomp_data.arch
            SockFilter(jeq_k, 1, 0, arch),
            SockFilter(ret_k, 0, 0, kill),
            SockFilter(ld_w_abs, 0, 0, 0)]  # seccomp_data.nr
    for i, nr in enumerate(denied):
        left = len(denied) - i - 1
        prog.append(SockFilter(jeq_k, left + 1, 0, nr))  # match: jump to the EPERM return
    prog += [SockFilter(ret_k, 0, 0, allow), SockFilter(ret_k, 0, 0, errno_eperm)]
    array = (SockFilter * len(prog))(*prog)
    fprog = SockFprog(len(prog), array)
    libc = _libc()
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")
    if libc.prctl(22, 2, ctypes.byref(fprog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP")
    return True


def _limit_resources() -> None:
    """No core dumps, no file larger than MAX_FILE (a full disk loses other people's work).

    No address-space limit: torch's CUDA build maps several GiB of libraries, so any limit low
    enough to matter made imports fail at random under load; a runaway allocation kills the worker
    (out of memory), which costs that cell only."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE, MAX_FILE))
    except (ImportError, ValueError, OSError):
        pass


def _drop_privileges(uid: int) -> None:
    """Become ``uid`` before any student code runs (the ``user`` containment, without bubblewrap).

    The Python installation is readable by that uid (``sandbox._mount_namespace``), so nothing has
    to be imported first."""
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    os.environ["HOME"] = os.getcwd()


def _child_path() -> None:
    """A child's import path: the working folder last (the assignment's helper modules), never first."""
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", cwd)] + [cwd]


class Zygote:
    """Serves the grader: relays ``run`` to the runner child, forks a probe child per ``probe``."""

    def __init__(self, rfd: int, wfd: int, worker: Worker) -> None:
        self.rfd, self.wfd, self.worker = rfd, wfd, worker
        self.runner: tuple[int, int, int] | None = None  # pid, request fd, reply fd

    def _fork(self) -> int:
        pid = os.fork()
        if pid == 0:
            for fd in (self.rfd, self.wfd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if self.runner is not None:
                for fd in self.runner[1:]:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            _child_path()
        return pid

    def run(self, request: dict[str, Any]) -> bytes | None:
        """Forward one ``run`` request to the runner (started on first use); its reply, None if it died.

        The request goes with a fresh nonce and only the reply that echoes it is relayed: frames a cell wrote
        into its own reply pipe (forged replies, or a stale one) are dropped, so the stream stays in step."""
        from autograder.checks._plain import PlainDataError, dumps, loads

        if self.runner is None:
            req_r, req_w = os.pipe()
            rep_r, rep_w = os.pipe()
            pid = self._fork()
            if pid == 0:
                os.close(req_w)
                os.close(rep_r)
                _serve_runner(req_r, rep_w, self.worker)
                os._exit(0)
            os.close(req_r)
            os.close(rep_w)
            self.runner = (pid, req_w, rep_r)
        nonce = os.urandom(16).hex()
        try:
            write_frame(self.runner[1], dumps({"op": "run", "source": str(request.get("source", "")),
                                               "trusted": bool(request.get("trusted")), "nonce": nonce}))
            while True:
                frame = read_frame(self.runner[2], MAX_REPLY)
                if frame is None:
                    return None
                try:
                    reply = loads(frame)
                except PlainDataError:
                    continue
                if type(reply) is dict and reply.get("op") == "run" and reply.get("nonce") == nonce:
                    del reply["nonce"]
                    return dumps(reply)
        except OSError:
            return None

    def probe(self, request: dict[str, Any]) -> bytes:
        """A fresh child runs the probe; the one frame it sends back (or why there is none)."""
        rep_r, rep_w = os.pipe()
        pid = self._fork()
        if pid == 0:
            os.close(rep_r)
            code = 0
            try:
                _serve_probe(rep_w, self.worker, request)
            except BaseException:  # noqa: BLE001
                code = 1
            os._exit(code)
        os.close(rep_w)
        try:
            frame = read_frame(rep_r, MAX_REPLY)
        finally:
            os.close(rep_r)
        if frame is None:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)  # an oversized reply: the child may still be writing
        _, status = os.waitpid(pid, 0)
        if frame is None:
            from autograder.checks._plain import dumps

            why = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else \
                f"status {os.waitstatus_to_exitcode(status)}"

            return dumps({"op": "probe", "status": "died", "nonce": request.get("nonce"),
                          "message": f"the process running the check exited ({why})"})
        return frame


def machinery_snapshot() -> dict[str, int]:
    """Identities of what a probe relies on: every attribute of the loaded ``autograder`` modules
    and of the classes, functions and objects they define, two levels deep. A probe child takes
    it before the notebook's definitions run and compares after: a definition that rebinds any of
    them (``x = setattr(_core.Exercise, "run_probe", ...)``) stops the check instead of forging it."""
    out: dict[str, int] = {}
    for name, module in list(sys.modules.items()):
        if not (name == "autograder" or name.startswith(("autograder.", "_course_checks_"))) or module is None:
            continue
        for attr, value in list(vars(module).items()):
            out[f"{name}.{attr}"] = id(value)
            inner = getattr(value, "__dict__", None)
            if isinstance(inner, (dict, types.MappingProxyType)) and getattr(value, "__module__", "") == name:
                for k, v in list(inner.items()):
                    out[f"{name}.{attr}.{k}"] = id(v)
                    ex = getattr(v, "__dict__", None) if k == "exercise" else None
                    if isinstance(ex, dict):
                        out.update({f"{name}.{attr}.exercise.{f}": id(x) for f, x in ex.items()})
    return out


def _serve_runner(rfd: int, wfd: int, worker: Worker) -> None:
    from autograder.checks._plain import dumps, loads

    while True:
        frame = read_frame(rfd)
        if frame is None:
            return
        try:
            request = loads(frame)
        except Exception:  # noqa: BLE001 - a frame a cell wrote into this pipe: not the zygote's
            continue
        if type(request) is not dict or request.get("op") != "run" or type(request.get("source")) is not str:
            continue
        reply = worker.run(request["source"], bool(request.get("trusted")))
        reply["nonce"] = str(request.get("nonce"))
        try:
            payload = dumps(reply)
        except Exception as e:  # noqa: BLE001
            payload = dumps({"op": "run", "ename": "GradingError", "evalue": f"unsendable output: {e}",
                             "nonce": str(request.get("nonce"))})
        write_frame(wfd, payload)


def _serve_probe(wfd: int, worker: Worker, request: dict[str, Any]) -> None:
    from autograder.checks._plain import dumps, to_plain

    not_dumpable()
    armed = deny_new_tasks()
    debug = os.environ.get("AUTOGRADER_DEBUG")
    loaded = set(sys.modules) if debug else set()
    before = machinery_snapshot()
    for cell in request.get("cells", []):
        t0 = time.perf_counter()
        worker.define(str(cell["source"]), bool(cell.get("trusted")))
        if debug:
            print(f"define {time.perf_counter() - t0:.2f}s {cell['source'][:60]!r}", file=sys.__stderr__)
    changed = sorted(k for k, v in machinery_snapshot().items() if before.get(k) != v)
    if changed:
        reply = {"op": "probe", "status": "failure", "stdout": "", "tampered": changed[:5],
                 "message": f"your code changed the grader's own code ({changed[0]}) before this check could run: "
                            "an answer never needs that (flagged for the instructor)."}
    else:
        t0 = time.perf_counter()
        reply = worker.probe(request["module"], request["function"], list(request["names"]), request["cases"])
        if debug:
            print(f"probe {request['function']} {time.perf_counter() - t0:.2f}s", file=sys.__stderr__)
    if debug:
        from autograder import checks

        checks.report_run_time_imports(loaded, f"probe {request.get('module')}.{request.get('function')}")
    reply["nonce"] = request.get("nonce")
    reply["armed"] = armed
    # never let the student's objects reach the wire: only what to_plain made of them
    try:
        payload = dumps(to_plain(reply))
    except Exception as e:  # noqa: BLE001
        payload = dumps({"op": "probe", "status": "error", "nonce": request.get("nonce"),
                         "message": f"unsendable reply: {e}"})
    write_frame(wfd, payload)


_warmed = False  # in this process or the one it was forked from


def warm_matplotlib() -> None:
    """Draw one figure and close it, and import IPython's inline backend: the font, the renderer and the backend
    load on first use (0.13 s, in every probe child otherwise). Once per process (a fork inherits it); the
    template does it at start, a zygote started on its own after importing the notebook's modules. Nothing of
    it stays open, so a notebook's first figure is number 1 as in a fresh process."""
    global _warmed
    if _warmed:
        return
    _warmed = True
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(1, 1))
    fig.text(0.5, 0.5, "warm")
    fig.canvas.draw()
    plt.close("all")
    for module in ("IPython.core.pylabtools", "matplotlib_inline.backend_inline"):
        importlib.import_module(module)


def prepare(modules: list[str]) -> None:
    """What every zygote needs before any student code: limits, not dumpable, no work folder on the path,
    torch with one thread, the check modules, the guards entered once."""
    _limit_resources()
    not_dumpable()
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", cwd)]  # the zygote never imports from the work folder
    import torch

    torch.set_num_threads(1)  # the judge computes with one thread too (sandbox.NUMERIC_ENV)
    for module in modules:
        importlib.import_module(module)
    from autograder import checks
    from autograder.checks import _guard

    checks.import_lessons(modules)  # what torch and these checks import when they run: not in every probe child

    _guard.warm()


def serve_zygote(rfd: int, wfd: int) -> int:
    """The zygote's loop: a fresh IPython shell, ``ready``, then requests until the grader closes the pipe."""
    from autograder.checks._plain import dumps, loads

    worker = Worker()
    drop_to = os.environ.pop("AUTOGRADER_DROP_UID", None)
    if drop_to:
        _drop_privileges(int(drop_to))
        not_dumpable()  # setuid resets it to the system default
    zygote = Zygote(rfd, wfd, worker)
    write_frame(wfd, dumps({"op": "ready", "pid": os.getpid()}))
    while True:
        frame = read_frame(rfd)
        if frame is None:
            return 0
        request = loads(frame)
        op = request.get("op")
        if op == "run":
            reply = zygote.run(request)
            if reply is None:
                return 3  # the runner died: the grader restarts everything
            write_frame(wfd, reply)
        elif op == "probe":
            write_frame(wfd, zygote.probe(request))
        elif op == "preload":
            for name, source in dict(request.get("checks", {})).items():
                # the course's own check modules, as the grader read them: never from the work folder
                module = types.ModuleType(str(name))
                module.__file__ = f"<course checks {name}>"
                sys.modules[str(name)] = module
                exec(compile(str(source), module.__file__, "exec"), module.__dict__)  # noqa: S102 - course code
            for name in request.get("modules", []):
                with contextlib.suppress(Exception):
                    importlib.import_module(str(name))
            if "matplotlib.pyplot" in sys.modules:  # as the template does at start: not in every probe child
                with contextlib.suppress(Exception):
                    warm_matplotlib()
            write_frame(wfd, dumps({"op": "preload"}))
        else:
            return 0


def main(argv: list[str]) -> int:
    """``python -P -m autograder.worker REQUEST_FD REPLY_FD [MODULE ...]``: serve until the grader closes;
    ``python -P -m autograder.worker --template CONTROL_FD``: the template (``autograder.template``)."""
    if argv[:1] == ["--template"]:
        from autograder import template

        return template.serve(int(argv[1]))
    prepare(argv[2:])
    return serve_zygote(int(argv[0]), int(argv[1]))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
