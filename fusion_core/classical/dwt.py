"""DWT: discrete-wavelet-transform fusion (PyWavelets).

H. Li, B. S. Manjunath and S. K. Mitra, "Multisensor image fusion using the wavelet transform",
Graphical Models and Image Processing 57(3), 235–245, 1995; the "DWT" baseline of Liu, Liu & Wang
(Information Fusion 24, 2015).

``pywt.wavedec2`` of both sources; the approximation band averaged, each detail coefficient chosen
by larger magnitude (Li et al.'s choose-max without their consistency check); ``pywt.waverec2``.
Parameters: 4 levels (Liu et al. 2015), wavelet ``WAVELET`` = db2 with symmetric extension (our
choice: the papers that list DWT as a baseline do not state the filter).
"""
from __future__ import annotations

import numpy as np
import pywt

from ._common import per_channel_rgb, per_image, register
from ._multiscale import average, choose_max

LEVELS = 4
WAVELET = "db2"


def dwt_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    levels = max(0, min(LEVELS, pywt.dwtn_max_level(ir.shape, WAVELET)))
    ca = pywt.wavedec2(ir, WAVELET, mode="symmetric", level=levels)
    cb = pywt.wavedec2(vis, WAVELET, mode="symmetric", level=levels)
    fused = [average(ca[0], cb[0])]
    fused += [tuple(choose_max(a, b) for a, b in zip(da, db)) for da, db in zip(ca[1:], cb[1:])]
    return pywt.waverec2(fused, WAVELET, mode="symmetric")[: ir.shape[0], : ir.shape[1]]


dwt_fusion = per_image(dwt_array)
register("dwt", dwt_fusion, per_channel_rgb(dwt_fusion))
