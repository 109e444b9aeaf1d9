"""Checks for lesson 03: batch normalisation written by hand.

Each check runs the student's code on seeded inputs, compares it with ``nn.BatchNorm2d``
computed here on the same inputs, and names the usual mistakes (wrong axes, biased variance in
the running estimate, running statistics updated in eval mode, eps forgotten or misplaced,
momentum inverted) by recomputing each mistake and seeing which one the answer matches.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ._core import (
    call,
    expect,
    expect_close,
    expect_shape,
    expect_tensor,
    fail,
    forbid,
    passed,
    seeded,
    student_globals,
)

_BATCHNORM_BASE = nn.modules.batchnorm._BatchNorm

FORBIDDEN: dict[str, tuple[Any, str]] = {
    "F.batch_norm": (F, "batch_norm"),
    "torch.batch_norm": (torch, "batch_norm"),
    "torch.native_batch_norm": (torch, "native_batch_norm"),
    "F.instance_norm": (F, "instance_norm"),
    "torch.instance_norm": (torch, "instance_norm"),
    "F.layer_norm": (F, "layer_norm"),
    "nn.BatchNorm2d.forward": (_BATCHNORM_BASE, "forward"),
}
INSTEAD = "Compute the per-channel mean and variance yourself with tensor operations (x.mean, x.var)."

# float32 means and variances over 100-300 values round at ~1e-6 relative; every mistake the
# checks name changes some value by more than 1e-3 relative (biased vs unbiased variance over
# n = 100 values: 1 %), so rtol 1e-4 separates the two with room on both sides.
RTOL = 1e-4
ATOL = 1e-5
# "Does the answer match this particular mistake?": looser, so a mistake is still recognised
# when the answer also carries float32 rounding of a different order of operations.
MATCH_RTOL = 1e-3
MATCH_ATOL = 1e-4


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return (
        isinstance(a, torch.Tensor)
        and a.shape == b.shape
        and bool(torch.allclose(a.detach().double(), b.detach().double(), rtol=MATCH_RTOL, atol=MATCH_ATOL))
    )


def _fmt(t: torch.Tensor) -> str:
    """The first values of a tensor, short enough for a message."""
    values = ", ".join(f"{v:.4g}" for v in t.detach().flatten()[:3].tolist())
    return f"[{values}{', ...' if t.numel() > 3 else ''}]"


def _case(seed: int, shape: tuple[int, int, int, int], momentum: float, eps: float) -> dict[str, Any]:
    """Seeded inputs: channels with different scales and offsets, so every axis matters."""
    g = seeded(seed)
    n, c, h, w = shape
    scale = torch.rand(c, generator=g) * 3 + 0.05
    scale[0] = 0.05  # one low-variance channel: forgetting eps shows there
    shift = torch.randn(c, generator=g) * 2
    x = torch.randn(shape, generator=g) * scale[None, :, None, None] + shift[None, :, None, None]
    # a per-sample offset too, so normalising each sample on its own (instance norm) differs
    x = x + 0.5 * torch.randn(n, 1, 1, 1, generator=g)
    return {
        "x": x,
        "gamma": torch.rand(c, generator=g) + 0.5,
        "beta": torch.randn(c, generator=g),
        "running_mean": torch.randn(c, generator=g),
        "running_var": torch.rand(c, generator=g) + 0.5,
        "momentum": momentum,
        "eps": eps,
    }


def _reference(case: dict[str, Any], training: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """nn.BatchNorm2d on the same inputs: (out, new running mean, new running var)."""
    c = case["x"].shape[1]
    bn = nn.BatchNorm2d(c, eps=case["eps"], momentum=case["momentum"])
    with torch.no_grad():
        bn.weight.copy_(case["gamma"])
        bn.bias.copy_(case["beta"])
        bn.running_mean.copy_(case["running_mean"])
        bn.running_var.copy_(case["running_var"])
    bn.train(training)
    with torch.no_grad():
        out = bn(case["x"])
    return out, bn.running_mean.clone(), bn.running_var.clone()


def _nearest(actual: Any, candidates: list[tuple[torch.Tensor, str | None]]) -> str | None:
    """The message of the candidate mistake closest to ``actual``, if any is within the match tolerance.

    Closest, not first: with a small eps, "eps missing" and "eps outside the root" are both near an
    answer, and only the distance tells which one was written.
    """
    if not isinstance(actual, torch.Tensor):
        return None
    a = actual.detach().double()
    best, best_msg = float("inf"), None
    for cand, msg in candidates:  # a None message marks the correct answer
        if cand.shape != a.shape:
            continue
        c = cand.detach().double()
        score = ((a - c).abs() / (MATCH_ATOL + MATCH_RTOL * c.abs())).max().item()
        if score < best:
            best, best_msg = score, msg
    return best_msg if best <= 1.0 else None


def _output_mistake(out: torch.Tensor, case: dict[str, Any]) -> str | None:
    """Recompute each known mistake in the output of a training-mode call; name the one matched."""
    x, gamma, beta, eps = case["x"], case["gamma"], case["beta"], case["eps"]
    shape = [1, -1, 1, 1]
    g, b = gamma.view(shape), beta.view(shape)
    candidates: list[tuple[torch.Tensor, str]] = []
    for dims, name in [
        ((2, 3), "each sample's channel over (H, W) only, dim=(2, 3): that is instance norm"),
        ((0,), "over the batch only, dim=0: one mean per (channel, row, column)"),
        ((1, 2, 3), "each sample over (C, H, W), dim=(1, 2, 3): that is layer norm"),
        ((0, 1, 2, 3), "over everything at once: one mean for all channels"),
        ((0, 1), "over (N, C), dim=(0, 1)"),
    ]:
        m = x.mean(dim=dims, keepdim=True)
        v = x.var(dim=dims, unbiased=False, keepdim=True)
        candidates.append(
            (
                g * (x - m) / torch.sqrt(v + eps) + b,
                f"you normalised {name}. BatchNorm2d keeps one mean and one variance per channel, "
                "taken over the batch and both spatial axes: dim=(0, 2, 3).",
            )
        )
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    unbiased = x.var(dim=(0, 2, 3), unbiased=True, keepdim=True)
    rm, rv = case["running_mean"].view(shape), case["running_var"].view(shape)
    candidates += [
        (g * (x - mean) / torch.sqrt(var + eps) + b, None),  # the correct answer: blame nothing
        (
            g * (x - mean) / torch.sqrt(unbiased + eps) + b,
            "you normalised with the unbiased variance (divide by n - 1). The output uses the biased "
            "one (x.var(..., unbiased=False), divide by n); only the running estimate is unbiased.",
        ),
        (
            g * (x - mean) / torch.sqrt(var) + b,
            "eps is missing: divide by sqrt(var + eps), which also keeps a constant channel from giving 0/0.",
        ),
        (
            g * (x - mean) / (torch.sqrt(var) + eps) + b,
            "eps is in the wrong place: it goes inside the square root, sqrt(var + eps), not sqrt(var) + eps.",
        ),
        (
            b * (x - mean) / torch.sqrt(var + eps) + g,
            "gamma and beta are swapped: out = gamma * x_hat + beta (gamma scales, beta shifts).",
        ),
        (
            (x - mean) / torch.sqrt(var + eps),
            "gamma and beta are not applied: out = gamma * x_hat + beta, with gamma and beta shaped (1, C, 1, 1).",
        ),
        (
            g * (x - rm) / torch.sqrt(rv + eps) + b,
            "in training mode normalise with the statistics of this batch, not the running ones.",
        ),
    ]
    return _nearest(out, candidates)


def _running_mistake(rm: torch.Tensor, rv: torch.Tensor, case: dict[str, Any]) -> str | None:
    """Name the mistake behind a wrong running-statistics update (training mode)."""
    x, mom = case["x"], case["momentum"]
    rm0, rv0 = case["running_mean"], case["running_var"]
    mean = x.mean(dim=(0, 2, 3))
    var_b = x.var(dim=(0, 2, 3), unbiased=False)
    var_u = x.var(dim=(0, 2, 3), unbiased=True)
    inverted = (
        "momentum is inverted. In PyTorch momentum is the weight of the NEW batch: "
        "running = (1 - momentum) * running + momentum * batch_statistic."
    )
    biased = (
        "the running variance uses the biased batch variance. nn.BatchNorm2d updates it with the "
        "unbiased one (divide by n - 1, x.var(..., unbiased=True)), while normalising with the biased one."
    )
    frozen = "the running statistics were not updated: in training mode each call moves them towards the batch's."
    replaced = "the running statistics were replaced by the batch's: blend them, (1 - momentum) * old + momentum * new."
    # the correct update is a candidate too (message None): an answer nearest to it is not blamed
    rm_msg = _nearest(
        rm,
        [
            ((1 - mom) * rm0 + mom * mean, None),
            (mom * rm0 + (1 - mom) * mean, inverted),
            (rm0, frozen),
            (mean, replaced),
        ],
    )
    rv_msg = _nearest(
        rv,
        [
            ((1 - mom) * rv0 + mom * var_u, None),
            (mom * rv0 + (1 - mom) * var_u, inverted),
            (mom * rv0 + (1 - mom) * var_b, inverted + " The running variance also needs the unbiased batch variance."),
            ((1 - mom) * rv0 + mom * var_b, biased),
            (rv0, frozen),
            (var_u, replaced),
            (var_b, replaced),
        ],
    )
    return rm_msg or rv_msg


def _call_forward(fn: Any, case: dict[str, Any], training: bool, grad: bool = False) -> tuple[Any, ...]:
    """Run the student's function on clones of the inputs, built-ins forbidden."""
    args = {k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in case.items()}
    if grad:
        for k in ("x", "gamma", "beta"):
            args[k].requires_grad_(True)
    with forbid(FORBIDDEN, "batchnorm2d_forward", INSTEAD, student_globals(fn)):
        result = call(
            fn,
            args["x"],
            args["gamma"],
            args["beta"],
            args["running_mean"],
            args["running_var"],
            training,
            args["momentum"],
            args["eps"],
            what="batchnorm2d_forward",
        )
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        fail(
            "batchnorm2d_forward should return a tuple (out, new_running_mean, new_running_var), "
            f"got {type(result).__name__}"
            + (f" of length {len(result)}" if isinstance(result, (tuple, list)) else "")
            + "."
        )
    return (*result, args)


def _check_train(fn: Any, case: dict[str, Any]) -> None:
    ref_out, ref_rm, ref_rv = _reference(case, training=True)
    out, rm, rv, _ = _call_forward(fn, case, training=True)
    c = case["x"].shape[1]
    expect_shape(out, ref_out.shape, "out (training mode)", "out must have the shape of x, (N, C, H, W).")
    expect_shape(rm, (c,), "new_running_mean", "one value per channel, shape (C,).")
    expect_shape(rv, (c,), "new_running_var", "one value per channel, shape (C,).")
    hint = _output_mistake(out, case) or (
        "out = gamma * (x - mean) / sqrt(var + eps) + beta with the batch mean and biased variance over dim=(0, 2, 3)."
    )
    expect_close(out, ref_out, "out (training mode)", rtol=RTOL, atol=ATOL, hint=hint)
    run_hint = _running_mistake(rm, rv, case) or (
        "running = (1 - momentum) * running + momentum * batch statistic, with the unbiased batch variance."
    )
    expect_close(rm, ref_rm, "new_running_mean (training mode)", rtol=RTOL, atol=ATOL, hint=run_hint)
    expect_close(rv, ref_rv, "new_running_var (training mode)", rtol=RTOL, atol=ATOL, hint=run_hint)


def _check_eval(fn: Any, case: dict[str, Any]) -> None:
    ref_out, _, _ = _reference(case, training=False)
    out, rm, rv, _ = _call_forward(fn, case, training=False)
    expect_shape(out, ref_out.shape, "out (eval mode)", "out must have the shape of x, (N, C, H, W).")
    for got, before, name in [(rm, case["running_mean"], "running_mean"), (rv, case["running_var"], "running_var")]:
        expect_tensor(got, f"new_{name} (eval mode)")
        if not _close(got, before):
            fail(
                f"new_{name} changed in eval mode (got {_fmt(got)}, passed in {_fmt(before)}): "
                "in eval mode the running statistics are only read, "
                "never updated. Return them unchanged."
            )
    train_out, _, _ = _reference(case, training=True)
    hint = "in eval mode normalise with running_mean and running_var: out = gamma * (x - rm) / sqrt(rv + eps) + beta."
    if _close(out, train_out):
        hint = (
            "in eval mode you normalised with the batch statistics. Eval mode uses running_mean and "
            "running_var, so one image's output does not depend on the rest of the batch."
        )
    expect_close(out, ref_out, "out (eval mode)", rtol=RTOL, atol=ATOL, hint=hint)


def _check_grad(fn: Any, case: dict[str, Any]) -> None:
    """Gradients must flow through the batch statistics, exactly as in nn.BatchNorm2d."""
    c = case["x"].shape[1]
    x = case["x"].clone().requires_grad_(True)
    bn = nn.BatchNorm2d(c, eps=case["eps"], momentum=case["momentum"])
    with torch.no_grad():
        bn.weight.copy_(case["gamma"])
        bn.bias.copy_(case["beta"])
    upstream = torch.randn(case["x"].shape, generator=seeded(99))
    bn(x).backward(upstream)
    out, rm, rv, args = _call_forward(fn, case, training=True, grad=True)
    expect_tensor(out, "out")
    if not out.requires_grad:
        fail(
            "out is not connected to autograd: gradients cannot reach x, gamma and beta. Avoid .detach(), "
            "torch.no_grad(), .item() and NumPy in the computation of out."
        )
    for name, t in [("new_running_mean", rm), ("new_running_var", rv)]:
        if isinstance(t, torch.Tensor) and t.requires_grad:
            fail(
                f"{name} requires grad: it is a statistic, not a learned value. Compute the running "
                "update from detached batch statistics (under torch.no_grad() or with .detach()), as "
                "nn.BatchNorm2d does; otherwise each step's graph stays alive inside the buffer."
            )
    out.backward(upstream)
    for name, got, ref in [
        ("gamma.grad", args["gamma"].grad, bn.weight.grad),
        ("beta.grad", args["beta"].grad, bn.bias.grad),
    ]:
        if got is None:
            fail(f"{name} is None: out does not depend on {name.split('.')[0]} through autograd.")
        expect_close(got, ref, name, rtol=1e-3, atol=1e-4, hint="out = gamma * x_hat + beta.")
    if args["x"].grad is None:
        fail("x.grad is None: out does not depend on x through autograd.")
    # gradients w.r.t. x go through the mean and variance: sums of ~100 terms, looser tolerance
    expect_close(
        args["x"].grad,
        x.grad,
        "x.grad",
        rtol=1e-3,
        atol=1e-4,
        hint="the gradient must flow through the batch mean and variance too: do not .detach() them "
        "when you compute out (only the running-statistics update is detached).",
    )


def check_batchnorm2d_forward(fn: Any, hidden: bool = False) -> None:
    """batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)."""
    cases = [_case(0, (4, 3, 5, 5), momentum=0.1, eps=1e-5), _case(1, (6, 4, 3, 4), momentum=0.3, eps=0.1)]
    if hidden:
        cases += [
            _case(2, (2, 5, 7, 3), momentum=0.05, eps=1e-3),
            _case(3, (16, 2, 2, 2), momentum=0.9, eps=1e-5),
            _case(4, (3, 8, 6, 6), momentum=0.2, eps=0.5),
        ]
    for case in cases:
        _check_train(fn, case)
        _check_eval(fn, case)
    _check_grad(fn, cases[0])
    if hidden:
        # a double-precision batch must stay double (no hard-coded float32)
        case = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in cases[1].items()}
        out, _, _, _ = _call_forward(fn, case, training=True)
        expect_tensor(out, "out (float64 input)")
        expect(out.dtype == torch.float64, f"out is {out.dtype} for a float64 input: keep the input's dtype.")
    passed(
        f"batchnorm2d_forward matches nn.BatchNorm2d in training and eval mode ({len(cases)} cases, "
        "running statistics and gradients included)."
    )


# --------------------------------------------------------------------------------------------
# BatchNorm2dScratch


def _instantiate(cls: Any, *args: Any, **kwargs: Any) -> nn.Module:
    what = f"BatchNorm2dScratch({', '.join([*map(repr, args), *(f'{k}={v!r}' for k, v in kwargs.items())])})"
    module = call(cls, *args, what=what, **kwargs)
    return module


def _forward(module: nn.Module, x: torch.Tensor, cls: Any) -> torch.Tensor:
    with forbid(FORBIDDEN, "BatchNorm2dScratch", INSTEAD, student_globals(cls)):
        out = call(module, x, what="BatchNorm2dScratch.forward")
    return expect_shape(out, x.shape, "BatchNorm2dScratch output", "the output has the shape of the input.")


def _compare_buffers(module: nn.Module, ref: nn.BatchNorm2d, when: str) -> None:
    got = dict(module.named_buffers())
    for name in ("running_mean", "running_var"):
        hint = "update the buffers with running = (1 - momentum) * running + momentum * batch statistic"
        if name == "running_var":
            hint += " (unbiased batch variance)"
        hint += " in training mode only; assign into the buffer (self.running_mean = ... or .copy_)."
        expect_close(got[name], getattr(ref, name), f"{name} {when}", rtol=RTOL, atol=ATOL, hint=hint)
    nbt, ref_nbt = got["num_batches_tracked"], ref.num_batches_tracked
    expect(
        int(nbt) == int(ref_nbt),
        f"num_batches_tracked {when} is {int(nbt)}, expected {int(ref_nbt)}: add 1 on every training-mode "
        "forward, never in eval mode.",
    )


def check_batchnorm2d_scratch(cls: Any, hidden: bool = False) -> None:
    """BatchNorm2dScratch(num_features, eps=1e-5, momentum=0.1): an nn.Module like nn.BatchNorm2d."""
    if not inspect.isclass(cls) or not issubclass(cls, nn.Module):
        fail(f"BatchNorm2dScratch should be a class derived from nn.Module, got {cls!r}.")
    if issubclass(cls, nn.modules.batchnorm._NormBase):
        fail(
            "BatchNorm2dScratch derives from PyTorch's BatchNorm classes: derive from nn.Module and write it yourself."
        )

    # 1. a fresh module: parameters, buffers, initial values, state_dict keys
    c = 3
    module = _instantiate(cls, c)
    params = dict(module.named_parameters())
    buffers = dict(module.named_buffers())
    expect(
        set(params) == {"weight", "bias"},
        f"the learnable parameters are {sorted(params)}, expected ['bias', 'weight'] (gamma is called "
        "weight and beta bias, as in nn.BatchNorm2d). Running statistics are buffers, not nn.Parameter: "
        "an optimizer must never change them.",
    )
    missing = [b for b in ("running_mean", "running_var", "num_batches_tracked") if b not in buffers]
    if missing:
        fail(
            f"buffers {missing} are missing (found {sorted(buffers)}): create them with "
            "self.register_buffer('running_mean', torch.zeros(num_features)) and so on, so that they "
            "move with .to(device) and are saved in state_dict (a plain tensor attribute is neither)."
        )
    ref = nn.BatchNorm2d(c)
    for name, tensor in [*params.items(), *buffers.items()]:
        want = ref.state_dict()[name]
        expect_shape(
            tensor, want.shape, f"{name} of BatchNorm2dScratch({c})", f"nn.BatchNorm2d({c}) has {tuple(want.shape)}."
        )
        expect(
            tensor.dtype == want.dtype,
            f"{name} has dtype {tensor.dtype}, expected {want.dtype}"
            + (
                ": num_batches_tracked is an integer count, torch.tensor(0, dtype=torch.long)."
                if name == "num_batches_tracked"
                else "."
            ),
        )
        expect(
            torch.equal(tensor.detach(), want),
            f"{name} starts at {_fmt(tensor)}, expected {_fmt(want)}: "
            "weight starts at ones, bias at zeros, running_mean at zeros, running_var at ones, "
            "num_batches_tracked at 0.",
        )
    keys, ref_keys = set(module.state_dict()), set(ref.state_dict())
    expect(
        keys == ref_keys,
        f"state_dict keys are {sorted(keys)}, expected {sorted(ref_keys)}: no extra buffers or submodules.",
    )

    # 2. load a trained nn.BatchNorm2d's state into the student's module; run both side by side
    settings = [(4, 1e-5, 0.1), (3, 0.1, 0.3)] + ([(5, 1e-3, 0.05)] if hidden else [])
    for i, (c, eps, momentum) in enumerate(settings):
        ref = nn.BatchNorm2d(c, eps=eps, momentum=momentum)
        g = seeded(100 + i)
        with torch.no_grad():
            ref.weight.copy_(torch.rand(c, generator=g) + 0.5)
            ref.bias.copy_(torch.randn(c, generator=g))
            ref.running_mean.copy_(torch.randn(c, generator=g))
            ref.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            ref.num_batches_tracked.fill_(7)
        module = _instantiate(cls, c, eps=eps, momentum=momentum)
        try:
            module.load_state_dict(ref.state_dict())
        except Exception as err:  # noqa: BLE001 - any failure to load is the student's to fix
            fail(f"nn.BatchNorm2d's state_dict does not load into BatchNorm2dScratch: {err}")
        steps = [("train", 4), ("train", 8), ("eval", 5), ("train", 2)]
        if hidden:
            steps += [("eval", 1), ("train", 16)]
        for j, (mode, n) in enumerate(steps):
            x = torch.randn(n, c, 3, 4, generator=g) * 2 + 1
            ref.train(mode == "train")
            module.train(mode == "train")
            with torch.no_grad():
                want = ref(x)
            with torch.no_grad():
                got = _forward(module, x, cls)
            hint = (
                "in eval mode use the running statistics (check self.training); in training mode the batch's."
                if mode == "eval"
                else "in training mode normalise with the batch mean and biased variance over dim=(0, 2, 3)."
            )
            expect_close(got, want, f"output of step {j + 1} ({mode} mode)", rtol=RTOL, atol=ATOL, hint=hint)
            _compare_buffers(module, ref, f"after step {j + 1} ({mode} mode)")

        # 3. and back: the student's state loads into nn.BatchNorm2d and reproduces its buffers
        back = nn.BatchNorm2d(c, eps=eps, momentum=momentum)
        try:
            back.load_state_dict(module.state_dict())
        except Exception as err:  # noqa: BLE001
            fail(f"BatchNorm2dScratch's state_dict does not load into nn.BatchNorm2d: {err}")
        for name, value in ref.state_dict().items():
            expect_close(
                back.state_dict()[name].double(),
                value.double(),
                f"{name} loaded back into nn.BatchNorm2d",
                rtol=RTOL,
                atol=ATOL,
            )

    # 4. gradients reach weight and bias
    ref = nn.BatchNorm2d(3)
    module = _instantiate(cls, 3)
    x = torch.randn(4, 3, 2, 2, generator=seeded(7))
    upstream = torch.randn(4, 3, 2, 2, generator=seeded(8))
    ref(x).backward(upstream)
    out = _forward(module, x, cls)
    if not out.requires_grad:
        fail("the output is not connected to autograd: weight and bias would never learn.")
    out.backward(upstream)
    for name in ("weight", "bias"):
        grad = getattr(module, name).grad
        if grad is None:
            fail(f"{name}.grad is None after backward: use self.{name} in forward.")
        expect_close(grad, getattr(ref, name).grad, f"{name}.grad", rtol=1e-3, atol=1e-4)

    if hidden:
        # buffers follow .double() like any registered buffer
        module = _instantiate(cls, 3).double()
        x = torch.randn(4, 3, 2, 2, generator=seeded(9), dtype=torch.float64)
        out = _forward(module, x, cls)
        expect(out.dtype == torch.float64, f"output is {out.dtype} after .double(): keep the input's dtype.")
        expect(
            module.running_mean.dtype == torch.float64,
            "running_mean did not follow .double(): register it with register_buffer.",
        )
    passed(
        "BatchNorm2dScratch behaves like nn.BatchNorm2d in both modes, and its state_dict loads into "
        "nn.BatchNorm2d and back."
    )
