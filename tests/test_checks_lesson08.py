"""Lesson 08 checks: the reference solutions pass; each named mistake fails with a message naming it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autograder.checks import lesson08
from autograder.checks._core import CheckFailure

# ---------------------------------------------------------------------------------------------
# reference solutions (the same code as in solutions/08_gpu_training)


def pick_device():
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _optimize(loss, opt, scaler):
    if scaler is None:
        loss.backward()
        opt.step()
    else:
        scaler.scale(loss).backward()
        scaler.step(opt)


def make_train_epoch(amp_on_cpu=False, detach=True, g_step=True, z_first=False):
    def train_epoch(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
        use_amp = device.type == "cuda" or amp_on_cpu
        amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        bce = nn.BCEWithLogitsLoss()
        sums = {"loss_D": 0.0, "loss_G": 0.0}
        for real in loader:
            if z_first:
                z = torch.randn(real.shape[0], nz, device=device)
                torch.randn(1)  # a second draw per batch: the noise sequence shifts
            real = real.to(device)
            if not z_first:
                z = torch.randn(real.shape[0], nz, device=device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                fake = G(z)
            opt_D.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                out_real = D(real)
                out_fake = D(fake.detach() if detach else fake)
                loss_D = bce(out_real, torch.ones_like(out_real)) + bce(out_fake, torch.zeros_like(out_fake))
            _optimize(loss_D, opt_D, scaler)
            if g_step:
                opt_G.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    out = D(fake)
                    loss_G = bce(out, torch.ones_like(out))
                _optimize(loss_G, opt_G, scaler)
            else:
                loss_G = torch.zeros(())
            if scaler is not None:
                scaler.update()
            sums["loss_D"] += loss_D.item()
            sums["loss_G"] += loss_G.item()
        return {k: v / len(loader) for k, v in sums.items()}

    return train_epoch


def make_checkpoint(save_opt=True, save_rng=True, params_only=False, return_epoch=True):
    def save_checkpoint(path, G, D, opt_G, opt_D, scaler, epoch):
        def sd(m):
            return {k: v for k, v in m.named_parameters()} if params_only else m.state_dict()

        state = {"G": sd(G), "D": sd(D), "epoch": epoch,
                 "scaler": scaler.state_dict() if scaler is not None else None}
        if save_opt:
            state.update(opt_G=opt_G.state_dict(), opt_D=opt_D.state_dict())
        if save_rng:
            state["rng"] = torch.get_rng_state()
        torch.save(state, path)

    def load_checkpoint(path, G, D, opt_G, opt_D, scaler=None):
        state = torch.load(path, map_location="cpu", weights_only=False)
        G.load_state_dict(state["G"], strict=not params_only)
        D.load_state_dict(state["D"], strict=not params_only)
        if save_opt:
            opt_G.load_state_dict(state["opt_G"])
            opt_D.load_state_dict(state["opt_D"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
        if save_rng:
            torch.set_rng_state(state["rng"])
        return state["epoch"] if return_epoch else None

    return save_checkpoint, load_checkpoint


def test_reference_passes(capsys):
    for hidden in (False, True):
        lesson08.check_pick_device(pick_device, hidden=hidden)
        lesson08.check_train_epoch(make_train_epoch(), hidden=hidden)
        lesson08.check_checkpoint(*make_checkpoint(), hidden=hidden)
    out = capsys.readouterr().out
    assert out.count("\u2714") == 6
    if not torch.cuda.is_available():  # the GPU-only part of the hidden run says it was skipped
        assert "no CUDA GPU here, the mixed-precision path of train_epoch was not run" in out


# ---------------------------------------------------------------------------------------------
# pick_device


def test_pick_device_string_is_named():
    with pytest.raises(CheckFailure, match="returned the string 'cuda'.*torch.device"):
        lesson08.check_pick_device(lambda: "cuda" if torch.cuda.is_available() else "cpu")


def test_pick_device_ignoring_mps_is_named():
    def no_mps():
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    with pytest.raises(CheckFailure, match="expected mps.*torch.backends.mps.is_available"):
        lesson08.check_pick_device(no_mps)


def test_pick_device_wrong_order_is_named():
    def mps_first():
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")

    with pytest.raises(CheckFailure, match="expected cuda: check torch.cuda.is_available\\(\\) first"):
        lesson08.check_pick_device(mps_first)


# ---------------------------------------------------------------------------------------------
# train_epoch


def test_train_epoch_autocast_on_cpu_is_named():
    with pytest.raises(CheckFailure, match="bfloat16 autocast: on the CPU mixed precision must be off"):
        lesson08.check_train_epoch(make_train_epoch(amp_on_cpu=True))


def test_train_epoch_missing_g_step_is_named():
    with pytest.raises(CheckFailure, match="G's parameters never changed.*opt_G.step"):
        lesson08.check_train_epoch(make_train_epoch(g_step=False))


def test_train_epoch_noise_drawn_differently_is_named():
    # an extra random draw per batch shifts the noise sequence: the parameters drift from the reference
    with pytest.raises(CheckFailure, match="differ from dcgan_ref.train.train_step.*one draw per batch"):
        lesson08.check_train_epoch(make_train_epoch(z_first=True))


def test_train_epoch_delegating_is_refused():
    import dcgan_ref.train as ref_train

    def lazy(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
        for real in loader:
            ref_train.train_step(G, D, opt_G, opt_D, real, torch.randn(real.shape[0], nz))
        return {"loss_D": 0.0, "loss_G": 0.0}

    with pytest.raises(CheckFailure, match="dcgan_ref.train.train_step"):
        lesson08.check_train_epoch(lazy)


def test_train_epoch_wrong_return_is_named():
    good = make_train_epoch()

    def last_batch_only(*args, **kwargs):
        out = good(*args, **kwargs)
        return {k: v * 3 for k, v in out.items()}  # summed over 3 batches instead of averaged

    with pytest.raises(CheckFailure, match="mean over the epoch's batches"):
        lesson08.check_train_epoch(last_batch_only)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_epoch_cuda_amp_path():
    lesson08.check_train_epoch(make_train_epoch(), hidden=True)


# ---------------------------------------------------------------------------------------------
# checkpoints


def test_checkpoint_without_optimizer_state_is_named():
    with pytest.raises(CheckFailure, match="no Adam state.*opt_G.state_dict"):
        lesson08.check_checkpoint(*make_checkpoint(save_opt=False))


def test_checkpoint_without_rng_is_named():
    with pytest.raises(CheckFailure, match="torch.get_rng_state"):
        lesson08.check_checkpoint(*make_checkpoint(save_rng=False))


def test_checkpoint_parameters_only_is_named():
    with pytest.raises(CheckFailure, match="BatchNorm buffers"):
        lesson08.check_checkpoint(*make_checkpoint(params_only=True))


def test_checkpoint_epoch_not_returned_is_named():
    with pytest.raises(CheckFailure, match="expected the saved epoch 3"):
        lesson08.check_checkpoint(*make_checkpoint(return_epoch=False))
