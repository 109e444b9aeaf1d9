"""The speed knobs of dcgan_ref.train change how fast a step runs, never what it computes.

Each test trains a few steps from the same seed twice, once on the plain path (DataLoader over
PIL transforms, fp32, eager, contiguous, for-each Adam) and once with one knob on, and compares
the per-step losses and D outputs. Small nets (ngf = ndf = 16, 32x32) keep this to seconds.

Why tolerances and not equality: a knob that changes the order of floating-point operations
(channels_last convolutions, the fused Adam kernel) changes the result in the last bits, and
Adam's first steps amplify that (its update is about lr * sign(g), so a near-zero gradient that
flips sign moves a weight by a full lr). So step 0 (before any update) is held to a tight
tolerance and later steps to a looser one; both sit under the size of a real mistake: label
smoothing 0.1 applied by accident moves the losses by ~3e-2, BatchNorm over the wrong batch by ~1e-2.
"""

from __future__ import annotations

import pytest
import torch

from dcgan_ref.data import SyntheticShapes, gpu_batch_transform, uint8_images
from dcgan_ref.models import Discriminator, Generator, SigmoidDiscriminator, weights_init
from dcgan_ref.train import TrainConfig, make_optimizers, run_step, setup, train_step

STEPS = 3
KEYS = ("loss_D", "loss_G", "D_x", "D_G_z1", "D_G_z2")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

PLAIN = dict(
    amp="off", data_on_device=False, channels_last=False, compile=False, fused_adam=False, cudnn_benchmark=False
)


@pytest.fixture(scope="module")
def shapes32() -> SyntheticShapes:
    return SyntheticShapes(n=64, image_size=32, seed=0)


def small_config(**knobs) -> TrainConfig:
    base = dict(
        dataset="synthetic", image_size=32, ngf=16, ndf=16, batch_size=16, seed=3, num_workers=0,
        device="cpu", progress=False, **PLAIN,
    )  # fmt: skip
    base.update(knobs)
    return TrainConfig(**base)


def losses_of(cfg: TrainConfig, dataset, steps: int = STEPS) -> list[dict[str, float]]:
    """Per-step logs of the first ``steps`` training steps of ``cfg`` (read back after the run)."""
    run = setup(cfg, dataset=dataset, device=torch.device(cfg.device))
    logs = []
    step, epoch = 0, 0
    while step < steps:
        for real in run.batches.epoch(epoch):
            if step == steps:
                break
            logs.append({k: v.clone() for k, v in run_step(run, real, step).items()})
            step += 1
        epoch += 1
    return [{k: float(v[k]) for k in KEYS} for v in logs]


def assert_same_losses(fast, plain, atol: float, what: str, atol_first: float | None = None) -> None:
    """Per-step logs agree within ``atol`` (``atol_first`` for step 0, before any update)."""
    for step, (f, p) in enumerate(zip(fast, plain, strict=True)):
        tol = atol_first if step == 0 and atol_first is not None else atol
        for k in KEYS:
            assert abs(f[k] - p[k]) <= tol, (
                f"{what}: step {step} {k} = {f[k]:.6f}, plain path gives {p[k]:.6f} "
                f"(|diff| {abs(f[k] - p[k]):.2e} > {tol:g}): the fast path computes something else"
            )


@pytest.fixture(scope="module")
def plain32(shapes32) -> list[dict[str, float]]:
    return losses_of(small_config(), shapes32)


def test_plain_path_is_deterministic(shapes32, plain32):
    # Same seed, same device, same path: bit-identical (else no tolerance below means anything).
    assert losses_of(small_config(), shapes32) == plain32


def test_data_on_device_same_batches_and_losses_at_native_size(shapes32, plain32):
    # At 32x32 nothing is resized: ToTensor + Normalize and the tensor transform do the same
    # arithmetic (x / 255, then (x - 0.5) / 0.5), so batches and losses agree to float rounding.
    cfg = small_config()
    loader_batches = setup(cfg, dataset=shapes32).batches.epoch(0)
    tensor_batches = setup(small_config(data_on_device=True), dataset=shapes32).batches.epoch(0)
    for a, b in zip(loader_batches, tensor_batches, strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    assert_same_losses(losses_of(small_config(data_on_device=True), shapes32), plain32, 1e-5, "data_on_device")


def test_device_resize_matches_pil_resize_to_rounding():
    # At 64x64 the canonical path resizes with PIL on uint8, the fast path bilinearly on float:
    # same filter, same pixel centres. PIL resizes in two passes (rows, then columns) and rounds
    # to uint8 after each, so they differ by at most one grey level (1/255 in [0, 1], 2/255 in
    # [-1, 1]) and by about a third of one on average. A different filter or pixel alignment
    # (nearest, bicubic, align_corners=True) is off by 60+ levels somewhere and ~2 on average.
    ds = SyntheticShapes(n=32, image_size=64, seed=1)
    pil = torch.stack([ds[i][0] for i in range(len(ds))])
    fast = gpu_batch_transform(uint8_images(ds), 64)
    assert fast.shape == pil.shape == (32, 3, 64, 64)
    levels = (fast - pil).abs() * 255 / 2  # the difference in grey levels
    assert levels.max() <= 1 + 1e-3, f"device resize differs from PIL's by {levels.max():.2f} grey levels (> 1)"
    assert levels.mean() <= 0.5, f"device resize differs from PIL's by {levels.mean():.2f} levels on average"


def test_fused_adam_same_losses(shapes32, plain32):
    # Fused and for-each Adam do the same update with different kernels: rounding-level changes.
    assert_same_losses(losses_of(small_config(fused_adam=True), shapes32), plain32, 1e-4, "fused_adam")


def test_channels_last_same_losses(shapes32, plain32):
    # Other convolution kernels, other summation order: rounding-level at step 0 (~2e-7 measured),
    # grown by Adam's sign-like first updates afterwards (~5e-4 measured at step 2).
    fast = losses_of(small_config(channels_last=True), shapes32)
    assert_same_losses(fast, plain32, 3e-3, "channels_last", atol_first=1e-5)


def test_bf16_autocast_same_losses(shapes32, plain32):
    # bf16 keeps 8 bits of mantissa (relative error ~ 2^-9 per rounding, accumulated over the
    # conv layers; losses are computed in fp32): ~1e-3 measured on losses of ~1.4 and D outputs
    # of ~0.5. 5e-3 / 1e-2 leave room for that and still catch label smoothing by accident (3e-2).
    fast = losses_of(small_config(amp="bf16"), shapes32)
    assert_same_losses(fast, plain32, 1e-2, "bf16 autocast", atol_first=5e-3)


def test_logits_loss_equals_probability_loss():
    # The trainer's D returns logits and uses BCEWithLogits; the classic one returns sigmoid
    # probabilities with BCELoss. Same weights, same batch: the same step up to rounding.
    torch.manual_seed(0)
    G = Generator(nz=8, ngf=8, image_size=32)
    G.apply(weights_init)
    D_logits = Discriminator(ndf=8, image_size=32)
    D_logits.apply(weights_init)
    D_probs = SigmoidDiscriminator(ndf=8, image_size=32)
    D_probs.load_state_dict(D_logits.state_dict())
    G2 = Generator(nz=8, ngf=8, image_size=32)
    G2.load_state_dict(G.state_dict())
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    z = torch.randn(8, 8)
    logs = []
    for g, d in ((G, D_logits), (G2, D_probs)):
        opt_G, opt_D = make_optimizers(g, d)
        logs.append([train_step(g, d, opt_G, opt_D, real, z, label_smoothing=0.1) for _ in range(2)])
    for step, (a, b) in enumerate(zip(*logs, strict=True)):
        for k in KEYS:
            assert abs(float(a[k]) - float(b[k])) <= 1e-5, (
                f"step {step} {k}: logits path {float(a[k]):.6f} vs probability path {float(b[k]):.6f}"
            )


@pytest.mark.slow
def test_compile_same_losses_and_plain_state_dict(shapes32):
    # torch.compile (Inductor's C++ kernels on the CPU; ~30 s of compiling on 2 cores): D is
    # compiled twice, with and without weight gradients (the G step freezes it), and neither
    # may change the numbers or what is saved: checkpoints hold the raw modules' state_dicts.
    from torch._dynamo.utils import counters

    counters.clear()
    cfg = small_config(compile=True)
    epoch = len(shapes32) // cfg.batch_size  # 4 steps
    fast = losses_of(cfg, shapes32, steps=epoch)
    assert len(fast) == epoch
    assert_same_losses(fast, losses_of(small_config(), shapes32, steps=epoch), 3e-3, "torch.compile", atol_first=1e-4)
    graphs = counters["stats"]["unique_graphs"]
    assert graphs <= 3, f"{graphs} graphs compiled in {epoch} steps (G, D, frozen D expected): something recompiles"
    run = setup(cfg, dataset=shapes32)
    assert run.G_step is not run.G and hasattr(run.G_step, "_orig_mod"), "compile=True did not compile G"
    assert not any("_orig_mod" in k for k in run.G.state_dict()), "saved G must be the raw module"


def test_unknown_compile_mode_is_refused():
    with pytest.raises(ValueError, match="compile_mode must be one of"):
        setup(small_config(compile=True, compile_mode="fastest"), dataset=SyntheticShapes(n=16, image_size=32))


def test_cpu_defaults_are_plain_fp32_eager_without_bf16_units(monkeypatch):
    # CPUs without AMX bf16 units stay plain fp32 eager by default: they emulate bf16 (~21x slower
    # per step measured on this project's AVX2 EPYC) and compile gives nothing there. With AMX the
    # default is bf16 + channels_last (test_trainer_features). Data held as one tensor either way.
    from dcgan_ref import speed
    from dcgan_ref.train import resolve_speed

    monkeypatch.setattr(speed, "cpu_has_bf16_units", lambda: False)
    s = resolve_speed(TrainConfig(), torch.device("cpu"))
    assert (s.amp_dtype, s.channels_last, s.compile, s.fused_adam, s.cudnn_benchmark) == (
        None,
        False,
        False,
        False,
        False,
    )
    assert s.data_on_device is True


@pytest.mark.parametrize(
    ("capability", "expected"),
    [((9, 0), torch.bfloat16), ((8, 0), torch.bfloat16), ((7, 5), torch.float16), ((7, 0), torch.float16),
     ((6, 1), None)],
)  # fmt: skip
def test_cuda_amp_default_follows_the_tensor_cores(monkeypatch, capability, expected):
    # H100 / A100: bf16. Colab's free T4 (7.5) and V100 (7.0) have fp16 tensor cores but no bf16
    # ones; torch.cuda.is_bf16_supported() still says True there (emulation), which would pick a
    # slow path on the GPU most students get. Resolving needs no GPU: only its capability.
    from dcgan_ref.train import resolve_speed

    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    speed = resolve_speed(TrainConfig(), torch.device("cuda"))
    assert speed.amp_dtype == expected, f"compute capability {capability}: auto picked {speed.amp_dtype}"
    assert resolve_speed(TrainConfig(amp="off"), torch.device("cuda")).amp_dtype is None


# --- GPU only --------------------------------------------------------------------------------


@pytest.mark.gpu
@needs_cuda
def test_cuda_defaults_turn_the_fast_path_on():
    from dcgan_ref.train import resolve_speed

    s = resolve_speed(TrainConfig(), torch.device("cuda"))
    assert s.amp_dtype in (torch.bfloat16, torch.float16) and s.channels_last and s.fused_adam and s.data_on_device
    assert s.cudnn_benchmark


@pytest.mark.gpu
@needs_cuda
def test_cuda_fast_path_same_losses(shapes32, monkeypatch):
    # Everything on (bf16, tensors on the GPU, channels_last, fused Adam) against fp32 eager on the
    # same GPU; bf16's tolerance as on the CPU. TF32 off so the plain path is true fp32.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    plain = losses_of(small_config(device="cuda"), shapes32)
    fast = losses_of(
        small_config(device="cuda", amp="bf16", data_on_device=True, channels_last=True, fused_adam=True), shapes32
    )
    assert_same_losses(fast, plain, 1e-2, "CUDA fast path", atol_first=5e-3)


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("mode", ["default", "reduce-overhead"])
def test_cuda_compile_same_losses(shapes32, mode, monkeypatch):
    # Inductor's fused kernels round differently from eager's; "reduce-overhead" also replays
    # each compiled forward / backward as a CUDA graph, which must not change a number. First in
    # fp32 (tight), then with every other knob on as well (bf16's tolerance), over two epochs.
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    steps = 2 * len(shapes32) // 16
    plain = losses_of(small_config(device="cuda"), shapes32, steps)
    fast = losses_of(small_config(device="cuda", compile=True, compile_mode=mode), shapes32, steps)
    assert_same_losses(fast, plain, 3e-3, f"torch.compile mode={mode}", atol_first=1e-4)
    everything = dict(amp="bf16", data_on_device=True, channels_last=True, fused_adam=True, cudnn_benchmark=True)
    fast = losses_of(small_config(device="cuda", compile=True, compile_mode=mode, **everything), shapes32, steps)
    assert_same_losses(fast, plain, 1e-2, f"bf16 + channels_last + compile mode={mode}", atol_first=5e-3)


@pytest.mark.gpu
@needs_cuda
def test_cuda_fp16_with_grad_scaler(shapes32):
    # fp16 needs loss scaling (bf16 does not): the scaler exists only for fp16, and the losses
    # stay close to fp32 (fp16 has 3 more mantissa bits than bf16; bf16's tolerance is ample).
    run = setup(small_config(device="cuda", amp="fp16"), dataset=shapes32)
    assert run.scaler is not None
    assert setup(small_config(device="cuda", amp="bf16"), dataset=shapes32).scaler is None
    plain = losses_of(small_config(device="cuda"), shapes32)
    assert_same_losses(
        losses_of(small_config(device="cuda", amp="fp16"), shapes32), plain, 1e-2, "fp16", atol_first=5e-3
    )


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_cuda_step_makes_no_host_sync(shapes32, amp):
    # The loop reads losses back only every log_every steps: one step must not synchronise. With
    # fp16 the GradScaler hands its inf check to fused Adam's kernel instead of reading it back.
    run = setup(small_config(device="cuda", amp=amp, data_on_device=True, channels_last=True, fused_adam=True),
                dataset=shapes32)  # fmt: skip
    batches = run.batches.epoch(0)
    run_step(run, next(batches), 0)  # warm-up: lazy initialisation may sync once
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        run_step(run, next(batches), 1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
