"""Checks for lesson 03: batch normalisation written by hand, forward, as a module, and backward.

Each exercise is cases -> probe -> judge (``_core.exercise``). The probes run the student's code on
the grader's seeded inputs with every built-in normalisation refused at the dispatcher
(``_guard.NORMALIZATION``: F.batch_norm, torch.ops.aten.native_batch_norm, layer/instance norm over
permuted axes, their backward kernels) and return outputs, the arguments as they were after the call
(nothing may be changed in place), buffers and state_dicts as plain data. The judges compute
``nn.BatchNorm2d`` (and autograd through it) on the same inputs and name the usual mistakes (wrong
axes, biased variance in the running estimate, per-image variances averaged, running statistics
updated in eval mode, eps forgotten, misplaced or hard-coded, momentum inverted or hard-coded, the
mean term of the backward pass forgotten, ...) by recomputing each mistake and seeing which one the
answer matches. The module exercise usually calls the student's ``batchnorm2d_forward``: by the cascade rule
(``_compare.cascade_runs``) it is probed with a reference ``batchnorm2d_forward`` in its place (added
when the student's never ran) and as written, so one slip in exercise 1 costs exercise 1's points
only ("fix exercise 1 first"). Every answer that feeds a backward pass is judged on its gradients
too (``_compare.judge_gradients``). Hidden cases' values come from the instructor's secret.
"""

from __future__ import annotations

import inspect
from typing import Any, TypedDict

import torch
import torch.nn.functional as F
from torch import nn

from ._compare import (
    CascadeRuns,
    Earlier,
    GradientRun,
    cascade_runs,
    close,
    judge_cascade,
    judge_gradients,
    judge_only,
    nearest_mistake,
    run_backward,
)
from ._core import (
    CheckFailure,
    Outcome,
    attempt,
    call,
    exercise,
    expect,
    expect_close,
    expect_shape,
    fail,
    hidden_generator,
    seeded,
    unwrap,
)
from ._guard import NORMALIZATION, NoAutograd
from ._plain import qualname, type_name

INSTEAD = "Compute the per-channel mean and variance yourself with tensor operations (x.mean, x.var)."
BACKWARD_INSTEAD = ("Write the gradients as formulas of dout, x_hat and gamma with tensor operations, without "
                    "autograd.")
REFUSE = [NORMALIZATION]

# float32 means and variances over 100-300 values round at ~1e-6 relative; every mistake the
# checks name changes some value by more than 1e-3 relative (biased vs unbiased variance over
# n = 100 values: 1 %), so rtol 1e-4 separates the two with room on both sides.
RTOL = 1e-4
ATOL = 1e-5
# "Does the answer match this particular mistake?": looser, so a mistake is still recognised
# when the answer also carries float32 rounding of a different order of operations.
MATCH_RTOL = 1e-3
MATCH_ATOL = 1e-4
# gradients are sums of ~100 products: looser, still far below the 1 % of the smallest mistake
GRAD_RTOL = 1e-3
GRAD_ATOL = 1e-4


def _close(a: Any, b: torch.Tensor) -> bool:
    """Whether ``a`` matches ``b`` to the tolerance used to recognise a mistake."""
    return close(a, b, rtol=MATCH_RTOL, atol=MATCH_ATOL)


def _fmt(t: torch.Tensor) -> str:
    """The first values of a tensor, short enough for a message."""
    values = ", ".join(f"{v:.4g}" for v in t.detach().flatten()[:3].tolist())
    return f"[{values}{', ...' if t.numel() > 3 else ''}]"


def _case(seed: int | torch.Generator, shape: tuple[int, int, int, int], momentum: float,
          eps: float) -> dict[str, Any]:
    """Seeded inputs (a fixed seed, or a hidden case's generator): channels with different scales and
    offsets, so every axis matters."""
    g = seeded(seed) if isinstance(seed, int) else seed
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


@judge_only
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
    """``nearest_mistake`` at the match tolerance, on (candidate, message) pairs."""
    return nearest_mistake(actual, [(msg, cand) for cand, msg in candidates], rtol=MATCH_RTOL, atol=MATCH_ATOL)


@judge_only
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
    per_image = x.var(dim=(2, 3), unbiased=False, keepdim=True).mean(dim=0, keepdim=True)
    candidates += [
        (g * (x - mean) / torch.sqrt(var + eps) + b, None),  # the correct answer: blame nothing
        (
            g * (x - mean) / torch.sqrt(per_image + eps) + b,
            "the variance is the average of each image's own variance over (H, W). That leaves out how far "
            "the images' means lie apart: take the variance over all N * H * W values of the channel at once, "
            "x.var(dim=(0, 2, 3), unbiased=False).",
        ),
        (
            g * (x - mean) / torch.sqrt(var + 1e-5) + b,
            f"eps is hard-coded to 1e-5: use the eps argument (here {eps}).",
        ),
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


@judge_only
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
    hard_mom = (
        f"momentum is hard-coded to 0.1: use the momentum argument (here {mom}), "
        "running = (1 - momentum) * running + momentum * batch_statistic."
    )
    n_per_channel = x.numel() // x.shape[1]
    per_image_u = x.var(dim=(2, 3), unbiased=True).mean(dim=0)
    per_image_b = x.var(dim=(2, 3), unbiased=False).mean(dim=0)
    per_image = (
        "the running variance is updated with the average of each image's own variance over (H, W), which "
        "leaves out how far the images' means lie apart: use the variance over all N * H * W values of the "
        "channel, unbiased, x.var(dim=(0, 2, 3), unbiased=True)."
    )
    frozen = "the running statistics were not updated: in training mode each call moves them towards the batch's."
    replaced = "the running statistics were replaced by the batch's: blend them, (1 - momentum) * old + momentum * new."
    # the correct update is a candidate too (message None): an answer nearest to it is not blamed
    rm_msg = _nearest(
        rm,
        [
            ((1 - mom) * rm0 + mom * mean, None),
            (mom * rm0 + (1 - mom) * mean, inverted),
            (0.9 * rm0 + 0.1 * mean, hard_mom),
            (rm0, frozen),
            (mean, replaced),
        ],
    )
    rv_msg = _nearest(
        rv,
        [
            ((1 - mom) * rv0 + mom * var_u, None),
            (0.9 * rv0 + 0.1 * var_u, hard_mom),
            ((1 - mom) * rv0 + mom * per_image_u, per_image),
            ((1 - mom) * rv0 + mom * per_image_b * n_per_channel / (n_per_channel - 1), per_image),
            ((1 - mom) * rv0 + mom * per_image_b, per_image),
            (mom * rv0 + (1 - mom) * var_u, inverted),
            (mom * rv0 + (1 - mom) * var_b, inverted + " The running variance also needs the unbiased batch variance."),
            ((1 - mom) * rv0 + mom * var_b, biased),
            (rv0, frozen),
            (var_u, replaced),
            (var_b, replaced),
        ],
    )
    return rm_msg or rv_msg




@judge_only
def reference_forward(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, running_mean: torch.Tensor,
                      running_var: torch.Tensor, training: bool, momentum: float = 0.1,
                      eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A correct ``batchnorm2d_forward`` from elementary operations: what the module probe puts in place of
    the student's, so that exercise 1's mistakes stay exercise 1's."""
    shape = (1, -1, 1, 1)
    if training:
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        m = x.numel() // x.shape[1]
        with torch.no_grad():
            new_mean = (1 - momentum) * running_mean + momentum * mean
            new_var = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    else:
        mean, var = running_mean, running_var
        new_mean, new_var = running_mean.clone(), running_var.clone()
    x_hat = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps)
    return gamma.view(shape) * x_hat + beta.view(shape), new_mean, new_var


#: the earlier exercise BatchNorm2dScratch may call
BATCHNORM2D_FORWARD = Earlier("batchnorm2d_forward", 1, reference_forward)


# ---------------------------------------------------------------------------------------------
# batchnorm2d_forward

ARGS = ("x", "gamma", "beta", "running_mean", "running_var")


def _forward_cases(hidden: bool) -> dict[str, Any]:
    cases = [_case(0, (4, 3, 5, 5), momentum=0.1, eps=1e-5), _case(1, (6, 4, 3, 4), momentum=0.3, eps=0.1)]
    if hidden:
        cases += [_case(hidden_generator(3, "batchnorm2d_forward", i), shape, momentum=momentum, eps=eps)
                  for i, shape, momentum, eps in ((2, (2, 5, 7, 3), 0.05, 1e-3), (3, (16, 2, 2, 2), 0.9, 1e-5),
                                                  (4, (3, 8, 6, 6), 0.2, 0.5))]
    out: dict[str, Any] = {"hidden": hidden, "cases": cases,
                           "upstream": torch.randn(cases[0]["x"].shape, generator=seeded(99))}
    if hidden:
        # a double-precision batch must stay double (no hard-coded float32)
        out["double"] = {k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in cases[1].items()}
    return out


class ForwardCall(TypedDict):
    """One call of the student's batchnorm2d_forward on copies of a case."""

    result: Outcome  #: the (out, new_running_mean, new_running_var) returned, or the error
    after: dict[str, torch.Tensor]  #: the copies of x, gamma, beta, running_mean, running_var, after the call


def _forward_once(fn: Any, case: dict[str, Any], training: bool) -> ForwardCall:
    """Probe side: one call on copies of the case; the outcome and the arguments after the call."""
    args = {k: case[k].clone() for k in ARGS}
    outcome = attempt(fn, *(args[k] for k in ARGS), training, case["momentum"], case["eps"],
                      what="batchnorm2d_forward", refuse=REFUSE, instead=INSTEAD)
    return {"result": outcome, "after": args}


#: the inputs of batchnorm2d_forward that feed the backward pass
GRAD_OF = ("gamma", "beta", "x")


class ForwardGradRun(TypedDict, total=False):
    """The training-mode forward and backward pass (``GradientRun``'s keys and requires-grad flags)."""

    out: Any
    connected: bool
    grads: dict[str, torch.Tensor | None]
    param_grads: dict[str, torch.Tensor | None]
    out_requires_grad: bool
    rm_requires_grad: bool
    rv_requires_grad: bool
    shape_of_result: str  #: the type name of what came back instead of a 3-tuple (no other key then)


class ForwardModes(TypedDict):
    """One case of batchnorm2d_forward, called in training mode and in eval mode."""

    train: ForwardCall
    eval: ForwardCall


class ForwardRuns(TypedDict, total=False):
    """Every case in both modes, the gradient run on the first case, and a float64 input (hidden cases)."""

    runs: list[ForwardModes]
    grad: Outcome  #: ``{"value": ForwardGradRun}`` or the error
    double: ForwardCall  #: only when the cases have a float64 input


def _with_grad(fn: Any, case: dict[str, Any], upstream: torch.Tensor) -> ForwardGradRun:
    """Forward in training mode with x, gamma, beta requiring grad, then out.backward(upstream)
    (``_compare.run_backward``); and whether the new running statistics require grad."""
    seen: dict[str, Any] = {}

    def forward(*args: Any) -> Any:
        seen["result"] = fn(*args)
        return seen["result"]

    inputs = {**{k: case[k] for k in ARGS}, "training": True, "momentum": case["momentum"], "eps": case["eps"]}
    run = run_backward(forward, inputs, GRAD_OF, upstream, pick=0)
    result = seen.get("result")
    if not isinstance(result, (tuple, list)) or len(result) != 3:
        return {"shape_of_result": type(result).__name__}
    out, rm, rv = result
    return {**run,
            "out_requires_grad": isinstance(out, torch.Tensor) and out.requires_grad,
            "rm_requires_grad": isinstance(rm, torch.Tensor) and rm.requires_grad,
            "rv_requires_grad": isinstance(rv, torch.Tensor) and rv.requires_grad}


def _probe_forward(fn: Any, cases: dict[str, Any]) -> ForwardRuns:
    runs: list[ForwardModes] = [{"train": _forward_once(fn, c, True), "eval": _forward_once(fn, c, False)}
                                for c in cases["cases"]]
    data: ForwardRuns = {
        "runs": runs,
        "grad": attempt(_with_grad, fn, cases["cases"][0], cases["upstream"], what="batchnorm2d_forward",
                        refuse=REFUSE, instead=INSTEAD),
    }
    if "double" in cases:
        data["double"] = _forward_once(fn, cases["double"], True)
    return data


def _unpack(record: ForwardCall, case: dict[str, Any], mode: str) -> tuple[Any, Any, Any]:
    """The student's (out, new_running_mean, new_running_var), after the checks on the call itself."""
    result = unwrap(record["result"])
    if type(result) not in (tuple, list) or len(result) != 3:
        fail(
            "batchnorm2d_forward should return a tuple (out, new_running_mean, new_running_var), "
            f"got {type_name(result)}" + (f" of length {len(result)}" if type(result) in (tuple, list) else "") + "."
        )
    for name in ARGS:
        after = record["after"][name]
        if type(after) is not torch.Tensor or not torch.equal(after, case[name]):
            fail(
                f"batchnorm2d_forward changed the {name} tensor passed in ({mode} mode), in place (e.g. "
                f"{name}.mul_(...), {name}[:] = ..., or +=): the caller's tensor is modified. Return new tensors "
                "and leave the arguments alone; the module of exercise 2 writes the new statistics into its "
                "buffers itself."
            )
    return tuple(result)  # type: ignore[return-value]


def _judge_train(record: ForwardCall, case: dict[str, Any]) -> None:
    ref_out, ref_rm, ref_rv = _reference(case, training=True)
    out, rm, rv = _unpack(record, case, "training")
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


def _judge_eval(record: ForwardCall, case: dict[str, Any]) -> None:
    ref_out, _, _ = _reference(case, training=False)
    out, rm, rv = _unpack(record, case, "eval")
    expect_shape(out, ref_out.shape, "out (eval mode)", "out must have the shape of x, (N, C, H, W).")
    for got, before, name in [(rm, case["running_mean"], "running_mean"), (rv, case["running_var"], "running_var")]:
        if type(got) is not torch.Tensor:
            fail(f"new_{name} (eval mode) should be a torch.Tensor, got {type_name(got)}.")
        if not _close(got, before):
            fail(
                f"new_{name} changed in eval mode (got {_fmt(got)}, passed in {_fmt(before)}): "
                "in eval mode the running statistics are only read, never updated. Return them unchanged."
            )
    train_out, _, _ = _reference(case, training=True)
    hint = "in eval mode normalise with running_mean and running_var: out = gamma * (x - rm) / sqrt(rv + eps) + beta."
    if _close(out, train_out):
        hint = (
            "in eval mode you normalised with the batch statistics. Eval mode uses running_mean and "
            "running_var, so one image's output does not depend on the rest of the batch."
        )
    expect_close(out, ref_out, "out (eval mode)", rtol=RTOL, atol=ATOL, hint=hint)


@judge_only
def _bn_train(x: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, running_mean: torch.Tensor,
              running_var: torch.Tensor, training: bool, momentum: float, eps: float) -> torch.Tensor:
    """nn.BatchNorm2d's training-mode output, differentiable in x, gamma and beta (judge side)."""
    return F.batch_norm(x, running_mean.clone(), running_var.clone(), gamma, beta, training, momentum, eps)


def _judge_grad(info: ForwardGradRun, case: dict[str, Any], upstream: torch.Tensor) -> None:
    """Gradients must flow through the batch statistics, exactly as in nn.BatchNorm2d."""
    if "shape_of_result" in info:
        fail("batchnorm2d_forward should return a tuple (out, new_running_mean, new_running_var).")
    if info["out_requires_grad"] is not True:
        fail(
            "out is not connected to autograd: gradients cannot reach x, gamma and beta. Avoid .detach(), "
            "torch.no_grad(), .item() and NumPy in the computation of out."
        )
    for name, key in [("new_running_mean", "rm_requires_grad"), ("new_running_var", "rv_requires_grad")]:
        if info[key] is True:
            fail(
                f"{name} requires grad: it is a statistic, not a learned value. Compute the running "
                "update from detached batch statistics (under torch.no_grad() or with .detach()), as "
                "nn.BatchNorm2d does; otherwise each step's graph stays alive inside the buffer."
            )
    inputs = {**{k: case[k] for k in ARGS}, "training": True, "momentum": case["momentum"], "eps": case["eps"]}
    judge_gradients(
        info, _bn_train, inputs, GRAD_OF, what="batchnorm2d_forward", rtol=GRAD_RTOL, atol=GRAD_ATOL,
        upstream=upstream, label=lambda name: f"{name}.grad",
        detached=lambda name: (f"{name}.grad is None: out does not depend on {name} through autograd." if name != "x"
                               else "x.grad is None: out does not depend on x through autograd."),
        hints={"gamma": "out = gamma * x_hat + beta.", "beta": "out = gamma * x_hat + beta.",
               "x": "the gradient must flow through the batch mean and variance too: do not .detach() them "
                    "when you compute out (only the running-statistics update is detached)."},
    )


def _judge_forward(cases: dict[str, Any], data: ForwardRuns) -> str:
    """batchnorm2d_forward(x, gamma, beta, running_mean, running_var, training, momentum, eps)."""
    for case, run in zip(cases["cases"], data["runs"], strict=True):
        _judge_train(run["train"], case)
        _judge_eval(run["eval"], case)
    _judge_grad(unwrap(data["grad"]), cases["cases"][0], cases["upstream"])
    if "double" in cases:
        out, _, _ = _unpack(data["double"], cases["double"], "training")
        if type(out) is not torch.Tensor:
            fail(f"out (float64 input) should be a torch.Tensor, got {type_name(out)}.")
        expect(out.dtype == torch.float64, f"out is {out.dtype} for a float64 input: keep the input's dtype.")
    return (f"batchnorm2d_forward matches nn.BatchNorm2d in training and eval mode ({len(cases['cases'])} cases, "
            "running statistics and gradients included).")


check_batchnorm2d_forward = exercise("batchnorm2d_forward", _probe_forward, _judge_forward, _forward_cases)


# --------------------------------------------------------------------------------------------
# BatchNorm2dScratch


def _module_cases(hidden: bool) -> dict[str, Any]:
    """Trained nn.BatchNorm2d states to load, then steps of (mode, batch) to run side by side."""
    settings = [(4, 1e-5, 0.1), (3, 0.1, 0.3)] + ([(5, 1e-3, 0.05)] if hidden else [])
    runs = []
    for i, (c, eps, momentum) in enumerate(settings):
        g = seeded(100 + i) if i < 2 else hidden_generator(3, "batchnorm2d_scratch", i)
        state = {
            "weight": torch.rand(c, generator=g) + 0.5,
            "bias": torch.randn(c, generator=g),
            "running_mean": torch.randn(c, generator=g),
            "running_var": torch.rand(c, generator=g) + 0.5,
            "num_batches_tracked": torch.tensor(7),
        }
        steps = [("train", 4), ("train", 8), ("eval", 5), ("train", 2)]
        batches = [(mode, torch.randn(n, c, 3, 4, generator=g) * 2 + 1) for mode, n in steps]
        if hidden:  # more steps, their batches from the instructor's secret
            h = hidden_generator(3, "batchnorm2d_scratch", 10 + i)
            batches += [(mode, torch.randn(n, c, 3, 4, generator=h) * 2 + 1)
                        for mode, n in (("eval", 1), ("train", 16))]
        runs.append({"c": c, "eps": eps, "momentum": momentum, "state": state, "steps": batches})
    double_x = (torch.randn(4, 3, 2, 2, generator=hidden_generator(3, "batchnorm2d_scratch", 20), dtype=torch.float64)
                if hidden else None)
    return {"hidden": hidden, "runs": runs,
            "grad_x": torch.randn(4, 3, 2, 2, generator=seeded(7)),
            "grad_upstream": torch.randn(4, 3, 2, 2, generator=seeded(8)),
            "double_x": double_x}


def _make(cls: Any, *args: Any, **kwargs: Any) -> nn.Module:
    what = f"BatchNorm2dScratch({', '.join([*map(repr, args), *(f'{k}={v!r}' for k, v in kwargs.items())])})"
    module = call(cls, *args, what=what, **kwargs)
    if not isinstance(module, nn.Module):
        fail(f"{what} is not an nn.Module (got {type(module).__name__}).")
    return module


def _state_dict(module: nn.Module) -> dict[str, Any]:
    return dict(call(module.state_dict, what="BatchNorm2dScratch.state_dict"))


def _forward_module(module: nn.Module, x: torch.Tensor) -> Any:
    return call(module, x, what="BatchNorm2dScratch.forward", refuse=REFUSE, instead=INSTEAD)


def _grad_run(module: nn.Module, x: torch.Tensor, upstream: torch.Tensor) -> GradientRun:
    """The module's forward and backward pass: gradients of x and of its parameters (``run_backward``)."""
    return dict(run_backward(module, {"x": x}, ["x"], upstream, module=module))


class FreshModule(TypedDict):
    """A freshly built ``BatchNorm2dScratch(3)``: its parameters, buffers and state_dict keys."""

    params: dict[str, torch.Tensor]
    param_types: dict[str, str]  #: the qualified class name of each parameter
    buffers: dict[str, torch.Tensor]
    state_keys: list[str]


class ModuleStep(TypedDict):
    """One forward pass of the loaded module: its output and its buffers afterwards."""

    out: Any
    buffers: dict[str, torch.Tensor]


class ModuleRecord(TypedDict, total=False):
    """A trained nn.BatchNorm2d's state loaded into the student's module, then its steps run."""

    steps: list[ModuleStep]  #: always (so far as they ran)
    state: dict[str, Any]  #: the module's state_dict after the last step


class ModuleRun(TypedDict, total=False):
    """One run of the module probe (``_module_probe_once``): every part up to the first error."""

    fresh: FreshModule
    runs: list[ModuleRecord]
    grad: GradientRun  #: the forward and backward pass of ``BatchNorm2dScratch(3)``
    double: ModuleStep  #: after ``.double()``, on a float64 input (hidden cases)
    error: str  #: the first error, where the run stopped


class ModuleProbe(TypedDict, total=False):
    """The student's class: its MRO and its runs under the cascade rule, or what came instead of a class."""

    not_a_class: str  #: the type name of what the notebook defines (no other key then)
    mro: list[str]  #: qualified class names
    runs: CascadeRuns  #: each run a ``ModuleRun``


def _module_probe_once(cls: Any, cases: dict[str, Any]) -> ModuleRun:
    """Probe side: build, load, run and describe the student's module; stops at the first error."""
    data: ModuleRun = {}
    try:
        fresh = _make(cls, 3)
        data["fresh"] = {"params": {k: v for k, v in fresh.named_parameters()},
                         "param_types": {k: qualname(type(v)) for k, v in fresh.named_parameters()},
                         "buffers": {k: v for k, v in fresh.named_buffers()},
                         "state_keys": sorted(_state_dict(fresh))}
        runs: list[ModuleRecord] = []
        for run in cases["runs"]:
            module = _make(cls, run["c"], eps=run["eps"], momentum=run["momentum"])
            record: ModuleRecord = {"steps": []}
            runs.append(record)
            call(module.load_state_dict, {k: v.clone() for k, v in run["state"].items()},
                 what="BatchNorm2dScratch.load_state_dict (nn.BatchNorm2d's state_dict)")
            for mode, x in run["steps"]:
                call(module.train, mode == "train", what=f"BatchNorm2dScratch.train({mode == 'train'})")
                with torch.no_grad():
                    out = _forward_module(module, x.clone())
                buffers = {k: v.detach().clone() for k, v in module.named_buffers()}
                record["steps"].append({"out": out, "buffers": buffers})
            record["state"] = _state_dict(module)
        data["runs"] = runs
        module = _make(cls, 3)
        data["grad"] = call(_grad_run, module, cases["grad_x"].clone(), cases["grad_upstream"],
                            what="BatchNorm2dScratch.forward", refuse=REFUSE, instead=INSTEAD)
        if cases.get("double_x") is not None:
            module = call(_make(cls, 3).double, what="BatchNorm2dScratch(3).double()")
            out = _forward_module(module, cases["double_x"].clone())
            data["double"] = {"out": out, "buffers": {k: v for k, v in module.named_buffers()}}
    except CheckFailure as err:
        data["error"] = str(err)
    return data


def _probe_module(cls: Any, cases: dict[str, Any]) -> ModuleProbe:
    """The student's class with a reference batchnorm2d_forward in place of theirs (the cascade rule), and
    as written when it uses theirs."""
    if not inspect.isclass(cls):
        return {"not_a_class": type_name(cls) if cls is not None else "None"}
    return {"mro": [qualname(k) for k in cls.__mro__],
            "runs": dict(cascade_runs((cls,), [BATCHNORM2D_FORWARD], lambda: _module_probe_once(cls, cases)))}


def _judge_module_run(cases: dict[str, Any], data: ModuleRun) -> None:
    if "error" in data and "fresh" not in data:
        fail(data["error"])
    # 1. a fresh module: parameters, buffers, initial values, state_dict keys
    fresh = data["fresh"]
    params, buffers = fresh["params"], fresh["buffers"]
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
    ref = nn.BatchNorm2d(3)
    for name, tensor in [*params.items(), *buffers.items()]:
        want = ref.state_dict()[name]
        expect_shape(tensor, want.shape, f"{name} of BatchNorm2dScratch(3)",
                     f"nn.BatchNorm2d(3) has {tuple(want.shape)}.")
        expect(
            tensor.dtype == want.dtype,
            f"{name} has dtype {tensor.dtype}, expected {want.dtype}"
            + (": num_batches_tracked is an integer count, torch.tensor(0, dtype=torch.long)."
               if name == "num_batches_tracked" else "."),
        )
        expect(
            torch.equal(tensor, want),
            f"{name} starts at {_fmt(tensor)}, expected {_fmt(want)}: "
            "weight starts at ones, bias at zeros, running_mean at zeros, running_var at ones, "
            "num_batches_tracked at 0.",
        )
    keys, ref_keys = set(fresh["state_keys"]), set(ref.state_dict())
    expect(keys == ref_keys,
           f"state_dict keys are {sorted(keys)}, expected {sorted(ref_keys)}: no extra buffers or submodules.")
    # 2. a trained nn.BatchNorm2d's state loaded into the student's module; both run side by side
    for run, record in zip(cases["runs"], data.get("runs", []), strict=False):
        c, eps, momentum = run["c"], run["eps"], run["momentum"]
        ref = nn.BatchNorm2d(c, eps=eps, momentum=momentum)
        ref.load_state_dict(run["state"])
        for j, ((mode, x), step) in enumerate(zip(run["steps"], record["steps"], strict=False)):
            ref.train(mode == "train")
            with torch.no_grad():
                want = ref(x)
            got = step["out"]
            expect_shape(got, x.shape, "BatchNorm2dScratch output", "the output has the shape of the input.")
            hint = _module_hint(got, x, ref, run, mode)
            expect_close(got, want, f"output of step {j + 1} ({mode} mode)", rtol=RTOL, atol=ATOL, hint=hint)
            _compare_buffers(step["buffers"], ref, f"after step {j + 1} ({mode} mode)", momentum)
        if len(record["steps"]) < len(run["steps"]) or "state" not in record:
            break
        # 3. and back: the student's state loads into nn.BatchNorm2d and reproduces its buffers
        back = nn.BatchNorm2d(c, eps=eps, momentum=momentum)
        try:
            back.load_state_dict(record["state"])
        except Exception as err:  # noqa: BLE001
            fail(f"BatchNorm2dScratch's state_dict does not load into nn.BatchNorm2d: {err}")
        for name, value in ref.state_dict().items():
            expect_close(back.state_dict()[name].double(), value.double(), f"{name} loaded back into nn.BatchNorm2d",
                         rtol=RTOL, atol=ATOL)
    if "error" in data:
        fail(data["error"])
    # 4. gradients reach weight and bias, and x through the batch statistics
    ref = nn.BatchNorm2d(3)
    x = cases["grad_x"].clone().requires_grad_(True)
    ref(x).backward(cases["grad_upstream"])
    grad = data.get("grad") if type(data.get("grad")) is dict else {}
    params = grad.get("param_grads") if type(grad.get("param_grads")) is dict else {}
    inputs = grad.get("grads") if type(grad.get("grads")) is dict else {}
    run = {"connected": grad.get("connected"), "grads": {**params, "x": inputs.get("x")}}
    judge_gradients(
        run, {"weight": ref.weight.grad, "bias": ref.bias.grad, "x": x.grad}, {}, ("weight", "bias", "x"),
        what="BatchNorm2dScratch", rtol=GRAD_RTOL, atol=GRAD_ATOL, label=lambda name: f"{name}.grad",
        not_connected="the output is not connected to autograd: weight and bias would never learn.",
        detached=lambda name: (f"{name}.grad is None after backward: use self.{name} in forward." if name != "x" else
                               "no gradient reaches x: did you .detach() it (or the batch mean and variance)? "
                               "The gradient must flow through the batch statistics, as in nn.BatchNorm2d."),
        hints={"x": "the gradient must flow through the batch mean and variance too: do not .detach() them "
                    "when you compute the output (only the running-statistics update is detached)."},
    )
    if "double" in data:
        out, buffers = data["double"]["out"], data["double"]["buffers"]
        expect(type(out) is torch.Tensor and out.dtype == torch.float64,
               f"output is {getattr(out, 'dtype', type_name(out))} after .double(): keep the input's dtype.")
        expect(buffers.get("running_mean") is not None and buffers["running_mean"].dtype == torch.float64,
               "running_mean did not follow .double(): register it with register_buffer.")


def _module_hint(got: Any, x: torch.Tensor, ref: nn.BatchNorm2d, run: dict[str, Any], mode: str) -> str:
    """Name the mistake behind a wrong output of the module."""
    if mode == "eval":
        return "in eval mode use the running statistics (check self.training); in training mode the batch's."
    if type(got) is torch.Tensor and run["eps"] != 1e-5:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
        w, b = ref.weight.detach().view(1, -1, 1, 1), ref.bias.detach().view(1, -1, 1, 1)
        if _close(got, w * (x - mean) / torch.sqrt(var + 1e-5) + b):
            return f"eps is hard-coded to 1e-5: pass self.eps (here {run['eps']}) to the computation."
    return "in training mode normalise with the batch mean and biased variance over dim=(0, 2, 3)."


def _compare_buffers(got: dict[str, Any], ref: nn.BatchNorm2d, when: str, momentum: float) -> None:
    for name in ("running_mean", "running_var"):
        if name not in got:
            fail(f"buffer {name} is gone {when}: keep it a registered buffer, assign into it with .copy_().")
        hint = "update the buffers with running = (1 - momentum) * running + momentum * batch statistic"
        if name == "running_var":
            hint += " (unbiased batch variance)"
        hint += " in training mode only; assign into the buffer (self.running_mean = ... or .copy_)."
        if momentum != 0.1:
            hint += f" Pass self.momentum (here {momentum}), not a fixed 0.1."
        expect_close(got[name], getattr(ref, name), f"{name} {when}", rtol=RTOL, atol=ATOL, hint=hint)
    nbt, ref_nbt = got.get("num_batches_tracked"), ref.num_batches_tracked
    expect(
        type(nbt) is torch.Tensor and nbt.numel() == 1 and int(nbt) == int(ref_nbt),
        f"num_batches_tracked {when} is {nbt if type(nbt) is not torch.Tensor else int(nbt)}, expected "
        f"{int(ref_nbt)}: add 1 on every training-mode forward, never in eval mode.",
    )


def _judge_module(cases: dict[str, Any], data: ModuleProbe) -> str:
    """BatchNorm2dScratch(num_features, eps=1e-5, momentum=0.1): an nn.Module like nn.BatchNorm2d."""
    if "not_a_class" in data:
        fail(f"BatchNorm2dScratch should be a class derived from nn.Module, got {data['not_a_class']}.")
    mro = data["mro"]
    if qualname(nn.Module) not in mro:
        fail("BatchNorm2dScratch should be a class derived from nn.Module.")
    if qualname(nn.modules.batchnorm._NormBase) in mro:
        fail("BatchNorm2dScratch derives from PyTorch's BatchNorm classes: derive from nn.Module and write it "
             "yourself.")
    done = ("BatchNorm2dScratch behaves like nn.BatchNorm2d in both modes, and its state_dict loads into "
            "nn.BatchNorm2d and back.")

    def grade(run: Any) -> str:
        _judge_module_run(cases, run)
        return done

    return judge_cascade(data["runs"], grade, "BatchNorm2dScratch", [BATCHNORM2D_FORWARD], note=_module_note)


def _module_note(message: str, this: str, culprits: list[Earlier], replaced: list[Earlier], own: str | None) -> str:
    if own is None:
        return ("BatchNorm2dScratch is right with a correct batchnorm2d_forward in place of yours, which is not "
                "defined (its cell did not run or was refused): fix exercise 1 first.")
    return (f"BatchNorm2dScratch is right with a correct batchnorm2d_forward, but with yours it fails "
            f"({own}): fix exercise 1 first.")


check_batchnorm2d_scratch = exercise("batchnorm2d_scratch", _probe_module, _judge_module, _module_cases)


# --------------------------------------------------------------------------------------------
# batchnorm2d_backward


def _backward_cases(hidden: bool) -> dict[str, Any]:
    shapes = [(0, (4, 3, 5, 5), 1e-5), (1, (6, 4, 3, 4), 0.1)]
    if hidden:
        shapes += [(2, (2, 5, 7, 3), 1e-3), (3, (16, 2, 2, 2), 1e-5), (4, (3, 8, 6, 6), 0.5)]
    cases = []
    for seed, shape, eps in shapes:
        if seed < 2:  # the visible cases: fixed seeds
            c = _case(seed, shape, momentum=0.1, eps=eps)
            dout = torch.randn(shape, generator=seeded(200 + seed)) * 2 + 0.3
        else:  # hidden: the values from the instructor's secret
            g = hidden_generator(3, "batchnorm2d_backward", seed)
            c = _case(g, shape, momentum=0.1, eps=eps)
            dout = torch.randn(shape, generator=g) * 2 + 0.3
        cases.append({"dout": dout, "x": c["x"], "gamma": c["gamma"], "eps": eps})
    if hidden:
        cases.append({k: (v.double() if isinstance(v, torch.Tensor) else v) for k, v in cases[1].items()})
    return {"hidden": hidden, "cases": cases}


class BackwardCall(TypedDict):
    """One call of the student's batchnorm2d_backward on copies of a case."""

    result: Outcome  #: the (dx, dgamma, dbeta) returned, or the error (autograd's use included)
    after: dict[str, torch.Tensor]  #: the copies of dout, x, gamma, after the call


class BackwardRuns(TypedDict):
    """batchnorm2d_backward on every case."""

    runs: list[BackwardCall]


def _probe_backward(fn: Any, cases: dict[str, Any]) -> BackwardRuns:
    runs: list[BackwardCall] = []
    for case in cases["cases"]:
        args = {k: case[k].clone() for k in ("dout", "x", "gamma")}
        watch = NoAutograd()
        with watch:
            outcome = attempt(fn, args["dout"], args["x"], args["gamma"], case["eps"], what="batchnorm2d_backward",
                              refuse=REFUSE, instead=BACKWARD_INSTEAD)
        if watch.hits and "value" in outcome:
            outcome = {"error": f"batchnorm2d_backward calls {watch.hits[0]}: autograd computes the gradients this "
                                f"exercise asks you to write. {BACKWARD_INSTEAD}"}
        runs.append({"result": outcome, "after": args})
    return {"runs": runs}


@judge_only
def _reference_backward(case: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dx, dgamma, dbeta of nn.BatchNorm2d in training mode, by autograd (judge side)."""
    x = case["x"].clone().requires_grad_(True)
    c = x.shape[1]
    bn = nn.BatchNorm2d(c, eps=case["eps"]).to(x.dtype)
    with torch.no_grad():
        bn.weight.copy_(case["gamma"])
    bn(x).backward(case["dout"])
    assert x.grad is not None and bn.weight.grad is not None and bn.bias.grad is not None
    return x.grad, bn.weight.grad, bn.bias.grad


@judge_only
def _backward_mistakes(case: dict[str, Any]) -> dict[str, list[tuple[torch.Tensor, str | None]]]:
    """Each usual mistake of the backward pass, recomputed on the case: dx, dgamma, dbeta candidates."""
    dout, x, gamma, eps = (case[k].double() if isinstance(case[k], torch.Tensor) else case[k]
                           for k in ("dout", "x", "gamma", "eps"))
    dims, shape = (0, 2, 3), (1, -1, 1, 1)
    m = x.numel() // x.shape[1]
    n = x.shape[0]
    mean = x.mean(dim=dims, keepdim=True)
    var = x.var(dim=dims, unbiased=False, keepdim=True)
    var_u = x.var(dim=dims, unbiased=True, keepdim=True)
    g = gamma.view(shape)

    def full(v: torch.Tensor, count: float, scale: torch.Tensor | float, e: float = eps) -> torch.Tensor:
        std = torch.sqrt(v + e)
        xh = (x - mean) / std
        dxh = dout * scale
        return (dxh - dxh.sum(dims, keepdim=True) / count - xh * (dxh * xh).sum(dims, keepdim=True) / count) / std

    std = torch.sqrt(var + eps)
    xh = (x - mean) / std
    dxh = dout * g
    dx = [
        (full(var, m, g), None),
        (dxh / std, "dx treats the batch mean and variance as constants: they depend on x too. "
         "dx = (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) / sqrt(var + eps), with dx_hat = dout * gamma "
         "and the means over (N, H, W)."),
        ((dxh - dxh.mean(dims, keepdim=True)) / std,
         "the variance term is missing: subtract x_hat * mean(dx_hat * x_hat) too, the path through the variance."),
        ((dxh - xh * (dxh * xh).mean(dims, keepdim=True)) / std,
         "the mean term is missing: subtract mean(dx_hat) over (N, H, W), the path through the batch mean."),
        (full(var_u, m, g), "you used the unbiased variance (divide by m - 1): the forward pass normalises with the "
         "biased one (divide by m = N * H * W), and so does its gradient."),
        (full(var, n, g), f"the means in dx divide by N = {n}, the batch size: each channel's statistics are "
         f"taken over m = N * H * W = {m} values, so divide by m."),
        (full(var, m, 1.0), "gamma is missing from dx: dx_hat = dout * gamma, since out = gamma * x_hat + beta."),
        (full(var, m, g, 0.0), "eps is missing: sqrt(var + eps) as in the forward pass."),
    ]
    dgamma = [
        ((dout * xh).sum(dims), None),
        ((dout * xh).mean(dims), "dgamma is the mean of dout * x_hat; it is the SUM over (N, H, W): every position "
         "adds its own contribution."),
        ((dout * x).sum(dims), "dgamma = sum(dout * x_hat) over (N, H, W), with the normalised x_hat, not x."),
        (dout.sum(dims), "dgamma and dbeta are swapped: dgamma = sum(dout * x_hat), dbeta = sum(dout)."),
    ]
    dbeta = [
        (dout.sum(dims), None),
        (dout.mean(dims), "dbeta is the mean of dout; it is the SUM over (N, H, W)."),
        ((dout * xh).sum(dims), "dgamma and dbeta are swapped: dgamma = sum(dout * x_hat), dbeta = sum(dout)."),
    ]
    return {"dx": dx, "dgamma": dgamma, "dbeta": dbeta}


def _judge_backward(cases: dict[str, Any], data: BackwardRuns) -> str:
    """batchnorm2d_backward(dout, x, gamma, eps) -> (dx, dgamma, dbeta), against autograd through nn.BatchNorm2d."""
    for case, record in zip(cases["cases"], data["runs"], strict=True):
        result = unwrap(record["result"])
        if type(result) not in (tuple, list) or len(result) != 3:
            fail("batchnorm2d_backward should return a tuple (dx, dgamma, dbeta), got "
                 f"{type_name(result)}" + (f" of length {len(result)}" if type(result) in (tuple, list) else "") + ".")
        for name in ("dout", "x", "gamma"):
            after = record["after"][name]
            if type(after) is not torch.Tensor or not torch.equal(after, case[name]):
                fail(f"batchnorm2d_backward changed the {name} tensor passed in (in place): compute new tensors.")
        c = case["x"].shape[1]
        mistakes = _backward_mistakes(case)
        for name, got, want in zip(("dx", "dgamma", "dbeta"), result, _reference_backward(case), strict=True):
            if type(got) is not torch.Tensor:
                fail(f"{name} should be a torch.Tensor, got {type_name(got)}.")
            if name != "dx" and tuple(got.shape) != (c,):
                if got.numel() == c:
                    fail(f"{name} has shape {tuple(got.shape)}, expected ({c},), one value per channel like gamma: "
                         "sum without keepdim, or .view(-1).")
                fail(f"{name} has shape {tuple(got.shape)}, expected ({c},): sum over the batch and both spatial "
                     "axes, dim=(0, 2, 3), since gamma and beta are shared by all N * H * W positions.")
            if got.dtype != case["x"].dtype:
                fail(f"{name} is {got.dtype} for {case['x'].dtype} inputs: keep the input's dtype.")
            hint = _nearest(got, mistakes[name]) or {
                "dx": "dx = (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) / sqrt(var + eps), dx_hat = "
                      "dout * gamma, means over (N, H, W) and the biased variance.",
                "dgamma": "dgamma = sum of dout * x_hat over (N, H, W).",
                "dbeta": "dbeta = sum of dout over (N, H, W).",
            }[name]
            expect_close(got, want, f"{name} for x of shape {tuple(case['x'].shape)}", rtol=GRAD_RTOL,
                         atol=GRAD_ATOL, hint=hint)
    return f"batchnorm2d_backward matches autograd through nn.BatchNorm2d ({len(cases['cases'])} cases)."


check_batchnorm2d_backward = exercise("batchnorm2d_backward", _probe_backward, _judge_backward, _backward_cases)
