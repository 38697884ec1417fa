r"""MSVD: image fusion with the multi-resolution singular value decomposition.

V. P. S. Naidu, "Image fusion technique using multi-resolution singular value decomposition",
Defence Science Journal 61(5), 479–484, 2011.

One MSVD level: the image's non-overlapping 2×2 blocks are the columns of a 4×(HW/4) matrix
$X = U \Sigma V^\top$; $T = U^\top X$ gives one approximation band (first row, LL) and three
detail bands (LH, HL, HH). Fusion: LL averaged, each detail coefficient taken from the source
with the larger magnitude, the fused basis $U = \tfrac12 (U_1 + U_2)$, and $X_F = U T_F$.

Parameters (paper and the code VIFB ran): one decomposition level. Odd sizes are padded by
repeating the last row/column and cropped back (VIFB resized to even size instead). VIFB ran it
per RGB channel of a colour visible image with the grey IR image (no min–max rescaling there).
The sign of each singular vector is arbitrary (LAPACK's choice), which makes the paper's average
$\tfrac12 (U_1 + U_2)$ ill-defined; we flip each column of $U_2$ to point the same way as that of
$U_1$ (positive inner product), so the result does not depend on the linear-algebra library.
VIFB's MATLAB outputs carry MATLAB/MKL's own, data-dependent signs, which is what limits our
agreement with them (see notebooks/98_classical_validation.ipynb).
"""
from __future__ import annotations

import numpy as np

from ._common import per_channel_rgb, per_image, register


def _blocks(image: np.ndarray) -> np.ndarray:
    """H×W (even) → 4×(H/2·W/2): each column one 2×2 block in column-major order."""
    h, w = image.shape
    return image.reshape(h // 2, 2, w // 2, 2).transpose(3, 1, 0, 2).reshape(4, -1)


def _unblocks(columns: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return columns.reshape(2, 2, h // 2, w // 2).transpose(2, 1, 3, 0).reshape(h, w)


def msvd(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One MSVD level: (T = Uᵀ X with rows LL, LH, HL, HH; U)."""
    columns = _blocks(image)
    u, _, _ = np.linalg.svd(columns, full_matrices=False)
    return u.T @ columns, u


def msvd_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    h, w = ir.shape
    pad = ((0, h % 2), (0, w % 2))
    a, b = np.pad(ir, pad, mode="edge"), np.pad(vis, pad, mode="edge")
    (t_a, u_a), (t_b, u_b) = msvd(a), msvd(b)
    signs = np.where(np.sum(u_a * u_b, axis=0) < 0, -1.0, 1.0)
    u_b, t_b = u_b * signs, t_b * signs[:, None]
    fused = np.where(np.abs(t_a) >= np.abs(t_b), t_a, t_b)
    fused[0] = 0.5 * (t_a[0] + t_b[0])
    return _unblocks(0.5 * (u_a + u_b) @ fused, a.shape)[:h, :w]


msvd_fusion = per_image(msvd_array)
register("msvd", msvd_fusion, per_channel_rgb(msvd_fusion))
