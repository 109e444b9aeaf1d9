# ruff: noqa - a notebook cell, run in a namespace that holds the lesson's imports
# lesson: 09
# check: check_frechet_distance(frechet_distance)
# style: the pytorch-fid way: scipy.linalg.sqrtm on NumPy arrays, the real part kept
import numpy as np
from scipy import linalg


def frechet_distance(mu1, sigma1, mu2, sigma2):
    m1, m2 = mu1.double().numpy(), mu2.double().numpy()
    s1, s2 = sigma1.double().numpy(), sigma2.double().numpy()
    diff = m1 - m2
    covmean = linalg.sqrtm(s1.dot(s2))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
