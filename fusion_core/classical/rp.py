r"""RP: ratio-of-low-pass (contrast) pyramid fusion.

A. Toet, "Image fusion by a ratio of low-pass pyramid", Pattern Recognition Letters 9(4),
245–253, 1989; the "RP" baseline of Liu, Liu & Wang (Information Fusion 24, 2015).

With the Gaussian pyramid $G_k$ (OpenCV ``pyrDown``), the ratio pyramid is
$R_k = G_k / \mathrm{EXPAND}(G_{k+1})$ and $R_n = G_n$. The local luminance contrast is $R_k - 1$;
fusion takes, per coefficient, the ratio with the larger contrast magnitude, averages the top level,
and rebuilds $G_k = R_k \cdot \mathrm{EXPAND}(G_{k+1})$. Parameters (Liu et al. 2015): 4 levels.
Ratios need positive images: we work on $I + \varepsilon$, $\varepsilon = $ ``OFFSET``, and
subtract it again at the end (our choice; the original is defined for positive luminance).
"""
from __future__ import annotations

import cv2
import numpy as np

from ._common import per_channel_rgb, per_image, register
from ._multiscale import average

LEVELS = 4
OFFSET = 1.0 / 255.0


def ratio_pyramid(image: np.ndarray, levels: int = LEVELS) -> list[np.ndarray]:
    pyramid, current = [], np.ascontiguousarray(image, dtype=np.float64)
    for _ in range(levels):
        if min(current.shape) < 2:
            break
        smaller = cv2.pyrDown(current)
        pyramid.append(current / cv2.pyrUp(smaller, dstsize=current.shape[::-1]))
        current = smaller
    return pyramid + [current]


def rp_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    pa, pb = ratio_pyramid(ir + OFFSET), ratio_pyramid(vis + OFFSET)
    current = average(pa[-1], pb[-1])
    for ra, rb in zip(reversed(pa[:-1]), reversed(pb[:-1])):
        ratio = np.where(np.abs(ra - 1.0) >= np.abs(rb - 1.0), ra, rb)
        current = ratio * cv2.pyrUp(current, dstsize=ratio.shape[::-1])
    return current - OFFSET


rp_fusion = per_image(rp_array)
register("rp", rp_fusion, per_channel_rgb(rp_fusion))
