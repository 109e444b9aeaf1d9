"""The training loop: what each step touches, determinism, exact resume, kill and resume."""

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from dcgan_ref.models import Discriminator, Generator, SigmoidDiscriminator, weights_init
from dcgan_ref.train import (
    TrainConfig,
    discriminator_step,
    generator_step,
    make_optimizers,
    train,
    train_step,
)

ROOT = Path(__file__).resolve().parents[1]
# 256 images / batch 16 = 16 steps per epoch; tiny nets: a step takes milliseconds
TINY = dict(dataset="synthetic", image_size=32, ngf=8, ndf=8, batch_size=16, synthetic_size=256,
            epochs=3, progress=False, log_every=4, device="cpu")  # fmt: skip


def _nets(d_cls=Discriminator, seed=0):
    torch.manual_seed(seed)
    G, D = Generator(16, 8, 3, 32), d_cls(3, 8, 32)
    G.apply(weights_init)
    D.apply(weights_init)
    return G, D


def _params(m):
    return [p.detach().clone() for p in m.parameters()]


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("d_cls", [Discriminator, SigmoidDiscriminator])
def test_train_step_updates_both_and_each_step_touches_only_its_net(d_cls):
    G, D = _nets(d_cls)
    opt_G, opt_D = make_optimizers(G, D)
    real, z = torch.rand(8, 3, 32, 32) * 2 - 1, torch.randn(8, 16)
    g0, d0 = _params(G), _params(D)

    fake = G(z)
    discriminator_step(D, opt_D, real, fake.detach())
    assert _same(_params(G), g0), "the D step changed G"
    assert not _same(_params(D), d0), "the D step did not change D"
    assert all(p.grad is None for p in G.parameters()), "the D step must not send gradients into G (detach)"

    d1 = _params(D)
    generator_step(D, opt_G, fake)
    assert _same(_params(D), d1), "the G step changed D's parameters"
    assert not _same(_params(G), g0), "the G step did not change G"

    G2, D2 = _nets(d_cls)
    o2 = make_optimizers(G2, D2)
    logs = train_step(G2, D2, *o2, real, z)
    assert not _same(_params(G2), g0) and not _same(_params(D2), d0)
    assert set(logs) >= {"loss_D", "loss_G", "D_x", "D_G_z1", "D_G_z2", "acc_real", "acc_fake"}


def test_train_step_matches_the_canonical_loop_written_out():
    """pytorch/examples' loop, spelled out with BCELoss: same parameters after one step."""
    G, D = _nets(SigmoidDiscriminator)
    Gr, Dr = _nets(SigmoidDiscriminator)
    opt_G, opt_D = make_optimizers(G, D)
    ref_G = torch.optim.Adam(Gr.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ref_D = torch.optim.Adam(Dr.parameters(), lr=2e-4, betas=(0.5, 0.999))
    real, z = torch.rand(8, 3, 32, 32) * 2 - 1, torch.randn(8, 16, 1, 1)
    train_step(G, D, opt_G, opt_D, real, z)

    bce = torch.nn.BCELoss()
    Dr.zero_grad()
    err_real = bce(Dr(real), torch.ones(8))
    err_real.backward()
    fake = Gr(z)
    err_fake = bce(Dr(fake.detach()), torch.zeros(8))
    err_fake.backward()
    ref_D.step()
    Gr.zero_grad()
    bce(Dr(fake), torch.ones(8)).backward()
    ref_G.step()
    for a, b in zip([*G.parameters(), *D.parameters()], [*Gr.parameters(), *Dr.parameters()], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def _state(out):
    return torch.load(Path(out) / "checkpoints" / "last.pt", weights_only=False)


def _assert_same_run(a, b):
    for net in ("G", "D"):
        for k, v in a[net].items():
            assert torch.equal(v, b[net][k]), f"{net}.{k} differs"
    assert a["step"] == b["step"] and a["history"] == b["history"] and a["epoch_rows"] == b["epoch_rows"]
    sa, sb = a["opt_G"]["state"], b["opt_G"]["state"]
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


def test_same_seed_same_result_and_another_seed_differs(tmp_path):
    cfg = TrainConfig(**TINY, max_steps=6)
    train(replace(cfg, out=str(tmp_path / "a")))
    train(replace(cfg, out=str(tmp_path / "b")))
    train(replace(cfg, out=str(tmp_path / "c"), seed=1))
    a, b, c = (_state(tmp_path / x) for x in "abc")
    _assert_same_run(a, b)
    assert not torch.equal(a["G"]["main.0.weight"], c["G"]["main.0.weight"])


@pytest.mark.parametrize("split", [10, 16])  # mid-epoch, and exactly at an epoch boundary
def test_resume_gives_identical_weights(tmp_path, split):
    cfg = TrainConfig(**TINY, max_steps=24)
    train(replace(cfg, out=str(tmp_path / "straight")))
    train(replace(cfg, out=str(tmp_path / "resumed"), max_steps=split))
    train(replace(cfg, out=str(tmp_path / "resumed"), resume=True))
    _assert_same_run(_state(tmp_path / "straight"), _state(tmp_path / "resumed"))
    rows = (tmp_path / "resumed" / "metrics.csv").read_text().splitlines()
    assert rows == (tmp_path / "straight" / "metrics.csv").read_text().splitlines()


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    args = [sys.executable, "-m", "dcgan_ref", "train", "--dataset", "synthetic", "--image-size", "32",
            "--ngf", "8", "--ndf", "8", "--batch-size", "16", "--synthetic-size", "256", "--epochs", "3",
            "--device", "cpu", "--log-every", "4", "--no-progress", "--max-steps", "40"]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    subprocess.run([*args, "--out", str(tmp_path / "straight")], check=True, env=env, cwd=ROOT)

    out = tmp_path / "killed"
    proc = subprocess.Popen([*args, "--out", str(out), "--checkpoint-every", "3"], env=env, cwd=ROOT)
    ckpt = out / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if ckpt.exists() and _state(out)["step"] >= 6:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed: make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _state(out)["step"]
    assert 6 <= killed_at < 40
    subprocess.run([*args, "--out", str(out), "--resume"], check=True, env=env, cwd=ROOT)
    _assert_same_run(_state(tmp_path / "straight"), _state(out))
