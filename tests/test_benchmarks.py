"""The benchmark scripts run: tiny CPU runs of bench_train.py and gpu_check.sh, so they cannot rot
unnoticed between the rare sessions that have a GPU.

What it measures is not tested here (speed targets live in the benchmark's printout, see
benchmarks/README.md); that both paths train the same model, and the table, the ratio and the
profile are printed, is.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("size", ["32", "64"])
def test_bench_train_runs_both_paths_and_prints_the_ratio(size):
    cmd = [sys.executable, "benchmarks/bench_train.py", "--device", "cpu", "--steps", "2", "--rounds", "2",
           "--warmup", "1", "--ngf", "8", "--ndf", "8", "--batch-size", "16", "--n-images", "96",
           "--workers", "1", "--threads", "1", "--profile", "2", "--image-size", size]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    out = proc.stdout
    assert proc.returncode == 0, f"bench_train.py failed ({proc.returncode}):\n{out[-2000:]}\n{proc.stderr[-3000:]}"
    rounds = re.findall(r"round (\d): baseline +([\d.]+) img/s +fast +([\d.]+) img/s", out)
    assert [r[0] for r in rounds] == ["1", "2"], f"expected 2 alternating rounds:\n{out}"
    assert all(float(b) > 0 and float(f) > 0 for _, b, f in rounds)
    ratio = re.search(r"ratio fast / baseline: ([\d.]+)x", out)
    assert ratio and float(ratio.group(1)) > 0, f"no ratio printed:\n{out}"
    assert "dcgan_ref fast path" in out and "baseline (pytorch/examples style)" in out
    assert f"model: DCGAN {size}x{size}" in out
    assert "profile of 2 fast-path steps" in out and "aten::convolution" in out, f"no profile table:\n{out}"


@pytest.mark.slow
def test_gpu_check_script_runs_its_steps(tmp_path):
    # benchmarks/gpu_check.sh is what a session lent a GPU runs; QUICK=1 DEVICE=cpu runs its
    # mechanics tiny here (the steps, the logs, the trainer's resume, the files it brings back).
    env = {**os.environ, "OUT": str(tmp_path / "out"), "RUNS": str(tmp_path / "runs"), "QUICK": "1",
           "DEVICE": "cpu", "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}  # fmt: skip
    proc = subprocess.run(["bash", "benchmarks/gpu_check.sh", "eager", "trainer"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, env=env)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert re.search(r"^eager: exit 0", summary, re.M) and re.search(r"^trainer: exit 0", summary, re.M), (
        f"a step failed:\n{summary}\n{(tmp_path / 'out' / 'gpu_check.log').read_text()[-4000:]}"
    )
    log = (tmp_path / "out" / "gpu_check.log").read_text()
    assert "ratio fast / baseline" in log and "resumed from" in log
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "gpu_check.log", "losses.png", "progress.gif", "summary.txt"
    ]  # fmt: skip
