"""Datasets for the trainer and the lessons: CIFAR-10, any image folder, and a synthetic set.

Images reach the networks as float tensors in [-1, 1] (the range of G's Tanh), resized to 32 or
64. CIFAR-10 and the synthetic set also expose ``.data``, the whole set as a uint8 NHWC array,
which the fast trainer keeps on the GPU and transforms there per batch.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import datasets, transforms

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
CIFAR_DIR = "cifar-10-batches-py"
_TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]
_TEST_BATCHES = ["test_batch"]


class DatasetUnavailableError(RuntimeError):
    """The data set is not on disk and cannot be downloaded."""


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


def make_transform(image_size: int = 64) -> transforms.Compose:
    """The canonical pipeline for PIL images: Resize, ToTensor ([0, 1]), Normalize to [-1, 1]."""
    return transforms.Compose(
        [
            transforms.Resize(image_size),
            transforms.ToTensor(),
            transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
        ]
    )


class ArrayImages(Dataset):
    """Images held as one uint8 NHWC array, served through ``transform`` as PIL images."""

    def __init__(
        self,
        data: np.ndarray,
        targets: list[int],
        image_size: int,
        classes: tuple[str, ...],
    ) -> None:
        self.data, self.targets, self.classes = data, list(targets), classes
        self.image_size = image_size
        self.transform = make_transform(image_size)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.data[i])), self.targets[i]


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
    root: str | Path = "data", train: bool = True, image_size: int = 64, download: bool = True
) -> ArrayImages:
    """CIFAR-10 scaled to [-1, 1] and resized to ``image_size``; downloaded into ``root`` if missing.

    ``root`` may be the folder holding ``cifar-10-batches-py`` or that folder itself.
    """
    folder = _find_cifar_dir(root)
    if folder is None and download:
        try:  # torchvision's own download, checksum and extraction
            datasets.CIFAR10(str(root), train=train, download=True)
        except Exception as err:  # noqa: BLE001 - offline, blocked, disk full: all mean "not here"
            raise DatasetUnavailableError(_missing_message(root, err)) from err
        folder = _find_cifar_dir(root)
    if folder is None:
        raise DatasetUnavailableError(_missing_message(root, None))
    data, labels = read_cifar10_batches(folder, train)
    return ArrayImages(data, labels, image_size, CIFAR10_CLASSES)


def _missing_message(root: str | Path, err: Exception | None) -> str:
    why = f" and could not be downloaded ({type(err).__name__}: {err})" if err else ""
    return (
        f"CIFAR-10 is not in {Path(root).resolve()}{why}. Either point --data-root at a folder "
        f"holding an extracted '{CIFAR_DIR}' (from https://www.cs.toronto.edu/~kriz/cifar.html), "
        "or train offline on the built-in set with --dataset synthetic."
    )


def image_folder(root: str | Path, image_size: int = 64) -> datasets.ImageFolder:
    """Any folder of images in class sub-folders (torchvision ImageFolder), centre-cropped square."""
    if not Path(root).is_dir():
        raise DatasetUnavailableError(f"image folder {root} does not exist")
    resize, *to_tensor_normalize = make_transform(image_size).transforms
    tf = transforms.Compose([resize, transforms.CenterCrop(image_size), *to_tensor_normalize])
    return datasets.ImageFolder(str(root), transform=tf)


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

    def __init__(self, n: int = 10000, image_size: int = 32, seed: int = 0) -> None:
        data, labels = render_synthetic(n, seed)
        super().__init__(data, labels, image_size, SYNTHETIC_CLASSES)


def make_dataset(
    name: str,
    root: str | Path = "data",
    image_size: int = 64,
    train: bool = True,
    n_synthetic: int = 10000,
    seed: int = 0,
    download: bool = True,
) -> Dataset:
    """The trainer's data sets by name: ``cifar10``, ``folder`` or ``synthetic``."""
    if name == "cifar10":
        return cifar10(root, train=train, image_size=image_size, download=download)
    if name == "folder":
        return image_folder(root, image_size)
    if name == "synthetic":
        return SyntheticShapes(n_synthetic, image_size, seed=seed if train else seed + 1)
    raise ValueError(f"unknown dataset {name!r}: choose cifar10, folder or synthetic")


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
