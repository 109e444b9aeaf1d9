"""Data: the CIFAR-10 reader on a tiny CIFAR-format folder, the clear error, the synthetic set."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dcgan_ref import data


def write_tiny_cifar(root, n_per_batch=4, seed=0):
    """A CIFAR-10 python-format folder (5 train batches + test) of random images."""
    rng = np.random.default_rng(seed)
    folder = root / data.CIFAR_DIR
    folder.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        images = rng.integers(0, 256, size=(n_per_batch, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n_per_batch).tolist()
        entry = {"batch_label": name, "labels": labels, "data": images.reshape(n_per_batch, -1),
                 "filenames": [f"{name}_{i}.png" for i in range(n_per_batch)]}  # fmt: skip
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
        batches[name] = (images, labels)
    return batches


def test_cifar10_reader_on_a_tiny_cifar_folder(tmp_path):
    batches = write_tiny_cifar(tmp_path)
    train = data.cifar10(tmp_path, train=True, image_size=32, download=False)
    assert len(train) == 20 and train.data.shape == (20, 32, 32, 3)
    first_images, first_labels = batches["data_batch_1"]
    assert train.targets[:4] == first_labels
    x, y = train[1]
    assert x.shape == (3, 32, 32) and y == first_labels[1]
    # pixel for pixel: CHW bytes -> [-1, 1]
    torch.testing.assert_close(x, torch.from_numpy(first_images[1]).float() / 127.5 - 1, rtol=0, atol=1e-6)
    test = data.cifar10(tmp_path / data.CIFAR_DIR, train=False, image_size=64, download=False)
    assert len(test) == 4 and test[0][0].shape == (3, 64, 64)


def test_missing_cifar_offline_is_a_clear_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(data.datasets, "CIFAR10", offline)
    with pytest.raises(data.DatasetUnavailableError) as err:
        data.cifar10(tmp_path / "nothing", download=True)
    message = str(err.value)
    assert "--data-root" in message and "cifar-10-batches-py" in message and "--dataset synthetic" in message
    with pytest.raises(data.DatasetUnavailableError, match="--dataset synthetic"):
        data.cifar10(tmp_path / "nothing", download=False)


def test_to_gan_range_matches_the_torchvision_pipeline():
    img = np.random.default_rng(0).integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    expected = data.make_transform(32)(Image.fromarray(img))
    torch.testing.assert_close(data.to_gan_range(img), expected, rtol=0, atol=0)
    batch = np.stack([img, 255 - img])
    assert data.to_gan_range(batch).shape == (2, 3, 32, 32)
    assert data.to_gan_range(np.zeros((2, 2, 3), np.uint8)).min() == -1
    assert data.to_gan_range(np.full((2, 2, 3), 255, np.uint8)).max() == 1
    back = data.from_gan_range(data.to_gan_range(img))
    torch.testing.assert_close(back, torch.from_numpy(img).permute(2, 0, 1) / 255)
    with pytest.raises(TypeError, match="uint8"):
        data.to_gan_range(img.astype(np.float32))


def test_on_device_batch_transform_matches_the_pil_pipeline():
    ds = data.SyntheticShapes(8, image_size=64)
    pil = torch.stack([ds[i][0] for i in range(8)])
    fast = data.gpu_batch_transform(data.uint8_images(ds), 64)
    # PIL resizes the uint8 image and rounds to bytes; the fast path interpolates floats:
    # they differ by about one grey level (2/255 in [-1, 1]) and a little more at the borders
    assert (fast - pil).abs().mean() < 2 / 255
    same_size = data.gpu_batch_transform(data.uint8_images(data.SyntheticShapes(8, image_size=32)), 32)
    torch.testing.assert_close(same_size, torch.stack([data.SyntheticShapes(8, 32)[i][0] for i in range(8)]))


def test_synthetic_set_is_deterministic_and_structured():
    a, b = data.render_synthetic(64, seed=3), data.render_synthetic(64, seed=3)
    assert np.array_equal(a[0], b[0]) and a[1] == b[1]
    assert not np.array_equal(a[0], data.render_synthetic(64, seed=4)[0])
    x = a[0].astype(np.float32)
    # neighbouring pixels are strongly correlated (shapes and gradients), unlike noise
    corr = np.corrcoef(x[:, :, :-1].ravel(), x[:, :, 1:].ravel())[0, 1]
    assert corr > 0.8, f"neighbour correlation {corr:.2f}: the synthetic set should have structure"
    assert len(set(a[1])) > 1 and x.std() > 30


def test_image_folder(tmp_path):
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(2):
            Image.fromarray(np.full((40, 50, 3), 40 * i, np.uint8)).save(tmp_path / cls / f"{i}.png")
    ds = data.make_dataset("folder", tmp_path, image_size=32)
    assert len(ds) == 4 and ds[0][0].shape == (3, 32, 32)
    with pytest.raises(data.DatasetUnavailableError):
        data.make_dataset("folder", tmp_path / "missing")
    with pytest.raises(ValueError, match="unknown dataset"):
        data.make_dataset("imagenet")


# --- digits, MNIST, channels ---------------------------------------------------------------------


def test_digits_dataset_is_the_sklearn_digits_upsampled_to_gan_range():
    from sklearn.datasets import load_digits

    ds = data.digits_dataset(image_size=32)
    x, y = ds.tensors
    assert x.shape == (1797, 1, 32, 32) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    assert sorted(set(y.tolist())) == list(range(10))
    # average-pooling back to 8x8 gives the original digits (17 grey levels) closely
    bunch = load_digits()
    orig = torch.from_numpy(bunch.images).float() / 16 * 2 - 1
    pooled = torch.nn.functional.avg_pool2d(x, 4)[:, 0]
    corr = torch.corrcoef(torch.stack([pooled.flatten(), orig.flatten()]))[0, 1]
    assert corr > 0.97, f"upsampled digits correlate {corr:.3f} with the originals"
    assert torch.equal(y, torch.from_numpy(bunch.target))
    rgb = data.make_dataset("digits", image_size=64, nc=3)
    assert rgb.data.shape == (1797, 64, 64, 3) and rgb[0][0].shape == (3, 64, 64)
    assert np.array_equal(rgb.data[..., 0], rgb.data[..., 2]), "grey repeated into 3 channels"


def test_to_channels_grey_matches_pil_and_rgb_repeats():
    img = np.random.default_rng(1).integers(0, 256, size=(2, 9, 7, 3), dtype=np.uint8)
    grey = data.to_channels(img, 1)
    for i in range(2):
        assert np.array_equal(grey[i, ..., 0], np.asarray(Image.fromarray(img[i]).convert("L")))
    assert data.to_channels(grey, 3).shape == (2, 9, 7, 3)
    assert data.to_channels(img, 3) is img
    with pytest.raises(ValueError, match="nc must be 1"):
        data.to_channels(img, 2)
    ds = data.SyntheticShapes(8, image_size=32, nc=1)
    assert ds.data.shape == (8, 32, 32, 1) and ds[0][0].shape == (1, 32, 32)


def write_tiny_mnist(root, n=6, seed=0):
    """MNIST's idx files (train and t10k), as torchvision reads them from ROOT/MNIST/raw/."""
    import struct

    rng = np.random.default_rng(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    out = {}
    for split in ("train", "t10k"):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        (raw / f"{split}-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 2051, n, 28, 28) + images.tobytes())
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, n) + labels.tobytes())
        out[split] = (images, labels)
    return out


def test_mnist_reader_on_tiny_idx_files(tmp_path):
    files = write_tiny_mnist(tmp_path)
    ds = data.make_dataset("mnist", tmp_path, image_size=32, download=False)
    images, labels = files["train"]
    assert len(ds) == 6 and ds.data.shape == (6, 28, 28, 1) and ds.targets == labels.tolist()
    x, y = ds[2]
    assert x.shape == (1, 32, 32) and y == labels[2]
    at28 = data.mnist(tmp_path, image_size=28, download=False)[2][0]
    torch.testing.assert_close(at28[0], torch.from_numpy(images[2]).float() / 127.5 - 1, rtol=0, atol=1e-6)
    test = data.make_dataset("mnist", tmp_path, image_size=32, train=False, download=False, nc=3)
    assert test[0][0].shape == (3, 32, 32) and test.targets == files["t10k"][1].tolist()


def test_missing_mnist_and_cifar_leave_no_folder_behind(tmp_path, monkeypatch):
    with pytest.raises(data.DatasetUnavailableError, match="MNIST is not in .*--dataset digits"):
        data.mnist(tmp_path / "none", download=False)

    def half_download(root, *args, **kwargs):  # torchvision makes the folder, then the network fails
        (Path(root) / "partial").mkdir(parents=True)
        (Path(root) / "partial" / "cifar-10-python.tar.gz").write_bytes(b"\0" * 10)
        raise OSError("Name or service not known")

    monkeypatch.setattr(data.datasets, "CIFAR10", half_download)
    monkeypatch.setattr(data.datasets, "MNIST", half_download)
    for fn in (data.cifar10, data.mnist):
        with pytest.raises(data.DatasetUnavailableError, match="Name or service not known"):
            fn(tmp_path / "new" / "data", download=True)
        assert not (tmp_path / "new").exists(), f"{fn.__name__}: a failed download left its folders behind"
    existing = tmp_path / "mine"
    existing.mkdir()
    with pytest.raises(data.DatasetUnavailableError):
        data.cifar10(existing / "data", download=True)
    assert existing.is_dir() and not (existing / "data").exists(), "only what the download created is removed"


def test_truncated_image_in_a_folder_names_the_file(tmp_path):
    (tmp_path / "c").mkdir()
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "c" / "good.png")
    bad = tmp_path / "c" / "bad.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(bad)
    bad.write_bytes(bad.read_bytes()[:300])
    ds = data.make_dataset("folder", tmp_path, image_size=32)
    assert ds[1][0].shape == (3, 32, 32)  # good.png sorts after bad.jpg
    with pytest.raises(data.UnreadableImageError) as err:
        ds[0]
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
    grey = data.make_dataset("folder", tmp_path, image_size=32, nc=1)
    assert grey[1][0].shape == (1, 32, 32)
    (tmp_path / "empty").mkdir()
    with pytest.raises(data.DatasetUnavailableError, match="class sub-folders"):
        data.make_dataset("folder", tmp_path / "empty")
