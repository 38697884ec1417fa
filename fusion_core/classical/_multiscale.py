"""What the multi-scale methods share: the fusion rule (average the coarsest band, pick the
larger-magnitude coefficient in every detail band: "choose-max", Burt & Kolczynski 1993) and, for
the two Gaussian-pyramid methods (LP, RP), building and collapsing a pyramid.

A Gaussian-pyramid method is given by how a level is split against the expanded next-coarser one:
``band = split(G_k, EXPAND(G_{k+1}))``, and how it is put back: ``G_k = merge(band, EXPAND(G_{k+1}))``.
LP: ``subtract``/``add`` (Burt & Adelson 1983); RP: ``divide``/``multiply`` (Toet 1989).
"""
from __future__ import annotations

from typing import Callable

import cv2
import numpy as np

Band = Callable[[np.ndarray, np.ndarray], np.ndarray]


def magnitude_order(x: np.ndarray) -> np.ndarray:
    """A value that orders coefficients by magnitude, computed the same way on every CPU: |x| for real
    ``x``, re² + im² for complex ``x`` (element-wise products and sums, IEEE-exact). ``np.abs`` of a
    complex array is a vectorised hypot whose last bit depends on the SIMD level, which flipped
    DTCWT's choice between near-equal coefficients (docs/portability.md)."""
    return x.real * x.real + x.imag * x.imag if np.iscomplexobj(x) else np.abs(x)


def choose_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per coefficient, the one with the larger magnitude; exact ties take the mean (order-free)."""
    mag_a, mag_b = magnitude_order(a), magnitude_order(b)
    return np.where(mag_a > mag_b, a, np.where(mag_b > mag_a, b, 0.5 * (a + b)))


def average(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 0.5 * (a + b)


def expand(image: np.ndarray, like: np.ndarray) -> np.ndarray:
    """EXPAND: OpenCV ``pyrUp`` (5-tap binomial, mirrored borders) to the size of ``like``."""
    return cv2.pyrUp(image, dstsize=like.shape[::-1])


def gaussian_pyramid_bands(image: np.ndarray, levels: int, split: Band) -> list[np.ndarray]:
    """[B_0, ..., B_{n-1}, G_n] with B_k = split(G_k, EXPAND(G_{k+1})), G_{k+1} = REDUCE(G_k)
    (OpenCV ``pyrDown``); fewer than ``levels`` bands when the image gets too small to halve."""
    bands, current = [], np.ascontiguousarray(image, dtype=np.float64)
    for _ in range(levels):
        if min(current.shape) < 2:
            break
        smaller = cv2.pyrDown(current)
        bands.append(split(current, expand(smaller, current)))
        current = smaller
    return bands + [current]


def collapse(bands: list[np.ndarray], merge: Band) -> np.ndarray:
    """Inverse of :func:`gaussian_pyramid_bands`: G_k = merge(B_k, EXPAND(G_{k+1})) down to G_0."""
    current = bands[-1]
    for band in reversed(bands[:-1]):
        current = merge(band, expand(current, band))
    return current
