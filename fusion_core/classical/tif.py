r"""TIF (TSIFVS): two-scale image fusion of visible and infrared images using saliency detection.

D. P. Bavirisetti and R. Dhuli, "Two-scale image fusion of visible and infrared images using
saliency detection", Infrared Physics & Technology 76, 52–64, 2016.

Base $B_k$ = $M\times M$ mean filter of source $k$, detail $D_k = I_k - B_k$. Visual saliency
$S_k = (B_k - \tilde I_k)^2$ with $\tilde I_k$ the $N\times N$ median of the source; detail
weights $w_k = S_k / (S_1 + S_2)$, bases averaged:

$$ F = w_1 D_1 + w_2 D_2 + \tfrac12 (B_1 + B_2). $$

Parameters (paper and the authors' code as run by VIFB): $M = 35$ with circular (periodic)
boundary for the mean filter, $N = 3$ median with zeros outside the image (MATLAB ``medfilt2``).
Where both saliencies are zero the authors' code divides 0/0 (NaN, written as 0); we use equal
weights there instead. VIFB ran it per RGB channel of a colour visible image with the grey IR.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ._common import per_channel_rgb, per_image, register, to_255

MEAN_SIZE = 35
MEDIAN_SIZE = 3


def tif_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    bases, details, saliencies = [], [], []
    for source in (to_255(vis), to_255(ir)):
        base = ndimage.uniform_filter(source, MEAN_SIZE, mode="wrap")
        median = ndimage.median_filter(source, MEDIAN_SIZE, mode="constant", cval=0.0)
        bases.append(base)
        details.append(source - base)
        saliencies.append((base - median) ** 2)
    total = saliencies[0] + saliencies[1]
    safe = np.where(total > 0, total, 1.0)
    w_vis = np.where(total > 0, saliencies[0] / safe, 0.5)
    fused = w_vis * details[0] + (1.0 - w_vis) * details[1] + 0.5 * (bases[0] + bases[1])
    return fused / 255.0


tif_fusion = per_image(tif_array)
register("tif", tif_fusion, per_channel_rgb(tif_fusion))
