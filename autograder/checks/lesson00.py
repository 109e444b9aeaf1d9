"""Checks for lesson 00, setup and data: pixels to the GAN range and back, and the 64x64 pipeline.

References are ``dcgan_ref.data.to_gan_range``, ``from_gan_range`` and ``make_transform``,
applied here to the same real batches: images of the course's synthetic set, CIFAR-10's test
images when they are on disk (never downloaded during a check), and edge cases (0, 255, noise).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from autograder.checks._core import (
    CheckFailure,
    call,
    expect,
    expect_close,
    expect_shape,
    expect_tensor,
    fail,
    passed,
    randn,
    seeded,
)
from autograder.checks.lesson01 import matches


def _cifar_on_disk(n: int) -> np.ndarray | None:
    """Up to ``n`` CIFAR-10 test images if the data set is already on disk (no download)."""
    from dcgan_ref import data

    roots = [os.environ.get("DCGAN_DATA_ROOT", ""), "data", os.path.expanduser("~/.cache/dcgan-course/data")]
    for root in filter(None, roots):
        try:
            return data.cifar10(root, train=False, download=False).data[:n]
        except Exception:  # noqa: BLE001, S112 - not there, unreadable: use the other batches
            continue
    return None


def real_batches(hidden: bool) -> list[tuple[str, np.ndarray]]:
    """uint8 NHWC batches: synthetic-set images, edge values, noise, a non-square batch, CIFAR-10 if here."""
    from dcgan_ref.data import render_synthetic

    g = seeded(3)
    synthetic, _ = render_synthetic(6 if not hidden else 16, seed=11 if not hidden else 12)
    edges = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    edges[1] = 255
    edges[0, :, :4] = 255  # left half white, right half black: shows a transposed image
    noise = torch.randint(0, 256, (3, 12, 20, 3), generator=g, dtype=torch.uint8).numpy()  # H != W
    batches = [("synthetic images", synthetic), ("black/white images", edges), ("12x20 noise images", noise)]
    if hidden:
        cifar = _cifar_on_disk(32)
        if cifar is not None:
            batches.append(("CIFAR-10 test images", cifar))
    return batches


# ---------------------------------------------------------------------------------------------
# to_gan_range


def _to_gan_hint(out: torch.Tensor, img: np.ndarray, expected: torch.Tensor) -> str:
    """Name the mistake behind a wrong but well-shaped result."""
    t = torch.from_numpy(img).float()
    if out.dtype != torch.float32:
        return f"the dtype is {out.dtype}; models use float32: convert with .float()"
    if matches(out, (expected + 1) / 2, rtol=0, atol=1e-5):
        return "these values are in [0, 1]: dividing by 255 is half the job, then map to [-1, 1] (x * 2 - 1)"
    if matches(out, expected + 1, rtol=0, atol=1e-5):
        return "these values are in [0, 2]: subtract 1 after dividing by 127.5"
    channels_first = (2, 0, 1) if img.ndim == 3 else (0, 3, 1, 2)
    shape = tuple(t.permute(*channels_first).shape)
    if matches(out, (t.reshape(shape) / 127.5 - 1), rtol=0, atol=1e-5):
        return ("reshape/view keeps the memory order, so the pixels get scrambled; move the channel axis "
                "with permute")
    if img.ndim == 3 and matches(out, t.permute(2, 1, 0) / 127.5 - 1, rtol=0, atol=1e-5):
        return "the image is transposed (H and W swapped): use permute(2, 0, 1)"
    if img.ndim == 4 and matches(out, t.permute(0, 3, 2, 1) / 127.5 - 1, rtol=0, atol=1e-5):
        return "the images are transposed (H and W swapped): use permute(0, 3, 1, 2)"
    return "pixel p in [0, 255] should become p / 127.5 - 1 (0 -> -1, 255 -> 1)"


def check_to_gan_range(fn: Callable[..., Any], hidden: bool = False) -> None:
    """``fn(img)``: uint8 HWC (numpy or tensor), or a batch NHWC -> float32 CHW / NCHW in [-1, 1]."""
    from dcgan_ref.data import to_gan_range as ref

    runs = 0
    for name, batch in real_batches(hidden):
        for kind, value in (("one image, a numpy array", batch[0]), ("a batch, a numpy array", batch),
                            ("one image, a torch tensor", torch.from_numpy(batch[0].copy())),
                            ("a batch, a torch tensor", torch.from_numpy(batch.copy()))):
            arr = batch[0] if "one image" in kind else batch
            expected = ref(arr)
            what = f"to_gan_range({kind} of shape {tuple(arr.shape)}, {name})"
            before = value.copy() if isinstance(value, np.ndarray) else value.clone()
            try:
                out = call(fn, value, what="to_gan_range")
            except CheckFailure as err:
                if arr.ndim == 4:
                    fail(f"{err} ({what}) Hint: a batch is NHWC; its channel axis moves with permute(0, 3, 1, 2) "
                         "(check x.ndim, or use x.movedim(-1, -3), which handles both).")
                raise
            out = expect_tensor(out, what)
            if out.shape != expected.shape:
                hint = ("channels go first: PyTorch images are (C, H, W), so permute the axes"
                        if tuple(out.shape) == tuple(arr.shape) else
                        "HWC -> CHW for one image, NHWC -> NCHW for a batch")
                expect_shape(out, expected.shape, what, hint=hint)
            unchanged = np.array_equal(before, value) if isinstance(value, np.ndarray) else torch.equal(before, value)
            expect(unchanged, f"{what} changed its input in place: leave the caller's image alone.")
            # the same arithmetic in another order (x / 127.5 - 1 vs (x / 255 - 0.5) / 0.5): ~1e-7
            if out.dtype != torch.float32 or not matches(out, expected, rtol=0, atol=1e-6):
                expect_close(out, expected, what, rtol=0, atol=1e-6, hint=_to_gan_hint(out, arr, expected))
                fail(f"{what}: {_to_gan_hint(out, arr, expected)}.")
            runs += 1
    passed(f"to_gan_range equals dcgan_ref.data.to_gan_range on {runs} inputs"
           + (" (hidden tests)" if hidden else "") + ".")


# ---------------------------------------------------------------------------------------------
# from_gan_range


def check_from_gan_range(fn: Callable[..., Any], hidden: bool = False) -> None:
    """``fn(x)``: [-1, 1] -> [0, 1], clamped (G's output can overshoot), same shape, input untouched."""
    from dcgan_ref.data import from_gan_range as ref
    from dcgan_ref.data import to_gan_range

    inputs = [
        ("images in [-1, 1]", to_gan_range(real_batches(False)[0][1])),
        ("values slightly outside [-1, 1]", randn(2, 3, 8, 8, seed=5) * 1.3),
        ("the endpoints -1, 0 and 1", torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)),
    ]
    if hidden:
        inputs += [("one image (C, H, W)", randn(3, 16, 16, seed=6)),
                   ("a large batch", randn(8, 3, 32, 32, seed=7) * 2)]
    for name, x in inputs:
        expected = ref(x)
        what = f"from_gan_range({name}, shape {tuple(x.shape)})"
        before = x.clone()
        out = expect_tensor(call(fn, x, what="from_gan_range"), what)
        expect(torch.equal(x, before), f"{what} changed its input in place (e.g. with add_ or clamp_): "
               "the caller still needs x; compute a new tensor.")
        expect_shape(out, expected.shape, what, hint="keep the shape; only the values change")
        # exact arithmetic on values of order 1: float32 rounding only
        if not matches(out, expected, rtol=0, atol=1e-6):
            if matches(out, (x + 1) / 2, rtol=0, atol=1e-6):
                hint = ("values outside [0, 1] are not clamped; the generator's output or noisy inputs can "
                        "overshoot, and matplotlib expects [0, 1]: add .clamp(0, 1)")
            elif matches(out, (x / 2).clamp(0, 1), rtol=0, atol=1e-6) or matches(out, x / 2, rtol=0, atol=1e-6):
                hint = "-1 should map to 0: add 1 before dividing by 2"
            elif matches(out, (x + 1).clamp(0, 1), rtol=0, atol=1e-6):
                hint = "1 should map to 1: divide by 2 after adding 1"
            else:
                hint = "the inverse of x = 2p - 1 is p = (x + 1) / 2, then clamp to [0, 1]"
            expect_close(out, expected, what, rtol=0, atol=1e-6, hint=hint)
    passed(f"from_gan_range equals dcgan_ref.data.from_gan_range on {len(inputs)} inputs"
           + (" (hidden tests)" if hidden else "") + ".")


# ---------------------------------------------------------------------------------------------
# make_transform


def _transform_hint(out: torch.Tensor, pil: Any, size: int, expected: torch.Tensor) -> str:
    from torchvision import transforms as T

    if out.shape[-2:] != expected.shape[-2:]:
        if out.shape[-2:] == T.ToTensor()(pil).shape[-2:]:
            return f"the image is not resized: start with transforms.Resize({size}) (image_size)"
        return f"resize to image_size={size}: transforms.Resize(image_size), not a fixed number"
    if matches(out, (expected + 1) / 2, rtol=0, atol=1e-5):
        return ("values are in [0, 1] (ToTensor's range): add transforms.Normalize((0.5, 0.5, 0.5), "
                "(0.5, 0.5, 0.5)) to map them to [-1, 1], the range of G's Tanh")
    imagenet = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))((expected + 1) / 2)
    if matches(out, imagenet, rtol=0, atol=1e-4):
        return ("that is ImageNet's normalisation; DCGAN maps [0, 1] to [-1, 1] with mean 0.5 and std 0.5 "
                "per channel")
    return ("resize the PIL image first (transforms.Resize(image_size)), then ToTensor, then "
            "Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))")


def check_make_transform(fn: Callable[..., Any], hidden: bool = False) -> None:
    """``fn(image_size=64)`` returns a transform of PIL images equal to dcgan_ref.data.make_transform."""
    from PIL import Image

    from dcgan_ref.data import make_transform as ref

    sizes = [(64,), (32,), ()] if not hidden else [(64,), (32,), (48,), (), (16,)]
    batches = [b for name, b in real_batches(hidden) if "noise" not in name]  # CIFAR-shaped, square
    runs = 0
    for args in sizes:
        size = args[0] if args else 64
        what_tf = f"make_transform({args[0] if args else ''})"
        tf = call(fn, *args, what=what_tf)
        if not callable(tf):
            fail(f"{what_tf} returned {type(tf).__name__}, expected a transform "
                 "(transforms.Compose([...]) is callable on a PIL image).")
        reference = ref(size)
        for batch in batches:
            for img in batch[:4]:
                pil = Image.fromarray(img)
                expected = reference(pil)
                what = f"{what_tf}(a {img.shape[1]}x{img.shape[0]} PIL image)"
                try:
                    out = call(tf, pil, what=what)
                except CheckFailure as err:
                    fail(f"{err} Hint: the order is Resize (on the PIL image), ToTensor, then Normalize "
                         "(Normalize needs a tensor).")
                out = expect_tensor(out, what)
                if out.shape != expected.shape or not matches(out, expected, rtol=0, atol=1e-5):
                    hint = _transform_hint(out, pil, size, expected)
                    expect_shape(out, expected.shape, what, hint=hint)
                    # identical PIL resize and arithmetic: only float32 rounding differs
                    expect_close(out, expected, what, rtol=0, atol=1e-5, hint=hint)
                runs += 1
    passed(f"make_transform matches dcgan_ref.data.make_transform on {runs} images at {len(sizes)} sizes"
           + (" (hidden tests)" if hidden else "") + ".")
