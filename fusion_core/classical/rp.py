r"""RP: ratio-of-low-pass (contrast) pyramid fusion.

A. Toet, "Image fusion by a ratio of low-pass pyramid", Pattern Recognition Letters 9(4),
245–253, 1989; the "RP" baseline of Liu, Liu & Wang (Information Fusion 24, 2015).

With the Gaussian pyramid $G_k$ (OpenCV ``pyrDown``), the ratio pyramid is
$R_k = G_k / \mathrm{EXPAND}(G_{k+1})$ and $R_n = G_n$. The local luminance contrast is $R_k - 1$;
fusion takes, per coefficient, the ratio with the larger contrast magnitude (ties: the IR image),
averages the top level, and rebuilds $G_k = R_k \cdot \mathrm{EXPAND}(G_{k+1})$. Parameters
(Liu et al. 2015): 4 levels. Ratios need positive images: we work on $I + \varepsilon$,
$\varepsilon = $ ``OFFSET``, and subtract it again at the end (our choice; the original is defined
for positive luminance).
"""
from __future__ import annotations

import numpy as np

from ._common import per_channel_rgb, per_image, register
from ._multiscale import average, collapse, gaussian_pyramid_bands

LEVELS = 4
OFFSET = 1.0 / 255.0


def ratio_pyramid(image: np.ndarray, levels: int = LEVELS) -> list[np.ndarray]:
    """[R_0, ..., R_{n-1}, G_n]; fewer levels when the image gets too small to halve."""
    return gaussian_pyramid_bands(image, levels, np.divide)


def larger_contrast(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per coefficient, the ratio whose contrast |R − 1| is larger (ties: ``a``)."""
    return np.where(np.abs(a - 1.0) >= np.abs(b - 1.0), a, b)


def rp_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    pa, pb = ratio_pyramid(ir + OFFSET), ratio_pyramid(vis + OFFSET)
    fused = [larger_contrast(a, b) for a, b in zip(pa[:-1], pb[:-1])] + [average(pa[-1], pb[-1])]
    return collapse(fused, np.multiply) - OFFSET


rp_fusion = per_image(rp_array)
register("rp", rp_fusion, per_channel_rgb(rp_fusion))
