"""Learning on a real data set, on a CPU, measured: a short run on scikit-learn's digits brings
the generator's samples far closer to the digits than the untrained generator's.

Distance: the Fréchet distance between Gaussian fits of RandomFeatures (a fixed random conv net
plus colour moments, dcgan_ref.evaluate; offline, as FID but without Inception) of 1000 samples
and of all 1,797 digits. Two halves of the digits are ~0.002 apart; the untrained generator
(same init seed) is ~20 away. The run here is what ``make train DATASET=digits`` does, shortened.
Calibration (ngf = ndf = 16, batch 64, instance noise 0.2, 300 steps, fp32, seed 0): 22.4 -> 0.35
(0.15 after 616 steps without noise). Required: below a tenth
of the untrained distance after 300 steps, a wide margin that a broken loop (D or G not
learning, wrong targets, wrong range) cannot meet.

With AMX bf16 units the same run repeats in the CPU default there (bf16 autocast +
channels_last): the evidence that the faster default learns the same.
"""

from __future__ import annotations

import pytest
import torch

from dcgan_ref.checkpoint import load_generator
from dcgan_ref.data import digits_dataset
from dcgan_ref.evaluate import random_feature_distance
from dcgan_ref.models import Generator, weights_init
from dcgan_ref.train import TrainConfig, cpu_has_bf16_units, resolve_speed, sample_images, train

pytestmark = pytest.mark.slow


def distances(cfg: TrainConfig) -> tuple[float, float]:
    real = digits_dataset(cfg.image_size).tensors[0]
    z = torch.randn(1000, cfg.nz, generator=torch.Generator().manual_seed(5))
    torch.manual_seed(cfg.seed)
    untrained = Generator(cfg.nz, cfg.ngf, 1, cfg.image_size)
    untrained.apply(weights_init)
    trained = load_generator(f"{cfg.out}/generator.pt")
    before = random_feature_distance(real, sample_images(untrained, z))
    after = random_feature_distance(real, sample_images(trained, z))
    return before, after


def short_run(tmp_path, **speed) -> TrainConfig:
    cfg = TrainConfig(dataset="digits", image_size=32, ngf=16, ndf=16, batch_size=64, epochs=100, max_steps=300,
                      instance_noise=0.2, seed=0, device="cpu", progress=False, log_every=50, out=str(tmp_path),
                      **speed)  # fmt: skip
    train(cfg)
    return cfg


def test_short_cpu_run_on_digits_learns(tmp_path):
    before, after = distances(short_run(tmp_path, amp="off", channels_last=False))
    print(f"random-feature distance to the digits: untrained {before:.3f} -> trained {after:.3f}")
    assert before > 5, f"the untrained generator should be far from the digits, got {before:.3f}"
    assert after < 0.1 * before, f"random-feature distance only went {before:.3f} -> {after:.3f}"


@pytest.mark.skipif(not cpu_has_bf16_units(), reason="no AMX bf16 units: bf16 is emulated (7-21x slower) here")
def test_the_amx_cpu_default_bf16_learns_as_well(tmp_path):
    cfg = short_run(tmp_path)  # the CPU default on this machine: bf16 autocast + channels_last
    speed = resolve_speed(cfg, torch.device("cpu"))
    assert speed.amp_dtype == torch.bfloat16 and speed.channels_last
    before, after = distances(cfg)
    print(f"bf16: random-feature distance untrained {before:.3f} -> trained {after:.3f}")
    assert after < 0.1 * before, f"in bf16 the distance only went {before:.3f} -> {after:.3f}"
