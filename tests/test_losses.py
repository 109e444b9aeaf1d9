"""Losses: the probability and logit spellings agree; smoothing and instance noise behave."""

import math

import pytest
import torch
import torch.nn.functional as F

from dcgan_ref import losses


def test_probability_and_logit_losses_are_the_same_loss():
    g = torch.Generator().manual_seed(0)
    real_l, fake_l = torch.randn(64, generator=g) * 3, torch.randn(64, generator=g) * 3
    for smoothing in (0.0, 0.1):
        torch.testing.assert_close(
            losses.discriminator_loss(torch.sigmoid(real_l), torch.sigmoid(fake_l), smoothing),
            losses.discriminator_loss_with_logits(real_l, fake_l, smoothing),
            rtol=1e-5, atol=1e-6,
        )  # fmt: skip
    torch.testing.assert_close(
        losses.generator_loss(torch.sigmoid(fake_l)), losses.generator_loss_with_logits(fake_l), rtol=1e-5, atol=1e-6
    )


def test_generator_loss_is_non_saturating():
    d_fake = torch.tensor([0.01, 0.2, 0.7])
    torch.testing.assert_close(losses.generator_loss(d_fake), -torch.log(d_fake).mean())
    # where D confidently rejects fakes, -log D(G(z)) still has a large gradient; log(1 - D) would not
    p = torch.tensor([1e-3], requires_grad=True)
    losses.generator_loss(p).backward()
    assert abs(p.grad.item()) > 100


def test_one_sided_label_smoothing_touches_only_real_targets():
    d_real, d_fake = torch.full((8,), 0.9), torch.full((8,), 0.2)
    expected = F.binary_cross_entropy(d_real, torch.full((8,), 0.9)) + F.binary_cross_entropy(d_fake, torch.zeros(8))
    torch.testing.assert_close(losses.discriminator_loss(d_real, d_fake, label_smoothing=0.1), expected)
    assert (losses.real_targets(d_real, 0.1) == 0.9).all()


def test_instance_noise_statistics_and_annealing():
    x = torch.zeros(200_000)
    noisy = losses.add_instance_noise(x, 0.5, torch.Generator().manual_seed(0))
    assert abs(noisy.mean().item()) < 0.01 and abs(noisy.std().item() - 0.5) < 0.01
    assert losses.add_instance_noise(x, 0.0) is x
    assert losses.instance_noise_sigma(0.2, 0, 100) == pytest.approx(0.2)
    assert losses.instance_noise_sigma(0.2, 50, 100) == pytest.approx(0.1)
    assert losses.instance_noise_sigma(0.2, 150, 100) == 0.0
    assert losses.instance_noise_sigma(0.2, 10, 0) == pytest.approx(0.2), "anneal_steps=0: constant"
    assert math.isclose(losses.instance_noise_sigma(0.0, 0, 10), 0.0)
