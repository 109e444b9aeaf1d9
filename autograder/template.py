"""The sandbox template: imports torch once per grading process and forks each submission's worker into
namespaces of its own. Runs inside the bubblewrap sandbox; nothing here runs a student's code.

``sandbox.Template`` starts it as ``python -P -m autograder.worker --template FD`` in a bubblewrap sandbox
like a worker's, except that the folder bound in is the grading process's *works* folder (every
submission's scratch folder, at ``WORKS_MOUNT``). It imports what every zygote imports (torch, IPython,
the notebooks' common modules), then serves requests over a SEQPACKET socket: plain data ``{"work": NAME,
"modules": [...], "imports": [...]}`` with three descriptors (the zygote's request read end, its reply write
end, a status write end). It first imports what the request names and it has not imported yet: the lesson's
check modules (``modules``) and the lesson's notebook's own imports (``imports``: the released notebook's,
the same for every submission of a lesson, what its zygotes would import anyway), so that a class of one
lesson pays for them once and never for another lesson's. Then it forks a *keeper* and replies with
the keeper's pidfd. The keeper:

1. enters new user, mount, PID, IPC and network namespaces (same uid; capabilities only inside them);
2. binds ``WORKS_MOUNT/NAME`` at the work folder, mounts a fresh ``/tmp`` and ``/dev/shm``, covers
   ``WORKS_MOUNT`` with an empty read-only tmpfs and makes every other writable mount read-only;
3. forks the zygote: PID 1 of the new PID namespace (whatever the student's code starts dies with it),
   no capabilities, killed if the keeper dies; it runs ``worker.serve_zygote`` as a freshly started worker would;
4. waits for it (SIGTERM from the grader: it kills it first), writes its exit status (one byte: the
   code, or 128 + the signal) and exits.

So a submission's processes share nothing writable with the template or with another submission, and
cannot name the template, its keepers or another submission's processes (other PID namespaces). The
template itself never runs a student's code, so every submission starts from the same pristine state.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import re
import signal
import socket
import sys

#: where the grading process's works folder appears in the template's sandbox (covered in every keeper)
WORKS_MOUNT = "/home/student/.works"
WORK_MOUNT = "/home/student/work"
#: where a keeper builds its fresh /tmp before moving it over /tmp (an empty folder in the sandbox's root)
_STAGE = "/home/student/.tmp"
#: modules every lesson's notebook imports, imported once in the template (a zygote inherits them; each costs a
#: fresh interpreter 0.1-0.5 s, matplotlib's font list most). What only some lessons import (torchvision,
#: 1.3 s with the ``torch._dynamo`` it pulls in) comes with the first request that names it (``imports``).
COMMON_MODULES = ("numpy", "matplotlib", "matplotlib.pyplot", "IPython.core.interactiveshell", "ipywidgets", "tqdm",
                  "torch.nn.functional", "torch.optim")

_CLONE_NEWNS, _CLONE_NEWUSER, _CLONE_NEWPID = 0x20000, 0x10000000, 0x20000000
_CLONE_NEWIPC, _CLONE_NEWNET = 0x08000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_MOVE, _MS_REC, _MS_PRIVATE = 32, 4096, 8192, 0x4000, 1 << 18
_MS_NOATIME, _MS_NODIRATIME, _MS_RELATIME, _MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
_OPTION_FLAGS = {"nosuid": _MS_NOSUID, "nodev": _MS_NODEV, "noexec": _MS_NOEXEC, "noatime": _MS_NOATIME,
                 "nodiratime": _MS_NODIRATIME, "relatime": _MS_RELATIME, "strictatime": _MS_STRICTATIME}
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,99}")
_MODULE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,7}")


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    libc = _libc()
    if libc.mount(src and src.encode(), dst.encode(), fstype and fstype.encode(), ctypes.c_ulong(flags),
                  data and data.encode()) != 0:
        raise OSError(ctypes.get_errno(), f"mount {dst}")


def _mounts() -> list[tuple[str, int, bool]]:
    """``(mount point, its per-mount flags, read-write)`` of every mount, from ``/proc/self/mountinfo``."""
    out = []
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            fields = line.split()
            point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
            options = fields[5].split(",")
            out.append((point, sum(_OPTION_FLAGS.get(o, 0) for o in options), "rw" in options))
    return out


def _fresh_tmp() -> None:
    """A fresh tmpfs at /tmp that holds again what the sandbox bound under /tmp (a Python installation living
    in /tmp, bound read-only over the sandbox's /tmp): built on a staging folder, then moved over /tmp."""
    os.makedirs(_STAGE, exist_ok=True)
    _mount("tmpfs", _STAGE, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=0755")
    kept: list[str] = []
    for point, _, _ in sorted(_mounts(), key=lambda m: len(m[0])):
        if not point.startswith("/tmp/") or any(point.startswith(k + "/") for k in kept):
            continue
        dest = _STAGE + point[len("/tmp"):]
        os.makedirs(dest, exist_ok=True)
        _mount(point, dest, None, _MS_BIND | _MS_REC)  # read-only as it was (flags bound from the sandbox stay)
        kept.append(point)
    _mount(_STAGE, "/tmp", None, _MS_MOVE)


def isolate(name: str | None) -> None:
    """Steps 1 and 2 of the keeper (``name``: the submission's folder under ``WORKS_MOUNT``; None: a dry run)."""
    uid, gid = os.getuid(), os.getgid()
    libc = _libc()
    if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWPID | _CLONE_NEWIPC | _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare")
    for path, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{path}", "w", encoding="ascii") as f:
            f.write(text)
    _mount(None, "/", None, _MS_REC | _MS_PRIVATE)
    fresh = {WORK_MOUNT, "/tmp", "/dev/shm", WORKS_MOUNT}
    if name is not None:
        _mount(f"{WORKS_MOUNT}/{name}", WORK_MOUNT, None, _MS_BIND | _MS_REC)
    _fresh_tmp()
    if os.path.isdir("/dev/shm"):
        _mount("tmpfs", "/dev/shm", "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
    if os.path.isdir(WORKS_MOUNT):
        _mount("tmpfs", WORKS_MOUNT, "tmpfs", _MS_RDONLY | _MS_NOSUID | _MS_NODEV, "mode=0,size=4k")
    for point, flags, rw in _mounts():
        if not rw or point in fresh or point == "/proc" or point.startswith(("/proc/", "/dev/pts")):
            continue
        _mount(None, point, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY | flags)
    os.chdir(WORK_MOUNT)
    with contextlib.suppress(Exception):
        libc.syscall(250 if os.uname().machine == "x86_64" else 219, 1, None)  # keyctl: a new session keyring


def drop_capabilities() -> None:
    """No capability left, in any set (the keeper's, in its new user namespace, are not the student's)."""
    libc = _libc()
    for cap in range(64):
        libc.prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP (EINVAL past the last capability)
    libc.prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    data = (Data * 2)()
    if libc.capset(ctypes.byref(Header(0x20080522, 0)), data) != 0:  # _LINUX_CAPABILITY_VERSION_3
        raise OSError(ctypes.get_errno(), "capset")
    with open("/proc/self/status", encoding="ascii") as f:
        held = {k: v.strip() for k, _, v in (line.partition(":") for line in f) if k.startswith("Cap")}
    if any(int(held.get(k, "0"), 16) for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb")):
        raise OSError(1, f"capabilities left: {held}")


def _zygote(req_r: int, rep_w: int, modules: list[str]) -> int:
    """Step 3: the submission's zygote, as ``worker.main`` would leave it, then its loop."""
    from autograder import worker

    _libc().prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG: it dies with its keeper
    drop_capabilities()
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    worker.not_dumpable()
    for module in modules:
        importlib.import_module(module)
    return worker.serve_zygote(req_r, rep_w)


def _keeper(fds: list[int], name: str, modules: list[str]) -> int:
    """Steps 1-4 for one submission (the forked template, so torch and the rest are imported already)."""
    req_r, rep_w, status_w = fds
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        isolate(name)
    except OSError as err:
        print(f"autograder template: cannot isolate a worker: {err}", file=sys.stderr)
        return 4  # no status byte: the grader replaces the template
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(status_w)
            code = _zygote(req_r, rep_w, modules)
        finally:
            os._exit(code)
    os.close(req_r)
    os.close(rep_w)

    def stop(*_: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    # the zygote is the PID namespace's init: when it is reaped, every process of the namespace is gone
    _, status = os.waitpid(pid, 0)
    code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    os.write(status_w, bytes([code & 0xFF]))
    return 0


def _can_isolate() -> str:
    """Empty when a keeper can isolate itself here (a dry run in a child), else why not."""
    needed = [p for p in sys.path if p and os.path.isdir(p)]  # the installation: still there once isolated
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        why = ""
        try:
            isolate(None)
            drop_capabilities()
            gone = [p for p in needed if not os.path.isdir(p)]
            if gone:
                why = f"{gone[0]} is not visible in an isolated worker"
        except OSError as err:
            why = str(err)
        os.write(w, why.encode()[:4000])
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        why = f.read().decode(errors="replace")
    os.waitpid(pid, 0)
    return why


def serve(ctrl: int) -> int:
    """The template's loop (``worker.main --template``): import once, then fork a keeper per request."""
    from autograder import checks, worker
    from autograder.checks._plain import PlainDataError, dumps, loads

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C is the grader's to handle
    worker.prepare([])
    for module in COMMON_MODULES:
        with contextlib.suppress(Exception):
            importlib.import_module(module)
    with contextlib.suppress(Exception):
        worker.warm_matplotlib()
    sock = socket.socket(fileno=ctrl)
    why = _can_isolate()
    sock.sendall(dumps({"op": "ready", "why": why}))
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # a keeper unblocks it once it can handle it
    while True:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass  # reap the keepers that have finished (each has written its status)
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 3)
        except OSError:
            return 0
        if not message:
            return 0
        try:
            request = loads(message)
            name, modules = str(request["work"]), [str(m) for m in request["modules"]]
            imports = [str(m) for m in request["imports"]]
        except (PlainDataError, KeyError, TypeError, ValueError):
            name, modules, imports = "", [], []
        if why or len(fds) != 3 or not _NAME.fullmatch(name) or not all(m.startswith("autograder.") for m in modules):
            for fd in fds:
                os.close(fd)
            sock.sendall(b"refused")
            continue
        # the lesson's check modules and its notebook's imports, once per lesson: its zygotes inherit them
        checks.import_lessons(modules)
        for module in imports:
            if _MODULE.fullmatch(module):
                with contextlib.suppress(Exception):  # the notebook's own cell fails the same way, and says why
                    importlib.import_module(module)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                sock.close()
                code = _keeper(fds, name, modules)
            finally:
                os._exit(code)
        for fd in fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        try:
            socket.send_fds(sock, [pid.to_bytes(8, "big")], [pidfd])
        finally:
            os.close(pidfd)
