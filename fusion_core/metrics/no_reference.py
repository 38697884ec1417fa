"""No-reference metrics on the fused image F alone: EN, SD, SF, AG, EI.

Planes are N×H×W float64 grey levels in [0, 255]; ``value_scale`` multiplies them first
(1/255 reproduces toolboxes that work on ``im2double`` images).
"""
from __future__ import annotations

import torch

from ._core import correlate, entropy_of, gradient_xy, histogram, metric, scaled

_SOBEL = torch.tensor([[1.0, 2.0, 1.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -1.0]], dtype=torch.float64)


@metric("EN", "higher", needs_sources=False)
def entropy(fused, ir=None, vis=None, log_base: float = 2.0, binning: str = "floor"):
    r"""Entropy :math:`EN = -\sum_{l=0}^{255} p_l \log_2 p_l` of the 256-bin grey-level histogram.

    Roberts, van Aardt, Ahmed, "Assessment of image fusion procedures using entropy, image quality, and
    multispectral classification", J. Appl. Remote Sens. 2008. ``binning``: ``floor`` (VIFB's
    ``floor(F)+1`` index) or ``round``; identical on 8-bit images.
    """
    levels = torch.floor(fused) if binning == "floor" else torch.round(fused)
    return entropy_of(histogram(levels.clamp_(0, 255)), base=log_base)


@metric("SD", "higher", needs_sources=False)
def standard_deviation(fused, ir=None, vis=None, value_scale: float = 1.0, uint8_saturation: bool = False,
                       centre: str = "global"):
    r"""Standard deviation :math:`SD = \sqrt{\frac{1}{MN}\sum (F - \mu)^2}` (population, ddof = 0).

    Rao, "In-fibre Bragg grating sensors", Meas. Sci. Technol. 1997 (as cited by VIFB).
    ``uint8_saturation``: reproduce MATLAB uint8 arithmetic of ``SD_evaluation.m`` (Tang et al.'s toolbox)
    applied to a uint8 image: ``F - mu`` is rounded and clipped to [0, 255] and its square clipped to 255.
    ``centre``: ``global`` (μ = mean of the whole image, the definition) or ``column``: μ_j = the mean of
    column j, as MATLAB's ``mean(F)`` on a matrix (a row of column means, broadcast by ``F - mean(F)``) or
    numpy's ``F.mean(axis=0)`` gives it, so :math:`SD = \sqrt{\frac{1}{MN}\sum_{i,j} (F_{ij} - \mu_j)^2}` =
    √(mean over columns of each column's population variance); it leaves out the spread of the column means and
    is ≤ the global SD. The DIDFuse (TNNLS) Table V SD: see ``docs/metric_conventions.md``.
    """
    if centre not in ("global", "column"):
        raise ValueError(f"SD: unknown centre {centre!r} (global or column)")
    f = scaled(fused, value_scale)
    if centre == "column":
        if uint8_saturation:
            raise ValueError("SD: uint8_saturation is defined for centre='global' only")
        diff = f - f.mean(dim=-2, keepdim=True)
        return torch.sqrt(diff.square_().mean(dim=(-2, -1)))
    diff = f - f.mean(dim=(-2, -1), keepdim=True)
    if uint8_saturation:
        diff.add_(0.5).floor_().clamp_(0, 255)
        return torch.sqrt(diff.square_().clamp_(max=255).mean(dim=(-2, -1)))
    return torch.sqrt(diff.square_().mean(dim=(-2, -1)))


@metric("SF", "higher", needs_sources=False)
def spatial_frequency(fused, ir=None, vis=None, value_scale: float = 1.0, normalise: str = "mn",
                      boundary: str = "none"):
    r"""Spatial frequency :math:`SF = \sqrt{RF^2 + CF^2}`, RF/CF the RMS horizontal/vertical first differences.

    Eskicioglu & Fisher, "Image quality measures and their performance", IEEE TCOM 1995.
    ``normalise``: ``mn`` divides both sums by M·N (VIFB, DIDFuse), ``count`` by the number of
    differences (M·(N−1) and (M−1)·N; Tang's ``SF_evaluation.m``).
    ``boundary``: ``none`` takes the differences inside the image only; ``zero`` also takes one difference past
    the last column and the last row against a zero there, as a two-tap difference filter with zero padding and
    'same' output does (MATLAB ``imfilter(F, [1 -1])`` / ``conv2(F, [1 -1], 'same')``, whose window for a
    2-tap kernel reaches one pixel right/below; numpy ``np.diff(F, append=0)``): the extra terms are
    :math:`F(i, N)^2` and :math:`F(M, j)^2`, so bright borders add much. ``zero`` needs ``normalise='mn'``
    (M·N differences each way).
    """
    if boundary not in ("none", "zero"):
        raise ValueError(f"SF: unknown boundary {boundary!r} (none or zero)")
    if normalise not in ("mn", "count"):
        raise ValueError(f"SF: unknown normalise {normalise!r}")
    f = scaled(fused, value_scale)
    dh = (f[..., :, 1:] - f[..., :, :-1]).square_()
    dv = (f[..., 1:, :] - f[..., :-1, :]).square_()
    if boundary == "zero":
        if normalise != "mn":
            raise ValueError("SF: boundary='zero' is defined with normalise='mn'")
        mn = f.shape[-1] * f.shape[-2]
        rf = (dh.sum(dim=(-2, -1)) + f[..., :, -1].square().sum(dim=-1)) / mn
        cf = (dv.sum(dim=(-2, -1)) + f[..., -1, :].square().sum(dim=-1)) / mn
        return torch.sqrt(rf + cf)
    if normalise == "mn":
        mn = f.shape[-1] * f.shape[-2]
        rf, cf = dh.sum(dim=(-2, -1)) / mn, dv.sum(dim=(-2, -1)) / mn
    else:
        rf, cf = dh.mean(dim=(-2, -1)), dv.mean(dim=(-2, -1))
    return torch.sqrt(rf + cf)


@metric("AG", "higher", needs_sources=False)
def average_gradient(fused, ir=None, vis=None, value_scale: float = 1.0, mode: str = "matlab"):
    r"""Average gradient :math:`AG = \frac{1}{(M-1)(N-1)}\sum \sqrt{(\nabla_x F^2 + \nabla_y F^2)/2}`.

    Cui et al., "Detail preserved fusion of visible and infrared images using regional saliency extraction
    and multi-scale image decomposition", Opt. Commun. 2015. ``mode``: ``matlab`` = MATLAB ``gradient``
    (central differences inside, one-sided at borders) over all M·N pixels divided by (M−1)(N−1), as in
    VIFB and most IVIF code; ``eq23`` = backward differences over the (M−1)(N−1) interior (DIDFuse Eq. 23).
    """
    f = scaled(fused, value_scale)
    m, n = f.shape[-2:]
    if mode == "matlab":
        dx, dy = gradient_xy(f)
    elif mode == "eq23":
        dx = f[..., 1:, 1:] - f[..., 1:, :-1]
        dy = f[..., 1:, 1:] - f[..., :-1, 1:]
    else:
        raise ValueError(f"AG: unknown mode {mode!r}")
    return dx.square_().add_(dy.square_()).div_(2.0).sqrt_().sum(dim=(-2, -1)) / ((m - 1) * (n - 1))


@metric("EI", "higher", needs_sources=False)
def edge_intensity(fused, ir=None, vis=None, value_scale: float = 1.0, boundary: str = "replicate"):
    r"""Edge intensity: mean Sobel gradient magnitude :math:`\sqrt{g_x^2 + g_y^2}`.

    Rajalingam & Priya, "Hybrid multimodality medical image fusion technique for feature enhancement in
    medical diagnosis", IJESI 2018. VIFB filters with ``imfilter(..., 'replicate')``.
    """
    f = scaled(fused, value_scale)
    gx = correlate(f, _SOBEL, "same", boundary)
    gy = correlate(f, _SOBEL.t(), "same", boundary)
    return gx.square_().add_(gy.square_()).sqrt_().mean(dim=(-2, -1))


__all__ = ["entropy", "standard_deviation", "spatial_frequency", "average_gradient", "edge_intensity"]
