"""DTCWT: dual-tree complex wavelet transform fusion (the ``dtcwt`` package).

J. J. Lewis, R. J. O'Callaghan, S. G. Nikolov, D. R. Bull and N. Canagarajah, "Pixel- and
region-based image fusion with complex wavelets", Information Fusion 8(2), 119–130, 2007; the
"DTCWT" baseline of Liu, Liu & Wang (Information Fusion 24, 2015).

Forward DTCWT of both sources, lowpass averaged, each complex highpass coefficient (6 orientations
per level) chosen by larger magnitude, inverse DTCWT. Parameters (Liu et al. 2015): 4 levels,
first-level biorthogonal filters LeGall 5/3 (``legall``), Q-shift filters ``qshift_06``.
"""
from __future__ import annotations

import sys

import dtcwt
import numpy as np

from ._common import per_channel_rgb, per_image, register
from ._multiscale import average, choose_max

LEVELS = 4
BIORT, QSHIFT = "legall", "qshift_06"


def _asfarray(x):
    """``dtcwt.utils.asfarray`` without ``np.asfarray`` (removed in NumPy 2): keep float dtypes."""
    x = np.asanyarray(x)
    return x if np.issubdtype(x.dtype, np.inexact) else x.astype(np.float64)


def _complex_type_for(x):
    """``dtcwt.utils.appropriate_complex_type_for`` without ``np.issubsctype`` (removed in NumPy 2)."""
    x = _asfarray(x)
    if np.iscomplexobj(x):
        return x.dtype
    return np.complex64 if x.dtype == np.float32 else np.complex128


def _patch_dtcwt_for_numpy2() -> None:
    # dtcwt 0.13 calls np.asfarray and np.issubsctype, both gone in NumPy 2; rebind its two helpers
    # in the dtcwt modules only (nothing else is touched).
    if hasattr(np, "asfarray"):
        return
    for name, module in list(sys.modules.items()):
        if name == "dtcwt" or name.startswith("dtcwt."):
            if hasattr(module, "asfarray"):
                module.asfarray = _asfarray
            if hasattr(module, "appropriate_complex_type_for"):
                module.appropriate_complex_type_for = _complex_type_for


import dtcwt.numpy.transform2d  # noqa: E402,F401  (load the modules to patch)

_patch_dtcwt_for_numpy2()


def dtcwt_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    # Mirror-pad to a multiple of 2**LEVELS (dtcwt would otherwise duplicate edge rows per level).
    h, w = ir.shape
    step = 2**LEVELS
    pad = ((0, -h % step), (0, -w % step))
    transform = dtcwt.Transform2d(biort=BIORT, qshift=QSHIFT)
    ta = transform.forward(np.pad(ir, pad, mode="symmetric"), nlevels=LEVELS)
    tb = transform.forward(np.pad(vis, pad, mode="symmetric"), nlevels=LEVELS)
    highpasses = tuple(choose_max(a, b) for a, b in zip(ta.highpasses, tb.highpasses))
    fused = dtcwt.Pyramid(average(ta.lowpass, tb.lowpass), highpasses)
    return transform.inverse(fused)[:h, :w]


dtcwt_fusion = per_image(dtcwt_array)
register("dtcwt", dtcwt_fusion, per_channel_rgb(dtcwt_fusion))
