"""Measuring a generator: Fréchet distance, latent interpolation, a cheap offline feature distance.

FID proper (Inception features, the standard protocol) lives in ``dcgan_ref.fid``; the
Fréchet distance between two Gaussians is shared by both.
"""

from __future__ import annotations

import torch
from torch import nn


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean (D,) and unbiased covariance (D, D), in float64, of features (N, D)."""
    f = features.detach().to(torch.float64).reshape(features.shape[0], -1)
    if f.shape[0] < 2:
        raise ValueError("need at least two feature vectors for a covariance")
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (f.shape[0] - 1)


def frechet_distance(
    mu1: torch.Tensor, sigma1: torch.Tensor, mu2: torch.Tensor, sigma2: torch.Tensor
) -> float:
    """||mu1 - mu2||^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2)): the Fréchet (2-Wasserstein) distance of
    two Gaussians, the formula behind FID.

    tr((S1 S2)^(1/2)) is computed as the trace of the square root of the symmetric PSD matrix
    S1^(1/2) S2 S1^(1/2), which has the same eigenvalues, so no complex residue appears.
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mu1, mu2))
    s1, s2 = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma1, sigma2))
    if mu1.shape != mu2.shape or s1.shape != s2.shape:
        raise ValueError(f"shape mismatch: means {mu1.shape} vs {mu2.shape}, covs {s1.shape} vs {s2.shape}")
    evals, evecs = torch.linalg.eigh((s1 + s1.T) / 2)
    sqrt_s1 = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
    middle = sqrt_s1 @ s2 @ sqrt_s1
    tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    diff = mu1 - mu2
    return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between latent vectors (..., nz) at fraction t in [0, 1].

    Gaussian latents live near a sphere of radius sqrt(nz); a straight line between two of them
    cuts through the low-density interior, the great circle stays where G was trained.
    Falls back to a straight line for (anti)parallel vectors, where the arc is undefined.
    """
    t = torch.as_tensor(t, dtype=z0.dtype, device=z0.device)
    if t.dim() > 0:
        t = t.reshape(*t.shape, *([1] * z0.dim()))
    n0 = z0 / z0.norm(dim=-1, keepdim=True)
    n1 = z1 / z1.norm(dim=-1, keepdim=True)
    cos = (n0 * n1).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    so = torch.sin(omega)
    parallel = so.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(so), so)
    arc = torch.sin((1 - t) * omega) / safe * z0 + torch.sin(t * omega) / safe * z1
    line = (1 - t) * z0 + t * z1
    return torch.where(parallel, line, arc)


class RandomFeatures(nn.Module):
    """A fixed, randomly initialised conv net: (N, 3, H, W) in [-1, 1] -> (N, 128) features
    (grey images (N, 1, H, W) are repeated to 3 channels first).

    Not Inception, but deterministic, offline and fast on a CPU: Fréchet distance on these
    features (plus per-channel colour moments) separates real from generated images well
    enough to see learning. Only ever compare numbers from the same seed.
    """

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        convs = [nn.Conv2d(3, 32, 3, 1, 1), nn.Conv2d(32, 64, 3, 2, 1), nn.Conv2d(64, 116, 3, 2, 1)]
        for c in convs:
            fan_in = c.in_channels * 9
            with torch.no_grad():
                c.weight.copy_(torch.randn(c.weight.shape, generator=g) * (2 / fan_in) ** 0.5)
                c.bias.zero_()
        self.net = nn.Sequential(convs[0], nn.ReLU(), convs[1], nn.ReLU(), convs[2], nn.ReLU())
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = nn.functional.interpolate(x.float(), size=(32, 32), mode="bilinear", antialias=True)
        deep = self.net(x).mean((2, 3))
        colour = torch.cat([x.mean((2, 3)), x.std((2, 3)), x.amax((2, 3)), x.amin((2, 3))], 1)
        return torch.cat([deep, colour], 1)


def random_feature_distance(real: torch.Tensor, fake: torch.Tensor, seed: int = 0) -> float:
    """Fréchet distance between real and fake images (N, 3 or 1, H, W) in RandomFeatures space."""
    net = RandomFeatures(seed)
    return frechet_distance(*gaussian_stats(net(real.cpu())), *gaussian_stats(net(fake.cpu())))
