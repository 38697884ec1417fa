r"""PCA-weighted average: the weights are the normalised principal eigenvector of the 2×2 covariance.

The classical PCA fusion rule (e.g. Naidu & Raol, "Pixel-level image fusion using wavelets and
principal component analysis", Defence Science Journal 58(3), 2008): with $C$ the covariance of the
pixel pairs $(a_i, b_i)$ and $v$ its eigenvector of the largest eigenvalue,

$$ F = p_1 A + p_2 B, \qquad p = v / (v_1 + v_2). $$

No parameters. The same rule fuses the detail layers of ADF.
"""
from __future__ import annotations

import numpy as np

from ._common import per_channel_rgb, per_image, register


def pca_weights(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Weights (p1, p2), p1 + p2 = 1, from the principal component of the pixel pairs of a and b."""
    cov = np.cov(np.stack([a.ravel(), b.ravel()]))
    values, vectors = np.linalg.eigh(cov)
    v = vectors[:, int(np.argmax(values))]
    total = v.sum()
    if not np.isfinite(total) or abs(total) < 1e-12:  # constant images: no preferred direction
        return 0.5, 0.5
    return float(v[0] / total), float(v[1] / total)


def pca_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    p1, p2 = pca_weights(ir, vis)
    return p1 * ir + p2 * vis


pca_fusion = per_image(pca_array)
register("pca", pca_fusion, per_channel_rgb(pca_fusion))
