r"""CBF: image fusion based on pixel significance using the cross bilateral filter.

B. K. Shreyamsha Kumar, "Image fusion based on pixel significance using cross bilateral filter",
Signal, Image and Video Processing 9(5), 1193–1204, 2015.

Each source $A$ is filtered by a cross (joint) bilateral filter whose range weights come from the
*other* source $B$; the detail $D_A = A - \mathrm{CBF}(A \mid B)$ measures what $A$ has that $B$
does not. Weights are the detail's local edge strength: over a $w\times w$ window, the trace of
the covariance of the window's columns plus that of its rows (unbiased, i.e. the sum of the
per-column and per-row variances):

$$ W_A = \operatorname{tr} C_{\text{cols}}(D_A) + \operatorname{tr} C_{\text{rows}}(D_A), \qquad
   F = \frac{W_A A + W_B B}{W_A + W_B}. $$

Parameters (paper; the author's code as run by VIFB): spatial $\sigma_s = 1.8$, range
$\sigma_r = 25$ on 8-bit intensities, kernel 11×11, covariance window $w = 5$; borders are
mirrored without repeating the edge (the author's ``per_extn_im_fn``). The cross bilateral filter
is kornia's ``joint_bilateral_blur``. VIFB ran it per RGB channel of a colour visible image with
the grey IR image. The author's MATLAB loops over pixels; here the window statistics are box sums.
"""
from __future__ import annotations

import kornia.filters
import numpy as np
import torch
from scipy import ndimage

from ._common import per_channel_rgb, per_image, register, to_255

SIGMA_SPACE = 1.8
SIGMA_RANGE = 25.0  # on 0..255 intensities
KERNEL_SIZE = 11
COV_WINDOW = 5


def cross_bilateral(image: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """Filter ``image`` with spatial Gaussian × range Gaussian of ``guide`` differences."""
    as_tensor = lambda x: torch.from_numpy(np.ascontiguousarray(x, dtype=np.float64))[None, None]
    out = kornia.filters.joint_bilateral_blur(
        as_tensor(image), as_tensor(guide), KERNEL_SIZE, SIGMA_RANGE, (SIGMA_SPACE, SIGMA_SPACE),
        border_type="reflect",
    )
    return out[0, 0].numpy()


def _window_variance_sum(detail: np.ndarray, axis: int, window: int) -> np.ndarray:
    """Sum over the window's lines (along 1-axis) of the unbiased variance along ``axis``."""
    mean = ndimage.uniform_filter1d(detail, window, axis=axis, mode="mirror")
    mean_sq = ndimage.uniform_filter1d(detail * detail, window, axis=axis, mode="mirror")
    variance = np.maximum(mean_sq - mean * mean, 0.0) * window / (window - 1)
    return ndimage.uniform_filter1d(variance, window, axis=1 - axis, mode="mirror") * window


def edge_strength(detail: np.ndarray, window: int = COV_WINDOW) -> np.ndarray:
    """tr(column covariance) + tr(row covariance) of each w×w window of ``detail``."""
    strength = _window_variance_sum(detail, 0, window) + _window_variance_sum(detail, 1, window)
    return np.where(strength == 0, np.finfo(float).eps, strength)


def cbf_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    a, b = to_255(ir), to_255(vis)
    w_a = edge_strength(a - cross_bilateral(a, b))
    w_b = edge_strength(b - cross_bilateral(b, a))
    return (w_a * a + w_b * b) / (w_a + w_b) / 255.0


cbf_fusion = per_image(cbf_array)
register("cbf", cbf_fusion, per_channel_rgb(cbf_fusion))
