"""Datasets for the trainer and the lessons: CIFAR-10, MNIST, scikit-learn's digits, any image
folder, and a synthetic set.

Images reach the networks as float tensors in [-1, 1] (the range of G's Tanh), resized to 32 or
64, with 3 channels or 1 (``nc``: colour sets are converted to grey with PIL's luma formula,
grey sets replicated to 3 channels). Every set but ``folder`` also exposes ``.data``, the whole
set as a uint8 NHWC array, which the fast trainer keeps on the device and transforms there per
batch.

``digits`` (scikit-learn's 1,797 handwritten 8x8 digits, shipped inside the package: offline,
also in Colab) is the small real data set a CPU learns in minutes: see ``digits_dataset``.
"""

from __future__ import annotations

import contextlib
import pickle
import shutil
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, TensorDataset
from torchvision import datasets, transforms

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR_DIR = "cifar-10-batches-py"
_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_TEST_BATCHES = ["test_batch"]


DATASETS = ("cifar10", "mnist", "digits", "folder", "synthetic")
GREY_DATASETS = ("mnist", "digits")  # native nc = 1; the others have 3 channels
MNIST_CLASSES = tuple(str(i) for i in range(10))


class DatasetUnavailableError(RuntimeError):
    """The data set is not on disk and cannot be downloaded, or cannot be read."""


class UnreadableImageError(DatasetUnavailableError):
    """An image file of a folder data set cannot be decoded (truncated, not an image).

    Raised inside a DataLoader worker, it reaches the main process re-wrapped with the worker's
    traceback in its message; the constructor keeps only the original one-line reason.
    """

    def __init__(self, message: str) -> None:
        marker = f"{type(self).__name__}: "
        if "Original Traceback" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip().splitlines()[0]
        super().__init__(message)


def native_nc(dataset: str) -> int:
    """Channels a data set has as stored: 1 for mnist and digits, 3 for the others."""
    return 1 if dataset in GREY_DATASETS else 3


def to_channels(data: np.ndarray, nc: int) -> np.ndarray:
    """uint8 NHWC images with 1 or 3 channels -> ``nc`` channels: RGB to grey with PIL's luma
    formula (L = 0.299 R + 0.587 G + 0.114 B, PIL's own fixed-point rounding), grey to RGB by
    repeating the channel."""
    if nc not in (1, 3):
        raise ValueError(f"nc must be 1 (grey) or 3 (RGB), got {nc}")
    have = data.shape[-1]
    if have == nc:
        return data
    if have == 1:
        return np.ascontiguousarray(np.repeat(data, 3, axis=-1))
    rgb = data.astype(np.uint32)
    grey = (rgb[..., 0] * 19595 + rgb[..., 1] * 38470 + rgb[..., 2] * 7471 + 0x8000) >> 16
    return grey.astype(np.uint8)[..., None]


@contextlib.contextmanager
def _cleanup_on_failure(root: str | Path) -> Iterator[None]:
    """Remove the folders a failed download created under ``root`` (and ``root`` itself if it was
    made here): a data set that could not be fetched leaves nothing behind."""
    root = Path(root).absolute()
    first_new = None
    for cand in [root, *root.parents]:
        if cand.exists():
            break
        first_new = cand
    try:
        yield
    except BaseException:
        if first_new is not None and first_new.exists():
            shutil.rmtree(first_new, ignore_errors=True)
        raise


def to_gan_range(img: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 image(s) HWC (or a batch NHWC) -> float32 CHW (NCHW) in [-1, 1].

    The same arithmetic as ``ToTensor()`` then ``Normalize(0.5, 0.5)``: x / 255, then (x - 0.5) / 0.5.
    """
    t = img if isinstance(img, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(img))
    if t.dtype != torch.uint8:
        raise TypeError(f"expected uint8 pixels in [0, 255], got {t.dtype}")
    if t.dim() == 3:
        t = t.permute(2, 0, 1)
    elif t.dim() == 4:
        t = t.permute(0, 3, 1, 2)
    else:
        raise ValueError(f"expected HWC or NHWC, got shape {tuple(t.shape)}")
    return t.float().div(255).sub(0.5).div(0.5)


def from_gan_range(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped: for showing images with matplotlib or saving them."""
    return x.add(1).div(2).clamp(0, 1)


def make_transform(image_size: int = 64, nc: int = 3) -> transforms.Compose:
    """The canonical pipeline for PIL images: Resize, ToTensor ([0, 1]), Normalize to [-1, 1]."""
    return transforms.Compose(
        [
            transforms.Resize(image_size),
            transforms.ToTensor(),
            transforms.Normalize((0.5,) * nc, (0.5,) * nc),
        ]
    )


class ArrayImages(Dataset):
    """Images held as one uint8 NHWC array, served through ``transform`` as PIL images.

    ``nc``: convert to that many channels first (see ``to_channels``); None keeps the array's.
    """

    def __init__(
        self,
        data: np.ndarray,
        targets: list[int],
        image_size: int,
        classes: tuple[str, ...],
        nc: int | None = None,
    ) -> None:
        if data.ndim == 3:  # N H W: one grey channel
            data = data[..., None]
        self.data = to_channels(data, nc) if nc is not None else data
        self.targets, self.classes = list(targets), classes
        self.image_size, self.nc = image_size, int(self.data.shape[-1])
        self.transform = make_transform(image_size, self.nc)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.data[i]
        return self.transform(Image.fromarray(img[..., 0] if self.nc == 1 else img)), self.targets[i]


def _find_cifar_dir(root: str | Path) -> Path | None:
    """The extracted ``cifar-10-batches-py`` folder: ``root`` itself or inside it."""
    root = Path(root)
    for cand in (root, root / CIFAR_DIR):
        if (cand / "test_batch").is_file() or (cand / "data_batch_1").is_file():
            return cand
    return None


def read_cifar10_batches(folder: str | Path, train: bool = True) -> tuple[np.ndarray, list[int]]:
    """Read CIFAR-10's python batches: uint8 (N, 32, 32, 3) images and their labels."""
    folder = Path(folder)
    images, labels = [], []
    for name in _TRAIN_BATCHES if train else _TEST_BATCHES:
        path = folder / name
        if not path.is_file():
            raise DatasetUnavailableError(f"CIFAR-10 batch {path} is missing")
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"] if "labels" in entry else entry["fine_labels"])
    return np.ascontiguousarray(np.concatenate(images).transpose(0, 2, 3, 1)), labels


def cifar10(
    root: str | Path = "data", train: bool = True, image_size: int = 64, download: bool = True, nc: int = 3
) -> ArrayImages:
    """CIFAR-10 scaled to [-1, 1] and resized to ``image_size``; downloaded into ``root`` if missing.

    ``root`` may be the folder holding ``cifar-10-batches-py`` or that folder itself. A failed
    download removes the folders it created. ``nc=1``: converted to grey.
    """
    folder = _find_cifar_dir(root)
    if folder is None and download:
        try:  # torchvision's own download, checksum and extraction
            with _cleanup_on_failure(root):
                datasets.CIFAR10(str(root), train=train, download=True)
        except Exception as err:  # noqa: BLE001 - offline, blocked, disk full: all mean "not here"
            raise DatasetUnavailableError(_missing_message(root, err)) from err
        folder = _find_cifar_dir(root)
    if folder is None:
        raise DatasetUnavailableError(_missing_message(root, None))
    data, labels = read_cifar10_batches(folder, train)
    return ArrayImages(data, labels, image_size, CIFAR10_CLASSES, nc=nc)


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0] if text else ''}"[:200]


def _missing_message(root: str | Path, err: Exception | None) -> str:
    why = f" and could not be downloaded ({_one_line(err)})" if err else ""
    return (
        f"CIFAR-10 is not in {Path(root).resolve()}{why}. Either point --data-root at a folder "
        f"holding an extracted '{CIFAR_DIR}' (from https://www.cs.toronto.edu/~kriz/cifar.html), "
        "or train offline on a built-in set with --dataset digits or --dataset synthetic."
    )


def mnist(
    root: str | Path = "data", train: bool = True, image_size: int = 32, download: bool = True, nc: int = 1
) -> ArrayImages:
    """MNIST through torchvision (``root/MNIST/raw/*-ubyte``, downloaded there if missing), 28x28
    grey digits resized to ``image_size`` in [-1, 1]; ``nc=3`` repeats the grey channel."""
    try:
        with _cleanup_on_failure(root):
            ds = datasets.MNIST(str(root), train=train, download=download)
    except Exception as err:  # noqa: BLE001 - missing, offline, corrupt: all mean "not usable here"
        why = "" if isinstance(err, RuntimeError) and "Dataset not found" in str(err) else f" ({_one_line(err)})"
        raise DatasetUnavailableError(
            f"MNIST is not in {Path(root).resolve() / 'MNIST' / 'raw'}{why}. Point --data-root at the folder "
            "holding MNIST/raw/ (train-images-idx3-ubyte etc.), allow the download, or train offline on "
            "--dataset digits"
        ) from err
    return ArrayImages(ds.data.numpy(), ds.targets.tolist(), image_size, MNIST_CLASSES, nc=nc)


def digits_uint8(image_size: int = 32) -> tuple[np.ndarray, list[int]]:
    """scikit-learn's 1,797 handwritten digits (8x8, 17 grey levels), bilinearly upsampled to
    ``image_size``: uint8 (1797, S, S, 1), white digits on black, and their labels 0-9."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise DatasetUnavailableError("--dataset digits needs scikit-learn: pip install scikit-learn") from err
    bunch = load_digits()
    x = torch.from_numpy(bunch.images).float().div(16)[:, None]  # (N, 1, 8, 8) in [0, 1]
    x = torch.nn.functional.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    pixels = x.mul(255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
    return pixels, [int(t) for t in bunch.target]


class Digits(ArrayImages):
    """scikit-learn's handwritten digits as a trainer data set (upsampled once, stored at ``image_size``)."""

    def __init__(self, image_size: int = 32, nc: int = 1) -> None:
        data, labels = digits_uint8(image_size)
        super().__init__(data, labels, image_size, MNIST_CLASSES, nc=nc)


def digits_dataset(image_size: int = 32, nc: int = 1) -> TensorDataset:
    """For the lessons: the 1,797 digits as a ``TensorDataset`` of (image, label), images float
    (N, nc, S, S) in [-1, 1]. Offline, in memory, ~2 s of CPU per epoch for a small DCGAN at 32x32:
    the real data set a CPU learns to draw in a few minutes."""
    ds = Digits(image_size, nc)
    return TensorDataset(to_gan_range(ds.data), torch.tensor(ds.targets))


def _read_image(path: str, nc: int = 3) -> Image.Image:
    """ImageFolder's loader, with a one-line error naming the file when it cannot be decoded."""
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            img.load()  # decode now: a truncated file fails here, not somewhere inside a transform
            return img.convert("L" if nc == 1 else "RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise UnreadableImageError(
            f"image {path} cannot be read ({_one_line(err)}): remove or replace it, then rerun"
        ) from err


def image_folder(root: str | Path, image_size: int = 64, nc: int = 3) -> datasets.ImageFolder:
    """Any folder of images in class sub-folders (torchvision ImageFolder), centre-cropped square.

    An image that cannot be decoded stops training with one line naming it (``UnreadableImageError``).
    """
    if not Path(root).is_dir():
        raise DatasetUnavailableError(f"image folder {root} does not exist")
    resize, *to_tensor_normalize = make_transform(image_size, nc).transforms
    tf = transforms.Compose([resize, transforms.CenterCrop(image_size), *to_tensor_normalize])
    try:
        return datasets.ImageFolder(str(root), transform=tf, loader=partial(_read_image, nc=nc))
    except (FileNotFoundError, OSError) as err:
        raise DatasetUnavailableError(
            f"image folder {root} holds no images in class sub-folders ({_one_line(err)}); "
            "expected ROOT/<class>/<image>.png|jpg"
        ) from err


SYNTHETIC_CLASSES = ("disc", "square", "triangle", "ring", "stripes")


def render_synthetic(n: int, seed: int = 0, size: int = 32) -> tuple[np.ndarray, list[int]]:
    """Procedural CIFAR-shaped images: a colour gradient background and 1-3 coloured shapes.

    Deterministic for a seed. Colours are correlated within an image (a palette per image) and
    shapes have sharp edges, so a generator's progress shows in colour and edge statistics.
    Returns uint8 (n, size, size, 3) and the class of the largest shape.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    labels = []
    for i in range(n):
        hue = rng.uniform(0, 1)
        base = _palette(hue, rng)
        angle = rng.uniform(0, 2 * np.pi)
        t = (np.cos(angle) * xx + np.sin(angle) * yy + 1) / 2
        img = base[0] * (1 - t[..., None]) + base[1] * t[..., None]
        k = int(rng.integers(1, 4))
        sizes = np.sort(rng.uniform(0.12, 0.4, size=k))[::-1]
        label = 0
        for j, r in enumerate(sizes):
            kind = int(rng.integers(0, len(SYNTHETIC_CLASSES)))
            if j == 0:
                label = kind
            cx, cy = rng.uniform(r * 0.6, 1 - r * 0.6, size=2)
            mask = _shape_mask(kind, xx - cx, yy - cy, r, rng)
            colour = base[2 + j % 2] if j < 2 else rng.uniform(0, 1, 3)
            img = np.where(mask[..., None], colour, img)
        img += rng.normal(0, 0.02, img.shape)  # a little sensor noise
        out[i] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
        labels.append(label)
    return out, labels


def _palette(hue: float, rng: np.random.Generator) -> np.ndarray:
    """Four related colours: two background tones and two shape colours."""
    angles = hue + np.array([0.0, 0.08, 0.5, 0.33]) + rng.normal(0, 0.03, 4)
    light = np.array([0.35, 0.75, 0.85, 0.25]) + rng.normal(0, 0.05, 4)
    phase = 2 * np.pi * (angles[:, None] + np.array([0, 1 / 3, 2 / 3])[None, :])
    return np.clip(light[:, None] + 0.3 * np.cos(phase), 0, 1)


def _shape_mask(kind: int, dx: np.ndarray, dy: np.ndarray, r: float, rng: np.random.Generator) -> np.ndarray:
    if kind == 0:  # disc
        return dx**2 + dy**2 <= r**2
    if kind == 1:  # square, rotated
        a = rng.uniform(0, np.pi / 2)
        u, v = np.cos(a) * dx + np.sin(a) * dy, -np.sin(a) * dx + np.cos(a) * dy
        return (np.abs(u) <= r * 0.8) & (np.abs(v) <= r * 0.8)
    if kind == 2:  # triangle pointing up
        return (dy <= r * 0.7) & (dy >= -r + 2 * np.abs(dx) * 1.2)
    if kind == 3:  # ring
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    stripes = np.sin((dx + dy) * 40 / (r * 10)) > 0  # stripes inside a square
    return stripes & (np.abs(dx) <= r) & (np.abs(dy) <= r)


class SyntheticShapes(ArrayImages):
    """A deterministic, offline, CIFAR-shaped data set (32x32 RGB stored, resized to image_size)."""

    def __init__(self, n: int = 10000, image_size: int = 32, seed: int = 0, nc: int = 3) -> None:
        data, labels = render_synthetic(n, seed)
        super().__init__(data, labels, image_size, SYNTHETIC_CLASSES, nc=nc)


def make_dataset(
    name: str,
    root: str | Path = "data",
    image_size: int = 64,
    train: bool = True,
    n_synthetic: int = 10000,
    seed: int = 0,
    download: bool = True,
    nc: int | None = None,
) -> Dataset:
    """The trainer's data sets by name (``DATASETS``); ``nc`` None: the set's own channels.

    ``digits`` has no test split: ``train=False`` gives the same 1,797 images.
    """
    nc = native_nc(name) if nc is None else nc
    if name == "cifar10":
        return cifar10(root, train=train, image_size=image_size, download=download, nc=nc)
    if name == "mnist":
        return mnist(root, train=train, image_size=image_size, download=download, nc=nc)
    if name == "digits":
        return Digits(image_size, nc)
    if name == "folder":
        return image_folder(root, image_size, nc)
    if name == "synthetic":
        return SyntheticShapes(n_synthetic, image_size, seed=seed if train else seed + 1, nc=nc)
    raise ValueError(f"unknown dataset {name!r}: choose {', '.join(DATASETS)}")


def course_dataset(
    root: str | Path = "data", image_size: int = 64, train: bool = True, n_synthetic: int = 2048
) -> tuple[Dataset, str]:
    """For the lessons: CIFAR-10 when it is here or can be downloaded, else the synthetic set."""
    try:
        return cifar10(root, train=train, image_size=image_size), "cifar10"
    except DatasetUnavailableError as err:
        print("!" * 78)
        print(f"CIFAR-10 unavailable ({err}).")
        print("USING THE SYNTHETIC SHAPES DATA SET INSTEAD: everything works, pictures differ.")
        print("!" * 78)
        return SyntheticShapes(n_synthetic, image_size), "synthetic"


def uint8_images(dataset: Dataset) -> torch.Tensor | None:
    """The whole data set as a uint8 NCHW tensor when it is array-backed, else None."""
    data = getattr(dataset, "data", None)
    if isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 4:
        return torch.from_numpy(data).permute(0, 3, 1, 2).contiguous()
    return None


def gpu_batch_transform(batch: torch.Tensor, image_size: int) -> torch.Tensor:
    """uint8 NCHW batch (on any device) -> float in [-1, 1] at ``image_size``: the fast path's
    replacement for Resize/ToTensor/Normalize, done on the device in one go."""
    x = batch.float().div_(255)
    if x.shape[-1] != image_size:
        x = torch.nn.functional.interpolate(
            x, size=(image_size, image_size), mode="bilinear", align_corners=False,
            antialias=x.shape[-1] > image_size,
        )  # fmt: skip
    return x.sub_(0.5).div_(0.5)
