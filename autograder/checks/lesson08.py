"""Checks for lesson 08: picking the device, a mixed-precision training epoch, exact resumption.

- ``pick_device``: CUDA, then Apple's MPS, then the CPU, with the availability functions patched
  so every branch is exercised on any machine.
- ``train_epoch``: on the CPU it must apply exactly ``dcgan_ref.train.train_step`` batch by
  batch (same parameters afterwards, same mean losses); autocast must be off there. On a CUDA
  machine the hidden run also trains with fp16 autocast and a GradScaler and compares loosely.
- ``save_checkpoint`` / ``load_checkpoint``: a run saved, disturbed (fresh weights, RNG drawn
  from) and restored must continue *bit for bit* like the run that never stopped.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

import dcgan_ref.train as ref_train
from dcgan_ref.models import Discriminator, Generator, weights_init

from ._core import call, expect, fail, forbid, passed, seeded, student_globals

# --------------------------------------------------------------------------- pick_device


def _patched_availability(cuda: bool, mps: bool) -> list[tuple[Any, str, Any]]:
    saved = [(torch.cuda, "is_available", torch.cuda.is_available)]
    torch.cuda.is_available = lambda: cuda  # type: ignore[assignment]
    mps_mod = getattr(torch.backends, "mps", None)
    if mps_mod is not None:
        saved.append((mps_mod, "is_available", mps_mod.is_available))
        mps_mod.is_available = lambda: mps  # type: ignore[assignment]
    return saved


def check_pick_device(fn: Any, hidden: bool = False) -> None:
    """``pick_device() -> torch.device``: cuda if available, else mps, else cpu."""
    cases = [((True, True), "cuda"), ((False, True), "mps"), ((False, False), "cpu")]
    if hidden:
        cases.append(((True, False), "cuda"))
    for (cuda, mps), want in cases:
        saved = _patched_availability(cuda, mps)
        try:
            got = call(fn, what="pick_device")
        finally:
            for owner, attr, value in saved:
                setattr(owner, attr, value)
        situation = (f"with CUDA {'available' if cuda else 'unavailable'} "
                     f"and MPS {'available' if mps else 'unavailable'}")
        if isinstance(got, str):
            fail(f"pick_device() returned the string {got!r} {situation}: return torch.device({got!r}).")
        expect(isinstance(got, torch.device), f"pick_device() should return a torch.device, got {type(got).__name__}.")
        if got.type != want:
            hint = {
                "cuda": "check torch.cuda.is_available() first: a GPU beats everything else",
                "mps": "after CUDA, try Apple's GPU: torch.backends.mps.is_available()",
                "cpu": "fall back to the CPU when neither GPU is there",
            }[want]
            fail(f"pick_device() returned {got} {situation}, expected {want}: {hint}.")
    real = call(fn, what="pick_device")
    ref = ref_train.pick_device("auto")
    expect(real.type == ref.type, f"on this machine pick_device() returned {real}, dcgan_ref picks {ref}.")
    passed(f"pick_device prefers cuda > mps > cpu (here: {real})")


# --------------------------------------------------------------------------- train_epoch

NZ = 16
# Same float32 operations in the same order on the CPU: parameters agree to rounding. The margin
# covers a different but equivalent order (e.g. two D forward passes instead of one cat batch:
# BatchNorm would then differ by far more than this, which is the point).
RTOL, ATOL = 1e-4, 1e-5


def _models(seed: int) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    G = Generator(nz=NZ, ngf=8, nc=3, image_size=32)
    G.apply(weights_init)
    D = Discriminator(nc=3, ndf=8, image_size=32)
    D.apply(weights_init)
    return G, D


def _loader(seed: int, batches: int, batch_size: int = 8) -> list[torch.Tensor]:
    g = seeded(seed)
    return [torch.rand(batch_size, 3, 32, 32, generator=g) * 2 - 1 for _ in range(batches)]


def _reference_epoch(G: nn.Module, D: nn.Module, opt_G: Any, opt_D: Any, loader: list[torch.Tensor],
                     device: torch.device, amp_dtype: torch.dtype | None = None,
                     scaler: Any = None) -> dict[str, float]:  # fmt: skip
    sums = {"loss_D": 0.0, "loss_G": 0.0}
    for real in loader:
        real = real.to(device)
        z = torch.randn(real.shape[0], NZ, device=device)
        logs = ref_train.train_step(G, D, opt_G, opt_D, real, z, amp_dtype=amp_dtype, scaler=scaler)
        for k in sums:
            sums[k] += float(logs[k])
    return {k: v / len(loader) for k, v in sums.items()}


def _first_difference(a: nn.Module, b: nn.Module, rtol: float, atol: float) -> str | None:
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        if pa.dtype.is_floating_point and not torch.allclose(pa.float(), pb.float(), rtol=rtol, atol=atol):
            return f"{name} (max abs difference {(pa.float() - pb.float()).abs().max():.3g})"
        if not pa.dtype.is_floating_point and not torch.equal(pa, pb):
            return f"{name} ({pa.tolist()} vs {pb.tolist()})"
    return None


def _run_student_epoch(fn: Any, seed: int, batches: int, device: torch.device, scaler: Any = None,
                       ) -> tuple[nn.Module, nn.Module, Any]:  # fmt: skip
    G, D = (m.to(device) for m in _models(seed))
    opt_G, opt_D = ref_train.make_optimizers(G, D)
    loader = _loader(seed + 1, batches)
    torch.manual_seed(seed + 2)
    forbidden = {
        "dcgan_ref.train.train_step": (ref_train, "train_step"),
        "dcgan_ref.train.discriminator_step": (ref_train, "discriminator_step"),
        "dcgan_ref.train.generator_step": (ref_train, "generator_step"),
    }
    with forbid(forbidden, "train_epoch", "Write the D step and the G step yourself (lesson 07), "
                "inside autocast, with the scaler.", student_globals(fn)):  # fmt: skip
        out = call(fn, G, D, opt_G, opt_D, loader, NZ, device, scaler, what="train_epoch")
    return (G, D, out)


def check_train_epoch(fn: Any, hidden: bool = False) -> None:
    """``train_epoch(G, D, opt_G, opt_D, loader, nz, device, scaler=None) -> {'loss_D', 'loss_G'}``."""
    cpu = torch.device("cpu")
    for seed, batches in [(0, 3)] + ([(10, 1), (20, 2)] if hidden else []):
        G, D, out = _run_student_epoch(fn, seed, batches, cpu)
        rG, rD = _models(seed)
        ropt_G, ropt_D = ref_train.make_optimizers(rG, rD)
        loader = _loader(seed + 1, batches)
        torch.manual_seed(seed + 2)
        ref = _reference_epoch(rG, rD, ropt_G, ropt_D, loader, cpu)

        where = f"after one epoch of {batches} batches on the CPU"
        for net, mine, untouched in (("G", G, _models(seed)[0]), ("D", D, _models(seed)[1])):
            if all(torch.equal(a, b) for a, b in zip(mine.parameters(), untouched.parameters(), strict=True)):
                fail(f"{where}, {net}'s parameters never changed: is opt_{net}.step() called every batch?")
        for net, mine, theirs in (("D", D, rD), ("G", G, rG)):
            diff = _first_difference(mine, theirs, RTOL, atol=ATOL)
            if diff is None:
                continue
            # CPU autocast runs in bfloat16: the same loop with autocast on gives these numbers
            bG, bD = _models(seed)
            bopt_G, bopt_D = ref_train.make_optimizers(bG, bD)
            torch.manual_seed(seed + 2)
            _reference_epoch(bG, bD, bopt_G, bopt_D, loader, cpu, amp_dtype=torch.bfloat16)
            if _first_difference(mine, bG if net == "G" else bD, 1e-3, 1e-4) is None:
                fail(f"{where}, {net}'s parameters match a run under bfloat16 autocast: on the CPU mixed "
                     "precision must be off. Use torch.autocast('cuda', dtype=torch.float16, "
                     "enabled=(device.type == 'cuda')).")  # fmt: skip
            fail(
                f"{where}, {net}'s parameters differ from dcgan_ref.train.train_step applied batch by batch, "
                f"first at {diff}. Per batch: real to the device, z = torch.randn(batch, nz, device=device) "
                "(one draw per batch, after moving real), fake = G(z); D step on real (target 1) and "
                "fake.detach() (target 0) with BCE-with-logits; then G step on D(fake) with target 1."
            )
        expect(isinstance(out, dict) and {"loss_D", "loss_G"} <= set(out),
               f"train_epoch should return a dict with 'loss_D' and 'loss_G', got {out!r}.")  # fmt: skip
        for k in ("loss_D", "loss_G"):
            got = float(out[k])
            expect(abs(got - ref[k]) <= 1e-4 * max(1.0, abs(ref[k])),
                   f"train_epoch returned {k} = {got:.6g}, expected the mean over the epoch's batches "
                   f"{ref[k]:.6g}: add loss.item() for each batch and divide by the number of batches.")  # fmt: skip

    if hidden and torch.cuda.is_available():
        _check_cuda_amp(fn)
    elif hidden:
        print("note: no CUDA GPU here, the mixed-precision path of train_epoch was not run.")
    passed("train_epoch matches dcgan_ref.train.train_step batch by batch on the CPU")


def _check_cuda_amp(fn: Any) -> None:
    """On a GPU: fp16 autocast + GradScaler. Loose comparison: fp16 rounding and nondeterministic kernels."""
    dev = torch.device("cuda")
    scaler = torch.amp.GradScaler("cuda")
    G, D, out = _run_student_epoch(fn, 30, 3, dev, scaler)
    expect(all(torch.isfinite(p).all() for p in [*G.parameters(), *D.parameters()]),
           "after a CUDA epoch with autocast some parameters are NaN/inf: is the scaler used for every "
           "backward (scaler.scale(loss).backward(), scaler.step(opt), scaler.update())?")  # fmt: skip
    expect(scaler._scale is not None, "the GradScaler passed in was never used: scale the losses with it.")
    rG, rD = (m.to(dev) for m in _models(30))
    ropt_G, ropt_D = ref_train.make_optimizers(rG, rD)
    torch.manual_seed(32)
    ref = _reference_epoch(rG, rD, ropt_G, ropt_D, _loader(31, 3), dev, torch.float16, torch.amp.GradScaler("cuda"))
    for k in ("loss_D", "loss_G"):
        # fp16 activations: ~1e-3 relative per op; three batches of a tiny net stay within 5 %
        expect(abs(float(out[k]) - ref[k]) <= 0.05 * max(1.0, abs(ref[k])),
               f"on CUDA with fp16 autocast train_epoch gave {k} = {float(out[k]):.4g}, "
               f"dcgan_ref {ref[k]:.4g}.")  # fmt: skip


# --------------------------------------------------------------------------- checkpoints


def check_checkpoint(save_fn: Any, load_fn: Any, hidden: bool = False) -> None:
    """save_checkpoint(path, G, D, opt_G, opt_D, scaler, epoch) / load_checkpoint(...) -> epoch:
    training continued after a save/load round trip equals training that never stopped."""
    cpu = torch.device("cpu")
    for seed, epoch in [(40, 3)] + ([(50, 7)] if hidden else []):
        # a run trained for one epoch: Adam has moments, BatchNorm has running statistics
        G, D = _models(seed)
        opt_G, opt_D = ref_train.make_optimizers(G, D)
        torch.manual_seed(seed + 1)
        _reference_epoch(G, D, opt_G, opt_D, _loader(seed + 2, 2), cpu)

        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "ckpt.pt"
            call(save_fn, path, G, D, opt_G, opt_D, None, epoch, what="save_checkpoint")
            expect(path.is_file(), f"save_checkpoint did not write {path}: torch.save(state, path).")
            # the uninterrupted run goes on from here
            uG, uD, uoG, uoD = copy.deepcopy((G, D, opt_G, opt_D))
            rng = torch.get_rng_state()
            _reference_epoch(uG, uD, uoG, uoD, _loader(seed + 3, 2), cpu)
            # the interrupted one: a new process with fresh models, whose RNG has moved on
            torch.set_rng_state(rng)
            torch.randn(1000)
            rG, rD = _models(seed + 100)
            ropt_G, ropt_D = ref_train.make_optimizers(rG, rD)
            got_epoch = call(load_fn, path, rG, rD, ropt_G, ropt_D, None, what="load_checkpoint")
            after_load_rng = torch.get_rng_state()
            state = torch.load(path, map_location="cpu", weights_only=False)

        expect(got_epoch == epoch, f"load_checkpoint returned {got_epoch!r}, expected the saved epoch {epoch}.")
        for net, mine, orig in (("G", rG, G), ("D", rD, D)):
            diff = _first_difference(mine, orig, 0, 0)
            if diff is not None:
                fail(f"after load_checkpoint, {net}'s state differs from the saved one at {diff}: save "
                     f"{net}.state_dict() (parameters *and* BatchNorm buffers) and load it with "
                     "load_state_dict.")  # fmt: skip
        for name, mine, orig in (("opt_G", ropt_G, opt_G), ("opt_D", ropt_D, opt_D)):
            if not mine.state or len(mine.state) != len(orig.state):
                fail(f"after load_checkpoint, {name} has no Adam state (step counts, moment estimates): save "
                     f"{name}.state_dict() and restore it with {name}.load_state_dict(...), or the first "
                     "steps after resuming use fresh moments and the run changes course.")  # fmt: skip
        if not torch.equal(after_load_rng, rng):
            fail("after load_checkpoint the random number generator is not where it was at the save, so the "
                 "resumed run draws different noise: save torch.get_rng_state() and restore it with "
                 "torch.set_rng_state(...).")  # fmt: skip
        expect(isinstance(state, dict), "the checkpoint file should hold a dict (one entry per object).")

        _reference_epoch(rG, rD, ropt_G, ropt_D, _loader(seed + 3, 2), cpu)
        for net, mine, theirs in (("G", rG, uG), ("D", rD, uD)):
            # CPU, same ops, same inputs, same state: identical to the bit, no tolerance needed
            diff = _first_difference(mine, theirs, 0, 0)
            if diff is not None:
                fail(f"one epoch after resuming, {net} differs from the run that never stopped at {diff}: "
                     "something in the training state is not saved or not restored.")
    passed("a resumed run continues exactly like the uninterrupted one")
