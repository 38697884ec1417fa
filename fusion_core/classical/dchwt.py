r"""DCHWT: discrete cosine harmonic wavelet transform fusion.

B. K. Shreyamsha Kumar, "Multifocus and multispectral image fusion based on pixel significance
using discrete cosine harmonic wavelet transform", Signal, Image and Video Processing 7(6),
1125–1143, 2013.

The harmonic wavelet is built in the DCT domain: the 2-D DCT-II of the image (``scipy.fft.dctn``,
orthonormal) is split into dyadic frequency blocks — the lowest $H/2^L \times W/2^L$ block is the
approximation, and at each level $l$ the three blocks beside and below the $H/2^l \times W/2^l$
corner are the horizontal, vertical and diagonal detail bands — and each block's inverse DCT (of the
block's own size) gives the decimated, real wavelet coefficients of that band. The transform is
orthonormal, so the inverse puts the bands' DCTs back into their blocks.

Fusion: approximation averaged, detail coefficients chosen by larger magnitude (the generic
multi-scale rule, used here as in the other transforms). Parameters: ``LEVELS`` = 3 decomposition
levels (our choice, documented here; band edges at $\\lfloor H/2^l \\rfloor$).
"""
from __future__ import annotations

import numpy as np
from scipy import fft

from ._common import per_channel_rgb, per_image, register
from ._multiscale import average, choose_max

LEVELS = 3


def _bands(shape: tuple[int, int], levels: int) -> list[tuple[slice, slice]]:
    """DCT-domain blocks: [approximation, then (H, V, D) detail blocks from coarse to fine]."""
    h, w = shape
    edges = [(h >> l, w >> l) for l in range(levels + 1)]  # edges[0] = (h, w)
    levels = min(levels, next((l for l, (eh, ew) in enumerate(edges) if min(eh, ew) < 1), levels + 1) - 1)
    bands = [(slice(0, edges[levels][0]), slice(0, edges[levels][1]))]
    for l in range(levels, 0, -1):
        (lh, lw), (uh, uw) = edges[l], edges[l - 1]
        bands += [(slice(0, lh), slice(lw, uw)), (slice(lh, uh), slice(0, lw)), (slice(lh, uh), slice(lw, uw))]
    return bands


def dchwt_forward(image: np.ndarray, levels: int = LEVELS) -> list[np.ndarray]:
    spectrum = fft.dctn(image, type=2, norm="ortho")
    return [fft.idctn(spectrum[rows, cols], type=2, norm="ortho") for rows, cols in _bands(image.shape, levels)]


def dchwt_inverse(bands: list[np.ndarray], shape: tuple[int, int], levels: int = LEVELS) -> np.ndarray:
    spectrum = np.zeros(shape)
    for (rows, cols), coeffs in zip(_bands(shape, levels), bands):
        spectrum[rows, cols] = fft.dctn(coeffs, type=2, norm="ortho")
    return fft.idctn(spectrum, type=2, norm="ortho")


def dchwt_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    ba, bb = dchwt_forward(ir), dchwt_forward(vis)
    fused = [average(ba[0], bb[0])] + [choose_max(a, b) for a, b in zip(ba[1:], bb[1:])]
    return dchwt_inverse(fused, ir.shape)


dchwt_fusion = per_image(dchwt_array)
register("dchwt", dchwt_fusion, per_channel_rgb(dchwt_fusion))
