"""The judge process: where an exercise's judge decides, away from the grader and the student.

``autograder/trusted.py`` starts one per notebook it grades and reuses it for every test cell: a
process that never sees a student's object, only the plain data a probe returned (already
validated by ``_plain``). Each judge is forked from the grading process's *judge server* (``serve``,
``python -P -m autograder.judge --server``), which imported torch once and never judges itself: a
new judge costs milliseconds instead of a new interpreter's 1.5 CPU-seconds, and no state passes
from one notebook's judge to the next. The server imports a lesson's check module, and what its
judges import, when the first request for that lesson arrives. A judge looks up the check module,
runs ``exercise.judge(cases, data)`` and replies with the verdict. Its limits are its own: one
torch thread (the worker's setting, ``sandbox.NUMERIC_ENV``), an address-space limit, and the
grader's CPU/wall-clock limit per judgement; a judge that runs past them costs that exercise only
(the grader kills this process and starts another for the next one). The instructor's secret
reaches it through ``AUTOGRADER_SECRET`` (``checks/_secret.py``), so a judge that re-derives a
hidden case sees the values the grader made.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import signal
import socket
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

#: memory (bytes) a judgement may allocate beyond what the judge process holds after its imports
JUDGE_MEMORY = 4 << 30


def load_check_module(name: str, search: list[Path]) -> ModuleType:
    """The grader's copy of a check module: ``autograder.checks.*`` from the package, others from
    the course's own assignment folders (``search``), never from the submission."""
    if name.startswith("autograder."):
        return importlib.import_module(name)
    for folder in search:
        path = folder / (name.replace(".", "/") + ".py")
        if path.is_file():
            key = f"_course_checks_{abs(hash(str(path)))}_{name}"
            if key in sys.modules:
                return sys.modules[key]
            spec = importlib.util.spec_from_file_location(key, path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[key] = module
            spec.loader.exec_module(module)
            return module
    raise LookupError(f"check module {name} not found in the course")


def _limit_memory() -> None:
    try:
        import resource

        with open("/proc/self/statm") as f:
            size = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (size + JUDGE_MEMORY, size + JUDGE_MEMORY))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (ImportError, ValueError, OSError):
        pass


def judge_one(request: dict[str, Any]) -> dict[str, Any]:
    """One verdict: ``{"status": "ok"|"failure"|"error", "message": ...}``."""
    from autograder.checks._core import CheckFailure, Exercise

    try:
        module = load_check_module(str(request["module"]), [Path(p) for p in request.get("search", [])])
    except LookupError as err:
        return {"status": "error", "message": str(err)}
    ex = getattr(getattr(module, str(request["function"]), None), "exercise", None)
    if not isinstance(ex, Exercise):
        return {"status": "error", "message": f"{request['module']}.{request['function']} is not an exercise check"}
    try:
        return {"status": "ok", "message": str(ex.judge(request["cases"], request["data"]))}
    except CheckFailure as failure:
        return {"status": "failure", "message": str(failure)}
    except MemoryError:
        return {"status": "failure", "message": "what your code returned took more memory to check than allowed: "
                                                "return the sizes the docstring asks for."}
    except Exception as err:  # noqa: BLE001 - malformed data from the student's side fails, never passes
        return {"status": "failure", "message": f"what your code returned could not be checked "
                                                f"({type(err).__name__}: {str(err)[:200]}): return the types "
                                                "the docstring asks for."}


def serve(sock: socket.socket) -> int:
    """The judge server: fork one judge per request (its two pipe ends arrive with it); reply with its pid.

    A request is plain data ``{"preload": [...], "secret": str, "env": {...} | None, "debug": bool}`` (no
    ``env``: the server's own is the grader's). The server exits when the grader closes the socket; its
    judges exit when the grader closes their request pipe.
    """
    from autograder import checks
    from autograder.checks._plain import PlainDataError, loads

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the judges; the grader watches their pipes
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the grader's to handle
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 2)
        except OSError:
            return 0
        if not message:
            return 0
        try:
            request = loads(message)
            preload, secret, debug = list(request["preload"]), str(request["secret"]), bool(request["debug"])
            env = None if request["env"] is None else {str(k): str(v) for k, v in dict(request["env"]).items()}
        except (PlainDataError, KeyError, TypeError, ValueError):
            request = None
        if request is None or len(fds) != 2:
            for fd in fds:
                os.close(fd)
            sock.sendall((0).to_bytes(8, "big"))
            continue
        checks.import_lessons(preload, judge=True)  # once per lesson: its judges then import nothing
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                sock.close()
                code = _forked_judge(fds, [str(m) for m in preload], secret, env, debug)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        sock.sendall(pid.to_bytes(8, "big"))


def _forked_judge(fds: list[int], preload: list[str], secret: str, env: dict[str, str] | None, debug: bool) -> int:
    """A judge fresh from the server: its own session, the grader's environment and secret, then ``main``."""
    from autograder.checks import _secret

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.setsid()  # the grader kills the judge's group, never the server's
    if not debug:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.dup2(null, 2)
    if env is not None:
        os.environ.clear()
        os.environ.update(env)
    os.environ[_secret.ENV] = secret
    _secret.reset()
    return main([str(fds[0]), str(fds[1]), *preload])


def main(argv: list[str]) -> int:
    """``python -P -m autograder.judge REQUEST_FD REPLY_FD [MODULE ...]``: judge until the grader closes."""
    rfd, wfd = int(argv[0]), int(argv[1])
    import torch

    torch.set_num_threads(1)
    from autograder.checks._plain import dumps, loads
    from autograder.worker import read_frame, write_frame

    for name in argv[2:]:
        importlib.import_module(name)
    _limit_memory()
    write_frame(wfd, dumps({"op": "ready"}))
    debug = bool(os.environ.get("AUTOGRADER_DEBUG"))
    while True:
        frame = read_frame(rfd)
        if frame is None:
            return 0
        loaded = set(sys.modules) if debug else set()
        request = loads(frame)
        reply = judge_one(request)
        if debug:
            from autograder import checks

            checks.report_run_time_imports(loaded, f"judge {request.get('module')}.{request.get('function')}")
        write_frame(wfd, dumps({"op": "judge", "status": str(reply["status"]), "message": str(reply["message"])}))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--server"]:
        import torch  # what every judge needs, imported once per grading process; a lesson's checks on
        # its first request (``serve``): a class of lesson 01 never imports lesson 08's torchvision

        torch.set_num_threads(1)
        from autograder.checks import _core  # noqa: F401 - what every lesson's checks import
        from autograder.worker import read_frame  # noqa: F401

        raise SystemExit(serve(socket.socket(fileno=int(sys.argv[2]))))
    raise SystemExit(main(sys.argv[1:]))
