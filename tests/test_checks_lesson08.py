"""Lesson 08 checks: the solutions and correct variants pass; each mistake fails with a message naming it.

The GPU half of ``train_epoch`` and ``checkpoint`` is graded on a CPU through recording objects (a
batch that records ``.to(device)``, a hook on G's fakes, a recording GradScaler): each mistake that
would only show on a GPU fails here too.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autograder.checks import lesson08
from autograder.checks._core import CheckFailure

# ---------------------------------------------------------------------------------------------
# the solutions of solutions/08_gpu_training, and variants with one mistake each


def pick_device():
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def make_train_epoch(**bug):
    """The notebook's train_epoch; each keyword builds one mistake (or one correct variant) in."""

    def train_epoch(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
        use_amp = device.type == "cuda" or bug.get("amp_on_cpu", False)
        amp_dtype = bug.get("amp_dtype", torch.float16 if device.type == "cuda" else torch.bfloat16)
        use_scaler = scaler is not None and not bug.get("ignore_scaler")
        bce = nn.BCEWithLogitsLoss()

        def optimize(loss, opt, retain=False):
            if not use_scaler and not bug.get("scaler_always"):
                loss.backward(retain_graph=retain)
                opt.step()
                return
            if bug.get("unscaled_backward"):
                scaler.scale(loss)
                loss.backward(retain_graph=retain)
            else:
                scaler.scale(loss).backward(retain_graph=retain)
            if bug.get("opt_step_direct"):
                opt.step()
            else:
                scaler.step(opt)
            if bug.get("update_each_step"):
                scaler.update()

        sums = {"loss_D": 0.0, "loss_G": 0.0}
        for real in loader:
            if bug.get("z_first"):
                z = torch.randn(real.shape[0], nz, 1, 1, device=device)
                torch.randn(1)  # a second draw per batch: the noise sequence shifts
            if not bug.get("no_move"):
                real = real.to(device)
            if not bug.get("z_first"):
                shape = (real.shape[0], nz) if bug.get("flat_noise") else (real.shape[0], nz, 1, 1)
                z = torch.randn(*shape, device=device)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                fake = G(z)
            if bug.get("zero_grads_first"):
                opt_G.zero_grad(set_to_none=True)
            if bug.get("g_first"):
                opt_G.zero_grad(set_to_none=True)
                loss_G = bce(D(fake), torch.ones(real.shape[0]))
                optimize(loss_G, opt_G, retain=True)
            opt_D.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                if bug.get("cat_batch"):
                    out = D(torch.cat([real, fake.detach()]))
                    out_real, out_fake = out[: len(real)], out[len(real):]
                else:
                    out_real = D(real)
                    out_fake = D(fake if bug.get("no_detach") else fake.detach())
                loss_real = bce(out_real, torch.ones_like(out_real))
                loss_fake = bce(out_fake, torch.zeros_like(out_fake))
                loss_D = loss_real + loss_fake
            if bug.get("separate_backward"):  # pytorch/examples: errD_real.backward(); errD_fake.backward()
                for part in (loss_real, loss_fake):
                    (scaler.scale(part) if use_scaler else part).backward()
                scaler.step(opt_D) if use_scaler else opt_D.step()
            else:
                optimize(loss_D, opt_D, retain=bug.get("no_detach", False))
            if not bug.get("no_g_step") and not bug.get("g_first"):
                if not bug.get("zero_grads_first"):
                    opt_G.zero_grad(set_to_none=True)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                    out = D(fake.detach() if bug.get("g_on_detached") else fake)
                    loss_G = bce(out, torch.ones_like(out))
                optimize(loss_G, opt_G)
            elif bug.get("no_g_step"):
                loss_G = torch.zeros(())
            if use_scaler and not bug.get("no_update") and not bug.get("update_each_step"):
                scaler.update()
            if bug.get("tensor_losses"):
                sums["loss_D"] = sums["loss_D"] + loss_D
                sums["loss_G"] = sums["loss_G"] + loss_G
            else:
                sums["loss_D"] += loss_D.item()
                sums["loss_G"] += loss_G.item()
        if bug.get("summed"):
            return sums
        return {k: v / len(loader) for k, v in sums.items()}

    return train_epoch


def make_checkpoint(**bug):
    def save_checkpoint(path, G, D, opt_G, opt_D, scaler, epoch):
        def sd(m):
            return dict(m.named_parameters()) if bug.get("params_only") else m.state_dict()

        state = {"G": sd(G), "D": sd(D), "epoch": epoch}
        if not bug.get("drop_scaler"):
            state["scaler"] = scaler.state_dict() if (scaler is not None or bug.get("scaler_always")) else None
        if not bug.get("no_opt"):
            state.update(opt_G=opt_G.state_dict(), opt_D=opt_D.state_dict())
        if not bug.get("no_rng"):
            state["rng"] = torch.get_rng_state()
        torch.save(state, str(path) + ".tmp" if bug.get("wrong_path") else path)

    def load_checkpoint(path, G, D, opt_G, opt_D, scaler=None):
        state = torch.load(path, map_location="cpu", weights_only=False)
        G.load_state_dict(state["G"], strict=not bug.get("params_only"))
        D.load_state_dict(state["D"], strict=not bug.get("params_only"))
        if bug.get("fresh_optimizers"):  # new optimizers, local to this function: the caller's stay empty
            opt_G = torch.optim.Adam(G.parameters())
            opt_D = torch.optim.Adam(D.parameters())
        if not bug.get("no_opt"):
            opt_G.load_state_dict(state["opt_G"])
            opt_D.load_state_dict(state["opt_D"])
        if scaler is not None and state.get("scaler") is not None:
            scaler.load_state_dict(state["scaler"])
        if bug.get("reseed"):
            torch.manual_seed(0)
        elif not bug.get("no_rng"):
            torch.set_rng_state(state["rng"])
        if bug.get("epoch_tensor"):
            return torch.tensor(state["epoch"])
        return None if bug.get("no_epoch") else state["epoch"]

    return save_checkpoint, load_checkpoint


def test_solutions_pass(capsys):
    for hidden in (False, True):
        lesson08.check_pick_device(pick_device, hidden=hidden)
        lesson08.check_train_epoch(make_train_epoch(), hidden=hidden)
        lesson08.check_checkpoint(*make_checkpoint(), hidden=hidden)
    out = capsys.readouterr().out
    assert out.count("\u2714") == 6
    if not torch.cuda.is_available():  # the GPU-only part of the hidden run says it was skipped
        assert "no CUDA GPU here: the mixed-precision path was not run" in out


# ---------------------------------------------------------------------------------------------
# pick_device


def test_pick_device_variants_pass():
    def with_getattr():
        if torch.cuda.is_available():
            return torch.device("cuda:0")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")

    lesson08.check_pick_device(with_getattr, hidden=True)


@pytest.mark.parametrize("fn, words", [
    (lambda: "cuda" if torch.cuda.is_available() else "cpu", "returned the string 'cuda'.*torch.device"),
    (lambda: torch.device("cuda" if torch.cuda.is_available() else "cpu"),
     "expected mps.*torch.backends.mps.is_available"),
    (lambda: torch.device("mps") if torch.backends.mps.is_available() else pick_device(),
     "expected cuda: check torch.cuda.is_available\\(\\) first"),
    (lambda: torch.device("cpu"), "expected cuda"),
    (lambda: torch.device("cuda") if torch.cuda.is_available() else torch.device("mps"), "expected cpu: fall back"),
    (lambda: 0 if torch.cuda.is_available() else -1, "should return a torch.device, got int"),
])
def test_pick_device_mistakes_are_named(fn, words):
    with pytest.raises(CheckFailure, match=words):
        lesson08.check_pick_device(fn)


def test_pick_device_reference_and_course_helper_are_refused():
    import dcgan_ref.train as ref_train
    from autograder.notebook import pick_device as helper
    from dcgan_ref.train import pick_device as ref_pick

    with pytest.raises(CheckFailure, match="dcgan_ref.train.pick_device"):
        lesson08.check_pick_device(ref_pick)
    with pytest.raises(CheckFailure, match="dcgan_ref.train.pick_device"):
        lesson08.check_pick_device(lambda: ref_train.pick_device("auto"))
    with pytest.raises(CheckFailure, match="autograder.notebook.pick_device"):
        lesson08.check_pick_device(lambda: helper())
    with pytest.raises(CheckFailure, match="autograder.notebook.pick_device"):
        lesson08.check_pick_device(helper)


def test_pick_device_not_implemented():
    def todo():
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="not implemented yet"):
        lesson08.check_pick_device(todo)


# ---------------------------------------------------------------------------------------------
# train_epoch


@pytest.mark.parametrize("variant", [
    {"flat_noise": True},  # z as (B, nz): the same numbers, the generator accepts both
    {"separate_backward": True},  # pytorch/examples: one backward per half of D's loss
])
def test_train_epoch_correct_variants_pass(variant):
    lesson08.check_train_epoch(make_train_epoch(**variant), hidden=True)


def test_train_epoch_frozen_d_and_sigmoid_bce_pass():
    """Another correct epoch, written differently: BCELoss on probabilities, D frozen in the G step,
    enumerate over the loader, len(loader) for the mean."""

    def train_epoch(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
        bce = nn.BCELoss()
        total_d = total_g = 0.0
        for _i, real in enumerate(loader):
            real = real.to(device, non_blocking=True)
            fake = G(torch.randn(real.size(0), nz, 1, 1, device=device))
            opt_D.zero_grad()
            p_real, p_fake = torch.sigmoid(D(real)), torch.sigmoid(D(fake.detach()))
            loss_d = bce(p_real, torch.ones_like(p_real)) + bce(p_fake, torch.zeros_like(p_fake))
            (scaler.scale(loss_d) if scaler else loss_d).backward()
            scaler.step(opt_D) if scaler else opt_D.step()
            D.requires_grad_(False)
            opt_G.zero_grad()
            p = torch.sigmoid(D(fake))
            loss_g = bce(p, torch.ones_like(p))
            (scaler.scale(loss_g) if scaler else loss_g).backward()
            scaler.step(opt_G) if scaler else opt_G.step()
            D.requires_grad_(True)
            if scaler:
                scaler.update()
            total_d += loss_d.item()
            total_g += loss_g.item()
        return {"loss_D": total_d / len(loader), "loss_G": total_g / len(loader)}

    lesson08.check_train_epoch(train_epoch, hidden=True)


@pytest.mark.parametrize("bug, words", [
    ({"amp_on_cpu": True}, "bfloat16 autocast on the CPU.*enabled=\\(device.type == 'cuda'\\)"),
    ({"amp_on_cpu": True, "amp_dtype": torch.float16}, "float16 autocast on the CPU"),
    ({"no_move": True}, "never moved to the device.*real = real.to\\(device\\)"),
    ({"no_detach": True}, "backpropagated into G's fakes before opt_D.step.*fake.detach\\(\\)"),
    ({"no_detach": True, "zero_grads_first": True}, "fake.detach\\(\\)"),
    ({"g_on_detached": True}, "no gradient reached G's fakes in the G step"),
    ({"no_g_step": True}, "opt_G.step\\(\\) 0 time"),
    ({"g_first": True}, "G was updated before D"),
    ({"ignore_scaler": True}, "GradScaler was passed in, but opt_D.step\\(\\) was called directly"),
    ({"opt_step_direct": True}, "opt_D.step\\(\\) was called directly.*scaler.step\\(opt_D\\)"),
    ({"unscaled_backward": True}, "went backward unscaled: scaler.scale\\(loss\\).backward\\(\\)"),
    ({"no_update": True}, "scaler.update\\(\\) ran 0 time"),
    ({"update_each_step": True}, "scaler.update\\(\\) ran 2 time"),
    ({"scaler_always": True}, "NoneType.*scaler=None use plain"),
    ({"cat_batch": True}, "differ from dcgan_ref.train.train_step.*two passes"),
    ({"z_first": True}, "differ from dcgan_ref.train.train_step.*one draw per batch"),
    ({"summed": True}, "mean over the epoch's batches"),
    ({"tensor_losses": True}, "loss_D as a tensor: return a float"),
])
def test_train_epoch_mistakes_are_named(bug, words):
    with pytest.raises(CheckFailure, match=words):
        lesson08.check_train_epoch(make_train_epoch(**bug))


def test_train_epoch_update_before_g_step_is_named():
    good = make_train_epoch()

    def early_update(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
        if scaler is None:
            return good(G, D, opt_G, opt_D, loader, nz, device, None)
        update = scaler.update
        calls = []

        def step(opt, *a, **k):  # update right after D's step instead of after G's
            out = type(scaler).step(scaler, opt, *a, **k)
            if opt is opt_D:
                update()
            calls.append(opt)
            return out

        scaler.step, scaler.update = step, lambda *a: None
        return good(G, D, opt_G, opt_D, loader, nz, device, scaler)

    with pytest.raises(CheckFailure, match="scaler.update\\(\\) ran before the G step"):
        lesson08.check_train_epoch(early_update)


def test_train_epoch_reference_is_refused():
    import dcgan_ref.train as ref_train
    from dcgan_ref.train import train_step

    def lazy(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
        for real in loader:
            ref_train.train_step(G, D, opt_G, opt_D, real.to(device), torch.randn(real.shape[0], nz), scaler=scaler)
        return {"loss_D": 0.0, "loss_G": 0.0}

    def imported(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
        logs = [train_step(G, D, opt_G, opt_D, r.to(device), torch.randn(r.shape[0], nz), scaler=scaler)
                for r in loader]
        return {k: sum(float(x[k]) for x in logs) / len(logs) for k in ("loss_D", "loss_G")}

    for fn in (lazy, imported):
        with pytest.raises(CheckFailure, match="dcgan_ref.train.train_step"):
            lesson08.check_train_epoch(fn)


def test_train_epoch_dataloader_pairs_are_named():
    good = make_train_epoch()

    def pairs(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
        for _real, _ in loader:  # a DataLoader habit: (images, labels)
            pass
        return good(G, D, opt_G, opt_D, loader, nz, device, scaler)

    with pytest.raises(CheckFailure, match="not \\(images, labels\\) pairs"):
        lesson08.check_train_epoch(pairs)


def test_train_epoch_not_implemented():
    def todo(*args, **kwargs):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="not implemented yet"):
        lesson08.check_train_epoch(todo)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_epoch_cuda_amp_path(capsys):
    lesson08.check_train_epoch(make_train_epoch(), hidden=True)
    assert "under CUDA autocast" in capsys.readouterr().out


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_epoch_cuda_without_autocast_is_named():
    plain = make_train_epoch(amp_dtype=torch.float32)

    def fp32_everywhere(G, D, opt_G, opt_D, loader, nz, device, scaler=None):
        with torch.autocast("cuda", enabled=False):
            return plain(G, D, opt_G, opt_D, loader, nz, device, scaler)

    with pytest.raises(CheckFailure, match="on CUDA, G or D ran without autocast"):
        lesson08.check_train_epoch(fp32_everywhere, hidden=True)


# ---------------------------------------------------------------------------------------------
# checkpoints


@pytest.mark.parametrize("bug, words", [
    ({"no_opt": True}, "no Adam state.*opt_G.state_dict"),
    ({"fresh_optimizers": True}, "no Adam state.*on the optimizer passed in"),
    ({"no_rng": True}, "torch.get_rng_state"),
    ({"reseed": True}, "random number generator is not where it was"),
    ({"params_only": True}, "BatchNorm buffers.*state_dict\\(\\), not only its parameters"),
    ({"no_epoch": True}, "returned None .*expected the saved epoch 3"),
    ({"epoch_tensor": True}, "returned tensor\\(3\\) \\(Tensor\\), expected the saved epoch 3 \\(an int\\)"),
    ({"drop_scaler": True}, "scaler's state is .*scaler.state_dict\\(\\).*65536"),
    ({"scaler_always": True}, "NoneType.*save None for it"),
    ({"wrong_path": True}, "wrote nothing at the path"),
])
def test_checkpoint_mistakes_are_named(bug, words):
    with pytest.raises(CheckFailure, match=words):
        lesson08.check_checkpoint(*make_checkpoint(**bug))


def test_checkpoint_with_examples_style_files_passes():
    """A different layout: one file, nested dicts, the RNG under another key, str paths."""

    def save(path, G, D, opt_G, opt_D, scaler, epoch):
        torch.save({"models": {"g": G.state_dict(), "d": D.state_dict()},
                    "optim": [opt_G.state_dict(), opt_D.state_dict()],
                    "amp": None if scaler is None else scaler.state_dict(),
                    "meta": {"epoch": int(epoch), "torch_rng": torch.get_rng_state()}}, str(path))

    def load(path, G, D, opt_G, opt_D, scaler=None):
        ck = torch.load(str(path), weights_only=True)
        G.load_state_dict(ck["models"]["g"])
        D.load_state_dict(ck["models"]["d"])
        for opt, sd in zip((opt_G, opt_D), ck["optim"], strict=True):
            opt.load_state_dict(sd)
        if scaler is not None:
            scaler.load_state_dict(ck["amp"])
        torch.set_rng_state(ck["meta"]["torch_rng"])
        return ck["meta"]["epoch"]

    lesson08.check_checkpoint(save, load, hidden=True)


def test_checkpoint_swapped_optimizers_fail():
    save, _ = make_checkpoint()

    def load(path, G, D, opt_G, opt_D, scaler=None):
        state = torch.load(path, weights_only=False)
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_G.load_state_dict(state["opt_D"])
        opt_D.load_state_dict(state["opt_G"])
        if scaler is not None:
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        return state["epoch"]

    with pytest.raises(CheckFailure, match="load_checkpoint"):
        lesson08.check_checkpoint(save, load)


def test_checkpoint_reference_is_refused():
    import dcgan_ref.checkpoint as ref_ckpt

    def save(path, G, D, opt_G, opt_D, scaler, epoch):
        ref_ckpt.save_checkpoint(path, G, D, opt_G, opt_D, scaler, epoch=epoch)

    _, load = make_checkpoint()
    with pytest.raises(CheckFailure, match="dcgan_ref.checkpoint"):
        lesson08.check_checkpoint(save, load)

    good_save, _ = make_checkpoint()

    def ref_load(path, G, D, opt_G, opt_D, scaler=None):  # the reference's file reader, then by hand
        state = ref_ckpt.load_file(path)
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_G.load_state_dict(state["opt_G"])
        opt_D.load_state_dict(state["opt_D"])
        if scaler is not None:
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        return state["epoch"]

    with pytest.raises(CheckFailure, match="dcgan_ref.checkpoint"):
        lesson08.check_checkpoint(good_save, ref_load)


# ---------------------------------------------------------------------------------------------
# judged from behaviour (issues 20, 21)

_KEPT: dict = {}


def _in_memory_checkpoint():
    """Writes a file (so 'written' holds) but keeps the state in this process and loads from there."""
    save, load = make_checkpoint()

    def save_checkpoint(path, G, D, opt_G, opt_D, scaler, epoch):
        save(path, G, D, opt_G, opt_D, scaler, epoch)
        _KEPT["last"] = torch.load(path, weights_only=False)

    def load_checkpoint(path, G, D, opt_G, opt_D, scaler=None):
        torch.load(path, weights_only=False)  # reads the file, then ignores it
        state = _KEPT["last"]
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_G.load_state_dict(state["opt_G"])
        opt_D.load_state_dict(state["opt_D"])
        if scaler is not None:
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        return state["epoch"]

    return save_checkpoint, load_checkpoint


def test_checkpoint_kept_in_memory_fails():
    with pytest.raises(CheckFailure, match="another run's state.*new process"):
        lesson08.check_checkpoint(*_in_memory_checkpoint())


def test_checkpoint_keyed_by_an_id_in_the_file_fails():
    """The file holds only a key into a dict the process keeps: loading needs the same process."""
    kept: dict = {}

    def save(path, G, D, opt_G, opt_D, scaler, epoch):
        key = len(kept)
        kept[key] = {"G": G.state_dict(), "D": D.state_dict(), "opt_G": opt_G.state_dict(), "opt_D": opt_D.state_dict(),
                     "scaler": None if scaler is None else scaler.state_dict(), "rng": torch.get_rng_state(),
                     "epoch": epoch}
        kept[key] = torch.load(_roundtrip(kept[key]), weights_only=False)
        torch.save({"key": key}, path)

    def load(path, G, D, opt_G, opt_D, scaler=None):
        state = kept[torch.load(path)["key"]]
        G.load_state_dict(state["G"])
        D.load_state_dict(state["D"])
        opt_G.load_state_dict(state["opt_G"])
        opt_D.load_state_dict(state["opt_D"])
        if scaler is not None:
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        return state["epoch"]

    with pytest.raises(CheckFailure, match="does not hold"):
        lesson08.check_checkpoint(save, load)


def _roundtrip(obj):
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return buf


def test_checkpoint_judged_on_one_side_whatever_the_threads(monkeypatch):
    """The judge rebuilds the run with other thread settings than the probe: still full marks (issue 21)."""
    save, load = make_checkpoint()
    ex = lesson08.check_checkpoint.exercise
    cases = ex.cases(False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        data = ex.run_probe([save, load], cases)
    finally:
        torch.set_num_threads(threads)
    assert "resumed run" in ex.judge(cases, data)


def _replayer(answers):
    calls = iter(answers)

    def pick_device():
        return torch.device(next(calls, "cpu"))

    return pick_device


def test_pick_device_replaying_a_seen_call_order_fails(monkeypatch):
    """An answer that learned the call order the check used (with one secret) is graded with another."""
    from autograder.checks import _secret

    seen = []

    def recorder():
        device = pick_device()
        seen.append(device.type)
        return device

    monkeypatch.setenv("AUTOGRADER_SECRET", "the secret the student saw")
    _secret.reset()
    try:
        lesson08.check_pick_device(recorder, hidden=True)
        lesson08.check_pick_device(_replayer(list(seen)), hidden=True)  # same secret: the replay works
        monkeypatch.setenv("AUTOGRADER_SECRET", "the instructor's secret")
        _secret.reset()
        with pytest.raises(CheckFailure, match="pick_device\\(\\) returned"):
            lesson08.check_pick_device(_replayer(list(seen)), hidden=True)
        lesson08.check_pick_device(pick_device, hidden=True)  # the honest answer, any order
    finally:
        _secret.reset()
