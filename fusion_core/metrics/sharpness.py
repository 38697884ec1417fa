"""No-reference sharpness from edge widths: CPBD (Narvekar & Karam 2011) and JNB (Ferzli & Karam 2009).

Planes are N×H×W float64 grey levels in [0, 255]. The definitions follow the widely used Python port of
Narvekar's code (PyPI ``cpbd`` 1.0.7), written here in vectorised form: edge pixels from a Sobel
vertical-edge detector with Octave's threshold and thinning; Marziliano widths along the row for edges whose
gradient angle rounds to 0° or ±180°; 64×64 blocks with more than 0.2 % Canny edge pixels (skimage
``canny``, σ = 1) are edge blocks; just-noticeable width 5 where the block contrast is ≤ 50, else 3; β = 3.6.
"""
from __future__ import annotations

import numpy as np
import torch

from ._core import metric

BETA = 3.6
BLOCK = 64
EDGE_FRACTION = 0.002
MAX_MARGIN = 100


def _sobel_edges(image: np.ndarray) -> np.ndarray:
    """Octave ``edge(·,'sobel')`` on vertical edges: squared response > 2·sqrt(mean), thinned along rows/cols."""
    from scipy import ndimage

    kernel = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0
    strength = ndimage.convolve(image, kernel, mode="reflect") ** 2
    strength[strength <= 2 * np.sqrt(strength.mean())] = 0
    pad = np.pad(strength, 1)
    centre = pad[1:-1, 1:-1]
    horizontal = (centre > pad[1:-1, :-2]) & (centre > pad[1:-1, 2:])
    vertical = (centre > pad[:-2, 1:-1]) & (centre > pad[2:, 1:-1])
    return horizontal | vertical


def _run_ending(cond: np.ndarray) -> np.ndarray:
    """Per row: the number of consecutive True values ending at each column (0 where False)."""
    idx = np.broadcast_to(np.arange(cond.shape[1]), cond.shape)
    last_false = np.maximum.accumulate(np.where(~cond, idx, -1), axis=1)
    return idx - last_false


def _edge_widths(image: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Marziliano widths: steps to the local extrema left and right of each 0°/±180° edge pixel (0 elsewhere)."""
    gy, gx = np.gradient(image)
    with np.errstate(invalid="ignore"):
        angle = np.where(gx != 0, np.degrees(np.arctan2(gy, gx)), 0.0)
    angle = np.where((gx == 0) & (gy == np.pi / 2), 90.0, angle)
    quant = 45 * np.round(angle / 45)
    h, w = image.shape
    left_up = np.zeros_like(edges)  # image[c-1] > image[c]: intensity rises to the left
    left_up[:, 1:] = image[:, :-1] > image[:, 1:]
    left_down = np.zeros_like(edges)
    left_down[:, 1:] = image[:, :-1] < image[:, 1:]
    right_down = np.zeros_like(edges)  # image[c+1] < image[c]: falls to the right
    right_down[:, :-1] = image[:, 1:] < image[:, :-1]
    right_up = np.zeros_like(edges)
    right_up[:, :-1] = image[:, 1:] > image[:, :-1]

    def run_left(cond):  # consecutive successes scanning left from c-1
        run = np.zeros(cond.shape, dtype=np.int64)
        run[:, 1:] = _run_ending(cond)[:, :-1]
        return np.minimum(run, MAX_MARGIN) + 1

    def run_right(cond):  # consecutive successes scanning right from c+1
        rev = _run_ending(cond[:, ::-1])[:, ::-1]
        run = np.zeros(cond.shape, dtype=np.int64)
        run[:, :-1] = rev[:, 1:]
        return np.minimum(run, MAX_MARGIN) + 1

    falling = run_left(left_up) + run_right(right_down)  # angle ±180°
    rising = run_left(left_down) + run_right(right_up)  # angle 0°
    widths = np.where(np.abs(quant) == 180, falling, np.where(quant == 0, rising, 0)).astype(np.float64)
    inner = np.zeros_like(edges)
    inner[1:-1, 1:-1] = True
    if not np.any(angle):
        return np.zeros_like(image)
    return np.where(edges & inner, widths, 0.0)


def _edge_blocks(image: np.ndarray):
    """Yield (widths of the block's measured edges, the block's JNB width) for every edge block."""
    from skimage.feature import canny

    canny_edges = canny(image)
    widths = _edge_widths(image, _sobel_edges(image))
    for i in range(image.shape[0] // BLOCK):
        for j in range(image.shape[1] // BLOCK):
            rows, cols = slice(BLOCK * i, BLOCK * (i + 1)), slice(BLOCK * j, BLOCK * (j + 1))
            if np.count_nonzero(canny_edges[rows, cols]) > BLOCK * BLOCK * EDGE_FRACTION:
                block = widths[rows, cols]
                contrast = int(image[rows, cols].max() - image[rows, cols].min())
                yield block[block != 0], (5.0 if contrast <= 50 else 3.0)


def _cpbd_single(image: np.ndarray) -> float:
    hist = np.zeros(101)
    for block_widths, jnb in _edge_blocks(image):
        p_blur = 1 - np.exp(-np.abs(block_widths / jnb) ** BETA)
        np.add.at(hist, np.round(p_blur * 100).astype(int), 1)
    total = hist.sum()
    return float(hist[:64].sum() / total) if total > 0 else 0.0


def _jnb_single(image: np.ndarray) -> float:
    d_blocks = [np.sum(np.abs(w / jnb) ** BETA) ** (1 / BETA) for w, jnb in _edge_blocks(image)]
    if not d_blocks:
        return 0.0
    distortion = np.sum(np.asarray(d_blocks) ** BETA) ** (1 / BETA)
    return float(len(d_blocks) / distortion) if distortion > 0 else 0.0


@metric("CPBD", "higher", needs_sources=False)
def cpbd(fused, ir=None, vis=None):
    r"""Cumulative probability of blur detection :math:`CPBD = P(P_{blur} \le 0.63)`,
    :math:`P_{blur} = 1 - e^{-|w/w_{JNB}|^{\beta}}` over the edge pixels of edge blocks.

    Narvekar & Karam, "A no-reference image blur metric based on the cumulative probability of blur
    detection (CPBD)", IEEE TIP 2011.
    """
    return torch.tensor([_cpbd_single(x.cpu().numpy()) for x in fused], dtype=torch.float64, device=fused.device)


@metric("JNB", "higher", needs_sources=False)
def jnb(fused, ir=None, vis=None):
    r"""Just-noticeable-blur metric :math:`JNB = L/D`, :math:`D = (\sum_R D_R^{\beta})^{1/\beta}`,
    :math:`D_R = (\sum_{e \in R} |w(e)/w_{JNB}(e)|^{\beta})^{1/\beta}`, L = number of edge blocks.

    Ferzli & Karam, "A no-reference objective image sharpness metric based on the notion of just noticeable
    blur (JNB)", IEEE TIP 2009.
    """
    return torch.tensor([_jnb_single(x.cpu().numpy()) for x in fused], dtype=torch.float64, device=fused.device)
