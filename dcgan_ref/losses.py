"""GAN losses: BCE for D, the non-saturating loss for G, label smoothing and instance noise.

Two spellings of each loss, named for what the discriminator returns: probabilities
(``SigmoidDiscriminator`` + ``BCELoss``, as the lessons teach) or logits (``Discriminator`` +
``BCEWithLogitsLoss``, what the trainer uses: stable, and allowed under autocast). They are the
same loss: BCE(sigmoid(l), y) == BCEWithLogits(l, y), up to BCELoss clamping log at -100.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def real_targets(like: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Targets for real images: 1, or 1 - label_smoothing (one-sided smoothing, Salimans et al.)."""
    return torch.full_like(like, 1.0 - label_smoothing)


def discriminator_loss(
    d_real: torch.Tensor, d_fake: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """D's loss from probabilities (N,): BCE(D(x), 1 - smoothing) + BCE(D(G(z)), 0)."""
    return F.binary_cross_entropy(d_real, real_targets(d_real, label_smoothing)) + (
        F.binary_cross_entropy(d_fake, torch.zeros_like(d_fake))
    )


def generator_loss(d_fake: torch.Tensor) -> torch.Tensor:
    """Non-saturating G loss from probabilities: BCE(D(G(z)), 1) = -log D(G(z))."""
    return F.binary_cross_entropy(d_fake, torch.ones_like(d_fake))


def discriminator_loss_with_logits(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, label_smoothing: float = 0.0
) -> torch.Tensor:
    """``discriminator_loss`` computed from logits with BCEWithLogits."""
    return F.binary_cross_entropy_with_logits(
        real_logits, real_targets(real_logits, label_smoothing)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_loss_with_logits(fake_logits: torch.Tensor) -> torch.Tensor:
    """``generator_loss`` computed from logits: softplus(-l), i.e. -log sigmoid(l)."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


def add_instance_noise(
    x: torch.Tensor, sigma: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """x + N(0, sigma^2) noise, added to both real and fake images before D sees them.

    Noise makes the real and fake distributions overlap, so D cannot be perfect and G keeps
    getting gradients (seed 000's "noise injection"; Sønderby et al. 2016, Arjovsky & Bottou 2017).
    """
    if sigma <= 0:
        return x
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + sigma * noise


def instance_noise_sigma(sigma0: float, step: int, anneal_steps: int) -> float:
    """Linearly annealed noise level: sigma0 at step 0, 0 from ``anneal_steps`` on (constant if 0)."""
    sigma0 = max(sigma0, 0.0)
    if anneal_steps <= 0:  # no annealing: constant noise
        return sigma0
    return sigma0 * max(0.0, 1.0 - step / anneal_steps)
