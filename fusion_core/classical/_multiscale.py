"""The fusion rule shared by the multi-scale transforms: average the coarsest band, pick the
larger-magnitude coefficient in every detail band ("choose-max", Burt & Kolczynski 1993)."""
from __future__ import annotations

import numpy as np


def choose_max(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per coefficient, the one with the larger magnitude; exact ties take the mean (order-free)."""
    mag_a, mag_b = np.abs(a), np.abs(b)
    return np.where(mag_a > mag_b, a, np.where(mag_b > mag_a, b, 0.5 * (a + b)))


def average(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return 0.5 * (a + b)
