r"""MSVD: image fusion with the multi-resolution singular value decomposition.

V. P. S. Naidu, "Image fusion technique using multi-resolution singular value decomposition",
Defence Science Journal 61(5), 479–484, 2011.

One MSVD level: the image's non-overlapping 2×2 blocks are the columns of a 4×(HW/4) matrix
$X = U \Sigma V^\top$; $T = U^\top X$ gives one approximation band (first row, LL) and three
detail bands (LH, HL, HH). Fusion: LL averaged, each detail coefficient taken from the source
with the larger magnitude (ties: the IR image), the fused basis $U = \tfrac12 (U_1 + U_2)$, and
$X_F = U T_F$.

Parameters (paper and the code VIFB ran): one decomposition level. Odd sizes are padded by
repeating the last row/column and cropped back (VIFB resized to even size instead). VIFB ran it
per RGB channel of a colour visible image with the grey IR image (no min–max rescaling there).

Singular-vector signs. Each column of $U$ is defined only up to sign, and the paper's average
$\tfrac12 (U_1 + U_2)$ depends on it: where the two sources' columns point opposite ways, the
fused basis vector nearly vanishes. So the signs are part of the method as run, and we take them
from a fixed, documented computation: LAPACK ``dgesvd`` applied to $X^\top$ (one row per block,
blocks in MATLAB's column-major order), $U$ = its right singular vectors. This is the LAPACK path
MATLAB's ``[U,S] = svd(X)`` follows (reference LAPACK, OpenBLAS and current MKL give the same
signs here). It reproduces VIFB's stored MSVD images exactly — after JPEG storage, every 8-bit
value (snow: 99.94 %) — for 15 of its 21 pairs. On the other 6 (carLight, carShadow, labMan,
peopleshadow, running, walkingnight) VIFB's MATLAB returned the opposite sign for two of the four
columns (3–4; 2–3 for peopleshadow) in one of the fused images (the IR image, or one visible
channel): a choice of that MATLAB release's linear-algebra library, which neither reference LAPACK
nor current MKL reproduces, nor any simple rule we tried (first, largest or summed component
positive; Cholesky or positive-diagonal QR first). With those signs imposed, our code reproduces
these 6 files exactly as well (:func:`fusion_core.classical._vifb.msvd_signs_reproducing_vifb`,
notebooks/98_classical_validation.ipynb).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg

from ._common import per_channel_rgb, per_image, register


def _blocks(image: np.ndarray) -> np.ndarray:
    """H×W (even) → 4×(H/2·W/2): each column one 2×2 block read column-major, blocks in
    column-major order (down the block rows first), as MATLAB's ``reshape`` loops lay them out."""
    h, w = image.shape
    return image.reshape(h // 2, 2, w // 2, 2).transpose(3, 1, 2, 0).reshape(4, -1)


def _unblocks(columns: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    h, w = shape
    return columns.reshape(2, 2, w // 2, h // 2).transpose(3, 1, 2, 0).reshape(h, w)


def msvd(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One MSVD level: (T = Uᵀ X with rows LL, LH, HL, HH; U), U's signs as LAPACK dgesvd on Xᵀ
    gives them."""
    columns = _blocks(image)
    _, _, vt = scipy.linalg.svd(columns.T, full_matrices=False, lapack_driver="gesvd")
    u = vt.T
    return u.T @ columns, u


def fuse_bands(t_ir: np.ndarray, u_ir: np.ndarray, t_vis: np.ndarray, u_vis: np.ndarray) -> np.ndarray:
    """Fused 4×M block matrix from both sources' (T, U): LL averaged, details by larger magnitude."""
    fused = np.where(np.abs(t_ir) >= np.abs(t_vis), t_ir, t_vis)
    fused[0] = 0.5 * (t_ir[0] + t_vis[0])
    return 0.5 * (u_ir + u_vis) @ fused


def msvd_array(ir: np.ndarray, vis: np.ndarray) -> np.ndarray:
    h, w = ir.shape
    pad = ((0, h % 2), (0, w % 2))
    a, b = np.pad(ir, pad, mode="edge"), np.pad(vis, pad, mode="edge")
    return _unblocks(fuse_bands(*msvd(a), *msvd(b)), a.shape)[:h, :w]


msvd_fusion = per_image(msvd_array)
register("msvd", msvd_fusion, per_channel_rgb(msvd_fusion))
