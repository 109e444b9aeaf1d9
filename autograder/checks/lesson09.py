"""Checks for lesson 09: the Fréchet distance between two Gaussians, and spherical interpolation.

Both are cases -> probe -> judge (``_core.exercise``): the grader makes seeded inputs, the probe
calls the student's function on copies of them (recording in-place changes) and returns the
values; the judge compares with ``dcgan_ref.evaluate`` and, when the answer is off, recomputes
the classic mistakes on the same inputs to say which one it matches: a missing factor 2 on the
trace term, the square root of the sum instead of the product, ``eigvalsh`` on the
non-symmetric product, the square root of the trace, the product of the two square roots, the
mean term forgotten or not squared, a complex residue left in the result, the distance's square
root returned; for slerp, plain linear interpolation, t reversed, the unit vectors interpolated,
and NaN for parallel vectors. Calling ``dcgan_ref`` from the answer is refused by ``_core.call``.
"""

from __future__ import annotations

import math
from typing import Any, TypedDict

import torch

from dcgan_ref.evaluate import frechet_distance as ref_frechet_distance
from dcgan_ref.evaluate import slerp as ref_slerp

from ._compare import close_number
from ._core import (
    Outcome,
    attempt,
    exercise,
    expect,
    expect_close,
    expect_shape,
    fail,
    hidden_generator,
    seeded,
    unwrap,
)
from ._plain import marker, type_name

#: what the notebook's course cells import when they run (``dcgan_ref.fid``, through ``dcgan_ref.evaluate``):
#: a sandbox template imports it with this module, not every probe child (``checks.import_lessons``)
SERVER_IMPORTS = ("dcgan_ref.fid",)

# --------------------------------------------------------------------------- Fréchet distance

# Inputs are float64 and well conditioned (eigenvalues of each covariance in [0.1, ~4]); any
# correct route (eigenvalues of S1 S2, scipy's sqrtm, S1^1/2 S2 S1^1/2) agrees to ~1e-10. 1e-5
# relative still accepts a student who computes in float32; every named mistake moves the value by
# more than 1 % on these inputs.
FD_RTOL = 1e-5
FD_ATOL = 1e-6
# "Does the answer match this mistake?": looser than the check itself.
MATCH_RTOL = 1e-3


def _spd(d: int, g: torch.Generator, rank: int | None = None) -> torch.Tensor:
    """A random symmetric positive (semi-)definite d x d matrix, float64."""
    a = torch.randn(d, rank or d, generator=g, dtype=torch.float64)
    s = a @ a.T / (rank or d)
    return s if rank is not None else s + 0.1 * torch.eye(d, dtype=torch.float64)


def _fd_cases(hidden: bool) -> list[tuple[str, tuple[torch.Tensor, ...]]]:
    """(description, (mu1, sigma1, mu2, sigma2)): non-commuting covariances, different means."""
    cases = []
    dims = [(4, seeded(900))]
    if hidden:  # shapes public, values from the instructor's secret
        dims += [(d, hidden_generator(9, "frechet_distance", i)) for i, d in enumerate((1, 16, 64))]
    for d, g in dims:
        mu1, mu2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
        cases.append((f"two {d}-d Gaussians", (mu1, _spd(d, g), mu2, _spd(d, g))))
    if hidden:
        g = hidden_generator(9, "frechet_distance", 3)
        mu, s = torch.randn(8, generator=g, dtype=torch.float64), _spd(8, g)
        cases.append(("a Gaussian and itself (distance 0)", (mu, s, mu.clone(), s.clone())))
        # singular covariances, as with fewer images than feature dimensions: the eigenvalues of
        # S1 S2 include zeros that round to tiny negative or complex numbers
        mu1, mu2 = torch.randn(12, generator=g, dtype=torch.float64), torch.randn(12, generator=g, dtype=torch.float64)
        cases.append(("12-d Gaussians with rank-5 covariances", (mu1, _spd(12, g, 5), mu2, _spd(12, g, 5))))
    return cases


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    evals, evecs = torch.linalg.eigh((m + m.T) / 2)
    return evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T


def _fd_mistakes(mu1: torch.Tensor, s1: torch.Tensor, mu2: torch.Tensor, s2: torch.Tensor) -> list[tuple[str, float]]:
    """The value each classic mistake gives on these inputs, with the hint that names it."""
    mean_sq = float((mu1 - mu2) @ (mu1 - mu2))
    tr = float(torch.trace(s1) + torch.trace(s2))
    tr_covmean = float(torch.linalg.eigvals(s1 @ s2).sqrt().real.sum())
    tr_sqrt_sum = float(torch.trace(_sqrtm_psd(s1 + s2)))
    return [*{
        "the trace term misses its factor 2: it is tr(S1 + S2 - 2 (S1 S2)^(1/2))":
            mean_sq + tr - tr_covmean,
        "the square root is of the sum S1 + S2; it should be of the product S1 @ S2":
            mean_sq + tr - 2 * tr_sqrt_sum,
        "the mean term ||mu1 - mu2||^2 is missing":
            tr - 2 * tr_covmean,
        "the mean term should be the *squared* distance ||mu1 - mu2||^2, not the distance":
            math.sqrt(mean_sq) + tr - 2 * tr_covmean,
        "the product is elementwise (S1 * S2); the formula needs the matrix product S1 @ S2":
            mean_sq + tr - 2 * float(torch.trace(_sqrtm_psd(s1 * s2))),
        "it takes the square root of the trace, sqrt(tr(S1 S2)); the formula needs the trace of the square "
        "root, tr((S1 S2)^(1/2)) = the sum of the square roots of the eigenvalues of S1 @ S2":
            mean_sq + tr - 2 * math.sqrt(max(float(torch.trace(s1 @ s2)), 0.0)),
        "it multiplies the two square roots, tr(S1^(1/2) S2^(1/2)); the formula needs the square root of the "
        "product, (S1 S2)^(1/2), whose trace is the sum of the square roots of the eigenvalues of S1 @ S2":
            mean_sq + tr - 2 * float(torch.trace(_sqrtm_psd(s1) @ _sqrtm_psd(s2))),
        "it takes the elementwise square root of S1 @ S2 (torch.sqrt); the formula needs the matrix square "
        "root, through the eigenvalues of S1 @ S2":
            mean_sq + tr - 2 * float(torch.sqrt(torch.diagonal(s1 @ s2)).sum()),
        "it returns the square root of the distance: the Frechet distance (and FID) is d^2 itself, "
        "||mu1 - mu2||^2 + tr(...), without a final square root":
            math.sqrt(max(mean_sq + tr - 2 * tr_covmean, 0.0)),
    }.items(), *((EIGVALSH, mean_sq + tr - 2 * v) for v in _eigvalsh_traces(s1 @ s2))]  # fmt: skip


EIGVALSH = (
    "eigvalsh on S1 @ S2: eigvalsh is for symmetric matrices and reads only one triangle, but the product "
    "of two covariance matrices is not symmetric, so its eigenvalues come out wrong. Use "
    "torch.linalg.eigvals (complex), or eigh on the symmetric S1^(1/2) S2 S1^(1/2)"
)


def _eigvalsh_traces(m: torch.Tensor) -> list[float]:
    """The trace term as eigvalsh on the non-symmetric product gives it, for either triangle, with the
    negative eigenvalues clamped, made absolute, or dropped by a complex square root's real part."""
    out = []
    for uplo in ("L", "U"):
        ev = torch.linalg.eigvalsh(m, UPLO=uplo)
        out += [float(ev.clamp(min=0).sqrt().sum()), float(ev.abs().sqrt().sum())]
    return out


def _as_real_number(value: Any, what: str) -> float:
    """Judge side: a Python float (or int), a real NumPy scalar or a one-element real tensor; a
    complex result and anything else fail with a message that says what came back."""
    kind = marker(value)
    if type(value) is torch.Tensor:
        expect(value.numel() == 1, f"{what} should be a single number, got a tensor of shape {tuple(value.shape)}.")
        if value.is_complex():
            fail(
                f"{what} is complex ({value.item()}): the eigenvalues or the matrix square root of S1 S2 "
                "come back complex, with tiny imaginary parts from rounding. Keep the real part "
                "(.real) before summing and returning."
            )
        return float(value.item())
    if type(value) in (float, int):
        return float(value)
    if kind == "__numpy__" and type(value.get("value")) in (float, int):
        return float(value["value"])
    name = type_name(value)
    if "complex" in name:
        fail(
            f"{what} is complex ({name}): the eigenvalues or the matrix square root of S1 S2 come "
            "back complex, with tiny imaginary parts from rounding. Keep the real part (.real)."
        )
    fail(f"{what} should be a number (float), got {name}.")


def _fd_case_list(hidden: bool) -> list[dict[str, Any]]:
    return [{"desc": desc, "args": list(args)} for desc, args in _fd_cases(hidden)]


class FdCall(TypedDict):
    """One call of the student's frechet_distance on copies of a case's arguments."""

    outcome: Outcome
    changed: bool  #: some argument was changed in place


class FdRuns(TypedDict):
    """frechet_distance on every case, and on the first case with the two distributions swapped."""

    results: list[FdCall]
    swapped: Outcome  #: d(b, a) for the first case


def _probe_frechet_distance(fn: Any, cases: list[dict[str, Any]]) -> FdRuns:
    """The student's distance on each case (on copies: in-place changes are recorded), and d(b, a)."""
    results: list[FdCall] = []
    for case in cases:
        args = [t.clone() for t in case["args"]]
        outcome = attempt(fn, *args, what="frechet_distance")
        changed = not all(torch.equal(a, b) for a, b in zip(args, case["args"], strict=True))
        results.append({"outcome": outcome, "changed": changed})
    mu1, s1, mu2, s2 = (t.clone() for t in cases[0]["args"])
    swapped = attempt(fn, mu2, s2, mu1, s1, what="frechet_distance")
    return {"results": results, "swapped": swapped}


def _judge_frechet_distance(cases: list[dict[str, Any]], data: FdRuns) -> str:
    """Each value against dcgan_ref.evaluate.frechet_distance; a wrong one is matched to a named mistake."""
    for case, res in zip(cases, data["results"], strict=True):
        desc, (mu1, s1, mu2, s2) = case["desc"], case["args"]
        got = _as_real_number(unwrap(res["outcome"]), f"frechet_distance on {desc}")
        expect(res["changed"] is False, "frechet_distance changed its inputs in place: work on copies.")
        expected = ref_frechet_distance(mu1, s1, mu2, s2)
        if math.isnan(got):
            fail(
                f"frechet_distance on {desc} is NaN, expected {expected:.6g}: an elementwise "
                "torch.sqrt of a matrix, the square root of a slightly negative eigenvalue, or eigvalsh "
                "on the non-symmetric S1 @ S2 (which reads one triangle only and gives negative "
                "eigenvalues)? Take the eigenvalues with torch.linalg.eigvals, the square root in complex "
                "arithmetic, and keep the real part."
            )
        if close_number(got, expected, rtol=FD_RTOL, atol=FD_ATOL):  # NaN and inf never close
            continue
        hint = next(
            (h for h, v in _fd_mistakes(mu1, s1, mu2, s2)
             if not math.isnan(v) and close_number(got, v, atol=MATCH_RTOL * max(1.0, abs(v)))),
            "check the formula ||mu1 - mu2||^2 + tr(S1) + tr(S2) - 2 tr((S1 @ S2)^(1/2))",
        )  # fmt: skip
        fail(f"frechet_distance on {desc} returned {got:.6g}, expected {expected:.6g}: {hint}.")
    # symmetry is a property of the distance itself: d(a, b) = d(b, a)
    ab = _as_real_number(unwrap(data["results"][0]["outcome"]), "d(a, b)")
    ba = _as_real_number(unwrap(data["swapped"]), "d(b, a)")
    expect(close_number(ba, ab, rtol=FD_RTOL, atol=FD_ATOL),
           f"d(a, b) = {ab:.6g} but d(b, a) = {ba:.6g}: not symmetric.")
    return "frechet_distance matches dcgan_ref" + (" on every case, singular covariances too"
                                                    if len(cases) > 1 else "")  # fmt: skip


check_frechet_distance = exercise("frechet_distance", _probe_frechet_distance, _judge_frechet_distance,
                                  _fd_case_list)  # fmt: skip


# --------------------------------------------------------------------------- slerp

# float32 arithmetic on ~100-d vectors of norm ~10 through arccos/sin: differences of a few 1e-6
# relative between correct implementations; linear interpolation is off by >10 % at t = 0.5.
SL_RTOL = 1e-4
SL_ATOL = 1e-4


def _slerp_cases(hidden: bool) -> list[tuple[str, torch.Tensor, torch.Tensor, float]]:
    g = seeded(990)
    z0, z1 = torch.randn(100, generator=g), torch.randn(100, generator=g)
    cases = [("z0, z1 of shape (100,)", z0, z1, t) for t in (0.0, 0.3, 0.5, 1.0)]
    if hidden:  # shapes and angles public, values (and the t's) from the instructor's secret
        h = hidden_generator(9, "slerp", 0)
        b0, b1 = torch.randn(4, 16, generator=h), torch.randn(4, 16, generator=h)
        ts = [round(float(t), 2) for t in 0.1 + 0.8 * torch.rand(2, generator=h, dtype=torch.float64)]
        cases += [("a batch of 4 pairs, shape (4, 16)", b0, b1, t) for t in ts]
        w0, w1 = torch.randn(100, generator=h), torch.randn(100, generator=h)
        cases.append(("vectors 170 degrees apart", w0, -w0 + 0.1 * w1, 0.5))
    return cases


def _parallel_cases() -> list[torch.Tensor]:
    """z0 for the pairs (z0, 3 z0): all ones, so the two unit vectors are identical and in float32
    cos omega comes out exactly 1 (d = 100: sin omega = 0) or just above 1 (d = 50: arccos is NaN
    unless the cosine is clamped)."""
    return [torch.ones(100), torch.ones(50)]


def _slerp_case_list(hidden: bool) -> dict[str, Any]:
    g = seeded(991)
    z0 = torch.randn(100, generator=g)
    z1 = torch.randn(100, generator=g)
    return {"cases": [{"desc": d, "z0": a, "z1": b, "t": t} for d, a, b, t in _slerp_cases(hidden)],
            "equal_norm": [z0, z1 * z0.norm() / z1.norm()], "parallel": _parallel_cases()}  # fmt: skip


class SlerpCall(TypedDict):
    """One call of the student's slerp on copies of a case's z0 and z1."""

    outcome: Outcome
    changed: bool  #: z0 or z1 was changed in place


class SlerpRuns(TypedDict):
    """slerp on every case, between two vectors of equal norm, and for the parallel pairs."""

    results: list[SlerpCall]
    equal_norm: Outcome  #: slerp(z0, z1, 0.5) with |z0| = |z1|
    parallel: list[Outcome]  #: slerp(z0, 3 * z0, 0.5) for each parallel case


def _probe_slerp(fn: Any, cases: dict[str, Any]) -> SlerpRuns:
    """slerp on every case (on copies), between two vectors of equal norm, and for parallel pairs."""
    results: list[SlerpCall] = []
    for case in cases["cases"]:
        a, b = case["z0"].clone(), case["z1"].clone()
        outcome = attempt(fn, a, b, case["t"], what="slerp")
        results.append({"outcome": outcome, "changed": not (torch.equal(a, case["z0"]) and torch.equal(b, case["z1"]))})
    z0, z1 = (t.clone() for t in cases["equal_norm"])
    return {"results": results, "equal_norm": attempt(fn, z0, z1, 0.5, what="slerp"),
            "parallel": [attempt(fn, z.clone(), 3 * z, 0.5, what="slerp") for z in cases["parallel"]]}  # fmt: skip


def _judge_slerp(cases: dict[str, Any], data: SlerpRuns) -> str:
    """Against dcgan_ref.evaluate.slerp: the straight line, t reversed, NaN and the norm are named."""
    hidden = len(cases["cases"]) > 4
    for case, res in zip(cases["cases"], data["results"], strict=True):
        desc, z0, z1, t = case["desc"], case["z0"], case["z1"], case["t"]
        got = unwrap(res["outcome"])
        expect(res["changed"] is False, "slerp changed z0 or z1 in place: work on copies.")
        expected = ref_slerp(z0, z1, t)
        what = f"slerp({desc}, t={t})"
        if type(got) is not torch.Tensor:
            fail(f"{what} should return a torch.Tensor, got {type_name(got)}.")
        got = expect_shape(got, expected.shape, what, "the result has the shape of z0 (normalise along dim=-1 "
                           "with keepdim=True so a batch of pairs broadcasts)")  # fmt: skip
        if torch.isnan(got).any():
            fail(f"{what} contains NaN: clamp the cosine to [-1, 1] before arccos (rounding can push it past 1).")
        lerp = (1 - t) * z0 + t * z1
        close = torch.allclose(got.double(), expected.double(), rtol=SL_RTOL, atol=SL_ATOL)
        if not close and torch.allclose(got.double(), lerp.double(), rtol=SL_RTOL, atol=SL_ATOL):
            fail(
                f"{what} is the straight line (1 - t) z0 + t z1: its norm is {lerp.norm(dim=-1).mean():.3f}, "
                f"slerp's is {expected.norm(dim=-1).mean():.3f}. Linear interpolation cuts through the "
                "middle of the sphere where Gaussian latents never are; follow the great circle: "
                "sin((1-t) omega)/sin(omega) z0 + sin(t omega)/sin(omega) z1."
            )
        if not close and t != 0.5 and torch.allclose(
            got.double(), ref_slerp(z0, z1, 1 - t).double(), rtol=SL_RTOL, atol=SL_ATOL
        ):
            fail(f"{what} is slerp at 1 - t: t = 0 must give z0 and t = 1 must give z1.")
        if not close:
            unit = ref_slerp(z0 / z0.norm(dim=-1, keepdim=True), z1 / z1.norm(dim=-1, keepdim=True), t)
            if torch.allclose(got.double(), unit.double(), rtol=SL_RTOL, atol=SL_ATOL):
                fail(f"{what} interpolates the unit vectors z0/|z0| and z1/|z1|: the angle comes from them, "
                     "but the weights sin((1-t) omega)/sin(omega) and sin(t omega)/sin(omega) multiply the "
                     "original z0 and z1.")
        expect_close(got, expected, what, rtol=SL_RTOL, atol=SL_ATOL,
                     hint="omega = arccos(<z0/|z0|, z1/|z1|>), weights sin((1-t) omega)/sin(omega) and "
                     "sin(t omega)/sin(omega) on the original (unnormalised) z0 and z1")  # fmt: skip

    # The property that motivates slerp: between two vectors of the same norm, it keeps the norm.
    z0 = cases["equal_norm"][0]
    mid = unwrap(data["equal_norm"])
    expect(type(mid) is torch.Tensor and mid.shape == z0.shape, "slerp(z0, z1, 0.5) should return a tensor like z0.")
    expect(
        close_number(float(mid.norm()), float(z0.norm()), rtol=1e-3, atol=0.0),
        f"|slerp(z0, z1, 0.5)| = {float(mid.norm()):.4f} for |z0| = |z1| = {float(z0.norm()):.4f}: "
        "slerp between vectors of equal norm keeps that norm.",
    )

    # Parallel vectors: the arc is undefined (sin omega = 0); slerp must fall back to the line.
    for z0, outcome in zip(cases["parallel"], data["parallel"], strict=True):
        what = f"slerp(z0, 3 * z0, 0.5) with z0 = torch.ones({len(z0)})"
        got = unwrap(outcome)
        expected = ref_slerp(z0, 3 * z0, 0.5)
        if type(got) is not torch.Tensor:
            fail(f"{what} should return a torch.Tensor, got {type_name(got)}.")
        got = expect_shape(got, expected.shape, what)
        if not torch.isfinite(got).all():
            fail(
                f"{what} returned NaN or inf. For parallel vectors omega = 0 and sin(omega) = 0, a "
                "division by zero, and rounding can push cos(omega) just above 1, where arccos is NaN: "
                "clamp the cosine to [-1, 1], and when |sin(omega)| is tiny (say < 1e-6) return the "
                "straight line (1 - t) z0 + t z1 (torch.where, or an if for a single pair)."
            )
        expect_close(got, expected, what, rtol=SL_RTOL, atol=SL_ATOL,
                     hint="for parallel vectors the straight line (1 - t) z0 + t z1 is the answer")  # fmt: skip
    return "slerp matches dcgan_ref" + (" (batches, wide angles, parallel vectors)" if hidden else
                                         ", keeps the norm and survives parallel vectors")  # fmt: skip


check_slerp = exercise("slerp", _probe_slerp, _judge_slerp, _slerp_case_list)
