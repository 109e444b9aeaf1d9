"""The grading worker: the one process that runs a student's code. Nothing here decides a grade.

``autograder/trusted.py`` starts it inside the sandbox (``autograder/sandbox.py``) and talks to it
over two pipes: it sends a notebook's cells one at a time (``run``) and, for each check call of a
test cell, a ``probe`` request; the worker runs the cell or the exercise's probe against the
student's objects and answers with plain data (``autograder/checks/_plain.py``). The grader reads
the answers without unpickling code and judges them in its own process, so whatever the student's
code does to this process (patching torch, the checks, IPython, ``sys``) it can only change what
its own functions return.

Frames on both pipes: 8 bytes big-endian length, then a ``torch.save`` payload of plain data.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import struct
import sys
from typing import Any

#: the most characters of a cell's printed output sent back (the rest is cut)
MAX_TEXT = 20_000
#: the largest file a student's code may write (bytes)
MAX_FILE = 1 << 30


def read_frame(fd: int) -> bytes | None:
    """One frame from ``fd``; None at end of file."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    (n,) = struct.unpack(">Q", head)
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


class Worker:
    """Runs cells in an IPython shell and probes for the grader."""

    def __init__(self) -> None:
        from IPython.core.interactiveshell import InteractiveShell

        import autograder.kernel_init  # noqa: F401 - warnings to stdout, as in a grading kernel

        self.shell = InteractiveShell.instance()
        self.shell.history_manager.enabled = False

    def run(self, source: str) -> dict[str, Any]:
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
        self._close_figures()
        return {"op": "run", "stdout": _clip(out.getvalue()), "stderr": _clip(err.getvalue()),
                "ename": ename, "evalue": evalue}

    def probe(self, module: str, function: str, names: list[str], cases: Any) -> dict[str, Any]:
        """Run the probe of ``module.function``'s exercise on the student's objects named ``names``."""
        from autograder.checks._core import CheckFailure
        from autograder.checks._plain import to_plain

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
        return to_plain(reply)

    @staticmethod
    def _close_figures() -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            with contextlib.suppress(Exception):
                plt.close("all")


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


def main(argv: list[str]) -> int:
    """``python -m autograder.worker REQUEST_FD REPLY_FD [MODULE ...]``: serve until the grader closes."""
    rfd, wfd = int(argv[0]), int(argv[1])
    _limit_resources()
    import torch

    torch.set_num_threads(1)  # the judge computes with one thread too (sandbox.NUMERIC_ENV)
    # the working folder goes last on the path, after the course package: a file the student
    # writes there cannot shadow the checks (which are imported now, before any student code)
    cwd = os.getcwd()
    sys.path[:] = [p for p in sys.path if p not in ("", cwd)] + [cwd]
    from autograder.checks._plain import dumps, loads

    for module in argv[2:]:
        importlib.import_module(module)
    worker = Worker()
    drop_to = os.environ.pop("AUTOGRADER_DROP_UID", None)
    if drop_to:
        _drop_privileges(int(drop_to))
    write_frame(wfd, dumps({"op": "ready", "pid": os.getpid()}))
    while True:
        frame = read_frame(rfd)
        if frame is None:
            return 0
        request = loads(frame)
        if request.get("op") == "run":
            reply = worker.run(request["source"])
        elif request.get("op") == "probe":
            reply = worker.probe(request["module"], request["function"], list(request["names"]), request["cases"])
        else:
            return 0
        # never let the student's objects reach the wire: only what to_plain made of them
        try:
            payload = dumps(reply)
        except Exception as e:  # noqa: BLE001
            payload = dumps({"op": reply.get("op"), "status": "error", "message": f"unsendable reply: {e}"})
        write_frame(wfd, payload)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
