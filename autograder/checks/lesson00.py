"""Checks for lesson 00, setup and data: pixels to the GAN range and back, and the 64x64 pipeline.

Each exercise is cases -> probe -> judge (``_core.exercise``). The cases are real batches as uint8
tensors: images of the course's synthetic set, CIFAR-10's test images when they are on disk (never
downloaded during a check), and edge cases (0, 255, noise, H != W). The probes hand them to the
student's code as NumPy arrays, tensors and PIL images (dcgan_ref refused) and return the outputs;
the judges apply ``dcgan_ref.data.to_gan_range``, ``from_gan_range`` and ``make_transform`` to the
same inputs and name the usual mistakes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypedDict

import numpy as np
import torch

from ._compare import close, judge_only, nearest_mistake
from ._core import (
    CheckFailure,
    Outcome,
    attempt,
    call,
    exercise,
    expect,
    expect_close,
    expect_plain_tensor,
    expect_shape,
    fail,
    hidden_generator,
    hidden_randn,
    randn,
    seeded,
    unwrap,
)
from ._plain import to_plain, type_name
from ._secret import hidden_seed


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
    # the hidden images' values come from the instructor's secret
    seed = 11 if not hidden else hidden_seed(0, "real_batches", 0) % 2**31
    synthetic, _ = render_synthetic(6 if not hidden else 16, seed=seed)
    edges = np.zeros((2, 8, 8, 3), dtype=np.uint8)
    edges[1] = 255
    edges[0, :, :4] = 255  # left half white, right half black: shows a transposed image
    noise = torch.randint(0, 256, (3, 12, 20, 3), generator=g, dtype=torch.uint8).numpy()  # H != W
    batches = [("synthetic images", synthetic), ("black/white images", edges), ("12x20 noise images", noise)]
    if hidden:
        for i, (name, shape) in enumerate((("1x1 noise images", (4, 1, 1, 3)), ("20x6 noise images", (2, 20, 6, 3)))):
            gi = hidden_generator(0, "real_batches", i + 1)
            batches.append((name, torch.randint(0, 256, shape, generator=gi, dtype=torch.uint8).numpy()))
        cifar = _cifar_on_disk(32)
        if cifar is not None:
            batches.append(("CIFAR-10 test images", cifar))
    return batches


# ---------------------------------------------------------------------------------------------
# to_gan_range


@judge_only
def _to_gan_hint(out: torch.Tensor, img: np.ndarray, expected: torch.Tensor) -> str:
    """Name the mistake behind a wrong but well-shaped result."""
    t = torch.from_numpy(img).float()
    if out.dtype != torch.float32:
        return f"the dtype is {out.dtype}; models use float32: convert with .float()"
    channels_first = (2, 0, 1) if img.ndim == 3 else (0, 3, 1, 2)
    shape = tuple(t.permute(*channels_first).shape)
    transposed = (2, 1, 0) if img.ndim == 3 else (0, 3, 2, 1)
    return nearest_mistake(out, [
        ("these values are in [0, 1]: dividing by 255 is half the job, then map to [-1, 1] (x * 2 - 1)",
         (expected + 1) / 2),
        ("these values are in [0, 2]: subtract 1 after dividing by 127.5", expected + 1),
        ("the values are still 0 to 255 (minus 1): divide by 127.5 before subtracting 1",
         expected * 127.5 + 127.5 - 1, (0.0, 1e-3)),
        ("reshape/view keeps the memory order, so the pixels get scrambled; move the channel axis with permute",
         lambda: t.reshape(shape) / 127.5 - 1),
        (f"the image{'s are' if img.ndim == 4 else ' is'} transposed (H and W swapped): use permute("
         f"{', '.join(map(str, channels_first))})", lambda: t.permute(*transposed) / 127.5 - 1),
        ("the colour channels are in reverse order (BGR): keep red, green, blue as they are", expected.flip(-3)),
    ], rtol=0, atol=1e-5) or "pixel p in [0, 255] should become p / 127.5 - 1 (0 -> -1, 255 -> 1)"


#: what a judge here imports at run time (PIL opens its image plugins on first use): imported with this module by
#: the judge server, not by every judge (``checks.import_lessons``)
SERVER_IMPORTS = ("PIL.ImageFile",)
KINDS = ("one image, a numpy array", "a batch, a numpy array", "one image, a torch tensor", "a batch, a torch tensor")


def _gan_cases(hidden: bool) -> list[dict[str, Any]]:
    """Named uint8 NHWC batches as tensors."""
    return [{"name": name, "batch": torch.from_numpy(np.ascontiguousarray(batch))}
            for name, batch in real_batches(hidden)]


class GanRangeRun(TypedDict):
    """One call of the student's to_gan_range: its outcome and the input as the call left it."""

    out: Outcome
    input_after: torch.Tensor  #: the tensor handed over (or the tensor behind the NumPy view handed over)


def _probe_to_gan_range(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[list[GanRangeRun]]:
    """Each batch handed over four ways (one image or the batch, NumPy or torch); the outcome and
    the input as the call left it."""
    results = []
    for case in cases:
        row: list[GanRangeRun] = []
        for kind in KINDS:
            t = case["batch"][0].clone() if "one image" in kind else case["batch"].clone()
            value = t.numpy() if "numpy" in kind else t
            outcome = attempt(fn, value, what="to_gan_range")
            row.append({"out": outcome, "input_after": t})  # t shares memory with the NumPy view
        results.append(row)
    return results


def _judge_to_gan_range(cases: list[dict[str, Any]], data: list[list[GanRangeRun]]) -> str:
    """float32, channels first, p / 127.5 - 1, equal to dcgan_ref.data.to_gan_range; input untouched."""
    from dcgan_ref.data import to_gan_range as ref

    runs = 0
    for case, row in zip(cases, data, strict=True):
        batch = case["batch"].numpy()
        for kind, result in zip(KINDS, row, strict=True):
            arr = batch[0] if "one image" in kind else batch
            expected = ref(arr)
            what = f"to_gan_range({kind} of shape {tuple(arr.shape)}, {case['name']})"
            try:
                out = unwrap(result["out"])
            except CheckFailure as err:
                if ("numpy" in kind and "'numpy.ndarray' object has no attribute" in str(err)) or (
                        "torch" in kind and ("np.ndarray" in str(err) or "numpy()" in str(err))):
                    fail(f"{err} ({what}) Hint: the input can be a NumPy array OR a torch tensor: "
                         "torch.as_tensor(img) turns both into a tensor.")
                if arr.ndim == 4:
                    fail(f"{err} ({what}) Hint: a batch is NHWC; its channel axis moves with permute(0, 3, 1, 2) "
                         "(check x.ndim, or use x.movedim(-1, -3), which handles both).")
                if "permute" in str(err) or "dims" in str(err) or "dimension" in str(err):
                    fail(f"{err} ({what}) Hint: one image is (H, W, 3), three axes: permute(0, 3, 1, 2) is for a "
                         "batch (N, H, W, 3) only. Use permute(2, 0, 1) when x.ndim == 3, or x.movedim(-1, -3), "
                         "which handles both.")
                raise
            out = expect_plain_tensor(out, what)
            if out.shape != expected.shape:
                hint = ("channels go first: PyTorch images are (C, H, W), so permute the axes"
                        if tuple(out.shape) == tuple(arr.shape) else
                        "HWC -> CHW for one image, NHWC -> NCHW for a batch")
                expect_shape(out, expected.shape, what, hint=hint)
            expect(torch.equal(result["input_after"], torch.from_numpy(np.ascontiguousarray(arr))),
                   f"{what} changed its input in place: leave the caller's image alone.")
            # the same arithmetic in another order (x / 127.5 - 1 vs (x / 255 - 0.5) / 0.5): ~1e-7
            if out.dtype != torch.float32 or not close(out, expected, rtol=0, atol=1e-6):
                hint = _to_gan_hint(out, arr, expected)
                expect_close(out, expected, what, rtol=0, atol=1e-6, hint=hint)
                fail(f"{what}: {hint}.")
            runs += 1
    return f"to_gan_range equals dcgan_ref.data.to_gan_range on {runs} inputs."


check_to_gan_range = exercise("to_gan_range", _probe_to_gan_range, _judge_to_gan_range, _gan_cases)


# ---------------------------------------------------------------------------------------------
# from_gan_range


def _display_cases(hidden: bool) -> list[dict[str, Any]]:
    """Named tensors: real images in [-1, 1], values just outside, the endpoints, other shapes."""
    from dcgan_ref.data import to_gan_range

    inputs = [
        ("images in [-1, 1]", to_gan_range(real_batches(False)[0][1])),
        ("values slightly outside [-1, 1]", randn(2, 3, 8, 8, seed=5) * 1.3),
        ("the endpoints -1, 0 and 1", torch.tensor([-1.0, 0.0, 1.0]).view(1, 3, 1, 1)),
    ]
    if hidden:
        inputs += [("one image (C, H, W)", hidden_randn(3, 16, 16, lesson=0, exercise="from_gan_range", i=0)),
                   ("a large batch", hidden_randn(8, 3, 32, 32, lesson=0, exercise="from_gan_range", i=1) * 2)]
    return [{"name": name, "x": x} for name, x in inputs]


class FromGanRangeRun(TypedDict):
    """One call of the student's from_gan_range: its outcome and the input copy as the call left it."""

    out: Outcome
    input_after: torch.Tensor


def _probe_from_gan_range(fn: Callable[..., Any], cases: list[dict[str, Any]]) -> list[FromGanRangeRun]:
    """The student's function on a copy of each input; the outcome and the copy afterwards."""
    out: list[FromGanRangeRun] = []
    for case in cases:
        x = case["x"].clone()
        out.append({"out": attempt(fn, x, what="from_gan_range"), "input_after": x})
    return out


@judge_only
def _display_hint(out: torch.Tensor, x: torch.Tensor) -> str:
    """Name the mistake behind a wrong from_gan_range output."""
    return nearest_mistake(out, [
        ("values outside [0, 1] are not clamped; the generator's output or noisy inputs can "
         "overshoot, and matplotlib expects [0, 1]: add .clamp(0, 1)", (x + 1) / 2),
        ("-1 should map to 0: add 1 before dividing by 2", (x / 2).clamp(0, 1)),
        ("-1 should map to 0: add 1 before dividing by 2", x / 2),
        ("1 should map to 1: divide by 2 after adding 1", (x + 1).clamp(0, 1)),
        ("clamping alone throws away the negative half: first map [-1, 1] to [0, 1] with (x + 1) / 2",
         x.clamp(0, 1)),
        ("these are 0 to 255; matplotlib's float images are 0 to 1: don't multiply by 255",
         ((x + 1) / 2).clamp(0, 1) * 255, (0.0, 1e-4)),
    ], rtol=0, atol=1e-6) or "the inverse of x = 2p - 1 is p = (x + 1) / 2, then clamp to [0, 1]"


def _judge_from_gan_range(cases: list[dict[str, Any]], data: list[FromGanRangeRun]) -> str:
    """[-1, 1] -> [0, 1], clamped, same shape, input untouched: equal to dcgan_ref.data.from_gan_range."""
    from dcgan_ref.data import from_gan_range as ref

    for case, result in zip(cases, data, strict=True):
        x = case["x"]
        expected = ref(x)
        what = f"from_gan_range({case['name']}, shape {tuple(x.shape)})"
        out = expect_plain_tensor(unwrap(result["out"]), what)
        expect(torch.equal(result["input_after"], x), f"{what} changed its input in place (e.g. with add_ or "
               "clamp_): the caller still needs x; compute a new tensor.")
        expect_shape(out, expected.shape, what, hint="keep the shape; only the values change")
        # exact arithmetic on values of order 1: float32 rounding only
        if not close(out, expected, rtol=0, atol=1e-6):
            hint = _display_hint(out, x)
            expect_close(out, expected, what, rtol=0, atol=1e-6, hint=hint)
    return f"from_gan_range equals dcgan_ref.data.from_gan_range on {len(cases)} inputs."


check_from_gan_range = exercise("from_gan_range", _probe_from_gan_range, _judge_from_gan_range, _display_cases)


# ---------------------------------------------------------------------------------------------
# make_transform


@judge_only
def _transform_hint(out: torch.Tensor, pil: Any, size: int, expected: torch.Tensor) -> str:
    from torchvision import transforms as T

    if out.shape[-2:] != expected.shape[-2:]:
        if out.shape[-2:] == T.ToTensor()(pil).shape[-2:]:
            return f"the image is not resized: start with transforms.Resize({size}) (image_size)"
        return f"resize to image_size={size}: transforms.Resize(image_size), not a fixed number"
    imagenet = T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    return nearest_mistake(out, [
        ("values are in [0, 1] (ToTensor's range): add transforms.Normalize((0.5, 0.5, 0.5), "
         "(0.5, 0.5, 0.5)) to map them to [-1, 1], the range of G's Tanh", (expected + 1) / 2),
        ("that is ImageNet's normalisation; DCGAN maps [0, 1] to [-1, 1] with mean 0.5 and std 0.5 per channel",
         lambda: imagenet((expected + 1) / 2), (0.0, 1e-4)),
    ], rtol=0, atol=1e-5) or ("resize the PIL image first (transforms.Resize(image_size)), then ToTensor, then "
                              "Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))")


def _transform_cases(hidden: bool) -> dict[str, Any]:
    """Sizes to build the transform with (() = the default) and square uint8 HWC images."""
    sizes = [(64,), (32,), ()] if not hidden else [(64,), (32,), (48,), (), (16,)]
    batches = [b for name, b in real_batches(hidden) if "noise" not in name]  # CIFAR-shaped, square
    return {"sizes": sizes, "images": [torch.from_numpy(np.ascontiguousarray(img)) for b in batches for img in b[:4]]}


class TransformRun(TypedDict, total=False):
    """make_transform at one size: whether it built a transform, and its outcome on every image."""

    built: Outcome  #: always: ``{"value": "transform"}``, the type name of what came back, or the error
    outputs: list[Outcome]  #: only when a transform was built: one per image, in the cases' order


def _probe_make_transform(fn: Callable[..., Any], cases: dict[str, Any]) -> list[TransformRun]:
    """Build the student's transform for each size and apply it to every image as a PIL image."""
    from PIL import Image

    results: list[TransformRun] = []
    for args in cases["sizes"]:
        what_tf = f"make_transform({args[0] if args else ''})"
        try:
            tf = call(fn, *args, what=what_tf)
        except CheckFailure as err:
            results.append({"built": {"error": str(err)}})
            continue
        if not callable(tf):
            results.append({"built": {"value": type_name(to_plain(tf))}})
            continue
        outs = []
        for img in cases["images"]:
            what = f"{what_tf}(a {img.shape[1]}x{img.shape[0]} PIL image)"
            outs.append(attempt(tf, Image.fromarray(img.numpy()), what=what))
        results.append({"built": {"value": "transform"}, "outputs": outs})
    return results


def _judge_make_transform(cases: dict[str, Any], data: list[TransformRun]) -> str:
    """Every output equals dcgan_ref.data.make_transform(size) applied to the same PIL image."""
    from PIL import Image

    from dcgan_ref.data import make_transform as ref

    runs = 0
    for args, result in zip(cases["sizes"], data, strict=True):
        size = args[0] if args else 64
        what_tf = f"make_transform({args[0] if args else ''})"
        built = unwrap(result["built"])
        if built != "transform":
            fail(f"{what_tf} returned {built}, expected a transform "
                 "(transforms.Compose([...]) is callable on a PIL image).")
        reference = ref(size)
        for img, outcome in zip(cases["images"], result["outputs"], strict=True):
            pil = Image.fromarray(img.numpy())
            expected = reference(pil)
            what = f"{what_tf}(a {img.shape[1]}x{img.shape[0]} PIL image)"
            if "error" in outcome:
                fail(f"{outcome['error']} Hint: the order is Resize (on the PIL image), ToTensor, then Normalize "
                     "(Normalize needs a tensor).")
            out = expect_plain_tensor(unwrap(outcome), what)
            if out.shape != expected.shape or not close(out, expected, rtol=0, atol=1e-5):
                hint = _transform_hint(out, pil, size, expected)
                expect_shape(out, expected.shape, what, hint=hint)
                # identical PIL resize and arithmetic: only float32 rounding differs
                expect_close(out, expected, what, rtol=0, atol=1e-5, hint=hint)
            runs += 1
    return f"make_transform matches dcgan_ref.data.make_transform on {runs} images at {len(cases['sizes'])} sizes."


check_make_transform = exercise("make_transform", _probe_make_transform, _judge_make_transform, _transform_cases)
