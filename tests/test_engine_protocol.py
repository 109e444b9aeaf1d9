"""The grading engine's parts, tested on their own (fast, no sandbox): plain-data budgets, the probe
child's protections (seccomp, the machinery snapshot), CPU-time accounting, the secret."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
import zipfile

import pytest
import torch

from autograder import sandbox, trusted, worker
from autograder.checks import _plain, _secret


def test_shared_reference_bomb_is_rejected_fast():
    x: object = [1.0]
    for _ in range(13):
        x = [x] * 8  # 8**13 paths in a few hundred bytes
    blob = _plain.dumps(x)
    assert len(blob) < 5000
    t0 = time.perf_counter()
    with pytest.raises(_plain.PlainDataError, match="values"):
        _plain.loads(blob)
    assert time.perf_counter() - t0 < 10


def test_a_probe_returning_a_shared_reference_bomb_sends_a_marker_fast():
    x: object = [1.0]
    for _ in range(13):
        x = [x] * 8
    t0 = time.perf_counter()
    assert _plain.to_plain(x) == {"__opaque__": f"more than {_plain.MAX_NODES} values"}
    assert time.perf_counter() - t0 < 10


def test_one_tensor_referenced_many_times_counts_its_elements_once():
    t = torch.zeros(_plain.MAX_ELEMENTS // 2)
    assert _plain.validate([t, t, t]) is not None
    with pytest.raises(_plain.PlainDataError, match="elements"):
        _plain.validate([t, t.clone(), t.clone()])


def test_depth_text_and_types_are_bounded():
    deep: object = 1
    for _ in range(_plain.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(_plain.PlainDataError, match="deeply"):
        _plain.validate(deep)
    with pytest.raises(_plain.PlainDataError, match="text"):
        _plain.validate(["x" * (_plain.MAX_TEXT_BYTES // 2)] * 3)
    with pytest.raises(_plain.PlainDataError, match="type"):
        _plain.validate({"a": torch.nn.Parameter(torch.ones(1))})


def test_a_compressed_or_inflated_archive_is_refused_before_torch_load():
    blob = _plain.dumps({"a": torch.zeros(1000)})
    buf = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as src, zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    with pytest.raises(_plain.PlainDataError, match="compressed"):
        _plain.loads(buf.getvalue())
    with pytest.raises(_plain.PlainDataError, match="not a torch archive"):
        _plain.loads(b"\x80\x04K\x01.")  # a bare pickle


def _in_probe_child(code: str) -> str:
    """Run ``code`` in a forked child after the probe child's protections; what it printed."""
    script = (
        "import os, sys, threading\n"
        "from autograder import worker\n"
        "worker.not_dumpable()\nassert worker.deny_new_tasks()\n" + code
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **sandbox.NUMERIC_ENV})
    return proc.stdout + proc.stderr


@pytest.mark.skipif(os.uname().machine not in ("x86_64", "aarch64"), reason="seccomp filter for these only")
def test_probe_child_cannot_start_threads_processes_or_programs():
    out = _in_probe_child(
        "for what, fn in [('thread', lambda: threading.Thread(target=print).start()),\n"
        "                 ('fork', os.fork),\n"
        "                 ('exec', lambda: os.execv('/bin/true', ['true']))]:\n"
        "    try:\n        fn()\n        print(what, 'ALLOWED')\n"
        "    except (RuntimeError, OSError) as e:\n        print(what, 'refused')\n"
        "import subprocess\n"
        "try:\n    subprocess.run(['true'])\n    print('subprocess ALLOWED')\n"
        "except (RuntimeError, OSError):\n    print('subprocess refused')\n"
        "import torch\nprint('compute', float(torch.ones(3).sum()))\n")
    for what in ("thread", "fork", "exec", "subprocess"):
        assert f"{what} refused" in out, out
    assert "compute 3.0" in out, out


def test_probe_child_is_not_dumpable():
    out = _in_probe_child("print('dumpable', open(f'/proc/{os.getpid()}/status').read().count('x') >= 0)\n"
                          "import ctypes\nprint('flag', ctypes.CDLL(None).prctl(3, 0, 0, 0, 0))\n")
    assert "flag 0" in out, out


def test_machinery_snapshot_sees_a_rebinding():
    import autograder.checks._core as core

    before = worker.machinery_snapshot()
    real = core.Exercise.run_probe
    try:
        core.Exercise.run_probe = lambda self, objects, cases: None  # type: ignore[method-assign]
        changed = {k for k, v in worker.machinery_snapshot().items() if before.get(k) != v}
    finally:
        core.Exercise.run_probe = real  # type: ignore[method-assign]
    assert "autograder.checks._core.Exercise.run_probe" in changed
    assert {k for k, v in worker.machinery_snapshot().items() if before.get(k) != v} == set()


def test_definitions_only_skip_expressions_loops_and_attribute_writes():
    w = worker.Worker()
    w.define("import math\nX = 3\nprint('side effect')\nfor i in range(3):\n    X += 1\n"
             "math.pi = 3\ndef f():\n    return X\nclass C:\n    pass\n")
    ns = w.shell.user_ns
    assert ns["X"] == 3 and callable(ns["f"]) and isinstance(ns["C"], type)
    import math

    assert math.pi != 3
    w.define("try:\n    import scipy\nexcept ImportError:\n    scipy = None\nif X > 2:\n    Z = 1\nelse:\n"
             "    print('no')\n")
    assert ns["scipy"] is not None and "Z" not in ns  # a branch that prints is not a definition
    w.define("Y = 1\n", trusted=True)
    w.define("import subprocess\nimport importlib\n", trusted=True)
    assert "subprocess" not in ns and "importlib" not in ns and ns["Y"] == 1


def test_cpu_seconds_count_the_whole_tree_and_not_sleep():
    proc = subprocess.Popen([sys.executable, "-c", "import subprocess, sys, time\n"
                             "subprocess.Popen([sys.executable, '-c', 'while True: pass'])\ntime.sleep(60)"],
                            start_new_session=True)
    try:
        time.sleep(3)
        busy = trusted.tree_cpu_seconds(proc.pid)
        assert busy > 0.3  # the grandchild's loop counts
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()
    sleeper = subprocess.Popen(["sleep", "3"])
    time.sleep(1.5)
    assert trusted.tree_cpu_seconds(sleeper.pid) < 0.5
    sleeper.kill()
    sleeper.wait()


JUDGE_PROBE_MODULE = """
import os, torch
from autograder.checks import _secret
from autograder.checks._core import exercise

def _judge(cases, data):
    return f"{_secret.hidden_seed('x', 1)} {os.environ.get('OMP_NUM_THREADS')} {torch.get_num_threads()} " \\
           f"{os.environ.get('DCGAN_MARKER')}"

check_env = exercise("env", lambda *a: None, _judge)
"""


def test_random_secret_is_said_and_reaches_the_judge_process(monkeypatch, tmp_path):
    """A judge forked from the server derives the grader's hidden values, computes with one thread, and sees the
    grader's environment as it is now (not as it was when the server started); the secret never sits in an
    environment block another process can read."""
    monkeypatch.delenv("AUTOGRADER_SECRET", raising=False)
    monkeypatch.setenv("DCGAN_COURSE_ROOT", "/nonexistent-course")
    (tmp_path / "envcheck.py").write_text(JUDGE_PROBE_MODULE)
    call = trusted.CheckCall("envcheck", "check_env", (), False)
    _secret.reset()
    try:
        assert _secret.is_random() and _secret.secret_source().startswith("random")
        seed = _secret.hidden_seed("x", 1)
        for marker in ("first", "second"):  # two judges of one server, the environment changed in between
            monkeypatch.setenv("DCGAN_MARKER", marker)
            judge = trusted.JudgeHandle([])
            try:
                verdict = judge.judge(call, [tmp_path], None, None)
                env = open(f"/proc/{judge.proc.pid}/environ", "rb").read()
            finally:
                judge.kill()
            assert verdict["status"] == "ok", verdict
            assert verdict["message"] == f"{seed} 1 1 {marker}"
            assert _secret.secret_value().encode() not in env
    finally:
        _secret.reset()


def test_auto_never_falls_back_silently(monkeypatch):
    monkeypatch.setattr(sandbox, "_bwrap_works", lambda: "bwrap is not installed")
    monkeypatch.delenv("AUTOGRADER_SANDBOX", raising=False)
    with pytest.raises(sandbox.SandboxError) as err:
        sandbox.choose()
    assert "AUTOGRADER_SANDBOX=user" in str(err.value) and "AUTOGRADER_SANDBOX=process" in str(err.value)
    assert "\n" not in str(err.value)
    assert sandbox.choose("process").kind == "process"


def test_worker_env_has_one_thread_whatever_the_grader_has(monkeypatch, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("AUTOGRADER_UNVERIFIED", "1")
    launch = sandbox.launch(sandbox.Containment("process", ""), tmp_path, ["3", "4"])
    assert launch.env["OMP_NUM_THREADS"] == "1" and launch.env["MKL_NUM_THREADS"] == "1"
    assert "-P" in launch.argv


def test_package_files_skip_nbgrader_working_folders(tmp_path):
    """A lesson's ``.py`` file copied into ``autograder/submitted`` or ``autograded`` is no module of the
    course package: verification and the sandbox's package copy never see it."""
    from autograder import sandbox

    pkg = tmp_path / "autograder"
    (pkg / "checks").mkdir(parents=True)
    for f in ("__init__.py", "cli.py", "checks/__init__.py", "checks/lesson01.py"):
        (pkg / f).write_text("x = 1\n")
    for f in ("autograded/alice/01_x/fixture_checks.py", "submitted/bob/01_x/helper.py"):
        (pkg / f).parent.mkdir(parents=True, exist_ok=True)
        (pkg / f).write_text("x = 2\n")
    rels = [rel for rel, _ in sandbox._package_files({"autograder": pkg})]
    assert rels == ["autograder/__init__.py", "autograder/checks/__init__.py", "autograder/checks/lesson01.py",
                    "autograder/cli.py"]


def test_the_guards_do_not_import_dynamo():
    """Every probe child enters a dispatch mode; torch wraps a mode's ``__torch_dispatch__`` so that its first
    call imports torch._dynamo (as long as importing torch itself) unless the mode opts out. Each of the
    checks' dispatch modes opts out, and still refuses what it refuses."""
    code = """
import sys, torch, torch.nn.functional as F
from autograder.checks import _guard, lesson02
x, w = torch.randn(1, 2, 5, 5), torch.randn(3, 2, 3, 3)
modes = [m for m in (*vars(_guard).values(), *vars(lesson02).values())
         if isinstance(m, type) and issubclass(m, torch.utils._python_dispatch.TorchDispatchMode)
         and m.__module__.startswith("autograder")]
assert {m.__name__ for m in modes} >= {"EagerDispatchMode", "RefuseOps", "RefuseTransposed", "Recorder"}, modes
with lesson02.Recorder(x.shape, (1, 3, 3, 3)):
    F.conv2d(x, w)
refused = False
try:
    with _guard.RefuseOps([_guard.CONVOLUTION]):
        F.conv2d(x, w)
except _guard.DelegationError:
    refused = True
with lesson02.RefuseTransposed("") as mode:
    F.conv2d(x, w)
assert refused and not mode.hits
assert "torch._dynamo" not in sys.modules, "a dispatch mode imported torch._dynamo"
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AUTOGRADER_UNVERIFIED": "1"})
    assert proc.stdout.strip() == "ok", proc.stderr[-3000:]


def test_one_judge_server_per_grading_process_and_a_big_environment_arrives_whole(monkeypatch, tmp_path):
    """Judges of one process come from one server; a request larger than a stream socket delivers at once
    (a long environment) still starts a judge; a forked copy of the grader starts its own server."""
    (tmp_path / "envcheck.py").write_text(JUDGE_PROBE_MODULE)
    call = trusted.CheckCall("envcheck", "check_env", (), False)
    for i in range(4):  # 200 kB of environment (one variable may hold at most 128 kB)
        monkeypatch.setenv(f"DCGAN_FILLER_{i}", "x" * 50_000)
    servers = []
    for _ in range(2):
        judge = trusted.JudgeHandle([])
        try:
            assert judge.judge(call, [tmp_path], None, None)["status"] == "ok"
            servers.append(trusted._JudgeServer._proc.pid)
        finally:
            judge.kill()
    assert servers[0] == servers[1]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the forked copy must not use (or stop) the parent's server
        code = 1
        try:
            judge = trusted.JudgeHandle([])
            ok = judge.judge(call, [tmp_path], None, None)["status"] == "ok"
            mine = trusted._JudgeServer._proc.pid
            judge.kill()
            trusted._JudgeServer._stop()
            os.write(w, f"{int(ok)} {mine}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    got = os.read(r, 100).decode().split()
    os.close(r)
    assert os.waitstatus_to_exitcode(status) == 0 and got[0] == "1" and int(got[1]) != servers[0]
    assert trusted._JudgeServer._proc.poll() is None  # the parent's server still serves
