"""Lesson 09 checks: the reference solutions pass; each named mistake fails with a message naming it."""

from __future__ import annotations

import pytest
import torch

from autograder.checks import lesson09
from autograder.checks._core import CheckFailure

# ---------------------------------------------------------------------------------------------
# reference solutions (the same code as in solutions/09_evaluation)


def frechet_distance(mu1, sigma1, mu2, sigma2):
    diff = mu1 - mu2
    eigvals = torch.linalg.eigvals(sigma1 @ sigma2)
    tr_covmean = eigvals.sqrt().real.sum()
    return float(diff @ diff + torch.trace(sigma1) + torch.trace(sigma2) - 2 * tr_covmean)


def slerp(z0, z1, t):
    n0 = z0 / z0.norm(dim=-1, keepdim=True)
    n1 = z1 / z1.norm(dim=-1, keepdim=True)
    omega = torch.arccos((n0 * n1).sum(dim=-1, keepdim=True).clamp(-1, 1))
    so = torch.sin(omega)
    parallel = so.abs() < 1e-6
    safe = torch.where(parallel, torch.ones_like(so), so)
    arc = torch.sin((1 - t) * omega) / safe * z0 + torch.sin(t * omega) / safe * z1
    return torch.where(parallel, (1 - t) * z0 + t * z1, arc)


def test_solutions_pass(capsys):
    for hidden in (False, True):
        lesson09.check_frechet_distance(frechet_distance, hidden=hidden)
        lesson09.check_slerp(slerp, hidden=hidden)
    assert capsys.readouterr().out.count("\u2714") == 4


def test_eigh_route_passes():
    """tr((S1 S2)^1/2) as the trace of the square root of the symmetric S1^1/2 S2 S1^1/2 (eigh twice)."""

    def fd_eigh(mu1, s1, mu2, s2):
        ev, V = torch.linalg.eigh(s1)
        root1 = V @ torch.diag(ev.clamp(min=0).sqrt()) @ V.T
        middle = root1 @ s2 @ root1
        tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
        return float(((mu1 - mu2) ** 2).sum() + s1.trace() + s2.trace() - 2 * tr_covmean)

    lesson09.check_frechet_distance(fd_eigh, hidden=True)


def test_other_return_types_pass():
    """A 0-d tensor, a NumPy float64: numbers, as the lesson's callers use them."""
    np = pytest.importorskip("numpy")
    lesson09.check_frechet_distance(lambda *a: torch.tensor(frechet_distance(*a), dtype=torch.float64), hidden=True)
    lesson09.check_frechet_distance(lambda *a: np.float64(frechet_distance(*a)), hidden=True)


def test_scipy_sqrtm_solution_passes():
    scipy_linalg = pytest.importorskip("scipy.linalg")

    def fd_scipy(mu1, s1, mu2, s2):
        covmean = scipy_linalg.sqrtm(s1.numpy() @ s2.numpy())
        diff = (mu1 - mu2).numpy()
        return float(diff @ diff + s1.numpy().trace() + s2.numpy().trace() - 2 * covmean.real.trace())

    lesson09.check_frechet_distance(fd_scipy, hidden=True)


def test_float32_solution_passes():
    lesson09.check_frechet_distance(
        lambda m1, s1, m2, s2: frechet_distance(m1.float(), s1.float(), m2.float(), s2.float()), hidden=False
    )


# ---------------------------------------------------------------------------------------------
# Fréchet distance mistakes


def _fd(mean_term="sq", factor=2.0, which="product", real=True):
    def fn(mu1, s1, mu2, s2):
        diff = mu1 - mu2
        mean = {"sq": diff @ diff, "none": 0.0, "norm": diff.norm()}[mean_term]
        m = {"product": s1 @ s2, "sum": s1 + s2, "elementwise": s1 * s2}[which]
        if which == "product":
            root = torch.linalg.eigvals(m).sqrt().sum()
        else:
            evals = torch.linalg.eigvalsh(m).clamp(min=0)
            root = evals.sqrt().sum().to(torch.complex128)
        out = mean + torch.trace(s1) + torch.trace(s2) - factor * root
        return out.real if real else out

    return fn


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"factor": 1.0}, "misses its factor 2"),
        ({"which": "sum"}, "square root is of the sum"),
        ({"mean_term": "none"}, "mean term ||mu1 - mu2||^2 is missing"),
        ({"mean_term": "norm"}, "*squared* distance"),
        ({"which": "elementwise"}, "matrix product S1 @ S2"),
        ({"real": False}, "Keep the real part"),
    ],
)
def test_frechet_mistakes_are_named(kwargs, words):
    with pytest.raises(CheckFailure) as err:
        lesson09.check_frechet_distance(_fd(**kwargs))
    assert words in str(err.value)
    assert "expected" in str(err.value) or "complex" in str(err.value)


def _fd_with_trace(tr_covmean):
    def fn(mu1, s1, mu2, s2):
        diff = mu1 - mu2
        return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean(s1, s2))

    return fn


def _sqrtm(m):
    ev, V = torch.linalg.eigh(m)
    return V @ torch.diag(ev.clamp(min=0).sqrt()) @ V.T


@pytest.mark.parametrize("tr_covmean, words", [
    (lambda s1, s2: torch.linalg.eigvalsh(s1 @ s2).clamp(min=0).sqrt().sum(), "eigvalsh on S1 @ S2"),
    (lambda s1, s2: torch.linalg.eigvalsh(s1 @ s2).abs().sqrt().sum(), "eigvalsh on S1 @ S2"),
    (lambda s1, s2: torch.linalg.eigvalsh(s1 @ s2, UPLO="U").clamp(min=0).sqrt().sum(), "eigvalsh on S1 @ S2"),
    (lambda s1, s2: torch.linalg.eigvalsh(s1 @ s2).to(torch.complex128).sqrt().real.sum(), "eigvalsh on S1 @ S2"),
    (lambda s1, s2: torch.linalg.eigvalsh(s1 @ s2).sqrt().sum(), "NaN.*eigvalsh on the non-symmetric"),
    (lambda s1, s2: torch.trace(s1 @ s2).sqrt(), "square root of the trace"),
    (lambda s1, s2: torch.trace(_sqrtm(s1) @ _sqrtm(s2)), "multiplies the two square roots"),
    (lambda s1, s2: torch.trace(torch.sqrt((s1 @ s2).clamp(min=0))), "elementwise square root"),
])
def test_frechet_trace_term_mistakes_are_named(tr_covmean, words):
    with pytest.raises(CheckFailure, match=words):
        lesson09.check_frechet_distance(_fd_with_trace(tr_covmean))


def test_frechet_square_root_of_the_distance_is_named():
    with pytest.raises(CheckFailure, match="square root of the distance"):
        lesson09.check_frechet_distance(lambda *a: frechet_distance(*a) ** 0.5)


def test_frechet_reference_is_refused():
    import dcgan_ref.evaluate as ref_eval
    from dcgan_ref.evaluate import frechet_distance as ref_fd

    with pytest.raises(CheckFailure, match="dcgan_ref.evaluate.frechet_distance"):
        lesson09.check_frechet_distance(ref_fd)
    with pytest.raises(CheckFailure, match="dcgan_ref.evaluate.frechet_distance"):
        lesson09.check_frechet_distance(lambda *a: ref_eval.frechet_distance(*a))

    def fid_module_route(mu1, s1, mu2, s2):  # the same formula through dcgan_ref.fid
        import dcgan_ref.fid as ref_fid

        return float(ref_fid.evaluate.frechet_distance(mu1, s1, mu2, s2))

    with pytest.raises(CheckFailure, match="dcgan_ref"):
        lesson09.check_frechet_distance(fid_module_route)


def test_frechet_wrong_types_are_named():
    with pytest.raises(CheckFailure, match="should be a number \\(float\\), got str"):
        lesson09.check_frechet_distance(lambda *a: str(frechet_distance(*a)))
    with pytest.raises(CheckFailure, match="single number, got a tensor of shape \\(4,\\)"):
        lesson09.check_frechet_distance(lambda m1, s1, m2, s2: (m1 - m2) ** 2 + 0 * frechet_distance(m1, s1, m2, s2))


def test_frechet_complex_python_number_is_named():
    def fn(mu1, s1, mu2, s2):
        return complex(_fd(real=False)(mu1, s1, mu2, s2).item())

    with pytest.raises(CheckFailure, match="is complex"):
        lesson09.check_frechet_distance(fn)


def test_frechet_elementwise_sqrt_nan_is_named():
    def fn(mu1, s1, mu2, s2):  # torch.sqrt of a matrix with negative entries: NaN
        diff = mu1 - mu2
        return float(diff @ diff + torch.trace(s1 + s2 - 2 * torch.sqrt(s1 @ s2)) + torch.sqrt(s1 @ s2).sum() * 0)

    with pytest.raises(CheckFailure, match="NaN.*elementwise"):
        lesson09.check_frechet_distance(fn)


def test_frechet_in_place_and_not_implemented():
    def in_place(mu1, s1, mu2, s2):
        mu1 -= mu2
        return frechet_distance(mu1, s1, torch.zeros_like(mu2), s2)

    with pytest.raises(CheckFailure, match="in place"):
        lesson09.check_frechet_distance(in_place)

    def todo(*args):
        raise NotImplementedError()

    with pytest.raises(CheckFailure, match="not implemented yet"):
        lesson09.check_frechet_distance(todo)


def test_frechet_hidden_catches_what_the_visible_run_misses():
    """Eigenvalues through eigvalsh on the non-symmetric S1 S2: plausible, and wrong off the
    visible case's luck? No: it is wrong on every case, so it fails visibly too; the hidden run
    adds the singular covariances, where clamping-free sqrt of eigvals gives NaN."""

    def no_clamp(mu1, s1, mu2, s2):  # real eigenvalues only, no guard against tiny negatives
        diff = mu1 - mu2
        ev = torch.linalg.eigvals(s1 @ s2).real
        return float(diff @ diff + torch.trace(s1) + torch.trace(s2) - 2 * ev.sqrt().sum())

    lesson09.check_frechet_distance(no_clamp)  # full-rank visible case: fine
    with pytest.raises(CheckFailure, match="NaN"):
        lesson09.check_frechet_distance(no_clamp, hidden=True)


# ---------------------------------------------------------------------------------------------
# slerp mistakes


def test_slerp_lerp_is_named():
    with pytest.raises(CheckFailure) as err:
        lesson09.check_slerp(lambda z0, z1, t: (1 - t) * z0 + t * z1)
    msg = str(err.value)
    assert "straight line" in msg and "norm" in msg and "great circle" in msg


def test_slerp_reversed_t_is_named():
    with pytest.raises(CheckFailure, match="1 - t"):
        lesson09.check_slerp(lambda z0, z1, t: slerp(z0, z1, 1 - t))


def test_slerp_parallel_nan_is_named():
    def naive(z0, z1, t):  # the textbook formula with a clamp but without the parallel fallback
        n0, n1 = z0 / z0.norm(dim=-1, keepdim=True), z1 / z1.norm(dim=-1, keepdim=True)
        omega = torch.arccos((n0 * n1).sum(-1, keepdim=True).clamp(-1, 1))
        return torch.sin((1 - t) * omega) / torch.sin(omega) * z0 + torch.sin(t * omega) / torch.sin(omega) * z1

    with pytest.raises(CheckFailure) as err:
        lesson09.check_slerp(naive)
    assert "parallel" in str(err.value) and "sin(omega) = 0" in str(err.value)


def test_slerp_without_clamp_is_named():
    def no_clamp(z0, z1, t):
        n0, n1 = z0 / z0.norm(dim=-1, keepdim=True), z1 / z1.norm(dim=-1, keepdim=True)
        omega = torch.arccos((n0 * n1).sum(-1, keepdim=True))
        so = torch.sin(omega)
        if (so.abs() < 1e-6).any():
            return (1 - t) * z0 + t * z1
        return torch.sin((1 - t) * omega) / so * z0 + torch.sin(t * omega) / so * z1

    # z0 = ones(50): cos rounds above 1, arccos gives NaN, sin(NaN) is NaN, no fallback
    with pytest.raises(CheckFailure, match="NaN.*clamp the cosine"):
        lesson09.check_slerp(no_clamp)


def test_slerp_on_normalised_vectors_is_caught():
    """Interpolating the unit vectors and forgetting to scale back: right direction, wrong norm."""

    def unit_slerp(z0, z1, t):
        return slerp(z0 / z0.norm(dim=-1, keepdim=True), z1 / z1.norm(dim=-1, keepdim=True), t)

    with pytest.raises(CheckFailure, match="interpolates the unit vectors"):
        lesson09.check_slerp(unit_slerp)


def test_slerp_without_keepdim_fails_only_on_batches():
    def flat(z0, z1, t):  # works for one pair, breaks the broadcasting for a batch
        n0, n1 = z0 / z0.norm(), z1 / z1.norm()
        omega = torch.arccos((n0 * n1).sum().clamp(-1, 1))
        so = torch.sin(omega)
        if so.abs() < 1e-6:
            return (1 - t) * z0 + t * z1
        return torch.sin((1 - t) * omega) / so * z0 + torch.sin(t * omega) / so * z1

    lesson09.check_slerp(flat)
    with pytest.raises(CheckFailure, match="batch"):
        lesson09.check_slerp(flat, hidden=True)


def test_slerp_reference_is_refused():
    import dcgan_ref.evaluate as ref_eval
    from dcgan_ref.evaluate import slerp as ref_slerp

    with pytest.raises(CheckFailure, match="dcgan_ref.evaluate.slerp"):
        lesson09.check_slerp(ref_slerp)
    with pytest.raises(CheckFailure, match="dcgan_ref.evaluate.slerp"):
        lesson09.check_slerp(lambda z0, z1, t: ref_eval.slerp(z0, z1, t).clone())


def test_slerp_in_place_and_types_are_named():
    def in_place(z0, z1, t):
        z0 /= 1.0 + 0 * t  # harmless arithmetic, but on the caller's tensor
        z0 += 0.0
        z0.mul_(1.0001)
        return slerp(z0, z1, t)

    with pytest.raises(CheckFailure, match="in place"):
        lesson09.check_slerp(in_place)
    with pytest.raises(CheckFailure, match="should return a torch.Tensor, got numpy.ndarray"):
        lesson09.check_slerp(lambda z0, z1, t: slerp(z0, z1, t).numpy())


def test_slerp_variants_pass():
    """Written another way: the angle from atan2, the parallel case with an if per row of a batch."""

    def slerp_atan2(z0, z1, t):
        n0, n1 = z0 / z0.norm(dim=-1, keepdim=True), z1 / z1.norm(dim=-1, keepdim=True)
        cos = (n0 * n1).sum(-1, keepdim=True)
        sin = (n0 - cos * n1).norm(dim=-1, keepdim=True) * 0 + (1 - cos.clamp(-1, 1) ** 2).clamp(min=0).sqrt()
        omega = torch.atan2(sin, cos)
        out = []
        for a, b, w, s in zip(z0.reshape(-1, z0.shape[-1]), z1.reshape(-1, z1.shape[-1]),
                              omega.reshape(-1), torch.sin(omega).reshape(-1), strict=True):
            out.append((1 - t) * a + t * b if s.abs() < 1e-6 else
                       (torch.sin((1 - t) * w) * a + torch.sin(t * w) * b) / s)
        return torch.stack(out).reshape(z0.shape)

    lesson09.check_slerp(slerp_atan2, hidden=True)


# ---------------------------------------------------------------------------------------------
# NaN / inf never close; hidden values from the secret (issue 20)


def test_nan_or_inf_distance_fails_on_every_case():
    import math

    for bad in (math.nan, math.inf, -math.inf):
        def fd(mu1, s1, mu2, s2, bad=bad):
            return bad

        with pytest.raises(CheckFailure, match="frechet_distance on two 4-d Gaussians"):
            lesson09.check_frechet_distance(fd, hidden=True)

    swapped_mu1 = lesson09.check_frechet_distance.exercise.cases(False)[0]["args"][2]

    def nan_when_swapped(mu1, s1, mu2, s2):  # right on every case, NaN for d(b, a) only
        value = frechet_distance(mu1, s1, mu2, s2)
        return math.nan if torch.equal(mu1, swapped_mu1) else value

    with pytest.raises(CheckFailure, match="not symmetric"):
        lesson09.check_frechet_distance(nan_when_swapped)


def test_hidden_values_come_from_the_secret(monkeypatch):
    from autograder.checks import _secret

    def cases(secret):
        monkeypatch.setenv("AUTOGRADER_SECRET", secret)
        _secret.reset()
        return lesson09.check_frechet_distance.exercise.cases(True), lesson09.check_slerp.exercise.cases(True)

    try:
        (fd_a, sl_a), (fd_b, sl_b) = cases("one"), cases("two")
    finally:
        _secret.reset()
    assert torch.equal(fd_a[0]["args"][0], fd_b[0]["args"][0])  # the shown case is public
    for x, y in zip(fd_a[1:], fd_b[1:], strict=True):
        assert x["desc"] == y["desc"] and not torch.equal(x["args"][1], y["args"][1])
    hidden_a, hidden_b = sl_a["cases"][4:], sl_b["cases"][4:]
    assert all(not torch.equal(x["z0"], y["z0"]) for x, y in zip(hidden_a, hidden_b, strict=True))
