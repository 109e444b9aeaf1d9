# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 09
# check: check_frechet_distance(frechet_distance)
# style: the symmetric form sqrt(S1) S2 sqrt(S1), both roots from eigh
def _sqrtm_psd(a):
    vals, vecs = torch.linalg.eigh(a)
    return vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    s1, s2 = sigma1.double(), sigma2.double()
    root1 = _sqrtm_psd(s1)
    middle = root1 @ s2 @ root1
    middle = (middle + middle.T) / 2
    tr_covmean = torch.linalg.eigvalsh(middle).clamp(min=0).sqrt().sum()
    d = (mu1 - mu2).double()
    return float(d @ d + torch.trace(s1) + torch.trace(s2) - 2 * tr_covmean)
