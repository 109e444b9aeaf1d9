"""Lesson 00 checks: a correct answer passes; each named mistake fails with a message that names it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torchvision import transforms as T

from autograder.checks import lesson00 as checks
from autograder.checks._core import CheckFailure

# ------------------------------------------------------------------ to_gan_range


def as_tensor(img):
    return img if isinstance(img, torch.Tensor) else torch.from_numpy(np.asarray(img))


def gan_ok(img):
    t = as_tensor(img).float()
    return (t.movedim(-1, -3) / 127.5 - 1).contiguous()


def gan_ok_branches(img):
    t = as_tensor(img)
    t = t.permute(2, 0, 1) if t.ndim == 3 else t.permute(0, 3, 1, 2)
    return (t.float() / 255 - 0.5) / 0.5


def gan_zero_one(img):
    return as_tensor(img).float().movedim(-1, -3) / 255


def gan_no_minus_one(img):
    return as_tensor(img).float().movedim(-1, -3) / 127.5


def gan_no_permute(img):
    return as_tensor(img).float() / 127.5 - 1


def gan_view(img):
    t = as_tensor(img).float()
    shape = t.shape[:-3] + (t.shape[-1], t.shape[-3], t.shape[-2])
    return t.reshape(shape) / 127.5 - 1


def gan_swapped_hw(img):
    t = as_tensor(img).float()
    return (t.permute(2, 1, 0) if t.ndim == 3 else t.permute(0, 3, 2, 1)) / 127.5 - 1


def gan_float64(img):
    return torch.from_numpy(np.asarray(img).astype(np.float64) / 127.5 - 1).movedim(-1, -3)


def gan_no_batch(img):
    return as_tensor(img).float().permute(2, 0, 1) / 127.5 - 1


def gan_numpy(img):
    return np.moveaxis(np.asarray(img, dtype=np.float32), -1, -3) / 127.5 - 1


def gan_batch_only_permute(img):
    return as_tensor(img).permute(0, 3, 1, 2).float() / 127.5 - 1


def gan_in_place(img):
    t = as_tensor(img)
    out = t.movedim(-1, -3).float() / 127.5 - 1
    t.zero_()
    return out


def gan_bgr(img):
    return gan_ok(img).flip(-3)


def gan_no_divide(img):
    return as_tensor(img).float().movedim(-1, -3) - 1


def gan_numpy_only(img):
    return torch.from_numpy(img).float().movedim(-1, -3) / 127.5 - 1


def gan_tensor_only(img):
    return img.float().movedim(-1, -3) / 127.5 - 1


def gan_ok_numpy_first(img):
    """Correct, written another way: the arithmetic in NumPy, then one conversion."""
    a = np.asarray(img, dtype=np.float32) / 127.5 - 1
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(a, -1, -3)))


def gan_reference(img):
    from dcgan_ref.data import to_gan_range

    return to_gan_range(img)


def gan_reference_module(img):
    import dcgan_ref.data

    return dcgan_ref.data.to_gan_range(np.asarray(img)).clone()


def gan_reference_transform(img):
    """Through the reference's other function: still the reference."""
    import dcgan_ref.data

    return dcgan_ref.data.gpu_batch_transform(as_tensor(img).movedim(-1, -3), img.shape[-2])


def test_to_gan_range_reference_passes(capsys):
    for fn in (gan_ok, gan_ok_branches, gan_ok_numpy_first):
        checks.check_to_gan_range(fn)
        checks.check_to_gan_range(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 6


def test_to_gan_range_refuses_the_reference_itself():
    from dcgan_ref.data import to_gan_range

    with pytest.raises(CheckFailure, match="is dcgan_ref.data.to_gan_range, the reference"):
        checks.check_to_gan_range(to_gan_range)


@pytest.mark.parametrize("wrong", [gan_reference, gan_reference_module])
def test_to_gan_range_refuses_the_reference(wrong):
    with pytest.raises(CheckFailure, match="dcgan_ref.data.to_gan_range, the reference it is compared with"):
        checks.check_to_gan_range(wrong)


def test_to_gan_range_refuses_any_reference_code():
    with pytest.raises(CheckFailure, match="calls dcgan_ref.data.*the reference it is compared with"):
        checks.check_to_gan_range(gan_reference_transform)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (gan_zero_one, r"values are in \[0, 1\]: dividing by 255 is half the job"),
        (gan_no_minus_one, r"\[0, 2\]: subtract 1"),
        (gan_no_permute, "channels go first"),
        (gan_view, "reshape/view keeps the memory order"),
        (gan_swapped_hw, "transposed \\(H and W swapped\\)"),
        (gan_float64, "dtype is torch.float64"),
        (gan_no_batch, "a batch is NHWC"),
        (gan_numpy, "returned a numpy.ndarray, expected a torch.Tensor"),
        (gan_batch_only_permute, r"one image is \(H, W, 3\), three axes: permute\(0, 3, 1, 2\) is for a batch"),
        (gan_in_place, "changed its input in place"),
        (gan_bgr, "reverse order \\(BGR\\)"),
        (gan_no_divide, "divide by 127.5 before subtracting 1"),
        (gan_numpy_only, "NumPy array OR a torch tensor"),
        (gan_tensor_only, "NumPy array OR a torch tensor"),
    ],
)
def test_to_gan_range_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_to_gan_range(wrong)


# ------------------------------------------------------------------ from_gan_range


def display_ok(x):
    return ((x + 1) / 2).clamp(0, 1)


def display_no_clamp(x):
    return (x + 1) / 2


def display_half(x):
    return (x / 2).clamp(0, 1)


def display_no_half(x):
    return (x + 1).clamp(0, 1)


def display_in_place(x):
    return x.add_(1).div_(2).clamp_(0, 1)


def display_ok_where(x):
    """Correct, written another way."""
    y = x * 0.5 + 0.5
    return torch.where(y < 0, torch.zeros_like(y), torch.where(y > 1, torch.ones_like(y), y))


def display_clamp_only(x):
    return x.clamp(0, 1)


def display_255(x):
    return ((x + 1) / 2).clamp(0, 1) * 255


def display_numpy(x):
    return ((x + 1) / 2).clamp(0, 1).numpy()


def display_reference(x):
    from dcgan_ref.data import from_gan_range

    return from_gan_range(x)


def test_from_gan_range_reference_passes(capsys):
    for fn in (display_ok, display_ok_where):
        checks.check_from_gan_range(fn)
        checks.check_from_gan_range(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 4


def test_from_gan_range_refuses_the_reference():
    from dcgan_ref.data import from_gan_range

    for fn in (from_gan_range, display_reference):
        with pytest.raises(CheckFailure, match="dcgan_ref.data.from_gan_range, the reference"):
            checks.check_from_gan_range(fn)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (display_no_clamp, r"not clamped.*\.clamp\(0, 1\)"),
        (display_half, "add 1 before dividing by 2"),
        (display_no_half, "divide by 2 after adding 1"),
        (display_in_place, "changed its input in place"),
        (display_clamp_only, "clamping alone throws away the negative half"),
        (display_255, "don't multiply by 255"),
        (display_numpy, "returned a numpy.ndarray, expected a torch.Tensor"),
    ],
)
def test_from_gan_range_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_from_gan_range(wrong)


# ------------------------------------------------------------------ make_transform

HALF = (0.5, 0.5, 0.5)


def tf_ok(image_size=64):
    return T.Compose([T.Resize(image_size), T.ToTensor(), T.Normalize(HALF, HALF)])


def tf_no_resize(image_size=64):
    return T.Compose([T.ToTensor(), T.Normalize(HALF, HALF)])


def tf_fixed_size(image_size=64):
    return T.Compose([T.Resize(64), T.ToTensor(), T.Normalize(HALF, HALF)])


def tf_no_normalize(image_size=64):
    return T.Compose([T.Resize(image_size), T.ToTensor()])


def tf_imagenet(image_size=64):
    return T.Compose([T.Resize(image_size), T.ToTensor(),
                      T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])


def tf_normalize_first(image_size=64):
    return T.Compose([T.Resize(image_size), T.Normalize(HALF, HALF), T.ToTensor()])


def tf_not_callable(image_size=64):
    return [T.Resize(image_size), T.ToTensor(), T.Normalize(HALF, HALF)]


def tf_ok_lambda(image_size=64):
    """Correct, written another way: ToTensor, then the arithmetic by hand."""
    return T.Compose([T.Resize(image_size), T.ToTensor(), T.Lambda(lambda t: t * 2 - 1)])


def tf_reference(image_size=64):
    from dcgan_ref.data import make_transform

    return make_transform(image_size)


def tf_reference_parts(image_size=64):
    import dcgan_ref.data

    return T.Compose(list(dcgan_ref.data.make_transform(image_size).transforms))


def tf_no_default(image_size):
    return tf_ok(image_size)


def tf_raises(image_size=64):
    raise NotImplementedError()


def test_make_transform_reference_passes(capsys):
    for fn in (tf_ok, tf_ok_lambda):
        checks.check_make_transform(fn)
        checks.check_make_transform(fn, hidden=True)
    assert capsys.readouterr().out.count("\u2714") == 4


def test_make_transform_refuses_the_reference():
    from dcgan_ref.data import make_transform

    for fn in (make_transform, tf_reference, tf_reference_parts):
        with pytest.raises(CheckFailure, match="dcgan_ref.data.make_transform, the reference"):
            checks.check_make_transform(fn)


@pytest.mark.parametrize(
    "wrong, message",
    [
        (tf_no_resize, "not resized: start with transforms.Resize"),
        (tf_fixed_size, "resize to image_size=32"),
        (tf_no_normalize, r"values are in \[0, 1\].*Normalize"),
        (tf_imagenet, "ImageNet's normalisation"),
        (tf_normalize_first, "the order is Resize"),
        (tf_not_callable, "returned list, expected a transform"),
        (tf_no_default, "missing 1 required positional argument"),
        (tf_raises, "not implemented yet"),
    ],
)
def test_make_transform_mistakes(wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checks.check_make_transform(wrong)


# ------------------------------------------------------------------ the notebooks

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "solutions" / "00_setup_and_data" / "00_setup_and_data.ipynb"
STUDENT = ROOT / "lessons" / "00_setup_and_data" / "00_setup_and_data.ipynb"
EXERCISES = ["to_gan_range", "from_gan_range", "make_transform"]


def run_notebook(path, grading, data_root):
    """Execute a notebook in a fresh python3 kernel; returns the executed notebook."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, MPLBACKEND="agg", DCGAN_DATA_ROOT=str(data_root))  # no download into the repo
    if grading:
        env["NBGRADER_EXECUTION"] = "autograde"
    else:
        env.pop("NBGRADER_EXECUTION", None)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    return nb




@pytest.mark.slow
def test_solution_notebook_passes_every_check_while_grading(tmp_path):
    """As nbgrader's own executor runs it (NBGRADER_EXECUTION set). The run as a student runs it, with the
    same checks on every check cell: tests/test_notebooks_execute.py."""
    nb = run_notebook(SOURCE, True, tmp_path)  # offline: falls back to the synthetic set
    errors = [(c.id, o.evalue) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert not errors
    for exercise in EXERCISES:
        cell = next(c for c in nb.cells if c.id == f"test_{exercise}")
        text = "".join(o.get("text", "") for o in cell.outputs)
        assert text.count("\u2714") == 2 and "hidden tests" in text, (exercise, text)


@pytest.mark.slow
def test_student_notebook_runs_and_scores_zero(tmp_path):
    nb = run_notebook(STUDENT, True, tmp_path)
    assert "BEGIN SOLUTION" not in json.dumps(nb) and "HIDDEN TESTS" not in json.dumps(nb)
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [c.id for c in graded] == [f"test_{e}" for e in EXERCISES]
    for cell in graded:
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert errors and "not implemented yet" in errors[0].evalue, cell.id


def test_notebook_solutions_pass_across_the_boundary():
    from test_checks_lesson01 import judge_across_the_boundary

    lines = judge_across_the_boundary(checks, "00_setup_and_data")
    assert len(lines) == 6 and all(type(line) is str for line in lines)
