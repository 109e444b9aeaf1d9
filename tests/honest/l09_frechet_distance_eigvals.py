# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 09
# check: check_frechet_distance(frechet_distance)
# style: tr sqrt(A) as the sum of square roots of A's eigenvalues, in float64
def frechet_distance(mu1, sigma1, mu2, sigma2):
    mu1, mu2, sigma1, sigma2 = (t.to(torch.float64) for t in (mu1, mu2, sigma1, sigma2))
    eig = torch.linalg.eigvals(sigma1 @ sigma2)
    tr_sqrt = eig.sqrt().real.sum()
    return (torch.sum((mu1 - mu2) ** 2) + sigma1.trace() + sigma2.trace() - 2 * tr_sqrt).item()
