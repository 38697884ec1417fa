r"""LP: Laplacian-pyramid fusion.

P. J. Burt and E. H. Adelson, "The Laplacian pyramid as a compact image code", IEEE Transactions
on Communications 31(4), 532–540, 1983; used for fusion by Burt & Kolczynski (1993) and as the
"LP" baseline of Liu, Liu & Wang, "A general framework for image fusion based on multi-scale
transform and sparse representation", Information Fusion 24, 147–164, 2015.

Gaussian pyramid $G_{k+1} = \mathrm{REDUCE}(G_k)$ (OpenCV ``pyrDown``: 5-tap binomial filter,
mirrored borders), Laplacian levels $L_k = G_k - \mathrm{EXPAND}(G_{k+1})$. Fusion: the top
Gaussian level averaged, each Laplacian coefficient chosen by larger magnitude; then the pyramid is
collapsed, $G_k = L_k + \mathrm{EXPAND}(G_{k+1})$. Parameters (Liu et al. 2015): 4 decomposition
levels, average / max-abs rules.
"""
from __future__ import annotations

import numpy as np

from ._common import per_channel_rgb, per_image, register
from ._multiscale import average, choose_max, collapse, gaussian_pyramid_bands

LEVELS = 4


def laplacian_pyramid(image: np.ndarray, levels: int = LEVELS) -> list[np.ndarray]:
    """[L_0, ..., L_{n-1}, G_n]; fewer levels when the image gets too small to halve."""
    return gaussian_pyramid_bands(image, levels, np.subtract)


def lp_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    pa, pb = laplacian_pyramid(ir), laplacian_pyramid(vis)
    fused = [choose_max(a, b) for a, b in zip(pa[:-1], pb[:-1])] + [average(pa[-1], pb[-1])]
    return collapse(fused, np.add)


lp_fusion = per_image(lp_array)
register("lp", lp_fusion, per_channel_rgb(lp_fusion))
