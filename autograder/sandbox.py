"""Where the grading worker runs: a bubblewrap sandbox, or the best containment this machine allows.

``bubblewrap`` (Debian's ``bwrap``): new PID, network, IPC, UTS and user namespaces, no
capabilities, dies with the grader, uid ``nobody``; the file system holds only the system's
read-only folders, the Python installation (read-only), a verified copy of the course package
(``autograder``, ``dcgan_ref``: read-only, nothing else of the course), an empty ``/tmp`` and the
submission's own working folder. No ``solutions/``, no gradebook, no other submission, no
network. A detached process the student's code starts dies with the sandbox. From a grading process's
second submission on, the worker is a fork of the process's sandbox *template* (``autograder/template.py``,
``Template`` here) in namespaces of its own, with a copy of its folder (``workspace``): the same view, without
a fresh interpreter and ``import torch`` per submission.

``auto`` (the default) is bwrap; where bwrap cannot run, grading stops with one line saying why.
It never falls back by itself. The instructor may choose explicitly (``AUTOGRADER_SANDBOX``):
``user``: a root grader runs the worker as a dedicated unprivileged uid in its own session and
mount namespace (where the Python installation lives under a folder others cannot enter, such as
``/root``, that folder is covered and only the installation bound back), on a root-owned
read-only copy of the package; every process of that uid is killed after each worker.
``process``: only a separate process, not contained. Each grades a notebook the same; the report
says which was in force.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import os
import select
import shutil
import signal
import site
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from autograder.template import WORK_MOUNT, WORKS_MOUNT

#: how long a template may take to start (importing torch and the notebooks' modules on a loaded machine)
START_TIMEOUT = 180.0
#: the uid the worker runs as without bwrap (no passwd entry: nothing else on the machine uses it)
SANDBOX_UID = 61999
#: where the package copy appears inside the bwrap sandbox
PKG_MOUNT = "/opt/dcgan-course"
PACKAGES = ("autograder", "dcgan_ref")
#: the numeric settings of every process that computes a number a grade depends on (worker and
#: judge), whatever the grader's environment says: one thread, so that a reduction sums in one
#: order on every machine (issue 21: lesson 08's Adam state differed by 7e-8 with 1 vs 2 threads)
NUMERIC_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
MANIFEST = "MANIFEST.sha256"


class SandboxError(RuntimeError):
    """The worker could not be contained as asked, or the course package failed verification."""


@dataclass(frozen=True)
class Containment:
    """What the worker runs inside: ``kind`` and a sentence for the report."""

    kind: str
    detail: str


# --- the course package: verified, then copied for the worker ---


def package_dirs() -> dict[str, Path]:
    """The folders ``autograder`` and ``dcgan_ref`` are imported from."""
    import autograder
    import dcgan_ref

    return {"autograder": Path(autograder.__file__).resolve().parent,
            "dcgan_ref": Path(dcgan_ref.__file__).resolve().parent}


def _package_files(dirs: dict[str, Path]) -> list[tuple[str, Path]]:
    """The package's modules: ``*.py`` in folders that are packages (an ``__init__.py`` on every level),
    so nbgrader's working folders under ``autograder/`` (submitted, autograded: a lesson may ship
    ``.py`` files) are never taken for the course package."""
    out = []
    for name, d in dirs.items():
        for path in sorted(d.rglob("*.py")):
            folders = path.relative_to(d).parents
            if "__pycache__" in path.parts or not all((d / f / "__init__.py").is_file() for f in folders):
                continue
            out.append((f"{name}/{path.relative_to(d).as_posix()}", path))
    return out


def compute_manifest(dirs: dict[str, Path] | None = None) -> dict[str, str]:
    """``relative path -> sha256`` of every module of the course package."""
    return {rel: hashlib.sha256(p.read_bytes()).hexdigest() for rel, p in _package_files(dirs or package_dirs())}


def manifest_path() -> Path:
    """The recorded hashes, shipped inside the package (``autograder/MANIFEST.sha256``)."""
    return package_dirs()["autograder"] / MANIFEST


def write_manifest() -> Path:
    """Record the hashes of the package as it is now (``python -m autograder manifest``)."""
    path = manifest_path()
    lines = [f"{digest}  {rel}" for rel, digest in sorted(compute_manifest().items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def read_manifest() -> dict[str, str]:
    """The recorded hashes; empty when there is no manifest."""
    path = manifest_path()
    if not path.exists():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, rel = line.split(None, 1)
            out[rel.strip()] = digest
    return out


def verify_package() -> None:
    """Stop with one line unless every module of the package matches the recorded hashes.

    ``AUTOGRADER_UNVERIFIED=1`` skips this while the checks are being written (never when grading).
    """
    if os.environ.get("AUTOGRADER_UNVERIFIED") == "1":
        return
    recorded = read_manifest()
    if not recorded:
        raise SandboxError(f"no {MANIFEST} in {manifest_path().parent}: the course package cannot be verified "
                           "(run `python -m autograder manifest` after editing the checks)")
    actual = compute_manifest()
    for rel, digest in sorted(actual.items()):
        if recorded.get(rel) != digest:
            what = "is not in the recorded manifest" if rel not in recorded else "does not match its recorded hash"
            raise SandboxError(f"{rel} {what}: the checks on disk were changed. Reinstall the package, or run "
                               "`python -m autograder manifest` if you edited them yourself")
    missing = sorted(set(recorded) - set(actual))
    if missing:
        raise SandboxError(f"{missing[0]} is missing from the installed package: reinstall it")


@functools.lru_cache(maxsize=1)
def package_copy() -> Path:
    """A read-only copy of the verified package's modules (only ``*.py``; no course data), made once."""
    verify_package()
    root = Path(tempfile.mkdtemp(prefix="autograder-pkg-"))
    for rel, path in _package_files(package_dirs()):
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest)
    for p in [root, *root.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)
    atexit.register(_remove_read_only, root, os.getpid())
    return root


def _remove_tree(root: Path, owner: int) -> None:
    """Remove ``root`` when the process that made it exits (a forked child leaves it alone)."""
    if os.getpid() == owner:
        shutil.rmtree(root, ignore_errors=True)


def _remove_read_only(root: Path, owner: int) -> None:
    """Remove the package copy when the process that made it exits (a forked child leaves it alone)."""
    if os.getpid() != owner or not root.exists():
        return
    for p in [root, *root.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(root, ignore_errors=True)


# --- choosing the containment ---


def _bwrap() -> str | None:
    return shutil.which("bwrap")


def _ro_binds() -> list[str]:
    """System folders and the Python installation, read-only; symlinked top-level folders as symlinks."""
    args: list[str] = []
    for top in ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc", "/sys"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for d in _python_dirs():
        if not d.startswith(("/usr/", "/etc/")):
            args += ["--ro-bind", d, d]
    return args


def bwrap_argv(workdir: Path, pkg: Path, works: Path | None = None) -> list[str]:
    """The bwrap command line around the worker (the worker's own argv is appended); with ``works``, around
    the template (``autograder.template``): the works folder bound instead of one submission's."""
    place = ["--bind", str(workdir), WORK_MOUNT] if works is None else \
        ["--dir", WORK_MOUNT, "--bind", str(works), WORKS_MOUNT]
    return [
        _bwrap() or "bwrap", "--die-with-parent", "--new-session", "--unshare-all", "--unshare-user",
        "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL", "--hostname", "sandbox",
        # the empty /tmp first: a Python installation (a venv, a clone) under /tmp is bound after it
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
        *_ro_binds(), "--dir", "/home/student",
        "--ro-bind", str(pkg), PKG_MOUNT, *place, "--chdir", WORK_MOUNT,
    ]


@functools.lru_cache(maxsize=4)
def _bwrap_works() -> str | None:
    """None when bwrap runs here, else why not (one line)."""
    if _bwrap() is None:
        return "bwrap is not installed (Debian: apt-get install bubblewrap)"
    with tempfile.TemporaryDirectory() as tmp:
        argv = bwrap_argv(Path(tmp), Path(tmp)) + [sys.executable, "-c", "print(1)"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as err:
            return f"bwrap failed to start: {err}"
    if proc.returncode != 0 or proc.stdout.strip() != "1":
        return "bwrap cannot create namespaces here: " + (proc.stderr.strip().splitlines() or ["?"])[-1]
    return None


def _python_dirs() -> list[str]:
    """The folders of the Python installation the worker needs (prefixes, site-packages), real paths."""
    sites = site.getsitepackages()  # no user site: the worker runs with PYTHONNOUSERSITE=1
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)), *sites}
    # folders .pth files add (another environment's site-packages), never the course's own folder (the
    # worker imports the verified package copy; the course holds solutions/). Not the rest of sys.path: the
    # grading script's own folder (/tmp, the instructor's home) must never be seen from the sandbox.
    course = {str(p.parent) for p in package_dirs().values()}
    dirs |= {p for p in _pth_dirs(sites) if p not in course}
    out: set[str] = set()
    for d in dirs:
        for p in (os.path.abspath(d), os.path.realpath(d)):
            if os.path.isdir(p):
                out.add(p)
    kept: list[str] = []
    for d in sorted(out, key=len):
        if not any(d == k or d.startswith(k + os.sep) for k in kept):
            kept.append(d)
    return kept


def _pth_dirs(sites: list[str]) -> set[str]:
    """The folders the ``.pth`` files of ``sites`` put on the path (their lines that name folders)."""
    out: set[str] = set()
    for d in sites:
        for pth in sorted(Path(d).glob("*.pth")) if os.path.isdir(d) else []:
            try:
                lines = pth.read_text(encoding="utf-8", errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                line = line.strip()
                if not line or line.startswith(("#", "import ", "import\t")):
                    continue
                path = os.path.join(d, line)
                if os.path.isdir(path):
                    out.add(os.path.abspath(path))
    return out


def _closed_ancestor(path: str) -> str | None:
    """The outermost folder above ``path`` that other users cannot enter (``/root``, mode 0700), or None."""
    parts = Path(path).parts
    for i in range(2, len(parts) + 1):
        p = str(Path(*parts[:i]))
        try:
            if not os.stat(p).st_mode & 0o001:
                return p
        except OSError:
            return p
    return None


def _reopen_plan() -> dict[str, list[str]]:
    """``closed folder -> installation folders under it`` for the ``user`` containment."""
    plan: dict[str, list[str]] = {}
    for d in _python_dirs():
        top = _closed_ancestor(d)
        if top is not None:
            plan.setdefault(top, []).append(d)
    return plan


def _mount_namespace(plan: dict[str, list[str]]) -> Callable[[], None]:
    """``preexec`` of the ``user`` worker (root, before exec): its own session and mount namespace in
    which every folder of ``plan`` the sandbox uid could not enter is covered by an empty tmpfs with
    only the Python installation bound back read-only, so the dropped uid imports what it needs
    later (lazily imported modules too) and sees nothing else that was there (e.g. the rest of /root)."""
    import ctypes

    clone_newns, ms_rdonly, ms_remount, ms_bind, ms_rec, ms_private = 0x20000, 1, 32, 4096, 0x4000, 1 << 18

    def run() -> None:
        os.setsid()
        if not plan:
            return
        libc = ctypes.CDLL(None, use_errno=True)

        def mount(src: str | None, dst: str, fstype: str | None, flags: int, data: str | None = None) -> None:
            if libc.mount(src and src.encode(), dst.encode(), fstype and fstype.encode(), flags,
                          data and data.encode()) != 0:
                raise OSError(ctypes.get_errno(), f"mount {dst}")

        if libc.unshare(clone_newns) != 0:
            raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNS)")
        mount(None, "/", None, ms_rec | ms_private)
        staging = tempfile.mkdtemp(prefix="autograder-mnt-")
        for top, dirs in plan.items():
            held = []
            for i, d in enumerate(dirs):
                os.mkdir(f"{staging}/{i}")
                mount(d, f"{staging}/{i}", None, ms_bind | ms_rec)
                held.append((f"{staging}/{i}", d))
            mount("tmpfs", top, "tmpfs", 0, "mode=0755")
            for src, d in held:
                os.makedirs(d, exist_ok=True)
                mount(src, d, None, ms_bind | ms_rec)
                mount(None, d, None, ms_bind | ms_remount | ms_rdonly)
                libc.umount2(src.encode(), 2)  # MNT_DETACH
                os.rmdir(src)
        os.rmdir(staging)

    return run


@functools.lru_cache(maxsize=4)
def _user_works() -> str | None:
    """None when the ``user`` containment runs here (a root grader whose Python the sandbox uid can
    import from, after ``_mount_namespace``), else why not (one line)."""
    if os.geteuid() != 0:
        return "it needs a root grader (to switch to the sandbox uid)"
    probe = (f"import os; os.setgroups([]); os.setgid({SANDBOX_UID}); os.setuid({SANDBOX_UID}); "
             "import mimetypes, email.parser, json, numpy; print(1)")
    try:
        proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                              preexec_fn=_mount_namespace(_reopen_plan()), cwd="/",
                              env={"PATH": "/usr/bin:/bin", "PYTHONNOUSERSITE": "1", **NUMERIC_ENV})
    except (OSError, subprocess.SubprocessError) as err:
        return f"the sandbox uid could not start Python: {err}"
    if proc.returncode != 0 or proc.stdout.strip() != "1":
        return ("the sandbox uid cannot import the Python installation: "
                + (proc.stderr.strip().splitlines() or ["?"])[-1])
    return None


def choose(preference: str | None = None) -> Containment:
    """The containment to use: ``AUTOGRADER_SANDBOX`` or ``preference``, ``auto`` by default.

    ``auto`` is bwrap; where bwrap cannot run, grading stops with one line saying why and how to
    choose another containment explicitly. It never falls back by itself: every containment
    grading may use grades a notebook the same, but a weaker one must be the instructor's choice.
    """
    want = (preference or os.environ.get("AUTOGRADER_SANDBOX") or "auto").lower()
    if want not in ("auto", "bwrap", "user", "process"):
        raise SandboxError(f"AUTOGRADER_SANDBOX={want!r}: use auto, bwrap, user or process")
    if want in ("auto", "bwrap"):
        why_not = _bwrap_works()
        if why_not:
            raise SandboxError(f"cannot contain the grading worker: {why_not}. Install/enable bubblewrap, or choose "
                               "explicitly: AUTOGRADER_SANDBOX=user (root grader, a dedicated uid) or "
                               "AUTOGRADER_SANDBOX=process (no containment)")
        return Containment("bwrap", "bubblewrap: own PID/network/user namespaces, read-only course package and "
                                    "Python, no solutions, gradebook or other submissions, dies with the grader")
    if want == "user":
        why_not = _user_works()
        if why_not:
            raise SandboxError(f"AUTOGRADER_SANDBOX=user cannot run here: {why_not}")
        return Containment("user", f"unprivileged uid {SANDBOX_UID} in its own session and mount namespace, "
                                   "read-only package copy (chosen: AUTOGRADER_SANDBOX=user); the course folder "
                                   "is readable by that uid")
    return Containment("process", "a separate process only, NOT contained (chosen: AUTOGRADER_SANDBOX=process); "
                                  "install bubblewrap for real containment")


@dataclass
class Launch:
    """How to start the worker: argv, environment, cwd, what to run in the child before exec."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    preexec: Callable[[], None] | None


def _worker_env(kind: str) -> dict[str, str]:
    """The environment every worker of the ``bwrap`` or another containment starts with."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
        "NBGRADER_EXECUTION": "autograde", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1", **NUMERIC_ENV, "TORCHINDUCTOR_CACHE_DIR": "/tmp/inductor",
    }
    if os.environ.get("AUTOGRADER_DEBUG"):
        env["AUTOGRADER_DEBUG"] = "1"  # the worker's timings on stderr
    if kind == "bwrap":
        env.update(HOME="/tmp", PYTHONPATH=PKG_MOUNT, MPLCONFIGDIR="/tmp/mpl")
    return env


def _python() -> list[str]:
    return [sys.executable, "-P", "-m", "autograder.worker"]  # -P: no cwd on sys.path


def launch(containment: Containment, workdir: Path, worker_args: list[str]) -> Launch:
    """The worker's command line under ``containment``, working in ``workdir``."""
    pkg = package_copy()
    env = _worker_env(containment.kind)
    python = [*_python(), *worker_args]
    if containment.kind == "bwrap":
        return Launch(bwrap_argv(workdir, pkg) + python, env, str(workdir), None)
    env.update(HOME=str(workdir), PYTHONPATH=str(pkg), MPLCONFIGDIR=str(workdir / ".mpl"),
               TORCHINDUCTOR_CACHE_DIR=str(workdir / ".inductor"))
    if containment.kind == "user":
        # the worker drops to the sandbox uid itself, after importing what answers may import (the
        # interpreter can live where that uid cannot read, e.g. /root) and before any student code
        for p in [workdir, *workdir.rglob("*")]:
            os.chown(p, SANDBOX_UID, SANDBOX_UID)
        env["AUTOGRADER_DROP_UID"] = str(SANDBOX_UID)
        return Launch(python, env, str(workdir), _mount_namespace(_reopen_plan()))
    return Launch(python, env, str(workdir), os.setsid)


def kill_all(containment: Containment, proc: subprocess.Popen | Keeper) -> None:
    """Kill the worker and everything it started (its session or PID namespace; with ``user``, every process of
    the uid)."""
    if isinstance(proc, Keeper):
        proc.stop()
        return
    with_suppress(lambda: os.killpg(proc.pid, signal.SIGKILL))
    with_suppress(proc.kill)
    if containment.kind == "user":
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    if os.stat(f"/proc/{pid}").st_uid == SANDBOX_UID:
                        os.kill(int(pid), signal.SIGKILL)
                except OSError:
                    continue
    with_suppress(lambda: proc.wait(timeout=10))


def with_suppress(fn: Callable[[], object]) -> None:
    """Run ``fn``, ignoring OS errors and time-outs (the process may be gone already)."""
    try:
        fn()
    except (OSError, subprocess.TimeoutExpired, ProcessLookupError):
        pass


# --- the template: one sandbox per grading process, a fresh set of namespaces per submission ---


class Template:
    """This grading process's sandbox template (``autograder/template.py``), started on first use.

    A ``bwrap`` worker costs a fresh interpreter and ``import torch`` (1.5 of a submission's 3.3 CPU seconds)
    when started on its own. The template imports once; each worker is a fork of it in new namespaces, in
    the submission's own copy of its working folder (``workspace``). A template that fails or misbehaves is
    replaced; where a keeper cannot isolate itself (no nested user namespaces), workers start on their own.
    """

    _lock = threading.RLock()
    _proc: subprocess.Popen | None = None
    _sock: socket.socket | None = None
    _owner = 0
    _root: Path | None = None
    _root_owner = 0
    _why = ""  # why keepers cannot isolate themselves here (then no template is used)
    _asked = 0  # the pid of a process that asked for a submission's worker before (``wanted``)
    _many = 0  # the pid of a process that said it grades many (``expect_many``)
    _registered = False

    @classmethod
    def usable(cls) -> bool:
        """True when submissions' workers are forked from the template (starting it if needed)."""
        if os.environ.get("AUTOGRADER_TEMPLATE") == "0":
            return False
        with cls._lock:
            if cls._why:
                return False
            try:
                cls._ensure()
            except OSError as err:
                cls._why = f"the template did not start: {err}"
                cls._stop()
            return not cls._why

    @classmethod
    def wanted(cls) -> bool:
        """Whether the next submission's worker comes from the template: from a grading process's second
        submission on, or when the template runs already (a single ``check`` pays no template start);
        ``AUTOGRADER_TEMPLATE=1``: always (SandboxError where it cannot), ``0``: never."""
        with cls._lock:
            again, cls._asked = cls._asked == os.getpid(), os.getpid()
            if os.environ.get("AUTOGRADER_TEMPLATE") == "1":  # always, or grading stops with one line
                if not cls.usable():
                    raise SandboxError(f"AUTOGRADER_TEMPLATE=1, but {cls._why}")
                return True
            running = cls._owner == os.getpid() and cls._proc is not None
            return (again or running or cls._many == os.getpid()) and cls.usable()

    @classmethod
    def expect_many(cls) -> None:
        """This process grades many submissions (a Dask worker): the first one's worker comes from the template."""
        cls._many = os.getpid()

    @classmethod
    def holds(cls, workdir: Path) -> bool:
        """True when ``workdir`` is a folder of this process's works folder (made by ``workspace``)."""
        return cls._root is not None and cls._root_owner == os.getpid() and workdir.parent == cls._root

    @classmethod
    def root(cls) -> Path:
        """The works folder (made once per grading process, removed when it exits)."""
        with cls._lock:
            if cls._root is None or cls._root_owner != os.getpid():
                cls._root = Path(tempfile.mkdtemp(prefix="autograder-works-"))
                cls._root_owner = os.getpid()
                atexit.register(_remove_tree, cls._root, os.getpid())
            return cls._root

    @classmethod
    def _ensure(cls) -> None:
        if cls._owner == os.getpid() and cls._proc is not None and cls._proc.poll() is None:
            return
        from autograder.checks._plain import loads

        if cls._owner == os.getpid():
            cls._stop()
        elif cls._sock is not None:  # a forked copy of the grader: leave the parent's template alone
            cls._sock.close()
            cls._sock = cls._proc = None
        root = cls.root()
        cls._owner = os.getpid()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = bwrap_argv(root, package_copy(), works=root) + [*_python(), "--template", str(theirs.fileno())]
        cls._proc = subprocess.Popen(
            argv, env=_worker_env("bwrap"), cwd=str(root), pass_fds=(theirs.fileno(),), start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=None if os.environ.get("AUTOGRADER_DEBUG") else subprocess.DEVNULL)
        theirs.close()
        cls._sock = ours
        if not cls._registered:
            atexit.register(cls._stop)
            cls._registered = True
        ours.settimeout(START_TIMEOUT)
        try:
            ready = loads(ours.recv(1 << 16))
        except (OSError, ValueError) as err:
            raise OSError(f"no answer ({err})") from None
        if type(ready) is not dict or ready.get("op") != "ready" or type(ready.get("why")) is not str:
            raise OSError("it broke the protocol")
        cls._why = ready["why"][:500] and f"a worker cannot isolate itself in it ({ready['why'][:500]})"
        if cls._why:
            cls._stop()

    @classmethod
    def spawn(cls, workdir: Path, modules: list[str], fds: tuple[int, int],
              imports: Sequence[str] = ()) -> Keeper:
        """A worker for ``workdir`` (a folder of ``root()``) serving the pipe ends ``fds`` (request read end,
        reply write end), forked from the template; ``modules``: the check modules it imports, ``imports``: the
        lesson's own imports (the template imports both before it forks, once per lesson)."""
        from autograder.checks._plain import dumps

        status_r, status_w = os.pipe()
        try:
            with cls._lock:
                for _attempt in (1, 2):
                    cls._ensure()
                    assert cls._sock is not None
                    request = dumps({"work": workdir.name, "modules": modules, "imports": list(imports)})
                    try:
                        socket.send_fds(cls._sock, [request], [*fds, status_w])
                        head, got, _, _ = socket.recv_fds(cls._sock, 64, 1)
                    except (OSError, ValueError):
                        head, got = b"", []
                    if len(head) == 8 and len(got) == 1:
                        os.set_blocking(status_r, False)
                        keeper = Keeper(got[0], status_r)
                        status_r = -1
                        return keeper
                    for fd in got:
                        os.close(fd)
                    cls._stop()  # refused or broken: a fresh template for the next try
            raise OSError("the sandbox template did not start a worker")
        finally:
            os.close(status_w)
            if status_r >= 0:
                os.close(status_r)

    @classmethod
    def discard(cls) -> None:
        """Replace the template before the next worker (one of its keepers did not end cleanly)."""
        with cls._lock:
            cls._stop()

    @classmethod
    def _stop(cls) -> None:
        if cls._owner != os.getpid():
            return
        if cls._sock is not None:
            cls._sock.close()
        proc = cls._proc
        if proc is not None:
            with_suppress(lambda: os.killpg(proc.pid, signal.SIGKILL))
            with_suppress(proc.kill)
            with_suppress(lambda: proc.wait(timeout=10))
        cls._sock = cls._proc = None


class Forked:
    """A process this one did not fork (a judge from the judge server, a keeper from the template), with the
    surface of ``subprocess.Popen`` the grader uses. A pidfd names it, so a recycled pid is never signalled.
    Its exit status comes as one byte on ``status_fd`` where it writes one; otherwise it reads as killed."""

    def __init__(self, pidfd: int | None, pid: int, status_fd: int | None = None) -> None:
        self._pidfd, self._status, self.pid = pidfd, status_fd, pid
        self.returncode: int | None = None if pidfd is not None else -signal.SIGKILL  # no pidfd: already gone
        self.clean = False  # it wrote its status before it exited

    @classmethod
    def of_pid(cls, pid: int) -> Forked:
        """``pid``, named by a pidfd opened now."""
        try:
            return cls(os.pidfd_open(pid), pid)
        except (AttributeError, OSError):
            return cls(None, pid)

    def poll(self) -> int | None:
        if self.returncode is None and self._pidfd is not None and select.select([self._pidfd], [], [], 0)[0]:
            status = b""
            if self._status is not None:
                with contextlib.suppress(OSError):
                    status = os.read(self._status, 1)
                os.close(self._status)
            self.returncode, self.clean = (status[0], True) if status else (-signal.SIGKILL, False)
            os.close(self._pidfd)
            self._pidfd = None
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        if self.returncode is None and self._pidfd is not None:
            select.select([self._pidfd], [], [], timeout)
        return self.poll()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)

    def signal(self, signum: int) -> None:
        """Send ``signum`` unless it has exited."""
        if self.poll() is None and self._pidfd is not None:
            pidfd = self._pidfd
            with_suppress(lambda: signal.pidfd_send_signal(pidfd, signum))


class Keeper(Forked):
    """A worker forked by the template (``autograder/template.py``): ``pid`` is its keeper's pid here, whose
    process tree holds every process of the submission; the keeper writes the zygote's status just before it
    exits (none: it did not end cleanly)."""

    def __init__(self, pidfd: int, status_fd: int) -> None:
        pid = -1
        with contextlib.suppress(OSError, ValueError), open(f"/proc/self/fdinfo/{pidfd}", encoding="ascii") as f:
            pid = int(next(ln.split()[1] for ln in f if ln.startswith("Pid:")))
        super().__init__(pidfd, pid, status_fd)

    def kill(self) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill the zygote and its whole PID namespace (SIGTERM to the keeper, which reaps it), then wait."""
        self.signal(signal.SIGTERM)
        if self.wait(10) is None:
            self.signal(signal.SIGKILL)
            self.wait(10)
        if not self.clean:
            Template.discard()  # it may have left processes behind in the template's sandbox


def _copy_plain(src: Path, dest: Path) -> None:
    """Copy folders, files and symbolic links (as links) of ``src`` into ``dest``; nothing else (no FIFO)."""
    for entry in os.scandir(src):
        target = dest / entry.name
        st = entry.stat(follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(entry.path), target)
        elif stat.S_ISDIR(st.st_mode):
            target.mkdir()
            _copy_plain(Path(entry.path), target)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(entry.path, target, follow_symlinks=False)
            target.chmod(stat.S_IMODE(st.st_mode) | 0o600)


@contextlib.contextmanager
def workspace(containment: Containment, workdir: Path) -> Iterator[Path]:
    """The folder the worker of a submission works in: with the template, a copy of ``workdir`` in the works
    folder (removed afterwards; what the student's code writes stays there), else ``workdir`` itself."""
    if containment.kind != "bwrap" or not Template.wanted():
        yield workdir
        return
    scratch = Path(tempfile.mkdtemp(prefix="w", dir=Template.root()))
    try:
        _copy_plain(workdir, scratch)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
