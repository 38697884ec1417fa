r"""CBF: image fusion based on pixel significance using the cross bilateral filter.

B. K. Shreyamsha Kumar, "Image fusion based on pixel significance using cross bilateral filter",
Signal, Image and Video Processing 9(5), 1193–1204, 2015.

Each source $A$ is filtered by a cross (joint) bilateral filter whose range weights come from the
*other* source $B$; the detail $D_A = A - \mathrm{CBF}(A \mid B)$ measures what $A$ has that $B$
does not. Weights are the detail's local edge strength: over a $w\times w$ window, the trace of
the covariance of the window's columns plus that of its rows (unbiased, i.e. the sum of the
per-column and per-row variances):

$$ W_A = \operatorname{tr} C_{\text{cols}}(D_A) + \operatorname{tr} C_{\text{rows}}(D_A), \qquad
   F = \frac{W_A A + W_B B}{W_A + W_B}, $$

with $W = \varepsilon$ where it is 0 (the author's code). Parameters (paper; the author's code as
run by VIFB): spatial $\sigma_s = 1.8$, range $\sigma_r = 25$ on 8-bit intensities, kernel 11×11,
covariance window $w = 5$; borders are mirrored without repeating the edge (``per_extn_im_fn``).
VIFB ran it per RGB channel of a colour visible image with the grey IR image.

Written so that the result does not depend on the CPU (``docs/portability.md``). Where both
sources are flat, the author's MATLAB gets weights that are pure rounding noise (~1e-28, its
filter returns $A(1 \pm \text{ulp})$), so $F$ there is an arbitrary mix of $A$ and $B$ that any
change of arithmetic (SIMD width, exp implementation) redraws; an earlier version of this file
(kornia's filter, running-sum window variances) even got noise weights of either sign and values
far outside [0, 255]. Here:

- the detail is computed as $D_A = -\sum_k g_k r_k (A_k - A_0) / \sum_k g_k r_k$, which is
  exactly 0 wherever $A$ is flat under the kernel, and the window variances are two-pass sums
  over explicit windows, exactly 0 where the detail is: flat regions get $W = \varepsilon$ on both
  sides, $F = (A + B)/2$, the same on every machine;
- the kernels are tables: the spatial Gaussian (121 values) and, for 8-bit inputs (every
  value $k/255$, as VIFB's uint8 images), the range Gaussian of the 256 possible |differences|, both
  computed correctly rounded with :mod:`decimal`, so no vectorised ``exp`` is involved; inputs
  that are not 8-bit (e.g. Y of a colour image) use ``numpy.exp`` (ULP-level differences between
  CPUs remain there);
- every sum runs over the kernel offsets in one fixed order with element-wise numpy operations
  (IEEE-exact, whatever the SIMD width).
"""
from __future__ import annotations

import decimal
import functools

import numpy as np

from ._common import per_channel_rgb, per_image, register, to_255

SIGMA_SPACE = 1.8
SIGMA_RANGE = 25.0  # on 0..255 intensities
KERNEL_SIZE = 11
COV_WINDOW = 5


def _exp_neg(numerator: float, denominator: float) -> float:
    """exp(-numerator/denominator), correctly rounded to float64 (software, identical on every CPU)."""
    with decimal.localcontext() as context:
        context.prec = 40
        return float((-decimal.Decimal(numerator) / decimal.Decimal(denominator)).exp())


@functools.lru_cache(maxsize=None)
def spatial_kernel(size: int = KERNEL_SIZE, sigma: float = SIGMA_SPACE) -> np.ndarray:
    """exp(-(x² + y²)/(2σ²)) on the size×size grid, unnormalised (the author's ``gauss_ker2D``)."""
    half = size // 2
    two_sigma_sq = 2 * decimal.Decimal(sigma) ** 2
    return np.array([[_exp_neg(y * y + x * x, two_sigma_sq) for x in range(-half, half + 1)]
                     for y in range(-half, half + 1)])


@functools.lru_cache(maxsize=None)
def range_table(sigma: float = SIGMA_RANGE) -> np.ndarray:
    """exp(-d²/(2σ²)) for the integer differences d = 0..255 of 8-bit intensities."""
    two_sigma_sq = 2 * decimal.Decimal(sigma) ** 2
    return np.array([_exp_neg(d * d, two_sigma_sq) for d in range(256)])


def _as_8bit(image: np.ndarray) -> np.ndarray | None:
    """``image`` (0..255 scale) as exact integers if every value is within 1e-3 of one, else None."""
    levels = np.round(image)
    return levels if np.all(np.abs(image - levels) <= 1e-3) else None


def _snap_8bit(image: np.ndarray) -> np.ndarray:
    """8-bit inputs as the exact integers MATLAB's ``double(uint8)`` gives; others unchanged."""
    levels = _as_8bit(image)
    return image if levels is None else levels


def cross_bilateral_detail(image: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """``image − CBF(image | guide)``: spatial Gaussian × range Gaussian of ``guide`` differences.

    Computed as the weighted mean of ``image``'s differences to the centre pixel (exactly 0 where
    ``image`` is flat under the kernel), the offsets summed in row-major order.
    """
    half = KERNEL_SIZE // 2
    height, width = image.shape
    levels = _as_8bit(guide)
    padded_image = np.pad(image, half, mode="reflect")
    padded_guide = np.pad(guide if levels is None else levels, half, mode="reflect")
    centre = guide if levels is None else levels
    spatial, table = spatial_kernel(), range_table()
    numerator = np.zeros_like(image)
    denominator = np.zeros_like(image)
    for dy in range(KERNEL_SIZE):
        for dx in range(KERNEL_SIZE):
            window = (slice(dy, dy + height), slice(dx, dx + width))
            difference = padded_guide[window] - centre
            if levels is None:
                weight = spatial[dy, dx] * np.exp(-(difference * difference) / (2 * SIGMA_RANGE**2))
            else:
                weight = (spatial[dy, dx] * table)[np.abs(difference).astype(np.intp)]
            numerator += weight * (padded_image[window] - image)
            denominator += weight
    return -(numerator / denominator)


def _window_variance_sum(detail: np.ndarray, axis: int, window: int) -> np.ndarray:
    """Sum over the window's lines of the unbiased variance along ``axis`` (two-pass, explicit windows)."""
    half = window // 2
    padded = np.pad(detail, half, mode="reflect")
    height, width = detail.shape
    # lines[k]: the window's k-th value along `axis`, for every window position (all lines across)
    if axis == 0:
        lines = [padded[k : k + height, :] for k in range(window)]
    else:
        lines = [padded[:, k : k + width] for k in range(window)]
    total = lines[0].copy()
    for line in lines[1:]:
        total += line
    mean = total / window
    squares = np.zeros_like(mean)
    for line in lines:
        squares += (line - mean) ** 2
    variance = squares / (window - 1)  # shape: padded along the other axis
    summed = np.zeros_like(detail)
    for k in range(window):
        summed += variance[:, k : k + width] if axis == 0 else variance[k : k + height, :]
    return summed


def edge_strength(detail: np.ndarray, window: int = COV_WINDOW) -> np.ndarray:
    """tr(column covariance) + tr(row covariance) of each w×w window of ``detail``; ε where 0."""
    strength = _window_variance_sum(detail, 0, window) + _window_variance_sum(detail, 1, window)
    return np.where(strength == 0, np.finfo(float).eps, strength)


def cbf_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    a, b = _snap_8bit(to_255(ir)), _snap_8bit(to_255(vis))
    w_a = edge_strength(cross_bilateral_detail(a, b))
    w_b = edge_strength(cross_bilateral_detail(b, a))
    return (w_a * a + w_b * b) / (w_a + w_b) / 255.0


cbf_fusion = per_image(cbf_array)
register("cbf", cbf_fusion, per_channel_rgb(cbf_fusion))
