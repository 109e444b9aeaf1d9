"""Where the grading worker runs: a bubblewrap sandbox, or the best containment this machine allows.

``bubblewrap`` (Debian's ``bwrap``): new PID, network, IPC, UTS and user namespaces, no
capabilities, dies with the grader, uid ``nobody``; the file system holds only the system's
read-only folders, the Python installation (read-only), a verified copy of the course package
(``autograder``, ``dcgan_ref``: read-only, nothing else of the course), an empty ``/tmp`` and the
submission's own working folder. No ``solutions/``, no gradebook, no other submission, no
network. A detached process the student's code starts dies with the sandbox.

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
import functools
import hashlib
import os
import shutil
import signal
import site
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: the uid the worker runs as without bwrap (no passwd entry: nothing else on the machine uses it)
SANDBOX_UID = 61999
#: where the package copy appears inside the bwrap sandbox
PKG_MOUNT = "/opt/dcgan-course"
WORK_MOUNT = "/home/student/work"
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


def bwrap_argv(workdir: Path, pkg: Path) -> list[str]:
    """The bwrap command line around the worker (the worker's own argv is appended)."""
    return [
        _bwrap() or "bwrap", "--die-with-parent", "--new-session", "--unshare-all", "--unshare-user",
        "--uid", "65534", "--gid", "65534", "--cap-drop", "ALL", "--hostname", "sandbox",
        # the empty /tmp first: a Python installation (a venv, a clone) under /tmp is bound after it
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",
        *_ro_binds(), "--dir", "/home/student",
        "--ro-bind", str(pkg), PKG_MOUNT, "--bind", str(workdir), WORK_MOUNT, "--chdir", WORK_MOUNT,
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


def launch(containment: Containment, workdir: Path, worker_args: list[str]) -> Launch:
    """The worker's command line under ``containment``, working in ``workdir``."""
    pkg = package_copy()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg",
        "NBGRADER_EXECUTION": "autograde", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        "PYTHONUNBUFFERED": "1", **NUMERIC_ENV, "TORCHINDUCTOR_CACHE_DIR": "/tmp/inductor",
    }
    if os.environ.get("AUTOGRADER_DEBUG"):
        env["AUTOGRADER_DEBUG"] = "1"  # the worker's timings on stderr
    python = [sys.executable, "-P", "-m", "autograder.worker", *worker_args]  # -P: no cwd on sys.path
    if containment.kind == "bwrap":
        env.update(HOME="/tmp", PYTHONPATH=PKG_MOUNT, MPLCONFIGDIR="/tmp/mpl")
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


def kill_all(containment: Containment, proc: subprocess.Popen) -> None:
    """Kill the worker and everything it started (its session; with ``user``, every process of the uid)."""
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
